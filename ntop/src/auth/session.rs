//! Login sessions of the dashboard, each with a 256-bit random id (the cookie [`COOKIE`]), a
//! CSRF token, and server-side expiry: [`IDLE_TIMEOUT`] after the last request and
//! [`ABSOLUTE_TIMEOUT`] after login. At most [`MAX_SESSIONS`] exist; a new one evicts the least
//! recently used.
//!
//! With a data directory ([`Sessions::load`]) they survive a restart of the daemon, so a
//! dashboard left open is still logged in when ntop comes back (an upgrade, a reboot): the file
//! [`FILE`] (mode 0600) holds each session's SHA-256 digest (never the id), CSRF token and
//! times, and the digest of the admin password hash they were made under. It is written on
//! login, logout and every change of the password, and when a session's last use is more than
//! [`SAVE_EVERY`] newer than the file's. Sessions made under another password (changed with
//! `ntop -A` while ntop was down), expired ones, and a damaged file are not restored: everyone
//! logs in again.
//!
//! Runs in the HTTP handlers (login, logout, every request with a session cookie). The time is
//! an argument of every method, so tests control it. Sessions are keyed by the SHA-256 of the
//! id, so the map holds no usable cookie values.

use std::{
    collections::HashMap,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::tokens::{hex, unhex};
use crate::store::DataDir;

/// The sessions' file in the data directory.
pub const FILE: &str = "sessions.json";
/// A session's last use is written at most this often (it only moves its idle expiry).
pub const SAVE_EVERY: Duration = Duration::from_mins(1);

/// Name of the session cookie.
pub const COOKIE: &str = "ntop_session";
/// A session ends this long after its last request.
pub const IDLE_TIMEOUT: Duration = Duration::from_mins(30);
/// A session ends this long after login, however active.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_hours(12);
/// Most sessions kept at once.
pub const MAX_SESSIONS: usize = 1000;

/// 32 random bytes from the thread's CSPRNG (`ChaCha`, seeded from the OS), base64url without
/// padding (43 characters).
#[must_use]
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

type Key = [u8; 32];

fn key(id: &str) -> Key {
    Sha256::digest(id.as_bytes()).into()
}

#[derive(Debug)]
struct Session {
    csrf_token: String,
    created: Instant,
    last_used: Instant,
}

/// A session just created: the id goes into the cookie, the CSRF token to the client.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// The session id (the cookie's value).
    pub id: String,
    /// The CSRF token state-changing requests must carry in `X-CSRF-Token`.
    pub csrf_token: String,
}

/// What a request learns about its valid session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it ends unless used again (the earlier of idle and absolute expiry).
    pub expires: Instant,
}

/// The session store.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<Key, Session>>,
    idle: Duration,
    absolute: Duration,
    max: usize,
    /// Where the sessions are kept across restarts; `None`: in memory only.
    persist: Option<Persist>,
}

/// The file behind a [`Sessions`].
#[derive(Debug)]
struct Persist {
    dir: DataDir,
    /// A moment as both clocks tell it: `Instant`s are written as wall-clock times through it.
    origin: (Instant, SystemTime),
    /// SHA-256 of the admin password hash the sessions were made under.
    password: Mutex<Key>,
    /// When the file was last written (`None`: not yet).
    saved: Mutex<Option<Instant>>,
    /// A failed write was logged (logged once until a write succeeds).
    warned: AtomicBool,
}

/// The file: `{"version": 1, "password_sha256": "…", "sessions": [...]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    password_sha256: String,
    sessions: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    /// SHA-256 of the session id, hex.
    sha256: String,
    csrf_token: String,
    /// Milliseconds since the Unix epoch.
    created: u64,
    last_used: u64,
}

/// The SHA-256 of an admin password hash (PHC string), which the file names its sessions by.
#[must_use]
pub fn password_digest(phc: &str) -> [u8; 32] {
    key(phc)
}

impl Persist {
    fn wall(&self, t: Instant) -> u64 {
        let (i0, w0) = self.origin;
        let w = if t >= i0 {
            w0 + (t - i0)
        } else {
            w0.checked_sub(i0 - t).unwrap_or(UNIX_EPOCH)
        };
        w.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// The `Instant` of a wall-clock time (ms); times after the origin (a clock set back) are
    /// taken as the origin.
    fn instant(&self, ms: u64) -> Instant {
        let (i0, w0) = self.origin;
        let w = UNIX_EPOCH + Duration::from_millis(ms);
        let ago = w0.duration_since(w).unwrap_or_default();
        i0.checked_sub(ago).unwrap_or(i0)
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new()
    }
}

impl Sessions {
    /// A store with the default limits.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limits(IDLE_TIMEOUT, ABSOLUTE_TIMEOUT, MAX_SESSIONS)
    }

