//! Totals that survive restarts (issue 4): the daemon is stopped and started again while UDP
//! traffic flows, and the totals of the last daemon equal what crossed the link since the first
//! one started, exactly: for a clean stop, for `kill -9`, and for a start of a build with
//! another pin layout (an upgrade, which replaces the pinned programs). The oracles are the
//! link's own counters and the hand-computed frame size of each datagram.
//!
//! Needs root (namespaces, BPF, bpffs).

use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use ntop_tests::{
    Bpffs, Netns, TestNet, UdpSink, VethConfig,
    daemon::{Daemon, data_dir, ntop_pinned_command},
    link_stats, require_root, udp_send, wait_until,
};
use serde_json::Value;

/// UDP payload of every datagram.
const PAYLOAD: usize = 100;
/// Its frame on the wire without FCS: Ethernet 14 + IPv4 20 + UDP 8 + payload.
const FRAME: u64 = 14 + 20 + 8 + PAYLOAD as u64;
/// Datagrams per burst of the flow.
const BURST: u32 = 20;
/// At most this many bursts (bounds the flow to 60,000 datagrams and about a minute).
const MAX_BURSTS: u32 = 3000;

const API: &str = "127.0.0.1:3000";

/// Sends UDP from `from` in `ns` to `to` in bursts until `stop` (or [`MAX_BURSTS`]); returns
/// the datagrams sent.
fn flow(ns: &Netns, from: IpAddr, to: SocketAddr, stop: &AtomicBool) -> u64 {
    let mut sent = 0_u64;
    for _ in 0..MAX_BURSTS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        udp_send(ns, from, to.ip(), to.port(), BURST, PAYLOAD);
        sent += u64::from(BURST);
        // Pacing, not synchronisation: spreads the flow over the restart.
        thread::sleep(Duration::from_millis(5));
    }
    sent
}

/// Waits until `sink` has `more` datagrams beyond what it had when called.
#[track_caller]
fn flows_on(sink: &UdpSink, more: u64) {
    let (now, _) = sink.received();
    let got = sink.wait_for(now + more, Duration::from_secs(30));
    assert!(got >= now + more, "the flow stalled at {got} datagrams");
}

/// How the first daemon ends and the second one starts.
#[derive(Clone, Copy, Debug)]
enum Restart {
    /// SIGTERM; the same build starts again.
    Clean,
    /// SIGKILL; the same build starts again.
    Kill,
    /// SIGTERM; a build with the next pin layout starts (an upgrade).
    Upgrade,
}

