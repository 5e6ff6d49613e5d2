//! The aggregation core: turns one [`Sample`] per poll of the kernel maps into monotonic totals,
//! per-second rates and first/last-seen times per interface, protocol slot and host.
//!
//! Who runs it: the collector (its own thread) is the only writer: it calls [`State::ingest`]
//! once per poll. The HTTP handlers are readers: they call the query methods in [`query`].
//! They share it as [`SharedState`], an `Arc<std::sync::RwLock<State>>`.
//!
//! Design, for 100k–1M hosts:
//! - Hosts live in one `Vec` (264 bytes each: key, totals per L4 class, the last increase,
//!   the totals at the last history checkpoint, first/last seen) with a `HashMap` from key to index (about 30 more bytes per host) and
//!   each one's position in the last sample (4 bytes). The kernel lists its hash map in a
//!   stable order, so ingest first tries the host at the same position as last time and hashes
//!   the key only if that misses; hosts seen before cost no allocation. The map keeps std's
//!   `SipHash` with a random key: host keys come off the network and a cheaper hash could be
//!   flooded.
//! - Addresses stay `[u8; 16]` and times milliseconds since the epoch; strings are made only
//!   when a response is rendered.
//! - Counter resets (a recreated map restarts from zero) are absorbed by per-group offsets (see
//!   `monotonic`); hosts keep theirs in a sparse map, since almost none ever have one.
//! - Rates are the increase between the last two samples divided by the monotonic time between
//!   them. An entity absent from the latest sample has rate 0; one that appears for the first
//!   time counts from zero. The first sample has no rates (all 0).
//! - A host missing from a later sample keeps its totals and first/last seen.
//! - Who talks to whom (the kernel's pair map) is kept as the last reading, not aggregated:
//!   a host's top peers are one scan of it per request (see `peers`).

mod annotate;
mod carry;
mod monotonic;
mod names;
mod peers;
pub mod query;
#[cfg(test)]
pub(crate) mod search_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ntop_common::{
    counters::{Counter, HostCounters, HostKey, RECEIVED, SENT},
    errors::{ERROR_KINDS, ERROR_NAMES},
    proto::PROTO_SLOTS,
};

pub use self::{
    annotate::{HostMacs, HostNames, Scope, format_mac},
    carry::Checkpoint,
    names::{Family, display_addr, key_addr, slot_name},
    peers::{PeerList, PeerView},
    query::{HostPage, HostQuery, HostView, InterfaceView, Order, ProtocolView, SortKey},
};
use crate::sample::{CaptureMode, Epoch, InterfaceSample, Sample};

/// How the collector and the HTTP handlers share the state.
pub type SharedState = Arc<RwLock<State>>;

/// Protocol slots per interface and direction, as a `usize`.
const SLOTS: usize = PROTO_SLOTS as usize;

/// Totals and current rates of one direction or class.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Traffic {
    /// Total L2 frame bytes (without FCS) since the daemon started counting.
    pub bytes: u64,
    /// Total wire packets.
    pub packets: u64,
    /// Bytes per second between the last two samples.
    pub bytes_per_sec: f64,
    /// Packets per second between the last two samples.
    pub packets_per_sec: f64,
}

/// Fill level of a kernel table (the host map, the pair map) at the last poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableFill {
    /// Entries the map holds at most.
    pub capacity: u32,
    /// Entries it held.
    pub used: usize,
}

/// One monitored interface.
#[derive(Debug)]
struct Interface {
    name: String,
    ifindex: u32,
    mode: CaptureMode,
    /// Generation of the last sample that listed it.
    generation: u32,
    /// Monotonic totals, `[direction * SLOTS + slot]`.
    proto_total: Box<[Counter]>,
    /// Offsets after a reset of the protocol counters (`None`: never reset).
    proto_offset: Option<Box<[Counter]>>,
    /// Increase of each slot in the last interval.
    proto_delta: Box<[Counter]>,
    /// `proto_total` at the last history checkpoint (see `carry`).
    proto_checkpoint: Box<[Counter]>,
    /// Sums over the slots of each direction: totals and their increase.
    dir_total: [Counter; 2],
    dir_delta: [Counter; 2],
    /// Monotonic totals of the "other hosts" (that did not fit into the host map).
    other_total: HostCounters,
    other_offset: Option<Box<[Counter]>>,
    /// Hosts known on this interface.
    hosts: usize,
}

