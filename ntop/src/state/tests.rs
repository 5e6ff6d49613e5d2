//! Unit tests of the aggregation core, on hand-built samples; expected values are worked out by
//! hand in the comments.

use std::{
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ntop_common::{
    counters::{Counter, HostCounters, HostKey, L4Class, RECEIVED, SENT},
    errors::{ERROR_KINDS, ErrorKind},
    proto::{EtherClass, IPV6_BASE, PROTO_SLOTS},
};

use super::*;
use crate::sample::{CaptureMode, InterfaceSample, Sample};

/// Wall time of monotonic time 0 in the test samples: 2023-11-14T22:13:20Z.
pub(crate) const T0: u64 = 1_700_000_000;

/// Builds a [`Sample`] field by field.
pub(crate) struct SampleBuilder(Sample);

/// A sample taken `ms` milliseconds after the collector started (wall time `T0` + `ms`).
pub(crate) fn sample(ms: u64) -> SampleBuilder {
    SampleBuilder(Sample {
        at: UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(ms),
        monotonic: Duration::from_millis(ms),
        interfaces: Vec::new(),
        hosts: Vec::new(),
        host_capacity: 1024,
        pairs: Vec::new(),
        pairs_read: true,
        pair_capacity: 1024,
        created: None,
        errors: [0; ERROR_KINDS as usize],
        epoch: crate::sample::Epoch::default(),
        poll_duration: Duration::from_micros(1500),
    })
}

/// The host-key form of an address literal.
pub(crate) fn addr(ip: &str) -> [u8; 16] {
    key_addr(ip.parse().unwrap())
}

impl SampleBuilder {
    /// Adds an interface with all counters zero.
    pub(crate) fn iface(mut self, ifindex: u32, name: &str) -> Self {
        let zeros = || Box::new([Counter::default(); PROTO_SLOTS as usize]);
        self.0.interfaces.push(InterfaceSample {
            name: name.to_owned(),
            ifindex,
            mode: CaptureMode::XdpNative,
            proto: [zeros(), zeros()],
            other_hosts: HostCounters::default(),
        });
        self
    }

    /// Sets an interface's capture mode.
    pub(crate) fn mode(mut self, ifindex: u32, mode: CaptureMode) -> Self {
        self.iface_mut(ifindex).mode = mode;
        self
    }

    fn iface_mut(&mut self, ifindex: u32) -> &mut InterfaceSample {
        self.0
            .interfaces
            .iter_mut()
            .find(|i| i.ifindex == ifindex)
            .expect("add the interface first")
    }

    /// Sets a protocol slot's raw counter; `dir` 0 is rx, 1 tx.
    pub(crate) fn proto(
        mut self,
        ifindex: u32,
        dir: usize,
        slot: u32,
        bytes: u64,
        packets: u64,
    ) -> Self {
        self.iface_mut(ifindex).proto[dir][slot as usize] = Counter { bytes, packets };
        self
    }

    /// Sets one "other hosts" raw counter.
    pub(crate) fn other(
        mut self,
        ifindex: u32,
        dir: usize,
        class: L4Class,
        bytes: u64,
        packets: u64,
    ) -> Self {
        self.iface_mut(ifindex).other_hosts.c[dir][class as usize] = Counter { bytes, packets };
        self
    }

    /// Sets one raw counter of a host entry, adding the entry if needed.
    pub(crate) fn host(
        mut self,
        ip: &str,
        ifindex: u32,
        dir: usize,
        class: L4Class,
        bytes: u64,
        packets: u64,
    ) -> Self {
        let key = HostKey {
            addr: addr(ip),
            ifindex,
        };
        let i = if let Some(i) = self.0.hosts.iter().position(|(k, _)| *k == key) {
            i
        } else {
            self.0.hosts.push((key, HostCounters::default()));
            self.0.hosts.len() - 1
        };
        self.0.hosts[i].1.c[dir][class as usize] = Counter { bytes, packets };
        self
    }

    pub(crate) fn error(mut self, kind: ErrorKind, n: u64) -> Self {
        self.0.errors[kind as usize] = n;
        self
    }

    /// Marks the sample as read from the maps with kernel id `map_id` (default: epoch zero).
    pub(crate) fn epoch(mut self, map_id: u32) -> Self {
        self.0.epoch = crate::sample::Epoch {
            boot: [7; 16],
            map_id,
        };
        self
    }

    /// Adds `bytes` and `packets` from `src` to `dst` on `ifindex` to the pair entries.
    pub(crate) fn pair(
        mut self,
        src: &str,
        dst: &str,
        ifindex: u32,
        bytes: u64,
        packets: u64,
    ) -> Self {
        let (key, dir) = ntop_common::counters::PairKey::of(addr(src), addr(dst), ifindex);
        if !self.0.pairs.iter().any(|(k, _)| *k == key) {
            self.0
                .pairs
                .push((key, ntop_common::counters::PairCounters::default()));
        }
        let entry = self
            .0
            .pairs
            .iter_mut()
            .find_map(|(k, v)| (*k == key).then_some(v))
            .expect("just added");
        entry.c[dir].bytes += bytes;
        entry.c[dir].packets += packets;
        self
    }

    /// Sets when the maps were created.
    pub(crate) fn created(mut self, at: SystemTime) -> Self {
        self.0.created = Some(at);
        self
    }

    /// Sets the host map's capacity (and the pair map's, which the daemon sizes alike).
    pub(crate) fn capacity(mut self, capacity: u32) -> Self {
        self.0.host_capacity = capacity;
        self.0.pair_capacity = capacity;
        self
    }

    pub(crate) fn build(self) -> Sample {
        self.0
    }
}

fn t(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0) + Duration::from_millis(ms)
}

