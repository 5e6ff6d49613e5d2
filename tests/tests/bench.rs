//! Benchmarks, run by `cargo xtask bench` (ignored by `cargo test`). Each prints a Markdown
//! table row set; every ntop number comes with a reference measured in the same run.
//!
//! - Per-packet cost of the kernel programs through `BPF_PROG_TEST_RUN`, beside programs that
//!   only pass the packet.
//! - The collector's poll cost (`Kernel::read_into` a reused sample + `State::ingest`, as the
//!   collector thread does it) at 10k and 100k hosts.
//! - The persister's write path (`State::checkpoint` under the state's lock, `History::commit`,
//!   `downsample_and_expire`) at 10k and 100k hand-built active hosts in a scratch data
//!   directory, against `State::ingest` of the same polls; and disk bytes per host-day.
//! - The live receive rate of a 2-queue veth flooded by `trafgen` with 64-byte UDP frames, with
//!   the ntop daemon attached, with an empty native XDP program attached, and with nothing
//!   attached, interleaved in one run (`docs/BENCHMARKS.md` has results and how to read them).

use std::{
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, Ipv6Addr, UdpSocket},
    path::PathBuf,
    sync::PoisonError,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp, XdpMode};
use ntop::{
    ebpf::{
        Kernel, ModeRequest, PROG_BENCH_TC_NEXT, PROG_BENCH_XDP_NO_PAIRS, PROG_BENCH_XDP_PASS,
        PROG_TC_EGRESS, PROG_XDP,
    },
    history::{self, History, HistoryConfig},
    sample::{CaptureMode, InterfaceSample, Sample},
    state::{SharedState, State},
    store::DataDir,
};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, L4Class, RECEIVED, SENT},
    proto::PROTO_SLOTS,
    testing::{eth, frame, ipv4, ipv4_between, ipv6, tcp, udp},
};
use ntop_tests::{
    Daemon, TestNet, VethConfig, link_stats,
    testrun::{self, LO, program, skb_ctx, xdp_ctx},
    wait_until,
};

/// The programs loaded for `lo` (not attached), with the reference programs
/// [`PROG_BENCH_XDP_PASS`], [`PROG_BENCH_XDP_NO_PAIRS`] and [`PROG_BENCH_TC_NEXT`] loaded too.
fn load(max_hosts: u32) -> Kernel {
    let mut k = testrun::load("lo", ModeRequest::Xdp, max_hosts);
    load_xdp_pass(&mut k);
    program::<Xdp>(&mut k, PROG_BENCH_XDP_NO_PAIRS)
        .load()
        .expect("loading the XDP program without pairs");
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
    let mut no_peers = testrun::load_with("lo", ModeRequest::Xdp, 1 << 20, false);
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
        // The pair map's share: ntop's XDP program against the same without pairs.
        let ntop = median(&mut k, PROG_XDP, true, f);
        let base = median(&mut k, PROG_BENCH_XDP_NO_PAIRS, true, f);
        println!(
            "| XDP, existing hosts and pair (reference: XDP without the pair map) | {name} | \
             {ntop:.1} | {base:.1} | {:.1} |",
            ntop - base
        );
        // `--no-peers` (the loader's global turns the pair code off): should cost what the
        // reference without the pair map costs.
        let ntop = median(&mut no_peers, PROG_XDP, true, f);
        let base = median(&mut k, PROG_BENCH_XDP_NO_PAIRS, true, f);
        println!(
            "| XDP `--no-peers`, existing hosts (reference: XDP without the pair map) | {name} | \
             {ntop:.1} | {base:.1} | {:.1} |",
            ntop - base
        );
    }
    new_entry_costs(&mut k);
}

/// Rows of [`bpf_per_packet_cost`] for packets that insert: a new source host (and pair) each
/// packet, and a new pair of known hosts each packet.
fn new_entry_costs(k: &mut Kernel) {
    // 64-byte TCP frames from 198.18.x.y (x.y = 0..n) to `dst`.
    let n = 20_000u32;
    let from_each_source = |dst: [u8; 4]| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let b = i.to_be_bytes();
                let ip = ipv4_between([198, 18, b[2], b[3]], dst, 6, 0, 0, &tcp(1, 2, 0));
                padded(frame(&[&eth(0x0800, &[]), &ip]), 64)
            })
            .collect()
    };
    // New hosts: every packet has a new source, so each run inserts one host (and one pair).
    let frames = from_each_source([198, 19, 0, 1]);
    let mut total = Duration::ZERO;
    let mut base = Duration::ZERO;
    for f in &frames {
        total += per_packet(k, PROG_XDP, true, f, 1);
        base += per_packet(k, PROG_BENCH_XDP_PASS, true, f, 1);
    }
    // The same packets once more through the program without pairs (the hosts exist now), to
    // compare with ntop's program on known hosts but new pairs (a new destination).
    let mut no_pairs = Duration::ZERO;
    let mut new_pairs = Duration::ZERO;
    for f in &frames {
        no_pairs += per_packet(k, PROG_BENCH_XDP_NO_PAIRS, true, f, 1);
    }
    let to_other = from_each_source([198, 19, 0, 2]);
    // Warm the new destination's host entry, then every packet is a new pair of known hosts.
    per_packet(k, PROG_BENCH_XDP_NO_PAIRS, true, &to_other[0], 1);
    for f in &to_other[1..] {
        new_pairs += per_packet(k, PROG_XDP, true, f, 1);
    }
    let per = |d: Duration, count: u32| d.as_secs_f64() * 1e9 / f64::from(count);
    let (ntop, base) = (per(total, n), per(base, n));
    println!(
        "| XDP, new source host each packet | IPv4 TCP 64 B | {ntop:.1} | {base:.1} | {:.1} |",
        ntop - base
    );
    let (new_pair, known) = (per(new_pairs, n - 1), per(no_pairs, n));
    println!(
        "| XDP, new pair of known hosts each packet (reference: XDP without the pair map, same \
         hosts) | IPv4 TCP 64 B | {new_pair:.1} | {known:.1} | {:.1} |",
        new_pair - known
    );
}

