//! The data directory misbehaving under a running daemon (issue 4): a full disk, a read-only
//! file system, a damaged database, a database of a newer ntop. In every case the daemon keeps
//! counting in memory (checked against the link's counters), says what is wrong in
//! `/api/v1/status`, never overwrites the file it cannot use, and recovers by itself once the
//! disk is usable again, having lost nothing: a restart then carries the same totals.
//!
//! Needs root (namespaces, BPF, tmpfs mounts).

use std::{
    fs,
    io::Write as _,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use ntop_tests::{
    LinkStats, Netns, TestNet, UdpSink, VethConfig,
    daemon::{Daemon, data_dir, data_dir_at, ntop_command_in},
    link_stats, require_root, scratch_dir, udp_send, unique_name, wait_until,
};
use serde_json::Value;

/// UDP payload of every datagram.
const PAYLOAD: usize = 100;
/// Its frame on the wire without FCS: Ethernet 14 + IPv4 20 + UDP 8 + payload.
const FRAME: u64 = 14 + 20 + 8 + PAYLOAD as u64;
const API: &str = "127.0.0.1:3000";

/// A tmpfs of `size` on a scratch directory; unmounted on drop (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(size: &str) -> Self {
        let dir = scratch_dir().join(format!("tmpfs-{}", unique_name()));
        fs::create_dir_all(&dir).expect("creating the tmpfs mount point");
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ],
            &dir,
        );
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Remounts read-only (`true`) or read-write.
    fn read_only(&self, ro: bool) {
        mount(
            &["-o", if ro { "remount,ro" } else { "remount,rw" }],
            &self.0,
        );
    }

    /// Remounts read-write as the daemon sees it: in its mount namespace (`ip netns exec` gave
    /// it one, with its own copy of the mount and of its read-only flag).
    fn writable_for(&self, d: &mut Daemon) {
        let pid = d.child().id().to_string();
        let status = Command::new("nsenter")
            .args(["--target", &pid, "--mount", "mount", "-o", "remount,rw"])
            .arg(&self.0)
            .status()
            .expect("running nsenter");
        assert!(status.success(), "remounting read-write for pid {pid}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

#[track_caller]
fn mount(args: &[&str], on: &Path) {
    let status = Command::new("mount")
        .args(args)
        .arg(on)
        .status()
        .expect("running mount");
    assert!(status.success(), "mount {args:?} {}", on.display());
}

/// Fills the file system of `path` with a file there until it has no space left.
fn fill(path: &Path) {
    let mut f = fs::File::create(path).expect("creating the filler");
    let chunk = vec![0x42_u8; 64 << 10];
    // Bounded: a tmpfs of these tests is at most 64 MiB.
    for _ in 0..2048 {
        if f.write_all(&chunk).is_err() {
            return;
        }
    }
    panic!("{} never filled up", path.display());
}

/// A test network, a UDP sink on A, and the link's counters before any traffic.
struct Setup {
    net: TestNet,
    sink: UdpSink,
    base: LinkStats,
}

impl Setup {
    fn new() -> Self {
        require_root();
        let net = TestNet::new(&VethConfig::default().without_ipv6());
        let sink = UdpSink::bind(&net.a, SocketAddr::new(net.link.ipv4_a.into(), 0));
        let base = link_stats(&net.a, &net.link.dev_a);
        Self { net, sink, base }
    }

    fn a(&self) -> &Netns {
        &self.net.a
    }

    fn start(&self, dir: &Path) -> Daemon<'_> {
        let dev = self.net.link.dev_a.as_str();
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
        Daemon::spawn(
            self.a(),
            API.parse().expect("an address"),
            ntop_command_in(self.a(), dir, &args),
        )
    }

    /// Sends `n` datagrams from B to A and waits until they arrived.
    fn send(&self, n: u32) {
        let (before, _) = self.sink.received();
        let to = self.sink.addr();
        udp_send(
            &self.net.b,
            self.net.link.ipv4_b.into(),
            to.ip(),
            to.port(),
            n,
            PAYLOAD,
        );
        let want = before + u64::from(n);
        assert_eq!(self.sink.wait_for(want, Duration::from_secs(20)), want);
    }

    /// Packets that crossed the link since the setup (the oracle), checked to be only ours.
    fn crossed(&self) -> u64 {
        let rx = link_stats(self.a(), &self.net.link.dev_a)
            .since(&self.base)
            .rx_packets;
        assert_eq!(
            rx,
            self.sink.received().0,
            "only the test's datagrams crossed"
        );
        rx
    }

    fn peer(&self) -> IpAddr {
        self.net.link.ipv4_b.into()
    }
}

/// Waits until the daemon's interface, peer-host and UDP totals all equal `packets`
/// datagrams of [`FRAME`] bytes; panics with what it saw otherwise.
#[track_caller]
fn counts_exactly(d: &Daemon, peer: IpAddr, packets: u64) {
    let seen = || d.rx_totals(peer);
    let want = [(packets, packets * FRAME); 3];
    let got = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let s = seen();
        (s == want).then_some(s)
    });
    assert_eq!(
        got.unwrap_or_else(seen),
        want,
        "interface, host and UDP totals"
    );
}

