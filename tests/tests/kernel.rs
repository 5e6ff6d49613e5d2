//! The kernel programs through `BPF_PROG_TEST_RUN`: hand-built frames in, map contents out,
//! compared with counts worked out by hand from the frames' lengths. Needs root (loads BPF).
//!
//! The programs are loaded for `lo` (ifindex 1) without being attached: a test run with
//! `ingress_ifindex`/`ifindex` 1 counts into `lo`'s slot. No packet is sent anywhere.

use aya::programs::{SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp};
use ntop::{
    ebpf::{Kernel, ModeRequest, PROG_TC_EGRESS, PROG_TC_INGRESS, PROG_XDP},
    sample::Sample,
};
use ntop_common::{
    counters::{A_TO_B, B_TO_A, Counter, HostCounters, L4Class, PairCounters, RECEIVED, SENT},
    errors::ErrorKind,
    parse::ipv4_mapped,
    proto::{EtherClass, IPV6_BASE},
    testing::{
        IPV4_DST, IPV4_SRC, IPV6_DST, IPV6_SRC, eth, frame, ipv4, ipv4_between, ipv6, tcp, udp,
    },
};
use ntop_tests::testrun::{LO, program, skb_ctx, xdp_ctx};

const XDP_PASS: u32 = 2;
/// `TCX_NEXT` (-1) as the test run reports it.
const TCX_NEXT: u32 = u32::MAX;
const RX: usize = 0;
const TX: usize = 1;

/// The programs loaded for `lo`, not attached (needs root).
fn load(mode: ModeRequest, max_hosts: u32) -> Kernel {
    ntop_tests::testrun::load("lo", mode, max_hosts)
}

/// One test run of `prog` on `data` with context `ctx`; asserts that the frame comes out
/// unchanged and returns the program's verdict.
fn run_unchanged<P>(prog: &P, data: &[u8], ctx: &[u8]) -> u32
where
    P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = TestRunResult>,
{
    let mut out = vec![0u8; data.len()];
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(data),
            data_out: Some(&mut out),
            ctx_in: Some(ctx),
            ..TestRunOptions::default()
        })
        .expect("test run");
    assert_eq!(out, data, "a monitor never changes a packet");
    r.return_value
}

/// Runs the XDP program on `data` as received on `lo`, the whole frame in the linear part.
fn run_xdp(k: &mut Kernel, data: &[u8]) {
    let ctx = xdp_ctx(LO, data.len());
    let verdict = run_unchanged(program::<Xdp>(k, PROG_XDP), data, &ctx);
    assert_eq!(verdict, XDP_PASS, "a monitor passes every packet");
}

/// Runs the TC `program` on `data` on `lo` with the given `wire_len`, `gso_segs` and `gso_size`.
fn run_tc(k: &mut Kernel, program_name: &str, data: &[u8], wire_len: u32, segs: u32, size: u32) {
    let ctx = skb_ctx(LO, wire_len, segs, size);
    let verdict = run_unchanged(program::<SchedClassifier>(k, program_name), data, &ctx);
    assert_eq!(verdict, TCX_NEXT, "TCX programs hand every packet on");
}

fn proto(s: &Sample, dir: usize, slot: u32) -> Counter {
    s.interfaces[0].proto[dir][slot as usize]
}

fn host(s: &Sample, addr: [u8; 16]) -> HostCounters {
    s.hosts
        .iter()
        .find(|(k, _)| k.addr == addr && k.ifindex == LO)
        .map_or_else(|| panic!("host {addr:?} not in the map"), |&(_, v)| v)
}

/// The pair entry of `from` and `to` on `lo` (whichever order its key holds them in), and the
/// index of the `from → to` direction by the key's own definition (`c[A_TO_B]` counts `a → b`),
/// not by the `PairKey::of` the programs use.
fn pair(s: &Sample, from: [u8; 16], to: [u8; 16]) -> (PairCounters, usize) {
    let (key, found) = s
        .pairs
        .iter()
        .find(|(k, _)| k.ifindex == LO && ((k.a, k.b) == (from, to) || (k.a, k.b) == (to, from)))
        .map_or_else(
            || panic!("pair {from:?} {to:?} not in the map"),
            |&(k, v)| (k, v),
        );
    (found, if key.a == from { A_TO_B } else { B_TO_A })
}

fn c(bytes: u64, packets: u64) -> Counter {
    Counter { bytes, packets }
}

fn len(f: &[u8]) -> u64 {
    f.len() as u64
}

