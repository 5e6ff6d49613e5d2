//! History: time series of interface, protocol and host counters in `DATA_DIR/history.db`.
//!
//! # Threads
//! One writer: the persister thread ([`crate::persist`]) owns the [`History`] and calls
//! [`History::commit`] after each poll (points and the totals they lead to; [`History::record`]
//! is the same without totals) and [`History::downsample_and_expire`] about once a minute. Readers (HTTP handlers) open
//! their own read-only connections with [`History::reader`] / [`HistoryReader::open`]; `SQLite`'s
//! WAL mode lets them read a consistent snapshot while the writer commits. A connection is
//! `Send` but not `Sync`: keep one per worker, or open one per request (cheap).
//!
//! # Storage: `SQLite` in WAL mode, `synchronous = NORMAL`
//! - Crash safety without our own format: after `kill -9` a poll's transaction is either in the
//!   database or not; after a power loss at most the last transactions (since the last WAL
//!   checkpoint sync) are lost, never a corrupt file. A hand-written append log with the same
//!   guarantees would need checksums, recovery and compaction we would have to test ourselves.
//! - Downsampling and retention are a few `INSERT … SELECT … GROUP BY` / `DELETE` statements.
//! - `auto_vacuum = INCREMENTAL` plus `PRAGMA incremental_vacuum` after expiry returns freed
//!   pages to the file system, so the file size (`page_count * page_size`, [`History::usage_bytes`])
//!   follows the data and the disk budget can be held. The WAL is emptied after each
//!   minute's host write and each maintenance run (`wal_checkpoint(TRUNCATE)`), so it holds
//!   about a minute of writes (a single 100k-host minute is tens of MB; see BENCHMARKS.md).
//! - Schema version in `PRAGMA user_version` ([`db::SCHEMA_VERSION`]). A newer file is refused
//!   ([`HistoryError::NewerVersion`]), never overwritten. A damaged file (bad header, truncated,
//!   "file is not a database", `PRAGMA quick_check` failing) is renamed to
//!   `history.db.corrupt-<unix time>` (its WAL beside it) and a fresh database is started; the
//!   move is logged and reported by [`History::moved_aside`].
//!
//! # Series
//! Rows hold **deltas** (rx/tx bytes and packets) keyed by the start of their interval, so
//! downsampling is a SUM and every resolution sums to the same totals exactly. Rows with all
//! counters zero are not written. Interfaces are keyed by name (stable across reboots, unlike
//! ifindex).
//! - Interface and protocol slot: 1 s rows for [`HistoryConfig::seconds_for`] (1 h), rolled into
//!   minute rows kept [`HistoryConfig::minutes_for`] (7 days), rolled into hour rows kept
//!   [`HistoryConfig::hours_for`] (1 year). Their size is bounded by the number of interfaces and
//!   slots, not by traffic.
//! - Host (interface, address): minute rows kept [`HistoryConfig::host_minutes_for`] (1 day),
//!   rolled into hour rows kept [`HistoryConfig::host_hours_for`] (1 year), and all host rows
//!   together bounded by [`HistoryConfig::budget_bytes`]: when the file is over budget after
//!   expiry, the oldest host rows are deleted first until it fits. Host deltas are summed in
//!   memory per minute and written when the minute is over (or on [`History::flush`]), which
//!   keeps the per-poll cost independent of the number of hosts; a `kill -9` loses at most the
//!   current minute of per-host history (interface and protocol series lose nothing).
//!
//! # Faults
//! A write that fails (disk full, read-only file system, permissions) returns
//! [`HistoryError::Write`] naming the file and the cause. The points are kept in a bounded
//! in-memory backlog ([`HistoryConfig::backlog`], 10 minutes by default) and written with the
//! next successful transaction, so a short full-disk episode loses nothing; the caller just
//! keeps calling `record`. Points dropped from a full backlog are counted
//! ([`History::dropped_points`]).

mod db;
#[cfg(test)]
mod tests;
pub mod totals;
pub mod usage;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    net::{IpAddr, Ipv6Addr},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, ErrorCode, params};

use crate::{sample::Epoch, store::DataDir};

pub use self::totals::{ErrorTotals, HostTotals, IfaceTotals, Totals};
pub use db::SCHEMA_VERSION;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "history.db";