    /// A store with other limits (tests).
    #[must_use]
    pub fn with_limits(idle: Duration, absolute: Duration, max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
            absolute,
            max: max.max(1),
            persist: None,
        }
    }

    /// The store kept in `dir` ([`FILE`]), with the sessions saved there that are still valid
    /// at `now` (wall-clock `wall`) and were made under the admin password whose hash has the
    /// digest `password` (see [`password_digest`]). A missing, damaged or unreadable file gives
    /// an empty store (logged): everyone logs in again.
    #[must_use]
    pub fn load(dir: DataDir, password: Key, now: Instant, wall: SystemTime) -> Self {
        let mut store = Self::new();
        let persist = Persist {
            dir,
            origin: (now, wall),
            password: Mutex::new(password),
            saved: Mutex::new(None),
            warned: AtomicBool::new(false),
        };
        match persist.dir.read(FILE) {
            Ok(None) => {}
            Ok(Some(bytes)) => match serde_json::from_slice::<File>(&bytes) {
                Ok(file) if file.version == 1 => {
                    if unhex(&file.password_sha256) == Some(password) {
                        let map = store.map.get_mut().unwrap_or_else(PoisonError::into_inner);
                        for r in file.sessions {
                            let Some(k) = unhex(&r.sha256) else { continue };
                            let session = Session {
                                csrf_token: r.csrf_token,
                                created: persist.instant(r.created),
                                last_used: persist.instant(r.last_used),
                            };
                            map.insert(k, session);
                        }
                        let (idle, absolute) = (store.idle, store.absolute);
                        map.retain(|_, s| {
                            now.saturating_duration_since(s.last_used) < idle
                                && now.saturating_duration_since(s.created) < absolute
                        });
                        if !map.is_empty() {
                            tracing::info!(
                                sessions = map.len(),
                                "dashboard sessions restored from {}",
                                persist.dir.file(FILE).display()
                            );
                        }
                    } else {
                        tracing::info!(
                            "the admin password changed while ntop was down: the saved \
                             dashboard sessions end, everyone logs in again"
                        );
                    }
                }
                Ok(file) => tracing::warn!(
                    "{} is of version {}, which this ntop does not know: its sessions are \
                     ignored, everyone logs in again",
                    persist.dir.file(FILE).display(),
                    file.version
                ),
                Err(e) => tracing::warn!(
                    "{} is damaged ({e}): its sessions are ignored, everyone logs in again; \
                     ntop replaces the file at the next login",
                    persist.dir.file(FILE).display()
                ),
            },
            Err(e) => tracing::warn!("{e}: the saved dashboard sessions are ignored"),
        }
        store.persist = Some(persist);
        store
    }

    /// The admin password changed (its hash has the digest `password`): sessions kept from
    /// now on are made under it. (The caller ends the other sessions.)
    pub fn set_password(&self, password: Key) {
        if let Some(p) = &self.persist {
            *p.password.lock().unwrap_or_else(PoisonError::into_inner) = password;
        }
    }

    /// Writes the file, if there is one, when `force` or the last write is [`SAVE_EVERY`] old.
    /// A failure is logged (once until a write succeeds); the sessions go on in memory.
    fn save(&self, now: Instant, force: bool) {
        let Some(p) = &self.persist else { return };
        // A request that only refreshes a last use does not wait for another's write.
        let mut saved = match p.saved.try_lock() {
            Ok(saved) => saved,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if !force => return,
            Err(std::sync::TryLockError::WouldBlock) => {
                p.saved.lock().unwrap_or_else(PoisonError::into_inner)
            }
        };
        if !force && saved.is_some_and(|t| now.saturating_duration_since(t) < SAVE_EVERY) {
            return;
        }
        let file = File {
            version: 1,
            password_sha256: hex(&*p.password.lock().unwrap_or_else(PoisonError::into_inner)),
            sessions: self
                .lock()
                .iter()
                .filter(|(_, s)| self.alive(s, now))
                .map(|(k, s)| Record {
                    sha256: hex(k),
                    csrf_token: s.csrf_token.clone(),
                    created: p.wall(s.created),
                    last_used: p.wall(s.last_used),
                })
                .collect(),
        };
        let json = serde_json::to_vec(&file).unwrap_or_default();
        match p.dir.write_private(FILE, &json) {
            Ok(()) => {
                *saved = Some(now);
                p.warned.store(false, Ordering::Relaxed);
            }
            Err(e) => {
                if !p.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{e}; dashboard sessions go on, but a restart of ntop will end them"
                    );
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Session>> {
        // A panic while holding the lock leaves a consistent map (every update is one insert
        // or remove).
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_used) < self.idle
            && now.saturating_duration_since(s.created) < self.absolute
    }

    /// Creates a session at `now`. Expired sessions are dropped first; if the store is still
    /// full, the least recently used session is evicted.
    pub fn create(&self, now: Instant) -> NewSession {
        let session = NewSession {
            id: random_token(),
            csrf_token: random_token(),
        };
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, s| self.alive(s, now));
        }
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_used).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            key(&session.id),
            Session {
                csrf_token: session.csrf_token.clone(),
                created: now,
                last_used: now,
            },
        );
        drop(map);
        self.save(now, true);
        session
    }

    /// The session `id` if it is valid at `now`, marking it used. An expired session is
    /// removed.
    pub fn validate(&self, id: &str, now: Instant) -> Option<SessionInfo> {
        let k = key(id);
        let mut map = self.lock();
        let session = map.get_mut(&k)?;
        if !self.alive(session, now) {
            map.remove(&k);
            return None;
        }
        session.last_used = session.last_used.max(now);
        let info = SessionInfo {
            csrf_token: session.csrf_token.clone(),
            expires: (session.last_used + self.idle).min(session.created + self.absolute),
        };
        drop(map);
        self.save(now, false);
        Some(info)
    }

    /// Ends the session `id`; whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        let removed = self.lock().remove(&key(id)).is_some();
        if removed {
            self.save(Instant::now(), true);
        }
        removed
    }

    /// Ends every session (the admin password changed).
    pub fn clear(&self) {
        self.lock().clear();
        self.save(Instant::now(), true);
    }

    /// Ends every session but `keep` (the one that changed the password); returns how many
    /// ended.
    pub fn clear_except(&self, keep: Option<&str>) -> usize {
        let keep = keep.map(key);
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| Some(*k) == keep);
        let ended = before - map.len();
        drop(map);
        self.save(Instant::now(), true);
        ended
    }

    /// Sessions held, expired ones included until they are looked up or evicted.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `Set-Cookie` value for session `id`: `HttpOnly`, `SameSite=Strict`, `Path=/`, and