#[test]
fn xdp_counts_hosts_and_protocols_of_every_frame_kind() {
    let mut k = load(ModeRequest::Xdp, 64);
    // 14 + 4 + 4 (QinQ) + 20 + 20 = 62 bytes, TCP.
    let qinq = frame(&[
        &eth(0x0800, &[(0x88a8, 10), (0x8100, 20)]),
        &ipv4(6, 0, 0, &tcp(1, 2, 0)),
    ]);
    assert_eq!(qinq.len(), 62);
    // 14 + 28 (8 bytes of options) + 8 + 100 = 150 bytes, UDP, first fragment.
    let frag1 = frame(&[&eth(0x0800, &[]), &ipv4(17, 8, 0x2000, &udp(5, 6, 100))]);
    assert_eq!(frag1.len(), 150);
    // 14 + 20 + 64 = 98 bytes, UDP, a later fragment (no UDP header in it).
    let frag2 = frame(&[&eth(0x0800, &[]), &ipv4(17, 0, 13, &[0; 64])]);
    assert_eq!(frag2.len(), 98);
    // IPv6, hop-by-hop (8) then TCP: 14 + 40 + 8 + 20 = 82 bytes.
    let v6 = frame(&[
        &eth(0x86dd, &[]),
        &ipv6(0, &[6, 0, 0, 0, 0, 0, 0, 0], &tcp(3, 4, 0)),
    ]);
    assert_eq!(v6.len(), 82);
    // ARP: 14 + 28 = 42 bytes, no hosts.
    let arp = frame(&[&eth(0x0806, &[]), &[0; 28]]);
    // IPv4 EtherType with 10 bytes of header: malformed.
    let short = frame(&[&eth(0x0800, &[]), &[0x45; 10]]);
    for f in [&qinq, &frag1, &frag2, &v6, &arp, &arp, &short] {
        run_xdp(&mut k, f);
    }
    let s = k.read().unwrap();

    assert_eq!(proto(&s, RX, 6), c(62, 1));
    assert_eq!(proto(&s, RX, 17), c(150 + 98, 2));
    assert_eq!(proto(&s, RX, IPV6_BASE + 6), c(82, 1));
    assert_eq!(proto(&s, RX, EtherClass::Arp.slot()), c(84, 2));
    assert_eq!(proto(&s, RX, EtherClass::MalformedIpv4.slot()), c(24, 1));
    let rx_total: u64 = s.interfaces[0].proto[RX].iter().map(|c| c.bytes).sum();
    assert_eq!(rx_total, 62 + 150 + 98 + 82 + 84 + 24);
    assert!(
        s.interfaces[0].proto[TX]
            .iter()
            .all(|c| *c == Counter::default())
    );

    let src = host(&s, ipv4_mapped(IPV4_SRC));
    assert_eq!(src.c[SENT][L4Class::Tcp as usize], c(62, 1));
    assert_eq!(src.c[SENT][L4Class::Udp as usize], c(248, 2));
    assert_eq!(src.total(RECEIVED), c(0, 0));
    let dst = host(&s, ipv4_mapped(IPV4_DST));
    assert_eq!(dst.total(RECEIVED), c(62 + 248, 3));
    assert_eq!(host(&s, IPV6_SRC).c[SENT][L4Class::Tcp as usize], c(82, 1));
    assert_eq!(
        host(&s, IPV6_DST).c[RECEIVED][L4Class::Tcp as usize],
        c(82, 1)
    );
    assert_eq!(
        s.hosts.len(),
        4,
        "ARP and malformed frames belong to no host"
    );
    assert_eq!(s.errors[ErrorKind::TruncatedIpv4 as usize], 1);
}

#[test]
fn tc_egress_counts_gso_segments_as_wire_packets() {
    let mut k = load(ModeRequest::Xdp, 64);
    // A TSO super-packet: 14 + 20 + 20 headers and 3 × 1000 bytes of payload, which the NIC
    // sends as 3 frames of 1054 bytes: 3162 bytes on the wire. The kernel's qdisc_pkt_len_init
    // puts that into wire_len before the egress hook. (Test runs take at most about 3.5 KB.)
    let payload = vec![0u8; 3000];
    let mut t = tcp(80, 5000, 0);
    t.extend_from_slice(&payload);
    let f = frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &t)]);
    assert_eq!(f.len(), 3054);
    run_tc(&mut k, PROG_TC_EGRESS, &f, 3162, 3, 1000);
    // And one plain frame of 54 bytes.
    let plain = frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &tcp(80, 5000, 0))]);
    run_tc(&mut k, PROG_TC_EGRESS, &plain, 0, 0, 0);
    let s = k.read().unwrap();
    assert_eq!(proto(&s, TX, 6), c(3162 + 54, 4));
    assert_eq!(host(&s, ipv4_mapped(IPV4_SRC)).c[SENT][0], c(3216, 4));
    assert!(
        s.interfaces[0].proto[RX]
            .iter()
            .all(|c| *c == Counter::default())
    );
}

