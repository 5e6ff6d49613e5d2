//! Opening `history.db`: the schema, its version, and what happens to a damaged or newer file.

use std::{
    fmt::Write as _,
    fs, io,
    io::Read as _,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{HistoryError, MovedAside};

/// The schema this build writes, kept in `PRAGMA user_version`. Bump it with a migration.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ifaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS iface_ts (
    iface INTEGER NOT NULL, res INTEGER NOT NULL, t INTEGER NOT NULL,
    rxb INTEGER NOT NULL, rxp INTEGER NOT NULL, txb INTEGER NOT NULL, txp INTEGER NOT NULL,
    PRIMARY KEY (iface, res, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS proto_ts (
    iface INTEGER NOT NULL, proto INTEGER NOT NULL, res INTEGER NOT NULL, t INTEGER NOT NULL,
    rxb INTEGER NOT NULL, rxp INTEGER NOT NULL, txb INTEGER NOT NULL, txp INTEGER NOT NULL,
    PRIMARY KEY (iface, proto, res, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS hosts (
    id INTEGER PRIMARY KEY, iface INTEGER NOT NULL, addr BLOB NOT NULL, last_seen INTEGER NOT NULL,
    UNIQUE (iface, addr));
CREATE TABLE IF NOT EXISTS host_ts (
    host INTEGER NOT NULL, res INTEGER NOT NULL, t INTEGER NOT NULL,
    rxb INTEGER NOT NULL, rxp INTEGER NOT NULL, txb INTEGER NOT NULL, txp INTEGER NOT NULL,
    PRIMARY KEY (host, res, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS epochs (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS iface_totals (
    name TEXT PRIMARY KEY, epoch INTEGER NOT NULL,
    proto BLOB NOT NULL, proto_off BLOB, other BLOB NOT NULL, other_off BLOB);
CREATE TABLE IF NOT EXISTS host_totals (
    iface TEXT NOT NULL, addr BLOB NOT NULL, epoch INTEGER NOT NULL, c BLOB NOT NULL, off BLOB,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL,
    PRIMARY KEY (iface, addr)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS host_totals_seen ON host_totals (last_seen);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB);
";

/// The 16-byte magic every `SQLite` 3 database starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Opens the writer connection on `path`, moving a damaged file aside first.
pub fn open_writer(path: &Path) -> Result<(Connection, Option<MovedAside>), HistoryError> {
    let mut moved = None;
    if let Some(reason) = header_problem(path)? {
        moved = Some(move_aside(path, reason)?);
    }
    match open_checked(path) {
        Ok(conn) => Ok((conn, moved)),
        Err(Checked::Corrupt(reason)) => {
            let m = move_aside(path, reason)?;
            let conn = open_checked(path).map_err(|c| match c {
                Checked::Corrupt(reason) => HistoryError::Open {
                    path: path.to_owned(),
                    what: format!("a fresh database is reported damaged too ({reason})"),
                    source: None,
                },
                Checked::Err(e) => e,
            })?;
            Ok((conn, Some(m)))
        }
        Err(Checked::Err(e)) => Err(e),
    }
}

/// Opens a read-only connection for queries (HTTP handlers); WAL lets it read beside the writer.
pub fn open_reader(path: &Path) -> Result<Connection, HistoryError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, &e))?;
    conn.busy_timeout(std::time::Duration::from_secs(2))
        .map_err(|e| open_error(path, &e))?;
    Ok(conn)
}

/// Opens `path` read-only as an immutable database (`immutable=1`: no locks, no `-shm`), for a
/// file on a read-only file system. The newer-version check applies as for the writer.
pub fn open_immutable(path: &Path) -> Result<Connection, HistoryError> {
    if !path.exists() {
        return Err(HistoryError::Open {
            path: path.to_owned(),
            what: "no history database yet".into(),
            source: None,
        });
    }
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => {
                let _ = write!(uri, "%{b:02X}");
            }
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    let conn = Connection::open_with_flags(
        &uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| open_error(path, &e))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| open_error(path, &e))?;
    if version > SCHEMA_VERSION {
        return Err(HistoryError::NewerVersion {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

/// A file that exists but does not start like a database (or is shorter than its header).
fn header_problem(path: &Path) -> Result<Option<String>, HistoryError> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_open_error(path, e)),
    };
    let meta = f.metadata().map_err(|e| io_open_error(path, e))?;
    if meta.is_dir() {
        return Err(HistoryError::Open {
            path: path.to_owned(),
            what: "it is a directory, not a file; move it away".into(),
            source: None,
        });
    }
    if meta.len() == 0 {
        return Ok(None); // SQLite treats an empty file as a new database.
    }
    let mut head = [0u8; 100];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(io_open_error(path, e)),
        }
    }
    if n < head.len() {
        return Ok(Some(format!("truncated to {n} bytes")));
    }
    if &head[..16] != MAGIC {
        return Ok(Some("file is not a database".into()));
    }
    Ok(None)
}

enum Checked {
    Corrupt(String),
    Err(HistoryError),
}

fn open_checked(path: &Path) -> Result<Connection, Checked> {
    let fail = |e: rusqlite::Error| {
        if is_corruption(&e) {
            Checked::Corrupt(e.to_string())
        } else {
            Checked::Err(open_error(path, &e))
        }
    };
    let conn = Connection::open(path).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(fail)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail)?;
    if version > SCHEMA_VERSION {
        return Err(Checked::Err(HistoryError::NewerVersion {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(fail)?;
    if check != "ok" {
        return Err(Checked::Corrupt(format!("quick_check: {check}")));
    }
    // auto_vacuum only takes effect on a database without tables: set it before the schema.
    // INCREMENTAL lets expiry give freed pages back to the file system, so the size on disk
    // follows the data and the budget can be held.
    conn.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA journal_size_limit = 16777216;",
    )
    .map_err(fail)?;
    if version < SCHEMA_VERSION {
        let tx = conn.unchecked_transaction().map_err(fail)?;
        tx.execute_batch(SCHEMA).map_err(fail)?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(conn)
}

/// Renames `path` to `path.corrupt-<unix time>` (and its WAL beside it; the shared-memory
/// index is derived and removed), never deleting the damaged bytes.
fn move_aside(path: &Path, reason: String) -> Result<MovedAside, HistoryError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut to = PathBuf::from(format!("{}.corrupt-{secs}", path.display()));
    let mut n = 1;
    while to.exists() {
        to = PathBuf::from(format!("{}.corrupt-{secs}.{n}", path.display()));
        n += 1;
    }
    fs::rename(path, &to).map_err(|e| HistoryError::Open {
        path: path.to_owned(),
        what: format!(
            "damaged ({reason}) and cannot be moved aside to {}",
            to.display()
        ),
        source: Some(e),
    })?;
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        let _ = fs::rename(&wal, format!("{}-wal", to.display()));
    }
    let _ = fs::remove_file(format!("{}-shm", path.display()));
    tracing::warn!(
        "history database {} was damaged ({reason}); moved it aside to {} and started a fresh one",
        path.display(),
        to.display()
    );
    Ok(MovedAside { to, reason })
}

fn io_open_error(path: &Path, e: io::Error) -> HistoryError {
    HistoryError::Open {
        path: path.to_owned(),
        what: e.to_string(),
        source: Some(e),
    }
}

fn open_error(path: &Path, e: &rusqlite::Error) -> HistoryError {
    HistoryError::Open {
        path: path.to_owned(),
        what: format!("{}{}", e, super::what_hint(e, path)),
        source: None,
    }
}