/// Errors of the history store. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database could not be opened or prepared (missing directory, permissions, a directory
    /// in place of the file, a damaged file that could not be moved aside).
    #[error("cannot open history database {path}: {what}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong, with a hint.
        what: String,
        /// The OS error, when there is one.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The file was written by a newer ntop (schema `found` > `supported`). It is left alone.
    #[error(
        "history database {path} was written by a newer ntop (schema version {found}, this \
         build reads up to {supported}); upgrade ntop, or move the file aside to start a new \
         history"
    )]
    NewerVersion {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// A write transaction failed; the points are kept in the backlog and retried.
    #[error("cannot write history database {path}: {what}; {kept} polls kept in memory for retry")]
    Write {
        /// The database file.
        path: PathBuf,
        /// The cause ("the disk is full", "read-only file system", …) and `SQLite`'s message.
        what: String,
        /// Polls waiting in the backlog.
        kept: usize,
    },
    /// A query failed.
    #[error("cannot read history database {path}: {what}")]
    Read {
        /// The database file.
        path: PathBuf,
        /// `SQLite`'s message.
        what: String,
    },
}

/// A hint for the common causes of a failed statement on the database at `path`. `SQLite`
/// reports a write to a read-only or full file system sometimes as such and sometimes as a
/// plain I/O error, so the file system is asked too (`statvfs(3)`).
fn what_hint(e: &rusqlite::Error, path: &Path) -> &'static str {
    const FULL: &str = " (the disk is full: free some space; ntop retries)";
    const READ_ONLY: &str =
        " (read-only file system or file not writable: make the data directory writable)";
    let code = e.sqlite_error_code();
    if code == Some(ErrorCode::DiskFull) {
        return FULL;
    }
    if matches!(
        code,
        Some(
            ErrorCode::ReadOnly
                | ErrorCode::CannotOpen
                | ErrorCode::SystemIoFailure
                | ErrorCode::PermissionDenied
        )
    ) {
        match fs_state(path) {
            Some(FsState::ReadOnly) => return READ_ONLY,
            Some(FsState::Full) => return FULL,
            None => {}
        }
    }
    match code {
        Some(ErrorCode::ReadOnly) => READ_ONLY,
        Some(ErrorCode::CannotOpen) => {
            " (cannot open the file: check that the data directory exists and is writable)"
        }
        Some(ErrorCode::PermissionDenied) => " (permission denied: check the owner)",
        Some(ErrorCode::SystemIoFailure) => " (I/O error: check the disk and its free space)",
        _ => "",
    }
}

enum FsState {
    ReadOnly,
    Full,
}

/// Whether the file system holding `path`'s directory is mounted read-only or has no space
/// left for an unprivileged writer.
fn fs_state(path: &Path) -> Option<FsState> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let st = statvfs(path.parent()?).ok()?;
    if st.flags().contains(FsFlags::ST_RDONLY) {
        Some(FsState::ReadOnly)
    } else if st.blocks_available() == 0 {
        Some(FsState::Full)
    } else {
        None
    }
}

/// Four counters; in the database and in queries they are deltas over one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Received bytes.
    pub rx_bytes: u64,
    /// Received packets.
    pub rx_packets: u64,
    /// Transmitted bytes.
    pub tx_bytes: u64,
    /// Transmitted packets.
    pub tx_packets: u64,
}

impl Counters {
    /// Adds `o` (wrapping like the kernel counters).
    pub fn add(&mut self, o: &Self) {
        self.rx_bytes = self.rx_bytes.wrapping_add(o.rx_bytes);
        self.rx_packets = self.rx_packets.wrapping_add(o.rx_packets);
        self.tx_bytes = self.tx_bytes.wrapping_add(o.tx_bytes);
        self.tx_packets = self.tx_packets.wrapping_add(o.tx_packets);
    }

    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// What one poll adds: deltas since the previous poll.
#[derive(Clone, Debug, Default)]
pub struct Points {
    /// Per interface name.
    pub interfaces: Vec<(String, Counters)>,
    /// Per (interface name, protocol slot as in [`ntop_common::proto`]).
    pub protocols: Vec<(String, u16, Counters)>,
    /// Per (interface name, host address).
    pub hosts: Vec<(String, IpAddr, Counters)>,
}

/// Which series to query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeriesKey {
    /// An interface's totals.
    Interface(String),
    /// One protocol slot of an interface.
    Protocol {
        /// Interface name.
        iface: String,
        /// Protocol slot.
        slot: u16,
    },
    /// One host on an interface.
    Host {
        /// Interface name.
        iface: String,
        /// Address (IPv4 or IPv6).
        addr: IpAddr,
    },
}

/// A series resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resolution {
    /// 1 second (interfaces and protocols, last hour).
    Second,
    /// 1 minute.
    Minute,
    /// 1 hour.
    Hour,
}

impl Resolution {
    /// The interval in seconds.
    #[must_use]
    pub const fn secs(self) -> i64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3600,
        }
    }

    /// The resolution for a range when none is asked for: ≤ 1 h → 1 s, ≤ 7 days → 1 min, else 1 h.
    #[must_use]
    pub fn for_range(range: Duration) -> Self {
        if range <= Duration::from_hours(1) {
            Self::Second
        } else if range <= Duration::from_hours(168) {
            Self::Minute
        } else {
            Self::Hour
        }
    }
}

