//! Pinned kernel objects (`Kernel::load_pinned`): the programs keep counting while no process
//! holds them, a restart re-adopts them with no gap, a restart with other options or a newer
//! pin layout replaces them without losing or doubling a count (their final counts are handed
//! over), pins of a newer layout are refused without changing anything, and `detach_all`
//! removes everything and returns the final counts. Needs root (bpffs, BPF, namespaces).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use ntop::{
    ebpf::{self, Error, Kernel, LoadOptions, ModeRequest, pin},
    sample::{CaptureMode, Sample},
};
use ntop_tests::{
    LinkStats, Netns, TestNet, UdpSink, VethConfig, VethPair,
    hooks::{assert_nothing_attached, hooks},
    link_stats, ping, require_root, wait_until,
};

const RX: usize = 0;
const TX: usize = 1;

/// A pin base unique to this test, removed (with everything pinned in it) on drop, also when
/// the test fails.
struct PinBase(PathBuf);

impl PinBase {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Self(PathBuf::from(format!(
            "/sys/fs/bpf/ntop-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PinBase {
    fn drop(&mut self) {
        if let Err(e) = ebpf::detach_all(&self.0) {
            eprintln!("removing {}: {e}", self.0.display());
        }
    }
}

fn opts(interfaces: &[&str], max_hosts: u32) -> LoadOptions {
    LoadOptions {
        interfaces: interfaces.iter().map(|&s| s.to_owned()).collect(),
        mode: ModeRequest::Xdp,
        max_hosts,
        peers: true,
        attach: true,
        layout: ntop::ebpf::pin::PIN_LAYOUT,
    }
}

/// Loads pinned inside `ns`, so the interface names resolve there.
fn load_pinned(ns: &Netns, opts: &LoadOptions, base: &Path) -> Result<Kernel, Error> {
    ns.enter(|| Kernel::load_pinned(opts, base))
}

/// Sum over all protocols of one direction of the first interface.
fn total(s: &Sample, dir: usize) -> (u64, u64) {
    s.interfaces[0].proto[dir]
        .iter()
        .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes))
}

/// The id of the XDP program on `dev`, if any (`ip -d -j link show`).
fn xdp_prog_id(ns: &Netns, dev: &str) -> Option<u64> {
    let json = ns.ip(["-d", "-j", "link", "show", "dev", dev]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j output");
    let xdp = v.get(0)?.get("xdp")?;
    xdp.get("prog")
        .and_then(|p| p.get("id"))
        .or_else(|| xdp.get("attached")?.get(0)?.get("prog")?.get("id"))
        .and_then(serde_json::Value::as_u64)
}

/// Everything under `dir`, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap_or(&p).display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The kernel's counts equal the link counters since `base` (native XDP: veth's byte counters
/// leave out the received frames' 14-byte Ethernet header, the program counts it).
#[track_caller]
fn assert_counts(
    k: &mut Kernel,
    ns: &Netns,
    dev: &str,
    peer: &Netns,
    peer_dev: &str,
    base: &(LinkStats, LinkStats),
) {
    let link = link_stats(ns, dev).since(&base.0);
    let peer_link = link_stats(peer, peer_dev).since(&base.1);
    let s = k.read().expect("reading the maps");
    let (rx_p, rx_b) = total(&s, RX);
    let (tx_p, tx_b) = total(&s, TX);
    assert_eq!(
        (tx_p, tx_b),
        (link.tx_packets, link.tx_bytes),
        "tx vs {dev}"
    );
    assert_eq!(rx_p, link.rx_packets, "rx packets vs {dev}");
    assert_eq!(rx_p, peer_link.tx_packets, "rx packets vs {peer_dev}");
    assert_eq!(
        rx_b,
        peer_link.tx_bytes + 14 * rx_p,
        "rx bytes vs {peer_dev}"
    );
}

#[test]
fn restart_readopts_pinned_programs_without_a_gap() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, dev_a, dev_b) = (&net.a, &net.b, &net.link.dev_a, &net.link.dev_b);
    let pins = PinBase::new();
    let peer: IpAddr = net.link.ipv4_b.into();
    let o = opts(&[dev_a], 1024);
    let base = (link_stats(a, dev_a), link_stats(b, dev_b));

    let mut k = load_pinned(a, &o, pins.path()).expect("first pinned load");
    assert!(!k.readopted());
    assert_eq!(
        k.pin_dir(),
        Some(pin::version_dir(pins.path(), pin::PIN_LAYOUT).as_path())
    );
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program on veth-a");
    assert_eq!(ping(a, peer, 5, 56).received, 5);
    assert_counts(&mut k, a, dev_a, b, dev_b, &base);
    let (before, _) = total(&k.read().expect("read"), TX);
    assert!(before >= 5);

    assert_eq!(
        k.leave_pinned(),
        Some(pin::version_dir(pins.path(), pin::PIN_LAYOUT))
    );
    // Nothing in userspace holds the programs now: only the pins.
    assert_eq!(ping(a, peer, 7, 300).received, 7);
    assert_eq!(
        xdp_prog_id(a, dev_a),
        Some(prog),
        "still attached while the daemon is down"
    );