/// Waits until `/api/v1/status` has a store status for which `ok` holds; returns it.
#[track_caller]
fn store_until(d: &Daemon, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        let s = d.get("/api/v1/status")["store"].clone();
        ok(&s).then_some(s)
    })
    .unwrap_or_else(|| panic!("the store never got {what}: {}", d.get("/api/v1/status")))
}

fn healthy(s: &Value) -> bool {
    s["state"] == "ok" && s["backlog_polls"] == 0 && s["pending_totals"] == 0
}

/// Stops `d` cleanly (its programs are detached: the next start has new maps, so its totals
/// can only come from the data directory).
#[track_caller]
fn stop(d: Daemon) {
    let status = d.stop();
    assert!(status.success(), "{status}");
}

/// The disk fills up under the daemon: it says so, counts on, and once there is room again
/// writes everything it kept; a restart carries the totals of the whole run.
#[test]
fn full_disk_is_reported_and_nothing_is_lost_once_there_is_room() {
    let t = Setup::new();
    let tmpfs = Tmpfs::new("16m");
    let dir = data_dir_at(&tmpfs.path().join("data"));
    let d = t.start(&dir);
    t.send(100);
    counts_exactly(&d, t.peer(), t.crossed());
    store_until(&d, "healthy", healthy);

    let filler = tmpfs.path().join("filler");
    fill(&filler);
    t.send(300);
    let s = store_until(&d, "degraded", |s| s["state"] == "degraded");
    let error = s["error"].as_str().unwrap_or_default();
    assert!(error.contains("disk is full"), "{s}");
    assert!(
        error.contains(&dir.join("history.db").display().to_string()),
        "{s}"
    );
    // Counting goes on in memory.
    counts_exactly(&d, t.peer(), t.crossed());
    assert_eq!(t.crossed(), 400);

    fs::remove_file(&filler).expect("removing the filler");
    store_until(&d, "healthy again", healthy);
    assert!(
        d.stderr().contains("writes work again"),
        "the recovery is logged: {}",
        d.stderr()
    );
    stop(d);

    let d = t.start(&dir);
    counts_exactly(&d, t.peer(), 400);
    stop(d);
}

