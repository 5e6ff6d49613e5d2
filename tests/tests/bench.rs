//! Benchmarks, run by `cargo xtask bench` (ignored by `cargo test`). Each prints a Markdown
//! table row set; every ntop number comes with a reference measured in the same run.
//!
//! - Per-packet cost of the kernel programs through `BPF_PROG_TEST_RUN`, beside programs that
//!   only pass the packet.
//! - The collector's poll cost (`Kernel::read_into` a reused sample + `State::ingest`, as the
//!   collector thread does it) at 10k and 100k hosts.
//! - The live receive rate of a 2-queue veth flooded by `trafgen` with 64-byte UDP frames, with
//!   the ntop daemon attached, with an empty native XDP program attached, and with nothing
//!   attached, interleaved in one run (`docs/BENCHMARKS.md` has results and how to read them).

use std::{
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, UdpSocket},
    path::PathBuf,
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp, XdpMode};
use ntop::{
    ebpf::{
        Kernel, ModeRequest, PROG_BENCH_TC_NEXT, PROG_BENCH_XDP_PASS, PROG_TC_EGRESS, PROG_XDP,
    },
    sample::Sample,
    state::State,
};
use ntop_common::testing::{eth, frame, ipv4, ipv4_between, ipv6, tcp, udp};
use ntop_tests::{
    Daemon, TestNet, VethConfig, link_stats,
    testrun::{self, LO, program, skb_ctx, xdp_ctx},
    wait_until,
};

/// The programs loaded for `lo` (not attached), with the reference programs
/// [`PROG_BENCH_XDP_PASS`] and [`PROG_BENCH_TC_NEXT`] loaded too.
fn load(max_hosts: u32) -> Kernel {
    let mut k = testrun::load("lo", ModeRequest::Xdp, max_hosts);
    load_xdp_pass(&mut k);
    program::<SchedClassifier>(&mut k, PROG_BENCH_TC_NEXT)
        .load()
        .expect("loading the empty TC program");
    k
}

/// Loads [`PROG_BENCH_XDP_PASS`] of `k` and returns it.
fn load_xdp_pass(k: &mut Kernel) -> &mut Xdp {
    let p = program::<Xdp>(k, PROG_BENCH_XDP_PASS);
    p.load().expect("loading the empty XDP program");
    p
}

/// Mean kernel-measured time per run of `repeat` runs of one packet.
fn per_packet(k: &mut Kernel, name: &str, xdp: bool, data: &[u8], repeat: u32) -> Duration {
    let xctx = xdp_ctx(LO, data.len());
    let sctx = skb_ctx(LO, 0, 0, 0);
    let opts = TestRunOptions {
        data_in: Some(data),
        ctx_in: Some(if xdp { &xctx[..] } else { &sctx[..] }),
        repeat,
        ..TestRunOptions::default()
    };
    let r = if xdp {
        program::<Xdp>(k, name).test_run(opts)
    } else {
        program::<SchedClassifier>(k, name).test_run(opts)
    };
    r.expect("test run").duration
}

/// Median over 7 rounds of [`per_packet`] with 200,000 runs each, in nanoseconds.
fn median(k: &mut Kernel, name: &str, xdp: bool, data: &[u8]) -> f64 {
    let v: Vec<f64> = (0..7)
        .map(|_| per_packet(k, name, xdp, data, 200_000).as_secs_f64() * 1e9)
        .collect();
    median_of(&v)
}

fn padded(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    f.resize(len, 0);
    f
}

/// Pins the calling thread to `cpu`.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only read
    // and write that set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set),
            0,
            "pinning a benchmark thread to CPU {cpu}"
        );
    }
}

/// Per-packet ns of XDP test runs of `frames[i]` on CPU `i`, all CPUs at once (median of 5).
fn concurrent_per_packet(k: &mut Kernel, program_name: &str, frames: &[Vec<u8>]) -> Vec<f64> {
    let prog: &Xdp = program::<Xdp>(k, program_name);
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); frames.len()];
    for _ in 0..5 {
        let barrier = std::sync::Barrier::new(frames.len());
        let results: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = frames
                .iter()
                .enumerate()
                .map(|(cpu, f)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        pin_to_cpu(cpu);
                        let ctx = xdp_ctx(LO, f.len());
                        barrier.wait();
                        let r = prog
                            .test_run(TestRunOptions {
                                data_in: Some(f),
                                ctx_in: Some(&ctx),
                                repeat: 2_000_000,
                                ..TestRunOptions::default()
                            })
                            .expect("test run");
                        r.duration.as_secs_f64() * 1e9
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("benchmark thread"))
                .collect()
        });
        for (cpu, ns) in results.into_iter().enumerate() {
            rounds[cpu].push(ns);
        }
    }
    rounds.iter().map(|v| median_of(v)).collect()
}

