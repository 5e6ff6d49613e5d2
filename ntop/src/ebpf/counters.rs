//! Reading the counter maps into [`Sample`]s: one code path for the running [`Kernel`]'s maps
//! and for maps of pinned programs that are being replaced or detached, whose final counts are
//! read once.
//!
//! Runs on the collector task (through [`Kernel::read_into`]) and at startup or
//! `--detach-all` (final counts of replaced pins). The buffers of the batch readers are reused
//! from read to read, and so are the sample's (see docs/BENCHMARKS.md, `collector_poll_cost`).
//!
//! [`Kernel`]: super::Kernel
//! [`Kernel::read_into`]: super::Kernel::read_into

use std::{
    os::fd::{AsFd as _, AsRawFd, BorrowedFd, RawFd},
    path::Path,
    time::{Instant, SystemTime},
};

use aya::maps::MapData;
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, PairCounters, PairKey},
    errors::ERROR_KINDS,
    maps::{self, DIRECTIONS},
    proto::PROTO_SLOTS,
};

use super::{Attached, Error, batch::BatchReader, pin};
use crate::sample::{Epoch, InterfaceSample, Sample, parse_boot_id};

/// Entries fetched per `BPF_MAP_LOOKUP_BATCH` call.
const BATCH_CHUNK: usize = 4096;

/// How often [`CounterMaps::read_into`] reads the pair map: it is as big as the host map, but
/// only feeds the hosts' peer lists, which need not change every second (at 100k hosts,
/// reading it every poll doubled a poll's cost; see docs/BENCHMARKS.md, `collector_poll_cost`).
pub const PAIR_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The counter maps of one load or pin directory.
pub(super) struct MapSet {
    pub hosts: MapData,
    pub other: MapData,
    pub proto: MapData,
    pub errors: MapData,
    /// `None` for pin layout 1, which had no pair map.
    pub pairs: Option<MapData>,
}

/// The maps ntop reads (hosts, other hosts, protocols, errors, pairs), the readers that read
/// them, and what their interface slots mean.
pub(super) struct CounterMaps {
    /// The interfaces in slot order.
    interfaces: Vec<Attached>,
    hosts: MapData,
    other: MapData,
    proto: MapData,
    errors: MapData,
    pairs: Option<MapData>,
    host_reader: BatchReader,
    pair_reader: BatchReader,
    other_reader: BatchReader,
    proto_reader: BatchReader,
    error_reader: BatchReader,
    /// Possible CPUs: per-CPU values come in this many copies.
    cpus: usize,
    host_capacity: u32,
    epoch: Epoch,
    /// When these maps were loaded or opened (for [`Sample::monotonic`]).
    started: Instant,
    /// When the maps were created, if known (for [`Sample::created`]).
    created: Option<SystemTime>,
    /// When the pair map was last read.
    pairs_read: Option<Instant>,
}

impl std::fmt::Debug for CounterMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CounterMaps")
            .field("interfaces", &self.interfaces)
            .field("host_capacity", &self.host_capacity)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The epoch of the maps `proto` belongs to: this boot and the map's kernel id. Either part is
/// zero when it cannot be read (then a restart cannot tell these maps from others, and the state
/// treats the counters as new).
pub(super) fn epoch_of(proto: &MapData) -> Epoch {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .and_then(|t| parse_boot_id(&t))
        .unwrap_or_default();
    let map_id = proto.info().map_or(0, |i| i.id());
    Epoch { boot, map_id }
}

/// Possible CPUs: per-CPU map values come in this many copies.
fn possible_cpus() -> usize {
    aya::util::nr_cpus().unwrap_or(1)
}

impl CounterMaps {
    /// Reads `maps` for `interfaces` (in slot order), with a host map (and pair map) of
    /// `host_capacity` entries, created at `created` if known.
    pub(super) fn new(
        interfaces: Vec<Attached>,
        maps: MapSet,
        host_capacity: u32,
        created: Option<SystemTime>,
    ) -> Self {
        let MapSet {
            hosts,
            other,
            proto,
            errors,
            pairs,
        } = maps;
        let cpus = possible_cpus();
        let count = u32::try_from(interfaces.len()).unwrap_or(u32::MAX);
        let chunk = |n: u32| (n as usize).clamp(1, BATCH_CHUNK);
        let epoch = epoch_of(&proto);
        Self {
            host_reader: BatchReader::new(
                size_of::<HostKey>(),
                size_of::<HostCounters>(),
                chunk(host_capacity),
            ),
            pair_reader: BatchReader::new(
                size_of::<PairKey>(),
                size_of::<PairCounters>(),
                if pairs.is_some() {
                    chunk(host_capacity)
                } else {
                    1
                },
            ),
            other_reader: BatchReader::new(4, size_of::<HostCounters>() * cpus, chunk(count)),
            proto_reader: BatchReader::new(
                4,
                size_of::<Counter>() * cpus,
                chunk(count.saturating_mul(DIRECTIONS * PROTO_SLOTS)),
            ),
            error_reader: BatchReader::new(4, 8 * cpus, chunk(ERROR_KINDS)),
            interfaces,
            hosts,
            other,
            proto,
            errors,
            pairs,
            cpus,
            host_capacity,
            epoch,
            started: Instant::now(),
            created,
            pairs_read: None,
        }
    }