impl Interface {
    fn new(ifindex: u32, name: String, mode: CaptureMode) -> Self {
        let zeros = || vec![Counter::default(); 2 * SLOTS].into_boxed_slice();
        Self {
            name,
            ifindex,
            mode,
            generation: 0,
            proto_total: zeros(),
            proto_offset: None,
            proto_delta: zeros(),
            proto_checkpoint: zeros(),
            dir_total: [Counter::default(); 2],
            dir_delta: [Counter::default(); 2],
            other_total: HostCounters::default(),
            other_offset: None,
            hosts: 0,
        }
    }

    /// Takes in the raw counters of one poll.
    fn advance(&mut self, raw: &[Box<[Counter; SLOTS]>; 2], other: &HostCounters) {
        use monotonic::{advance, rebase, went_backwards};
        // Both directions live in one map: they reset together.
        let (rx, tx) = self.proto_total.split_at(SLOTS);
        let offset = self.proto_offset.as_deref().map(|o| o.split_at(SLOTS));
        if went_backwards(rx, offset.map(|o| o.0), &raw[0][..])
            || went_backwards(tx, offset.map(|o| o.1), &raw[1][..])
        {
            self.proto_offset = Some(self.proto_total.clone());
        }
        for (dir, raw) in raw.iter().enumerate() {
            let range = dir * SLOTS..(dir + 1) * SLOTS;
            let offset = self.proto_offset.as_deref().map(|o| &o[range.clone()]);
            rebase(
                &mut self.proto_total[range.clone()],
                offset,
                &raw[..],
                Some(&mut self.proto_delta[range.clone()]),
            );
            self.dir_total[dir] = sum(&self.proto_total[range.clone()]);
            self.dir_delta[dir] = sum(&self.proto_delta[range]);
        }
        advance(
            self.other_total.c.as_flattened_mut(),
            &mut self.other_offset,
            other.c.as_flattened(),
            None,
        );
    }
}

fn sum(counters: &[Counter]) -> Counter {
    counters.iter().fold(Counter::default(), |a, c| Counter {
        bytes: a.bytes.wrapping_add(c.bytes),
        packets: a.packets.wrapping_add(c.packets),
    })
}

/// One address on one interface. Kept small and allocation-free: there may be a million.
#[derive(Clone, Debug)]
struct Host {
    key: HostKey,
    /// Generation of the last sample that had it.
    generation: u32,
    /// Monotonic totals per direction and L4 class.
    totals: HostCounters,
    /// Increase of the sent and received totals in the last interval.
    delta: [Counter; 2],
    /// Sent and received totals at the last history checkpoint (see `carry`).
    checkpoint: [Counter; 2],
    /// Milliseconds since the epoch.
    first_seen_ms: u64,
    last_seen_ms: u64,
}

// The per-host cost the module docs quote.
const _: () = assert!(size_of::<Host>() == 264);

/// Everything the daemon knows about the traffic so far. See the [module docs](self).
#[derive(Debug)]
pub struct State {
    /// Number of samples ingested (wrapping); entities remember the one they were last in.
    generation: u32,
    /// Monotonic time of the last sample.
    last_monotonic: Option<Duration>,
    /// Time between the last two samples (`None` before the second).
    elapsed: Option<Duration>,
    polled_at: Option<SystemTime>,
    poll_duration: Option<Duration>,
    host_table: TableFill,
    error_total: [u64; ERROR_KINDS as usize],
    error_offset: Option<Box<[u64]>>,
    /// In the order they first appeared in.
    interfaces: Vec<Interface>,
    hosts: Vec<Host>,
    host_index: HashMap<HostKey, u32>,
    /// Offsets of the few hosts whose counters were ever reset, by index into `hosts`.
    host_offsets: HashMap<u32, HostCounters>,
    /// Every ifindex a host was seen on, with its host count (also those without an interface).
    host_ifindexes: Vec<(u32, usize)>,
    /// Index into `hosts` of each entry of the last sample, by position: a guess for the next.
    last_order: Vec<u32>,
    /// The maps the last sample came from.
    epoch: Option<Epoch>,
    /// Totals carried over from an earlier run for interfaces not sampled yet.
    restored_ifaces: Vec<crate::history::IfaceTotals>,
    /// Since when the totals count (ms since the epoch): the first start or the last reset.
    since_ms: Option<u64>,
    /// The next checkpoint writes every host, changed or not (after a reset or a new epoch).
    full_checkpoint: bool,
    /// The pair map at the last poll, for top peers.
    pairs: peers::Pairs,
    /// Local subnets, name and MAC sources, for listings (never used by `ingest`).
    annotations: annotate::Annotations,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// An empty state: no interfaces, no hosts, never polled.
    #[must_use]
    pub fn new() -> Self {
        Self {
            generation: 0,
            last_monotonic: None,
            elapsed: None,
            polled_at: None,
            poll_duration: None,
            host_table: TableFill::default(),
            error_total: [0; ERROR_KINDS as usize],
            error_offset: None,
            interfaces: Vec::new(),
            hosts: Vec::new(),
            host_index: HashMap::new(),
            host_offsets: HashMap::new(),
            host_ifindexes: Vec::new(),
            last_order: Vec::new(),
            epoch: None,
            restored_ifaces: Vec::new(),
            since_ms: None,
            full_checkpoint: false,
            pairs: peers::Pairs::default(),
            annotations: annotate::Annotations::default(),
        }
    }

