//! The daemon as an admin deploys it, running the real `ntop` binary inside test namespaces
//! (needs root):
//!
//! - `ntop -A` reads the admin password from a pipe, stores only an argon2id hash (0600, in a
//!   0700 data directory) and refuses a short one; the daemon then accepts exactly that
//!   password over HTTP Basic.
//! - Without an admin password and without a terminal, ntop refuses to start with one line
//!   naming `ntop -A -P DIR`, before attaching anything.
//! - Every API route answers 401 JSON `{code, message}` without credentials, and only the
//!   health endpoint answers without them.
//! - HTTP and HTTPS at once, checked with curl: the generated self-signed certificate and a
//!   supplied one (openssl), TLS 1.2 and 1.3 but not 1.1; a broken certificate and a
//!   mismatched key fail startup with one line naming the file.
//! - `-u`: the serving process's real, effective, saved and file-system uids and gids are the
//!   target user's and it holds no capabilities (`/proc/PID/status`), its counts keep
//!   following the link, and the data directory is the user's; without `-u` it drops to `ntop`
//!   or, where no such user exists, `nobody`.
//! - `-d`: the foreground command returns only once the daemon serves (0) or has failed (its
//!   error, non-zero); the pid file, "already running", and a clean detach on SIGTERM.
//!
//! Runs that must end are bounded (`timeout 60` and a bounded wait for their output); the
//! daemons serve only on their namespace's loopback.

use std::{
    fs,
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use ntop_tests::{
    Daemon, Netns, NsChild, TestNet, VethConfig,
    daemon::{
        BASIC_AUTH, HttpResponse, PASSWORD, basic_auth, data_dir, http_request, ntop_command_in,
    },
    hooks::{Hooks, assert_nothing_attached, hooks},
    link_stats, ntop_bin, ping, require_root, scratch_dir, unique_name, wait_until,
};
use serde_json::Value;

/// Bound on a run that must end, and on start-up (a debug build loading BPF on a busy machine).
const START: Duration = Duration::from_mins(1);
/// Bound on shutdown after a signal, and on counts catching up with the link.
const STOP: Duration = Duration::from_secs(15);
/// Poll interval of the waits.
const POLL: Duration = Duration::from_millis(20);
/// Options every daemon gets: a small host table.
const SMALL: [&str; 2] = ["--memory-budget", "1M"];
/// uid and gid of `nobody`.
const NOBODY: u32 = 65_534;
/// The monitored device (namespace A's end of the default [`TestNet`]).
const DEV: &str = "veth-a";

/// `127.0.0.1:port` (each namespace has its own loopback).
fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `timeout -k 5 60 ntop -P DIR --detach-on-stop ARGS` in `ns`, without `NTOP_LOG` from the
/// environment (`--detach-on-stop`: see [`ntop_command_in`]).
fn bounded_ntop(ns: &Netns, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = ns.command("timeout");
    cmd.args(["-k", "5", "60"])
        .arg(ntop_bin())
        .arg("-P")
        .arg(dir)
        .arg("--detach-on-stop")
        .args(args)
        .env_remove("NTOP_LOG");
    cmd
}

/// Runs `cmd` to its end with `input` on a pipe as standard input (`/dev/null` without) and
/// returns its output. `Command::output` waits until every holder of the output pipes has
/// closed them (a daemon too): that wait is bounded here, past the `timeout 60` of the
/// command itself.
#[track_caller]
fn output(mut cmd: Command, input: Option<&[u8]>) -> Output {
    let what = format!("{cmd:?}");
    let input = input.map(<[u8]>::to_vec);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let run = || -> std::io::Result<Output> {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            let Some(input) = input else {
                return cmd.stdin(Stdio::null()).output();
            };
            let mut child = cmd.stdin(Stdio::piped()).spawn()?;
            let mut stdin = child.stdin.take().expect("a stdin pipe");
            // A process that exits before reading makes this fail with EPIPE; its output says
            // why.
            let _ = stdin.write_all(&input);
            drop(stdin);
            child.wait_with_output()
        };
        let _ = tx.send(run());
    });
    rx.recv_timeout(START + Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what}: no end of its output within {START:?}"))
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"))
}

/// The non-empty lines of a stream.
fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Asserts a failure with exit code 1 and exactly one non-empty line on stderr, which it
/// returns.
#[track_caller]
fn one_error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status {} (wanted code 1); stderr:\n{stderr}",
        out.status
    );
    let lines = lines(&out.stderr);
    assert_eq!(
        lines.len(),
        1,
        "wanted exactly one line on stderr, got:\n{stderr}"
    );
    lines[0].clone()
}

