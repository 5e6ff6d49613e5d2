//! The daemon's command line and lifecycle, running the real `ntop` binary inside test
//! namespaces (needs root).
//!
//! - Start-up errors: an unknown interface, a bad flag or value, a busy HTTP port, a missing
//!   capability (run as `nobody` with no capabilities, or with `CAP_BPF` and `CAP_PERFMON` but
//!   not `CAP_NET_ADMIN`), an XDP hook owned by another program, no default route. Each
//!   must exit with a specific status (1 for ntop's errors, 2 for clap's) and, with `-t 1`
//!   (errors only), print exactly one line naming the problem and the fix; nothing stays
//!   attached.
//! - Shutdown: SIGTERM and SIGINT make it exit 0 within a bounded time, log what it detached,
//!   and leave no XDP program (`ip -d link`, `bpftool net`) and no TCX program
//!   (`BPF_PROG_QUERY` through aya) on the interface.
//! - Without `-i` it monitors the interface of the default route.
//!
//! HTTP listens only on the namespace's loopback (`-w 127.0.0.1:PORT`) or is off (`-w 0`).
//! Start-up is over when the API answers ([`Daemon::spawn`]): the daemon binds its port before
//! loading the programs but serves only after attaching them, so an answer means everything is
//! attached.

use std::{
    env,
    ffi::OsStr,
    fs,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use ntop_tests::{
    Daemon, Netns, NsChild, TestNet, VethConfig,
    daemon::{data_dir, http_get, ntop_command},
    hooks::{assert_nothing_attached, hooks},
    ntop_bin, require_root, wait_until,
};

/// Port of the HTTP API inside a test namespace (each namespace has its own loopback).
const PORT: u16 = 3000;
/// Bound on a failing run (a debug build loading BPF on a busy machine) and on the waits.
const START: Duration = Duration::from_mins(1);
/// Bound on shutdown after a signal.
const STOP: Duration = Duration::from_secs(15);
/// Poll interval of the waits.
const POLL: Duration = Duration::from_millis(20);
/// Options every run gets: a small host table.
const SMALL: [&str; 2] = ["--memory-budget", "1M"];
/// uid and gid of `nobody`.
const NOBODY: &str = "65534";

/// What a finished run left.
#[derive(Debug)]
struct Exited {
    status: ExitStatus,
    stderr: String,
}

impl Exited {
    /// The non-empty lines of stderr.
    fn lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Asserts exit code `code` (not killed by a signal) and exactly one non-empty line on
    /// stderr, which it returns.
    #[track_caller]
    fn one_line(&self, code: i32) -> &str {
        assert_eq!(
            self.status.code(),
            Some(code),
            "exit status {} (wanted code {code}); stderr:\n{}",
            self.status,
            self.stderr
        );
        let lines = self.lines();
        assert_eq!(
            lines.len(),
            1,
            "wanted exactly one line on stderr, got:\n{}",
            self.stderr
        );
        lines[0]
    }
}

/// Runs `cmd` to its end (bounded by [`START`]).
#[track_caller]
fn run_to_exit(cmd: Command) -> Exited {
    let mut child = NsChild::spawn(cmd);
    let status = child
        .wait_timeout(START)
        .unwrap_or_else(|| panic!("still running after {START:?}: {}", child.stderr()));
    Exited {
        status,
        stderr: child.stderr(),
    }
}

/// Starts `ntop -w 127.0.0.1:PORT --memory-budget 1M ARGS` in `ns` (see [`Daemon::spawn`]:
/// it returns once the daemon has attached and serves).
#[track_caller]
fn start_daemon<'a>(ns: &'a Netns, port: u16, args: &[&str]) -> Daemon<'a> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut cmd = ntop_command(ns, &["-w", &addr.to_string(), SMALL[0], SMALL[1]]);
    cmd.args(args);
    Daemon::spawn(ns, addr, cmd)
}

/// Sends `signal` and waits (bounded by [`STOP`]) for the exit; returns the status.
#[track_caller]
fn signal_and_wait(child: &mut NsChild, signal: libc::c_int) -> ExitStatus {
    child.signal(signal);
    child
        .wait_timeout(STOP)
        .unwrap_or_else(|| panic!("still running {STOP:?} after signal {signal}"))
}

/// Log text without the ANSI colour sequences `tracing` may write.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A copy of the daemon that `nobody` can execute, removed on drop (or the binary itself when
/// `nobody` can already execute it, every parent directory included).
struct NobodyBinary {
    path: PathBuf,
    copy_dir: Option<PathBuf>,
}

