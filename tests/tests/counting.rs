//! End to end: the daemon attached to one end of a veth pair, real traffic of several kinds, and
//! every count in its JSON compared exactly with oracles that do not depend on ntop:
//!
//! - the kernel's interface counters of both ends (`ip -s link`),
//! - a packet capture on the other end of the link, dissected by tshark (per host, per protocol),
//! - for GSO/GRO super-packets, the sending stack's own segment counter (`TcpOutSegs`).
//!
//! With native XDP on a veth the kernel's `rx_bytes` leave out the 14-byte Ethernet header (packet
//! counts stay right), so received bytes are compared with the peer's `tx_bytes` and the capture.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};

use ntop_common::testing::{IPV6_DST, IPV6_SRC, eth, frame, ipv4_between, ipv6, tcp, udp};
use ntop_tests::{
    Capture, Daemon, LinkStats, Netns, Packet, TestNet, UdpSink, VethConfig,
    capture::{HostTotals, Totals, per_host, per_pair, read_pcap, totals, write_pcap},
    link_stats, nstat, ping, require_root, scratch_dir, set_offloads, tcp_transfer, udp_send,
    wait_until,
};
use serde_json::Value;

/// Packets and bytes as the API gives them (`{"packets": …, "bytes": …}`).
fn json_totals(v: &Value) -> Totals {
    Totals {
        packets: v["packets"].as_u64().expect("packets"),
        bytes: v["bytes"].as_u64().expect("bytes"),
    }
}

/// `(rx, tx)` of the first interface.
fn iface_totals(d: &Daemon) -> (Totals, Totals) {
    let v = d.get("/api/v1/interfaces");
    let i = &v["interfaces"][0];
    (json_totals(&i["rx"]), json_totals(&i["tx"]))
}

/// Waits until the daemon's packet counts equal the link's, or 15 s; returns its totals.
fn settle(d: &Daemon, ns: &Netns, dev: &str, base: &LinkStats) -> (Totals, Totals) {
    let want = |s: &LinkStats| (s.rx_packets, s.tx_packets);
    wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let link = link_stats(ns, dev).since(base);
        let (rx, tx) = iface_totals(d);
        ((rx.packets, tx.packets) == want(&link)).then_some((rx, tx))
    })
    .unwrap_or_else(|| {
        let link = link_stats(ns, dev).since(base);
        panic!(
            "ntop's counts never reached the link's: ntop {:?}, link {link:?}",
            iface_totals(d)
        )
    })
}

/// Per host from the daemon, like [`per_host`] of a capture.
fn daemon_hosts(d: &Daemon) -> BTreeMap<IpAddr, HostTotals> {
    let v = d.get("/api/v1/hosts?limit=10000");
    v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            let ip: IpAddr = h["ip"]
                .as_str()
                .expect("ip")
                .parse()
                .expect("an IP address");
            let sent = json_totals(&h["sent"]);
            let received = json_totals(&h["received"]);
            (ip, HostTotals { sent, received })
        })
        .collect()
}

/// Protocol keys both sides are grouped by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Proto {
    /// `ipv4`/`ipv6` and the transport protocol number after extension headers.
    Ip(&'static str, u8),
    /// A non-IP class name as the API names it.
    NonIp(String),
}

/// Per protocol from the daemon, rx and tx added together.
fn daemon_protocols(d: &Daemon) -> BTreeMap<Proto, Totals> {
    let v = d.get("/api/v1/protocols");
    let mut m: BTreeMap<Proto, Totals> = BTreeMap::new();
    for row in v["protocols"].as_array().expect("protocols") {
        let key = match (row["family"].as_str(), row["number"].as_u64()) {
            (Some("ipv4"), Some(n)) => Proto::Ip("ipv4", u8::try_from(n).unwrap()),
            (Some("ipv6"), Some(n)) => Proto::Ip("ipv6", u8::try_from(n).unwrap()),
            _ => Proto::NonIp(row["name"].as_str().expect("name").to_owned()),
        };
        let e = m.entry(key).or_default();
        *e = *e + json_totals(&row["rx"]) + json_totals(&row["tx"]);
    }
    m
}

