//! The persister: keeps the data directory's history and totals up to date with the state.
//!
//! Runs on its own OS thread ("ntop-persist"), woken by the collector after every poll
//! ([`Waker::poll_done`]), so a slow or full disk never delays a poll or an HTTP request.
//! After each poll it takes a [`Checkpoint`](crate::state::Checkpoint) of the state (interfaces
//! and protocols every poll, hosts once a minute) and commits it with
//! [`History::commit`]; once a minute it downsamples, expires and enforces the disk budget.
//!
//! # Faults
//! Nothing the disk does stops the counting: the state lives in memory, and the persister
//! only reports. A failed write keeps the points (bounded backlog) and the totals (all of
//! them, latest wins) for the next attempt, which is the next poll: the store recovers by itself
//! once the disk has room or the directory is writable again. A database that cannot be opened
//! at all (written by a newer ntop, not readable, a directory in its place) is retried every
//! 10 seconds; meanwhile the history has a gap, the totals do not (they are written in full when
//! the database is back). Each change of condition is logged once, and [`StoreStatus`] (served
//! as part of `/api/v1/status`) always says what is wrong now and what to do.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, PoisonError,
        mpsc::{self, Receiver, SyncSender, TrySendError},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;

use crate::{
    history::{History, HistoryConfig, HistoryError, HistoryReader, Totals},
    state::SharedState,
    store::DataDir,
};

/// How often the history is downsampled and expired.
const MAINTENANCE: Duration = Duration::from_mins(1);
/// How often a database that could not be opened is tried again.
const REOPEN: Duration = Duration::from_secs(10);

/// What the data directory's store is doing, for `/api/v1/status` and the dashboard.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StoreStatus {
    /// `ok`, `degraded` (writes fail; kept in memory and retried) or `unavailable` (the
    /// database cannot be opened; retried every 10 seconds).
    pub state: &'static str,
    /// The database file.
    pub path: PathBuf,
    /// What is wrong now, naming the fix (`None` when all is well).
    pub error: Option<String>,
    /// Since when it is wrong (unix seconds).
    pub error_since: Option<u64>,
    /// A damaged database moved aside at start-up: where it went and why.
    pub moved_aside: Option<MovedAsideView>,
    /// Size of the database on disk in bytes (at the last maintenance).
    pub usage_bytes: u64,
    /// The disk budget in bytes (`--history-budget`).
    pub budget_bytes: u64,
    /// Polls waiting in memory after failed writes.
    pub backlog_polls: usize,
    /// Totals rows waiting in memory after failed writes.
    pub pending_totals: usize,
    /// History points dropped because the backlog was full (the totals lose nothing).
    pub dropped_points: u64,
    /// The last successful write (unix seconds).
    pub last_write: Option<u64>,
    /// Whether the totals of an earlier run were carried over at start-up.
    pub restored: bool,
}

/// Where a damaged database went.
#[derive(Clone, Debug, Serialize)]
pub struct MovedAsideView {
    /// The new name of the damaged file (kept for inspection; ntop never deletes it).
    pub to: PathBuf,
    /// What was wrong with it.
    pub reason: String,
}

impl StoreStatus {
    /// What an opened database tells: where its damaged predecessor went, and its size.
    fn opened(&mut self, h: &History) {
        self.moved_aside = h.moved_aside().map(|m| MovedAsideView {
            to: m.to.clone(),
            reason: m.reason.clone(),
        });
        self.usage_bytes = h.usage_bytes().unwrap_or(0);
    }
}

/// Shared with the HTTP handlers.
pub type SharedStatus = Arc<Mutex<StoreStatus>>;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What start-up found in the data directory.
#[derive(Debug)]
pub struct Opened {
    /// The writer, when the database could be opened for writing.
    pub history: Option<History>,
    /// The totals of the earlier run (empty on a new data directory, or when they could not be
    /// read: then `history` is `None` too, or the error says why).
    pub totals: Totals,
    /// Why the database cannot be written or read, when it cannot.
    pub error: Option<HistoryError>,
}