fn traffic(bytes: u64, packets: u64, bytes_per_sec: f64, packets_per_sec: f64) -> Traffic {
    Traffic {
        bytes,
        packets,
        bytes_per_sec,
        packets_per_sec,
    }
}

const TCP4: u32 = 6;
const UDP4: u32 = 17;
const TCP6: u32 = IPV6_BASE + 6;
const ARP: u32 = 512;

fn iface<'a>(s: &'a State, name: &str) -> InterfaceView<'a> {
    s.interface(name).expect("interface exists")
}

#[test]
fn empty_state() {
    let s = State::new();
    assert_eq!(s.polled_at(), None);
    assert_eq!(s.poll_duration(), None);
    assert_eq!(s.interfaces().count(), 0);
    assert_eq!(s.host_count(), 0);
    assert_eq!(s.hosts(&HostQuery::default()).total, 0);
    assert!(s.errors().all(|(_, n)| n == 0));
    assert_eq!(s.errors().count(), ERROR_KINDS as usize);
}

#[test]
fn interface_totals_and_rates() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 1000, 10)
            .proto(5, 0, UDP4, 500, 5)
            .proto(5, 0, ARP, 60, 1)
            .proto(5, 1, TCP6, 200, 2)
            .build(),
    );
    // rx = 1000 + 500 + 60 bytes, 10 + 5 + 1 packets; first sample: no rates.
    let v = iface(&s, "veth0");
    assert_eq!((v.ifindex, v.mode), (5, CaptureMode::XdpNative));
    assert_eq!(v.rx, traffic(1560, 16, 0.0, 0.0));
    assert_eq!(v.tx, traffic(200, 2, 0.0, 0.0));
    assert_eq!(s.polled_at(), Some(t(0)));
    assert_eq!(s.poll_duration(), Some(Duration::from_micros(1500)));

    s.ingest(
        &sample(2000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 3000, 30)
            .proto(5, 0, UDP4, 500, 5)
            .proto(5, 0, ARP, 120, 2)
            .proto(5, 1, TCP6, 200, 2)
            .build(),
    );
    // rx = 3620 bytes, 37 packets; +2060 bytes, +21 packets in 2 s.
    let v = iface(&s, "veth0");
    assert_eq!(v.rx, traffic(3620, 37, 1030.0, 10.5));
    assert_eq!(v.tx, traffic(200, 2, 0.0, 0.0));
    assert_eq!(s.polled_at(), Some(t(2000)));

    // 250 ms later, rx grows by 100 bytes and 1 packet: 400 B/s, 4 packets/s.
    s.ingest(
        &sample(2250)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 3100, 31)
            .proto(5, 0, UDP4, 500, 5)
            .proto(5, 0, ARP, 120, 2)
            .proto(5, 1, TCP6, 200, 2)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(3720, 38, 400.0, 4.0));
}

