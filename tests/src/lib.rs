//! Harness for ntop's integration tests: network namespaces joined by veth pairs, traffic
//! generators bounded in count and time, and oracles that do not depend on ntop (the kernel's
//! link counters, SNMP counters, and packet captures dissected by tshark). It also runs the
//! daemon ([`Daemon`]) and loads its kernel programs for `BPF_PROG_TEST_RUN` ([`testrun`]).
//!
//! Rules the helpers keep:
//! - They need root and panic with a message naming what failed (`#[track_caller]` points at
//!   the test); nothing is skipped silently, in CI or elsewhere.
//! - Addresses come only from `198.18.0.0/15` and `2001:db8::/32`, inside namespaces the harness
//!   creates; the root namespace's interfaces and routes are never touched.
//! - Synchronisation is on observable conditions through [`wait_until`], never a fixed sleep.
//!
//! A typical test:
//! ```no_run
//! use ntop_tests::{TestNet, VethConfig, capture::Capture, link_stats, ping};
//!
//! let net = TestNet::new(&VethConfig::default());
//! let capture = Capture::start(&net.b, &net.link.dev_b);
//! let before = link_stats(&net.a, &net.link.dev_a);
//! let reply = ping(&net.a, net.link.ipv4_b.into(), 5, 56);
//! let packets = capture.stop();
//! assert_eq!(reply.received, 5);
//! let delta = link_stats(&net.a, &net.link.dev_a).since(&before);
//! assert_eq!(delta.tx_packets, 5);
//! assert_eq!(packets.iter().filter(|p| p.is_echo_request()).count(), 5);
//! ```
#![expect(
    clippy::missing_panics_doc,
    reason = "test helpers panic on failure by design, as the crate documentation says"
)]

pub mod bpffs;
pub mod browser;
pub mod capture;
pub mod daemon;
pub mod hooks;
pub mod netns;
pub mod stats;
pub mod testrun;
pub mod traffic;
pub mod veth;

use std::{
    env, fs,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    thread,
    time::{Duration, Instant},
};

pub use bpffs::Bpffs;
pub use capture::{Capture, Packet};
pub use daemon::Daemon;
pub use netns::{Netns, NsChild};
pub use stats::{LinkStats, link_stats, nstat};
pub use traffic::{
    Iperf3Result, PingStats, UdpSink, iperf3_tcp, ping, tcp_listening, tcp_transfer, udp_send,
};
pub use veth::{TestNet, VethConfig, VethPair, set_offloads};

/// Prefix of every namespace and scratch directory the harness creates: `ntopt-<pid>-<n>`.
pub const PREFIX: &str = "ntopt-";

/// Panics unless the process runs as root: the integration tests create network namespaces and
/// attach BPF programs. They are never skipped, in CI (`CI=true`) or elsewhere.
#[track_caller]
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "these tests need root (network namespaces, BPF programs) and are never skipped: run \
         `cargo xtask test` as root (euid is {euid}{})",
        if env::var_os("CI").is_some() {
            ", CI is set"
        } else {
            ""
        }
    );
}

/// Calls `condition` until it returns `Some`, at most until `timeout` has passed, pausing
/// `poll_interval` between calls; returns the value, or `None` when time ran out. It is called
/// at least once, and once more at the deadline.
pub fn wait_until<T>(
    timeout: Duration,
    poll_interval: Duration,
    mut condition: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = condition() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(poll_interval.min(deadline - now));
    }
}

/// The daemon's binary next to the running test's (`target/<profile>/ntop`), or `NTOP_BIN`.
/// `cargo xtask test` builds it first; `cargo test` alone builds it only for ntop's own tests.
#[must_use]
pub fn ntop_bin() -> PathBuf {
    if let Some(path) = env::var_os("NTOP_BIN") {
        return PathBuf::from(path);
    }
    let exe = env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test>-<hash>
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("ntop"))
        .expect("the test binary is in target/<profile>/deps");
    assert!(
        bin.is_file(),
        "{} does not exist: build the daemon first (`cargo build -p ntop`, which `cargo xtask \
         test` does), or set NTOP_BIN",
        bin.display()
    );
    bin
}

/// A name unique on this machine: `ntopt-<pid>-<n>`.
#[must_use]
pub fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// This process's scratch directory (`$TMPDIR/ntopt-<pid>`) for captures and child logs.
#[must_use]
pub fn scratch_dir() -> PathBuf {
    let dir = env::temp_dir().join(format!("{PREFIX}{}", std::process::id()));
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("creating scratch directory {}: {e}", dir.display()));
    dir
}

/// Whether a process with this pid exists.
pub(crate) fn pid_alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

/// The pid in a name `ntopt-<pid>` or `ntopt-<pid>-<n>`.
pub(crate) fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_the_value_or_none() {
        let mut n = 0;
        let v = wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(v, Some(3));
        let start = Instant::now();
        assert_eq!(
            wait_until(
                Duration::from_millis(30),
                Duration::from_millis(5),
                || None::<()>
            ),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn names_carry_the_pid() {
        let name = unique_name();
        assert_eq!(pid_of(&name), Some(std::process::id()));
        assert_eq!(pid_of("ntopt-12"), Some(12));
        assert_eq!(pid_of("other-12-1"), None);
        assert!(pid_alive(std::process::id()));
    }
}
