//! Network namespaces that delete themselves, commands and threads inside them, and child
//! processes that are killed when dropped.
//!
//! A namespace is `ip netns add ntopt-<pid>-<n>` and goes with `ip netns del` on drop, also while
//! a test panics. Namespaces and scratch directories left by test processes that died (killed,
//! aborted) are removed the first time a process of this harness creates a namespace.
use std::{
    ffi::OsStr,
    fs::{self, File},
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    panic,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{Mutex, Once},
    thread,
    time::Duration,
};

use crate::{PREFIX, pid_alive, pid_of, require_root, scratch_dir, unique_name, wait_until};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// `ip netns add`/`del` of this process one at a time (their first-use mount setup races).
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with `lo` up and IPv6 quiet: no router solicitations, no SLAAC or
    /// link-local addresses on new devices (so no DAD), `MLDv1` with 1 ms between its two
    /// unsolicited reports (see [`crate::veth`] for what is still sent).
    #[track_caller]
    #[must_use]
    pub fn new() -> Self {
        static CLEANUP: Once = Once::new();
        require_root();
        CLEANUP.call_once(remove_stale);
        let name = unique_name();
        {
            let _guard = NETNS_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            checked(Command::new("ip").args(["netns", "add", &name]));
        }
        let ns = Self { name };
        ns.sysctl(&[
            ("net.ipv6.conf.all.disable_ipv6", "0"),
            ("net.ipv6.conf.all.accept_ra", "0"),
            ("net.ipv6.conf.default.accept_ra", "0"),
            ("net.ipv6.conf.all.router_solicitations", "0"),
            ("net.ipv6.conf.default.router_solicitations", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
            ("net.ipv6.conf.default.addr_gen_mode", "1"),
            ("net.ipv6.conf.all.force_mld_version", "1"),
            (
                "net.ipv6.conf.default.mldv1_unsolicited_report_interval",
                "1",
            ),
            (
                "net.ipv6.conf.default.mldv2_unsolicited_report_interval",
                "1",
            ),
        ]);
        ns.ip(["link", "set", "lo", "up"]);
        ns
    }

    /// The namespace's name (for `ip netns exec NAME` and `ip -n NAME`).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's file, `/run/netns/NAME`.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        Path::new(NETNS_DIR).join(&self.name)
    }

    /// `ip netns exec NAME program`, to add arguments and environment to.
    #[must_use]
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `program args` inside the namespace and returns its output, whatever its status.
    #[track_caller]
    pub fn exec<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        cmd.output()
            .unwrap_or_else(|e| panic!("could not start `{}`: {e}", show(&cmd)))
    }

    /// Runs `program args` inside the namespace; panics unless it succeeds; returns its stdout.
    #[track_caller]
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        checked(&mut cmd)
    }

    /// `ip -n NAME args`; panics unless it succeeds; returns its stdout.
    #[track_caller]
    pub fn ip<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        checked(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts `program args` inside the namespace; see [`NsChild`].
    #[track_caller]
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> NsChild
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        NsChild::spawn(cmd)
    }

    /// Runs `f` on a thread that has entered the namespace (`setns(2)`), and returns its result
    /// (a panic in `f` goes on in the caller). Sockets created in `f` stay in the namespace
    /// wherever they are used later.
    #[track_caller]
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        let file = File::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns changes the network namespace of this thread only; the file
                // descriptor is open for the call.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert!(
                    rc == 0,
                    "setns into {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                drop(file);
                f()
            })
            .join()
        })
        .unwrap_or_else(|p| panic::resume_unwind(p))
    }

    /// Sets sysctls inside the namespace (`sysctl -w` through `ip netns exec`, which gives the
    /// namespace's view of /proc/sys/net).
    #[track_caller]
    pub fn sysctl(&self, settings: &[(&str, &str)]) {
        let args: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.run(
            "sysctl",
            ["-q", "-w"].into_iter().map(String::from).chain(args),
        );
    }

    /// The text of `/proc/net/FILE` as this namespace sees it (e.g. `snmp`, `igmp6`, `tcp`).
    #[track_caller]
    #[must_use]
    pub fn proc_net(&self, file: &str) -> String {
        let path = format!("/proc/thread-self/net/{file}");
        self.enter(|| fs::read_to_string(&path))
            .unwrap_or_else(|e| panic!("reading /proc/net/{file} in {}: {e}", self.name))
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _guard = NETNS_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match Command::new("ip")
            .args(["netns", "del", &self.name])
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "warning: `ip netns del {}` failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Err(e) => eprintln!("warning: could not run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// Deletes namespaces and scratch directories of harness processes that are gone.
fn remove_stale() {
    let _guard = NETNS_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let stale = |name: &str| pid_of(name).is_some_and(|pid| !pid_alive(pid));
    for name in names(Path::new(NETNS_DIR)).into_iter().filter(|n| stale(n)) {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
    }
    let tmp = std::env::temp_dir();
    for name in names(&tmp)
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && stale(n))
    {
        let _ = fs::remove_dir_all(tmp.join(name));
    }
}