/// Per protocol from the capture. Non-IP `EtherType`s get the API's class names; an IP `EtherType`
/// without an IP source (tshark could not read the header) is the malformed class.
fn capture_protocols(packets: &[Packet]) -> BTreeMap<Proto, Totals> {
    let mut m: BTreeMap<Proto, Totals> = BTreeMap::new();
    for p in packets {
        let key = match (p.src, p.transport, p.eth_type) {
            (Some(IpAddr::V4(_)), Some(t), _) => Proto::Ip("ipv4", t),
            (Some(IpAddr::V6(_)), Some(t), _) => Proto::Ip("ipv6", t),
            (_, _, Some(0x0800)) => Proto::NonIp("malformed-ipv4".into()),
            (_, _, Some(0x86dd)) => Proto::NonIp("malformed-ipv6".into()),
            (_, _, Some(0x0806)) => Proto::NonIp("arp".into()),
            (_, _, Some(0x88cc)) => Proto::NonIp("lldp".into()),
            // tshark shows no EtherType for 802.3 frames (a length field instead).
            (_, _, None) => Proto::NonIp("llc".into()),
            other => panic!("no class for captured frame {p:?} ({other:?})"),
        };
        m.entry(key).or_default().add(p);
    }
    m
}

/// Per `(host, peer)` from the daemon's peer lists of `hosts` (one interface is monitored).
fn daemon_pairs<'a>(
    d: &Daemon,
    hosts: impl Iterator<Item = &'a IpAddr>,
) -> BTreeMap<(IpAddr, IpAddr), HostTotals> {
    let mut pairs = BTreeMap::new();
    for host in hosts {
        let v = d.get(&format!("/api/v1/hosts/{host}/peers?limit=100"));
        assert_eq!(v["complete"], true, "{v}");
        let peers = v["peers"].as_array().expect("peers");
        assert_eq!(v["total"].as_u64(), Some(peers.len() as u64), "{v}");
        for p in peers {
            let peer: IpAddr = p["ip"].as_str().expect("ip").parse().expect("an address");
            let totals = HostTotals {
                sent: json_totals(&p["sent"]),
                received: json_totals(&p["received"]),
            };
            assert!(pairs.insert((*host, peer), totals).is_none(), "{v}");
        }
    }
    pairs
}

fn assert_hosts_and_protocols(d: &Daemon, packets: &[Packet]) {
    let (want_hosts, got_hosts) = (per_host(packets), daemon_hosts(d));
    assert!(!want_hosts.is_empty(), "the capture holds IP traffic");
    assert_eq!(
        got_hosts, want_hosts,
        "per host (sent, received): ntop vs tshark"
    );
    // The daemon reads the pair table every PAIR_REFRESH only: wait (bounded) for a reading
    // taken after the traffic, then compare.
    let want = per_pair(packets);
    let got = wait_until(
        ntop::ebpf::PAIR_REFRESH * 3,
        Duration::from_millis(200),
        || {
            let got = daemon_pairs(d, want_hosts.keys());
            (got == want).then_some(got)
        },
    )
    .unwrap_or_else(|| daemon_pairs(d, want_hosts.keys()));
    assert_eq!(
        got, want,
        "per (host, peer) (sent, received): ntop vs tshark"
    );
    let (want, got) = (capture_protocols(packets), daemon_protocols(d));
    assert_eq!(got, want, "per protocol: ntop vs tshark");
}