/// Retention and limits.
#[derive(Clone, Debug)]
pub struct HistoryConfig {
    /// How long interface/protocol 1 s rows are kept (1 h).
    pub seconds_for: Duration,
    /// How long interface/protocol minute rows are kept (7 days).
    pub minutes_for: Duration,
    /// How long interface/protocol hour rows are kept (365 days).
    pub hours_for: Duration,
    /// How long host minute rows are kept (1 day).
    pub host_minutes_for: Duration,
    /// How long host hour rows are kept (365 days), within the budget.
    pub host_hours_for: Duration,
    /// Disk budget for the database file in bytes (512 MiB). Host rows give way first.
    pub budget_bytes: u64,
    /// Polls kept in memory while writes fail (600: 10 minutes at one poll a second).
    pub backlog: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            seconds_for: Duration::from_hours(1),
            minutes_for: Duration::from_hours(168),
            hours_for: Duration::from_hours(8760),
            host_minutes_for: Duration::from_hours(24),
            host_hours_for: Duration::from_hours(8760),
            budget_bytes: 512 << 20,
            backlog: 600,
        }
    }
}

/// A damaged database that was moved aside at open.
#[derive(Clone, Debug)]
pub struct MovedAside {
    /// Where the old file is now.
    pub to: PathBuf,
    /// Why it was considered damaged.
    pub reason: String,
}

/// Host deltas of one minute, waiting to be written.
type HostMinute = HashMap<(String, [u8; 16]), Counters>;

/// The writer (collector thread).
pub struct History {
    conn: Connection,
    path: PathBuf,
    config: HistoryConfig,
    moved: Option<MovedAside>,
    /// Interface and protocol points not yet committed: (unix seconds, points).
    backlog: VecDeque<(i64, Points)>,
    /// Host deltas per minute start, not yet committed.
    host_pending: BTreeMap<i64, HostMinute>,
    /// Committed interface ids.
    iface_ids: HashMap<String, i64>,
    /// Committed host ids.
    host_ids: HashMap<(i64, [u8; 16]), i64>,
    dropped: u64,
    /// Totals not yet written; the latest row of each entity wins.
    pending: PendingTotals,
    epoch_ids: HashMap<Epoch, i64>,
}

/// Totals waiting for the next successful transaction. Bounded by the number of entities, so
/// nothing is ever dropped from it.
#[derive(Debug, Default)]
struct PendingTotals {
    interfaces: HashMap<String, IfaceTotals>,
    hosts: HashMap<(String, [u8; 16]), HostTotals>,
    errors: Option<ErrorTotals>,
    since_ms: Option<u64>,
}

impl PendingTotals {
    fn merge(&mut self, t: Totals) {
        for i in t.interfaces {
            self.interfaces.insert(i.name.clone(), i);
        }
        for h in t.hosts {
            self.hosts.insert((h.iface.clone(), h.addr), h);
        }
        if t.errors.is_some() {
            self.errors = t.errors;
        }
        if t.since_ms.is_some() {
            self.since_ms = t.since_ms;
        }
    }

    fn clear(&mut self) {
        self.interfaces.clear();
        self.hosts.clear();
        self.errors = None;
        self.since_ms = None;
    }
}

