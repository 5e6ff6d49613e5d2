//! The admin password. Only an argon2id hash is stored (a PHC string with its random salt and
//! parameters), in the data directory's [`FILE`] (mode 0600, replaced atomically).
//!
//! Runs in `ntop -A` / `--set-admin-password` ([`set_admin_password`]), at startup
//! ([`AdminPassword::load`]), for every login and HTTP Basic check
//! ([`AdminPassword::verify`], about 30 ms and 19 MiB each: callers in the HTTP server run it
//! on tokio's blocking pool behind a semaphore, see [`Auth::verify_password`]), and for
//! `POST /api/v1/password` ([`Auth::change_password`], hashing and writing on the blocking
//! pool too).

use std::{
    fmt,
    sync::{Arc, PoisonError},
};

use argon2::{
    ARGON2ID_IDENT, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _,
};

use super::{Auth, AuthError};
use crate::store::DataDir;

/// The file in the data directory that holds the hash.
pub const FILE: &str = "ntop_pw";
/// The shortest admin password accepted, in characters.
pub const MIN_LEN: usize = 8;

/// Checks that `password` may become the admin password.
///
/// # Errors
/// [`AuthError::PasswordEmpty`] or [`AuthError::PasswordTooShort`].
pub fn check_new(password: &str) -> Result<(), AuthError> {
    let len = password.chars().count();
    if len == 0 {
        Err(AuthError::PasswordEmpty { min: MIN_LEN })
    } else if len < MIN_LEN {
        Err(AuthError::PasswordTooShort { len, min: MIN_LEN })
    } else {
        Ok(())
    }
}

/// Hashes `password` (after [`check_new`]) and stores the hash in the data directory,
/// replacing any previous one.
///
/// # Errors
/// [`AuthError::PasswordEmpty`], [`AuthError::PasswordTooShort`], [`AuthError::Hash`], or
/// [`AuthError::Store`] when the file cannot be written.
pub fn set_admin_password(dir: &DataDir, password: &str) -> Result<(), AuthError> {
    let hash = AdminPassword::hash(password)?;
    dir.write_private(FILE, format!("{}\n", hash.phc).as_bytes())?;
    Ok(())
}

impl Auth {
    /// Makes `new` the admin password (after [`check_new`]): hashes it and writes the hash to
    /// the data directory on the blocking pool (waiting for a hasher permit), then uses it, and
    /// ends every session but `keep_session` (the session id of the caller, if it has one).
    /// Returns how many sessions ended. The caller checks the current password first.
    ///
    /// # Errors
    /// [`AuthError::PasswordEmpty`], [`AuthError::PasswordTooShort`], [`AuthError::Hash`],
    /// [`AuthError::Store`] when the file cannot be written (the old password stays), or
    /// [`AuthError::Internal`].
    pub async fn change_password(
        &self,
        new: String,
        keep_session: Option<&str>,
    ) -> Result<usize, AuthError> {
        check_new(&new)?;
        let permit = Arc::clone(&self.hashers)
            .acquire_owned()
            .await
            .map_err(|e| AuthError::Internal(format!("hasher permits: {e}")))?;
        let dir = self.dir.clone();
        let hash = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let hash = AdminPassword::hash(&new)?;
            dir.write_private(FILE, format!("{}\n", hash.phc).as_bytes())?;
            Ok::<_, AuthError>(hash)
        })
        .await
        .map_err(|e| AuthError::Internal(format!("changing the password failed: {e}")))??;
        self.sessions
            .set_password(super::session::password_digest(hash.as_phc()));
        *self
            .password
            .write()
            .unwrap_or_else(PoisonError::into_inner) = hash;
        Ok(self.sessions.clear_except(keep_session))
    }
}

/// Whether an admin password has been set (the file exists; [`AdminPassword::load`] checks
/// that it is valid).
#[must_use]
pub fn admin_password_set(dir: &DataDir) -> bool {
    dir.exists(FILE)
}

/// Loads the hash from `dir` and checks `password` against it.
///
/// # Errors
/// As [`AdminPassword::load`].
pub fn verify(dir: &DataDir, password: &str) -> Result<bool, AuthError> {
    Ok(AdminPassword::load(dir)?.verify(password))
}

/// A validated argon2id hash of the admin password.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminPassword {
    phc: String,
}

impl fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminPassword(argon2id, redacted)")
    }
}