    let mut k = load_pinned(a, &o, pins.path()).expect("re-adopting the pins");
    assert!(k.readopted());
    assert_eq!(
        xdp_prog_id(a, dev_a),
        Some(prog),
        "re-adopted, not reloaded"
    );
    assert_eq!(k.interfaces().len(), 1);
    assert_eq!(k.interfaces()[0].name, *dev_a);
    // N + M: the pings while no ntop ran were counted, the counters went on from `before`.
    assert_counts(&mut k, a, dev_a, b, dev_b, &base);
    let (after, _) = total(&k.read().expect("read"), TX);
    assert!(after >= before + 7, "{after} < {before} + 7");

    // Counting goes on after re-adoption.
    assert_eq!(ping(a, peer, 3, 56).received, 3);
    assert_counts(&mut k, a, dev_a, b, dev_b, &base);

    let detached = k.detach();
    assert_eq!(detached.len(), 1);
    assert!(!pins.path().exists(), "detach removes the pins");
    // Off the hooks when `detach` returns.
    assert_nothing_attached(a, dev_a);
}

/// Frame length of an IPv4 ICMP echo with `payload` bytes: Ethernet 14, IPv4 20, ICMP 8.
const fn ping_frame(payload: u64) -> u64 {
    14 + 20 + 8 + payload
}

/// Frame length of an IPv4 UDP datagram with `payload` bytes: Ethernet 14, IPv4 20, UDP 8.
const fn udp_frame(payload: u64) -> u64 {
    14 + 20 + 8 + payload
}

/// Packets and bytes per direction of one interface, summed over every sample given (each
/// sample that has an interface of that name adds its counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

impl Counts {
    fn of(samples: &[&Sample], iface: &str) -> Self {
        let mut c = Self::default();
        for s in samples {
            for i in s.interfaces.iter().filter(|i| i.name == iface) {
                for p in i.proto[RX].iter() {
                    c.rx_packets += p.packets;
                    c.rx_bytes += p.bytes;
                }
                for p in i.proto[TX].iter() {
                    c.tx_packets += p.packets;
                    c.tx_bytes += p.bytes;
                }
            }
        }
        c
    }
}

/// The names of the interfaces of a sample, in slot order.
fn names(s: &Sample) -> Vec<&str> {
    s.interfaces.iter().map(|i| i.name.as_str()).collect()
}