    /// Opens the maps pinned in `dir` as `layout` describes them, after checking each map's
    /// type, key and value size and capacity against what pin layout `layout.layout` creates
    /// (see [`pin::layout_maps`]; `own` is the layout of this build).
    ///
    /// # Errors
    /// [`pin::PinError::Mismatch`] when this build cannot read that layout or a map differs;
    /// [`pin::PinError::Bpf`] when a map cannot be opened.
    pub(super) fn open_pinned(dir: &Path, layout: &pin::Layout, own: u32) -> Result<Self, Error> {
        let unreadable = |what: String| {
            Error::Pin(pin::PinError::Mismatch {
                dir: dir.to_path_buf(),
                what,
            })
        };
        let count = u32::try_from(layout.interfaces.len()).unwrap_or(u32::MAX);
        let max_ifindex = layout
            .interfaces
            .iter()
            .map(|i| i.ifindex)
            .max()
            .unwrap_or(0);
        let max_pairs = pin::pair_capacity(layout.max_hosts, layout.peers);
        let shapes = pin::layout_maps(
            layout.layout,
            own,
            count,
            max_ifindex,
            layout.max_hosts,
            max_pairs,
        )
        .ok_or_else(|| {
            unreadable(format!(
                "pin layout {}, which this ntop (layout {own}) cannot read",
                layout.layout
            ))
        })?;
        let open = |name: &'static str| -> Result<MapData, Error> {
            let shape = shapes
                .iter()
                .find(|s| s.name == name)
                .ok_or(Error::Map(name))?;
            let map = pin::open_map(dir, name)?;
            pin::check_map(&map, shape).map_err(unreadable)?;
            Ok(map)
        };
        // The slot map is not read, but it must be what the layout says too.
        open(maps::IFACE_SLOTS)?;
        let opened = MapSet {
            hosts: open(maps::HOSTS)?,
            other: open(maps::OTHER_HOSTS)?,
            proto: open(maps::PROTO_STATS)?,
            errors: open(maps::ERRORS)?,
            // Without peers the map is there (one entry) but nothing counts into it.
            pairs: if layout.peers && shapes.iter().any(|s| s.name == maps::PAIRS) {
                Some(open(maps::PAIRS)?)
            } else {
                None
            },
        };
        let interfaces = (0u32..)
            .zip(&layout.interfaces)
            .map(|(slot, i)| Attached {
                name: i.name.clone(),
                ifindex: i.ifindex,
                slot,
                mode: i.mode,
            })
            .collect();
        let created = layout
            .created_ms
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        Ok(Self::new(
            interfaces,
            opened,
            layout.max_hosts.max(1),
            created,
        ))
    }

    /// The interfaces in slot order.
    pub(super) fn interfaces(&self) -> &[Attached] {
        &self.interfaces
    }

    /// The interfaces, taken out.
    pub(super) fn into_interfaces(self) -> Vec<Attached> {
        self.interfaces
    }

    /// Host map capacity.
    pub(super) const fn host_capacity(&self) -> u32 {
        self.host_capacity
    }

    /// Which maps these are.
    pub(super) const fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// When these maps were loaded or opened.
    pub(super) const fn started(&self) -> Instant {
        self.started
    }

    /// Reads every map into a new [`Sample`].
    ///
    /// # Errors
    /// [`Error::Read`] when a `bpf(2)` call fails.
    pub(super) fn read(&mut self) -> Result<Sample, Error> {
        let mut sample = Sample::empty();
        self.read_pairs_next();
        self.read_into(&mut sample)?;
        Ok(sample)
    }

    /// Reads every map into `out`, reusing its buffers: the collector keeps one sample, so a
    /// poll at a million hosts does not allocate and free 180 MB every second.
    ///
    /// # Errors
    /// [`Error::Read`] when a `bpf(2)` call fails; `out` is then incomplete.
    pub(super) fn read_into(&mut self, out: &mut Sample) -> Result<(), Error> {
        let begin = Instant::now();
        out.at = SystemTime::now();
        let cpus = self.cpus;

        out.hosts.clear();
        let hosts = &mut out.hosts;
        self.host_reader
            .for_each(&fd(&self.hosts), |k, v| {
                hosts.push((pod::<HostKey>(k), pod::<HostCounters>(v)));
            })
            .map_err(|source| Error::Read {
                map: maps::HOSTS,
                source,
            })?;

        self.read_pairs(out)?;

        let same_interfaces = out.interfaces.len() == self.interfaces.len()
            && out
                .interfaces
                .iter()
                .zip(&self.interfaces)
                .all(|(o, a)| o.ifindex == a.ifindex && o.mode == a.mode && o.name == a.name);
        if !same_interfaces {
            out.interfaces = self
                .interfaces
                .iter()
                .map(|a| InterfaceSample {
                    name: a.name.clone(),
                    ifindex: a.ifindex,
                    mode: a.mode,
                    proto: [
                        Box::new([Counter::default(); PROTO_SLOTS as usize]),
                        Box::new([Counter::default(); PROTO_SLOTS as usize]),
                    ],
                    other_hosts: HostCounters::default(),
                })
                .collect();
        }
        for iface in &mut out.interfaces {
            for dir in &mut iface.proto {
                dir.fill(Counter::default());
            }
            iface.other_hosts = HostCounters::default();
        }
        let interfaces = &mut out.interfaces;

        self.proto_reader
            .for_each(&fd(&self.proto), |k, v| {
                let index = pod::<u32>(k);
                let per_iface = DIRECTIONS * PROTO_SLOTS;
                let (slot, rest) = ((index / per_iface) as usize, index % per_iface);
                let (dir, proto) = ((rest / PROTO_SLOTS) as usize, (rest % PROTO_SLOTS) as usize);
                if let Some(iface) = interfaces.get_mut(slot) {
                    let total = &mut iface.proto[dir][proto];
                    for cpu in 0..cpus {
                        let c = pod::<Counter>(&v[cpu * size_of::<Counter>()..]);
                        total.bytes = total.bytes.wrapping_add(c.bytes);
                        total.packets = total.packets.wrapping_add(c.packets);
                    }
                }
            })
            .map_err(|source| Error::Read {
                map: maps::PROTO_STATS,
                source,
            })?;

        self.other_reader
            .for_each(&fd(&self.other), |k, v| {
                if let Some(iface) = interfaces.get_mut(pod::<u32>(k) as usize) {
                    for cpu in 0..cpus {
                        let c = pod::<HostCounters>(&v[cpu * size_of::<HostCounters>()..]);
                        iface.other_hosts.accumulate(&c);
                    }
                }
            })
            .map_err(|source| Error::Read {
                map: maps::OTHER_HOSTS,
                source,
            })?;

        let errors = &mut out.errors;
        *errors = [0; ERROR_KINDS as usize];
        self.error_reader
            .for_each(&fd(&self.errors), |k, v| {
                if let Some(e) = errors.get_mut(pod::<u32>(k) as usize) {
                    for cpu in 0..cpus {
                        *e = e.wrapping_add(pod::<u64>(&v[cpu * 8..]));
                    }
                }
            })
            .map_err(|source| Error::Read {
                map: maps::ERRORS,
                source,
            })?;

        out.monotonic = self.started.elapsed();
        out.host_capacity = self.host_capacity;
        out.pair_capacity = if self.pairs.is_some() {
            self.host_capacity
        } else {
            0
        };
        out.created = self.created;
        out.epoch = self.epoch;
        out.poll_duration = begin.elapsed();
        Ok(())
    }

    /// Makes the next [`read_into`](Self::read_into) read the pair map.
    pub(super) fn read_pairs_next(&mut self) {
        self.pairs_read = None;
    }

    /// Reads the pair map into `out.pairs` if the last reading is [`PAIR_REFRESH`] old (or
    /// there was none), and says so in `out.pairs_read`. Without a pair map `out.pairs` is
    /// left empty.
    fn read_pairs(&mut self, out: &mut Sample) -> Result<(), Error> {
        out.pairs_read = self.pairs_read.is_none_or(|t| t.elapsed() >= PAIR_REFRESH);
        if !out.pairs_read {
            return Ok(());
        }
        self.pairs_read = Some(Instant::now());
        let pairs = &mut out.pairs;
        pairs.clear();
        let Some(map) = &self.pairs else {
            return Ok(());
        };
        self.pair_reader
            .for_each(&fd(map), |k, v| {
                pairs.push((pod::<PairKey>(k), pod::<PairCounters>(v)));
            })
            .map_err(|source| Error::Read {
                map: maps::PAIRS,
                source,
            })
    }
}

/// A map's fd, for raw `bpf(2)` calls.
struct MapRawFd(RawFd);

impl AsRawFd for MapRawFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

fn fd(map: &MapData) -> MapRawFd {
    let fd: BorrowedFd<'_> = map.fd().as_fd();
    MapRawFd(fd.as_raw_fd())
}

/// Reads a `#[repr(C)]` map type from the start of `bytes`.
fn pod<T: aya::Pod>(bytes: &[u8]) -> T {
    assert!(
        bytes.len() >= size_of::<T>(),
        "map entry shorter than its type"
    );
    // SAFETY: `T: Pod` is valid for any bytes; the length is checked; unaligned read.
    unsafe { bytes.as_ptr().cast::<T>().read_unaligned() }
}