#[test]
fn protocols_only_with_traffic() {
    let mut s = State::new();
    let base = |ms, tcp_bytes, tcp_packets| {
        sample(ms)
            .iface(5, "veth0")
            .iface(7, "veth1")
            .proto(5, 0, TCP4, tcp_bytes, tcp_packets)
            .proto(5, 1, TCP6, 300, 3)
            .proto(5, 0, 253, 64, 1)
            .proto(5, 1, EtherClass::Lldp.slot(), 90, 1)
            .proto(7, 0, UDP4, 10, 1)
            .build()
    };
    s.ingest(&base(0, 1000, 10));
    s.ingest(&base(1000, 4000, 13));

    let all = s.protocols(None);
    let summary: Vec<_> = all
        .iter()
        .map(|p| (p.interface, p.slot, p.name.as_ref(), p.family, p.number))
        .collect();
    assert_eq!(
        summary,
        [
            ("veth0", 6, "tcp", Some(Family::Ipv4), Some(6)),
            ("veth0", 253, "ip-253", Some(Family::Ipv4), Some(253)),
            ("veth0", 262, "tcp", Some(Family::Ipv6), Some(6)),
            ("veth0", 514, "lldp", None, None),
            ("veth1", 17, "udp", Some(Family::Ipv4), Some(17)),
        ]
    );
    // IPv4 TCP grew by 3000 bytes and 3 packets in 1 s.
    assert_eq!(all[0].rx, traffic(4000, 13, 3000.0, 3.0));
    assert_eq!(all[0].tx, traffic(0, 0, 0.0, 0.0));
    assert_eq!(all[2].tx, traffic(300, 3, 0.0, 0.0));

    let only = s.protocols(Some(7));
    assert_eq!(only.len(), 1);
    assert_eq!((only[0].ifindex, only[0].rx.bytes), (7, 10));
}

#[test]
fn interface_counter_reset() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 1000, 10)
            .proto(5, 0, UDP4, 500, 5)
            .build(),
    );
    // The maps were recreated: TCP restarts at 100/1, UDP at 0. Totals go on from 1500/15;
    // the increase is the new raw values, 100 bytes and 1 packet in 1 s.
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 100, 1)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(1600, 16, 100.0, 1.0));
    // Growth after the reset: +300 bytes, +3 packets.
    s.ingest(
        &sample(2000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 400, 4)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(1900, 19, 300.0, 3.0));
    let tcp = &s.protocols(None)[0];
    assert_eq!(tcp.rx, traffic(1400, 14, 300.0, 3.0));
    let udp = &s.protocols(None)[1];
    assert_eq!(udp.rx, traffic(500, 5, 0.0, 0.0));
}

#[test]
fn reset_seen_in_one_direction_restarts_both() {
    // Both directions live in one map: tx going backwards means rx restarted too, so rx's
    // growth from 400/4 to 500/5 is 500/5 new, not 100/1.
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 400, 4)
            .proto(5, 1, UDP4, 100, 1)
            .build(),
    );
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 500, 5)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(900, 9, 500.0, 5.0));
    assert_eq!(iface(&s, "veth0").tx, traffic(100, 1, 0.0, 0.0));
}

#[test]
fn other_hosts_and_errors_with_resets() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .other(5, SENT, L4Class::Tcp, 700, 7)
            .other(5, SENT, L4Class::Udp, 300, 3)
            .other(5, RECEIVED, L4Class::Other, 50, 1)
            .error(ErrorKind::HostMapFull, 11)
            .error(ErrorKind::TruncatedL4, 2)
            .capacity(4096)
            .build(),
    );
    let v = iface(&s, "veth0");
    assert_eq!(
        v.other_sent,
        Counter {
            bytes: 1000,
            packets: 10
        }
    );
    assert_eq!(
        v.other_received,
        Counter {
            bytes: 50,
            packets: 1
        }
    );
    let errors: Vec<_> = s.errors().filter(|(_, n)| *n != 0).collect();
    assert_eq!(errors, [("truncated_l4", 2), ("host_map_full", 11)]);
    assert_eq!(
        s.host_table(),
        TableFill {
            capacity: 4096,
            used: 0
        }
    );

    // Reset of both: other hosts' TCP restarts at 10/1, the errors at 1 and 0.
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .other(5, SENT, L4Class::Tcp, 10, 1)
            .error(ErrorKind::HostMapFull, 1)
            .build(),
    );
    let v = iface(&s, "veth0");
    assert_eq!(
        v.other_sent,
        Counter {
            bytes: 1010,
            packets: 11
        }
    );
    assert_eq!(
        v.other_received,
        Counter {
            bytes: 50,
            packets: 1
        }
    );
    let errors: Vec<_> = s.errors().filter(|(_, n)| *n != 0).collect();
    assert_eq!(errors, [("truncated_l4", 2), ("host_map_full", 12)]);
}