/// Asserts a failure with exit code 1 and at least one line on stderr; returns the lines.
#[track_caller]
fn failure_lines(out: &Output) -> Vec<String> {
    let lines = lines(&out.stderr);
    assert!(
        out.status.code() == Some(1) && !lines.is_empty(),
        "exit status {} (wanted code 1 and a message); stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    lines
}

/// Runs `cmd` (an ntop that is expected to fail at start-up) to its end, bounded by [`START`];
/// returns its exit status and stderr as an [`Output`].
#[track_caller]
fn run_to_exit(cmd: Command) -> Output {
    let mut child = NsChild::spawn(cmd);
    let status = child
        .wait_timeout(START)
        .unwrap_or_else(|| panic!("still running after {START:?}: {}", child.stderr()));
    Output {
        status,
        stdout: child.stdout().into_bytes(),
        stderr: child.stderr().into_bytes(),
    }
}

/// `GET path` without any credentials.
fn get_anonymous(ns: &Netns, addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    http_request(ns, addr, "GET", path, &[], b"")
}

/// `GET path` with `Authorization: authorization`.
fn get_with(ns: &Netns, addr: SocketAddr, path: &str, authorization: &str) -> Option<HttpResponse> {
    http_request(
        ns,
        addr,
        "GET",
        path,
        &[("Authorization", authorization)],
        b"",
    )
}

/// Asserts a 401 with a JSON body of exactly `{code: "unauthorized", message}`, a non-empty
/// message, and a Basic challenge.
#[track_caller]
fn assert_unauthorized(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}\n{}", r.head, r.body);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json"),
        "{what}: {}",
        r.head
    );
    let v = r
        .json()
        .unwrap_or_else(|| panic!("{what}: not JSON: {}", r.body));
    let keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["code", "message"], "{what}: {v}");
    assert_eq!(v["code"], "unauthorized", "{what}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(
        r.header("WWW-Authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{what}: no Basic challenge: {}",
        r.head
    );
}

/// Starts `cmd` (an ntop serving plain HTTP on `addr`) and waits, bounded by [`START`], until
/// its health endpoint answers, which needs no credentials. Panics if it exits first.
#[track_caller]
fn spawn_serving(ns: &Netns, addr: SocketAddr, cmd: Command) -> NsChild {
    let mut child = NsChild::spawn(cmd);
    let ready = wait_until(START, POLL, || {
        if let Some(status) = child.try_wait() {
            return Some(Err(status));
        }
        let r = get_anonymous(ns, addr, "/api/v1/health")?;
        (r.status == 200).then_some(Ok(()))
    });
    match ready {
        Some(Ok(())) => child,
        Some(Err(status)) => panic!("ntop exited ({status}) before serving:\n{}", child.stderr()),
        None => panic!(
            "ntop did not serve on {addr} within {START:?}:\n{}",
            child.stderr()
        ),
    }
}

/// Asserts that `daemon` stops with status 0 on SIGINT.
#[track_caller]
fn stop_cleanly(mut daemon: Daemon) {
    let status = daemon.child().stop(STOP);
    assert_eq!(status.code(), Some(0), "{status}: {}", daemon.stderr());
}

/// A fresh path in this process's scratch directory (not created).
fn fresh_path(what: &str) -> PathBuf {
    scratch_dir().join(format!("{what}-{}", unique_name()))
}

/// `/proc/PID/status`.
#[track_caller]
fn proc_status(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("reading /proc/{pid}/status: {e}"))
}

/// The values of a `/proc/PID/status` field (`Uid:` has four: real, effective, saved, fs).
#[track_caller]
fn status_field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
        .split_whitespace()
        .collect()
}

/// Asserts that process `pid` is `ntop` running as `uid`/`gid` (real, effective, saved and
/// file-system ids) with no capability in any set but the bounding one.
#[track_caller]
fn assert_dropped_to(pid: u32, uid: u32, gid: u32) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).expect("/proc/PID/comm");
    assert_eq!(comm.trim(), "ntop", "pid {pid} is not the daemon itself");
    let status = proc_status(pid);
    let (uid, gid) = (uid.to_string(), gid.to_string());
    assert_eq!(status_field(&status, "Uid"), [uid.as_str(); 4], "{status}");
    assert_eq!(status_field(&status, "Gid"), [gid.as_str(); 4], "{status}");
    // No supplementary group but the user's own (privdrop calls initgroups, which lists the
    // primary group too).
    let groups = status_field(&status, "Groups");
    assert!(
        groups.iter().all(|g| *g == gid),
        "supplementary groups {groups:?}:\n{status}"
    );
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(
            status_field(&status, set),
            ["0000000000000000"],
            "{set}:\n{status}"
        );
    }
}

