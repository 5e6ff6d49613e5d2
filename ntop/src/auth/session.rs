//! Login sessions of the dashboard: kept in memory only (a restart logs everyone out), each
//! with a 256-bit random id (the cookie [`COOKIE`]), a CSRF token, and server-side expiry:
//! [`IDLE_TIMEOUT`] after the last request and [`ABSOLUTE_TIMEOUT`] after login. At most
//! [`MAX_SESSIONS`] exist; a new one evicts the least recently used.
//!
//! Runs in the HTTP handlers (login, logout, every request with a session cookie). The time is
//! an argument of every method, so tests control it. Sessions are keyed by the SHA-256 of the
//! id, so the map holds no usable cookie values.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

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
        Some(SessionInfo {
            csrf_token: session.csrf_token.clone(),
            expires: (session.last_used + self.idle).min(session.created + self.absolute),
        })
    }

    /// Ends the session `id`; whether it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(&key(id)).is_some()
    }

    /// Ends every session (the admin password changed).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Ends every session but `keep` (the one that changed the password); returns how many
    /// ended.
    pub fn clear_except(&self, keep: Option<&str>) -> usize {
        let keep = keep.map(key);
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| Some(*k) == keep);
        before - map.len()
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
}