#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn collector_poll_cost() {
    println!(
        "| active hosts | pair map read | Kernel::read_into (median) | State::ingest (median) \
         | total |"
    );
    println!("|---|---|---|---|---|");
    for hosts in [10_000u32, 100_000] {
        let mut k = load(hosts + 16);
        // One frame per source host, all to one destination: hosts + 1 host entries and hosts
        // pair entries. Sources are 198.18.x.y, then 198.19.x.y past 65,536.
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
        // One sample reused across polls, like the collector thread. 11 polls that read the
        // pair map (as one poll in PAIR_REFRESH does) and 11 that do not (the others).
        let mut sample = Sample::empty();
        for with_pairs in [true, false] {
            let mut reads = Vec::new();
            let mut ingests = Vec::new();
            for _ in 0..11 {
                if with_pairs {
                    k.read_pairs_next();
                }
                let t = Instant::now();
                k.read_into(&mut sample).unwrap();
                reads.push(t.elapsed());
                assert_eq!(sample.pairs_read, with_pairs);
                assert!(
                    sample.hosts.len() > usize::try_from(hosts).unwrap(),
                    "every host was inserted"
                );
                assert!(sample.pairs.len() >= usize::try_from(hosts).unwrap());
                let t = Instant::now();
                state.ingest(&sample);
                ingests.push(t.elapsed());
            }
            reads.sort();
            ingests.sort();
            let (r, i) = (reads[5], ingests[5]);
            let read = if with_pairs { "yes" } else { "no" };
            println!("| {hosts} | {read} | {r:?} | {i:?} | {:?} |", r + i);
        }
    }
}

/// Simulated polls per size in [`persist_write_cost`]: six minutes and one, one a second.
const PERSIST_POLLS: u64 = 6 * 60 + 1;
/// Hosts of the disk measure of [`persist_write_cost`] (one day of minute checkpoints).
const DAY_HOSTS: u32 = 1000;
/// The interface of the simulated hosts.
const SIM_IFACE: &str = "bench0";
const SIM_IFINDEX: u32 = 2;
/// An hour-aligned start for the simulated polls (2026-09-21).
const SIM_T0: u64 = 1_790_000_000 - 1_790_000_000 % 3600;
/// Interface protocol slots with traffic in the write-cost runs.
const SIM_SLOTS: usize = 40;

/// The key of simulated host `i` on [`SIM_IFINDEX`]: even `i` from `198.18.0.0/15`, odd `i`
/// from `2001:db8::/32`.
fn sim_host_key(i: u32) -> HostKey {
    let addr = if i.is_multiple_of(2) {
        assert!(i / 2 < 1 << 17, "198.18.0.0/15 holds 131,072 addresses");
        Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + i / 2)
            .to_ipv6_mapped()
            .octets()
    } else {
        Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(i)).octets()
    };
    HostKey {
        addr,
        ifindex: SIM_IFINDEX,
    }
}

/// Hand-built samples, as `Kernel::read_into` delivers them: `hosts` hosts on one interface,
/// every one of which sends (TCP) and receives (UDP) at its own steady rate, so each host's
/// counters grow with every poll.
struct SimTraffic {
    sample: Sample,
    /// Whether the interface's protocol counters grow too ([`SIM_SLOTS`] slots each way).
    protocols: bool,
}

impl SimTraffic {
    /// The first poll, at [`SIM_T0`], one second into the traffic.
    fn new(hosts: u32, protocols: bool) -> Self {
        let mut sample = Sample::empty();
        sample.at = UNIX_EPOCH + Duration::from_secs(SIM_T0);
        sample.interfaces.push(InterfaceSample {
            name: SIM_IFACE.into(),
            ifindex: SIM_IFINDEX,
            mode: CaptureMode::XdpNative,
            proto: [0, 1].map(|_| Box::new([Counter::default(); PROTO_SLOTS as usize])),
            other_hosts: HostCounters::default(),
        });
        sample.hosts = (0..hosts)
            .map(|i| (sim_host_key(i), HostCounters::default()))
            .collect();
        sample.host_capacity = hosts.next_power_of_two();
        let mut t = Self { sample, protocols };
        t.grow(1);
        t
    }

    /// The next poll, `secs` seconds later.
    fn advance(&mut self, secs: u64) {
        self.sample.at += Duration::from_secs(secs);
        self.sample.monotonic += Duration::from_secs(secs);
        self.grow(secs);
    }

    fn grow(&mut self, secs: u64) {
        fn add(c: &mut Counter, bytes: u64, packets: u64) {
            c.bytes += bytes;
            c.packets += packets;
        }
        for (i, (_, c)) in (0_u64..).zip(&mut self.sample.hosts) {
            // 100–1,500 B/s sent, 100–1,000 B/s received, different per host.
            add(
                &mut c.c[SENT][L4Class::Tcp as usize],
                secs * (100 + i * 37 % 1400),
                secs * (1 + i % 3),
            );
            add(
                &mut c.c[RECEIVED][L4Class::Udp as usize],
                secs * (100 + i * 53 % 900),
                secs * (1 + i % 2),
            );
        }
        if self.protocols {
            for dir in &mut self.sample.interfaces[0].proto {
                for (slot, c) in (1_u64..).zip(&mut dir[..SIM_SLOTS]) {
                    add(c, secs * 10_000 * slot, secs * 10 * slot);
                }
            }
        }
    }
}

/// A data directory in the temporary directory (the root file system here, like
/// `/var/lib/ntop`), removed on drop (the harness also removes `ntopt-<pid>-…` entries of dead
/// processes).
struct ScratchDir {
    path: PathBuf,
    data: DataDir,
}