/// Real traffic of several kinds, offloads off so every skb is one frame: the interface totals
/// equal the link counters, and per host and per protocol equal the capture, to the byte.
#[test]
fn live_traffic_counts_match_link_counters_and_capture() {
    require_root();
    let net = TestNet::new(&VethConfig::default().dynamic_neighbors());
    let (a, b) = (&net.a, &net.b);
    let (dev_a, dev_b) = (&net.link.dev_a, &net.link.dev_b);
    set_offloads(a, dev_a, false, false);
    set_offloads(b, dev_b, false, false);
    let base_a = link_stats(a, dev_a);
    let base_b = link_stats(b, dev_b);
    let capture = Capture::start(b, dev_b);
    let d = Daemon::start(
        a,
        &[
            "-i",
            dev_a,
            "--capture-mode",
            "xdp-native",
            "--memory-budget",
            "1M",
        ],
    );

    let (v4_b, v6_b): (IpAddr, IpAddr) = (net.link.ipv4_b.into(), net.link.ipv6_b.into());
    assert_eq!(ping(a, v4_b, 5, 56).received, 5);
    assert_eq!(ping(a, v6_b, 5, 200).received, 5);
    assert_eq!(ping(b, net.link.ipv4_a.into(), 3, 1000).received, 3);
    let sink4 = UdpSink::bind(b, SocketAddr::new(v4_b, 9000));
    let sink6 = UdpSink::bind(b, SocketAddr::new(v6_b, 9001));
    udp_send(a, net.link.ipv4_a.into(), v4_b, 9000, 40, 300);
    udp_send(a, net.link.ipv6_a.into(), v6_b, 9001, 30, 1200);
    assert_eq!(sink4.wait_for(40, Duration::from_secs(10)), 40);
    assert_eq!(sink6.wait_for(30, Duration::from_secs(10)), 30);
    let timeout = Duration::from_secs(30);
    assert_eq!(
        tcp_transfer(a, b, SocketAddr::new(v4_b, 7000), 300_000, timeout),
        300_000
    );
    assert_eq!(
        tcp_transfer(
            b,
            a,
            SocketAddr::new(net.link.ipv6_a.into(), 7001),
            200_000,
            timeout
        ),
        200_000
    );

    let (rx, tx) = settle(&d, a, dev_a, &base_a);
    let packets = capture.stop();
    let link_a = link_stats(a, dev_a).since(&base_a);
    let link_b = link_stats(b, dev_b).since(&base_b);
    assert_eq!(
        tx,
        Totals {
            packets: link_a.tx_packets,
            bytes: link_a.tx_bytes
        },
        "tx vs {dev_a}"
    );
    assert_eq!(rx.packets, link_a.rx_packets);
    assert_eq!(rx.packets, link_b.tx_packets);
    // Both ends' byte counters leave out the Ethernet header of what native XDP on A received
    // (veth counts those frames in its XDP path after the header is pulled); the capture has it.
    assert_eq!(totals(&packets), rx + tx);
    assert_eq!(rx.bytes, link_b.tx_bytes + 14 * rx.packets);
    assert!(
        packets.iter().any(|p| p.eth_type == Some(0x0806)),
        "ARP crossed the link (dynamic neighbours)"
    );
    assert_hosts_and_protocols(&d, &packets);
    assert!(d.stop().success());
}

/// Frames no live stack sends — `QinQ` and 802.1Q tags, IPv4 options, fragments, IPv6 extension
/// headers, SCTP, LLDP, LLC, a truncated IPv4 header — replayed with tcpreplay from the peer.
/// The file itself, dissected by tshark, is the oracle.
#[test]
fn replayed_frames_of_every_kind_count_exactly() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let frames = replay_frames();
    let pcap = scratch_dir().join(format!("replay-{}.pcap", std::process::id()));
    write_pcap(&pcap, &frames);
    let (d, rx, tx) = replay_to_daemon(&net, &pcap, frames.len(), "1M");
    let packets = read_pcap(&pcap);
    assert_eq!(packets.len(), frames.len());
    assert_eq!(rx, totals(&packets));
    assert_eq!(tx, Totals::default(), "nothing was sent back");
    assert_hosts_and_protocols(&d, &packets);
    let errors = d.get("/api/v1/interfaces")["errors"].clone();
    assert_eq!(errors["truncated_ipv4"], 1, "{errors}");
    assert!(d.stop().success());
}

/// With room for 10 hosts and 40 addresses on the link, the rest land in "other hosts":
/// `sum(hosts) + other == total` still holds, in both directions.
#[test]
fn a_full_host_table_loses_no_count() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    // 40 sources in 198.19.1.0/24 to 198.19.0.2: 41 addresses.
    let frames: Vec<Vec<u8>> = (1..=40u8)
        .map(|i| {
            frame(&[
                &eth(0x0800, &[]),
                &ipv4_between(
                    [198, 19, 1, i],
                    [198, 19, 0, 2],
                    17,
                    0,
                    0,
                    &udp(1, 2, usize::from(i)),
                ),
            ])
        })
        .collect();
    let pcap = scratch_dir().join(format!("overflow-{}.pcap", std::process::id()));
    write_pcap(&pcap, &frames);
    // 4K of budget at 400 bytes per host (256 in the host table, 144 in the pair table): 10
    // hosts.
    let (d, rx, _) = replay_to_daemon(&net, &pcap, frames.len(), "4K");
    let wire: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!(
        rx,
        Totals {
            packets: 40,
            bytes: wire
        }
    );
    let hosts = daemon_hosts(&d);
    assert_eq!(hosts.len(), 10);
    let v = d.get("/api/v1/interfaces");
    let other = &v["interfaces"][0]["other_hosts"];
    let (other_sent, other_received) =
        (json_totals(&other["sent"]), json_totals(&other["received"]));
    assert!(other_sent.packets > 0, "some hosts overflowed: {other}");
    let sent: Totals = hosts.values().map(|h| h.sent).sum();
    let received: Totals = hosts.values().map(|h| h.received).sum();
    assert_eq!(sent + other_sent, rx);
    assert_eq!(received + other_received, rx);
    assert!(v["errors"]["host_map_full"].as_u64().unwrap() > 0);
    assert!(d.stop().success());
}