/// The names in the pin base (`v<N>`, `v<N>-replaced`, …), sorted.
fn version_dirs(base: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

/// The starts of [`option_changes_replace_the_pinned_programs`]: what changes, the options, and
/// the XDP attach mode expected afterwards (0: TCX ingress instead).
fn option_steps(dev_a: &str) -> [(&'static str, LoadOptions, u64); 6] {
    [
        ("another host capacity", opts(&[dev_a], 2048), 1),
        (
            "TCX ingress instead of XDP",
            LoadOptions {
                mode: ModeRequest::Tc,
                ..opts(&[dev_a], 2048)
            },
            0,
        ),
        (
            "generic XDP instead of TCX",
            LoadOptions {
                mode: ModeRequest::XdpGeneric,
                ..opts(&[dev_a], 2048)
            },
            2,
        ),
        // `xdp` over `xdp-generic`: the same hook kind, so swapped in place, still generic.
        ("xdp over xdp-generic", opts(&[dev_a], 2048), 2),
        (
            "--no-peers",
            LoadOptions {
                peers: false,
                ..opts(&[dev_a], 2048)
            },
            2,
        ),
        ("counting peers again", opts(&[dev_a], 2048), 2),
    ]
}

/// Option changes replace the pinned programs (capacity, capture mode XDP → TC → generic XDP,
/// `xdp-generic` → `xdp`, which swaps in place, `--no-peers` and back), each time handing over the final counts of the
/// replaced programs; pings between the starts, none during them, so every count is exact:
/// the sum of all replaced samples and the last kernel equals the link's counters and the
/// hand-computed frame sizes. A start with the same options then re-adopts.
#[test]
fn option_changes_replace_the_pinned_programs() {
    const PAYLOAD: usize = 56;
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, dev_a, dev_b) = (&net.a, &net.b, net.link.dev_a.as_str(), &net.link.dev_b);
    let peer: IpAddr = net.link.ipv4_b.into();
    let pins = PinBase::new();
    let base = (link_stats(a, dev_a), link_stats(b, dev_b));
    let mut replaced: Vec<Sample> = Vec::new();

    let k = load_pinned(a, &opts(&[dev_a], 1024), pins.path()).expect("first pinned load");
    let first_epoch = k.epoch();
    assert_eq!(ping(a, peer, 5, PAYLOAD).received, 5);
    assert!(k.leave_pinned().is_some());

    let steps = option_steps(dev_a);
    let mut previous_epoch = first_epoch;
    let mut k = None;
    for (what, o, xdp_mode) in steps {
        let mut kernel = load_pinned(a, &o, pins.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!kernel.readopted(), "{what}: replaced, not re-adopted");
        let sample = kernel
            .take_replaced()
            .unwrap_or_else(|| panic!("{what}: the replaced programs' final counts"));
        assert!(kernel.take_replaced().is_none(), "handed out once");
        assert_eq!(names(&sample), [dev_a], "{what}");
        assert_eq!(sample.epoch, previous_epoch, "{what}: the old maps' epoch");
        assert_ne!(kernel.epoch(), previous_epoch, "{what}: new maps");
        previous_epoch = kernel.epoch();
        replaced.push(sample);
        assert_eq!(
            version_dirs(pins.path()),
            [format!("v{}", pin::PIN_LAYOUT)],
            "{what}: one pin directory, nothing moved aside left"
        );
        let h = hooks(a, dev_a);
        if xdp_mode == 0 {
            assert!(h.xdp.is_null(), "{what}: no XDP left: {h:#?}");
            assert_eq!(h.tcx_ingress, [ebpf::PROG_TC_INGRESS], "{what}");
        } else {
            assert_eq!(h.xdp_prog(), Some((ebpf::PROG_XDP, xdp_mode)), "{what}");
            assert!(
                h.tcx_ingress.is_empty(),
                "{what}: no TCX ingress left: {h:#?}"
            );
        }
        assert_eq!(
            h.tcx_egress,
            [ebpf::PROG_TC_EGRESS],
            "{what}: one egress program"
        );
        assert_eq!(ping(a, peer, 3, PAYLOAD).received, 3);
        let now = kernel.read().expect("reading the maps");
        assert_eq!(
            (now.pair_capacity, now.pairs.len()),
            if o.peers { (2048, 1) } else { (0, 0) },
            "{what}: the pair table"
        );
        k = Some(kernel);
    }
    let mut k = k.expect("the last kernel");
    let last = k.read().expect("reading the maps");
    let link = link_stats(a, dev_a).since(&base.0);
    let peer_link = link_stats(b, dev_b).since(&base.1);
    let mut all: Vec<&Sample> = replaced.iter().collect();
    all.push(&last);
    let frame = ping_frame(PAYLOAD as u64);
    assert_eq!(peer_link.tx_packets, link.rx_packets, "the peer's view");
    assert_eq!(
        Counts::of(&all, dev_a),
        Counts {
            rx_packets: link.rx_packets,
            rx_bytes: link.rx_packets * frame,
            tx_packets: link.tx_packets,
            tx_bytes: link.tx_packets * frame,
        },
        "every ping counted once across {} replacements",
        replaced.len()
    );
    assert_eq!(link.tx_packets, 5 + 3 * 6, "only the pings crossed");

    // The same options again: re-adopted as they are.
    assert!(k.leave_pinned().is_some());
    let mut k = load_pinned(a, &opts(&[dev_a], 2048), pins.path()).expect("re-adopting");
    assert!(k.readopted());
    assert!(k.take_replaced().is_none());
    assert_eq!(k.epoch(), previous_epoch);
    assert!(k.leave_pinned().is_some());
}

/// UDP datagrams both ways across a veth pair until stopped, on a thread of its own: at most
/// [`Flow::MAX_DATAGRAMS`] in each direction and for at most [`Flow::MAX_TIME`].
struct Flow {
    stop: Arc<AtomicBool>,
    /// Datagrams sent from A and from B.
    sent: Arc<[AtomicU64; 2]>,
    thread: Option<thread::JoinHandle<()>>,
    _sinks: (UdpSink, UdpSink),
}

impl Flow {
    const MAX_DATAGRAMS: u64 = 1_000_000;
    const MAX_TIME: Duration = Duration::from_secs(30);
    const PAYLOAD: usize = 100;

    fn start(net: &TestNet) -> Self {
        let (ip_a, ip_b) = (IpAddr::from(net.link.ipv4_a), IpAddr::from(net.link.ipv4_b));
        let sink_a = UdpSink::bind(&net.a, SocketAddr::new(ip_a, 0));
        let sink_b = UdpSink::bind(&net.b, SocketAddr::new(ip_b, 0));
        let socket = |ns: &Netns, from: IpAddr, to: SocketAddr| {
            let s = ns
                .enter(|| UdpSocket::bind(SocketAddr::new(from, 0)))
                .expect("binding a UDP socket");
            s.connect(to).expect("connecting UDP");
            s
        };
        let from_a = socket(&net.a, ip_a, sink_b.addr());
        let from_b = socket(&net.b, ip_b, sink_a.addr());
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let thread = {
            let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
            thread::spawn(move || {
                let payload = [0x5a_u8; Self::PAYLOAD];
                let begin = Instant::now();
                for _ in 0..Self::MAX_DATAGRAMS {
                    if stop.load(Ordering::Relaxed) || begin.elapsed() > Self::MAX_TIME {
                        break;
                    }
                    for (socket, count) in [(&from_a, &sent[0]), (&from_b, &sent[1])] {
                        // ENOBUFS when a queue is full for a moment: not sent, not counted.
                        if socket.send(&payload).is_ok() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        };
        Self {
            stop,
            sent,
            thread: Some(thread),
            _sinks: (sink_a, sink_b),
        }
    }

    /// Datagrams sent so far, both directions.
    fn sent(&self) -> u64 {
        self.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }

    /// Waits until at least `n` datagrams have been sent.
    #[track_caller]
    fn wait_sent(&self, n: u64) {
        let reached = wait_until(Duration::from_secs(20), Duration::from_millis(1), || {
            (self.sent() >= n).then_some(())
        });
        assert!(
            reached.is_some(),
            "the flow sent {} of {n} datagrams",
            self.sent()
        );
    }

    /// Stops the flow; returns the datagrams sent from A and from B.
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the flow thread");
        }
        (
            self.sent[0].load(Ordering::Relaxed),
            self.sent[1].load(Ordering::Relaxed),
        )
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What crossed `veth-a` of `net` since `base`, from the kernel's link counters and the frame
/// size (every frame on the link is one of the flow's datagrams), once every datagram sent
/// has been through the devices.
///
/// Egress of A: the TCX program runs before the veth transmits, so it also sees the frames
/// the veth then drops because B's backlog is full (`tx_dropped` of A). Ingress of A with
/// native XDP: frames wait in A's ring until A's NAPI poll runs the program; B's `tx_packets`
/// count the frames that poll took (the same counter as A's `rx_packets`), B's `tx_dropped`
/// those the full ring refused, which no program saw.
#[track_caller]
fn flow_oracle(net: &TestNet, base: &(LinkStats, LinkStats), sent: (u64, u64)) -> Counts {
    let (a, b) = (&net.a, &net.b);
    let (dev_a, dev_b) = (&net.link.dev_a, &net.link.dev_b);
    let settled = wait_until(Duration::from_secs(10), Duration::from_millis(5), || {
        let la = link_stats(a, dev_a).since(&base.0);
        let lb = link_stats(b, dev_b).since(&base.1);
        (la.tx_packets + la.tx_dropped == sent.0 && lb.tx_packets + lb.tx_dropped == sent.1)
            .then_some((la, lb))
    });
    let (la, lb) = settled.unwrap_or_else(|| {
        panic!(
            "not every datagram went through the veths: sent {sent:?}, A {:?}, B {:?}",
            link_stats(a, dev_a).since(&base.0),
            link_stats(b, dev_b).since(&base.1)
        )
    });
    let frame = udp_frame(Flow::PAYLOAD as u64);
    assert_eq!(la.tx_bytes, la.tx_packets * frame, "only the flow left A");
    assert_eq!(la.rx_packets, lb.tx_packets, "A's rx is B's tx");
    // B's tx bytes are A's rx bytes: with native XDP on A counted after the Ethernet header was
    // pulled, without it (while a hook moves) whole frames.
    assert!(
        (lb.tx_packets * (frame - 14)..=lb.tx_packets * frame).contains(&lb.tx_bytes),
        "only the flow left B: {} bytes in {} frames of {frame}",
        lb.tx_bytes,
        lb.tx_packets
    );
    Counts {
        rx_packets: la.rx_packets,
        rx_bytes: la.rx_packets * frame,
        tx_packets: sent.0,
        tx_bytes: sent.0 * frame,
    }
}

/// Replaces the programs pinned with `old` by loading with `new` while the flow runs, and
/// checks that the replaced programs' final counts plus the new programs' counts equal what
/// crossed `veth-a` exactly: no gap, no double count. Returns the new kernel and the replaced
/// sample.
#[track_caller]
fn replace_under_traffic(
    net: &TestNet,
    pins: &PinBase,
    old: &LoadOptions,
    new: &LoadOptions,
) -> (Kernel, Sample) {
    let (a, dev_a) = (&net.a, net.link.dev_a.as_str());
    let base = (link_stats(a, dev_a), link_stats(&net.b, &net.link.dev_b));
    let k = load_pinned(a, old, pins.path()).expect("the old programs");
    let old_epoch = k.epoch();
    let old_prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    assert!(k.leave_pinned().is_some());

    let flow = Flow::start(net);
    flow.wait_sent(20_000);
    let mut k = load_pinned(a, new, pins.path()).expect("replacing the programs");
    let after = flow.sent();
    flow.wait_sent(after + 20_000);
    let sent = flow.stop();

    assert!(!k.readopted(), "replaced, not re-adopted");
    let new_prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    assert_ne!(new_prog, old_prog, "a new program on the hook");
    let replaced = k
        .take_replaced()
        .expect("the replaced programs' final counts");
    assert_eq!(replaced.epoch, old_epoch, "the old maps' epoch");
    assert_ne!(k.epoch(), old_epoch);
    let oracle = flow_oracle(net, &base, sent);
    let now = k.read().expect("reading the maps");
    let (before, since) = (Counts::of(&[&replaced], dev_a), Counts::of(&[&now], dev_a));
    assert!(
        before.rx_packets > 0 && before.tx_packets > 0,
        "the old programs counted the flow: {before:?}"
    );
    assert!(
        since.rx_packets > 0 && since.tx_packets > 0,
        "the new programs counted the flow: {since:?}"
    );
    assert_eq!(
        Counts::of(&[&replaced, &now], dev_a),
        oracle,
        "old {before:?} + new {since:?} vs the link (sent {sent:?})"
    );
    (k, replaced)
}

/// (i) An option change (interface set [a] → [a, c]) while a flow crosses `a`: the hooks of
/// `a` are swapped atomically, so the replaced programs' final counts plus the new ones' are
/// exactly what crossed; `c` is counted from its start.
#[test]
fn interface_set_change_under_traffic_loses_and_doubles_nothing() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let second = VethPair::new(
        &net.a,
        &net.b,
        &VethConfig {
            dev_a: "veth-c".into(),
            dev_b: "veth-d".into(),
            ipv4: Some((
                Ipv4Addr::new(198, 18, 1, 1),
                Ipv4Addr::new(198, 18, 1, 2),
                24,
            )),
            ..VethConfig::default().without_ipv6()
        },
    );
    let pins = PinBase::new();
    let dev_a = net.link.dev_a.as_str();
    let c_base = (
        link_stats(&net.a, &second.dev_a),
        link_stats(&net.b, &second.dev_b),
    );
    let (mut k, replaced) = replace_under_traffic(
        &net,
        &pins,
        &opts(&[dev_a], 1024),
        &opts(&[dev_a, &second.dev_a], 1024),
    );
    assert_eq!(names(&replaced), [dev_a], "the old interface set");
    let now: Vec<&str> = k.interfaces().iter().map(|i| i.name.as_str()).collect();
    assert_eq!(now, [dev_a, second.dev_a.as_str()]);
    assert_eq!(
        version_dirs(pins.path()),
        [format!("v{}", pin::PIN_LAYOUT)],
        "replaced in place, nothing moved aside left"
    );

    // The new interface counts from its start.
    assert_eq!(ping(&net.a, second.ipv4_b.into(), 4, 56).received, 4);
    let link = link_stats(&net.a, &second.dev_a).since(&c_base.0);
    let peer_link = link_stats(&net.b, &second.dev_b).since(&c_base.1);
    let frame = ping_frame(56);
    assert_eq!(peer_link.tx_packets, link.rx_packets);
    assert_eq!(
        Counts::of(&[&k.read().expect("read")], &second.dev_a),
        Counts {
            rx_packets: link.rx_packets,
            rx_bytes: link.rx_packets * frame,
            tx_packets: link.tx_packets,
            tx_bytes: link.tx_packets * frame,
        }
    );
    assert_eq!(link.tx_packets, 4);
    for dev in [dev_a, second.dev_a.as_str()] {
        let h = hooks(&net.a, dev);
        assert_eq!(
            h.xdp_prog(),
            Some((ebpf::PROG_XDP, 1)),
            "native XDP on {dev}"
        );
        assert_eq!(
            h.tcx_egress,
            [ebpf::PROG_TC_EGRESS],
            "one egress program on {dev}"
        );
    }
    let _ = k.detach();
    assert_nothing_attached(&net.a, dev_a);
    assert_nothing_attached(&net.a, &second.dev_a);
}

/// (ii) An upgrade (a build of pin layout `PIN_LAYOUT + 1` over `v<PIN_LAYOUT>` pins) while a
/// flow crosses: the same exact equality; the old layout's directory is gone, the new one holds
/// the pins.
#[test]
fn layout_upgrade_under_traffic_folds_the_old_counts() {
    upgrade_under_traffic(pin::PIN_LAYOUT, pin::PIN_LAYOUT + 1);
}

/// (ii) The upgrade from layout 1, which had no pair table and 13 error kinds (this build loads
/// layout 1's map shapes when asked to pin as layout 1): its counts are folded all the same, and
/// the new programs count pairs.
#[test]
fn upgrade_from_layout_1_folds_its_counts_and_adds_the_pair_table() {
    upgrade_under_traffic(1, pin::PIN_LAYOUT);
}

fn upgrade_under_traffic(from: u32, to: u32) {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let pins = PinBase::new();
    let dev_a = net.link.dev_a.as_str();
    let old = LoadOptions {
        layout: from,
        ..opts(&[dev_a], 1024)
    };
    let new = LoadOptions {
        layout: to,
        ..opts(&[dev_a], 1024)
    };
    let (mut k, replaced) = replace_under_traffic(&net, &pins, &old, &new);
    assert_eq!(names(&replaced), [dev_a]);
    let had_pairs = from != 1;
    assert_eq!(
        (replaced.pair_capacity, !replaced.pairs.is_empty()),
        (if had_pairs { 1024 } else { 0 }, had_pairs),
        "layout {from}'s pair table"
    );
    assert_eq!(
        version_dirs(pins.path()),
        [format!("v{to}")],
        "the old layout's directory is gone, the new one is there"
    );
    assert_eq!(
        k.pin_dir(),
        Some(pin::version_dir(pins.path(), to).as_path())
    );
    let h = hooks(&net.a, dev_a);
    assert_eq!(h.xdp_prog(), Some((ebpf::PROG_XDP, 1)));
    assert_eq!(h.tcx_egress, [ebpf::PROG_TC_EGRESS]);
    assert_eq!(k.read().expect("reading").pair_capacity, 1024);
    assert!(k.leave_pinned().is_some());

    // The upgraded build re-adopts its own pins.
    let k = load_pinned(&net.a, &new, pins.path()).expect("re-adopting the new layout");
    assert!(k.readopted());
    let _ = k.detach();
    assert_nothing_attached(&net.a, dev_a);
}

/// (iii) Pins of a newer layout are refused with the fix, and nothing changes: not a pin, not a
/// hook. Pins this build cannot read are refused the same way.
#[test]
fn newer_or_unreadable_pins_are_refused_and_left_alone() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev_a) = (&net.a, net.link.dev_a.as_str());
    let pins = PinBase::new();
    let newer = LoadOptions {
        layout: pin::PIN_LAYOUT + 1,
        ..opts(&[dev_a], 1024)
    };
    let k = load_pinned(a, &newer, pins.path()).expect("pinning as a newer build");
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    assert!(k.leave_pinned().is_some());
    let files = listing(pins.path());
    let egress = hooks(a, dev_a).tcx_egress;

    let err = load_pinned(a, &opts(&[dev_a], 1024), pins.path()).expect_err("newer pins");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Pin(pin::PinError::Newer { found, ours, .. })
            if found == pin::PIN_LAYOUT + 1 && ours == pin::PIN_LAYOUT),
        "{err:?}"
    );
    assert!(text.contains("newer ntop"), "{text}");
    assert!(text.contains("run that newer ntop"), "{text}");
    assert!(text.contains("--detach-all"), "{text}");
    assert!(text.contains("loses the counts"), "{text}");
    assert_eq!(
        listing(pins.path()),
        files,
        "a refused start changes no pin"
    );
    assert_eq!(
        xdp_prog_id(a, dev_a),
        Some(prog),
        "nor the attached program"
    );
    assert_eq!(hooks(a, dev_a).tcx_egress, egress);

    // Pins without a readable layout file: refused too, named, left alone.
    let dir = pin::version_dir(pins.path(), pin::PIN_LAYOUT);
    std::fs::create_dir_all(&dir).expect("mkdir on bpffs");
    std::os::unix::fs::symlink("not a layout", dir.join(pin::LAYOUT_FILE)).expect("symlink");
    let files = listing(pins.path());
    let err = load_pinned(a, &newer, pins.path()).expect_err("unreadable pins");
    let text = err.to_string();
    assert!(text.contains("not a layout file"), "{text}");
    assert!(text.contains("--detach-all"), "{text}");
    assert_eq!(listing(pins.path()), files);
    assert_eq!(xdp_prog_id(a, dev_a), Some(prog));
    std::fs::remove_file(dir.join(pin::LAYOUT_FILE)).expect("rm");

    // Pins moved aside by a replacement that did not finish: refused, named, left alone.
    let aside = pin::aside_dir(&pin::version_dir(pins.path(), pin::PIN_LAYOUT + 1));
    std::fs::create_dir_all(&aside).expect("mkdir on bpffs");
    std::os::unix::fs::symlink("layout 2", aside.join(pin::LAYOUT_FILE)).expect("symlink");
    let files = listing(pins.path());
    let err = load_pinned(a, &newer, pins.path()).expect_err("a left-over directory");
    assert!(
        matches!(&err, Error::Pin(pin::PinError::Leftover { dir, .. }) if *dir == aside),
        "{err:?}"
    );
    assert!(err.to_string().contains("ntop --detach-all"), "{err}");
    assert_eq!(listing(pins.path()), files);
    assert_eq!(xdp_prog_id(a, dev_a), Some(prog));
}