/// The data directory is on a read-only file system when the daemon starts (a remount after
/// an error, a read-only snapshot): it carries the saved totals over, counts on in memory, says
/// why it cannot write, and writes everything once the file system is writable again.
#[test]
fn read_only_data_dir_is_reported_and_nothing_is_lost_once_writable() {
    let t = Setup::new();
    let tmpfs = Tmpfs::new("32m");
    let dir = data_dir_at(&tmpfs.path().join("data"));
    let d = t.start(&dir);
    t.send(50);
    counts_exactly(&d, t.peer(), t.crossed());
    store_until(&d, "healthy", healthy);
    stop(d);

    tmpfs.read_only(true);
    let mut d = t.start(&dir);
    let s = store_until(&d, "unavailable", |s| s["state"] == "unavailable");
    assert!(
        s["error"]
            .as_str()
            .unwrap_or_default()
            .contains("read-only"),
        "{s}"
    );
    assert_eq!(s["restored"], true, "the saved totals were read: {s}");
    t.send(150);
    counts_exactly(&d, t.peer(), 200);

    tmpfs.writable_for(&mut d);
    store_until(&d, "healthy again", healthy);
    stop(d);
    tmpfs.read_only(false);
    let d = t.start(&dir);
    counts_exactly(&d, t.peer(), 200);
    assert_eq!(t.crossed(), 200);
    stop(d);
}

/// A truncated database (a crash of the disk, a bad copy) is moved aside, kept byte for byte,
/// and a fresh one is started; the daemon says where the old one went.
#[test]
fn truncated_database_is_moved_aside_and_kept() {
    let t = Setup::new();
    let dir = data_dir(None);
    let d = t.start(&dir);
    t.send(20);
    counts_exactly(&d, t.peer(), 20);
    stop(d);
    let db = dir.join("history.db");
    let bytes = fs::read(&db).expect("the database the daemon wrote");
    assert!(
        bytes.len() > 4096,
        "a database with content: {} bytes",
        bytes.len()
    );
    let damaged = &bytes[..50];
    fs::write(&db, damaged).expect("truncating the database");

    let d = t.start(&dir);
    let s = store_until(&d, "a moved-aside file", |s| !s["moved_aside"].is_null());
    assert_eq!(s["state"], "ok", "{s}");
    let to = PathBuf::from(s["moved_aside"]["to"].as_str().expect("a path"));
    assert!(
        s["moved_aside"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("truncated"),
        "{s}"
    );
    assert_eq!(
        fs::read(&to).expect("the moved file"),
        damaged,
        "kept as it was"
    );
    assert!(d.stderr().contains("moved it aside"), "{}", d.stderr());
    // The old totals went with the file; counting starts afresh and is written again.
    t.send(30);
    counts_exactly(&d, t.peer(), 30);
    store_until(&d, "healthy", healthy);
    stop(d);
}

/// A database written by a newer ntop is refused with instructions and left alone byte for
/// byte; the daemon counts on in memory.
#[test]
fn newer_database_is_left_alone() {
    let t = Setup::new();
    let dir = data_dir(None);
    let d = t.start(&dir);
    t.send(20);
    counts_exactly(&d, t.peer(), 20);
    stop(d);
    let db = dir.join("history.db");
    assert!(
        !dir.join("history.db-wal").exists(),
        "a clean stop checkpoints the WAL into the file"
    );
    // The schema version is the big-endian `user_version` at offset 60 of the header
    // (https://www.sqlite.org/fileformat2.html#user_version_number).
    let mut bytes = fs::read(&db).expect("the database the daemon wrote");
    bytes[60..64].copy_from_slice(&99_u32.to_be_bytes());
    fs::write(&db, &bytes).expect("writing the future version");

    let d = t.start(&dir);
    let s = store_until(&d, "unavailable", |s| s["state"] == "unavailable");
    let error = s["error"].as_str().unwrap_or_default();
    assert!(error.contains("newer ntop") && error.contains("99"), "{s}");
    t.send(40);
    counts_exactly(&d, t.peer(), 40);
    stop(d);
    assert_eq!(
        fs::read(&db).expect("the database"),
        bytes,
        "left as it was"
    );
    assert!(
        !dir.join("history.db-wal").exists(),
        "nothing was written beside it"
    );
}