/// Asserts that `path` belongs to `uid`:`gid`.
#[track_caller]
fn assert_owner(path: &Path, uid: u32, gid: u32) {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        (m.uid(), m.gid()),
        (uid, gid),
        "owner of {}",
        path.display()
    );
}

/// The permission bits of `path`.
#[track_caller]
fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Received packets of the first interface in the daemon's JSON.
fn rx_packets(d: &Daemon) -> u64 {
    d.get("/api/v1/interfaces")["interfaces"][0]["rx"]["packets"]
        .as_u64()
        .expect("rx.packets")
}

/// Pings B from A `count` times and waits (bounded by [`STOP`]) until the daemon's received
/// packets equal the link's since `base` (the link's counters when the daemon attached);
/// returns that count.
#[track_caller]
fn ping_and_settle(net: &TestNet, d: &Daemon, base: &ntop_tests::LinkStats, count: u32) -> u64 {
    let reply = ping(&net.a, net.link.ipv4_b.into(), count, 56);
    assert_eq!(reply.received, count, "{reply:?}");
    wait_until(STOP, POLL, || {
        let link = link_stats(&net.a, DEV).since(base).rx_packets;
        (rx_packets(d) == link).then_some(link)
    })
    .unwrap_or_else(|| {
        panic!(
            "the daemon's rx packets ({}) never reached the link's ({})",
            rx_packets(d),
            link_stats(&net.a, DEV).since(base).rx_packets
        )
    })
}

/// Whether process `pid` has ended (gone, or a zombie nobody has reaped yet: a daemon is not
/// the test's child).
fn ended(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .map_or(true, |s| s.lines().any(|l| l.starts_with("State:\tZ")))
}

/// Kills the daemon that `ntop -d` left running when dropped (a failing test must not leave
/// it attached and serving): the pid recorded from its pid file, or the pid in the file.
struct Daemonized {
    pid_file: PathBuf,
    pid: Option<u32>,
}

impl Daemonized {
    /// The pid in the pid file, if it holds one.
    fn read_pid(&self) -> Option<u32> {
        fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }
}

