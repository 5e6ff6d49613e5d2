//! API tokens for scripts and Prometheus: `Authorization: Bearer ntop_...`.
//!
//! An admin creates one (`POST /api/v1/tokens`), sees its secret once, lists them without
//! secrets and revokes them. The data directory's [`FILE`] (0600, replaced atomically) holds,
//! per token, an id, a name, the creation and last-use times and only the SHA-256 digest of
//! the secret: the secrets are 256-bit random, so a plain digest is enough (nothing to
//! brute-force), and checking a token costs one SHA-256, not an argon2 hash.
//!
//! Runs at startup ([`Tokens::load`]) and in the HTTP handlers: checking a bearer token on
//! every request (memory only), and create, revoke and the occasional save of last-use times
//! (file writes: callers run them on tokio's blocking pool).

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{AuthError, session::random_token};
use crate::{http::models::Timestamp, store::DataDir};

/// The file in the data directory.
pub const FILE: &str = "api_tokens.json";
/// Every token starts with this, so that it is recognizable (secret scanners, logs).
pub const PREFIX: &str = "ntop_";
/// Most tokens at once.
pub const MAX_TOKENS: usize = 100;
/// Longest token name, in characters.
pub const MAX_NAME: usize = 100;
/// A token's last use is written to the file when it is at least this much newer than the
/// one on file (writing on every request would fsync per request).
pub const LAST_USED_RESOLUTION: Duration = Duration::from_hours(1);

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// Lower-case hex of `bytes` (digests in the data directory's files).
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The 32 bytes of 64 hex digits; `None` for anything else.
pub(super) fn unhex(s: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The file: `{"version": 1, "tokens": [...]}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    tokens: Vec<Record>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    id: String,
    name: String,
    /// Hex SHA-256 of the whole token (prefix included).
    sha256: String,
    created: String,
    last_used: Option<String>,
}

#[derive(Clone, Debug)]
struct Entry {
    id: String,
    name: String,
    digest: Digest,
    created: SystemTime,
    last_used: Option<SystemTime>,
    /// `last_used` as last written to the file.
    saved_last_used: Option<SystemTime>,
}

/// A token as listed: never the secret.
#[derive(Clone, Debug, Serialize)]
pub struct TokenInfo {
    /// Public id (for `DELETE /api/v1/tokens/{id}`).
    pub id: String,
    /// The admin's name for it.
    pub name: String,
    /// When it was created.
    pub created: Timestamp,
    /// When it last authenticated a request (to within [`LAST_USED_RESOLUTION`] across
    /// restarts), `null` if never.
    pub last_used: Option<Timestamp>,
}

/// A token just created: the only time its secret is shown.
#[derive(Clone, Serialize)]
pub struct NewToken {
    /// Public id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The secret, `ntop_` and 43 base64url characters.
    pub token: String,
    /// When it was created.
    pub created: Timestamp,
}

/// A successful bearer check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The token's id.
    pub id: String,
    /// Whether the last-use time should be written to the file ([`Tokens::save`]).
    pub save: bool,
}

/// The token store.
#[derive(Debug)]
pub struct Tokens {
    dir: DataDir,
    entries: Mutex<Vec<Entry>>,
    /// Serializes writers so that a later snapshot is never overwritten by an earlier one.
    writer: Mutex<()>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single push, remove or field store: a poisoned lock is consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tokens {
    /// Loads the tokens from the data directory; none if the file does not exist.
    ///
    /// # Errors
    /// [`AuthError::CorruptTokens`] when the file cannot be parsed, [`AuthError::Store`] when
    /// it cannot be read.
    pub fn load(dir: DataDir) -> Result<Self, AuthError> {
        let entries = match dir.read(FILE)? {
            None => Vec::new(),
            Some(bytes) => parse(&bytes).map_err(|reason| AuthError::CorruptTokens {
                path: dir.file(FILE),
                reason,
            })?,
        };
        Ok(Self {
            dir,
            entries: Mutex::new(entries),
            writer: Mutex::new(()),
        })
    }

    /// Creates a token named `name` (may be empty) and writes the file.
    ///
    /// # Errors
    /// [`AuthError::BadRequest`] for a name that is too long or has control characters,
    /// [`AuthError::TooManyTokens`], [`AuthError::Store`] when the file cannot be written (the
    /// token is then not created).
    pub fn create(&self, name: &str, now: SystemTime) -> Result<NewToken, AuthError> {
        if name.chars().count() > MAX_NAME {
            return Err(AuthError::BadRequest(format!(
                "the token name is longer than {MAX_NAME} characters; choose a shorter one"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(AuthError::BadRequest(
                "the token name contains control characters; use printable text".into(),
            ));
        }
        let token = format!("{PREFIX}{}", random_token());
        let mut id_bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id_bytes);
        let entry = Entry {
            id: hex(&id_bytes),
            name: name.to_owned(),
            digest: digest(&token),
            created: now,
            last_used: None,
            saved_last_used: None,
        };
        let _writer = relock(&self.writer);
        let mut next = relock(&self.entries).clone();
        if next.len() >= MAX_TOKENS {
            return Err(AuthError::TooManyTokens { max: MAX_TOKENS });
        }
        next.push(entry.clone());
        self.write(&mut next)?;
        relock(&self.entries).push(entry.clone());
        Ok(NewToken {
            id: entry.id,
            name: entry.name,
            token,
            created: Timestamp(now),
        })
    }

    /// The tokens, oldest first.
    #[must_use]
    pub fn list(&self) -> Vec<TokenInfo> {
        relock(&self.entries)
            .iter()
            .map(|e| TokenInfo {
                id: e.id.clone(),
                name: e.name.clone(),
                created: Timestamp(e.created),
                last_used: e.last_used.map(Timestamp),
            })
            .collect()
    }

    /// Revokes token `id` and writes the file. The token stops working at once.
    ///
    /// # Errors
    /// [`AuthError::TokenNotFound`], [`AuthError::Store`] (the token is then still revoked in
    /// memory, but would come back after a restart).
    pub fn revoke(&self, id: &str) -> Result<(), AuthError> {
        let _writer = relock(&self.writer);
        let mut next = {
            let mut entries = relock(&self.entries);
            let before = entries.len();
            entries.retain(|e| e.id != id);
            if entries.len() == before {
                return Err(AuthError::TokenNotFound(id.to_owned()));
            }
            entries.clone()
        };
        self.write(&mut next)
    }

    /// Checks a bearer token, recording its use at `now`. The digest comparison is constant
    /// time and visits every token.
    pub fn authenticate(&self, token: &str, now: SystemTime) -> Option<Authenticated> {
        if !token.starts_with(PREFIX) {
            return None;
        }
        let d = digest(token);
        let mut entries = relock(&self.entries);
        let mut found = None;
        for (i, e) in entries.iter().enumerate() {
            let diff = e
                .digest
                .iter()
                .zip(&d)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(i);
            }
        }
        let e = &mut entries[found?];
        e.last_used = Some(e.last_used.map_or(now, |t| t.max(now)));
        let save = e.saved_last_used.is_none_or(|saved| {
            now.duration_since(saved)
                .is_ok_and(|d| d >= LAST_USED_RESOLUTION)
        });
        Some(Authenticated {
            id: e.id.clone(),
            save,
        })
    }

    /// Writes the file with the current last-use times.
    ///
    /// # Errors
    /// [`AuthError::Store`].
    pub fn save(&self) -> Result<(), AuthError> {
        let _writer = relock(&self.writer);
        let mut next = relock(&self.entries).clone();
        self.write(&mut next)
    }

    /// Writes `entries` (under the writer lock), then records their last-use times as saved
    /// in memory.
    fn write(&self, entries: &mut [Entry]) -> Result<(), AuthError> {
        let file = File {
            version: 1,
            tokens: entries
                .iter()
                .map(|e| Record {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    sha256: hex(&e.digest),
                    created: format_time(e.created),
                    last_used: e.last_used.map(format_time),
                })
                .collect(),
        };
        let mut json = serde_json::to_vec_pretty(&file)
            .map_err(|e| AuthError::Internal(format!("cannot serialize the tokens: {e}")))?;
        json.push(b'\n');
        self.dir.write_private(FILE, &json)?;
        let mut live = relock(&self.entries);
        for written in entries.iter_mut() {
            if let Some(e) = live.iter_mut().find(|e| e.id == written.id) {
                e.saved_last_used = written.last_used;
            }
        }
        Ok(())
    }
}

fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if file.version != 1 {
        return Err(format!("unknown version {}", file.version));
    }
    let time = |s: &str| humantime::parse_rfc3339(s).map_err(|e| format!("bad time `{s}`: {e}"));
    let mut entries: Vec<Entry> = Vec::with_capacity(file.tokens.len());
    for r in file.tokens {
        if entries.iter().any(|e| e.id == r.id) {
            return Err(format!("token id `{}` appears twice", r.id));
        }
        let last_used = r.last_used.as_deref().map(time).transpose()?;
        entries.push(Entry {
            digest: unhex(&r.sha256)
                .ok_or_else(|| format!("token `{}`: sha256 is not 64 hex digits", r.id))?,
            created: time(&r.created)?,
            last_used,
            saved_last_used: last_used,
            id: r.id,
            name: r.name,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt as _, time::UNIX_EPOCH};

    use super::*;
    use crate::auth::tests::scratch;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn create_authenticate_revoke_and_reload() {
        let dir = scratch("tokens");
        let tokens = Tokens::load(dir.clone()).unwrap();
        assert!(tokens.list().is_empty());
        assert!(!dir.exists(FILE), "nothing written before the first token");

        let a = tokens.create("prometheus", at(0)).unwrap();
        let b = tokens.create("", at(1)).unwrap();
        assert!(
            a.token.starts_with("ntop_") && a.token.len() == 48,
            "{}",
            a.token
        );
        assert_eq!(a.id.len(), 16);
        assert_ne!(a.id, b.id);
        let text = fs::read_to_string(dir.file(FILE)).unwrap();
        assert!(!text.contains(&a.token[5..]), "no secret on disk");
        assert!(text.contains(&hex(&digest(&a.token))));
        assert_eq!(fs::metadata(dir.file(FILE)).unwrap().mode() & 0o777, 0o600);

        let ok = tokens.authenticate(&a.token, at(10)).unwrap();
        assert_eq!(
            ok,
            Authenticated {
                id: a.id.clone(),
                save: true
            }
        );
        assert!(tokens.authenticate("ntop_wrong", at(10)).is_none());
        assert!(
            tokens.authenticate(&a.token[5..], at(10)).is_none(),
            "prefix needed"
        );
        let list = tokens.list();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "prometheus");
        assert_eq!(list[0].last_used, Some(Timestamp(at(10))));
        assert_eq!(list[1].last_used, None);

        tokens.save().unwrap();
        let ok = tokens.authenticate(&a.token, at(20)).unwrap();
        assert!(!ok.save, "saved 10 s ago");
        let ok = tokens.authenticate(&a.token, at(10 + 3600)).unwrap();
        assert!(ok.save, "an hour later");

        tokens.revoke(&a.id).unwrap();
        assert!(tokens.authenticate(&a.token, at(30)).is_none());
        assert!(matches!(
            tokens.revoke(&a.id),
            Err(AuthError::TokenNotFound(id)) if id == a.id
        ));

        let reloaded = Tokens::load(dir.clone()).unwrap();
        let list = reloaded.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, b.id);
        assert_eq!(list[0].created, Timestamp(at(1)));
        assert!(reloaded.authenticate(&b.token, at(40)).is_some());
        assert!(reloaded.authenticate(&a.token, at(40)).is_none());
    }

    #[test]
    fn last_use_survives_a_restart() {
        let dir = scratch("tokens-last-used");
        let tokens = Tokens::load(dir.clone()).unwrap();
        let a = tokens.create("x", at(0)).unwrap();
        assert!(tokens.authenticate(&a.token, at(5)).unwrap().save);
        tokens.save().unwrap();
        let reloaded = Tokens::load(dir.clone()).unwrap();
        assert_eq!(reloaded.list()[0].last_used, Some(Timestamp(at(5))));
        assert!(!reloaded.authenticate(&a.token, at(6)).unwrap().save);
    }

    #[test]
    fn names_and_limits() {
        let dir = scratch("tokens-limits");
        let tokens = Tokens::load(dir.clone()).unwrap();
        assert!(matches!(
            tokens.create(&"x".repeat(MAX_NAME + 1), at(0)),
            Err(AuthError::BadRequest(_))
        ));
        assert!(matches!(
            tokens.create("a\nb", at(0)),
            Err(AuthError::BadRequest(_))
        ));
        tokens.create(&"é".repeat(MAX_NAME), at(0)).unwrap();
        for i in 1..MAX_TOKENS {
            tokens.create(&format!("t{i}"), at(0)).unwrap();
        }
        assert!(matches!(
            tokens.create("one more", at(0)),
            Err(AuthError::TooManyTokens { max: MAX_TOKENS })
        ));
    }

    #[test]
    fn a_corrupt_file_is_named() {
        let dir = scratch("tokens-corrupt");
        for (content, reason) in [
            ("{".to_owned(), "EOF"),
            (r#"{"version":2,"tokens":[]}"#.to_owned(), "unknown version 2"),
            (
                r#"{"version":1,"tokens":[{"id":"a","name":"","sha256":"zz","created":"2023-11-14T22:13:20.000Z","last_used":null}]}"#.to_owned(),
                "not 64 hex digits",
            ),
            (
                format!(
                    r#"{{"version":1,"tokens":[{{"id":"a","name":"","sha256":"{}","created":"yesterday","last_used":null}}]}}"#,
                    "0".repeat(64)
                ),
                "bad time",
            ),
        ] {
            fs::write(dir.file(FILE), content).unwrap();
            let err = Tokens::load(dir.clone()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, AuthError::CorruptTokens { .. }), "{msg}");
            assert!(msg.contains(&dir.file(FILE).display().to_string()), "{msg}");
            assert!(msg.contains(reason), "{msg}");
            assert!(msg.contains("delete it to revoke every API token"), "{msg}");
        }
    }

    #[test]
    fn hex_round_trip() {
        let d = digest("x");
        assert_eq!(unhex(&hex(&d)), Some(d));
        assert_eq!(unhex(&"g".repeat(64)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }
}
