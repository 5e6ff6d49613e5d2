//! Tests of the test harness itself: namespaces come and go, a veth pair carries only test
//! traffic, and the oracles (link counters, SNMP counters, captures dissected by tshark) agree
//! with each other and with the traffic generators, packet for packet.
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use ntop_tests::{
    Netns, TestNet, VethConfig,
    capture::{self, Capture, Protocol, Totals},
    iperf3_tcp, link_stats, nstat, ping, require_root, set_offloads, tcp_transfer,
    traffic::UdpSink,
    udp_send,
};

/// Ethernet + IPv4 + ICMP headers, and Ethernet + IPv6 + `ICMPv6` headers.
const ICMP4_OVERHEAD: u64 = 14 + 20 + 8;
const ICMP6_OVERHEAD: u64 = 14 + 40 + 8;

fn delta_or_zero(
    after: &std::collections::HashMap<String, u64>,
    before: &std::collections::HashMap<String, u64>,
    key: &str,
) -> u64 {
    after.get(key).copied().unwrap_or(0) - before.get(key).copied().unwrap_or(0)
}

fn delta(
    after: &std::collections::HashMap<String, u64>,
    before: &std::collections::HashMap<String, u64>,
    key: &str,
) -> u64 {
    after[key] - before.get(key).copied().unwrap_or(0)
}

#[test]
fn ping_agrees_with_link_counters_capture_and_snmp() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, link) = (&net.a, &net.b, &net.link);
    let capture = Capture::start(b, &link.dev_b);
    let (before_a, before_b) = (link_stats(a, &link.dev_a), link_stats(b, &link.dev_b));
    let (snmp_a, snmp_b) = (nstat(a), nstat(b));

    let v4 = ping(a, link.ipv4_b.into(), 5, 56);
    let v6 = ping(a, link.ipv6_b.into(), 5, 56);
    assert_eq!((v4.transmitted, v4.received), (5, 5));
    assert_eq!((v6.transmitted, v6.received), (5, 5));
    // ping has every reply, so every request and reply has passed B's packet taps.
    let packets = capture.stop();

    let da = link_stats(a, &link.dev_a).since(&before_a);
    let db = link_stats(b, &link.dev_b).since(&before_b);
    let request_bytes = 5 * (ICMP4_OVERHEAD + 56) + 5 * (ICMP6_OVERHEAD + 56);
    assert_eq!(
        (da.tx_packets, da.tx_bytes),
        (10, request_bytes),
        "A sent: {da:?}"
    );
    assert_eq!(
        (da.rx_packets, da.rx_bytes),
        (10, request_bytes),
        "A received: {da:?}"
    );
    assert_eq!((db.rx_packets, db.rx_bytes), (da.tx_packets, da.tx_bytes));
    assert_eq!((db.tx_packets, db.tx_bytes), (da.rx_packets, da.rx_bytes));

    assert_eq!(
        packets.len(),
        20,
        "only the pings cross the link: {packets:#?}"
    );
    let requests: Vec<_> = packets
        .iter()
        .filter(|p| p.is_echo_request())
        .cloned()
        .collect();
    let replies: Vec<_> = packets
        .iter()
        .filter(|p| p.is_echo_reply())
        .cloned()
        .collect();
    assert_eq!(
        capture::totals(&requests),
        Totals {
            packets: da.tx_packets,
            bytes: da.tx_bytes
        }
    );
    assert_eq!(
        capture::totals(&replies),
        Totals {
            packets: da.rx_packets,
            bytes: da.rx_bytes
        }
    );

    let hosts = capture::per_host(&packets);
    let a4 = IpAddr::from(link.ipv4_a);
    let a6 = IpAddr::from(link.ipv6_a);
    let b4 = IpAddr::from(link.ipv4_b);
    assert_eq!(hosts.len(), 4, "{hosts:#?}");
    assert_eq!(
        hosts[&a4].sent,
        Totals {
            packets: 5,
            bytes: 5 * (ICMP4_OVERHEAD + 56)
        }
    );
    assert_eq!(hosts[&a4].received, hosts[&b4].sent);
    assert_eq!(
        hosts[&a6].sent,
        Totals {
            packets: 5,
            bytes: 5 * (ICMP6_OVERHEAD + 56)
        }
    );
    let protocols = capture::per_protocol(&packets);
    assert_eq!(protocols[&Protocol::Ip(1)].packets, 10);
    assert_eq!(protocols[&Protocol::Ip(58)].packets, 10);
    assert_eq!(protocols.len(), 2);

    let (after_a, after_b) = (nstat(a), nstat(b));
    assert_eq!(delta(&after_a, &snmp_a, "IcmpOutEchos"), 5);
    assert_eq!(delta(&after_a, &snmp_a, "IcmpInEchoReps"), 5);
    assert_eq!(delta(&after_b, &snmp_b, "IcmpInEchos"), 5);
    assert_eq!(delta(&after_a, &snmp_a, "Icmp6OutEchos"), 5);
    assert_eq!(delta(&after_b, &snmp_b, "Icmp6OutEchoReplies"), 5);
}