/// A replacement that fails after it swapped hooks is undone: the swapped links get their old
/// programs back, the new pins go, the old ones stay. The failure is provoked by a directory
/// where the new pins' map must go (pinning it fails with `EEXIST` after every swap). No
/// traffic crosses during the attempt, so the counts stay exact: the old programs count on, and
/// a start with the old options re-adopts them.
#[test]
fn a_replacement_failing_after_its_swaps_is_undone() {
    const PAYLOAD: usize = 56;
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, dev_a, dev_b) = (&net.a, &net.b, net.link.dev_a.as_str(), &net.link.dev_b);
    let peer: IpAddr = net.link.ipv4_b.into();
    let pins = PinBase::new();
    let base = (link_stats(a, dev_a), link_stats(b, dev_b));
    let old = opts(&[dev_a], 1024);
    let k = load_pinned(a, &old, pins.path()).expect("the old programs");
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    let epoch = k.epoch();
    assert!(k.leave_pinned().is_some());
    assert_eq!(ping(a, peer, 5, PAYLOAD).received, 5);
    let files = listing(pins.path());

    let new_dir = pin::version_dir(pins.path(), pin::PIN_LAYOUT + 1);
    std::fs::create_dir_all(new_dir.join("maps").join("NTOP_HOSTS")).expect("mkdir on bpffs");
    let new = LoadOptions {
        layout: pin::PIN_LAYOUT + 1,
        ..opts(&[dev_a], 1024)
    };
    let err = load_pinned(a, &new, pins.path()).expect_err("pinning the new maps fails");
    assert!(
        matches!(&err, Error::Pin(pin::PinError::Replace { uncounted, .. }) if uncounted.is_empty()),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("NTOP_HOSTS"), "{text}");
    assert!(text.contains("the old pins are back in place"), "{text}");
    assert_eq!(
        xdp_prog_id(a, dev_a),
        Some(prog),
        "the old XDP program is back"
    );
    let h = hooks(a, dev_a);
    assert_eq!(h.tcx_egress, [ebpf::PROG_TC_EGRESS], "one egress program");
    assert_eq!(
        listing(pins.path()),
        files,
        "the old pins as they were, the new ones gone"
    );

    assert_eq!(ping(a, peer, 3, PAYLOAD).received, 3);
    let mut k = load_pinned(a, &old, pins.path()).expect("re-adopting the old programs");
    assert!(k.readopted());
    assert_eq!(k.epoch(), epoch);
    let link = link_stats(a, dev_a).since(&base.0);
    assert_eq!(
        link_stats(b, dev_b).since(&base.1).tx_packets,
        link.rx_packets
    );
    assert_eq!(link.tx_packets, 8, "only the pings crossed");
    let frame = ping_frame(PAYLOAD as u64);
    assert_eq!(
        Counts::of(&[&k.read().expect("read")], dev_a),
        Counts {
            rx_packets: link.rx_packets,
            rx_bytes: link.rx_packets * frame,
            tx_packets: link.tx_packets,
            tx_bytes: link.tx_packets * frame,
        },
        "the old programs counted everything, before and after the failed attempt"
    );
    assert!(k.leave_pinned().is_some());
}

