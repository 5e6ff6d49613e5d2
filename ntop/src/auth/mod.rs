//! Authentication of the web server: the admin password, dashboard sessions, API tokens,
//! login throttling and the layer that protects every route.
//!
//! What runs where:
//!
//! - `ntop -A` and the first start on a terminal (main thread): [`prompt::read_new_password`]
//!   and [`password::set_admin_password`].
//! - Startup (main thread, after the privilege drop): [`Auth::load`] reads the password hash
//!   and the API tokens from the data directory.
//! - The HTTP server's tasks: [`app`] wraps the API's routes (and `/metrics`) with the login
//!   routes, the token routes and the protection layer. Password checks (argon2id, ~19 MiB
//!   and tens of milliseconds each) run on tokio's blocking pool, at most
//!   [`HASHER_PERMITS`] at a time; token file writes also run there.
//!
//! Routes added here:
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /login` | anyone | the login page (HTML, works without JavaScript) |
//! | `POST /login` | anyone (throttled) | form or JSON `{username, password}`: sets the session cookie |
//! | `POST /logout` | session | ends the session, clears the cookie |
//! | `GET /api/v1/session` | any credentials | who is logged in, and the session's CSRF token |
//! | `GET /api/v1/tokens` | session or Basic | the API tokens, without secrets |
//! | `POST /api/v1/tokens` | session or Basic | creates a token; the secret is shown once |
//! | `DELETE /api/v1/tokens/{id}` | session or Basic | revokes a token |
//! | `POST /api/v1/password` | session or Basic (throttled) | `{current, new}`: changes the admin password, ends the other sessions |
//!
//! Everything else except `/api/v1/health` and `/static/...` needs a session cookie, HTTP
//! Basic `admin:<password>` or `Authorization: Bearer <API token>`, or, with
//! [`AuthConfig::public_read`], is a `GET`/`HEAD` outside the admin routes (the ones above,
//! `/api/v1/reset`, `/api/v1/config` and `/api/v1/log`, which API tokens may not use either).
//! A browser without a session asking for a page is sent to `/login` (303).
//!
//! HTTPS: the session cookie gets `Secure` on requests that carry the server's
//! [`Https`](crate::http::server::Https) extension (its TLS listeners insert it, next to
//! [`ClientAddr`](crate::http::ClientAddr)), so one [`app`] serves both kinds of listener.

mod error;
pub mod limit;
pub mod password;
pub mod prompt;
pub mod session;
pub mod tokens;
mod web;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::{Arc, PoisonError, RwLock};

use tokio::sync::Semaphore;

pub use self::{
    error::AuthError,
    password::{AdminPassword, admin_password_set, set_admin_password},
    prompt::read_new_password,
    web::{BODY_LIMIT, Principal, USER, app, recover},
};
use self::{limit::Limiter, session::Sessions, tokens::Tokens};
use crate::store::DataDir;

/// Password checks (argon2id, ~19 MiB each) running at once; more wait.
pub const HASHER_PERMITS: usize = 2;

/// Options of the layer, from the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `--web-public-read`: `GET`/`HEAD` of the read-only routes without credentials.
    pub public_read: bool,
}

/// The layer's state, shared by every request: the password hash, the sessions, the API
/// tokens and the login throttle.
#[derive(Debug)]
pub struct Auth {
    dir: DataDir,
    config: AuthConfig,
    password: RwLock<AdminPassword>,
    sessions: Sessions,
    tokens: Tokens,
    limiter: Limiter,
    hashers: Arc<Semaphore>,
}

impl Auth {
    /// Loads the admin password hash and the API tokens from `dir` (at startup).
    ///
    /// # Errors
    /// [`AuthError::NoPassword`] when no admin password is set (run `ntop -A`),
    /// [`AuthError::CorruptPassword`], [`AuthError::CorruptTokens`], [`AuthError::Store`].
    pub fn load(dir: DataDir, config: AuthConfig) -> Result<Arc<Self>, AuthError> {
        let password = AdminPassword::load(&dir)?;
        let tokens = Tokens::load(dir.clone())?;
        let sessions = Sessions::load(
            dir.clone(),
            session::password_digest(password.as_phc()),
            std::time::Instant::now(),
            std::time::SystemTime::now(),
        );
        Ok(Arc::new(Self {
            dir,
            config,
            password: RwLock::new(password),
            sessions,
            tokens,
            limiter: Limiter::new(),
            hashers: Arc::new(Semaphore::new(HASHER_PERMITS)),
        }))
    }

    /// The options.
    #[must_use]
    pub fn config(&self) -> AuthConfig {
        self.config
    }

    /// The dashboard sessions.
    #[must_use]
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The API tokens.
    #[must_use]
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// The login throttle.
    #[must_use]
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Re-reads the password hash (e.g. on SIGHUP after `ntop -A`). When it changed, every
    /// session ends. Returns whether it changed.
    ///
    /// # Errors
    /// As [`AdminPassword::load`]; the old hash stays in use.
    pub fn reload_password(&self) -> Result<bool, AuthError> {
        let new = AdminPassword::load(&self.dir)?;
        let mut current = self
            .password
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if *current == new {
            return Ok(false);
        }
        self.sessions
            .set_password(session::password_digest(new.as_phc()));
        *current = new;
        drop(current);
        self.sessions.clear();
        tracing::info!("the admin password changed; every session has ended");
        Ok(true)
    }

    /// Whether `password` is the admin password. Runs argon2 on the blocking pool, waiting
    /// for one of [`HASHER_PERMITS`]; the permit is held until the hash is done even if the
    /// caller goes away.
    pub async fn verify_password(&self, password: String) -> bool {
        let Ok(permit) = Arc::clone(&self.hashers).acquire_owned().await else {
            return false; // The semaphore is never closed.
        };
        let hash = self
            .password
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash.verify(&password)
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("password check failed: {e}");
            false
        })
    }

    /// Whether `user`:`password` are the admin's credentials (the password is checked even
    /// for another user, so that both cost the same).
    pub async fn check_credentials(&self, user: &str, password: String) -> bool {
        let ok = self.verify_password(password).await;
        ok && user == USER
    }
}