fn restart_under_traffic(how: Restart) {
    require_root();
    let net = TestNet::new(&VethConfig::default().without_ipv6());
    let (a, dev) = (&net.a, net.link.dev_a.as_str());
    let bpffs = Bpffs::new();
    let dir = data_dir(None);
    let addr: SocketAddr = API.parse().expect("an address");
    let args = [
        "-i",
        dev,
        "-w",
        API,
        "-u",
        "root",
        "--memory-budget",
        "1M",
        "--refresh-interval",
        "200ms",
    ];
    let start = |extra: &[&str]| {
        let mut cmd = ntop_pinned_command(a, &dir, &bpffs.base(), &args);
        cmd.args(extra);
        Daemon::spawn(a, addr, cmd)
    };
    let peer: IpAddr = net.link.ipv4_b.into();
    let sink = UdpSink::bind(a, SocketAddr::new(net.link.ipv4_a.into(), 0));

    let mut first = start(&[]);
    // Nothing crosses the link before the flow (no IPv6, static neighbours): the oracle is
    // the link's counters from here on, and ntop has counted nothing yet.
    let base = link_stats(a, dev);
    assert_eq!(first.rx_totals(peer)[0], (0, 0), "traffic before the flow");

    let stop = AtomicBool::new(false);
    let (b, from, to) = (&net.b, net.link.ipv4_b.into(), sink.addr());
    thread::scope(|scope| {
        let flow = scope.spawn(|| flow(b, from, to, &stop));
        flows_on(&sink, 500);
        match how {
            Restart::Clean | Restart::Upgrade => {
                first.child().signal(libc::SIGTERM);
                let status = first
                    .child()
                    .wait_timeout(Duration::from_secs(15))
                    .expect("ntop exits after SIGTERM");
                assert!(status.success(), "{status}: {}", first.stderr());
                assert!(
                    first.stderr().contains("left the programs counting"),
                    "{}",
                    first.stderr()
                );
            }
            Restart::Kill => {
                first.child().signal(libc::SIGKILL);
                first
                    .child()
                    .wait_timeout(Duration::from_secs(15))
                    .expect("ntop dies after SIGKILL");
            }
        }
        drop(first);
        // Traffic while no ntop runs.
        flows_on(&sink, 500);

        let second = match how {
            Restart::Upgrade => start(&[
                "--pin-layout",
                &(ntop::ebpf::pin::PIN_LAYOUT + 1).to_string(),
            ]),
            Restart::Clean | Restart::Kill => start(&[]),
        };
        let log = second.stderr();
        match how {
            Restart::Upgrade => assert!(log.contains("replaced"), "{log}"),
            Restart::Clean | Restart::Kill => assert!(log.contains("re-adopted"), "{log}"),
        }
        flows_on(&sink, 500);
        stop.store(true, Ordering::Relaxed);
        let sent = flow.join().expect("the flow thread");
        assert!(sent >= 1500, "only {sent} datagrams sent");
        assert_eq!(
            sink.wait_for(sent, Duration::from_secs(30)),
            sent,
            "datagrams lost on the veth"
        );
        let link = link_stats(a, dev).since(&base);
        assert_eq!(link.rx_packets, sent, "only the flow crossed the link");

        let want = (sent, sent * FRAME);
        let got = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            let c = second.rx_totals(peer);
            (c[0].0 >= sent).then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "ntop never counted {sent} packets: {:?}",
                second.rx_totals(peer)
            )
        });
        assert_eq!(got, [want; 3], "{how:?}: interface, host and UDP totals");
        drop(second);
    });
}

/// SIGTERM, start again: the kernel kept counting, the data directory kept the totals.
#[test]
fn clean_restart_under_traffic_loses_nothing() {
    restart_under_traffic(Restart::Clean);
}

/// `kill -9`, start again: nothing was saved at the end, and nothing is lost.
#[test]
fn kill_9_under_traffic_loses_nothing() {
    restart_under_traffic(Restart::Kill);
}

/// An upgrade to a build with another map layout: the old programs' last counts are folded
/// into the totals before they are replaced, with no gap and nothing counted twice.
#[test]
fn upgrade_with_a_new_layout_under_traffic_loses_nothing() {
    restart_under_traffic(Restart::Upgrade);
}

/// Sums a history response's points: (rx packets, rx bytes, tx packets, tx bytes).
fn history_sum(v: &Value) -> (u64, u64, u64, u64) {
    let points = v["points"].as_array().cloned().unwrap_or_default();
    points.iter().fold((0, 0, 0, 0), |(a, b, c, d), p| {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        (
            a + n("rx_packets"),
            b + n("rx_bytes"),
            c + n("tx_packets"),
            d + n("tx_bytes"),
        )
    })
}