/// A child process (normally inside a namespace) whose stdout and stderr go to files, so it
/// never blocks on a full pipe. Dropping it kills it (SIGKILL) and waits for it; when the test
/// is panicking, its output is printed first.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    what: String,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl NsChild {
    /// Starts `cmd` with stdin from /dev/null and its output into scratch files.
    #[track_caller]
    #[must_use]
    pub fn spawn(mut cmd: Command) -> Self {
        let what = show(&cmd);
        let base = scratch_dir().join(unique_name());
        let stdout = base.with_extension("out");
        let stderr = base.with_extension("err");
        let file =
            |p: &Path| File::create(p).unwrap_or_else(|e| panic!("creating {}: {e}", p.display()));
        // A shell without job control starts background commands with SIGINT and SIGQUIT
        // ignored, and exec keeps that: give the child the default actions back, so that
        // `stop` works however the tests were started.
        // SAFETY: only async-signal-safe calls (signal) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start `{what}`: {e}"));
        Self {
            child,
            what,
            stdout,
            stderr,
            status: None,
        }
    }

    /// The process id (`ip netns exec` execs the program, so this is the program's pid).
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `libc::SIGINT`) unless the process has been reaped.
    pub fn signal(&mut self, signal: libc::c_int) {
        if self.try_wait().is_none() {
            let pid = libc::pid_t::try_from(self.id()).expect("pid fits pid_t");
            // SAFETY: the child has not been reaped, so the pid still names it.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waiting for a child");
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_until(timeout, Duration::from_millis(5), || self.try_wait())
    }

    /// Asks the process to stop with SIGINT and waits up to `timeout`; then SIGKILL.
    /// Returns the exit status (killed by a signal when it did not stop in time).
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGINT);
        if let Some(status) = self.wait_timeout(timeout) {
            return status;
        }
        eprintln!(
            "warning: `{}` did not stop within {timeout:?} of SIGINT; killing it",
            self.what
        );
        self.kill()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.try_wait() {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("waiting for a killed child");
        self.status = Some(status);
        status
    }

    /// What the process has written to stdout so far.
    #[must_use]
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What the process has written to stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- `{}` ---\nstdout:\n{}\nstderr:\n{}\n---",
                self.what,
                self.stdout(),
                self.stderr()
            );
        }
        let _ = fs::remove_file(&self.stdout);
        let _ = fs::remove_file(&self.stderr);
    }
}

/// The command line, for messages.
pub(crate) fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd`; panics with its stderr unless it succeeds; returns its stdout.
#[track_caller]
pub(crate) fn checked(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not start `{}`: {e}", show(cmd)));
    assert!(
        out.status.success(),
        "`{}` failed ({}): {}{}",
        show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
