//! [`AuthError`]: everything that can go wrong in the authentication layer, at startup (loading
//! the password hash and the API tokens), in `ntop -A` (setting the password) and in HTTP
//! requests (where [`recover`](super::recover) renders it as JSON `{code, message}`).

use std::{path::PathBuf, time::Duration};

use warp::{
    http::{
        HeaderValue, StatusCode,
        header::{ALLOW, CACHE_CONTROL, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE},
    },
    reject::Reject,
    reply::Response,
};

use crate::{http::models::ErrorBody, store::StoreError};

/// Errors of the authentication layer. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    // ---- Setting and loading the admin password (startup, `ntop -A`) ----
    /// The new admin password is empty.
    #[error("the admin password is empty; choose one of at least {min} characters")]
    PasswordEmpty {
        /// The minimum length.
        min: usize,
    },
    /// The new admin password is shorter than the minimum.
    #[error(
        "the admin password is too short ({len} characters); choose one of at least {min} \
         characters"
    )]
    PasswordTooShort {
        /// Its length in characters.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// The password and its confirmation differ (interactive prompt).
    #[error("the two passwords do not match; type the same password twice")]
    PasswordMismatch,
    /// Standard input ended before a password line (non-interactive `ntop -A`).
    #[error(
        "no password on standard input; give it as one line, e.g. \
         `printf '%s\\n' \"$PASSWORD\" | ntop -A -P DIR`"
    )]
    NoPasswordInput,
    /// Reading the password from the terminal or standard input failed.
    #[error("cannot read the password: {0}")]
    Prompt(#[source] std::io::Error),
    /// No admin password has been set in the data directory.
    #[error("no admin password is set in {dir}; set one with `ntop -A -P {dir}`")]
    NoPassword {
        /// The data directory.
        dir: PathBuf,
    },
    /// The password file exists but does not hold a usable argon2id hash.
    #[error(
        "{path} does not hold a valid argon2id password hash ({reason}); set the password \
         again with `ntop -A -P {dir}`"
    )]
    CorruptPassword {
        /// The password file.
        path: PathBuf,
        /// The data directory, for the fix.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// argon2 could not hash the password (should not happen with the default parameters).
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The API token file exists but cannot be parsed.
    #[error(
        "{path} is not a valid API token file ({reason}); restore it from a backup, or delete \
         it to revoke every API token"
    )]
    CorruptTokens {
        /// The token file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing the data directory failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    // ---- HTTP requests ----
    /// No valid credentials on a route that needs them (401, `unauthorized`).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// `POST /login` with a wrong user name or password (401, `invalid_credentials`).
    #[error("wrong user name or password; the user name is `admin`")]
    InvalidCredentials,
    /// Too many failed logins from the client's address (429, `rate_limited`).
    #[error(
        "too many failed login attempts from your address; try again in {} s",
        retry_secs(*.retry_after)
    )]
    RateLimited {
        /// How long until the next attempt is allowed (the `Retry-After` header).
        retry_after: Duration,
    },
    /// A state-changing request authenticated by a session cookie without the session's
    /// CSRF token (403, `csrf`).
    #[error(
        "missing or wrong CSRF token; send the session's token (from POST /login or \
         GET /api/v1/session) in the X-CSRF-Token header"
    )]
    Csrf,
    /// The `Origin` header names another site than the `Host` header (403, `cross_origin`).
    #[error(
        "cross-origin request refused: Origin `{origin}` is not this server; send requests from ntop's own pages"
    )]
    CrossOrigin {
        /// The `Origin` header as sent.
        origin: String,
    },
    /// Authenticated, but not allowed to do this (403, `forbidden`).
    #[error("{0}")]
    Forbidden(&'static str),
    /// `POST /api/v1/password` with a wrong current password (403, `wrong_password`; not 401,
    /// which would log the dashboard out).
    #[error(
        "the current password is wrong; give the admin password in use now as `current` \
         (after five wrong tries within a minute, wait before trying again)"
    )]
    WrongPassword,
    /// A browser without a session asked for a page (303 to `/login`, `login_required`).
    #[error("log in first at /login")]
    LoginRequired,
    /// A request body over the limit (413, `payload_too_large`).
    #[error("the request body is larger than {limit} bytes; send a smaller one")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A body of a type the route does not take (415, `unsupported_media_type`).
    #[error("unsupported Content-Type; send {expected}")]
    UnsupportedMediaType {
        /// The types the route takes.
        expected: &'static str,
    },
    /// A malformed request body (400, `bad_request`).
    #[error("{0}")]
    BadRequest(String),
    /// A method the route does not answer (405, `method_not_allowed`, with `Allow`).
    #[error("method not allowed; this route answers {allow}")]
    MethodNotAllowed {
        /// The methods the route answers, comma-separated (the `Allow` header).
        allow: &'static str,
    },
    /// `DELETE /api/v1/tokens/{id}` of an unknown id (404, `token_not_found`).
    #[error("no API token has the id `{0}`; GET /api/v1/tokens lists them")]
    TokenNotFound(String),
    /// Creating a token when the maximum number exists (409, `too_many_tokens`).
    #[error(
        "there are already {max} API tokens; revoke unused ones with DELETE /api/v1/tokens/{{id}}"
    )]
    TooManyTokens {
        /// The maximum.
        max: usize,
    },
    /// A bug, or a failure of a background task (500, `internal_error`).
    #[error("internal error: {0}; see the daemon's log")]
    Internal(String),
}