impl Drop for Daemonized {
    fn drop(&mut self) {
        let Some(pid) = self.pid.or_else(|| self.read_pid()) else {
            return;
        };
        // Only the daemon: a pid that has been reused by something else is left alone.
        let is_ntop =
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "ntop");
        if is_ntop && !ended(pid) {
            let raw = libc::pid_t::try_from(pid).expect("pid fits pid_t");
            // SAFETY: kill has no memory-safety preconditions.
            unsafe { libc::kill(raw, libc::SIGKILL) };
            if wait_until(STOP, POLL, || ended(pid).then_some(())).is_none() {
                eprintln!("warning: the daemonized ntop (pid {pid}) survived SIGKILL");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The admin password.

/// `ntop -A` with the password on a pipe: only an argon2id hash is stored, privately; a short
/// password is refused and changes nothing; the daemon accepts exactly the stored password.
#[test]
fn a_reads_the_password_from_stdin_and_stores_only_a_hash() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let password = "pw-from-stdin-1";
    // Not made by `data_dir`, which sets a password: ntop creates it.
    let dir = fresh_path("data-a");
    let pw_file = dir.join("ntop_pw");

    let out = output(
        bounded_ntop(ns, &dir, &["-A"]),
        Some(format!("{password}\n").as_bytes()),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}: {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("admin password stored in {}", dir.display())),
        "{stdout}"
    );
    assert_eq!(mode(&dir), 0o700, "the data directory's mode");
    assert_eq!(mode(&pw_file), 0o600, "the password file's mode");
    let stored = fs::read_to_string(&pw_file).expect("reading ntop_pw");
    assert!(
        stored.starts_with("$argon2id$"),
        "not an argon2id PHC string: {stored}"
    );
    assert_eq!(
        stored.trim().split('$').count(),
        6,
        "not a whole PHC string: {stored}"
    );
    assert!(!stored.contains(password), "the password itself is stored");
    let names: Vec<String> = fs::read_dir(&dir)
        .expect("the data directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names, ["ntop_pw"], "what -A left in the data directory");

    // Too short: refused with a message about its length; the stored hash stays.
    let out = output(bounded_ntop(ns, &dir, &["-A"]), Some(b"short\n"));
    let line = one_error_line(&out);
    for want in ["too short (5 characters)", "at least 8 characters"] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    assert_eq!(
        fs::read_to_string(&pw_file).expect("reading ntop_pw"),
        stored,
        "a refused password replaced the stored one"
    );

    // The daemon on that directory accepts that password, and only that one.
    let addr = local(3000);
    let mut cmd = ntop_command_in(ns, &dir, &["-i", DEV, "-w", &addr.to_string()]);
    cmd.args(SMALL);
    let mut daemon = spawn_serving(ns, addr, cmd);
    let good = basic_auth("admin", password);
    let r = get_with(ns, addr, "/api/v1/interfaces", &good).expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json().expect("JSON");
    assert_eq!(v["interfaces"][0]["name"], DEV, "{v}");
    let r = get_with(
        ns,
        addr,
        "/api/v1/interfaces",
        &basic_auth("admin", "pw-from-stdin-2"),
    )
    .expect("an answer");
    assert_unauthorized(&r, "a wrong password");
    assert!(!r.body.contains(DEV), "data in a 401: {}", r.body);
    // The harness's password is not this directory's.
    let r = get_with(ns, addr, "/api/v1/interfaces", BASIC_AUTH).expect("an answer");
    assert_unauthorized(&r, "another directory's password");

    assert_eq!(daemon.stop(STOP).code(), Some(0), "{}", daemon.stderr());
    assert_nothing_attached(ns, DEV);
}

/// Without an admin password and with standard input not a terminal, ntop does not start: one
/// line naming the fix, nothing written into the directory, nothing attached.
#[test]
fn refuses_to_start_without_a_password() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = fresh_path("data-empty");
    fs::create_dir(&dir).expect("creating an empty data directory");

    // NsChild gives it /dev/null as standard input.
    let mut cmd = ntop_command_in(ns, &dir, &["-i", DEV, "-w", "0"]);
    cmd.args(SMALL);
    let out = run_to_exit(cmd);
    let line = one_error_line(&out);
    let dir_text = dir.display().to_string();
    for want in ["no admin password", "ntop -A -P", dir_text.as_str()] {
        assert!(line.contains(want), "no `{want}` in: {line}");
    }
    assert!(
        line.contains(&format!("ntop -A -P {dir_text}")),
        "the fix names this directory: {line}"
    );
    assert_eq!(
        fs::read_dir(&dir).expect("the data directory").count(),
        0,
        "ntop wrote into the directory"
    );
    let xdp = hooks(ns, DEV).xdp;
    assert!(xdp.is_null(), "XDP attached: {xdp}");
    assert_nothing_attached(ns, DEV);
}

// ---------------------------------------------------------------------------------------------
// The web server.

/// No credentials: every API route answers 401 JSON `{code, message}` without data, and the
/// health endpoint answers 200.
#[test]
fn every_api_route_needs_credentials() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let daemon = Daemon::start(ns, &["-i", DEV, SMALL[0], SMALL[1]]);
    let addr = daemon.addr();
    // Traffic first, so that there are hosts a leak could show.
    let reply = ping(ns, net.link.ipv4_b.into(), 3, 56);
    assert_eq!(reply.received, 3, "{reply:?}");
    wait_until(STOP, POLL, || {
        let v = daemon.get("/api/v1/hosts");
        (v["hosts"].as_array().is_some_and(|h| !h.is_empty())).then_some(())
    })
    .expect("the daemon lists the pinging hosts");

    for path in [
        "/api/v1/interfaces",
        "/api/v1/hosts",
        "/api/v1/hosts/198.18.0.1",
        "/api/v1/protocols",
        "/metrics",
        "/api/v1/tokens",
        "/api/v1/session",
    ] {
        let r = get_anonymous(ns, addr, path).unwrap_or_else(|| panic!("no answer to {path}"));
        assert_unauthorized(&r, path);
        for leak in [DEV, "198.18.0.2", "packets", "# TYPE"] {
            assert!(
                !r.body.contains(leak),
                "{path}: `{leak}` in a 401: {}",
                r.body
            );
        }
        // With credentials the same route answers (so the 401 is about them, not the route).
        let r = get_with(ns, addr, path, BASIC_AUTH).expect("an answer");
        assert_eq!(r.status, 200, "{path} with credentials: {}", r.body);
    }
    let r = get_anonymous(ns, addr, "/api/v1/health").expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().expect("JSON")["status"], "ok", "{}", r.body);

    stop_cleanly(daemon);
}