impl AdminPassword {
    /// Hashes `password` with argon2id, default parameters and a random salt.
    ///
    /// # Errors
    /// [`AuthError::PasswordEmpty`], [`AuthError::PasswordTooShort`] or [`AuthError::Hash`].
    pub fn hash(password: &str) -> Result<Self, AuthError> {
        check_new(password)?;
        let phc = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| AuthError::Hash(e.to_string()))?
            .to_string();
        Ok(Self { phc })
    }

    /// Loads the hash from the data directory.
    ///
    /// # Errors
    /// [`AuthError::NoPassword`] when none is set, [`AuthError::CorruptPassword`] when the
    /// file is not a valid argon2id hash, [`AuthError::Store`] when it cannot be read.
    pub fn load(dir: &DataDir) -> Result<Self, AuthError> {
        let corrupt = |reason: String| AuthError::CorruptPassword {
            path: dir.file(FILE),
            dir: dir.path().to_owned(),
            reason,
        };
        let Some(bytes) = dir.read(FILE)? else {
            return Err(AuthError::NoPassword {
                dir: dir.path().to_owned(),
            });
        };
        let text = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
        Self::parse(text.trim()).map_err(corrupt)
    }

    /// Validates a PHC string: argon2id, with parameters argon2 accepts, a salt and a hash.
    fn parse(phc: &str) -> Result<Self, String> {
        if phc.is_empty() {
            return Err("the file is empty".into());
        }
        let hash = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
        if hash.algorithm != ARGON2ID_IDENT {
            return Err(format!("algorithm `{}`, not argon2id", hash.algorithm));
        }
        Params::try_from(&hash).map_err(|e| format!("bad parameters: {e}"))?;
        if hash.salt.is_none() || hash.hash.is_none() {
            return Err("no salt or no hash".into());
        }
        Ok(Self {
            phc: phc.to_owned(),
        })
    }

    /// Whether `password` is the admin password. The comparison of the hashes is constant
    /// time (argon2's `Output` comparison); the cost is one argon2id hash.
    #[must_use]
    pub fn verify(&self, password: &str) -> bool {
        PasswordHash::new(&self.phc).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
    }

    /// The PHC string (`$argon2id$v=19$m=...`).
    #[must_use]
    pub fn as_phc(&self) -> &str {
        &self.phc
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::MetadataExt as _};

    use super::*;
    use crate::auth::tests::scratch;

    #[test]
    fn set_then_verify() {
        let dir = scratch("pw-set");
        assert!(!admin_password_set(&dir));
        assert!(matches!(
            verify(&dir, "whatever1"),
            Err(AuthError::NoPassword { .. })
        ));
        set_admin_password(&dir, "correct horse").unwrap();
        assert!(admin_password_set(&dir));
        let text = fs::read_to_string(dir.file(FILE)).unwrap();
        assert!(text.starts_with("$argon2id$v=19$"), "{text}");
        assert!(!text.contains("correct horse"));
        assert_eq!(fs::metadata(dir.file(FILE)).unwrap().mode() & 0o777, 0o600);

        // Four argon2 runs in all (~0.5 s each in unoptimized builds).
        let hash = AdminPassword::load(&dir).unwrap();
        assert!(hash.verify("correct horse"));
        assert!(!verify(&dir, "correct horsE").unwrap());
        assert_eq!(format!("{hash:?}"), "AdminPassword(argon2id, redacted)");
        let again = AdminPassword::hash("correct horse").unwrap();
        assert_ne!(again.as_phc(), hash.as_phc(), "a new salt every time");
        assert_eq!(AdminPassword::parse(again.as_phc()).unwrap(), again);
    }

    #[test]
    fn short_and_empty_passwords_are_refused() {
        let dir = scratch("pw-short");
        let err = set_admin_password(&dir, "").unwrap_err();
        assert!(
            matches!(err, AuthError::PasswordEmpty { min: 8 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("at least 8 characters"), "{err}");
        let err = set_admin_password(&dir, "1234567").unwrap_err();
        assert!(
            matches!(err, AuthError::PasswordTooShort { len: 7, min: 8 }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("too short (7 characters)"),
            "{err}"
        );
        // Characters, not bytes: seven two-byte characters are too short.
        assert!(matches!(
            check_new("ééééééé"),
            Err(AuthError::PasswordTooShort { len: 7, .. })
        ));
        check_new("12345678").unwrap();
        assert!(!admin_password_set(&dir), "nothing was written");
    }

    #[test]
    fn a_corrupt_file_names_the_file_and_the_fix() {
        let dir = scratch("pw-corrupt");
        for (content, reason) in [
            (&b""[..], "the file is empty"),
            (b"\xff\xfe", "not UTF-8"),
            (b"hunter2\n", "not a PHC string"),
            (
                b"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA\n",
                "not argon2id",
            ),
            (b"$argon2id$v=19$m=19456,t=2,p=1\n", "no salt or no hash"),
        ] {
            fs::write(dir.file(FILE), content).unwrap();
            let err = AdminPassword::load(&dir).unwrap_err();
            assert!(matches!(err, AuthError::CorruptPassword { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&dir.file(FILE).display().to_string()), "{msg}");
            assert!(
                msg.contains(&format!("ntop -A -P {}", dir.path().display())),
                "{msg}"
            );
            assert!(msg.contains(reason), "{msg}");
        }
    }
}