/// Two CPUs counting at once: packets that update the same two host entries on both CPUs (a
/// busy server behind the gateway) against packets whose hosts differ per CPU. The difference is
/// the cost of the shared entries' cache lines moving between CPUs on every atomic add.
#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn bpf_contended_host_cost() {
    let cpus = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(2);
    assert!(cpus >= 2, "this benchmark needs two CPUs");
    let mut k = load(1 << 16);
    let udp_frame = |src: [u8; 4], dst: [u8; 4]| {
        padded(
            frame(&[
                &eth(0x0800, &[]),
                &ipv4_between(src, dst, 17, 0, 0, &udp(1, 2, 0)),
            ]),
            64,
        )
    };
    let shared = vec![udp_frame([198, 18, 9, 1], [198, 18, 9, 2]); 2];
    let apart = vec![
        udp_frame([198, 18, 9, 1], [198, 18, 9, 2]),
        udp_frame([198, 18, 9, 3], [198, 18, 9, 4]),
    ];
    let ntop_shared = concurrent_per_packet(&mut k, PROG_XDP, &shared);
    let ntop_apart = concurrent_per_packet(&mut k, PROG_XDP, &apart);
    let base = concurrent_per_packet(&mut k, PROG_BENCH_XDP_PASS, &apart);
    println!("| XDP, 2 CPUs at once, 64 B UDP | CPU 0 ns/packet | CPU 1 ns/packet |");
    println!("|---|---|---|");
    println!(
        "| same two hosts on both CPUs | {:.1} | {:.1} |",
        ntop_shared[0], ntop_shared[1]
    );
    println!(
        "| different hosts per CPU | {:.1} | {:.1} |",
        ntop_apart[0], ntop_apart[1]
    );
    println!(
        "| empty XDP program (reference) | {:.1} | {:.1} |",
        base[0], base[1]
    );
}

#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn bpf_per_packet_cost() {
    let mut k = load(1 << 20);
    let tcp64 = padded(
        frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &tcp(1, 2, 0))]),
        64,
    );
    let tcp1500 = padded(
        frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &tcp(1, 2, 0))]),
        1514,
    );
    let v6 = padded(
        frame(&[&eth(0x86dd, &[]), &ipv6(17, &[], &udp(1, 2, 0))]),
        1514,
    );
    println!("| program | frame | ntop ns/packet | reference ns/packet | difference |");
    println!("|---|---|---|---|---|");
    for (name, f) in [
        ("IPv4 TCP 64 B", &tcp64),
        ("IPv4 TCP 1514 B", &tcp1500),
        ("IPv6 UDP 1514 B", &v6),
    ] {
        let ntop = median(&mut k, PROG_XDP, true, f);
        let base = median(&mut k, PROG_BENCH_XDP_PASS, true, f);
        println!(
            "| XDP, existing hosts | {name} | {ntop:.1} | {base:.1} | {:.1} |",
            ntop - base
        );
        let ntop = median(&mut k, PROG_TC_EGRESS, false, f);
        let base = median(&mut k, PROG_BENCH_TC_NEXT, false, f);
        println!(
            "| TC egress, existing hosts | {name} | {ntop:.1} | {base:.1} | {:.1} |",
            ntop - base
        );
    }
    // New hosts: every packet has a new source, so each run inserts one host.
    let n = 20_000u32;
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let b = i.to_be_bytes();
            padded(
                frame(&[
                    &eth(0x0800, &[]),
                    &ipv4_between(
                        [198, 18, b[2], b[3]],
                        [198, 19, 0, 1],
                        6,
                        0,
                        0,
                        &tcp(1, 2, 0),
                    ),
                ]),
                64,
            )
        })
        .collect();
    let mut total = Duration::ZERO;
    let mut base = Duration::ZERO;
    for f in &frames {
        total += per_packet(&mut k, PROG_XDP, true, f, 1);
        base += per_packet(&mut k, PROG_BENCH_XDP_PASS, true, f, 1);
    }
    let (ntop, base) = (
        total.as_secs_f64() * 1e9 / f64::from(n),
        base.as_secs_f64() * 1e9 / f64::from(n),
    );
    println!(
        "| XDP, new source host each packet | IPv4 TCP 64 B | {ntop:.1} | {base:.1} | {:.1} |",
        ntop - base
    );
}