/// Opens the store at start-up and reads the totals of the earlier run. Never fails: what goes
/// wrong is logged, reported in the status, and retried by the persister.
#[must_use]
pub fn open(dir: &DataDir, config: &HistoryConfig) -> Opened {
    match History::open(dir, config.clone()) {
        Ok(history) => match history.load_totals() {
            Ok(totals) => Opened {
                history: Some(history),
                totals,
                error: None,
            },
            Err(e) => {
                // Rows this build cannot read: do not overwrite them with partial totals.
                tracing::error!("{e}");
                Opened {
                    history: None,
                    totals: Totals::default(),
                    error: Some(e),
                }
            }
        },
        Err(e) => {
            tracing::error!("{e}; counting goes on in memory and ntop retries every 10 seconds");
            // A read-only directory can still give back the totals; a newer ntop's file is
            // not read at all (its rows may mean something else).
            let totals = if matches!(e, HistoryError::NewerVersion { .. }) {
                Totals::default()
            } else {
                HistoryReader::open(dir)
                    .and_then(|r| r.load_totals())
                    .or_else(|_| HistoryReader::open_immutable(dir).and_then(|r| r.load_totals()))
                    .unwrap_or_default()
            };
            Opened {
                history: None,
                totals,
                error: Some(e),
            }
        }
    }
}

/// Wakes the persister; owned by the collector.
#[derive(Clone, Debug)]
pub struct Waker(SyncSender<Wake>);

enum Wake {
    Poll,
    Stop,
}

impl Waker {
    /// Tells the persister a poll was taken in. Never blocks: wake-ups coalesce while the
    /// persister is busy (its next checkpoint covers every poll since the last).
    pub fn poll_done(&self) {
        match self.0.try_send(Wake::Poll) {
            Ok(()) | Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {}
        }
    }
}

/// A running persister.
#[derive(Debug)]
pub struct Persister {
    waker: Waker,
    thread: JoinHandle<()>,
}

/// Everything the persister thread owns.
struct Worker {
    dir: DataDir,
    config: HistoryConfig,
    state: SharedState,
    status: SharedStatus,
    history: Option<History>,
    /// Whether the totals of the earlier run are in the state (else they must be read before
    /// anything is written over them).
    restored: bool,
    last_hosts: Option<SystemTime>,
    last_maintenance: Instant,
    last_reopen: Instant,
    /// The condition last logged, so each change is logged once.
    logged: Option<String>,
}

/// Starts the persister over `state` with what [`open`] returned. `restored`: the totals it
/// read are already in the state.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn(
    dir: DataDir,
    config: HistoryConfig,
    state: SharedState,
    opened: Opened,
    status: SharedStatus,
) -> std::io::Result<Persister> {
    let (tx, rx) = mpsc::sync_channel(1);
    {
        let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
        s.path = dir.file(crate::history::FILE_NAME);
        s.budget_bytes = config.budget_bytes;
        s.restored = !opened.totals.is_empty();
        s.state = "ok";
        if let Some(h) = &opened.history {
            s.opened(h);
        }
        if let Some(e) = &opened.error {
            s.state = "unavailable";
            s.error = Some(e.to_string());
            s.error_since = Some(unix_now());
        }
    }
    let restored = opened.error.is_none() || !opened.totals.is_empty();
    let mut worker = Worker {
        dir,
        config,
        state,
        status,
        logged: opened.error.as_ref().map(ToString::to_string),
        history: opened.history,
        restored,
        last_hosts: None,
        last_maintenance: Instant::now(),
        last_reopen: Instant::now(),
    };
    let thread = thread::Builder::new()
        .name("ntop-persist".into())
        .spawn(move || worker.run(&rx))?;
    Ok(Persister {
        waker: Waker(tx),
        thread,
    })
}

impl Persister {
    /// The handle the collector wakes the persister with.
    #[must_use]
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Writes a last checkpoint (hosts included) and closes the database. Call after the
    /// collector stopped and the final counters were taken in.
    ///
    /// # Panics
    /// If the persister thread panicked.
    pub fn stop(self) {
        let _ = self.waker.0.send(Wake::Stop);
        self.thread.join().expect("the persister thread panicked");
    }
}

impl Worker {
    fn run(&mut self, rx: &Receiver<Wake>) {
        loop {
            let stop = !matches!(rx.recv(), Ok(Wake::Poll));
            self.persist(stop);
            if stop {
                if let Some(h) = &mut self.history
                    && let Err(e) = h.flush()
                {
                    tracing::error!("{e}; the last points could not be written");
                }
                return;
            }
        }
    }