#[test]
fn host_totals_rates_and_seen_times() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 1000, 10)
            .host("198.18.0.1", 5, SENT, L4Class::Udp, 200, 2)
            .host("198.18.0.1", 5, RECEIVED, L4Class::Icmp, 84, 1)
            .build(),
    );
    let h = &s.host_entries("198.18.0.1".parse().unwrap())[0];
    assert_eq!(h.ip.to_string(), "198.18.0.1");
    assert_eq!((h.ifindex, h.interface.as_ref()), (5, "veth0"));
    assert_eq!(h.sent, traffic(1200, 12, 0.0, 0.0));
    assert_eq!(h.received, traffic(84, 1, 0.0, 0.0));
    assert_eq!((h.first_seen, h.last_seen), (t(0), t(0)));
    assert_eq!(iface(&s, "veth0").hosts, 1);

    // 500 ms later: TCP sent +500 bytes/+5 packets → 1000 B/s, 10 packets/s.
    s.ingest(
        &sample(500)
            .iface(5, "veth0")
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 1500, 15)
            .host("198.18.0.1", 5, SENT, L4Class::Udp, 200, 2)
            .host("198.18.0.1", 5, RECEIVED, L4Class::Icmp, 84, 1)
            .build(),
    );
    let h = &s.host_entries("198.18.0.1".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1700, 17, 1000.0, 10.0));
    assert_eq!(h.received, traffic(84, 1, 0.0, 0.0));
    assert_eq!(
        h.classes.c[SENT][L4Class::Tcp as usize],
        Counter {
            bytes: 1500,
            packets: 15
        }
    );
    assert_eq!(
        h.classes.c[SENT][L4Class::Udp as usize],
        Counter {
            bytes: 200,
            packets: 2
        }
    );
    assert_eq!(
        h.classes.c[RECEIVED][L4Class::Icmp as usize],
        Counter {
            bytes: 84,
            packets: 1
        }
    );
    assert_eq!((h.first_seen, h.last_seen), (t(0), t(500)));

    // Unchanged counters: rates 0, last_seen stays.
    s.ingest(
        &sample(1500)
            .iface(5, "veth0")
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 1500, 15)
            .host("198.18.0.1", 5, SENT, L4Class::Udp, 200, 2)
            .host("198.18.0.1", 5, RECEIVED, L4Class::Icmp, 84, 1)
            .build(),
    );
    let h = &s.host_entries("198.18.0.1".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1700, 17, 0.0, 0.0));
    assert_eq!((h.first_seen, h.last_seen), (t(0), t(500)));

    // Gone from the map: kept with its totals, rate 0.
    s.ingest(&sample(2500).iface(5, "veth0").build());
    let h = &s.host_entries("198.18.0.1".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1700, 17, 0.0, 0.0));
    assert_eq!(h.received, traffic(84, 1, 0.0, 0.0));
    assert_eq!((h.first_seen, h.last_seen), (t(0), t(500)));
    assert_eq!(s.host_count(), 1);
    assert_eq!(s.host_table().used, 0);
}

#[test]
fn host_appearing_later_counts_from_zero() {
    let mut s = State::new();
    s.ingest(&sample(0).iface(5, "veth0").build());
    s.ingest(
        &sample(2000)
            .iface(5, "veth0")
            .host("2001:db8::7", 5, RECEIVED, L4Class::Icmpv6, 300, 3)
            .build(),
    );
    let h = &s.host_entries("2001:db8::7".parse().unwrap())[0];
    assert_eq!(h.received, traffic(300, 3, 150.0, 1.5));
    assert_eq!((h.first_seen, h.last_seen), (t(2000), t(2000)));
}

#[test]
fn host_counter_reset() {
    let mut s = State::new();
    let one = |ms, tcp: (u64, u64), udp: (u64, u64)| {
        sample(ms)
            .iface(5, "veth0")
            .host("198.18.0.9", 5, SENT, L4Class::Tcp, tcp.0, tcp.1)
            .host("198.18.0.9", 5, SENT, L4Class::Udp, udp.0, udp.1)
            .build()
    };
    s.ingest(&one(0, (1000, 10), (0, 0)));
    // Entry recreated: TCP 100/1 (backwards); UDP 50/1 is new traffic even though it grew.
    s.ingest(&one(1000, (100, 1), (50, 1)));
    let h = &s.host_entries("198.18.0.9".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1150, 12, 150.0, 2.0));
    assert_eq!(
        h.classes.c[SENT][L4Class::Tcp as usize],
        Counter {
            bytes: 1100,
            packets: 11
        }
    );
    assert_eq!(
        h.classes.c[SENT][L4Class::Udp as usize],
        Counter {
            bytes: 50,
            packets: 1
        }
    );
    assert_eq!(h.last_seen, t(1000));
    // Then it grows normally: +200 bytes TCP, +2 packets.
    s.ingest(&one(2000, (300, 3), (50, 1)));
    let h = &s.host_entries("198.18.0.9".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1350, 14, 200.0, 2.0));
    // Recreated again with nothing yet: no negative rate, totals stay, last_seen stays.
    s.ingest(&one(3000, (0, 0), (0, 0)));
    let h = &s.host_entries("198.18.0.9".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1350, 14, 0.0, 0.0));
    assert_eq!(h.last_seen, t(2000));
    s.ingest(&one(4000, (40, 1), (0, 0)));
    let h = &s.host_entries("198.18.0.9".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(1390, 15, 40.0, 1.0));
}

