//! Who talks to whom: the kernel's pair map as of the last poll, and a host's top peers from it.
//!
//! Runs on the collector (ingest: one copy of the pair entries into a reused buffer, when the
//! poll read them: every [`PAIR_REFRESH`](crate::ebpf::PAIR_REFRESH)) and on the HTTP handlers
//! (queries: one scan of the pairs, O(pairs), then a partial sort of the host's own). Peer counts are not carried across new maps (a reboot, an upgrade, a start without
//! pins) nor kept in the history: they count from when the maps were created, or from the last
//! reset, whichever is later ([`PeerList::since`]).

use std::{borrow::Cow, collections::HashMap, net::IpAddr, time::SystemTime};

use ntop_common::{
    counters::{A_TO_B, B_TO_A, Counter, PairCounters, PairKey},
    errors::ErrorKind,
};

use super::{State, TableFill, display_addr, key_addr};

/// The pair map at the last poll.
#[derive(Debug, Default)]
pub(super) struct Pairs {
    /// Every entry of the last sample.
    entries: Vec<(PairKey, PairCounters)>,
    /// The map's capacity (0: the maps have no pair map).
    capacity: u32,
    /// Counts at the last reset, subtracted from the entries; `None` when there was no reset
    /// since these maps were created.
    baseline: Option<HashMap<PairKey, PairCounters>>,
    /// When the maps were created, if known.
    created: Option<SystemTime>,
    /// When the last reset was.
    reset_at: Option<SystemTime>,
    /// Pair errors these maps counted (their own counters, not the totals carried across
    /// maps), at the last poll and at the last reset (see [`PeerList::complete`]).
    errors: u64,
    errors_at_reset: u64,
}

/// One peer of a host on one interface.
#[derive(Clone, Debug)]
pub struct PeerView<'a> {
    /// The peer's address.
    pub ip: IpAddr,
    /// The interface the pair was seen on.
    pub interface: Cow<'a, str>,
    /// From the host to the peer.
    pub sent: Counter,
    /// From the peer to the host.
    pub received: Counter,
    /// The peer is in a local subnet.
    pub local: bool,
    /// The peer's name, if resolved.
    pub name: Option<std::sync::Arc<str>>,
}

/// A host's top peers.
#[derive(Clone, Debug)]
pub struct PeerList<'a> {
    /// Peer entries (peer × interface) the host has.
    pub total: usize,
    /// The top ones, most bytes (both ways) first.
    pub peers: Vec<PeerView<'a>>,
    /// `false` when the pair map was full or failed to count a pair since [`Self::since`]:
    /// some peers may be missing.
    pub complete: bool,
    /// Since when the peer counts count: the maps' creation or the last reset, whichever is
    /// later; `None` when neither is known.
    pub since: Option<SystemTime>,
    /// Pair map fill.
    pub table: TableFill,
}

impl Pairs {
    /// Takes in the pair entries of a poll (into the reused buffer), if it read them, and the
    /// maps' own pair error counters (`errors`: as the kernel counts them, by kind).
    pub(super) fn ingest(
        &mut self,
        entries: Option<&[(PairKey, PairCounters)]>,
        capacity: u32,
        created: Option<SystemTime>,
        errors: &[u64],
    ) {
        self.errors = [ErrorKind::PairMapFull, ErrorKind::PairUpdateFailed]
            .iter()
            .filter_map(|&k| errors.get(k as usize))
            .fold(0, |a, &n| a.wrapping_add(n));
        if let Some(entries) = entries {
            self.entries.clear();
            self.entries.extend_from_slice(entries);
        }
        self.capacity = capacity;
        self.created = created;
    }

    /// New maps: their pairs count from zero, so the old baseline means nothing any more.
    pub(super) fn begin_epoch(&mut self) {
        self.baseline = None;
        self.reset_at = None;
        self.errors_at_reset = 0;
    }

    /// The admin's reset: peer counts start again from here.
    pub(super) fn reset(&mut self, now: SystemTime) {
        self.baseline = Some(self.entries.iter().copied().collect());
        self.reset_at = Some(now);
        self.errors_at_reset = self.errors;
    }

    fn since(&self) -> Option<SystemTime> {
        match (self.created, self.reset_at) {
            (Some(c), Some(r)) => Some(c.max(r)),
            (c, r) => c.or(r),
        }
    }
}

/// `later - earlier`, per field, wrapping like the kernel's counters.
fn minus(later: Counter, earlier: Counter) -> Counter {
    Counter {
        bytes: later.bytes.wrapping_sub(earlier.bytes),
        packets: later.packets.wrapping_sub(earlier.packets),
    }
}