/// TCP segments a namespace's stack has put on the wire: `TcpOutSegs` counts new data and pure
/// ACKs only, retransmissions go to `TcpRetransSegs` (`tcp_transmit_skb` in
/// `net/ipv4/tcp_output.c`), and a loaded machine does retransmit now and then, even on a veth.
fn sent_segments(ns: &Netns) -> u64 {
    let snmp = nstat(ns);
    snmp["TcpOutSegs"] + snmp.get("TcpRetransSegs").copied().unwrap_or(0)
}

/// TSO at egress and GRO at ingress (TCX capture mode): super-packets count as the segments the
/// wire carries. Oracles: each sender's segment counters for packets (in A less the segments of the
/// test's own HTTP queries to the daemon over A's loopback, one skb each); for bytes, the
/// capture's frame lengths plus one copy of the 54 bytes of headers (14 Ethernet, 20 IPv4, 20
/// TCP: timestamps are off) for every segment beyond the first of each captured super-packet.
#[test]
fn gso_and_gro_super_packets_count_as_wire_segments() {
    require_root();
    let net = TestNet::new(&VethConfig::default().without_ipv6());
    let (a, b) = (&net.a, &net.b);
    let (dev_a, dev_b) = (&net.link.dev_a, &net.link.dev_b);
    for ns in [a, b] {
        ns.sysctl(&[("net.ipv4.tcp_timestamps", "0"), ("net.ipv4.tcp_sack", "0")]);
    }
    set_offloads(a, dev_a, true, true);
    set_offloads(b, dev_b, false, true);
    let link_before = link_stats(a, dev_a);
    let lo_before = link_stats(a, "lo");
    let (out_segs_of_a, out_segs_of_peer) = (sent_segments(a), sent_segments(b));
    let capture = Capture::start(b, dev_b);
    let d = Daemon::start(
        a,
        &["-i", dev_a, "--capture-mode", "tc", "--memory-budget", "1M"],
    );
    let timeout = Duration::from_secs(30);
    let (ip_a, ip_b): (IpAddr, IpAddr) = (net.link.ipv4_a.into(), net.link.ipv4_b.into());
    assert_eq!(
        tcp_transfer(a, b, SocketAddr::new(ip_b, 7100), 2_000_000, timeout),
        2_000_000
    );
    assert_eq!(
        tcp_transfer(b, a, SocketAddr::new(ip_a, 7101), 2_000_000, timeout),
        2_000_000
    );
    let loopback = link_stats(a, "lo").since(&lo_before).tx_packets;
    let segs_a = sent_segments(a) - out_segs_of_a - loopback;
    let segs_b = sent_segments(b) - out_segs_of_peer;
    let (rx, tx) = wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let (rx, tx) = iface_totals(&d);
        (rx.packets == segs_b && tx.packets == segs_a).then_some((rx, tx))
    })
    .unwrap_or_else(|| {
        panic!(
            "ntop {:?} never reached the segments sent by A {segs_a}, B {segs_b}",
            iface_totals(&d)
        )
    });
    let packets = capture.stop();
    let link = link_stats(a, dev_a).since(&link_before);
    assert!(
        link.tx_packets < tx.packets,
        "TSO made super-packets ({link:?})"
    );
    // Bytes: every captured frame, plus 54 bytes per segment beyond the frames themselves.
    let from = |ip: IpAddr| packets.iter().filter(move |p| p.src == Some(ip));
    let frames_a = from(ip_a).count() as u64;
    let frames_b = from(ip_b).count() as u64;
    let bytes_a: u64 = from(ip_a).map(|p| p.len).sum();
    let bytes_b: u64 = from(ip_b).map(|p| p.len).sum();
    assert_eq!(
        frames_a + frames_b,
        packets.len() as u64,
        "only TCP over IPv4 crossed"
    );
    assert_eq!(
        tx.bytes,
        bytes_a + 54 * (segs_a - frames_a),
        "egress wire bytes"
    );
    assert_eq!(
        rx.bytes,
        bytes_b + 54 * (segs_b - frames_b),
        "ingress wire bytes"
    );
    assert!(d.stop().success());
}