    /// A new empty state, ready to share between the collector and the HTTP server.
    #[must_use]
    pub fn shared() -> SharedState {
        Arc::new(RwLock::new(Self::new()))
    }

    /// Takes in one poll of the kernel maps. O(interfaces × slots + sampled hosts); allocates
    /// only for hosts and interfaces seen for the first time (and on counter resets).
    pub fn ingest(&mut self, sample: &Sample) {
        let Sample {
            at,
            monotonic,
            interfaces,
            hosts,
            host_capacity,
            pairs,
            pairs_read,
            pair_capacity,
            created,
            errors,
            poll_duration,
            epoch,
        } = sample;
        let (at, monotonic, host_capacity, poll_duration) =
            (*at, *monotonic, *host_capacity, *poll_duration);
        if self.epoch.is_some_and(|e| e != *epoch) {
            self.begin_epoch();
        }
        self.epoch = Some(*epoch);
        self.since_ms.get_or_insert(epoch_ms(at));
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        self.elapsed = self
            .last_monotonic
            .map(|last| monotonic.saturating_sub(last));
        self.last_monotonic = Some(monotonic);
        self.polled_at = Some(at);
        self.poll_duration = Some(poll_duration);
        self.host_table = TableFill {
            capacity: host_capacity,
            used: hosts.len(),
        };
        monotonic::advance(&mut self.error_total, &mut self.error_offset, errors, None);
        self.pairs.ingest(
            pairs_read.then_some(&pairs[..]),
            *pair_capacity,
            *created,
            &errors[..],
        );

        for sampled in interfaces {
            self.ingest_interface(sampled, generation);
        }

        let now_ms = epoch_ms(at);
        // Expect the kernel to list the hosts in the same order as last time (it walks its
        // hash buckets in order): try the host at the same position before hashing the key.
        let mut last_order = std::mem::take(&mut self.last_order);
        let additional = hosts.len().saturating_sub(self.hosts.len());
        self.hosts.reserve(additional);
        self.host_index.reserve(additional);
        for (position, (key, raw)) in hosts.iter().enumerate() {
            let hinted = last_order
                .get(position)
                .copied()
                .filter(|&i| self.hosts.get(i as usize).is_some_and(|h| h.key == *key));
            let index = match hinted.or_else(|| self.host_index.get(key).copied()) {
                Some(index) => {
                    self.update_host(index, raw, generation, now_ms);
                    index
                }
                None => self.add_host(*key, raw, generation, now_ms),
            };
            match last_order.get_mut(position) {
                Some(slot) => *slot = index,
                None => last_order.push(index),
            }
        }
        last_order.truncate(hosts.len());
        self.last_order = last_order;
    }

    fn ingest_interface(&mut self, sampled: &InterfaceSample, generation: u32) {
        let index = if let Some(index) = self
            .interfaces
            .iter()
            .position(|i| i.ifindex == sampled.ifindex)
        {
            index
        } else {
            let mut iface = Interface::new(sampled.ifindex, sampled.name.clone(), sampled.mode);
            iface.hosts = self
                .host_ifindexes
                .iter()
                .find(|(ifindex, _)| *ifindex == sampled.ifindex)
                .map_or(0, |(_, n)| *n);
            if let Some(at) = self
                .restored_ifaces
                .iter()
                .position(|r| r.name == sampled.name)
            {
                let row = self.restored_ifaces.swap_remove(at);
                carry::apply_iface(&mut iface, &row, self.epoch == Some(row.epoch));
            }
            self.interfaces.push(iface);
            self.interfaces.len() - 1
        };
        let iface = &mut self.interfaces[index];
        if iface.name != sampled.name {
            iface.name.clone_from(&sampled.name);
        }
        iface.mode = sampled.mode;
        iface.generation = generation;
        iface.advance(&sampled.proto, &sampled.other_hosts);
    }

