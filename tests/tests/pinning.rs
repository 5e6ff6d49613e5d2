//! Pinned kernel objects (`Kernel::load_pinned`): the programs keep counting while no process
//! holds them, a restart re-adopts them with no gap, mismatched restarts are refused without
//! changing anything, and `detach_all` removes everything. Needs root (bpffs, BPF, namespaces).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::programs::{SchedClassifier, TcAttachType};
use ntop::{
    ebpf::{self, Error, Kernel, LoadOptions, ModeRequest, pin},
    sample::Sample,
};
use ntop_tests::{
    LinkStats, Netns, TestNet, VethConfig, link_stats, ping, require_root, wait_until,
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
    assert_eq!(k.pin_dir(), Some(pin::version_dir(pins.path()).as_path()));
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program on veth-a");
    assert_eq!(ping(a, peer, 5, 56).received, 5);
    assert_counts(&mut k, a, dev_a, b, dev_b, &base);
    let (before, _) = total(&k.read().expect("read"), TX);
    assert!(before >= 5);

    assert_eq!(k.leave_pinned(), Some(pin::version_dir(pins.path())));
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
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            xdp_prog_id(a, dev_a).is_none().then_some(())
        })
        .is_some(),
        "detach leaves no XDP program"
    );
}

#[test]
fn mismatched_restart_is_refused_and_changes_nothing() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev_a) = (&net.a, net.link.dev_a.as_str());
    let pins = PinBase::new();
    let k = load_pinned(a, &opts(&[dev_a], 1024), pins.path()).expect("first pinned load");
    let prog = xdp_prog_id(a, dev_a).expect("an XDP program");
    assert!(k.leave_pinned().is_some());
    let files = listing(pins.path());
    assert!(
        files.iter().any(|f| f.ends_with("links/veth-a-xdp")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with("maps/NTOP_HOSTS")),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with(pin::LAYOUT_FILE)),
        "{files:?}"
    );

    let err = load_pinned(a, &opts(&[dev_a, "lo"], 1024), pins.path())
        .expect_err("another interface set");
    let text = err.to_string();
    assert!(text.contains("different interface set"), "{text}");
    assert!(text.contains("--detach-all"), "{text}");

    let err = load_pinned(a, &opts(&[dev_a], 2048), pins.path()).expect_err("another capacity");
    let text = err.to_string();
    assert!(text.contains("host capacity of 1024, now 2048"), "{text}");
    assert!(text.contains("--detach-all"), "{text}");

    let err = load_pinned(
        a,
        &LoadOptions {
            mode: ModeRequest::Tc,
            ..opts(&[dev_a], 1024)
        },
        pins.path(),
    )
    .expect_err("another capture mode");
    assert!(err.to_string().contains("--capture-mode"), "{err}");

    // Another layout version pinned beside ours: an upgrade must not reuse it.
    let other = pins.path().join(format!("v{}", pin::PIN_LAYOUT + 1));
    std::fs::create_dir(&other).expect("mkdir on bpffs");
    let err = load_pinned(a, &opts(&[dev_a], 1024), pins.path()).expect_err("another layout");
    assert!(err.to_string().contains("layout"), "{err}");
    std::fs::remove_dir(&other).expect("rmdir");

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
    // And the matching restart still works.
    let k = load_pinned(a, &opts(&[dev_a], 1024), pins.path()).expect("re-adopting");
    assert!(k.readopted());
    assert!(k.leave_pinned().is_some());
}

#[test]
fn detach_all_removes_everything() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev_a) = (&net.a, net.link.dev_a.clone());
    let pins = PinBase::new();
    let k = load_pinned(a, &opts(&[&dev_a], 1024), pins.path()).expect("pinned load");
    assert!(xdp_prog_id(a, &dev_a).is_some());
    let tcx = |kind| {
        let dev = dev_a.clone();
        a.enter(move || {
            SchedClassifier::query_tcx(&dev, kind)
                .expect("query_tcx")
                .1
                .len()
        })
    };
    assert_eq!(tcx(TcAttachType::Egress), 1);
    assert!(k.leave_pinned().is_some());
    assert_eq!(tcx(TcAttachType::Egress), 1, "left counting");

    // Something not ntop's in the base: left alone.
    let foreign = pins.path().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir on bpffs");

    let removed = ebpf::detach_all(pins.path()).expect("detach_all");
    assert_eq!(
        listing(pins.path()),
        ["foreign"],
        "only ntop's pins are removed"
    );
    std::fs::remove_dir(&foreign).expect("rmdir");
    std::fs::remove_dir(pins.path()).expect("rmdir");
    assert!(
        removed.iter().any(|r| r.ends_with("links/veth-a-xdp")),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|r| r.ends_with("links/veth-a-tcx-egress")),
        "{removed:?}"
    );
    assert!(
        removed.iter().any(|r| r.ends_with("maps/NTOP_PROTO")),
        "{removed:?}"
    );
    assert!(!pins.path().exists(), "no pins left");
    let gone = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (xdp_prog_id(a, &dev_a).is_none()
            && tcx(TcAttachType::Egress) == 0
            && tcx(TcAttachType::Ingress) == 0)
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "an XDP program or TCX link is left on {dev_a}"
    );
    assert_eq!(
        ebpf::detach_all(pins.path()).expect("again").len(),
        0,
        "nothing left to remove"
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
        let dir = pin::prepare(pins.path()).expect("prepare mounts bpffs");
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

/// A bpffs mounted on a scratch directory of the root mount namespace; on drop everything pinned
/// in it is removed and it is unmounted, also when the test fails.
struct Bpffs(PathBuf);

impl Bpffs {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir =
            ntop_tests::scratch_dir().join(format!("bpffs-{}", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("creating the bpffs mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a bpffs on {}", dir.display());
        Self(dir)
    }

    fn base(&self) -> PathBuf {
        self.0.join("ntop")
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if let Err(e) = ebpf::detach_all(&self.base()) {
            eprintln!("removing pins under {}: {e}", self.0.display());
        }
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The daemon with `--keep-counting`: stopped, it leaves its programs counting (and says so);
/// restarted, it re-adopts them and its totals equal the link's counters since the first start,
/// including what crossed while it was down; `ntop --detach-all` then removes everything.
#[test]
fn daemon_keep_counting_restart_has_no_gap() {
    use ntop_tests::daemon::{Daemon, data_dir, ntop_command_in};

    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev) = (&net.a, net.link.dev_a.as_str());
    // `ip netns exec` gives the daemon its own mount namespace with a fresh /sys, so pins under
    // /sys/fs/bpf would die with it: use a bpffs mounted here, which it sees too.
    let bpffs = Bpffs::new();
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
        "--keep-counting",
        "--pin-dir",
        pin_dir,
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
    let mut first = Daemon::spawn(a, addr, ntop_command_in(a, &dir, &args));
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

    let second = Daemon::spawn(a, addr, ntop_command_in(a, &dir, &args));
    assert!(
        second.stderr().contains("re-adopted"),
        "{}",
        second.stderr()
    );
    let after = settle(&second, &link_base);
    assert!(after >= before_stop + 7, "{before_stop} then {after}");
    drop(second);

    let out = a
        .command(ntop_tests::ntop_bin())
        .args(["--detach-all", "--pin-dir", pin_dir])
        .output()
        .expect("running ntop --detach-all");
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
}