/// `curl -sS --max-time 20 ARGS -w '\n%{http_code}' URL` in `ns`: the output, and the body and
/// status when curl succeeded.
fn curl(ns: &Netns, args: &[&str], url: &str) -> (Output, Option<(String, u16)>) {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    all.extend(["-w", "\n%{http_code}", url]);
    let out = ns.exec("curl", &all);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let parsed = out
        .status
        .success()
        .then(|| {
            let (body, code) = text.rsplit_once('\n')?;
            Some((body.to_owned(), code.trim().parse().ok()?))
        })
        .flatten();
    (out, parsed)
}

/// `GET /api/v1/interfaces` over HTTPS with curl, trusting `ca`, with Basic `admin:PASSWORD`
/// and the TLS options `tls`; panics unless 200 with JSON; returns the JSON and curl's
/// verbose log (which names the negotiated protocol).
#[track_caller]
fn https_interfaces(ns: &Netns, port: u16, ca: &Path, tls: &[&str]) -> (Value, String) {
    let ca = ca.to_str().expect("a UTF-8 path");
    let user = format!("admin:{PASSWORD}");
    let mut args = vec!["-v", "--cacert", ca, "-u", &user];
    args.extend_from_slice(tls);
    let url = format!("https://127.0.0.1:{port}/api/v1/interfaces");
    let (out, parsed) = curl(ns, &args, &url);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let (body, code) =
        parsed.unwrap_or_else(|| panic!("curl {tls:?} {url} failed ({}):\n{log}", out.status));
    assert_eq!(code, 200, "curl {tls:?} {url}: {body}");
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"));
    (v, log)
}

/// Name, ifindex and capture mode of each monitored interface.
fn identities(v: &Value) -> Vec<(String, u64, String)> {
    v["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|i| {
            (
                i["name"].as_str().expect("name").to_owned(),
                i["ifindex"].as_u64().expect("ifindex"),
                i["capture_mode"].as_str().expect("capture_mode").to_owned(),
            )
        })
        .collect()
}

/// The daemon's HTTPS port (TLS 1.2 and 1.3, not 1.1) answers as its HTTP port does.
#[track_caller]
fn check_https(daemon: &Daemon, ns: &Netns, port: u16, ca: &Path) {
    let plain = daemon.get("/api/v1/interfaces");
    let (secure, log) = https_interfaces(ns, port, ca, &[]);
    assert_eq!(identities(&secure), identities(&plain));
    assert_eq!(identities(&plain)[0].0, DEV);
    assert!(
        log.contains("SSL connection using TLSv1.3"),
        "the default is TLS 1.3:\n{log}"
    );

    let (v, log) = https_interfaces(ns, port, ca, &["--tlsv1.3"]);
    assert_eq!(identities(&v), identities(&plain));
    assert!(log.contains("SSL connection using TLSv1.3"), "{log}");
    let (v, log) = https_interfaces(ns, port, ca, &["--tls-max", "1.2"]);
    assert_eq!(identities(&v), identities(&plain));
    assert!(log.contains("SSL connection using TLSv1.2"), "{log}");

    // TLS 1.1 with a client that offers it (OpenSSL needs security level 0 for that): the
    // server refuses with an alert. rustls 0.23 sends `handshake_failure` rather than
    // `protocol_version` here: such a ClientHello has no signature_algorithms extension, so no
    // certificate fits, which rustls checks before the version.
    let ca_text = ca.to_str().expect("a UTF-8 path");
    let (out, parsed) = curl(
        ns,
        &[
            "--cacert",
            ca_text,
            "--tlsv1.1",
            "--tls-max",
            "1.1",
            "--ciphers",
            "DEFAULT:@SECLEVEL=0",
            "-u",
            &format!("admin:{PASSWORD}"),
        ],
        &format!("https://127.0.0.1:{port}/api/v1/interfaces"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        parsed.is_none() && !out.status.success(),
        "TLS 1.1 worked: {parsed:?}"
    );
    assert_eq!(
        out.status.code(),
        Some(35),
        "curl's SSL connect error: {err}"
    );
    assert!(
        ["alert protocol version", "alert handshake failure"]
            .iter()
            .any(|a| err.contains(a)),
        "not refused by the server: {err}"
    );
}

/// `-w` and `-W` at once, with the self-signed certificate ntop generates into the data
/// directory (its key private).
#[test]
fn http_and_https_at_once_with_the_generated_certificate() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = data_dir(None);
    let mut cmd = ntop_command_in(
        ns,
        &dir,
        &["-i", DEV, "-w", "127.0.0.1:3000", "-W", "127.0.0.1:4000"],
    );
    cmd.args(SMALL);
    let daemon = Daemon::spawn(ns, local(3000), cmd);
    assert_eq!(
        mode(&dir.join("ntop-key.pem")),
        0o600,
        "the generated key's mode"
    );
    check_https(&daemon, ns, 4000, &dir.join("ntop-cert.pem"));
    stop_cleanly(daemon);
    assert_nothing_attached(ns, DEV);
}