impl ScratchDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ntopt-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        let data =
            DataDir::open(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self { path, data }
    }

    /// Size of `history.db` and of its `-wal` on disk.
    fn history_files(&self) -> (u64, u64) {
        let len = |name: &str| fs::metadata(self.data.file(name)).map_or(0, |m| m.len());
        (
            len(history::FILE_NAME),
            len(&format!("{}-wal", history::FILE_NAME)),
        )
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One poll of the collector: `State::ingest` under the state's write lock; how long it took.
fn sim_ingest(state: &SharedState, sample: &Sample) -> Duration {
    let start = Instant::now();
    state
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .ingest(sample);
    start.elapsed()
}

/// The persister thread's round after a poll (`ntop::persist`), step for step, timed.
struct SimPersister {
    state: SharedState,
    history: History,
    last_hosts: Option<SystemTime>,
}

/// What one round of [`SimPersister`] did and took.
struct Round {
    /// Whether it took the hosts' checkpoint (the first round and once a minute).
    hosts: bool,
    /// Host points it committed.
    host_points: usize,
    /// Time the state's write lock was held for the checkpoint (taking it included).
    checkpoint: Duration,
    /// `History::commit`.
    commit: Duration,
}

impl SimPersister {
    fn new(dir: &ScratchDir) -> Self {
        Self {
            state: State::shared(),
            history: History::open(&dir.data, HistoryConfig::default())
                .expect("opening the history database"),
            last_hosts: None,
        }
    }

    /// `Worker::persist` without its fault handling: checkpoint under the lock (hosts when the
    /// poll's minute differs from the last host checkpoint's), then commit, host points going
    /// to the middle of the interval since the last host checkpoint.
    fn round(&mut self) -> Round {
        let start = Instant::now();
        let (hosts, checkpoint) = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let minute =
                |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60);
            let hosts = match (self.last_hosts, state.polled_at()) {
                (None, _) => true,
                (Some(prev), Some(at)) => minute(prev) != minute(at),
                (Some(_), None) => false,
            };
            (hosts, state.checkpoint(hosts))
        };
        let locked = start.elapsed();
        let hosts_at = match self.last_hosts {
            Some(prev) if hosts => {
                prev + checkpoint.at.duration_since(prev).unwrap_or_default() / 2
            }
            _ => checkpoint.at,
        };
        if hosts {
            self.last_hosts = Some(checkpoint.at);
        }
        let host_points = checkpoint.points.hosts.len();
        let start = Instant::now();
        self.history
            .commit(
                checkpoint.at,
                &checkpoint.points,
                hosts_at,
                checkpoint.totals,
            )
            .expect("committing a checkpoint");
        Round {
            hosts,
            host_points,
            checkpoint: locked,
            commit: start.elapsed(),
        }
    }

    /// The maintenance the persister runs once a minute; how long it took.
    fn maintenance(&mut self, now: SystemTime) -> Duration {
        let start = Instant::now();
        self.history
            .downsample_and_expire(now)
            .expect("downsample_and_expire");
        start.elapsed()
    }

    fn usage(&self) -> u64 {
        self.history.usage_bytes().expect("usage_bytes")
    }
}

/// Timings of [`write_cost`] for one number of hosts.
struct WriteCost {
    hosts: u32,
    /// Baseline: `State::ingest` per poll with no persister (every poll but the first).
    ingest_only: Vec<Duration>,
    /// `State::ingest` per poll in the run with the persister.
    ingest: Vec<Duration>,
    /// Polls without the hosts' checkpoint.
    poll_checkpoint: Vec<Duration>,
    poll_commit: Vec<Duration>,
    /// The first poll: every host new (inserted into `hosts` and `host_totals`).
    first: Round,
    /// The minute polls after the first: every host's checkpoint and rows.
    minute_checkpoint: Vec<Duration>,
    minute_commit: Vec<Duration>,
    /// `downsample_and_expire` once a simulated minute.
    maintenance: Vec<Duration>,
    /// `history.db` and `-wal` on disk at the end.
    files: (u64, u64),
}

/// [`PERSIST_POLLS`] polls a second apart of `hosts` active hosts: first the collector's
/// ingest alone (the baseline), then ingest and the persister's round after each poll, in a
/// new data directory, with the maintenance once a minute.
fn write_cost(hosts: u32) -> WriteCost {
    let baseline = State::shared();
    let mut traffic = SimTraffic::new(hosts, true);
    sim_ingest(&baseline, &traffic.sample);
    let ingest_only = (1..PERSIST_POLLS)
        .map(|_| {
            traffic.advance(1);
            sim_ingest(&baseline, &traffic.sample)
        })
        .collect();
    drop(baseline);

    let dir = ScratchDir::new(&format!("persist-{hosts}"));
    let mut p = SimPersister::new(&dir);
    let mut traffic = SimTraffic::new(hosts, true);
    sim_ingest(&p.state, &traffic.sample);
    let first = p.round();
    assert!(first.hosts, "the first round checkpoints the hosts");
    let mut cost = WriteCost {
        hosts,
        ingest_only,
        ingest: Vec::new(),
        poll_checkpoint: Vec::new(),
        poll_commit: Vec::new(),
        first,
        minute_checkpoint: Vec::new(),
        minute_commit: Vec::new(),
        maintenance: Vec::new(),
        files: (0, 0),
    };
    for _ in 1..PERSIST_POLLS {
        traffic.advance(1);
        cost.ingest.push(sim_ingest(&p.state, &traffic.sample));
        let round = p.round();
        if round.hosts {
            assert_eq!(
                round.host_points,
                usize::try_from(hosts).expect("host count fits usize"),
                "every host changed in the minute"
            );
            cost.minute_checkpoint.push(round.checkpoint);
            cost.minute_commit.push(round.commit);
            cost.maintenance.push(p.maintenance(traffic.sample.at));
        } else {
            cost.poll_checkpoint.push(round.checkpoint);
            cost.poll_commit.push(round.commit);
        }
    }
    cost.files = dir.history_files();
    drop(p);
    cost
}

/// Disk use of [`disk_per_host_day`], in bytes (`History::usage_bytes` unless noted).
struct DiskUse {
    hosts: u64,
    /// The new database.
    empty: u64,
    /// After the first commit: the totals rows of every host (their minute is still pending).
    after_totals: u64,
    /// After the second: plus each host's `hosts` row and its first minute row.
    after_first_minute: u64,
    /// After a day of minute checkpoints (1440 minute rows per host).
    day: u64,
    /// `history.db` and `-wal` on disk then.
    day_files: (u64, u64),
    /// After `downsample_and_expire` past the host-minute retention (24 hour rows per host).
    hours: u64,
    hours_files: (u64, u64),
    /// `downsample_and_expire` once a simulated minute during the day.
    maintenance: Vec<Duration>,
    /// `History::commit` of each minute poll of the day.
    commits: Vec<Duration>,
    /// The `-wal` file's size after each minute poll of the day.
    wal: Vec<u64>,
    /// The `downsample_and_expire` that rolled the day's minute rows into hours.
    roll: Duration,
}