/// Known traffic over several seconds: the interface's 1-second series sums to it exactly, and
/// so do the minute and hour series and the UDP series; after a restart (new maps: the
/// daemon detached at its stop) the history is still there, and the peer's per-host minute
/// series (written at the stop) sums to what it sent.
#[test]
fn history_sums_to_the_traffic_and_survives_a_restart() {
    use ntop_tests::daemon::ntop_command_in;

    require_root();
    let net = TestNet::new(&VethConfig::default().without_ipv6());
    let (a, dev) = (&net.a, net.link.dev_a.as_str());
    let dir = data_dir(None);
    let addr: SocketAddr = API.parse().expect("an address");
    let args = ["-i", dev, "-w", API, "-u", "root", "--memory-budget", "1M"];
    let start = || Daemon::spawn(a, addr, ntop_command_in(a, &dir, &args));
    let peer: IpAddr = net.link.ipv4_b.into();
    let sink = UdpSink::bind(a, SocketAddr::new(net.link.ipv4_a.into(), 0));
    let base = link_stats(a, dev);

    let d = start();
    // Six bursts, each counted before the next: the traffic spreads over several polls.
    let mut sent = 0;
    for _ in 0..6 {
        let to = sink.addr();
        udp_send(&net.b, peer, to.ip(), to.port(), 100, PAYLOAD);
        sent += 100;
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            (d.rx_totals(peer)[0].0 == sent).then_some(())
        })
        .unwrap_or_else(|| panic!("ntop never counted {sent}: {:?}", d.rx_totals(peer)));
    }
    assert_eq!(link_stats(a, dev).since(&base).rx_packets, sent);
    let want = (sent, sent * FRAME, 0, 0);
    // The default range is the last hour, which holds all of it.
    let series =
        |d: &Daemon, query: &str| d.get(&format!("/api/v1/history?interface={dev}{query}"));
    let seconds = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let v = series(&d, "&resolution=second");
        (history_sum(&v) == want).then_some(v)
    });
    let seconds = seconds.unwrap_or_else(|| series(&d, "&resolution=second"));
    assert_eq!(history_sum(&seconds), want, "1-second series: {seconds}");
    assert!(
        seconds["points"].as_array().is_some_and(|p| p.len() >= 2),
        "the traffic spread over several seconds: {seconds}"
    );
    for query in [
        "&resolution=minute",
        "&resolution=hour",
        "&protocol=udp&resolution=second",
    ] {
        let v = series(&d, query);
        assert_eq!(history_sum(&v), want, "{query}: {v}");
    }
    let status = d.stop();
    assert!(status.success(), "{status}");

    let d = start();
    assert_eq!(
        d.rx_totals(peer),
        [(sent, sent * FRAME); 3],
        "totals carried over"
    );
    assert_eq!(history_sum(&series(&d, "&resolution=minute")), want);
    let host = series(&d, &format!("&host={peer}&resolution=minute"));
    assert_eq!(
        history_sum(&host),
        (0, 0, sent, sent * FRAME),
        "the peer sent it all: {host}"
    );
    drop(d);
}

/// `POST /api/v1/reset` (admin): every total starts again from zero, later traffic is counted
/// from there, and a restart carries the reset totals (not the ones from before).
#[test]
fn reset_statistics_starts_the_totals_again_and_survives_a_restart() {
    use ntop_tests::daemon::{BASIC_AUTH, http_request, ntop_command_in};

    require_root();
    let net = TestNet::new(&VethConfig::default().without_ipv6());
    let (a, dev) = (&net.a, net.link.dev_a.as_str());
    let dir = data_dir(None);
    let addr: SocketAddr = API.parse().expect("an address");
    let args = ["-i", dev, "-w", API, "-u", "root", "--memory-budget", "1M"];
    let start = || Daemon::spawn(a, addr, ntop_command_in(a, &dir, &args));
    let peer: IpAddr = net.link.ipv4_b.into();
    let sink = UdpSink::bind(a, SocketAddr::new(net.link.ipv4_a.into(), 0));
    let send = |n: u32| {
        let to = sink.addr();
        udp_send(&net.b, peer, to.ip(), to.port(), n, PAYLOAD);
    };
    let settle = |d: &Daemon, n: u64| {
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            (d.rx_totals(peer)[0].0 == n).then_some(())
        })
        .unwrap_or_else(|| panic!("ntop never counted {n}: {:?}", d.rx_totals(peer)));
    };

    let d = start();
    send(100);
    settle(&d, 100);
    let r = http_request(
        a,
        addr,
        "POST",
        "/api/v1/reset",
        &[("Authorization", BASIC_AUTH)],
        b"",
    )
    .expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(d.rx_totals(peer), [(0, 0); 3], "everything is zero");
    assert!(d.stderr().contains("statistics reset"), "{}", d.stderr());
    let base = link_stats(a, dev);
    send(30);
    settle(&d, 30);
    assert_eq!(link_stats(a, dev).since(&base).rx_packets, 30);
    assert_eq!(d.rx_totals(peer), [(30, 30 * FRAME); 3]);
    let status = d.stop();
    assert!(status.success(), "{status}");

    let d = start();
    assert_eq!(
        d.rx_totals(peer),
        [(30, 30 * FRAME); 3],
        "the reset totals carried over"
    );
    drop(d);
}