#[test]
fn namespaces_are_gone_after_drop_even_on_panic() {
    require_root();
    let exists = |name: &str| Path::new("/run/netns").join(name).exists();
    let ns = Netns::new();
    let name = ns.name().to_owned();
    assert!(exists(&name));
    assert!(ns.ip(["link", "show", "lo"]).contains("UP"));
    drop(ns);
    assert!(!exists(&name), "{name} left after drop");

    let result = std::panic::catch_unwind(|| {
        let net = TestNet::new(&VethConfig::default());
        panic!("{} {}", net.a.name(), net.b.name());
    });
    let message = *result
        .expect_err("the closure panics")
        .downcast::<String>()
        .unwrap();
    for name in message.split(' ') {
        assert!(!exists(name), "{name} left after a panic");
    }
}

#[test]
fn a_new_link_is_quiet() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let capture = Capture::start(&net.b, &net.link.dev_b);
    let before = link_stats(&net.a, &net.link.dev_a);
    // Not synchronisation: this is the observation window in which nothing may cross.
    thread::sleep(Duration::from_millis(1500));
    let quiet = link_stats(&net.a, &net.link.dev_a).since(&before);
    let packets = capture.stop();
    assert_eq!(packets, vec![], "frames on a new link");
    assert_eq!((quiet.tx_packets, quiet.rx_packets), (0, 0));
}

#[test]
fn udp_datagrams_are_counted_exactly() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, link) = (&net.a, &net.b, &net.link);
    let sink = UdpSink::bind(b, SocketAddr::new(link.ipv6_b.into(), 9000));
    let capture = Capture::start(a, &link.dev_a);
    let snmp_b = nstat(b);
    let port = udp_send(a, link.ipv6_a.into(), link.ipv6_b.into(), 9000, 200, 1000);
    assert_eq!(sink.wait_for(200, Duration::from_secs(5)), 200);
    assert_eq!(sink.received(), (200, 200 * 1000));
    let packets = capture.stop();
    assert_eq!(packets.len(), 200);
    assert!(packets.iter().all(|p| p.transport == Some(17)
        && p.src_port == Some(port)
        && p.dst_port == Some(9000)
        && p.len == 14 + 40 + 8 + 1000));
    assert_eq!(delta(&nstat(b), &snmp_b, "Udp6InDatagrams"), 200);
}