/// Certificates made with openssl: `cert` and its `key` (P-256, for 127.0.0.1), a key `other`
/// of no certificate, and `garbage`, a file that is no certificate at all.
struct Pki {
    cert: PathBuf,
    key: PathBuf,
    other: PathBuf,
    garbage: PathBuf,
}

impl Pki {
    #[track_caller]
    fn new() -> Self {
        let dir = fresh_path("pki");
        fs::create_dir(&dir).expect("creating the certificate directory");
        let pki = Self {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            other: dir.join("k2.pem"),
            garbage: dir.join("garbage.pem"),
        };
        let openssl = |args: &str, outputs: &[(&str, &Path)]| {
            let mut cmd = Command::new("openssl");
            cmd.args(args.split_whitespace());
            for (flag, path) in outputs {
                cmd.arg(flag).arg(path);
            }
            let out = cmd.stdin(Stdio::null()).output().expect("running openssl");
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(
            "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
             -addext subjectAltName=IP:127.0.0.1 -days 2",
            &[("-keyout", &pki.key), ("-out", &pki.cert)],
        );
        openssl(
            "genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256",
            &[("-out", &pki.other)],
        );
        for key in [&pki.key, &pki.other] {
            fs::set_permissions(key, fs::Permissions::from_mode(0o600)).expect("chmod 600");
        }
        fs::write(&pki.garbage, "this is not a certificate\n").expect("writing garbage");
        pki
    }
}

/// A path as `&str` (the scratch directory's paths are UTF-8).
fn utf8(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `-w` and `-W` at once with a supplied certificate; a broken certificate and a mismatched key
/// stop start-up with one line naming the file, before anything is attached.
#[test]
fn http_and_https_at_once_with_a_supplied_certificate_and_broken_ones() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let pki = Pki::new();
    let supplied = |cert: &Path, key: &Path| -> Command {
        let mut cmd = ntop_command_in(
            ns,
            &data_dir(None),
            &["-i", DEV, "-w", "127.0.0.1:3000", "-W", "127.0.0.1:4000"],
        );
        cmd.args(SMALL)
            .args(["--https-cert", utf8(cert), "--https-key", utf8(key)]);
        cmd
    };
    let daemon = Daemon::spawn(ns, local(3000), supplied(&pki.cert, &pki.key));
    check_https(&daemon, ns, 4000, &pki.cert);
    stop_cleanly(daemon);
    assert_nothing_attached(ns, DEV);

    for (cert, key, named, wants) in [
        (
            &pki.garbage,
            &pki.key,
            &pki.garbage,
            ["contains no PEM certificate", "--https-cert"],
        ),
        (
            &pki.cert,
            &pki.other,
            &pki.other,
            ["does not match the certificate", "--https-key"],
        ),
    ] {
        let mut cmd = supplied(cert, key);
        cmd.args(["-t", "1"]);
        let line = one_error_line(&run_to_exit(cmd));
        for want in [utf8(named), wants[0], wants[1]] {
            assert!(line.contains(want), "no `{want}` in: {line}");
        }
        assert_nothing_attached(ns, DEV);
    }
}

// ---------------------------------------------------------------------------------------------
// Privileges.

/// `-u nobody`: the serving process is nobody through and through with no capabilities, its
/// counts keep following the link, and the data directory is nobody's.
#[test]
fn u_drops_every_id_and_capability_and_counts_go_on() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = data_dir(None);
    assert_owner(&dir, 0, 0);
    // The link is quiet (see the harness): its counters now are where the daemon starts.
    let base = link_stats(ns, DEV);
    let mut cmd = ntop_command_in(
        ns,
        &dir,
        &["-i", DEV, "-w", "127.0.0.1:3000", "-u", "nobody"],
    );
    cmd.args(SMALL);
    let mut daemon = Daemon::spawn(ns, local(3000), cmd);
    let pid = daemon.child().id();
    assert_dropped_to(pid, NOBODY, NOBODY);
    assert_owner(&dir, NOBODY, NOBODY);
    assert_owner(&dir.join("ntop_pw"), NOBODY, NOBODY);
    assert_eq!(mode(&dir.join("ntop_pw")), 0o600);

    let first = ping_and_settle(&net, &daemon, &base, 5);
    assert!(first >= 5, "{first} packets received");
    let second = ping_and_settle(&net, &daemon, &base, 5);
    assert!(
        second >= first + 5,
        "{first} then {second} packets received"
    );
    assert_dropped_to(pid, NOBODY, NOBODY);