#[test]
fn hosts_listed_in_another_order() {
    // The ingest guesses each host's index from its position last time; a changed order must
    // still credit every host with its own counters.
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, 100, 1)
            .host("192.0.2.2", 5, SENT, L4Class::Tcp, 200, 2)
            .host("192.0.2.3", 5, SENT, L4Class::Tcp, 300, 3)
            .build(),
    );
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .host("192.0.2.3", 5, SENT, L4Class::Tcp, 330, 4)
            .host("192.0.2.4", 5, SENT, L4Class::Tcp, 5, 1)
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, 110, 2)
            .build(),
    );
    s.ingest(
        &sample(2000)
            .iface(5, "veth0")
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, 111, 3)
            .host("192.0.2.3", 5, SENT, L4Class::Tcp, 333, 5)
            .build(),
    );
    let sent = |ip: &str| s.host_entries(ip.parse().unwrap())[0].sent;
    assert_eq!(sent("192.0.2.1"), traffic(111, 3, 1.0, 1.0));
    assert_eq!(sent("192.0.2.2"), traffic(200, 2, 0.0, 0.0));
    assert_eq!(sent("192.0.2.3"), traffic(333, 5, 3.0, 1.0));
    assert_eq!(sent("192.0.2.4"), traffic(5, 1, 0.0, 0.0));
    assert_eq!(s.host_count(), 4);
    assert_eq!(iface(&s, "veth0").hosts, 4);
}

#[test]
fn host_listed_twice_in_one_sample() {
    let mut s = State::new();
    let twice = |ms, bytes| {
        let mut sample = sample(ms)
            .iface(5, "veth0")
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, bytes, 1)
            .build();
        sample.hosts.push(sample.hosts[0]);
        sample
    };
    s.ingest(&twice(0, 100));
    s.ingest(&twice(1000, 400));
    assert_eq!(s.host_count(), 1);
    assert_eq!(iface(&s, "veth0").hosts, 1);
    let h = &s.host_entries("192.0.2.1".parse().unwrap())[0];
    assert_eq!(h.sent, traffic(400, 1, 300.0, 0.0));
}

#[test]
fn zero_elapsed_means_zero_rate() {
    let mut s = State::new();
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 10, 1)
            .build(),
    );
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 20, 2)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(20, 2, 0.0, 0.0));
}

#[test]
fn interface_gone_keeps_totals_without_rate() {
    let mut s = State::new();
    s.ingest(&sample(0).iface(5, "veth0").proto(5, 0, TCP4, 10, 1).build());
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 20, 2)
            .build(),
    );
    assert_eq!(iface(&s, "veth0").rx, traffic(20, 2, 10.0, 1.0));
    s.ingest(&sample(2000).build());
    assert_eq!(iface(&s, "veth0").rx, traffic(20, 2, 0.0, 0.0));
}

#[test]
fn lookup_by_both_address_forms_and_interfaces() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(7, "veth1")
            .iface(5, "veth0")
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 10, 1)
            .host("198.18.0.1", 7, SENT, L4Class::Tcp, 20, 2)
            .host("198.18.0.1", 9, SENT, L4Class::Tcp, 30, 3)
            .host("198.18.0.2", 5, SENT, L4Class::Tcp, 40, 4)
            .build(),
    );
    for form in ["198.18.0.1", "::ffff:198.18.0.1", "::ffff:c612:1"] {
        let entries = s.host_entries(form.parse().unwrap());
        let got: Vec<_> = entries
            .iter()
            .map(|h| (h.ip.to_string(), h.interface.to_string(), h.sent.bytes))
            .collect();
        // Interface order (veth1 was listed first), then hosts on unknown interfaces.
        assert_eq!(
            got,
            [
                ("198.18.0.1".to_owned(), "veth1".to_owned(), 20),
                ("198.18.0.1".to_owned(), "veth0".to_owned(), 10),
                ("198.18.0.1".to_owned(), "ifindex-9".to_owned(), 30),
            ],
            "{form}"
        );
    }
    assert!(s.host_entries("198.18.0.3".parse().unwrap()).is_empty());
    // `::c612:1` is IPv4-compatible, not IPv4-mapped: a different address.
    assert!(s.host_entries("::c612:1".parse().unwrap()).is_empty());
    assert_eq!(iface(&s, "veth0").hosts, 2);
    assert_eq!(iface(&s, "veth1").hosts, 1);

    // An interface that shows up after its hosts counts them.
    s.ingest(&sample(1000).iface(9, "veth9").build());
    assert_eq!(iface(&s, "veth9").hosts, 1);
    assert_eq!(
        s.host_entries("198.18.0.1".parse().unwrap())[2].interface,
        "veth9"
    );
}