/// Unix seconds of `t` (0 before the epoch).
pub(crate) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Inverse of [`unix`] (negative: the epoch).
pub(crate) fn from_unix(t: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap_or(0))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn db_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn addr16(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The address of a stored host: IPv4-mapped addresses come back as IPv4.
#[must_use]
pub fn addr_of(a: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(a);
    v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
}

impl History {
    /// Opens (or creates) `DATA_DIR/history.db`, moving a damaged file aside.
    ///
    /// # Errors
    /// [`HistoryError::NewerVersion`] for a file of a newer ntop, [`HistoryError::Open`] when the
    /// file cannot be opened or created.
    pub fn open(dir: &DataDir, config: HistoryConfig) -> Result<Self, HistoryError> {
        let path = dir.file(FILE_NAME);
        let (conn, moved) = db::open_writer(&path)?;
        let mut h = Self {
            conn,
            path,
            config,
            moved,
            backlog: VecDeque::new(),
            host_pending: BTreeMap::new(),
            iface_ids: HashMap::new(),
            host_ids: HashMap::new(),
            dropped: 0,
            pending: PendingTotals::default(),
            epoch_ids: HashMap::new(),
        };
        h.load_ids().map_err(|e| HistoryError::Open {
            path: h.path.clone(),
            what: e.to_string(),
            source: None,
        })?;
        Ok(h)
    }

    fn load_ids(&mut self) -> rusqlite::Result<()> {
        let mut st = self.conn.prepare("SELECT id, name FROM ifaces")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(0)?)))?;
        self.iface_ids = rows.collect::<Result<_, _>>()?;
        let mut st = self.conn.prepare("SELECT id, iface, addr FROM hosts")?;
        let rows = st.query_map([], |r| {
            let addr: Vec<u8> = r.get(2)?;
            let mut a = [0u8; 16];
            if addr.len() == 16 {
                a.copy_from_slice(&addr);
            }
            Ok(((r.get::<_, i64>(1)?, a), r.get::<_, i64>(0)?))
        })?;
        self.host_ids = rows.collect::<Result<_, _>>()?;
        let mut st = self.conn.prepare("SELECT id, text FROM epochs")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (id, text) = row?;
            if let Some(e) = Epoch::parse(&text) {
                self.epoch_ids.insert(e, id);
            }
        }
        Ok(())
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The damaged file moved aside at open, if any (also logged).
    #[must_use]
    pub fn moved_aside(&self) -> Option<&MovedAside> {
        self.moved.as_ref()
    }

    /// Polls waiting in memory because writes failed.
    #[must_use]
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Polls dropped because the backlog was full (lost from history, not from totals).
    #[must_use]
    pub fn dropped_points(&self) -> u64 {
        self.dropped
    }

    /// Opens a read-only connection for another thread.
    ///
    /// # Errors
    /// [`HistoryError::Open`].
    pub fn reader(&self) -> Result<HistoryReader, HistoryError> {
        HistoryReader::open_path(&self.path)
    }

    /// Records one poll taken at `at`: interface and protocol deltas in one transaction with any
    /// backlog, host deltas into the current minute (written when the minute is over).
    ///
    /// # Errors
    /// [`HistoryError::Write`] when the transaction fails; the points stay in memory and go out
    /// with the next successful call.
    pub fn record(&mut self, at: SystemTime, points: &Points) -> Result<(), HistoryError> {
        self.commit(at, points, at, Totals::default())
    }

    /// Writes everything pending, including the current minute of host deltas (call on
    /// shutdown; a later record of the same minute adds to it).
    ///
    /// # Errors
    /// [`HistoryError::Write`], the data kept for retry.
    pub fn flush(&mut self) -> Result<(), HistoryError> {
        self.write(None)
    }

    /// Writes one poll's points and the totals they lead to in one transaction, so that what is
    /// on disk is always consistent: the history sums to the totals' increase. `points.hosts`
    /// are the host deltas of a whole interval (the persister sends them once a minute); they
    /// go to the minute of `hosts_at` (the middle of their interval). `totals` are merged into
    /// the rows waiting to be written (the latest row of an entity wins) and written with them.
    ///
    /// # Errors
    /// [`HistoryError::Write`] as for [`History::record`]; nothing of `totals` is lost then:
    /// pending totals are kept until a transaction succeeds.
    pub fn commit(
        &mut self,
        at: SystemTime,
        points: &Points,
        hosts_at: SystemTime,
        totals: Totals,
    ) -> Result<(), HistoryError> {
        let t = unix(at);
        if !points.hosts.is_empty() {
            let h = unix(hosts_at);
            let m = self.host_pending.entry(h - h.rem_euclid(60)).or_default();
            for (iface, addr, c) in &points.hosts {
                m.entry((iface.clone(), addr16(*addr))).or_default().add(c);
            }
        }
        self.pending.merge(totals);
        self.backlog.push_back((
            t,
            Points {
                interfaces: points.interfaces.clone(),
                protocols: points.protocols.clone(),
                hosts: Vec::new(),
            },
        ));
        let hosts = !points.hosts.is_empty();
        self.write(Some(t - t.rem_euclid(60)))?;
        if hosts {
            self.truncate_wal();
        }
        Ok(())
    }

    /// Copies the WAL into the database and empties it (`wal_checkpoint(TRUNCATE)`): after the
    /// minute's host write, which at 100k hosts puts tens of MB into the WAL, so the WAL holds
    /// at most about a minute of writes instead of growing past `journal_size_limit` (that
    /// limit only applies when a checkpoint resets the WAL). A checkpoint a reader blocks
    /// just does less; it never fails the write.
    fn truncate_wal(&self) {
        if let Err(e) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            tracing::debug!("history: WAL checkpoint: {e}");
        }
    }

    /// Totals rows waiting to be written (after failed writes), for the status page.
    #[must_use]
    pub fn pending_totals(&self) -> usize {
        self.pending.interfaces.len() + self.pending.hosts.len()
    }

    /// Reads every totals row back (at start-up).
    ///
    /// # Errors
    /// [`HistoryError::Read`], also when a row is damaged (a BLOB of the wrong size).
    pub fn load_totals(&self) -> Result<Totals, HistoryError> {
        totals::read(&self.conn, &self.path)
    }

    /// Writes the backlog and the host minutes before `current_minute` (all when `None`).
    fn write(&mut self, current_minute: Option<i64>) -> Result<(), HistoryError> {
        let mut new_ifaces = HashMap::new();
        let mut new_hosts = HashMap::new();
        let mut new_epochs = HashMap::new();
        let minutes: Vec<i64> = self
            .host_pending
            .keys()
            .copied()
            .filter(|m| current_minute.is_none_or(|c| *m < c))
            .collect();
        let r = self.write_tx(&minutes, &mut new_ifaces, &mut new_hosts, &mut new_epochs);
        match r {
            Ok(()) => {
                self.iface_ids.extend(new_ifaces);
                self.host_ids.extend(new_hosts);
                self.epoch_ids.extend(new_epochs);
                self.pending.clear();
                self.backlog.clear();
                for m in minutes {
                    self.host_pending.remove(&m);
                }
                Ok(())
            }
            Err(e) => {
                while self.backlog.len() > self.config.backlog.max(1) {
                    self.backlog.pop_front();
                    self.dropped += 1;
                }
                let max_minutes = self.config.backlog.div_ceil(60).max(1) + 1;
                while self.host_pending.len() > max_minutes {
                    self.host_pending.pop_first();
                }
                Err(HistoryError::Write {
                    path: self.path.clone(),
                    what: format!("{}{}", what_short(&e), what_hint(&e, &self.path)),
                    kept: self.backlog.len(),
                })
            }
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one transaction: every table written in turn, in one place"
    )]
    fn write_tx(
        &self,
        minutes: &[i64],
        new_ifaces: &mut HashMap<String, i64>,
        new_hosts: &mut HashMap<(i64, [u8; 16]), i64>,
        new_epochs: &mut HashMap<Epoch, i64>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.unchecked_transaction()?;
        self.write_totals(&tx, new_epochs)?;
        {
            let mut ins_iface = tx.prepare_cached(
                "INSERT INTO iface_ts (iface, res, t, rxb, rxp, txb, txp) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT DO UPDATE SET rxb = rxb + excluded.rxb, rxp = rxp + excluded.rxp,
                 txb = txb + excluded.txb, txp = txp + excluded.txp",
            )?;
            let mut ins_proto = tx.prepare_cached(
                "INSERT INTO proto_ts (iface, proto, res, t, rxb, rxp, txb, txp) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO UPDATE SET rxb = rxb + excluded.rxb, rxp = rxp + excluded.rxp,
                 txb = txb + excluded.txb, txp = txp + excluded.txp",
            )?;
            let mut iface_id = |name: &str| -> rusqlite::Result<i64> {
                if let Some(id) = self.iface_ids.get(name).or_else(|| new_ifaces.get(name)) {
                    return Ok(*id);
                }
                tx.execute("INSERT OR IGNORE INTO ifaces (name) VALUES (?1)", [name])?;
                let id: i64 =
                    tx.query_row("SELECT id FROM ifaces WHERE name = ?1", [name], |r| {
                        r.get(0)
                    })?;
                new_ifaces.insert(name.to_owned(), id);
                Ok(id)
            };
            for (t, p) in &self.backlog {
                for (name, c) in &p.interfaces {
                    if c.is_zero() {
                        continue;
                    }
                    let id = iface_id(name)?;
                    ins_iface.execute(params![
                        id,
                        t,
                        db_int(c.rx_bytes),
                        db_int(c.rx_packets),
                        db_int(c.tx_bytes),
                        db_int(c.tx_packets)
                    ])?;
                }
                for (name, slot, c) in &p.protocols {
                    if c.is_zero() {
                        continue;
                    }
                    let id = iface_id(name)?;
                    ins_proto.execute(params![
                        id,
                        slot,
                        t,
                        db_int(c.rx_bytes),
                        db_int(c.rx_packets),
                        db_int(c.tx_bytes),
                        db_int(c.tx_packets)
                    ])?;
                }
            }
            if !minutes.is_empty() {
                let mut ins_host = tx.prepare_cached(
                    "INSERT INTO host_ts (host, res, t, rxb, rxp, txb, txp) VALUES (?1, 60, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT DO UPDATE SET rxb = rxb + excluded.rxb, rxp = rxp + excluded.rxp,
                     txb = txb + excluded.txb, txp = txp + excluded.txp",
                )?;
                let mut new_host = tx.prepare_cached(
                    "INSERT INTO hosts (iface, addr, last_seen) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)
                     RETURNING id",
                )?;
                let mut seen = tx.prepare_cached(
                    "UPDATE hosts SET last_seen = max(last_seen, ?2) WHERE id = ?1",
                )?;
                for m in minutes {
                    for ((name, addr), c) in &self.host_pending[m] {
                        if c.is_zero() {
                            continue;
                        }
                        let ifid = iface_id(name)?;
                        let key = (ifid, *addr);
                        let hid = if let Some(id) =
                            self.host_ids.get(&key).or_else(|| new_hosts.get(&key))
                        {
                            seen.execute(params![id, m])?;
                            *id
                        } else {
                            let id: i64 =
                                new_host.query_row(params![ifid, &addr[..], m], |r| r.get(0))?;
                            new_hosts.insert(key, id);
                            id
                        };
                        ins_host.execute(params![
                            hid,
                            m,
                            db_int(c.rx_bytes),
                            db_int(c.rx_packets),
                            db_int(c.tx_bytes),
                            db_int(c.tx_packets)
                        ])?;
                    }
                }
            }
        }
        tx.commit()
    }

    /// Writes the pending totals inside the commit's transaction.
    fn write_totals(
        &self,
        tx: &rusqlite::Transaction<'_>,
        new_epochs: &mut HashMap<Epoch, i64>,
    ) -> rusqlite::Result<()> {
        use totals::{encode_host, encode_sparse, encode_u64s};
        let p = &self.pending;
        let mut epoch_id = |e: &Epoch| -> rusqlite::Result<i64> {
            if let Some(id) = self.epoch_ids.get(e).or_else(|| new_epochs.get(e)) {
                return Ok(*id);
            }
            let id = tx.query_row(
                "INSERT INTO epochs (text) VALUES (?1)
                 ON CONFLICT DO UPDATE SET text = excluded.text RETURNING id",
                [e.to_text()],
                |r| r.get(0),
            )?;
            new_epochs.insert(*e, id);
            Ok(id)
        };
        if !p.interfaces.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO iface_totals (name, epoch, proto, proto_off, other, other_off)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for i in p.interfaces.values() {
                st.execute(params![
                    i.name,
                    epoch_id(&i.epoch)?,
                    encode_sparse(&i.proto),
                    i.proto_offset.as_deref().map(encode_sparse),
                    encode_host(&i.other),
                    i.other_offset.as_ref().map(encode_host),
                ])?;
            }
        }
        if !p.hosts.is_empty() {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO host_totals (iface, addr, epoch, c, off, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for h in p.hosts.values() {
                st.execute(params![
                    h.iface,
                    &h.addr[..],
                    epoch_id(&h.epoch)?,
                    encode_host(&h.totals),
                    h.offset.as_ref().map(encode_host),
                    db_int(h.first_seen_ms),
                    db_int(h.last_seen_ms),
                ])?;
            }
        }
        let mut meta = tx.prepare_cached("INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)")?;
        if let Some(e) = &p.errors {
            meta.execute(params!["errors_epoch", epoch_id(&e.epoch)?])?;
            meta.execute(params!["errors", encode_u64s(&e.totals)])?;
            match &e.offset {
                Some(o) => meta.execute(params!["errors_off", encode_u64s(o)])?,
                None => tx.execute("DELETE FROM meta WHERE k = 'errors_off'", [])?,
            };
        }
        if let Some(since) = p.since_ms {
            meta.execute(params!["since_ms", db_int(since)])?;
        }
        Ok(())
    }

    /// Rolls 1 s rows older than [`HistoryConfig::seconds_for`] into minutes, minute rows older
    /// than their retention into hours (sums, exact), deletes hour rows past retention, then
    /// deletes the oldest host rows while the file is over the budget. Run about once a minute.
    ///
    /// # Errors
    /// [`HistoryError::Write`] (nothing is lost: the rows stay until the next run).
    pub fn downsample_and_expire(&mut self, now: SystemTime) -> Result<(), HistoryError> {
        let now = unix(now);
        let c = &self.config;
        let align = |t: i64, r: i64| t - t.rem_euclid(r);
        let sec_cut = align(now - secs(c.seconds_for), 60);
        let min_cut = align(now - secs(c.minutes_for), 3600);
        let hour_cut = align(now - secs(c.hours_for), 3600);
        let host_min_cut = align(now - secs(c.host_minutes_for), 3600);
        let host_hour_cut = align(now - secs(c.host_hours_for), 3600);
        let r = (|| -> rusqlite::Result<()> {
            let tx = self.conn.unchecked_transaction()?;
            for (table, key) in [("iface_ts", "iface"), ("proto_ts", "iface, proto")] {
                roll(&tx, table, key, 1, 60, sec_cut)?;
                roll(&tx, table, key, 60, 3600, min_cut)?;
                tx.execute(
                    &format!("DELETE FROM {table} WHERE res = 3600 AND t < ?1"),
                    [hour_cut],
                )?;
            }
            roll(&tx, "host_ts", "host", 60, 3600, host_min_cut)?;
            tx.execute(
                "DELETE FROM host_ts WHERE res = 3600 AND t < ?1",
                [host_hour_cut],
            )?;
            // Hosts not seen for as long as their history is kept are forgotten.
            tx.execute(
                "DELETE FROM host_totals WHERE last_seen < ?1",
                [host_hour_cut.saturating_mul(1000)],
            )?;
            tx.commit()
        })();
        r.map_err(|e| self.write_err(&e))?;
        self.enforce_budget(now)?;
        self.truncate_wal();
        Ok(())
    }

    /// Deletes the oldest host rows until the file fits the budget, then forgets hosts without
    /// rows.
    fn enforce_budget(&mut self, now: i64) -> Result<(), HistoryError> {
        let r = (|| -> rusqlite::Result<()> {
            incremental_vacuum(&self.conn)?;
            for _ in 0..64 {
                if self.usage()? <= self.config.budget_bytes {
                    break;
                }
                let oldest: Option<i64> =
                    self.conn
                        .query_row("SELECT min(t) FROM host_ts", [], |r| r.get(0))?;
                let Some(oldest) = oldest else {
                    // No host history left: the totals of the hosts seen longest ago go next.
                    if !self.forget_stalest_hosts()? {
                        break;
                    }
                    incremental_vacuum(&self.conn)?;
                    continue;
                };
                // Drop an eighth of the remaining span (at least a minute) per round.
                let step = ((now - oldest) / 8).max(60);
                self.conn
                    .execute("DELETE FROM host_ts WHERE t < ?1", [oldest + step])?;
                incremental_vacuum(&self.conn)?;
            }
            let gone = self.conn.execute(
                "DELETE FROM hosts WHERE NOT EXISTS (SELECT 1 FROM host_ts WHERE host = hosts.id)",
                [],
            )?;
            if gone > 0 {
                let mut st = self.conn.prepare("SELECT id FROM hosts")?;
                let live: std::collections::HashSet<i64> =
                    st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
                self.host_ids.retain(|_, id| live.contains(id));
                incremental_vacuum(&self.conn)?;
            }
            Ok(())
        })();
        r.map_err(|e| self.write_err(&e))
    }

    /// Deletes the totals of the eighth of the hosts seen longest ago (at least one); `false`
    /// when there were none. Only reached when the budget cannot hold even the totals.
    fn forget_stalest_hosts(&self) -> rusqlite::Result<bool> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM host_totals", [], |r| r.get(0))?;
        if n == 0 {
            return Ok(false);
        }
        let gone = self.conn.execute(
            "DELETE FROM host_totals WHERE (iface, addr) IN (SELECT iface, addr FROM host_totals
             ORDER BY last_seen LIMIT ?1)",
            [(n / 8).max(1)],
        )?;
        tracing::warn!(
            "history: the disk budget cannot hold the totals of every host; forgot those of \
             the {gone} hosts seen longest ago (raise --history-budget to keep them)"
        );
        Ok(gone > 0)
    }

    fn write_err(&self, e: &rusqlite::Error) -> HistoryError {
        HistoryError::Write {
            path: self.path.clone(),
            what: format!("{}{}", what_short(e), what_hint(e, &self.path)),
            kept: self.backlog.len(),
        }
    }

    fn usage(&self) -> rusqlite::Result<u64> {
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from(pages * size).unwrap_or(0))
    }

    /// The database size, `page_count * page_size`. The WAL is not included: it is emptied
    /// after every minute's host write and every maintenance run (`truncate_wal`), so it holds
    /// about a minute of writes at most.
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn usage_bytes(&self) -> Result<u64, HistoryError> {
        self.usage().map_err(|e| read_err(&self.path, &e))
    }

    /// Queries a series; see [`HistoryReader::query`].
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn query(
        &self,
        series: &SeriesKey,
        from: SystemTime,
        to: SystemTime,
        resolution: Option<Resolution>,
    ) -> Result<Vec<(SystemTime, Counters)>, HistoryError> {
        query(&self.conn, &self.path, series, from, to, resolution)
    }

    #[cfg(test)]
    fn conn(&self) -> &Connection {
        &self.conn
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.path)
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!("history: {e}");
        }
    }
}