#[test]
fn tc_ingress_repeats_headers_of_gro_segments() {
    let mut k = load(ModeRequest::Tc, 64);
    // A GRO aggregate at ingress: wire_len is just len there. Headers 14 + 20 + 32 (TCP with
    // 12 bytes of options) = 66; 3 segments of 500 bytes: 3 × 566 = 1698 bytes on the wire.
    let mut t = tcp(443, 6000, 12);
    t.extend_from_slice(&[0u8; 1500]);
    let f = frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &t)]);
    assert_eq!(f.len(), 1566);
    run_tc(&mut k, PROG_TC_INGRESS, &f, 0, 3, 500);
    let s = k.read().unwrap();
    assert_eq!(proto(&s, RX, 6), c(1698, 3));
    assert_eq!(host(&s, ipv4_mapped(IPV4_DST)).c[RECEIVED][0], c(1698, 3));
}

#[test]
fn a_full_host_map_sends_new_hosts_to_other_and_loses_nothing() {
    // Room for 4 hosts: the destination and the first 3 sources. 6 more sources overflow.
    let mut k = load(ModeRequest::Xdp, 4);
    let mut sent_bytes = 0;
    for i in 1..=9u8 {
        let f = frame(&[
            &eth(0x0800, &[]),
            &ipv4_between(
                [198, 18, 1, i],
                IPV4_DST,
                17,
                0,
                0,
                &udp(1, 2, usize::from(i)),
            ),
        ]);
        sent_bytes += len(&f);
        run_xdp(&mut k, &f);
    }
    let s = k.read().unwrap();
    assert_eq!(s.hosts.len(), 4);
    let other = s.interfaces[0].other_hosts;
    // 14 + 20 + 8 + i bytes for i = 4..=9.
    assert_eq!(
        other.c[SENT][L4Class::Udp as usize],
        c(6 * 42 + (4..=9).sum::<u64>(), 6)
    );
    let hosts_sent: u64 = s.hosts.iter().map(|(_, v)| v.total(SENT).bytes).sum();
    let hosts_received: u64 = s.hosts.iter().map(|(_, v)| v.total(RECEIVED).bytes).sum();
    assert_eq!(hosts_sent + other.total(SENT).bytes, sent_bytes);
    assert_eq!(hosts_received + other.total(RECEIVED).bytes, sent_bytes);
    assert_eq!(proto(&s, RX, 17), c(sent_bytes, 9));
    assert_eq!(s.errors[ErrorKind::HostMapFull as usize], 6);
}

#[test]
fn reading_never_resets_counters() {
    let mut k = load(ModeRequest::Xdp, 64);
    let f = frame(&[&eth(0x0800, &[]), &ipv4(1, 0, 0, &[8, 0, 0, 0, 0, 0, 0, 0])]);
    run_xdp(&mut k, &f);
    let first = k.read().unwrap();
    let second = k.read().unwrap();
    assert_eq!(proto(&first, RX, 1), c(42, 1));
    assert_eq!(proto(&second, RX, 1), c(42, 1));
    run_xdp(&mut k, &f);
    assert_eq!(proto(&k.read().unwrap(), RX, 1), c(84, 2));
}