/// Six hosts with distinct values for every key (worked out in the table below).
///
/// | host       | if | sent B/p | recv B/p | first | last  | +sent B at 1 s |
/// |------------|----|----------|----------|-------|-------|----------------|
/// | 192.0.2.1   | 5  | 100/1    | 900/9    | 0     | 0     | 0              |
/// | 192.0.2.2   | 5  | 500/50   | 100/1    | 0     | 1000  | 300            |
/// | 192.0.2.3   | 7  | 1040/5   | 2000/2   | 0     | 1000  | 1000           |
/// | 2001:db8::1| 5  | 700/7    | 0/0      | 1000  | 1000  | 700 (new)      |
/// | 192.0.2.10  | 7  | 0/0      | 10/20    | 1000  | 1000  | 0 (+10 recv)   |
/// | ::1        | 5  | 1/1      | 0/0      | 0     | 0     | 0 (gone at 1 s)|
fn six_hosts() -> State {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .iface(7, "veth1")
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, 100, 1)
            .host("192.0.2.1", 5, RECEIVED, L4Class::Tcp, 900, 9)
            .host("192.0.2.2", 5, SENT, L4Class::Udp, 200, 20)
            .host("192.0.2.2", 5, RECEIVED, L4Class::Udp, 100, 1)
            .host("192.0.2.3", 7, SENT, L4Class::Tcp, 40, 4)
            .host("192.0.2.3", 7, RECEIVED, L4Class::Tcp, 1000, 1)
            .host("::1", 5, SENT, L4Class::Other, 1, 1)
            .build(),
    );
    s.ingest(
        &sample(1000)
            .iface(5, "veth0")
            .iface(7, "veth1")
            .host("192.0.2.1", 5, SENT, L4Class::Tcp, 100, 1)
            .host("192.0.2.1", 5, RECEIVED, L4Class::Tcp, 900, 9)
            .host("192.0.2.2", 5, SENT, L4Class::Udp, 500, 50)
            .host("192.0.2.2", 5, RECEIVED, L4Class::Udp, 100, 1)
            .host("192.0.2.3", 7, SENT, L4Class::Tcp, 50, 5)
            .host("192.0.2.3", 7, SENT, L4Class::Udp, 990, 0)
            .host("192.0.2.3", 7, RECEIVED, L4Class::Tcp, 2000, 2)
            .host("2001:db8::1", 5, SENT, L4Class::Tcp, 700, 7)
            .host("192.0.2.10", 7, RECEIVED, L4Class::Icmp, 10, 20)
            .build(),
    );
    s
}

fn listed(s: &State, q: &HostQuery) -> (usize, Vec<String>) {
    let page = s.hosts(q);
    (
        page.total,
        page.hosts
            .iter()
            .map(|h| format!("{}@{}", h.ip, h.ifindex))
            .collect(),
    )
}