/// Gives free pages back to the file system. Each step of the statement frees one page, so it
/// is stepped to the end.
fn incremental_vacuum(conn: &Connection) -> rusqlite::Result<()> {
    let mut st = conn.prepare("PRAGMA incremental_vacuum")?;
    let mut rows = st.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn roll(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    key: &str,
    from: i64,
    to: i64,
    cut: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {table} ({key}, res, t, rxb, rxp, txb, txp)
             SELECT {key}, {to}, t - (t % {to}), sum(rxb), sum(rxp), sum(txb), sum(txp)
             FROM {table} WHERE res = {from} AND t < ?1 GROUP BY {key}, t - (t % {to})
             ON CONFLICT DO UPDATE SET rxb = rxb + excluded.rxb, rxp = rxp + excluded.rxp,
             txb = txb + excluded.txb, txp = txp + excluded.txp"
        ),
        [cut],
    )?;
    tx.execute(
        &format!("DELETE FROM {table} WHERE res = {from} AND t < ?1"),
        [cut],
    )?;
    Ok(())
}

fn what_short(e: &rusqlite::Error) -> String {
    e.to_string()
}

fn read_err(path: &Path, e: &rusqlite::Error) -> HistoryError {
    HistoryError::Read {
        path: path.to_owned(),
        what: e.to_string(),
    }
}