impl NobodyBinary {
    #[track_caller]
    fn new(ns: &Netns) -> Self {
        static COPIES: AtomicU32 = AtomicU32::new(0);
        let bin = ntop_bin();
        let check = [OsStr::new("-x"), bin.as_os_str()];
        if as_nobody(ns, &[], OsStr::new("test"), &[])
            .args(check)
            .status()
            .is_ok_and(|s| s.success())
        {
            return Self {
                path: bin,
                copy_dir: None,
            };
        }
        // One per test (they run in parallel). `ntopt-<pid>-…`: the harness removes it if this
        // process dies before the drop.
        let dir = env::temp_dir().join(format!(
            "ntopt-{}-nobody-bin-{}",
            std::process::id(),
            COPIES.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("creating the copy's directory");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        let path = dir.join("ntop");
        fs::copy(&bin, &path).expect("copying the daemon");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod 755");
        Self {
            path,
            copy_dir: Some(dir),
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NobodyBinary {
    fn drop(&mut self) {
        if let Some(dir) = &self.copy_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `program args` as uid/gid 65534 with no supplementary groups, in `ns`, with only the
/// capabilities `caps` (e.g. `["bpf", "perfmon"]`; none when empty): they are the only ones in
/// the bounding, inheritable and ambient sets, so they survive the change of uid and the exec.
fn as_nobody(ns: &Netns, caps: &[&str], program: &OsStr, args: &[&str]) -> Command {
    let plus: String = caps.iter().flat_map(|c| [",+", c]).collect();
    let mut cmd = ns.command("setpriv");
    cmd.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(format!("--inh-caps=-all{plus}"))
        .arg(format!("--bounding-set=-all{plus}"));
    if !caps.is_empty() {
        cmd.arg(format!("--ambient-caps={}", &plus[1..]));
    }
    cmd.arg(program).args(args).env_remove("NTOP_LOG");
    cmd
}

/// `ntop -P DIR args` as [`as_nobody`], with a data directory (admin password set) that nobody
/// owns.
fn ntop_as_nobody(ns: &Netns, caps: &[&str], program: &OsStr, args: &[&str]) -> Command {
    let uid: u32 = NOBODY.parse().expect("a uid");
    let dir = data_dir(Some(uid));
    let mut with_dir = vec!["-P", dir.to_str().expect("a UTF-8 path")];
    with_dir.extend_from_slice(args);
    as_nobody(ns, caps, program, &with_dir)
}

/// Runs ntop on `veth-a` as `nobody` with only `caps`; returns its one line of error.
#[track_caller]
fn run_as_nobody(caps: &[&str], mode: &str) -> String {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let bin = NobodyBinary::new(&net.a);
    let out = run_to_exit(ntop_as_nobody(
        &net.a,
        caps,
        bin.path().as_os_str(),
        &[
            "-i",
            "veth-a",
            "--capture-mode",
            mode,
            "-w",
            "0",
            "-t",
            "1",
            SMALL[0],
            SMALL[1],
        ],
    ));
    let line = out.one_line(1).to_owned();
    assert_nothing_attached(&net.a, "veth-a");
    line
}

#[test]
fn unknown_interface_names_it_and_the_flag() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let out = run_to_exit(ntop_command(
        &net.a,
        &["-i", "nosuch0", "-w", "0", "-t", "1", SMALL[0], SMALL[1]],
    ));
    let line = out.one_line(1);
    assert!(line.starts_with("ntop: error: "), "{line}");
    for want in ["nosuch0", "does not exist", "-i", "veth-a"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    assert_nothing_attached(&net.a, "veth-a");
}

#[test]
fn unknown_flag_is_a_usage_error() {
    require_root();
    let ns = Netns::new();
    let out = run_to_exit(ntop_command(&ns, &["--bogus-flag"]));
    assert_eq!(out.status.code(), Some(2), "{}: {}", out.status, out.stderr);
    let first = out.lines()[0];
    assert!(first.contains("--bogus-flag"), "{}", out.stderr);
}

#[test]
fn bad_values_name_the_option_the_value_and_examples() {
    require_root();
    let ns = Netns::new();
    let out = run_to_exit(ntop_command(&ns, &["-w", "notaport"]));
    assert_eq!(out.status.code(), Some(2), "{}: {}", out.status, out.stderr);
    let first = out.lines()[0];
    // clap names the option by its long form: `-w` is `--http-server`.
    for want in ["notaport", "--http-server", "127.0.0.1:3000", "0 (off)"] {
        assert!(first.contains(want), "no `{want}` in: {}", out.stderr);
    }

    let out = run_to_exit(ntop_command(&ns, &["--capture-mode", "ebpf"]));
    assert_eq!(out.status.code(), Some(2), "{}: {}", out.status, out.stderr);
    for want in ["ebpf", "--capture-mode", "xdp-native", "xdp-generic", "tc"] {
        assert!(out.stderr.contains(want), "no `{want}` in: {}", out.stderr);
    }

    let out = run_to_exit(ntop_command(&ns, &["--memory-budget", "12X"]));
    assert_eq!(out.status.code(), Some(2), "{}: {}", out.status, out.stderr);
    for want in ["12X", "--memory-budget", "K, M or G"] {
        assert!(out.stderr.contains(want), "no `{want}` in: {}", out.stderr);
    }
}

#[test]
fn busy_port_fails_before_attaching() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let listener = net
        .a
        .enter(|| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .expect("binding a port in the namespace");
    let addr = listener.local_addr().expect("its address").to_string();
    let out = run_to_exit(ntop_command(
        &net.a,
        &["-i", "veth-a", "-w", &addr, "-t", "1", SMALL[0], SMALL[1]],
    ));
    let line = out.one_line(1);
    for want in [addr.as_str(), "-w"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    assert_nothing_attached(&net.a, "veth-a");
    drop(listener);
}

#[test]
fn missing_capability_says_run_as_root() {
    let line = run_as_nobody(&[], "xdp");
    for want in ["not permitted", "root", "CAP_BPF"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
}

/// A user who is not root but has `CAP_BPF`, `CAP_PERFMON` and `CAP_NET_ADMIN` runs ntop: it
/// attaches, serves, counts, and stays that user (nothing to drop).
#[test]
fn runs_as_a_non_root_user_with_the_needed_capabilities() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let bin = NobodyBinary::new(&net.a);
    let cmd = ntop_as_nobody(
        &net.a,
        &["bpf", "perfmon", "net_admin"],
        bin.path().as_os_str(),
        &["-i", "veth-a", "-w", "127.0.0.1:3000", SMALL[0], SMALL[1]],
    );
    let mut daemon = Daemon::spawn(&net.a, SocketAddr::from((Ipv4Addr::LOCALHOST, PORT)), cmd);
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.child().id()))
        .expect("the daemon's /proc status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id == NOBODY),
        "runs as nobody: {uid_line}"
    );
    let h = hooks(&net.a, "veth-a");
    assert!(
        h.xdp.to_string().contains("ntop_xdp"),
        "XDP attached: {}",
        h.xdp
    );
    assert_eq!(h.tcx_egress, ["ntop_tc_egress"]);
    let status = signal_and_wait(daemon.child(), libc::SIGTERM);
    assert!(status.success(), "{status}");
    assert_nothing_attached(&net.a, "veth-a");
}

/// `CAP_BPF` and `CAP_PERFMON` create the maps; loading XDP and TC programs also needs
/// `CAP_NET_ADMIN`.
#[test]
fn missing_cap_net_admin_says_which_capabilities() {
    for mode in ["xdp", "tc"] {
        let line = run_as_nobody(&["bpf", "perfmon"], mode);
        // EPERM from BPF_PROG_LOAD (after the maps were created) is the same `Permission`
        // error as from map creation, naming the capabilities.
        for want in ["not permitted", "CAP_NET_ADMIN"] {
            assert!(
                line.contains(want),
                "--capture-mode {mode}: no `{want}` in: {line}"
            );
        }
    }
}

#[test]
fn xdp_hook_owned_by_another_program_suggests_tc() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (ns, dev) = (&net.a, "veth-a");
    let mut first = start_daemon(ns, PORT, &["-i", dev, "--capture-mode", "xdp-native"]);
    let before = hooks(ns, dev);
    assert_eq!(before.xdp_prog(), Some(("ntop_xdp", 1)), "{before:#?}");

    // Default mode: native, then generic; both refused while a native program is there.
    let out = run_to_exit(ntop_command(
        ns,
        &["-i", dev, "-w", "0", "-t", "1", SMALL[0], SMALL[1]],
    ));
    let line = out.one_line(1);
    for want in ["XDP", dev, "try --capture-mode tc"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    let after = hooks(ns, dev);
    assert_eq!(after.xdp_prog(), Some(("ntop_xdp", 1)), "{after:#?}");
    assert_eq!(
        after.tcx_egress, before.tcx_egress,
        "the failed run left a TCX program behind"
    );
    assert_eq!(after.tcx_ingress, before.tcx_ingress);

    // The suggested fix works next to the first daemon and keeps running.
    let mut second = start_daemon(ns, PORT + 1, &["-i", dev, "--capture-mode", "tc"]);
    assert!(
        second.child().try_wait().is_none(),
        "exited after start-up: {}",
        second.stderr()
    );
    let both = hooks(ns, dev);
    assert_eq!(both.tcx_ingress, ["ntop_tc_ingress"], "{both:#?}");
    assert_eq!(
        both.tcx_egress,
        ["ntop_tc_egress", "ntop_tc_egress"],
        "{both:#?}"
    );
    let (code, body) = http_get(ns, second.addr(), "/api/v1/health").expect("second still answers");
    assert_eq!((code, body.contains("\"ok\"")), (200, true), "{body}");

    assert!(second.child().stop(STOP).success(), "{}", second.stderr());
    assert!(first.child().stop(STOP).success(), "{}", first.stderr());
    assert_nothing_attached(ns, dev);
}

/// Starts ntop on `veth-a` in `mode`, checks what it attached, stops it with `signal`, and
/// checks the exit, the log and that nothing is left.
fn detaches_cleanly(mode: &str, signal: libc::c_int, signal_name: &str) {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (ns, dev) = (&net.a, "veth-a");
    let mut daemon = start_daemon(ns, PORT, &["-i", dev, "--capture-mode", mode]);
    let h = hooks(ns, dev);
    assert_eq!(h.tcx_egress, ["ntop_tc_egress"], "{h:#?}");
    if mode == "tc" {
        assert!(h.xdp.is_null(), "{h:#?}");
        assert_eq!(h.tcx_ingress, ["ntop_tc_ingress"], "{h:#?}");
    } else {
        assert_eq!(h.xdp_prog(), Some(("ntop_xdp", 1)), "{h:#?}");
        let xdp = &h.bpftool[0]["xdp"];
        assert_eq!(xdp[0]["devname"], dev, "{h:#?}");
        assert_eq!(xdp[0]["mode"], "driver", "{h:#?}");
        assert!(h.tcx_ingress.is_empty(), "{h:#?}");
    }

    let status = signal_and_wait(daemon.child(), signal);
    let log = plain(&daemon.stderr());
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("{signal_name}: shutting down"))),
        "no shutdown line for {signal_name}:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("detached") && l.contains(&format!("interface={dev}"))),
        "no `detached interface={dev}` line:\n{log}"
    );
    assert_nothing_attached(ns, dev);
}

#[test]
fn sigterm_detaches_xdp_and_tcx() {
    detaches_cleanly("xdp-native", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_detaches_xdp_and_tcx() {
    detaches_cleanly("xdp-native", libc::SIGINT, "SIGINT");
}

#[test]
fn sigterm_detaches_tcx_ingress_and_egress() {
    detaches_cleanly("tc", libc::SIGTERM, "SIGTERM");
}

#[test]
fn without_i_monitors_the_default_route_interface() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    // Only the test namespace's routing table.
    ns.ip([
        "route",
        "add",
        "default",
        "via",
        "198.18.0.2",
        "dev",
        "veth-a",
    ]);
    let mut daemon = start_daemon(ns, PORT, &[]);
    // Interfaces are listed from the first poll on.
    let names = wait_until(START, POLL, || {
        let (code, body) = http_get(ns, daemon.addr(), "/api/v1/interfaces")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let list = v["interfaces"].as_array()?;
        (code == 200 && !list.is_empty()).then(|| {
            list.iter()
                .map(|i| i["name"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        })
    })
    .expect("/api/v1/interfaces lists an interface");
    assert_eq!(names, ["veth-a"]);
    let log = plain(&daemon.stderr());
    assert!(
        log.lines().any(|l| l.contains("interface=veth-a")),
        "no log line naming veth-a:\n{log}"
    );
    assert_eq!(
        daemon.child().stop(STOP).code(),
        Some(0),
        "{}",
        daemon.stderr()
    );
    assert_nothing_attached(ns, "veth-a");
}

#[test]
fn without_i_and_without_default_route_asks_for_i() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let out = run_to_exit(ntop_command(
        &net.a,
        &["-w", "0", "-t", "1", SMALL[0], SMALL[1]],
    ));
    let line = out.one_line(1);
    for want in ["default route", "-i"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    assert_nothing_attached(&net.a, "veth-a");
}