    /// One round: reopen if needed, checkpoint, commit, and maintenance once a minute.
    fn persist(&mut self, last: bool) {
        let due = self.last_maintenance.elapsed() >= MAINTENANCE;
        if self.history.is_none() && (self.last_reopen.elapsed() >= REOPEN || last) {
            self.reopen();
        }
        let checkpoint = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            let at = state.polled_at();
            let minute =
                |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 60);
            let hosts = last
                || match (self.last_hosts, at) {
                    (None, _) => true,
                    (Some(prev), Some(at)) => minute(prev) != minute(at),
                    (Some(_), None) => false,
                };
            if state.polled_at().is_none() && !last {
                return;
            }
            (hosts, state.checkpoint(hosts))
        };
        let (hosts, checkpoint) = checkpoint;
        // Host increases cover the time since the last host checkpoint: they go to the minute
        // in its middle (exact sums, minute resolution).
        let hosts_at = match self.last_hosts {
            Some(prev) if hosts => {
                let span = checkpoint.at.duration_since(prev).unwrap_or_default();
                prev + span / 2
            }
            _ => checkpoint.at,
        };
        if hosts {
            self.last_hosts = Some(checkpoint.at);
        }
        let Some(history) = &mut self.history else {
            return;
        };
        let result = history.commit(
            checkpoint.at,
            &checkpoint.points,
            hosts_at,
            checkpoint.totals,
        );
        let maintain = due && !last;
        let result = result.and_then(|()| {
            if maintain {
                self.last_maintenance = Instant::now();
                history.downsample_and_expire(SystemTime::now())
            } else {
                Ok(())
            }
        });
        self.report(result.err(), maintain);
    }

    /// Tries to open the database again; on success reads the earlier totals into the state if
    /// that could not be done at start-up, and asks for a full checkpoint.
    fn reopen(&mut self) {
        self.last_reopen = Instant::now();
        match History::open(&self.dir, self.config.clone()) {
            Ok(h) => {
                if !self.restored {
                    match h.load_totals() {
                        Ok(totals) => {
                            let mut state =
                                self.state.write().unwrap_or_else(PoisonError::into_inner);
                            let epoch = state.epoch().unwrap_or_default();
                            state.restore(&totals, epoch, &[]);
                            drop(state);
                            self.restored = true;
                            self.status
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .restored = !totals.is_empty();
                        }
                        Err(e) => {
                            self.report(Some(e), false);
                            return;
                        }
                    }
                }
                self.state
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .request_full_checkpoint();
                tracing::info!("history database {} is open again", h.path().display());
                self.status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .opened(&h);
                self.history = Some(h);
            }
            Err(e) => self.report(Some(e), false),
        }
    }

    /// Updates the status and logs a change of condition once. The database's size is read
    /// again only after maintenance (`maintained`), the one write that shrinks it or moves much.
    fn report(&mut self, error: Option<HistoryError>, maintained: bool) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = &self.history {
            s.backlog_polls = h.backlog_len();
            s.pending_totals = h.pending_totals();
            s.dropped_points = h.dropped_points();
            if error.is_none() {
                s.last_write = Some(unix_now());
                if maintained && let Ok(bytes) = h.usage_bytes() {
                    s.usage_bytes = bytes;
                }
            }
        }
        match error {
            None => {
                if let Some(was) = self.logged.take() {
                    tracing::info!(
                        "history database writes work again (was: {was}); nothing counted was lost"
                    );
                }
                s.state = "ok";
                s.error = None;
                s.error_since = None;
            }
            Some(e) => {
                let text = e.to_string();
                // The backlog count in a write error changes every poll: log on the cause.
                let key = match &e {
                    HistoryError::Write { what, .. } => what.clone(),
                    _ => text.clone(),
                };
                s.state = if self.history.is_some() {
                    "degraded"
                } else {
                    "unavailable"
                };
                if s.error.is_none() {
                    s.error_since = Some(unix_now());
                }
                s.error = Some(text.clone());
                drop(s);
                if self.logged.as_deref() != Some(key.as_str()) {
                    tracing::error!("{text}; counting goes on in memory");
                    self.logged = Some(key);
                }
            }
        }
    }
}