/// A replacement whose new ingress hook cannot attach after the old one was detached
/// (`--capture-mode xdp-native` on `lo`, which has generic XDP only) fails and says which
/// ingress is not counted; the old pins stay, and the next start sees the defunct link and
/// replaces the pins again (here with the old options), so `lo` is counted again.
#[test]
fn a_replacement_failing_to_reattach_names_the_uncounted_interface() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev_a) = (&net.a, net.link.dev_a.as_str());
    let pins = PinBase::new();
    let old = opts(&[dev_a, "lo"], 1024);
    let k = load_pinned(a, &old, pins.path()).expect("the old programs");
    assert_eq!(
        k.interfaces().iter().map(|i| i.mode).collect::<Vec<_>>(),
        [CaptureMode::XdpNative, CaptureMode::XdpGeneric]
    );
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    assert!(k.leave_pinned().is_some());
    let files = listing(pins.path());

    let err = load_pinned(
        a,
        &LoadOptions {
            mode: ModeRequest::XdpNative,
            ..old.clone()
        },
        pins.path(),
    )
    .expect_err("no native XDP on lo");
    assert!(
        matches!(&err, Error::Pin(pin::PinError::Replace { uncounted, .. }) if uncounted == &["lo"]),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("the ingress of lo is not counted"), "{text}");
    assert_eq!(listing(pins.path()), files, "the old pins stay");
    assert_eq!(
        xdp_prog_id(a, dev_a),
        Some(prog),
        "veth-a keeps its old program"
    );
    assert!(hooks(a, "lo").xdp.is_null(), "lo's old hook was detached");

    let mut k = load_pinned(a, &old, pins.path()).expect("replacing again");
    assert!(!k.readopted(), "a defunct link is not re-adopted");
    let replaced = k.take_replaced().expect("the final counts");
    assert_eq!(names(&replaced), [dev_a, "lo"]);
    assert_eq!(
        hooks(a, "lo").xdp_prog(),
        Some((ebpf::PROG_XDP, 2)),
        "lo counted again"
    );
    assert_ne!(xdp_prog_id(a, dev_a), Some(prog), "veth-a swapped");
    let _ = k.detach();
    assert_nothing_attached(a, dev_a);
    assert_nothing_attached(a, "lo");
}