impl Reject for AuthError {}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

impl AuthError {
    /// HTTP status of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Csrf | Self::CrossOrigin { .. } | Self::Forbidden(_) | Self::WrongPassword => {
                StatusCode::FORBIDDEN
            }
            Self::LoginRequired => StatusCode::SEE_OTHER,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_)
            | Self::PasswordEmpty { .. }
            | Self::PasswordTooShort { .. }
            | Self::PasswordMismatch
            | Self::NoPasswordInput => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::TokenNotFound(_) => StatusCode::NOT_FOUND,
            Self::TooManyTokens { .. } => StatusCode::CONFLICT,
            Self::Prompt(_)
            | Self::NoPassword { .. }
            | Self::CorruptPassword { .. }
            | Self::Hash(_)
            | Self::CorruptTokens { .. }
            | Self::Store(_)
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` field of the response: stable, `snake_case`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::RateLimited { .. } => "rate_limited",
            Self::Csrf => "csrf",
            Self::CrossOrigin { .. } => "cross_origin",
            Self::Forbidden(_) => "forbidden",
            Self::WrongPassword => "wrong_password",
            Self::LoginRequired => "login_required",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::PasswordEmpty { .. } | Self::PasswordTooShort { .. } => "weak_password",
            Self::BadRequest(_) | Self::PasswordMismatch | Self::NoPasswordInput => "bad_request",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::TokenNotFound(_) => "token_not_found",
            Self::TooManyTokens { .. } => "too_many_tokens",
            Self::Prompt(_)
            | Self::NoPassword { .. }
            | Self::CorruptPassword { .. }
            | Self::Hash(_)
            | Self::CorruptTokens { .. }
            | Self::Store(_)
            | Self::Internal(_) => "internal_error",
        }
    }

    /// The JSON response: `{code, message}`, `Cache-Control: no-store`, plus
    /// `WWW-Authenticate` (401), `Retry-After` (429), `Allow` (405) or `Location` (303).
    #[must_use]
    pub fn to_response(&self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(error = %self, "authentication layer");
        }
        let mut response = json(
            self.status(),
            &ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
        );
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::Unauthorized(_) => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="ntop", charset="UTF-8""#),
                );
            }
            Self::RateLimited { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_secs(*retry_after)));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            Self::LoginRequired => {
                headers.insert(LOCATION, HeaderValue::from_static("/login"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON response: the API's own helper, so every JSON answer is made one way.
pub(super) use crate::http::handlers::json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_secs(Duration::ZERO), 1);
        assert_eq!(retry_secs(Duration::from_millis(59_001)), 60);
        assert_eq!(retry_secs(Duration::from_mins(1)), 60);
    }
}