#[test]
fn tcp_segments_match_snmp_counters_without_offloads() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, link) = (&net.a, &net.b, &net.link);
    set_offloads(a, &link.dev_a, false, false);
    set_offloads(b, &link.dev_b, false, false);
    let capture = Capture::start(a, &link.dev_a);
    let (snmp_a, snmp_b) = (nstat(a), nstat(b));
    let server = SocketAddr::new(link.ipv4_b.into(), 7000);
    let bytes = 1 << 20;
    // tcp_transfer returns once the connection is closed on both sides.
    assert_eq!(
        tcp_transfer(a, b, server, bytes, Duration::from_secs(10)),
        bytes
    );
    let packets = capture.stop();
    // Retransmissions are not in TcpOutSegs (`tcp_transmit_skb`, net/ipv4/tcp_output.c) but
    // are on the wire; a loaded machine retransmits now and then even on a veth.
    let sent = |after: &std::collections::HashMap<String, u64>, before| {
        delta(after, before, "TcpOutSegs") + delta_or_zero(after, before, "TcpRetransSegs")
    };
    let (out_a, out_b) = (sent(&nstat(a), &snmp_a), sent(&nstat(b), &snmp_b));
    let count =
        |f: &dyn Fn(&capture::Packet) -> bool| packets.iter().filter(|p| f(p)).count() as u64;
    assert_eq!(count(&|p| p.src == Some(link.ipv4_a.into())), out_a);
    assert_eq!(count(&|p| p.src == Some(link.ipv4_b.into())), out_b);
    assert_eq!(
        count(&|p| p.transport == Some(6)),
        out_a + out_b,
        "only TCP crosses"
    );
    assert!(
        packets.iter().all(|p| p.len <= 1514),
        "no offloaded super-frames"
    );
    assert!(
        out_a > bytes / 1448,
        "at least one segment per MSS of payload"
    );
}

#[test]
fn iperf3_reports_what_crossed_the_link() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let before = link_stats(&net.a, &net.link.dev_a);
    let bytes = 4 << 20;
    let r = iperf3_tcp(
        &net.a,
        &net.b,
        net.link.ipv4_b.into(),
        bytes,
        Duration::from_secs(20),
    );
    assert!(r.sent_bytes >= bytes, "sent {}", r.sent_bytes);
    // iperf3's server stops counting at the test's end message, with data still in flight.
    let (sent, received) = (r.sent_bytes, r.received_bytes);
    assert!(
        received <= sent && received > 0,
        "sent {sent}, received {received}"
    );
    let d = link_stats(&net.a, &net.link.dev_a).since(&before);
    assert!(
        d.tx_bytes > r.received_bytes,
        "payload and headers crossed: {d:?}"
    );
}

#[test]
fn queues_and_mtu_are_configured() {
    require_root();
    let net = TestNet::new(&VethConfig::default().queues(2).mtu(9000).without_ipv6());
    let json = net
        .a
        .ip(["-d", "-j", "link", "show", "dev", &net.link.dev_a]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["mtu"], 9000);
    assert_eq!(v[0]["num_tx_queues"], 2);
    assert_eq!(v[0]["num_rx_queues"], 2);
    let capture = Capture::start(&net.b, &net.link.dev_b);
    let r = ping(&net.a, net.link.ipv4_b.into(), 2, 8000);
    assert_eq!(r.received, 2);
    let packets = capture.stop();
    assert_eq!(packets.len(), 4, "unfragmented: {packets:#?}");
    assert!(packets.iter().all(|p| p.len == ICMP4_OVERHEAD + 8000));
}

#[test]
fn children_are_killed_on_drop_and_stop_on_sigint() {
    require_root();
    let ns = Netns::new();
    let mut child = ns.spawn("sleep", ["60"]);
    let pid = child.id();
    assert!(child.try_wait().is_none());
    let start = Instant::now();
    let status = child.stop(Duration::from_secs(5));
    assert!(!status.success());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "sleep stops on SIGINT"
    );
    drop(child);
    let child = ns.spawn("sh", ["-c", "echo out; echo err >&2; exec sleep 60"]);
    let pid2 = child.id();
    ntop_tests::wait_until(Duration::from_secs(5), Duration::from_millis(5), || {
        (child.stdout() == "out\n" && child.stderr() == "err\n").then_some(())
    })
    .expect("the child's output in its files");
    drop(child);
    assert!(
        !Path::new(&format!("/proc/{pid2}")).exists(),
        "killed on drop"
    );
    assert_ne!(pid, pid2);
}