/// (iv) `detach_all` takes every link off its hook before it returns (nothing attached right
/// after it, no waiting), and returns the final counts of the pins: what crossed while ntop ran
/// and while it was down, exactly.
#[test]
fn detach_all_returns_the_final_counts_and_removes_everything() {
    const PAYLOAD: usize = 200;
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, b, dev_a, dev_b) = (&net.a, &net.b, net.link.dev_a.clone(), &net.link.dev_b);
    let peer: IpAddr = net.link.ipv4_b.into();
    let pins = PinBase::new();
    let base = (link_stats(a, &dev_a), link_stats(b, dev_b));
    let k = load_pinned(a, &opts(&[&dev_a], 1024), pins.path()).expect("pinned load");
    let epoch = k.epoch();
    assert_eq!(ping(a, peer, 5, PAYLOAD).received, 5);
    assert!(k.leave_pinned().is_some());
    let h = hooks(a, &dev_a);
    assert!(
        h.xdp_prog().is_some() && h.tcx_egress.len() == 1,
        "left counting: {h:#?}"
    );
    assert_eq!(ping(a, peer, 7, PAYLOAD).received, 7);

    // Something not ntop's in the base: left alone.
    let foreign = pins.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir on bpffs");

    let done = ebpf::detach_all(pins.path()).expect("detach_all");
    assert_nothing_attached(a, &dev_a);
    assert_eq!(
        listing(pins.path()),
        ["foreign"],
        "only ntop's pins are removed"
    );
    std::fs::remove_dir(&foreign).expect("rmdir");
    std::fs::remove_dir(pins.path()).expect("rmdir");
    for file in [
        "links/veth-a-xdp",
        "links/veth-a-tcx-egress",
        "maps/NTOP_PROTO",
    ] {
        assert!(
            done.removed.iter().any(|r| r.ends_with(file)),
            "{file} in {:?}",
            done.removed
        );
    }
    let [last] = done.final_counts.as_slice() else {
        panic!("one sample of final counts: {:?}", done.final_counts);
    };
    assert_eq!(last.epoch, epoch, "the pinned maps' epoch");
    assert_eq!(names(last), [dev_a.as_str()]);
    let link = link_stats(a, &dev_a).since(&base.0);
    let peer_link = link_stats(b, dev_b).since(&base.1);
    let frame = ping_frame(PAYLOAD as u64);
    assert_eq!(peer_link.tx_packets, link.rx_packets);
    assert_eq!(link.tx_packets, 12, "only the pings crossed");
    assert_eq!(
        Counts::of(&[last], &dev_a),
        Counts {
            rx_packets: link.rx_packets,
            rx_bytes: link.rx_packets * frame,
            tx_packets: link.tx_packets,
            tx_bytes: link.tx_packets * frame,
        }
    );
    // Pings after detach_all cross uncounted.
    assert_eq!(ping(a, peer, 2, PAYLOAD).received, 2);
    assert_nothing_attached(a, &dev_a);
    let again = ebpf::detach_all(pins.path()).expect("again");
    assert!(
        again.removed.is_empty() && again.final_counts.is_empty(),
        "nothing left to remove: {again:?}"
    );
}