/// `Secure` when the response goes out over HTTPS. No `Max-Age`: the browser forgets it when
/// it closes, the server after the timeouts.
#[must_use]
pub fn cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that deletes the session cookie.
#[must_use]
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The values of every `ntop_session` cookie in `Cookie` header values (a browser may send
/// several when paths differ). Values that cannot be session ids are skipped.
pub fn cookie_values<'a>(headers: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE
                && value.len() == 43
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .then_some(value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_mins(1);

    #[test]
    fn ids_are_random_256_bit_base64url() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 32);
        assert!(constant_time_eq(&a, &a.clone()));
        assert!(!constant_time_eq(&a, &b));
        assert!(!constant_time_eq("abc", "abcd"));
    }

    #[test]
    fn idle_expiry_is_pushed_back_by_use() {
        let t0 = Instant::now();
        let store = Sessions::new();
        let s = store.create(t0);
        let info = store.validate(&s.id, t0 + 29 * MIN).unwrap();
        assert_eq!(info.csrf_token, s.csrf_token);
        assert_eq!(info.expires, t0 + 59 * MIN);
        assert!(store.validate(&s.id, t0 + 58 * MIN).is_some());
        assert!(
            store.validate(&s.id, t0 + 88 * MIN).is_none(),
            "30 min idle"
        );
        assert!(store.is_empty(), "an expired session is removed");
        assert!(
            store.validate(&s.id, t0 + 59 * MIN).is_none(),
            "removed for good"
        );
    }

    #[test]
    fn absolute_expiry_ends_an_active_session() {
        let t0 = Instant::now();
        let store = Sessions::new();
        let s = store.create(t0);
        let mut t = t0;
        while t + 20 * MIN < t0 + ABSOLUTE_TIMEOUT {
            t += 20 * MIN;
            assert!(store.validate(&s.id, t).is_some(), "{:?}", t - t0);
        }
        let info = store.validate(&s.id, t).unwrap();
        assert_eq!(info.expires, t0 + ABSOLUTE_TIMEOUT);
        assert!(store.validate(&s.id, t0 + ABSOLUTE_TIMEOUT).is_none());
    }

    #[test]
    fn unknown_and_removed_sessions_are_invalid() {
        let t0 = Instant::now();
        let store = Sessions::new();
        let s = store.create(t0);
        assert!(store.validate(&random_token(), t0).is_none());
        assert!(store.remove(&s.id));
        assert!(!store.remove(&s.id));
        assert!(store.validate(&s.id, t0).is_none());
    }

    #[test]
    #[allow(clippy::many_single_char_names)]
    fn the_store_is_bounded_and_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let store = Sessions::with_limits(IDLE_TIMEOUT, ABSOLUTE_TIMEOUT, 3);
        let a = store.create(t0);
        let b = store.create(t0 + MIN);
        let c = store.create(t0 + 2 * MIN);
        assert!(
            store.validate(&a.id, t0 + 3 * MIN).is_some(),
            "a is now recent"
        );
        let d = store.create(t0 + 4 * MIN);
        assert_eq!(store.len(), 3);
        assert!(
            store.validate(&b.id, t0 + 5 * MIN).is_none(),
            "b was evicted"
        );
        for s in [&a, &c, &d] {
            assert!(store.validate(&s.id, t0 + 5 * MIN).is_some());
        }
        // Expired sessions go first, however many.
        let e = store.create(t0 + 100 * MIN);
        assert_eq!(store.len(), 1);
        assert!(store.validate(&e.id, t0 + 100 * MIN).is_some());
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie("abc", false),
            "ntop_session=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        assert_eq!(
            cookie("abc", true),
            "ntop_session=abc; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        assert_eq!(
            clear_cookie(true),
            "ntop_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/; Secure"
        );
        let id = random_token();
        let header = format!("theme=dark; ntop_session=short; {COOKIE}={id};other=1");
        assert_eq!(cookie_values([header.as_str()].into_iter()), [id.as_str()]);
        assert!(cookie_values(["ntop_session"].into_iter()).is_empty());
    }

    /// A restart: the same sessions, with their CSRF tokens and expiry, from the file alone.
    #[test]
    fn sessions_survive_a_restart_under_the_same_password() {
        let dir = crate::auth::tests::scratch("sessions-restart");
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let pw = password_digest("$argon2id$one");
        let store = Sessions::load(dir.clone(), pw, t0, w0);
        let kept = store.create(t0);
        let gone = store.create(t0);
        assert!(store.remove(&gone.id));
        assert!(
            store.validate(&kept.id, t0 + 10 * MIN).is_some(),
            "saved: 10 min > SAVE_EVERY"
        );
        let text = String::from_utf8(dir.read(FILE).unwrap().unwrap()).unwrap();
        assert!(
            !text.contains(&kept.id),
            "the file holds no usable session id"
        );
        let mode = std::fs::metadata(dir.file(FILE)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        // The next process has other clocks. Last used 10 min after login: idle for 31 min at
        // 41 min (gone), for 29 min at 39 min (restored, with its CSRF token).
        let gone_by_now = Sessions::load(dir.clone(), pw, Instant::now(), w0 + 41 * MIN);
        assert!(gone_by_now.is_empty());
        let t1 = Instant::now() + 5 * MIN;
        let again = Sessions::load(dir.clone(), pw, t1, w0 + 39 * MIN);
        assert_eq!(again.len(), 1);
        let info = again.validate(&kept.id, t1).expect("restored");
        assert_eq!(info.csrf_token, kept.csrf_token);
        assert!(again.validate(&gone.id, t1).is_none());
        // That use was saved (the process's first save), so it counts after the next restart:
        // at 60 min, 21 min after it, the session is still valid.
        let third = Sessions::load(dir.clone(), pw, Instant::now(), w0 + 60 * MIN);
        assert!(third.validate(&kept.id, Instant::now()).is_some());
        // Logged in 12 h ago by the wall clock of the next start: gone, however recently used.
        let late = Sessions::load(dir.clone(), pw, Instant::now(), w0 + ABSOLUTE_TIMEOUT);
        assert!(late.is_empty());
    }

    #[test]
    fn another_password_or_a_damaged_file_restores_nothing() {
        let dir = crate::auth::tests::scratch("sessions-password");
        let (t0, w0) = (Instant::now(), SystemTime::now());
        let store = Sessions::load(dir.clone(), password_digest("$argon2id$one"), t0, w0);
        let s = store.create(t0);
        // Changed with `ntop -A` while ntop was down.
        let other = Sessions::load(dir.clone(), password_digest("$argon2id$two"), t0, w0);
        assert!(other.is_empty());
        assert!(other.validate(&s.id, t0).is_none());
        // Changed at run time: the kept session is saved under the new password.
        let store = Sessions::load(dir.clone(), password_digest("$argon2id$one"), t0, w0);
        store.set_password(password_digest("$argon2id$two"));
        assert_eq!(store.clear_except(Some(&s.id)), 0);
        let after = Sessions::load(dir.clone(), password_digest("$argon2id$two"), t0, w0);
        assert!(after.validate(&s.id, t0).is_some());
        // Damaged: nothing, and the next login writes a good file.
        dir.write_private(FILE, b"{not json").unwrap();
        let damaged = Sessions::load(dir.clone(), password_digest("$argon2id$two"), t0, w0);
        assert!(damaged.is_empty());
        let n = damaged.create(t0);
        let fixed = Sessions::load(dir.clone(), password_digest("$argon2id$two"), t0, w0);
        assert!(fixed.validate(&n.id, t0).is_some());
    }
}