impl State {
    /// Fill of the kernel's pair map at the last poll.
    #[must_use]
    pub fn pair_table(&self) -> TableFill {
        TableFill {
            capacity: self.pairs.capacity,
            used: self.pairs.entries.len(),
        }
    }

    /// The top `limit` peers of `ip` (on `ifindex` only, if given), by bytes both ways.
    #[must_use]
    pub fn peers(&self, ip: IpAddr, ifindex: Option<u32>, limit: usize) -> PeerList<'_> {
        let addr = key_addr(ip);
        let pairs = &self.pairs;
        let mut found: Vec<(PairKey, Counter, Counter)> = pairs
            .entries
            .iter()
            .filter(|(k, _)| (k.a == addr || k.b == addr) && ifindex.is_none_or(|i| i == k.ifindex))
            .filter_map(|(k, v)| {
                let base = pairs.baseline.as_ref().and_then(|b| b.get(k));
                let c =
                    |dir: usize| minus(v.c[dir], base.map_or_else(Counter::default, |b| b.c[dir]));
                // Sent: from `addr`. (Packets from an address to itself are all A_TO_B.)
                let (sent, received) = if k.a == addr {
                    (c(A_TO_B), c(B_TO_A))
                } else {
                    (c(B_TO_A), c(A_TO_B))
                };
                (sent.packets > 0 || received.packets > 0).then_some((*k, sent, received))
            })
            .collect();
        let total = found.len();
        let bytes = |&(_, s, r): &(PairKey, Counter, Counter)| s.bytes.saturating_add(r.bytes);
        if found.len() > limit {
            found.select_nth_unstable_by(limit, |x, y| bytes(y).cmp(&bytes(x)));
            found.truncate(limit);
        }
        found.sort_unstable_by(|x, y| bytes(y).cmp(&bytes(x)).then(x.0.cmp(&y.0)));
        let peers = found
            .into_iter()
            .map(|(k, sent, received)| {
                let peer = display_addr(if k.a == addr { k.b } else { k.a });
                PeerView {
                    ip: peer,
                    interface: self.interface_name(k.ifindex),
                    sent,
                    received,
                    local: self.is_local(peer),
                    name: self.name_of(peer),
                }
            })
            .collect();
        PeerList {
            total,
            peers,
            complete: pairs.errors == pairs.errors_at_reset,
            since: pairs.since(),
            table: self.pair_table(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ntop_common::counters::{L4Class, RECEIVED, SENT};

    use super::*;
    use crate::state::tests::{T0, sample};

    fn at(secs: u64) -> SystemTime {
        std::time::UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    /// 198.51.100.1 talks to .2 (1000 B out in 10 packets, 300 B back in 3) and to .3 (50 B
    /// out, 1 packet); .2 also talks to .3, which is no peer of .1.
    fn talking() -> crate::state::tests::SampleBuilder {
        let h = |b: crate::state::tests::SampleBuilder, ip| {
            b.host(ip, 2, SENT, L4Class::Udp, 1, 1)
                .host(ip, 2, RECEIVED, L4Class::Udp, 1, 1)
        };
        let b = sample(0).iface(2, "eth0").created(at(0));
        let b = h(h(h(b, "198.51.100.1"), "198.51.100.2"), "198.51.100.3");
        b.pair("198.51.100.1", "198.51.100.2", 2, 1000, 10)
            .pair("198.51.100.2", "198.51.100.1", 2, 300, 3)
            .pair("198.51.100.1", "198.51.100.3", 2, 50, 1)
            .pair("198.51.100.2", "198.51.100.3", 2, 7000, 7)
    }

    fn c(bytes: u64, packets: u64) -> Counter {
        Counter { bytes, packets }
    }

    #[test]
    fn top_peers_by_bytes_both_ways_with_direction_from_the_host() {
        let mut s = State::new();
        s.ingest(&talking().build());
        let list = s.peers("198.51.100.1".parse().unwrap(), None, 10);
        assert_eq!(list.total, 2);
        assert!(list.complete);
        assert_eq!(list.since, Some(at(0)));
        assert_eq!(
            list.table,
            TableFill {
                capacity: 1024,
                used: 3
            }
        );
        let got: Vec<_> = list
            .peers
            .iter()
            .map(|p| {
                (
                    p.ip.to_string(),
                    p.interface.to_string(),
                    p.sent,
                    p.received,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("198.51.100.2".into(), "eth0".into(), c(1000, 10), c(300, 3)),
                ("198.51.100.3".into(), "eth0".into(), c(50, 1), c(0, 0)),
            ]
        );
        // From the other side, the same pair reads the other way round.
        let list = s.peers("198.51.100.2".parse().unwrap(), None, 1);
        assert_eq!(list.total, 2);
        assert_eq!(list.peers.len(), 1);
        assert_eq!(list.peers[0].ip.to_string(), "198.51.100.3");
        let list = s.peers("198.51.100.3".parse().unwrap(), None, 10);
        assert_eq!(
            (list.peers[1].ip.to_string(), list.peers[1].received),
            ("198.51.100.1".into(), c(50, 1))
        );
        // Another interface has none.
        assert_eq!(
            s.peers("198.51.100.1".parse().unwrap(), Some(3), 10).total,
            0
        );
    }

    #[test]
    fn a_poll_that_did_not_read_the_pairs_keeps_the_last_reading() {
        let mut s = State::new();
        s.ingest(&talking().build());
        let mut later = sample(1000)
            .iface(2, "eth0")
            .pair("198.51.100.1", "198.51.100.2", 2, 5000, 50)
            .build();
        later.pairs_read = false;
        s.ingest(&later);
        let list = s.peers("198.51.100.1".parse().unwrap(), None, 10);
        assert_eq!((list.total, list.peers[0].sent), (2, c(1000, 10)));
        later.pairs_read = true;
        s.ingest(&later);
        let list = s.peers("198.51.100.1".parse().unwrap(), None, 10);
        assert_eq!((list.total, list.peers[0].sent), (1, c(5000, 50)));
    }

    #[test]
    fn a_reset_starts_the_peer_counts_again_and_new_maps_forget_it() {
        let mut s = State::new();
        s.ingest(&talking().epoch(1).build());
        s.reset(at(5));
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let list = s.peers(ip, None, 10);
        assert_eq!((list.total, list.since), (0, Some(at(5))));
        // 100 more bytes to .3 after the reset.
        let later = sample(6000)
            .iface(2, "eth0")
            .created(at(0))
            .epoch(1)
            .pair("198.51.100.1", "198.51.100.2", 2, 1000, 10)
            .pair("198.51.100.2", "198.51.100.1", 2, 300, 3)
            .pair("198.51.100.1", "198.51.100.3", 2, 150, 2);
        s.ingest(&later.build());
        let list = s.peers(ip, None, 10);
        assert_eq!(list.total, 1);
        assert_eq!(list.peers[0].sent, c(100, 1));
        // New maps count from zero, and from their creation.
        let new = sample(7000).iface(2, "eth0").created(at(7)).epoch(2).pair(
            "198.51.100.1",
            "198.51.100.2",
            2,
            40,
            1,
        );
        s.ingest(&new.build());
        let list = s.peers(ip, None, 10);
        assert_eq!((list.total, list.since), (1, Some(at(7))));
        assert_eq!(list.peers[0].sent, c(40, 1));
    }

    #[test]
    fn a_full_pair_table_makes_the_list_incomplete_until_new_maps() {
        let mut s = State::new();
        s.ingest(&talking().epoch(1).error(ErrorKind::PairMapFull, 3).build());
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        assert!(!s.peers(ip, None, 10).complete);
        s.ingest(&talking().epoch(2).build());
        assert!(s.peers(ip, None, 10).complete);
        s.ingest(
            &talking()
                .epoch(2)
                .error(ErrorKind::PairUpdateFailed, 1)
                .build(),
        );
        assert!(!s.peers(ip, None, 10).complete);
        s.reset(at(9));
        assert!(s.peers(ip, None, 10).complete);
    }

    /// Prints how long a peer list takes at 1M pairs (a busy host with 1,000 peers among them):
    /// `cargo test --release -p ntop --lib state::peers::tests::timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing only; run in release with --ignored --nocapture"]
    fn timing() {
        use std::time::Instant;
        let busy = crate::state::tests::addr("198.51.100.1");
        let mut sample = sample(0)
            .iface(2, "eth0")
            .host("198.51.100.1", 2, SENT, L4Class::Udp, 1, 1)
            .build();
        sample.pairs = (0_u32..1_000_000)
            .map(|i| {
                let [_, x, y, z] = i.to_be_bytes();
                let one = crate::state::key_addr(IpAddr::from([10, x, y, z]));
                let other = if i % 1000 == 0 {
                    busy
                } else {
                    crate::state::key_addr(IpAddr::from([172, 16, y, z]))
                };
                let (key, dir) = PairKey::of(one, other, 2);
                let mut v = PairCounters::default();
                v.c[dir] = c(u64::from(i), 1);
                (key, v)
            })
            .collect();
        let mut s = State::new();
        s.ingest(&sample);
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let list = s.peers(ip, None, 10);
            times.push(t.elapsed());
            assert_eq!(list.total, 1000);
        }
        times.sort();
        println!(
            "peers() at 1M pairs, 1,000 of them the host's: median {:?}, max {:?}",
            times[10], times[20]
        );
    }
}