#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn collector_poll_cost() {
    println!("| active hosts | Kernel::read_into (median) | State::ingest (median) | total |");
    println!("|---|---|---|---|");
    for hosts in [10_000u32, 100_000] {
        let mut k = load(hosts + 16);
        // One frame per source host, all to one destination: hosts + 1 entries. Sources are
        // 198.18.x.y, then 198.19.x.y past 65,536.
        for i in 0..hosts {
            let b = i.to_be_bytes();
            let src = [198, 18 + b[1], b[2], b[3]];
            let f = frame(&[
                &eth(0x0800, &[]),
                &ipv4_between(src, [198, 19, 255, 255], 17, 0, 0, &udp(1, 2, 10)),
            ]);
            per_packet(&mut k, PROG_XDP, true, &f, 1);
        }
        let mut state = State::new();
        // One sample reused across polls, like the collector thread.
        let mut sample = Sample::empty();
        let mut reads = Vec::new();
        let mut ingests = Vec::new();
        for _ in 0..11 {
            let t = Instant::now();
            k.read_into(&mut sample).unwrap();
            reads.push(t.elapsed());
            assert!(
                sample.hosts.len() > usize::try_from(hosts).unwrap(),
                "every host was inserted"
            );
            let t = Instant::now();
            state.ingest(&sample);
            ingests.push(t.elapsed());
        }
        reads.sort();
        ingests.sort();
        let (r, i) = (reads[5], ingests[5]);
        println!("| {hosts} | {r:?} | {i:?} | {:?} |", r + i);
    }
}

/// Frames per `trafgen` run, split evenly over its two processes.
const TRAFGEN_FRAMES: u64 = 3_000_000;
/// Measured runs of each receiver configuration.
const TRAFGEN_ROUNDS: usize = 7;
/// Second source address of the flood (the first is the sender's own address).
const SECOND_SOURCE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
/// Destination port of the flood (discard), bound on the receiver by a socket nobody reads.
const FLOOD_PORT: u16 = 9;

/// What is attached to the receiving veth during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Receiver {
    /// The ntop daemon (native XDP ingress, TCX egress, collector, HTTP API).
    Ntop,
    /// [`PROG_BENCH_XDP_PASS`] in native mode.
    EmptyXdp,
    /// No program.
    Nothing,
}

impl Receiver {
    const ALL: [Self; 3] = [Self::Ntop, Self::EmptyXdp, Self::Nothing];

    fn label(self) -> &'static str {
        match self {
            Self::Ntop => "ntop daemon (native XDP + TCX egress)",
            Self::EmptyXdp => "empty XDP program (native, XDP_PASS)",
            Self::Nothing => "nothing attached",
        }
    }
}

/// One `trafgen` run as the receiver saw it.
#[derive(Clone, Copy, Debug)]
struct Run {
    /// `rx_packets` delta of the receiving veth.
    received: u64,
    /// Wall time of the `trafgen` process.
    elapsed: Duration,
}

impl Run {
    fn mpps(self) -> f64 {
        u64_to_f64(self.received) / self.elapsed.as_secs_f64() / 1e6
    }
}

/// `n` as `f64` (packet counts here stay far below 2^32).
fn u64_to_f64(n: u64) -> f64 {
    let n = u32::try_from(n).expect("packet count below 2^32");
    f64::from(n)
}

/// The RFC 1071 checksum of an IPv4 header whose checksum field is zero.
fn ipv4_header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded to 16 bits")
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn parse_mac(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC `{text}`: {e}")))
        .collect();
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("MAC `{text}` is not 6 bytes"))
}

/// A 64-byte Ethernet/IPv4/UDP frame (22 bytes of payload, valid IPv4 checksum, no UDP
/// checksum) to [`FLOOD_PORT`].
fn udp64(dst_mac: [u8; 6], src_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut ip = ipv4_between(
        src.octets(),
        dst.octets(),
        17,
        0,
        0,
        &udp(sport, FLOOD_PORT, 22),
    );
    let sum = ipv4_header_checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let f = frame(&[&dst_mac, &src_mac, &0x0800_u16.to_be_bytes(), &ip]);
    assert_eq!(f.len(), 64);
    f
}