    fn update_host(&mut self, index: u32, raw: &HostCounters, generation: u32, now_ms: u64) {
        let host = &mut self.hosts[index as usize];
        if host.generation == generation {
            // Listed twice in one sample (a map walk that restarted): the first one counts.
            return;
        }
        let raw = raw.c.as_flattened();
        let offset = self.host_offsets.get(&index).map(|o| o.c.as_flattened());
        if monotonic::went_backwards(host.totals.c.as_flattened(), offset, raw) {
            self.host_offsets.insert(index, host.totals);
        }
        let offset = self.host_offsets.get(&index).map(|o| o.c.as_flattened());
        let before = [host.totals.total(SENT), host.totals.total(RECEIVED)];
        monotonic::rebase(host.totals.c.as_flattened_mut(), offset, raw, None);
        let after = [host.totals.total(SENT), host.totals.total(RECEIVED)];
        if before == [Counter::default(); 2] && after != before {
            // Back after a reset of the statistics: seen "first" now.
            host.first_seen_ms = now_ms;
        }
        for ((delta, after), before) in host.delta.iter_mut().zip(after).zip(before) {
            *delta = Counter {
                bytes: after.bytes.wrapping_sub(before.bytes),
                packets: after.packets.wrapping_sub(before.packets),
            };
        }
        if after != before {
            host.last_seen_ms = now_ms;
        }
        host.generation = generation;
    }

    /// Adds a host seen for the first time; returns its index.
    fn add_host(&mut self, key: HostKey, raw: &HostCounters, generation: u32, now_ms: u64) -> u32 {
        self.insert_host(Host {
            key,
            generation,
            totals: *raw,
            delta: [raw.total(SENT), raw.total(RECEIVED)],
            checkpoint: [Counter::default(); 2],
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        })
    }

    /// Appends `host` (whose key is not known yet) and indexes it; returns its index.
    fn insert_host(&mut self, host: Host) -> u32 {
        let key = host.key;
        let index = u32::try_from(self.hosts.len())
            .expect("the kernel's host map holds fewer than 2^32 entries");
        self.hosts.push(host);
        self.host_index.insert(key, index);
        match self
            .host_ifindexes
            .iter_mut()
            .find(|(ifindex, _)| *ifindex == key.ifindex)
        {
            Some((_, n)) => *n += 1,
            None => self.host_ifindexes.push((key.ifindex, 1)),
        }
        if let Some(iface) = self
            .interfaces
            .iter_mut()
            .find(|i| i.ifindex == key.ifindex)
        {
            iface.hosts += 1;
        }
        index
    }

    /// Wall-clock time of the last poll (`None` before the first).
    #[must_use]
    pub fn polled_at(&self) -> Option<SystemTime> {
        self.polled_at
    }

    /// How long the last poll took to read the maps.
    #[must_use]
    pub fn poll_duration(&self) -> Option<Duration> {
        self.poll_duration
    }

    /// Capacity and fill of the kernel's host map at the last poll.
    #[must_use]
    pub fn host_table(&self) -> TableFill {
        self.host_table
    }

    /// Error counters (monotonic totals), by [`ERROR_NAMES`], in their order.
    pub fn errors(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ERROR_NAMES.iter().copied().zip(self.error_total)
    }

    /// Number of hosts known (on all interfaces, including those gone from the host map).
    #[must_use]
    pub fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// Per-second rate of an increase `delta` that the entity last sampled in `generation`
    /// made over the last interval.
    fn rate(&self, delta: u64, generation: u32) -> f64 {
        match self.elapsed {
            Some(elapsed) if generation == self.generation && !elapsed.is_zero() => {
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "a rate is an estimate; exact below 2^53 anyway"
                )]
                let delta = delta as f64;
                delta / elapsed.as_secs_f64()
            }
            _ => 0.0,
        }
    }

    fn traffic(&self, total: Counter, delta: Counter, generation: u32) -> Traffic {
        Traffic {
            bytes: total.bytes,
            packets: total.packets,
            bytes_per_sec: self.rate(delta.bytes, generation),
            packets_per_sec: self.rate(delta.packets, generation),
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating far in the future).
fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Inverse of [`epoch_ms`].
fn from_epoch_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