/// Every IP packet counts once for the pair of its addresses, in its direction, at XDP and at
/// TC egress alike; frames without addresses count for no pair.
#[test]
fn pairs_count_each_conversation_once_in_both_directions() {
    let mut k = load(ModeRequest::Xdp, 64);
    let (src, dst) = (IPV4_SRC, IPV4_DST);
    // a → b: 14 + 20 + 8 + 100 = 142 bytes, twice; b → a: 14 + 20 + 8 + 10 = 52 bytes.
    let there = frame(&[
        &eth(0x0800, &[]),
        &ipv4_between(src, dst, 17, 0, 0, &udp(1, 2, 100)),
    ]);
    let back = frame(&[
        &eth(0x0800, &[]),
        &ipv4_between(dst, src, 17, 0, 0, &udp(2, 1, 10)),
    ]);
    assert_eq!((there.len(), back.len()), (142, 52));
    run_xdp(&mut k, &there);
    run_xdp(&mut k, &there);
    run_xdp(&mut k, &back);
    // And b → a once more at egress, a TSO super-packet of 3 wire frames of 1054 bytes.
    let mut t = tcp(80, 5000, 0);
    t.extend_from_slice(&[0u8; 3000]);
    let tso = frame(&[&eth(0x0800, &[]), &ipv4_between(dst, src, 6, 0, 0, &t)]);
    run_tc(&mut k, PROG_TC_EGRESS, &tso, 3162, 3, 1000);
    // IPv6 between two other addresses: 14 + 40 + 20 = 74 bytes. ARP: no pair.
    let v6 = frame(&[&eth(0x86dd, &[]), &ipv6(6, &[], &tcp(3, 4, 0))]);
    assert_eq!(v6.len(), 74);
    run_xdp(&mut k, &v6);
    run_xdp(&mut k, &frame(&[&eth(0x0806, &[]), &[0; 28]]));
    let s = k.read().unwrap();

    assert_eq!(
        s.pairs.len(),
        2,
        "one entry per conversation: {:?}",
        s.pairs
    );
    let (v4_pair, dir) = pair(&s, ipv4_mapped(src), ipv4_mapped(dst));
    assert_eq!(v4_pair.c[dir], c(284, 2));
    assert_eq!(v4_pair.c[1 - dir], c(52 + 3162, 4));
    let (v6_pair, dir) = pair(&s, IPV6_SRC, IPV6_DST);
    assert_eq!(v6_pair.c[dir], c(74, 1));
    assert_eq!(v6_pair.c[1 - dir], c(0, 0));
    assert_eq!(s.pair_capacity, 64);
    assert_eq!(s.errors[ErrorKind::PairMapFull as usize], 0);
}

/// A full pair map loses the pair, nothing else: hosts and protocols still count every packet.
#[test]
fn a_full_pair_map_counts_an_error_and_nothing_else_is_lost() {
    // Room for 4 hosts and 4 pairs: 9 sources to one destination make 9 pairs and 10 hosts.
    let mut k = load(ModeRequest::Xdp, 4);
    for i in 1..=9u8 {
        let f = frame(&[
            &eth(0x0800, &[]),
            &ipv4_between([198, 18, 1, i], IPV4_DST, 17, 0, 0, &udp(1, 2, 0)),
        ]);
        run_xdp(&mut k, &f);
    }
    let s = k.read().unwrap();
    assert_eq!(s.pairs.len(), 4);
    let dst = ipv4_mapped(IPV4_DST);
    for (key, v) in &s.pairs {
        // One 42-byte packet from the source to the destination, in that direction.
        let from_source = if key.b == dst { A_TO_B } else { B_TO_A };
        assert!(key.a == dst || key.b == dst, "{key:?}");
        assert_eq!(
            (v.c[from_source], v.c[1 - from_source]),
            (c(42, 1), c(0, 0))
        );
    }
    assert_eq!(s.errors[ErrorKind::PairMapFull as usize], 5);
    // Hosts (with "other hosts") and protocols still count all 9 packets of 42 bytes.
    assert_eq!(proto(&s, RX, 17), c(9 * 42, 9));
    let other = s.interfaces[0].other_hosts;
    for dir in [SENT, RECEIVED] {
        let hosts = s
            .hosts
            .iter()
            .map(|(_, v)| v.total(dir))
            .fold(other.total(dir), |a, t| {
                c(a.bytes + t.bytes, a.packets + t.packets)
            });
        assert_eq!(hosts, c(9 * 42, 9), "direction {dir}");
    }
}

/// `--no-peers`: the programs leave the pair map alone (nothing is read from it either), and
/// count hosts and protocols as always.
#[test]
fn without_peers_nothing_is_counted_per_pair() {
    let mut k = ntop_tests::testrun::load_with("lo", ModeRequest::Xdp, 64, false);
    let f = frame(&[&eth(0x0800, &[]), &ipv4(17, 0, 0, &udp(1, 2, 100))]);
    run_xdp(&mut k, &f);
    let s = k.read().unwrap();
    assert_eq!((s.pair_capacity, s.pairs.len()), (0, 0));
    assert_eq!(host(&s, ipv4_mapped(IPV4_SRC)).total(SENT), c(142, 1));
    assert_eq!(s.errors[ErrorKind::PairMapFull as usize], 0);
    assert_eq!(s.errors[ErrorKind::PairUpdateFailed as usize], 0);
}