    stop_cleanly(daemon);
    assert_nothing_attached(ns, DEV);
}

/// Without `-u`, root drops to `ntop` when that user exists, else to `nobody` with a warning.
/// Test machines normally have no `ntop` user (then the `nobody` case is what runs); where one
/// exists its ids from `getent passwd ntop` are expected instead.
#[test]
fn without_u_drops_to_ntop_or_else_nobody() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let getent = ns.exec("getent", ["passwd", "ntop"]);
    let ntop_user = getent.status.success().then(|| {
        let line = String::from_utf8_lossy(&getent.stdout).into_owned();
        let fields: Vec<&str> = line.trim().split(':').collect();
        let id = |i: usize| -> u32 { fields[i].parse().expect("a numeric id") };
        (id(2), id(3))
    });
    let (uid, gid) = ntop_user.unwrap_or((NOBODY, NOBODY));

    let dir = data_dir(None);
    let mut cmd = ntop_command_in(ns, &dir, &["-i", DEV, "-w", "127.0.0.1:3000"]);
    cmd.args(SMALL);
    let mut daemon = Daemon::spawn(ns, local(3000), cmd);
    assert_dropped_to(daemon.child().id(), uid, gid);
    assert_owner(&dir, uid, gid);
    let log = daemon.stderr();
    if ntop_user.is_none() {
        assert!(
            log.contains("user `ntop` does not exist: running as `nobody`"),
            "no warning about the missing `ntop` user:\n{log}"
        );
    }
    stop_cleanly(daemon);
}

// ---------------------------------------------------------------------------------------------
// Daemon mode.

/// `timeout 60 ntop -d -P DIR --memory-budget 1M ARGS` in `ns`, run to its end (see
/// [`output`]: that includes the end of its output pipes, which the daemon inherits).
#[track_caller]
fn ntop_d(ns: &Netns, dir: &Path, args: &[&str]) -> Output {
    output(
        bounded_ntop(ns, dir, &[&["-d"][..], &SMALL, args].concat()),
        None,
    )
}

/// Sends SIGTERM to the daemon `pid` and checks the clean exit: gone within [`STOP`], the pid
/// file removed, nothing attached to [`DEV`], and the log saying so.
#[track_caller]
fn sigterm_detaches(ns: &Netns, pid: u32, pid_file: &Path, log: &Path) {
    let raw = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill has no memory-safety preconditions; pid is the daemon's (checked by the
    // caller).
    let rc = unsafe { libc::kill(raw, libc::SIGTERM) };
    assert_eq!(rc, 0, "kill -TERM {pid}");
    wait_until(STOP, POLL, || ended(pid).then_some(()))
        .unwrap_or_else(|| panic!("ntop (pid {pid}) still running {STOP:?} after SIGTERM"));
    assert!(!pid_file.exists(), "the pid file outlived the daemon");
    assert_nothing_attached(ns, DEV);
    let text = fs::read_to_string(log).expect("reading the log file");
    assert!(
        text.lines().any(|l| l.contains("SIGTERM: shutting down")),
        "no shutdown line:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("detached") && l.contains(&format!("interface={DEV}"))),
        "no `detached interface={DEV}` line:\n{text}"
    );
}

