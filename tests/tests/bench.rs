//! Benchmarks, run by `cargo xtask bench` (ignored by `cargo test`). Each prints a Markdown
//! table row set; every ntop number comes with a reference measured in the same run.
//!
//! - Per-packet cost of the kernel programs through `BPF_PROG_TEST_RUN`, beside programs that
//!   only pass the packet.
//! - The collector's poll cost (`Kernel::read` + `State::ingest`) at 10k and 100k hosts.

use std::time::{Duration, Instant};

use aya::programs::{SchedClassifier, TestRun as _, TestRunOptions, Xdp};
use ntop::{
    ebpf::{
        Kernel, LoadOptions, ModeRequest, PROG_BENCH_TC_NEXT, PROG_BENCH_XDP_PASS, PROG_TC_EGRESS,
        PROG_XDP,
    },
    state::State,
};
use ntop_common::testing::{eth, frame, ipv4, ipv4_between, ipv6, tcp, udp};

const LO: u32 = 1;

fn load(max_hosts: u32) -> Kernel {
    let mut k = Kernel::load(&LoadOptions {
        interfaces: vec!["lo".to_owned()],
        mode: ModeRequest::Xdp,
        max_hosts,
        attach: false,
    })
    .expect("loading the kernel programs (run as root)");
    for name in [PROG_BENCH_XDP_PASS] {
        let p: &mut Xdp = k.ebpf_mut().program_mut(name).unwrap().try_into().unwrap();
        p.load().unwrap();
    }
    let p: &mut SchedClassifier = k
        .ebpf_mut()
        .program_mut(PROG_BENCH_TC_NEXT)
        .unwrap()
        .try_into()
        .unwrap();
    p.load().unwrap();
    k
}

fn xdp_ctx(linear: usize) -> [u8; 24] {
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&u32::try_from(linear).unwrap().to_ne_bytes());
    ctx[12..16].copy_from_slice(&LO.to_ne_bytes());
    ctx
}

fn skb_ctx() -> [u8; 192] {
    let mut ctx = [0u8; 192];
    ctx[40..44].copy_from_slice(&LO.to_ne_bytes());
    ctx
}

/// Mean kernel-measured time per run of `repeat` runs of one packet.
fn per_packet(k: &mut Kernel, program: &str, xdp: bool, data: &[u8], repeat: u32) -> Duration {
    let xctx = xdp_ctx(data.len());
    let sctx = skb_ctx();
    let opts = TestRunOptions {
        data_in: Some(data),
        ctx_in: Some(if xdp { &xctx[..] } else { &sctx[..] }),
        repeat,
        ..TestRunOptions::default()
    };
    let prog = k.ebpf_mut().program_mut(program).unwrap();
    let r = if xdp {
        <&mut Xdp>::try_from(prog).unwrap().test_run(opts)
    } else {
        <&mut SchedClassifier>::try_from(prog)
            .unwrap()
            .test_run(opts)
    };
    r.expect("test run").duration
}

/// Median over `rounds` of [`per_packet`].
fn median(k: &mut Kernel, program: &str, xdp: bool, data: &[u8]) -> f64 {
    let mut v: Vec<f64> = (0..7)
        .map(|_| per_packet(k, program, xdp, data, 200_000).as_secs_f64() * 1e9)
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn padded(mut f: Vec<u8>, len: usize) -> Vec<u8> {
    f.resize(len, 0);
    f
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
    println!("| active hosts | Kernel::read (median) | State::ingest (median) | total |");
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
        let mut reads = Vec::new();
        let mut ingests = Vec::new();
        for _ in 0..11 {
            let t = Instant::now();
            let sample = k.read().unwrap();
            reads.push(t.elapsed());
            assert!(sample.hosts.len() as u32 > hosts, "every host was inserted");
            let t = Instant::now();
            state.ingest(sample);
            ingests.push(t.elapsed());
        }
        reads.sort();
        ingests.sort();
        let (r, i) = (reads[5], ingests[5]);
        println!("| {hosts} | {r:?} | {i:?} | {:?} |", r + i);
    }
}