/// One day of minute polls of [`DAY_HOSTS`] hosts (a day in simulated time: `History` goes by
/// the samples' times), each with the hosts' checkpoint and the maintenance, as the persister
/// runs them; then the maintenance a day later, past the host-minute retention.
fn disk_per_host_day() -> DiskUse {
    let dir = ScratchDir::new("persist-day");
    let mut p = SimPersister::new(&dir);
    let empty = p.usage();
    // The interface's counters stay put, so only host rows grow.
    let mut traffic = SimTraffic::new(DAY_HOSTS, false);
    let (mut after_totals, mut after_first_minute) = (0, 0);
    let (mut maintenance, mut commits, mut wal) = (Vec::new(), Vec::new(), Vec::new());
    // Minute 1440 writes the host rows of minute 1439: 1440 minute rows per host.
    for minute in 0..=1440 {
        if minute > 0 {
            traffic.advance(60);
        }
        sim_ingest(&p.state, &traffic.sample);
        let round = p.round();
        assert!(round.hosts, "every minute poll checkpoints the hosts");
        commits.push(round.commit);
        maintenance.push(p.maintenance(traffic.sample.at));
        wal.push(dir.history_files().1);
        match minute {
            0 => after_totals = p.usage(),
            1 => after_first_minute = p.usage(),
            _ => {}
        }
    }
    let day = p.usage();
    let day_files = dir.history_files();
    let roll = p.maintenance(traffic.sample.at + Duration::from_hours(24));
    let hours = p.usage();
    let hours_files = dir.history_files();
    drop(p);
    DiskUse {
        hosts: u64::from(DAY_HOSTS),
        empty,
        after_totals,
        after_first_minute,
        day,
        day_files,
        hours,
        hours_files,
        maintenance,
        commits,
        wal,
        roll,
    }
}

fn mean_of(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / u32::try_from(v.len()).expect("fewer than 2^32 values")
}