/// Whether a bpffs is mounted at /sys/fs/bpf in this process's mount namespace.
fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .expect("/proc/self/mounts")
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"/sys/fs/bpf") && f.get(2) == Some(&"bpf")
        })
}

/// bpffs is mounted at /sys/fs/bpf when it is not. Runs itself again in a private mount
/// namespace (`unshare -m`) where /sys/fs/bpf is unmounted first, so the machine's mount is
/// not touched.
#[test]
fn bpffs_is_mounted_when_missing() {
    const CHILD: &str = "NTOP_PINNING_MOUNT_CHILD";
    require_root();
    if std::env::var_os(CHILD).is_some() {
        assert!(!bpffs_mounted(), "the child starts without bpffs");
        let pins = PinBase::new();
        let dir = pin::prepare(pins.path(), pin::PIN_LAYOUT).expect("prepare mounts bpffs");
        assert!(bpffs_mounted(), "bpffs mounted at /sys/fs/bpf");
        assert!(dir.join("maps").is_dir() && dir.join("links").is_dir());
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "while umount /sys/fs/bpf 2>/dev/null; do :; done; exec '{}' --exact \
         bpffs_is_mounted_when_missing --nocapture --test-threads 1",
        exe.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env(CHILD, "1")
        .output()
        .expect("running unshare");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}

/// The daemon (pinned by default): stopped, it leaves its programs counting (and says so);
/// restarted, it re-adopts them and its totals equal the link's counters since the first start,
/// including what crossed while it was down; `ntop --detach-all` then removes everything.
#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one story: three daemons and --detach-all, checked against the link in turn"
)]
fn daemon_keep_counting_restart_has_no_gap() {
    use ntop_tests::daemon::{Daemon, data_dir, ntop_pinned_command};

    require_root();
    // No IPv6: nothing but the test's pings crosses the link, so it is the oracle throughout.
    let net = TestNet::new(&VethConfig::default().without_ipv6());
    let (a, dev) = (&net.a, net.link.dev_a.as_str());
    // `ip netns exec` gives the daemon its own mount namespace with a fresh /sys, so pins under
    // /sys/fs/bpf would die with it: use a bpffs mounted here, which it sees too.
    let bpffs = ntop_tests::Bpffs::new();
    let base = bpffs.base();
    let dir = data_dir(None);
    let pin_dir = base.to_str().expect("a UTF-8 path");
    let args = [
        "-i",
        dev,
        "-w",
        "127.0.0.1:3000",
        "-u",
        "root",
        "--memory-budget",
        "1M",
    ];
    let addr = "127.0.0.1:3000".parse().expect("an address");
    let rx = |d: &Daemon| d.get("/api/v1/interfaces")["interfaces"][0]["rx"]["packets"].as_u64();
    let settle = |d: &Daemon, link_base: &LinkStats| {
        wait_until(Duration::from_secs(15), Duration::from_millis(20), || {
            let link = link_stats(a, dev).since(link_base).rx_packets;
            (rx(d) == Some(link)).then_some(link)
        })
        .unwrap_or_else(|| panic!("ntop's rx {:?} never reached the link's", rx(d)))
    };
    let peer: IpAddr = net.link.ipv4_b.into();

    let link_base = link_stats(a, dev);
    let mut first = Daemon::spawn(a, addr, ntop_pinned_command(a, &dir, &base, &args));
    assert_eq!(ping(a, peer, 5, 56).received, 5);
    let before_stop = settle(&first, &link_base);
    assert!(before_stop >= 5);
    first.child().signal(libc::SIGTERM);
    let status = first
        .child()
        .wait_timeout(Duration::from_secs(15))
        .expect("ntop exits");
    assert!(status.success(), "{status}");
    assert!(
        first.stderr().contains("left the programs counting"),
        "{}",
        first.stderr()
    );
    assert!(
        xdp_prog_id(a, dev).is_some(),
        "the XDP program stays attached"
    );
    drop(first);

    // Traffic while no ntop runs.
    assert_eq!(ping(a, peer, 7, 56).received, 7);

    let second = Daemon::spawn(a, addr, ntop_pinned_command(a, &dir, &base, &args));
    assert!(
        second.stderr().contains("re-adopted"),
        "{}",
        second.stderr()
    );
    let after = settle(&second, &link_base);
    assert!(after >= before_stop + 7, "{before_stop} then {after}");
    let detach_all = || {
        a.command(ntop_tests::ntop_bin())
            .arg("-P")
            .arg(&dir)
            .args(["--detach-all", "--pin-dir", pin_dir])
            .output()
            .expect("running ntop --detach-all")
    };
    // Not while a daemon runs on that data directory.
    let out = detach_all();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(xdp_prog_id(a, dev).is_some(), "still attached");
    let log = second.stderr();
    assert!(second.stop().success(), "{log}");
    // Traffic after the second stop: only the pinned programs count it.
    assert_eq!(ping(a, peer, 3, 56).received, 3);

    let out = detach_all();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        xdp_prog_id(a, dev),
        None,
        "nothing attached after --detach-all"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("added their last counts"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The last counts went into the data directory: a new start (new maps, counting from zero)
    // shows everything since the first start, the pings after the second stop included.
    let third = Daemon::spawn(a, addr, ntop_tests::daemon::ntop_command_in(a, &dir, &args));
    let total = link_stats(a, dev).since(&link_base).rx_packets;
    assert!(total >= after + 3, "{after} then {total}");
    assert_eq!(rx(&third), Some(total), "the totals after --detach-all");
    assert!(third.stop().success());
}
