//! Logging: `-t` levels as tracing filters, the log's destination (standard error, `--log-file`,
//! or syslog under `-d`), reloading the filter on SIGHUP, and the recent lines in memory for
//! `GET /api/v1/log` ([`LogRing`]).
//!
//! Runs on the main thread at startup ([`init`]) and in the SIGHUP task ([`reload`]). The
//! formatting layers run on whichever thread logs (collector, persister, HTTP workers): each
//! event is formatted once per destination and, for the ring, appended under a short mutex.
//! The HTTP handler of `/api/v1/log` copies lines out under the same mutex.

use std::{
    collections::VecDeque,
    io::{self, IsTerminal as _},
    sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError},
};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt as _, reload};

use crate::{cli::Cli, daemon};

/// The tracing filter of a trace level (`-t`): ntop at that level, other crates (aya, warp,
/// hyper) at most at `warn`, everything silent at 0.
#[must_use]
pub fn level_filter(level: u8) -> EnvFilter {
    let ours = match level {
        0 => "off",
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let others = if level <= 1 { ours } else { "warn" };
    EnvFilter::new(format!("ntop={ours},{others}"))
}

/// Replaces the log filter of the running daemon (set by [`init`]).
type Reloader = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;
static RELOAD_LOG: OnceLock<Reloader> = OnceLock::new();

/// The log filter after a SIGHUP: `DATA_DIR/log-level` when it exists (a trace level 0–5, or a
/// tracing filter such as `ntop=debug,aya=info`), else the command line's.
pub fn reload(trace_level: u8, dir: &std::path::Path) {
    let file = dir.join("log-level");
    let filter = match std::fs::read_to_string(&file) {
        Ok(text) => match text.trim().parse::<u8>() {
            Ok(level) if level <= 5 => level_filter(level),
            _ => match EnvFilter::try_new(text.trim()) {
                Ok(filter) => filter,
                Err(e) => {
                    tracing::warn!(
                        "{}: not a trace level 0-5 or a filter ({e}); log level unchanged",
                        file.display()
                    );
                    return;
                }
            },
        },
        Err(_) => level_filter(trace_level),
    };
    if let Some(reload) = RELOAD_LOG.get() {
        match reload(filter) {
            Ok(()) => tracing::info!("log level reloaded"),
            Err(e) => tracing::warn!("reloading the log level failed: {e}"),
        }
    }
}

/// Installs the global subscriber: the `-t` (or `NTOP_LOG`) filter, reloadable; the log's
/// destination (`--log-file`, else syslog with `-d`, else standard error); and [`ring`].
pub fn init(cli: &Cli) {
    use tracing_subscriber::{fmt, util::SubscriberInitExt as _};

    let filter =
        EnvFilter::try_from_env("NTOP_LOG").unwrap_or_else(|_| level_filter(cli.trace_level));
    let (filter, handle) = reload::Layer::new(filter);
    let _ = RELOAD_LOG.set(Box::new(move |f| {
        handle.reload(f).map_err(|e| e.to_string())
    }));
    let file = cli.log_file.as_ref().and_then(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                eprintln!(
                    "ntop: cannot open log file {}: {e}; logging to {}",
                    path.display(),
                    if cli.daemon { "syslog" } else { "stderr" }
                );
            })
            .ok()
    });
    // One destination: the file, else syslog (-d), else standard error.
    let (to_file, to_syslog, to_stderr) = match file {
        Some(file) => (
            Some(fmt::layer().with_ansi(false).with_writer(Arc::new(file))),
            None,
            None,
        ),
        None if cli.daemon => {
            let syslog = daemon::Syslog::open();
            (
                None,
                Some(
                    fmt::layer()
                        .with_ansi(false)
                        .without_time()
                        .with_writer(move || syslog),
                ),
                None,
            )
        }
        None => (
            None,
            None,
            Some(
                fmt::layer()
                    .with_ansi(io::stderr().is_terminal())
                    .with_writer(io::stderr),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(to_file)
        .with(to_syslog)
        .with(to_stderr)
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(RingWriter(ring())),
        )
        .init();
}

/// Most lines [`ring`] keeps.
pub const RING_LINES: usize = 2000;
/// Most bytes [`ring`] keeps (line text, without the per-line overhead).
pub const RING_BYTES: usize = 1 << 20;
/// Longest line kept; longer ones are cut (at a character boundary) and end in `…`.
pub const RING_LINE_BYTES: usize = 4096;

/// The most recent log lines, as they are written to the log (time, level, target, message,
/// fields), bounded by lines and bytes: the oldest go first.
#[derive(Debug)]
pub struct LogRing {
    lines: Mutex<Lines>,
    max_lines: usize,
    max_bytes: usize,
}

#[derive(Debug, Default)]
struct Lines {
    lines: VecDeque<String>,
    bytes: usize,
}

impl LogRing {
    /// An empty ring keeping at most `max_lines` lines and `max_bytes` bytes of text.
    #[must_use]
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Self {
            lines: Mutex::new(Lines::default()),
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        // Every update leaves a consistent deque (a push, then pops).
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one line (cut to [`RING_LINE_BYTES`]), dropping the oldest to stay in bounds.
    pub fn push(&self, line: &str) {
        let line = if line.len() > RING_LINE_BYTES {
            let mut end = RING_LINE_BYTES - '…'.len_utf8();
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}…", &line[..end])
        } else {
            line.to_owned()
        };
        let mut lines = self.lock();
        lines.bytes += line.len();
        lines.lines.push_back(line);
        while lines.lines.len() > self.max_lines
            || (lines.bytes > self.max_bytes && lines.lines.len() > 1)
        {
            if let Some(old) = lines.lines.pop_front() {
                lines.bytes -= old.len();
            }
        }
    }

    /// The last `n` lines (fewer if the ring holds fewer), oldest first.
    #[must_use]
    pub fn recent(&self, n: usize) -> Vec<String> {
        let lines = self.lock();
        let skip = lines.lines.len().saturating_sub(n);
        lines.lines.iter().skip(skip).cloned().collect()
    }

    /// Lines held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether no line is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The daemon's ring of recent log lines ([`RING_LINES`], [`RING_BYTES`]), filled by the
/// subscriber [`init`] installs.
#[must_use]
pub fn ring() -> Arc<LogRing> {
    static RING: LazyLock<Arc<LogRing>> =
        LazyLock::new(|| Arc::new(LogRing::new(RING_LINES, RING_BYTES)));
    Arc::clone(&RING)
}

/// The ring as a tracing writer: each event is formatted into one buffer, whose lines are
/// appended when the writer is dropped (after the event).
#[derive(Clone, Debug)]
struct RingWriter(Arc<LogRing>);

/// One event's text on its way into the ring.
struct RingEvent {
    ring: Arc<LogRing>,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for RingWriter {
    type Writer = RingEvent;

    fn make_writer(&'a self) -> Self::Writer {
        RingEvent {
            ring: Arc::clone(&self.0),
            buf: Vec::with_capacity(256),
        }
    }
}

impl io::Write for RingEvent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // An event longer than the longest line that is kept needs no more bytes.
        let room = (RING_LINE_BYTES * 4).saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RingEvent {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        for line in text.lines().filter(|l| !l.is_empty()) {
            self.ring.push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn the_ring_is_bounded_by_lines() {
        let ring = LogRing::new(3, 1 << 20);
        for i in 0..5 {
            ring.push(&format!("line {i}"));
        }
        assert_eq!(ring.recent(10), ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.recent(2), ["line 3", "line 4"]);
        assert!(ring.recent(0).is_empty());
    }

    #[test]
    fn the_ring_is_bounded_by_bytes() {
        let ring = LogRing::new(100, 25);
        for i in 0..5 {
            ring.push(&format!("line {i}: 0123")); // 12 bytes each
        }
        // 25 bytes hold two lines.
        assert_eq!(ring.recent(100), ["line 3: 0123", "line 4: 0123"]);
        // A line larger than the byte bound alone is still kept (the newest always is).
        ring.push(&"x".repeat(40));
        assert_eq!(ring.len(), 1);
        // Very long lines are cut at a character boundary.
        let long = "é".repeat(RING_LINE_BYTES);
        let ring = LogRing::new(10, 1 << 20);
        ring.push(&long);
        let kept = &ring.recent(1)[0];
        assert!(kept.len() <= RING_LINE_BYTES, "{}", kept.len());
        assert!(kept.ends_with('…'));
    }

    #[test]
    fn events_become_lines_as_formatted() {
        use tracing_subscriber::fmt;

        let ring = Arc::new(LogRing::new(10, 1 << 20));
        let subscriber = tracing_subscriber::registry().with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(RingWriter(Arc::clone(&ring))),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(hosts = 3, "first");
            tracing::warn!("second\nin two lines");
        });
        let lines = ring.recent(10);
        assert_eq!(lines.len(), 3, "{lines:?}");
        // Time (RFC 3339, UTC), level, target, message, fields.
        assert!(
            lines[0].ends_with(" INFO ntop::logging::tests: first hosts=3"),
            "{}",
            lines[0]
        );
        assert!(
            lines[0].starts_with("20") && lines[0].contains('T'),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains(" WARN ") && lines[1].ends_with("second"),
            "{}",
            lines[1]
        );
        assert_eq!(lines[2], "in two lines");
        // Writes arriving in pieces make one event.
        let mut w = RingWriter(Arc::clone(&ring)).make_writer();
        w.write_all(b"a ").unwrap();
        w.write_all(b"b\n").unwrap();
        drop(w);
        assert_eq!(ring.recent(1), ["a b"]);
    }
}