// Under -d a failed start-up is printed once, by the waiting foreground (the daemon sends it
// through the startup pipe and keeps it out of the standard error it inherited). The tests check
// the lines' content first and their number last, so a second copy would hide nothing else.
#[track_caller]
fn assert_one_line(what: &str, out: &Output) {
    assert_eq!(
        lines(&out.stderr).len(),
        1,
        "{what}: wanted exactly one line on stderr, got:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `-d`: the foreground returns 0 only once the daemon serves, the pid file names the daemon,
/// a second instance says "already running", and SIGTERM detaches everything and removes the
/// pid file.
#[test]
fn d_returns_once_serving_keeps_a_pid_file_and_detaches_on_sigterm() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = data_dir(None);
    let pid_file = dir.join("ntop.pid");
    let log = dir.join("log");
    let addr = local(3000);
    let mut guard = Daemonized {
        pid_file: pid_file.clone(),
        pid: None,
    };

    let out = ntop_d(
        ns,
        &dir,
        &["-i", DEV, "-w", "127.0.0.1:3000", "--log-file", utf8(&log)],
    );
    // The output pipes reached their end: the daemon holds none of them.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines(&out.stderr), Vec::<String>::new());
    // Right away, without waiting: the daemon serves.
    let r = get_anonymous(ns, addr, "/api/v1/health");
    assert_eq!(r.as_ref().map(|r| r.status), Some(200), "{r:?}");

    let pid = guard.read_pid().unwrap_or_else(|| {
        panic!(
            "no pid in {}: {:?}",
            pid_file.display(),
            fs::read_to_string(&pid_file)
        )
    });
    guard.pid = Some(pid);
    assert!(!ended(pid), "pid {pid} from the pid file is not running");
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).expect("/proc/PID/comm");
    assert_eq!(comm.trim(), "ntop", "pid {pid} is not ntop");
    // Checked at the end, so that a failure there does not hide the rest.
    let std_fds: Vec<Option<PathBuf>> = (0..=2)
        .map(|fd| fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok())
        .collect();
    let r = get_with(ns, addr, "/api/v1/interfaces", BASIC_AUTH).expect("an answer");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json().expect("JSON")["interfaces"][0]["name"], DEV);
    let Hooks {
        xdp,
        tcx_egress: egress,
        ..
    } = hooks(ns, DEV);
    assert_eq!(xdp["prog"]["name"], "ntop_xdp", "{xdp}");
    assert_eq!(egress, ["ntop_tc_egress"]);

    // A second instance on the same data directory.
    let already = ntop_d(ns, &dir, &["-i", DEV, "-w", "127.0.0.1:3001"]);
    for line in failure_lines(&already) {
        for want in ["already running", &format!("pid {pid}"), "-P"] {
            assert!(line.contains(want), "no `{want}` in: {line}");
        }
    }
    assert_eq!(
        guard.read_pid(),
        Some(pid),
        "the second instance changed the pid file"
    );
    assert!(!ended(pid), "the first daemon stopped");
    assert!(
        get_anonymous(ns, local(3001), "/api/v1/health").is_none(),
        "the second instance serves"
    );

    sigterm_detaches(ns, pid, &pid_file, &log);
    drop(guard);

    assert_one_line("already running", &already);
    // Once it serves, the daemon's standard descriptors are /dev/null: not closed (where the
    // next accepted socket would become its standard input, output or error).
    let null = Some(PathBuf::from("/dev/null"));
    assert_eq!(
        std_fds,
        [null.clone(), null.clone(), null],
        "standard input, output and error of the daemon (fd 0, 1, 2) after start-up"
    );
}

/// `-d` with a start-up that fails: the foreground exits non-zero with the daemon's error, and
/// no pid file stays behind.
#[test]
fn d_start_failure_is_the_foregrounds_error() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = data_dir(None);
    let _guard = Daemonized {
        pid_file: dir.join("ntop.pid"),
        pid: None,
    };
    let failed = ntop_d(ns, &dir, &["-i", "nosuch0", "-w", "127.0.0.1:3000"]);
    for line in failure_lines(&failed) {
        assert!(line.starts_with("ntop: error: "), "{line}");
        for want in ["nosuch0", "does not exist", "-i"] {
            assert!(line.contains(want), "no `{want}` in: {line}");
        }
    }
    assert!(
        !dir.join("ntop.pid").exists(),
        "a failed start left its pid file"
    );
    assert!(
        get_anonymous(ns, local(3000), "/api/v1/health").is_none(),
        "something serves"
    );
    assert_nothing_attached(ns, DEV);
    assert_one_line("-i nosuch0", &failed);
}

/// SIGHUP re-reads the log level from `DATA_DIR/log-level`: a daemon started with `-t 1`
/// (errors only) logs at info level after `3` is written there and SIGHUP sent, so the info
/// line that confirms the reload can only appear if the reload took.
#[test]
fn sighup_reloads_the_log_level() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let ns = &net.a;
    let dir = data_dir(None);
    let log = dir.join("test.log");
    let mut cmd = ntop_command_in(
        ns,
        &dir,
        &[
            "-i",
            DEV,
            "-w",
            "127.0.0.1:3000",
            "-u",
            "root",
            "-t",
            "1",
            "--log-file",
            utf8(&log),
        ],
    );
    cmd.args(SMALL);
    let mut daemon = Daemon::spawn(ns, local(3000), cmd);
    let before = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !before.contains("INFO"),
        "-t 1 logs no info lines:\n{before}"
    );
    std::fs::write(dir.join("log-level"), "3\n").expect("writing the log-level file");
    daemon.child().signal(libc::SIGHUP);
    let reloaded = wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("log level reloaded").then_some(())
    });
    assert!(
        reloaded.is_some(),
        "no `log level reloaded` line after SIGHUP:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        daemon.child().try_wait(),
        None,
        "the daemon keeps running after SIGHUP"
    );
    stop_cleanly(daemon);
}