/// A `trafgen` configuration file in a scratch directory that goes on drop (the harness also
/// removes `ntopt-<pid>-…` entries of dead processes).
struct TrafgenConfig {
    dir: PathBuf,
    file: PathBuf,
}

impl TrafgenConfig {
    /// One frame per CPU of the sender, as plain bytes (`cpu(N): { 0x.., … }`): CPU 0 sends from
    /// the sender's address and port 1000, CPU 1 from [`SECOND_SOURCE`] and port 1001, both to
    /// the receiver. `trafgen -P2` pins one process per CPU, and a packet socket's skb gets the
    /// sending CPU as its queue hint, so CPU N's frames take tx queue N and arrive on rx queue N
    /// ([`xdp_queue_packets`] checks that). Plain bytes, because trafgen 0.6.8's header
    /// functions (`eth(…)`, `ipv4(…)`) in `cpu(N):` packets crashed its worker here, after
    /// which trafgen waits forever.
    fn write(net: &TestNet) -> Self {
        let dst_mac = parse_mac(&net.link.mac_b);
        let src_mac = parse_mac(&net.link.mac_a);
        let mut text = String::new();
        for (cpu, (src, sport)) in [(net.link.ipv4_a, 1000), (SECOND_SOURCE, 1001)]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<String> = udp64(dst_mac, src_mac, src, net.link.ipv4_b, sport)
                .iter()
                .map(|b| format!("{b:#04x}"))
                .collect();
            writeln!(text, "cpu({cpu}): {{ {} }}", bytes.join(", ")).expect("writing to a String");
        }
        let dir = std::env::temp_dir().join(format!("ntopt-{}-trafgen", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let file = dir.join("udp64.cfg");
        fs::write(&file, text).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        Self { dir, file }
    }
}

impl Drop for TrafgenConfig {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Sends `frames` frames with `trafgen -P2` from namespace A and returns what veth B received
/// in the meantime. Panics with trafgen's output unless it reports every frame sent and some
/// arrived.
fn trafgen(net: &TestNet, config: &TrafgenConfig, frames: u64) -> Run {
    // At least 100k frames/s, or the run is broken (trafgen spins forever when one of its
    // processes dies).
    let limit = (frames / 100_000 + 10).to_string();
    let frames_arg = frames.to_string();
    let config_path = config.file.to_string_lossy().into_owned();
    let before = link_stats(&net.b, &net.link.dev_b);
    let start = Instant::now();
    let out = net.a.exec(
        "timeout",
        [
            "-k",
            "2",
            &limit,
            "trafgen",
            "-o",
            &net.link.dev_a,
            "-i",
            &config_path,
            "-P2",
            "-n",
            &frames_arg,
            // A veth has no IRQ to move.
            "-Q",
        ],
    );
    let elapsed = start.elapsed();
    let received = link_stats(&net.b, &net.link.dev_b)
        .since(&before)
        .rx_packets;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sent = stdout
        .lines()
        .find(|l| l.contains("packets outgoing"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok());
    assert!(
        out.status.success() && sent == Some(frames) && received > 0,
        "trafgen did not send {frames} frames ({}; reported {sent:?} sent, {received} received by \
         {}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        net.link.dev_b,
        stdout.trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Run { received, elapsed }
}

/// Packets the receiving veth's rx queues 0 and 1 took through the XDP (NAPI) path
/// (`rx_queue_N_xdp_packets` of `ethtool -S`; counted only while an XDP program is attached).
fn xdp_queue_packets(net: &TestNet) -> [u64; 2] {
    let out = net.b.run("ethtool", ["-S", net.link.dev_b.as_str()]);
    [0, 1].map(|q| {
        let key = format!("rx_queue_{q}_xdp_packets:");
        out.lines()
            .find_map(|l| l.trim().strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in `ethtool -S {}`:\n{out}", net.link.dev_b))
    })
}

/// [`trafgen`] with an XDP program attached to veth B; panics unless each of its two rx queues
/// took at least a quarter of the frames.
fn trafgen_xdp(net: &TestNet, config: &TrafgenConfig, frames: u64) -> Run {
    let before = xdp_queue_packets(net);
    let run = trafgen(net, config, frames);
    let after = xdp_queue_packets(net);
    let per_queue = [after[0] - before[0], after[1] - before[1]];
    assert!(
        per_queue.iter().all(|&q| q >= run.received / 4),
        "the two rx queues of {} took {per_queue:?} of {} frames: both should be busy",
        net.link.dev_b,
        run.received
    );
    run
}

/// The daemon's entry for `dev` in `GET /api/v1/interfaces`.
fn ntop_interface(daemon: &Daemon, dev: &str) -> Option<serde_json::Value> {
    let mut doc = daemon.get("/api/v1/interfaces");
    let list = doc["interfaces"].as_array_mut()?;
    let i = list.iter().position(|i| i["name"] == dev)?;
    Some(list.swap_remove(i))
}

/// Waits until the daemon has polled `expected` received packets on `dev` (it polls once a
/// second), and returns its count then (the last one seen if it never got there).
fn ntop_rx_packets(daemon: &Daemon, dev: &str, expected: u64) -> u64 {
    let mut last = 0;
    wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        last = ntop_interface(daemon, dev)?["rx"]["packets"].as_u64()?;
        (last >= expected).then_some(())
    });
    last
}

/// Loads the kernel object for veth B without attaching it, then attaches
/// [`PROG_BENCH_XDP_PASS`] in native mode. Dropping the result detaches it.
fn attach_empty_xdp(net: &TestNet) -> Kernel {
    let dev = net.link.dev_b.as_str();
    net.b.enter(|| {
        let mut k = testrun::load(dev, ModeRequest::XdpNative, 16);
        load_xdp_pass(&mut k)
            .attach(dev, XdpMode::Driver)
            .expect("attaching the empty XDP program in native mode");
        k
    })
}

/// One run with the daemon attached: the run, the receiving veth's `rx_packets` delta from
/// before the daemon started until after the send, and the daemon's own count (which must be
/// equal: native XDP on a veth sees every packet the veth counts).
fn ntop_run(net: &TestNet, config: &TrafgenConfig) -> (Run, u64, u64) {
    let dev = net.link.dev_b.as_str();
    let attached = link_stats(&net.b, dev);
    // Listens on `daemon::API` (127.0.0.1:3000) inside the namespace; `start` returns after
    // the first poll, so the programs are attached.
    let daemon = Daemon::start(
        &net.b,
        &[
            "-i",
            dev,
            "--capture-mode",
            "xdp-native",
            "--memory-budget",
            "16M",
        ],
    );
    let mode = ntop_interface(&daemon, dev).map(|i| i["capture_mode"].clone());
    assert_eq!(
        mode,
        Some("xdp-native".into()),
        "ntop's capture mode on {dev}"
    );
    let run = trafgen_xdp(net, config, TRAFGEN_FRAMES);
    let link = link_stats(&net.b, dev).since(&attached).rx_packets;
    let ntop = ntop_rx_packets(&daemon, dev, link);
    let log = daemon.stderr();
    let status = daemon.stop();
    assert!(status.success(), "ntop exited with {status}:\n{log}");
    assert_eq!(
        ntop, link,
        "ntop's rx packets on {dev} against the kernel's rx_packets delta"
    );
    (run, link, ntop)
}

/// Median of a non-empty slice.
fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn live_receive_rate_trafgen() {
    let net = TestNet::new(&VethConfig::default().queues(2));
    // A socket on the flood's port that is never read: once its buffer is full, each datagram
    // goes through IP and the UDP socket lookup and is dropped at the socket (UdpRcvbufErrors).
    // Without it every datagram would make the receiver route an ICMP port-unreachable
    // answer before rate-limiting it, which costs more than the rest of the receive path.
    let sink = net
        .b
        .enter(|| UdpSocket::bind((net.link.ipv4_b, FLOOD_PORT)))
        .expect("binding the flood's UDP port on the receiver");
    // The second source gets a permanent neighbour entry like the first (no ARP, whatever the
    // receiver answers).
    net.b.ip([
        "neigh",
        "replace",
        &SECOND_SOURCE.to_string(),
        "lladdr",
        &net.link.mac_a,
        "dev",
        &net.link.dev_b,
        "nud",
        "permanent",
    ]);
    let config = TrafgenConfig::write(&net);
    // Warm-up, not measured.
    trafgen(&net, &config, TRAFGEN_FRAMES / 8);

    // rounds[n][i] is round n's run of Receiver::ALL[i].
    let mut rounds: Vec<[Run; 3]> = Vec::new();
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for round in 0..TRAFGEN_ROUNDS {
        let mut this = [None; 3];
        // Each round starts with the next configuration: A,B,C then B,C,A, …
        for k in 0..Receiver::ALL.len() {
            let i = (round + k) % Receiver::ALL.len();
            let receiver = Receiver::ALL[i];
            let run = match receiver {
                Receiver::Ntop => {
                    let (run, link, ntop) = ntop_run(&net, &config);
                    counts.push((link, ntop));
                    run
                }
                Receiver::EmptyXdp => {
                    let kernel = attach_empty_xdp(&net);
                    let run = trafgen_xdp(&net, &config, TRAFGEN_FRAMES);
                    drop(kernel);
                    run
                }
                Receiver::Nothing => trafgen(&net, &config, TRAFGEN_FRAMES),
            };
            eprintln!(
                "round {round}: {:<40} {:>9} received in {:>7.3} s = {:.3} Mpps",
                receiver.label(),
                run.received,
                run.elapsed.as_secs_f64(),
                run.mpps()
            );
            this[i] = Some(run);
        }
        rounds.push(this.map(|r| r.expect("every configuration ran")));
    }
    drop(sink);
    print_live_tables(&rounds, &counts);
}

/// The Markdown tables of [`live_receive_rate_trafgen`]: medians over the rounds, then each
/// round with its own ratios (robust to drift between rounds), then ntop's counts.
fn print_live_tables(rounds: &[[Run; 3]], counts: &[(u64, u64)]) {
    let [ntop, empty, nothing] = [0, 1, 2].map(|i| {
        let rates: Vec<f64> = rounds.iter().map(|r| r[i].mpps()).collect();
        median_of(&rates)
    });
    let median_ratio = |a: usize, b: usize| {
        let ratios: Vec<f64> = rounds.iter().map(|r| r[a].mpps() / r[b].mpps()).collect();
        median_of(&ratios)
    };
    println!(
        "\n{} rounds of {TRAFGEN_FRAMES} 64-byte UDP frames, trafgen -P2 into a 2-queue veth; \
         medians\n",
        rounds.len()
    );
    println!(
        "| receiver | median Mpps | ratio to nothing attached | ratio to empty XDP | delivered |"
    );
    println!("|---|---|---|---|---|");
    for (i, (r, mpps)) in Receiver::ALL
        .into_iter()
        .zip([ntop, empty, nothing])
        .enumerate()
    {
        let to_empty = match r {
            Receiver::Ntop => format!("{:.3}", ntop / empty),
            Receiver::EmptyXdp => "1".to_owned(),
            Receiver::Nothing => "–".to_owned(),
        };
        let delivered: Vec<f64> = rounds
            .iter()
            .map(|round| u64_to_f64(round[i].received) / u64_to_f64(TRAFGEN_FRAMES) * 100.0)
            .collect();
        println!(
            "| {} | {mpps:.3} | {:.3} | {to_empty} | {:.1} % |",
            r.label(),
            mpps / nothing,
            median_of(&delivered)
        );
    }
    println!(
        "\n| round | ntop Mpps | empty XDP Mpps | nothing Mpps | ntop / empty XDP | ntop / nothing \
         | empty XDP / nothing |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (n, r) in rounds.iter().enumerate() {
        let [a, b, c] = r.map(Run::mpps);
        println!(
            "| {} | {a:.3} | {b:.3} | {c:.3} | {:.3} | {:.3} | {:.3} |",
            n + 1,
            a / b,
            a / c,
            b / c
        );
    }
    println!(
        "| median | {ntop:.3} | {empty:.3} | {nothing:.3} | {:.3} | {:.3} | {:.3} |",
        median_ratio(0, 1),
        median_ratio(0, 2),
        median_ratio(1, 2)
    );
    // Both CPUs send and receive for the whole run (one trafgen process each; the receive path
    // runs in their softirq), so wall time per packet × 2 approximates CPU time per packet.
    let extra: Vec<f64> = rounds
        .iter()
        .map(|r| 2.0 * (1e3 / r[0].mpps() - 1e3 / r[1].mpps()))
        .collect();
    println!(
        "\nCPU time per packet of ntop over the empty XDP program, median of the rounds (assumes \
         both CPUs busy): {:.0} ns",
        median_of(&extra)
    );
    println!("\n| ntop run | veth rx_packets delta | ntop rx packets (API) |");
    println!("|---|---|---|");
    for (i, (link, ntop)) in counts.iter().enumerate() {
        println!("| {} | {link} | {ntop} |", i + 1);
    }
}