/// Starts the daemon on A with `--memory-budget BUDGET`, replays `pcap` (`count` frames) from B,
/// and waits until the daemon has counted what A's link counted; returns the daemon and its
/// `(rx, tx)` totals.
fn replay_to_daemon<'a>(
    net: &'a TestNet,
    pcap: &Path,
    count: usize,
    budget: &str,
) -> (Daemon<'a>, Totals, Totals) {
    let (dev_a, dev_b) = (&net.link.dev_a, &net.link.dev_b);
    let base_a = link_stats(&net.a, dev_a);
    let d = Daemon::start(&net.a, &["-i", dev_a, "--memory-budget", budget]);
    replay(&net.b, dev_b, pcap, count);
    let (rx, tx) = settle(&d, &net.a, dev_a, &base_a);
    (d, rx, tx)
}

/// Sends `pcap` from `dev` in `ns` with tcpreplay and checks it sent `count` frames.
fn replay(ns: &Netns, dev: &str, pcap: &Path, count: usize) {
    let out = ns.exec(
        "timeout",
        [
            "30",
            "tcpreplay",
            "-q",
            "--topspeed",
            "-i",
            dev,
            pcap.to_str().unwrap(),
        ],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "tcpreplay failed: {text}");
    assert!(
        text.contains(&format!("{count} packets")),
        "tcpreplay sent all {count}: {text}"
    );
}

/// One of each kind the parser handles, addressed within 198.18.0.0/15 and `2001:db8::/32`, to
/// MAC addresses that are not the receiver's (so its stack drops them after ntop counted them).
fn replay_frames() -> Vec<Vec<u8>> {
    let (s, d) = ([198, 19, 7, 1], [198, 19, 7, 2]);
    let mut t = tcp(40000, 80, 12);
    t.extend_from_slice(&[0x55; 100]);
    let hop_by_hop = [6, 0, 1, 4, 0, 0, 0, 0];
    let frag_later = [17, 0, 0x05, 0xa8, 0, 0, 0, 9];
    let sctp = [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut lldp = vec![0x01, 0x80, 0xc2, 0, 0, 0x0e, 2, 0, 0, 0, 0, 9, 0x88, 0xcc];
    lldp.extend_from_slice(&[0; 46]);
    let mut llc = vec![0x01, 0x80, 0xc2, 0, 0, 0, 2, 0, 0, 0, 0, 9, 0, 38];
    llc.extend_from_slice(&[0x42, 0x42, 0x03]);
    llc.extend_from_slice(&[0; 35]);
    vec![
        frame(&[&eth(0x0800, &[]), &ipv4_between(s, d, 6, 0, 0, &t)]),
        frame(&[
            &eth(0x0800, &[(0x88a8, 100), (0x8100, 200)]),
            &ipv4_between(d, s, 17, 0, 0, &udp(53, 5353, 77)),
        ]),
        frame(&[
            &eth(0x86dd, &[(0x8100, 300)]),
            &ipv6(0, &hop_by_hop, &tcp(443, 50000, 0)),
        ]),
        frame(&[
            &eth(0x0800, &[]),
            &ipv4_between(s, d, 1, 8, 0, &[8, 0, 0, 0, 0, 1, 0, 1]),
        ]),
        frame(&[
            &eth(0x0800, &[]),
            &ipv4_between(s, d, 17, 0, 0x2000, &udp(1000, 2000, 200)),
        ]),
        frame(&[
            &eth(0x0800, &[]),
            &ipv4_between(s, d, 17, 0, 26, &[0xee; 120]),
        ]),
        frame(&[&eth(0x86dd, &[]), &ipv6(44, &frag_later, &[0; 80])]),
        frame(&[&eth(0x0800, &[]), &ipv4_between(s, d, 132, 0, 0, &sctp)]),
        frame(&[
            &eth(0x0800, &[]),
            &ipv4_between(s, [198, 19, 7, 3], 47, 0, 0, &[0; 24]),
        ]),
        lldp,
        llc,
        frame(&[
            &eth(0x0806, &[]),
            &[
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 198, 19, 7, 1, 0, 0, 0, 0, 0, 0, 198, 19,
                7, 2,
            ],
        ]),
        frame(&[&eth(0x0800, &[]), &[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6]]),
        frame(&[
            &eth(0x86dd, &[]),
            &ipv6(58, &[], &[128, 0, 0, 0, 0, 1, 0, 1]),
        ]),
    ]
    .into_iter()
    .chain(std::iter::once(frame(&[&eth(0x86dd, &[]), &{
        let mut v = ipv6(17, &[], &udp(5, 6, 10));
        v[8..24].copy_from_slice(&IPV6_DST);
        v[24..40].copy_from_slice(&IPV6_SRC);
        v
    }])))
    .collect()
}