/// The nearest-rank percentile `p` of a non-empty slice.
fn percentile(v: &[Duration], p: usize) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s[(s.len() * p).div_ceil(100).max(1) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// `mean / p99 (max)` of a non-empty slice.
fn mean_p99(v: &[Duration]) -> String {
    format!(
        "{} / {} ({})",
        ms(mean_of(v)),
        ms(percentile(v, 99)),
        ms(*v.iter().max().expect("non-empty"))
    )
}

/// `median (max)` of a non-empty slice.
fn median_max(v: &[Duration]) -> String {
    format!(
        "{} ({})",
        ms(percentile(v, 50)),
        ms(*v.iter().max().expect("non-empty"))
    )
}

/// The persister's write path (`State::checkpoint` under the state's lock, `History::commit`,
/// `downsample_and_expire`) at 10k and 100k active hosts on a real `history.db`, against the
/// collector's `State::ingest` of the same polls; then disk bytes per host-day from one
/// simulated day of 1,000 hosts.
#[test]
#[ignore = "benchmark: cargo xtask bench"]
fn persist_write_cost() {
    let costs: Vec<WriteCost> = [10_000, 100_000].map(write_cost).into();
    print_write_costs(&costs);
    print_disk_use(&disk_per_host_day());
}

/// The table of [`write_cost`] results, one column per number of hosts.
fn print_write_costs(costs: &[WriteCost]) {
    let row = |what: &str, f: &dyn Fn(&WriteCost) -> String| {
        let cells: Vec<String> = costs.iter().map(f).collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    println!(
        "\n{PERSIST_POLLS} polls one second apart (simulated time), every host's counters \
         growing every poll, {SIM_SLOTS} protocol slots each way; the persister's round after \
         each\n"
    );
    let hosts: Vec<String> = costs.iter().map(|c| format!("{} hosts", c.hosts)).collect();
    println!("| measure | {} |", hosts.join(" | "));
    println!("|---|{}", "---|".repeat(costs.len()));
    row(
        "baseline: `State::ingest` alone, per poll, mean / p99 (max)",
        &|c| mean_p99(&c.ingest_only),
    );
    row(
        "`State::ingest` in the run with the persister, mean / p99 (max)",
        &|c| mean_p99(&c.ingest),
    );
    row(
        "per poll: checkpoint without hosts (state lock held), mean / p99 (max)",
        &|c| mean_p99(&c.poll_checkpoint),
    );
    row("per poll: `History::commit`, mean / p99 (max)", &|c| {
        mean_p99(&c.poll_commit)
    });
    row(
        "per poll: checkpoint + commit, mean, as a share of the baseline's mean",
        &|c| {
            let write = mean_of(&c.poll_checkpoint) + mean_of(&c.poll_commit);
            format!(
                "{} = {:.2} × ingest",
                ms(write),
                write.as_secs_f64() / mean_of(&c.ingest_only).as_secs_f64()
            )
        },
    );
    row(
        "minute poll: checkpoint with every host (state lock held), median (max)",
        &|c| median_max(&c.minute_checkpoint),
    );
    row(
        "minute poll: `History::commit` of every host's rows, median (max)",
        &|c| median_max(&c.minute_commit),
    );
    row(
        "minute poll: lock held, as a multiple of the baseline's mean ingest",
        &|c| {
            format!(
                "{:.1} × ingest",
                percentile(&c.minute_checkpoint, 50).as_secs_f64()
                    / mean_of(&c.ingest_only).as_secs_f64()
            )
        },
    );
    row(
        "first poll, every host new: checkpoint / commit (totals rows only: the minute's host \
         rows wait for its end)",
        &|c| format!("{} / {}", ms(c.first.checkpoint), ms(c.first.commit)),
    );
    row(
        "`downsample_and_expire` once a minute, median (max)",
        &|c| median_max(&c.maintenance),
    );
    row("files at the end: `history.db` + `history.db-wal`", &|c| {
        format!("{} + {} bytes", c.files.0, c.files.1)
    });
    println!(
        "\n(minute polls: {} per size; polls without hosts: {})",
        costs[0].minute_checkpoint.len(),
        costs[0].poll_checkpoint.len()
    );
}

/// The tables of [`disk_per_host_day`], per-host figures derived from the differences.
fn print_disk_use(d: &DiskUse) {
    // The first minute's row of each host, as the day's minute rows average it.
    let minute_row = (d.day - d.after_first_minute) / (1439 * d.hosts);
    let totals = (d.after_totals - d.empty) / d.hosts;
    let fixed = (d.after_first_minute - d.empty) / d.hosts - minute_row;
    let minute_day = (d.day - d.after_first_minute) * 1440 / (1439 * d.hosts);
    let hour_day = (d.hours - d.empty) / d.hosts - fixed;
    let budget = HistoryConfig::default().budget_bytes;
    println!(
        "\n{} hosts, one day of minute polls (1441 polls, 60 s apart in simulated time), each \
         with the hosts' checkpoint and the once-a-minute maintenance; then the maintenance a \
         day later\n",
        d.hosts
    );
    println!("| measure | bytes |");
    println!("|---|---|");
    println!("| `usage_bytes()` of the new database | {} |", d.empty);
    println!(
        "| after the first commit (totals rows) | {} |",
        d.after_totals
    );
    println!(
        "| after the second (+ `hosts` rows, first minute rows) | {} |",
        d.after_first_minute
    );
    println!("| after the day (1440 minute rows per host) | {} |", d.day);
    println!(
        "| files then: `history.db` + `history.db-wal` | {} + {} |",
        d.day_files.0, d.day_files.1
    );
    println!("| after the roll into hours (24 per host) | {} |", d.hours);
    println!(
        "| files then: `history.db` + `history.db-wal` | {} + {} |",
        d.hours_files.0, d.hours_files.1
    );
    println!("\n| per host | bytes |");
    println!("|---|---|");
    println!("| minute rows, per host-day | {minute_day} |");
    println!("| hour rows, per host-day | {hour_day} |");
    println!("| totals row (`host_totals` and its index), per host | {totals} |");
    println!("| totals row + `hosts` row, per host | {fixed} |");
    println!(
        "\nThe default --history-budget ({} MiB) holds {} host-days of minute rows or {} \
         host-days of hour rows (a year of hour rows and the fixed rows: {} hosts).",
        budget >> 20,
        budget / minute_day,
        budget / hour_day,
        budget / (365 * hour_day + fixed)
    );
    let hour = |h: usize| ms(d.maintenance[h * 60]);
    println!(
        "\n`downsample_and_expire` at {} hosts: {} after the first minute, {} after 6 hours, \
         {} after 24 hours (median (max) of the day: {}); the roll of the day's minute rows \
         into hours: {}",
        d.hosts,
        hour(0),
        hour(6),
        hour(24),
        median_max(&d.maintenance),
        ms(d.roll)
    );
    // The minute commit grows while each host's minute rows come to fill pages of their own
    // (the primary key starts with the host), and the WAL with it.
    println!("\n| hour of the day | minute commit, median (max) | `-wal` file, largest |");
    println!("|---|---|---|");
    for h in [1, 3, 6, 12, 24] {
        let minutes = (h - 1) * 60 + 1..=h * 60;
        println!(
            "| {h} | {} | {} |",
            median_max(&d.commits[minutes.clone()]),
            d.wal[minutes].iter().max().expect("an hour of minutes")
        );
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
    /// The same with `--no-peers` (no pair table).
    NtopNoPeers,
    /// [`PROG_BENCH_XDP_PASS`] in native mode.
    EmptyXdp,
    /// No program.
    Nothing,
}

impl Receiver {
    const ALL: [Self; RECEIVERS] = [Self::Ntop, Self::NtopNoPeers, Self::EmptyXdp, Self::Nothing];

    fn label(self) -> &'static str {
        match self {
            Self::Ntop => "ntop daemon (native XDP + TCX egress)",
            Self::NtopNoPeers => "ntop daemon --no-peers",
            Self::EmptyXdp => "empty XDP program (native, XDP_PASS)",
            Self::Nothing => "nothing attached",
        }
    }
}

/// Number of [`Receiver`]s.
const RECEIVERS: usize = 4;

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
fn ntop_run(net: &TestNet, config: &TrafgenConfig, peers: bool) -> (Run, u64, u64) {
    let dev = net.link.dev_b.as_str();
    let attached = link_stats(&net.b, dev);
    // Listens on `daemon::API` (127.0.0.1:3000) inside the namespace; `start` returns after
    // the first poll, so the programs are attached.
    let mut args = vec![
        "-i",
        dev,
        "--capture-mode",
        "xdp-native",
        "--memory-budget",
        "16M",
    ];
    if !peers {
        args.push("--no-peers");
    }
    let daemon = Daemon::start(&net.b, &args);
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
    let mut rounds: Vec<[Run; RECEIVERS]> = Vec::new();
    let mut counts: Vec<(u64, u64)> = Vec::new();
    for round in 0..TRAFGEN_ROUNDS {
        let mut this = [None; RECEIVERS];
        // Each round starts with the next configuration: A,B,C,D then B,C,D,A, …
        for k in 0..Receiver::ALL.len() {
            let i = (round + k) % Receiver::ALL.len();
            let receiver = Receiver::ALL[i];
            let run = match receiver {
                Receiver::Ntop | Receiver::NtopNoPeers => {
                    let peers = receiver == Receiver::Ntop;
                    let (run, link, ntop) = ntop_run(&net, &config, peers);
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
fn print_live_tables(rounds: &[[Run; RECEIVERS]], counts: &[(u64, u64)]) {
    const NTOP: usize = 0;
    const NO_PEERS: usize = 1;
    const EMPTY: usize = 2;
    const NOTHING: usize = 3;
    let medians: [f64; RECEIVERS] = std::array::from_fn(|i| {
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
    for (i, r) in Receiver::ALL.into_iter().enumerate() {
        let mpps = medians[i];
        let to_empty = match r {
            Receiver::Ntop | Receiver::NtopNoPeers => format!("{:.3}", mpps / medians[EMPTY]),
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
            mpps / medians[NOTHING],
            median_of(&delivered)
        );
    }
    println!(
        "\n| round | ntop Mpps | ntop --no-peers Mpps | empty XDP Mpps | nothing Mpps \
         | ntop / empty XDP | --no-peers / empty XDP | ntop / --no-peers | empty XDP / nothing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (n, r) in rounds.iter().enumerate() {
        let [a, p, b, c] = r.map(Run::mpps);
        println!(
            "| {} | {a:.3} | {p:.3} | {b:.3} | {c:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            n + 1,
            a / b,
            p / b,
            a / p,
            b / c
        );
    }
    let [a, p, b, c] = medians;
    println!(
        "| median | {a:.3} | {p:.3} | {b:.3} | {c:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
        median_ratio(NTOP, EMPTY),
        median_ratio(NO_PEERS, EMPTY),
        median_ratio(NTOP, NO_PEERS),
        median_ratio(EMPTY, NOTHING)
    );
    // Both CPUs send and receive for the whole run (one trafgen process each; the receive path
    // runs in their softirq), so wall time per packet × 2 approximates CPU time per packet.
    let extra = |x: usize, over: usize| {
        let ns: Vec<f64> = rounds
            .iter()
            .map(|r| 2.0 * (1e3 / r[x].mpps() - 1e3 / r[over].mpps()))
            .collect();
        median_of(&ns)
    };
    println!(
        "\nCPU time per packet, median of the rounds (assumes both CPUs busy): ntop over the \
         empty XDP program {:.0} ns; ntop --no-peers over it {:.0} ns; ntop over ntop \
         --no-peers (the pair table) {:.0} ns",
        extra(NTOP, EMPTY),
        extra(NO_PEERS, EMPTY),
        extra(NTOP, NO_PEERS)
    );
    println!("\n| ntop run | veth rx_packets delta | ntop rx packets (API) |");
    println!("|---|---|---|");
    for (i, (link, ntop)) in counts.iter().enumerate() {
        println!("| {} | {link} | {ntop} |", i + 1);
    }
}

/// The dashboard's hosts page and the hosts API with 100,000 hosts (issue 5), against the same
/// page and API at 1,000 hosts in the same run and the same daemon.
///
/// The hosts come from real frames through the monitored veth: one UDP frame from each of
/// 100,000 distinct sources (half `198.18.0.0/15`, half `2001:db8:1::/48`) to one IPv4 and one IPv6
/// destination, replayed from the peer with tcpreplay to a MAC address that is not the
/// receiver's (its stack drops them after XDP counted them: no replies, no neighbour lookups).
///
/// Measured:
/// - the API: `GET /api/v1/hosts?sort=…&limit=100&offset=…` from the test process (a new
///   connection each, API token), sorts cycling through `total_bytes`, `ip`, `throughput` and
///   `last_seen`, offsets spread over the whole table: p50, p99 and max per sort, and each
///   request of 50 ms or more on its own (connect, first byte, total, second of the minute), to
///   tell a dropped SYN from a daemon that stalled, and to line stalls up with the minute's
///   history write;
/// - the page, in headless Chromium: time from navigation start to the first rows of the
///   `hosts-table` (`performance.now()` in a mutation observer installed before the page's
///   scripts), over reloads of `#/hosts` (each a new document and navigation); the time from a
///   click on `next-page` to the next page's rows; the rows in the DOM (server-side paging keeps
///   it to one page); and the longest main-thread task the browser reported (`longtask`
///   entries, 50 ms or more: how long the page was stalled).
mod dashboard_hosts {
    use std::{
        io::{Read as _, Write as _},
        net::{SocketAddr, TcpStream},
        ops::Range,
        time::{Duration, Instant, SystemTime, UNIX_EPOCH},
    };

    use ntop_common::testing::{eth, frame, ipv4_between, ipv6, udp};
    use ntop_tests::{
        Daemon, Netns, TestNet, VethConfig,
        browser::{Browser, WAIT, testid},
        capture::write_pcap,
        daemon::{API, BASIC_AUTH, http_request},
        scratch_dir, unique_name, wait_until,
    };
    use serde_json::Value;

    const BASE: &str = "http://127.0.0.1:3000";
    /// The sizes measured, the first the baseline.
    const SIZES: [u32; 2] = [1_000, 100_000];
    const SORTS: [&str; 4] = ["total_bytes", "ip", "throughput", "last_seen"];
    /// API requests per sort and size.
    const REQUESTS_PER_SORT: usize = 500;
    /// Fresh loads of the hosts page per size.
    const PAGE_LOADS: usize = 7;
    /// Clicks on `next-page` per size.
    const PAGE_STEPS: usize = 7;
    /// Most replays of the frames before the hosts must all be there (veth drops at top speed).
    const REPLAYS: usize = 5;
    /// API requests that take this long or more are listed one by one.
    const SLOW: Duration = Duration::from_millis(50);

    /// Runs before the page's own scripts in every document: records when the hosts table first
    /// has rows (ms since navigation start) and every long task.
    const PROBE: &str = r#"(() => {
  if (window.__ntopBench) return;
  const b = window.__ntopBench = { firstRows: null, long: [] };
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) b.long.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
  } catch (e) { b.long = null; }
  const sel = '[data-testid="hosts-table"] [data-testid="host-row"]';
  const obs = new MutationObserver(() => {
    if (b.firstRows === null && document.querySelector(sel)) {
      b.firstRows = performance.now();
      obs.disconnect();
    }
  });
  obs.observe(document, { childList: true, subtree: true });
})();"#;

    /// Clicks `next-page` and answers the ms until the first row is another host (-1 after 20 s).
    const NEXT_PAGE: &str = r#"const done = arguments[arguments.length - 1];
const sel = '[data-testid="hosts-table"] [data-testid="host-row"]';
const first = () => {
  const r = document.querySelector(sel);
  return r ? `${r.getAttribute('data-ip')}@${r.getAttribute('data-interface')}` : null;
};
const before = first();
const t0 = performance.now();
let over = false;
const finish = (v) => { if (!over) { over = true; obs.disconnect(); done(v); } };
const obs = new MutationObserver(() => {
  const f = first();
  if (f !== null && f !== before) finish(performance.now() - t0);
});
obs.observe(document.body, { childList: true, subtree: true, attributes: true });
document.querySelector('[data-testid="next-page"]').click();
setTimeout(() => finish(-1), 20000);"#;

    /// Source `i`: even from `198.18.0.0/15` (from `198.18.1.0`, clear of the veth's
    /// addresses), odd from `2001:db8:1::/48`; to `198.19.255.254` or `2001:db8:ffff::1`.
    fn frames(sources: Range<u32>) -> Vec<Vec<u8>> {
        sources
            .map(|i| {
                if i % 2 == 0 {
                    let a = (198_u32 << 24 | 18 << 16 | 1 << 8) + i / 2;
                    frame(&[
                        &eth(0x0800, &[]),
                        &ipv4_between(
                            a.to_be_bytes(),
                            [198, 19, 255, 254],
                            17,
                            0,
                            0,
                            &udp(1, 9, 18),
                        ),
                    ])
                } else {
                    let mut ip = ipv6(17, &[], &udp(1, 9, 18));
                    let src = (0x2001_0db8_0001_u128 << 80) | u128::from(i);
                    ip[8..24].copy_from_slice(&src.to_be_bytes());
                    ip[24..40].copy_from_slice(&((0x2001_0db8_ffff_u128 << 80) | 1).to_be_bytes());
                    frame(&[&eth(0x86dd, &[]), &ip])
                }
            })
            .collect()
    }

    /// Hosts the daemon knows (`total` of `limit=0`).
    fn hosts_total(d: &Daemon) -> u64 {
        d.get("/api/v1/hosts?limit=0")["total"]
            .as_u64()
            .expect("total")
    }

    /// Replays the frames of `sources` from the peer until the daemon knows `want` hosts.
    fn add_hosts(net: &TestNet, d: &Daemon, sources: Range<u32>, want: u64) {
        let pcap = scratch_dir().join(format!("{}-hosts.pcap", unique_name()));
        write_pcap(&pcap, &frames(sources));
        let path = pcap.to_string_lossy().into_owned();
        for _ in 0..REPLAYS {
            let out = net.b.exec(
                "timeout",
                [
                    "60",
                    "tcpreplay",
                    "-q",
                    "--topspeed",
                    "-i",
                    &net.link.dev_b,
                    &path,
                ],
            );
            assert!(
                out.status.success(),
                "tcpreplay: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // The daemon polls once a second: its count grows until every frame is read; three
            // seconds without growth means frames were dropped on the way (replay again).
            let mut last = (hosts_total(d), Instant::now());
            let done = wait_until(Duration::from_secs(30), Duration::from_millis(250), || {
                let n = hosts_total(d);
                if n >= want {
                    return Some(true);
                }
                if n != last.0 {
                    last = (n, Instant::now());
                }
                (last.1.elapsed() > Duration::from_secs(3)).then_some(false)
            });
            eprintln!("replayed {path}: the daemon knows {} hosts", hosts_total(d));
            if done == Some(true) {
                let _ = std::fs::remove_file(&pcap);
                return;
            }
        }
        panic!(
            "the daemon knows {} hosts after {REPLAYS} replays, not {want}",
            hosts_total(d)
        );
    }

    /// An API token (cheap to check, unlike HTTP Basic's argon2id).
    fn token(ns: &Netns) -> String {
        let r = http_request(
            ns,
            API,
            "POST",
            "/api/v1/tokens",
            &[
                ("Authorization", BASIC_AUTH),
                ("Content-Type", "application/json"),
            ],
            br#"{"name": "bench"}"#,
        )
        .expect("an answer");
        let v = r.json().unwrap_or(Value::Null);
        v["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token: {} {}", r.status, r.body))
            .to_owned()
    }

    /// One timed request of [`timed_gets`].
    struct Timed {
        /// From `connect` to the connection being open (the TCP handshake; a SYN the kernel
        /// dropped shows here as its retransmission, 1 s later).
        connect: Duration,
        /// From `connect` to the first byte of the answer (the daemon's work included).
        first_byte: Duration,
        /// From `connect` to the end of the answer: the request's latency.
        total: Duration,
        /// When it started (wall clock), to line slow ones up with the minute's history write.
        at: SystemTime,
    }

    /// Times each `GET path` (a new connection each, `Connection: close`), all from one thread
    /// inside `ns`; panics unless every answer is 200.
    fn timed_gets(ns: &Netns, addr: SocketAddr, token: &str, paths: &[String]) -> Vec<Timed> {
        ns.enter(|| {
            paths
                .iter()
                .map(|path| {
                    let at = SystemTime::now();
                    let start = Instant::now();
                    let mut s = TcpStream::connect(addr).expect("connecting to the API");
                    let connect = start.elapsed();
                    s.set_read_timeout(Some(Duration::from_secs(30)))
                        .expect("a timeout");
                    write!(
                        s,
                        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                         Connection: close\r\n\r\n"
                    )
                    .expect("sending a request");
                    let mut body = vec![0; 1];
                    s.read_exact(&mut body).expect("reading an answer");
                    let first_byte = start.elapsed();
                    s.read_to_end(&mut body).expect("reading an answer");
                    let total = start.elapsed();
                    assert!(
                        body.starts_with(b"HTTP/1.1 200"),
                        "GET {path}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                    Timed {
                        connect,
                        first_byte,
                        total,
                        at,
                    }
                })
                .collect()
        })
    }

    /// The `per_mille`/1000 quantile of `v` (nearest rank): 500 the median, 990 the p99, 1000
    /// the maximum.
    fn quantile(v: &[f64], per_mille: usize) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = (per_mille * s.len()).div_ceil(1000).clamp(1, s.len());
        s[rank - 1]
    }

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    /// One size's page numbers: first rows of each load, each page step, rows in the DOM, the
    /// longest task.
    struct PageRun {
        first_rows: Vec<f64>,
        steps: Vec<f64>,
        rows: u64,
        longest_task: Option<f64>,
    }

    fn measure_page(b: &Browser, hosts: u64) -> PageRun {
        let mut first_rows = Vec::new();
        let mut longest: Option<f64> = None;
        let mut rows = 0;
        // Open the hosts page (a hash change in the logged-in page), then load it afresh
        // again and again: a reload starts a new document with a new navigation (and, unlike
        // leaving for another address, keeps no old document in the back/forward cache).
        b.goto(&format!("{BASE}/#/hosts"));
        for _ in 0..PAGE_LOADS {
            b.reload();
            let probe = b.wait("the hosts table's first rows", WAIT, |b| {
                let v = b
                    .try_eval("return window.__ntopBench || null;", vec![])
                    .ok()?;
                v["firstRows"].as_f64().map(|_| v)
            });
            first_rows.push(probe["firstRows"].as_f64().expect("a time"));
            if let Some(l) = probe["long"].as_array() {
                let m = l.iter().filter_map(Value::as_f64).fold(0.0, f64::max);
                longest = Some(longest.unwrap_or(0.0).max(m));
            }
            rows = b.count(&format!("{} {}", testid("hosts-table"), testid("host-row"))) as u64;
        }
        b.wait("hosts-total to show every host", WAIT, |b| {
            let t = b.text(&testid("hosts-total"))?;
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            digits.contains(&hosts.to_string()).then_some(())
        });
        let mut steps = Vec::new();
        for _ in 0..PAGE_STEPS {
            let v = b.eval_async(NEXT_PAGE, vec![]);
            let t = v.as_f64().expect("a time");
            assert!(t >= 0.0, "the next page never came");
            steps.push(t);
        }
        let long = b.eval("return window.__ntopBench.long;", vec![]);
        if let Some(l) = long.as_array() {
            let m = l.iter().filter_map(Value::as_f64).fold(0.0, f64::max);
            longest = Some(longest.unwrap_or(0.0).max(m));
        }
        b.assert_no_console_errors("the hosts page");
        PageRun {
            first_rows,
            steps,
            rows,
            longest_task: longest,
        }
    }

    /// The slow requests one by one: a long `connect` is the kernel (a dropped SYN is sent
    /// again after 1 s), a long wait for the first byte the daemon (the state's lock, the CPU);
    /// the second of the minute lines them up with the history's host write, which the
    /// persister does after the first poll of each minute.
    fn print_slow(slow: &[(u64, String, Timed)]) {
        println!(
            "\n{} requests took {} ms or more",
            slow.len(),
            SLOW.as_millis()
        );
        if !slow.is_empty() {
            println!("\n| hosts | request | connect | first byte | total | second of the minute |");
            println!("|---|---|---|---|---|---|");
        }
        for (hosts, path, t) in slow {
            let second =
                t.at.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64() % 60.0);
            println!(
                "| {hosts} | `{path}` | {:.1} ms | {:.1} ms | {:.1} ms | {second:.1} |",
                ms(t.connect),
                ms(t.first_byte),
                ms(t.total)
            );
        }
    }

    #[test]
    #[ignore = "benchmark: cargo xtask bench"]
    fn dashboard_hosts_page() {
        ntop_tests::require_root();
        let net = TestNet::new(&VethConfig::default());
        let (a, dev) = (&net.a, net.link.dev_a.as_str());
        let d = Daemon::start(a, &["-i", dev, "--memory-budget", "64M"]);
        let token = token(a);
        let b = Browser::start(a, "bench_dashboard_hosts");
        b.add_init_script(PROBE);
        b.log_in(BASE);

        let mut pages = Vec::new();
        let mut api = Vec::new();
        let mut slow = Vec::new();
        let mut from = 0;
        for size in SIZES {
            // Sources, plus the two destinations.
            add_hosts(&net, &d, from..size, u64::from(size) + 2);
            from = size;
            let hosts = hosts_total(&d);
            pages.push((hosts, measure_page(&b, hosts)));
            let page_count = hosts.div_ceil(100);
            for sort in SORTS {
                let paths: Vec<String> = (0..REQUESTS_PER_SORT as u64)
                    .map(|i| {
                        let offset = (i * 7919 % page_count) * 100;
                        format!("/api/v1/hosts?sort={sort}&limit=100&offset={offset}")
                    })
                    .collect();
                let requests = timed_gets(a, d.addr(), &token, &paths);
                let times: Vec<f64> = requests.iter().map(|t| ms(t.total)).collect();
                slow.extend(
                    requests
                        .into_iter()
                        .zip(paths)
                        .filter(|(t, _)| t.total >= SLOW)
                        .map(|(t, path)| (hosts, path, t)),
                );
                api.push((hosts, sort, times));
            }
        }
        drop(b);

        println!(
            "| hosts | hosts page: first rows, median of {PAGE_LOADS} loads | slowest load | next \
             page, median of {PAGE_STEPS} | slowest | rows in the DOM | longest main-thread task |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (hosts, p) in &pages {
            let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
            println!(
                "| {hosts} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {} | {} |",
                quantile(&p.first_rows, 500),
                max(&p.first_rows),
                quantile(&p.steps, 500),
                max(&p.steps),
                p.rows,
                match p.longest_task {
                    None => "not reported".to_owned(),
                    // The browser reports tasks of 50 ms or more only.
                    Some(t) if t < 50.0 => "none of 50 ms or more".to_owned(),
                    Some(t) => format!("{t:.0} ms"),
                }
            );
        }
        println!(
            "\n| hosts | `GET /api/v1/hosts?sort=…&limit=100&offset=…` | requests | p50 | p99 | max |"
        );
        println!("|---|---|---|---|---|---|");
        for (hosts, sort, t) in &api {
            println!(
                "| {hosts} | sort={sort} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
                t.len(),
                quantile(t, 500),
                quantile(t, 990),
                quantile(t, 1000)
            );
        }
        for (hosts, _) in &pages {
            let all: Vec<f64> = api
                .iter()
                .filter(|(h, _, _)| h == hosts)
                .flat_map(|(_, _, t)| t.iter().copied())
                .collect();
            println!(
                "| {hosts} | all sorts | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
                all.len(),
                quantile(&all, 500),
                quantile(&all, 990),
                quantile(&all, 1000)
            );
        }
        print_slow(&slow);
        assert!(d.stop().success());
    }
}