/// A read-only connection for queries from another thread (HTTP).
pub struct HistoryReader {
    conn: Connection,
    path: PathBuf,
}

impl HistoryReader {
    /// Opens `DATA_DIR/history.db` read-only (the writer must have created it).
    ///
    /// # Errors
    /// [`HistoryError::Open`].
    pub fn open(dir: &DataDir) -> Result<Self, HistoryError> {
        Self::open_path(&dir.file(FILE_NAME))
    }

    /// Opens `DATA_DIR/history.db` on a read-only file system, where a WAL database cannot be
    /// opened the usual way (its `-shm` file cannot be created): as immutable, which is what it
    /// is there. Used at start-up to carry the totals over from a read-only data directory.
    ///
    /// # Errors
    /// [`HistoryError::Open`].
    pub fn open_immutable(dir: &DataDir) -> Result<Self, HistoryError> {
        let path = dir.file(FILE_NAME);
        Ok(Self {
            conn: db::open_immutable(&path)?,
            path,
        })
    }

    fn open_path(path: &Path) -> Result<Self, HistoryError> {
        Ok(Self {
            conn: db::open_reader(path)?,
            path: path.to_owned(),
        })
    }

    /// Queries `series` over `[from, to)`: one entry per non-empty interval, in time order,
    /// each the sum of the stored deltas in it. Without `resolution` it is picked from the
    /// range ([`Resolution::for_range`]; hosts have no 1 s rows, so at least minutes). Rows of a
    /// finer resolution are summed into the asked one (the last hour of 1 s rows shows up in a
    /// minute query); rows of a coarser one are left out.
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn query(
        &self,
        series: &SeriesKey,
        from: SystemTime,
        to: SystemTime,
        resolution: Option<Resolution>,
    ) -> Result<Vec<(SystemTime, Counters)>, HistoryError> {
        query(&self.conn, &self.path, series, from, to, resolution)
    }