fn by(sort: SortKey, order: Order) -> HostQuery {
    HostQuery {
        sort,
        order,
        ..HostQuery::default()
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one table of hand-worked cases")]
fn sorting() {
    let s = six_hosts();
    // 192.0.2.3 sent 50 + 990 (UDP) = 1040 bytes at 1 s.
    let cases: [(SortKey, Order, [&str; 6]); 12] = [
        // total bytes: .3 3040, .1 1000, 2001:db8::1 700, .2 600, .10 10, ::1 1
        (
            SortKey::TotalBytes,
            Order::Desc,
            [
                "192.0.2.3@7",
                "192.0.2.1@5",
                "2001:db8::1@5",
                "192.0.2.2@5",
                "192.0.2.10@7",
                "::1@5",
            ],
        ),
        (
            SortKey::TotalBytes,
            Order::Asc,
            [
                "::1@5",
                "192.0.2.10@7",
                "192.0.2.2@5",
                "2001:db8::1@5",
                "192.0.2.1@5",
                "192.0.2.3@7",
            ],
        ),
        // sent bytes: .3 1040, 2001:db8::1 700, .2 500, .1 100, ::1 1, .10 0
        (
            SortKey::SentBytes,
            Order::Desc,
            [
                "192.0.2.3@7",
                "2001:db8::1@5",
                "192.0.2.2@5",
                "192.0.2.1@5",
                "::1@5",
                "192.0.2.10@7",
            ],
        ),
        // received bytes: .3 2000, .1 900, .2 100, .10 10, then 0: ::1 and 2001:db8::1 by address
        (
            SortKey::ReceivedBytes,
            Order::Desc,
            [
                "192.0.2.3@7",
                "192.0.2.1@5",
                "192.0.2.2@5",
                "192.0.2.10@7",
                "::1@5",
                "2001:db8::1@5",
            ],
        ),
        // total packets: .2 51, .10 20, .1 10, .3 7, 2001:db8::1 7, ::1 1 (tie .3 / 2001:db8::1 by
        // address: ::ffff:192.0.2.3 sorts before 2001:db8::1)
        (
            SortKey::TotalPackets,
            Order::Desc,
            [
                "192.0.2.2@5",
                "192.0.2.10@7",
                "192.0.2.1@5",
                "192.0.2.3@7",
                "2001:db8::1@5",
                "::1@5",
            ],
        ),
        // sent packets: .2 50, 2001:db8::1 7, .3 5, then 1: ::1, .1; then .10 0
        (
            SortKey::SentPackets,
            Order::Desc,
            [
                "192.0.2.2@5",
                "2001:db8::1@5",
                "192.0.2.3@7",
                "::1@5",
                "192.0.2.1@5",
                "192.0.2.10@7",
            ],
        ),
        // received packets: .10 20, .1 9, .3 2, .2 1, then 0: ::1, 2001:db8::1
        (
            SortKey::ReceivedPackets,
            Order::Desc,
            [
                "192.0.2.10@7",
                "192.0.2.1@5",
                "192.0.2.3@7",
                "192.0.2.2@5",
                "::1@5",
                "2001:db8::1@5",
            ],
        ),
        // throughput at 1 s: .3 990+10+1000 = 2000, 2001:db8::1 700, .2 300, .10 10, then 0:
        // ::1 (gone), .1
        (
            SortKey::Throughput,
            Order::Desc,
            [
                "192.0.2.3@7",
                "2001:db8::1@5",
                "192.0.2.2@5",
                "192.0.2.10@7",
                "::1@5",
                "192.0.2.1@5",
            ],
        ),
        // first seen, newest first: 1000: .10, 2001:db8::1 (by address); then 0: ::1, .1, .2, .3
        (
            SortKey::FirstSeen,
            Order::Desc,
            [
                "192.0.2.10@7",
                "2001:db8::1@5",
                "::1@5",
                "192.0.2.1@5",
                "192.0.2.2@5",
                "192.0.2.3@7",
            ],
        ),
        // last seen, oldest first: 0: ::1, .1; then 1000: .2, .3, .10, 2001:db8::1
        (
            SortKey::LastSeen,
            Order::Asc,
            [
                "::1@5",
                "192.0.2.1@5",
                "192.0.2.2@5",
                "192.0.2.3@7",
                "192.0.2.10@7",
                "2001:db8::1@5",
            ],
        ),
        // by address as IPv6: ::1 < ::ffff:10.0.0.x < 2001:db8::1
        (
            SortKey::Ip,
            Order::Asc,
            [
                "::1@5",
                "192.0.2.1@5",
                "192.0.2.2@5",
                "192.0.2.3@7",
                "192.0.2.10@7",
                "2001:db8::1@5",
            ],
        ),
        (
            SortKey::Ip,
            Order::Desc,
            [
                "2001:db8::1@5",
                "192.0.2.10@7",
                "192.0.2.3@7",
                "192.0.2.2@5",
                "192.0.2.1@5",
                "::1@5",
            ],
        ),
    ];
    for (sort, order, want) in cases {
        assert_eq!(
            listed(&s, &by(sort, order)),
            (6, want.map(String::from).to_vec()),
            "{sort:?} {order:?}"
        );
    }
}

#[test]
fn paging_and_filtering() {
    let s = six_hosts();
    let page = |offset, limit, ifindex| HostQuery {
        offset,
        limit,
        ifindex,
        ..HostQuery::default()
    };
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    // Full order by total bytes, desc: .3, .1, 2001:db8::1, .2, .10, ::1.
    assert_eq!(
        listed(&s, &page(0, 2, None)),
        (6, names(&["192.0.2.3@7", "192.0.2.1@5"]))
    );
    assert_eq!(
        listed(&s, &page(2, 3, None)),
        (6, names(&["2001:db8::1@5", "192.0.2.2@5", "192.0.2.10@7"]))
    );
    assert_eq!(listed(&s, &page(5, 100, None)), (6, names(&["::1@5"])));
    assert_eq!(listed(&s, &page(6, 100, None)), (6, names(&[])));
    assert_eq!(listed(&s, &page(100, 100, None)), (6, names(&[])));
    assert_eq!(listed(&s, &page(0, 0, None)), (6, names(&[])));
    assert_eq!(
        listed(&s, &page(usize::MAX, usize::MAX, None)),
        (6, names(&[]))
    );
    // veth1 (ifindex 7) has .3 and .10.
    assert_eq!(
        listed(&s, &page(0, 100, Some(7))),
        (2, names(&["192.0.2.3@7", "192.0.2.10@7"]))
    );
    assert_eq!(
        listed(&s, &page(1, 1, Some(7))),
        (2, names(&["192.0.2.10@7"]))
    );
    assert_eq!(listed(&s, &page(0, 100, Some(99))), (0, names(&[])));
}

#[test]
fn paging_agrees_with_a_full_sort() {
    // 1000 hosts whose totals are (i * 7919) % 1000: a permutation of 0..1000.
    let mut b = sample(0).iface(5, "veth0");
    for i in 0_u64..1000 {
        let ip = format!("10.0.{}.{}", i / 256, i % 256);
        b = b.host(&ip, 5, SENT, L4Class::Tcp, (i * 7919) % 1000, 1);
    }
    let mut s = State::new();
    s.ingest(&b.build());
    for (offset, limit) in [(0, 10), (13, 17), (990, 10), (995, 100), (500, 1)] {
        let page = s.hosts(&HostQuery {
            offset,
            limit,
            ..HostQuery::default()
        });
        let got: Vec<u64> = page.hosts.iter().map(|h| h.sent.bytes).collect();
        let want: Vec<u64> = (0..1000_u64).rev().skip(offset).take(limit).collect();
        assert_eq!(got, want, "offset {offset} limit {limit}");
    }
}

#[test]
fn many_hosts_ingest() {
    // 100k hosts, twice: the second pass must find them all (no duplicates).
    let build = |ms, bytes| {
        let mut sample = sample(ms).iface(5, "veth0").build();
        sample.hosts = (0_u32..100_000)
            .map(|i| {
                let mut addr = [0_u8; 16];
                addr[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                addr[12..].copy_from_slice(&i.to_be_bytes());
                let mut c = HostCounters::default();
                c.c[SENT][0] = Counter { bytes, packets: 1 };
                (HostKey { addr, ifindex: 5 }, c)
            })
            .collect();
        sample
    };
    let mut s = State::new();
    s.ingest(&build(0, 100));
    s.ingest(&build(1000, 150));
    assert_eq!(s.host_count(), 100_000);
    assert_eq!(iface(&s, "veth0").hosts, 100_000);
    let top = s.hosts(&HostQuery {
        sort: SortKey::Throughput,
        limit: 1,
        ..HostQuery::default()
    });
    assert_eq!(top.total, 100_000);
    assert_eq!(top.hosts[0].sent, traffic(150, 1, 50.0, 0.0));
    assert_eq!(top.hosts[0].ip, "2001:db8::".parse::<IpAddr>().unwrap());
}

#[test]
fn sort_key_and_order_names() {
    for key in SortKey::ALL {
        assert_eq!(SortKey::from_name(key.as_str()), Some(key));
    }
    assert_eq!(SortKey::from_name("bytes"), None);
    assert_eq!(Order::from_name("asc"), Some(Order::Asc));
    assert_eq!(Order::from_name("DESC"), None);
    assert_eq!(SortKey::Ip.default_order(), Order::Asc);
    assert_eq!(SortKey::Throughput.default_order(), Order::Desc);
}

/// Prints how long steady-state ingest and a sorted page take at 100k and 1M hosts:
/// `cargo test --release -p ntop --lib state::tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing only; run in release with --ignored --nocapture"]
fn timing() {
    use std::time::Instant;
    for n in [100_000_u32, 1_000_000] {
        let build = |ms, bytes| {
            let mut sample = sample(ms).iface(5, "veth0").build();
            sample.hosts = (0..n)
                .map(|i| {
                    let mut c = HostCounters::default();
                    c.c[SENT][0] = Counter {
                        bytes: bytes + u64::from(i.wrapping_mul(2_654_435_761) >> 8),
                        packets: 1,
                    };
                    (
                        HostKey {
                            addr: key_addr(IpAddr::from(i.to_be_bytes())),
                            ifindex: 5,
                        },
                        c,
                    )
                })
                .collect();
            sample
        };
        let mut s = State::new();
        let started = Instant::now();
        s.ingest(&build(0, 100));
        let first = started.elapsed();
        let sample = build(1000, 200);
        let started = Instant::now();
        s.ingest(&sample);
        let steady = started.elapsed();
        let started = Instant::now();
        let page = s.hosts(&HostQuery {
            offset: 100,
            limit: 100,
            ..HostQuery::default()
        });
        let query = started.elapsed();
        assert_eq!(page.hosts.len(), 100);
        let mut sample = build(2000, 300);
        sample.hosts.reverse();
        let started = Instant::now();
        s.ingest(&sample);
        let reordered = started.elapsed();
        println!(
            "{n} hosts: first ingest {first:?}, steady ingest {steady:?} \
             ({reordered:?} in another order), page {query:?}"
        );
    }
}
