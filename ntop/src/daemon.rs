//! Daemon mode (`-d`) and the pid file.
//!
//! `-d` forks to the background before anything else runs (tokio cannot survive a fork): a
//! double fork with `setsid`, and a pipe back to the waiting parent. The child writes one line
//! into the pipe once startup has succeeded (`OK`) or failed (`ERR message`); the parent prints
//! the message and exits 0 or 1 with it, so `ntop -d` in a script fails when the daemon could
//! not start, as it should. If the child dies without a word, the parent says so.
//!
//! The pid file (`DATA_DIR/ntop.pid`) holds an exclusive `flock` for as long as the daemon
//! runs, in the foreground too: a second ntop on the same data directory says "already
//! running" and exits non-zero. The lock goes with the process, so a crash leaves no stale lock.
//!
//! Runs on the main thread at startup, single-threaded.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, BufRead as _, BufReader, Read as _, Seek as _, Write as _},
    os::{
        fd::{AsRawFd as _, OwnedFd},
        unix::fs::OpenOptionsExt as _,
    },
    path::{Path, PathBuf},
};

use nix::{
    fcntl::{Flock, FlockArg},
    sys::stat::Mode,
    unistd::{self, ForkResult},
};

/// Errors of the daemon layer.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another ntop holds the pid file's lock.
    #[error(
        "ntop is already running{pid} (pid file {path} is locked); stop it first, or give this \
         one another data directory with -P"
    )]
    AlreadyRunning {
        /// ` (pid N)` when the file names one.
        pid: String,
        /// The pid file.
        path: PathBuf,
    },
    /// The pid file could not be created or written.
    #[error("cannot use pid file {path}: {source}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `fork`, `setsid` or `pipe` failed.
    #[error("cannot go to the background ({call}): {source}")]
    Fork {
        /// Which call.
        call: &'static str,
        /// The error.
        #[source]
        source: nix::Error,
    },
}

/// The locked pid file; unlocked and removed when dropped.
#[derive(Debug)]
pub struct PidFile {
    lock: Option<Flock<File>>,
    path: PathBuf,
}

impl PidFile {
    /// Creates and locks `path` and writes this process's pid into it.
    ///
    /// # Errors
    /// [`DaemonError::AlreadyRunning`] when another process holds the lock.
    pub fn acquire(path: &Path) -> Result<Self, DaemonError> {
        let err = |source| DaemonError::PidFile {
            path: path.to_owned(),
            source,
        };
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => return Self::read_only(path),
            Err(e) => return Err(err(e)),
        };
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, nix::Error::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let pid = text.trim();
                return Err(DaemonError::AlreadyRunning {
                    pid: if pid.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {pid})")
                    },
                    path: path.to_owned(),
                });
            }
            Err((_, e)) => return Err(err(e.into())),
        };
        lock.set_len(0).map_err(err)?;
        lock.rewind().map_err(err)?;
        writeln!(lock, "{}", std::process::id()).map_err(err)?;
        lock.sync_all().map_err(err)?;
        Ok(Self {
            lock: Some(lock),
            path: path.to_owned(),
        })
    }

    /// On a read-only file system (ntop counts on in memory and reports it): locks the pid
    /// file left by an earlier run without writing it, or goes without a lock when there is
    /// none (nothing can be written there anyway, by this ntop or another).
    fn read_only(path: &Path) -> Result<Self, DaemonError> {
        let lock = match File::open(path) {
            Ok(file) => match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => Some(lock),
                Err((_, nix::Error::EWOULDBLOCK)) => {
                    return Err(DaemonError::AlreadyRunning {
                        pid: String::new(),
                        path: path.to_owned(),
                    });
                }
                Err(_) => None,
            },
            Err(_) => None,
        };
        tracing::warn!(
            "{} is on a read-only file system: the pid is not recorded{}",
            path.display(),
            if lock.is_some() {
                ""
            } else {
                ", and a second ntop on this data directory is not detected"
            }
        );
        Ok(Self {
            lock,
            path: path.to_owned(),
        })
    }

    /// The pid file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Remove first, then unlock: a new instance never sees our pid in an unlocked file.
        let _ = fs::remove_file(&self.path);
        drop(self.lock.take());
    }
}

/// The child's end of the startup pipe.
#[derive(Debug)]
pub struct Startup {
    pipe: Option<File>,
}