    /// Reads every totals row (see [`History::load_totals`]): the start-up uses this when the
    /// database can be read but not written (a read-only data directory).
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn load_totals(&self) -> Result<Totals, HistoryError> {
        totals::read(&self.conn, &self.path)
    }
}

fn query(
    conn: &Connection,
    path: &Path,
    series: &SeriesKey,
    from: SystemTime,
    to: SystemTime,
    resolution: Option<Resolution>,
) -> Result<Vec<(SystemTime, Counters)>, HistoryError> {
    let mut res = resolution
        .unwrap_or_else(|| Resolution::for_range(to.duration_since(from).unwrap_or_default()));
    if matches!(series, SeriesKey::Host { .. }) && res == Resolution::Second {
        res = Resolution::Minute;
    }
    let r = res.secs();
    let (from, to) = (unix(from), unix(to));
    let select = |table: &str, cond: &str| {
        format!(
            "SELECT t - (t % {r}) AS b, sum(rxb), sum(rxp), sum(txb), sum(txp) FROM {table}
             WHERE {cond} AND res <= {r} AND t >= ?1 AND t < ?2 GROUP BY b ORDER BY b"
        )
    };
    let run = |sql: String, p: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<_>> {
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(p, |row| {
            let g = |i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
            Ok((
                from_unix(row.get(0)?),
                Counters {
                    rx_bytes: g(1)?,
                    rx_packets: g(2)?,
                    tx_bytes: g(3)?,
                    tx_packets: g(4)?,
                },
            ))
        })?;
        rows.collect()
    };
    let out = match series {
        SeriesKey::Interface(name) => run(
            select(
                "iface_ts",
                "iface = (SELECT id FROM ifaces WHERE name = ?3)",
            ),
            &[&from, &to, name],
        ),
        SeriesKey::Protocol { iface, slot } => run(
            select(
                "proto_ts",
                "iface = (SELECT id FROM ifaces WHERE name = ?3) AND proto = ?4",
            ),
            &[&from, &to, iface, slot],
        ),
        SeriesKey::Host { iface, addr } => run(
            select(
                "host_ts",
                "host = (SELECT h.id FROM hosts h JOIN ifaces i ON h.iface = i.id
                         WHERE i.name = ?3 AND h.addr = ?4)",
            ),
            &[&from, &to, iface, &addr16(*addr).to_vec()],
        ),
    };
    out.map_err(|e| read_err(path, &e))
}