impl Startup {
    /// Startup succeeded: the parent exits 0. Standard input, output and error go to
    /// `/dev/null` from here on (logging goes to syslog or the log file).
    pub fn ready(mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            let _ = pipe.write_all(b"OK\n");
        }
        if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..=2 {
                // SAFETY: dup2 onto the standard descriptors, which no `OwnedFd` owns; they stay
                // open on /dev/null (nix's `dup2_raw` would hand back an owner that closes them,
                // and the next accepted socket would become descriptor 0).
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
    }

    /// Startup failed: the parent prints `message` and exits 1.
    pub fn failed(mut self, message: &str) {
        if let Some(mut pipe) = self.pipe.take() {
            let one_line = message.replace('\n', " ");
            let _ = writeln!(pipe, "ERR {one_line}");
        }
    }
}

/// Goes to the background. Returns in the daemon (grandchild) only; the original process waits
/// for the daemon's startup result and exits with it.
///
/// # Errors
/// [`DaemonError::Fork`] when forking fails (in the original process).
pub fn daemonize() -> Result<Startup, DaemonError> {
    let (read, write): (OwnedFd, OwnedFd) = unistd::pipe().map_err(|source| DaemonError::Fork {
        call: "pipe",
        source,
    })?;
    // SAFETY: called at startup while the process is single-threaded (no runtime yet).
    match unsafe { unistd::fork() }.map_err(|source| DaemonError::Fork {
        call: "fork",
        source,
    })? {
        ForkResult::Parent { child } => {
            drop(write);
            let _ = nix::sys::wait::waitpid(child, None);
            std::process::exit(wait_for_startup(File::from(read)));
        }
        ForkResult::Child => {}
    }
    drop(read);
    if unistd::setsid().is_err() {
        // SAFETY: _exit is always safe; nothing of the parent's state needs flushing here.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: still single-threaded.
    match unsafe { unistd::fork() } {
        Ok(ForkResult::Child) => {}
        // SAFETY: see above; the grandchild carries on.
        Ok(ForkResult::Parent { .. }) | Err(_) => unsafe { libc::_exit(0) },
    }
    let _ = unistd::chdir("/");
    nix::sys::stat::umask(Mode::from_bits_truncate(0o027));
    Ok(Startup {
        pipe: Some(File::from(write)),
    })
}

/// The parent's side: prints the daemon's error, returns the exit code.
fn wait_for_startup(pipe: File) -> i32 {
    let mut line = String::new();
    let _ = BufReader::new(pipe).read_line(&mut line);
    match line
        .trim_end()
        .split_once(' ')
        .map_or((line.trim_end(), ""), |(a, b)| (a, b))
    {
        ("OK", _) => 0,
        ("ERR", message) => {
            eprintln!("ntop: error: {message}");
            1
        }
        _ => {
            eprintln!(
                "ntop: error: the daemon exited during startup without saying why; run ntop \
                 without -d to see the error, or look in the system log"
            );
            1
        }
    }
}

/// Sends one line per log event to syslog (facility daemon), for `-d` without `--log-file`.
#[derive(Clone, Copy, Debug)]
pub struct Syslog;

impl Syslog {
    /// Opens the connection to syslog as `ntop`.
    #[must_use]
    pub fn open() -> Self {
        // SAFETY: the identity string is 'static; openlog keeps the pointer.
        unsafe { libc::openlog(c"ntop".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        Self
    }
}

impl io::Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let priority = if line.contains("ERROR") {
                libc::LOG_ERR
            } else if line.contains("WARN") {
                libc::LOG_WARNING
            } else if line.contains("DEBUG") || line.contains("TRACE") {
                libc::LOG_DEBUG
            } else {
                libc::LOG_INFO
            };
            let c = std::ffi::CString::new(line.replace('\0', " ")).unwrap_or_default();
            // SAFETY: "%s" with one valid C string.
            unsafe { libc::syslog(priority, c"%s".as_ptr(), c.as_ptr()) };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether `fd` 0 is a terminal.
#[must_use]
pub fn stdin_is_terminal() -> bool {
    // SAFETY: isatty has no preconditions.
    unsafe { libc::isatty(io::stdin().as_raw_fd()) == 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_pid_file_lock_says_already_running() {
        let dir = std::env::temp_dir().join(format!("ntop-pid-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ntop.pid");
        let first = PidFile::acquire(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        let err = PidFile::acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("already running"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        assert!(!path.exists(), "the pid file goes with the daemon");
        let again = PidFile::acquire(&path).unwrap();
        drop(again);
        fs::remove_dir_all(dir).unwrap();
    }
}
