//! Errors of the JSON API and how every failure, ours or warp's, becomes a JSON response.
//!
//! Runs in the HTTP server's tasks: handlers reject with an [`ApiError`], and
//! [`handle_rejection`] (the `recover` at the end of [`routes`](super::routes)) renders it, or
//! warp's own rejections (no route, wrong method, bad query string), as
//! `{"code": "...", "message": "..."}`.

use std::convert::Infallible;

use warp::{
    Rejection,
    http::{HeaderValue, StatusCode, header::ALLOW},
    reject::{InvalidHeader, InvalidQuery, MethodNotAllowed, MissingHeader, Reject},
    reply::Response,
};

use super::models::ErrorBody;

/// Everything that can go wrong in an API request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter the route does not take.
    #[error("unknown query parameter `{name}`; this route takes {allowed}")]
    UnknownParameter {
        /// The parameter given.
        name: String,
        /// The parameters the route takes, for the message.
        allowed: &'static str,
    },
    /// A query parameter given twice.
    #[error("query parameter `{0}` is given more than once; give it at most once")]
    DuplicateParameter(&'static str),
    /// A query parameter with a value it cannot have.
    #[error("query parameter `{name}` is `{value}`, but must be {expected}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: String,
        /// What it may be.
        expected: String,
    },
    /// A query string warp could not decode.
    #[error(
        "the query string is malformed; give `name=value` pairs separated by `&`, \
         percent-encoded"
    )]
    InvalidQuery,
    /// A path segment that is not an IP address.
    #[error(
        "`{0}` is not an IP address; give an IPv4 address such as 198.18.0.1 or an IPv6 \
         address such as 2001:db8::1 (percent-encoding is allowed)"
    )]
    InvalidAddress(String),
    /// A path segment whose percent-encoding is broken.
    #[error(
        "the path segment `{0}` is not valid percent-encoded UTF-8; encode each reserved \
         byte as `%` and two hex digits"
    )]
    InvalidPathEncoding(String),
    /// An address no sample ever had.
    #[error(
        "no host with address {0} has been seen on any interface; GET /api/v1/hosts lists \
         the known hosts"
    )]
    HostNotFound(String),
    /// An interface filter naming no monitored interface.
    #[error(
        "no monitored interface is called `{name}`; the monitored interfaces are: {known} \
         (GET /api/v1/interfaces lists them)"
    )]
    InterfaceNotFound {
        /// The name given.
        name: String,
        /// The monitored interfaces, comma-separated, for the message.
        known: String,
    },
    /// A query parameter the request cannot do without (here).
    #[error("query parameter `{name}` is required: {reason}")]
    MissingParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is needed here and what to give, for the message.
        reason: String,
    },
    /// A history range that would give more points than one response carries.
    #[error(
        "the range from {from} to {to} at {resolution} resolution would give {points} \
         points, more than {max}; ask for a coarser resolution{coarser} or a shorter range"
    )]
    RangeTooLarge {
        /// Start of the range, unix seconds.
        from: i64,
        /// End of the range, unix seconds.
        to: i64,
        /// The resolution's name (`second`, `minute`, `hour`).
        resolution: &'static str,
        /// Points the range would give.
        points: i64,
        /// Most points a response carries.
        max: i64,
        /// The coarser resolutions to suggest (` (resolution=minute or hour)`), or empty.
        coarser: &'static str,
    },
    /// An address that is known, but not on the interface the request names.
    #[error(
        "no host with address {ip} has been seen on interface `{interface}`{seen_on}; \
         GET /api/v1/hosts/{ip} lists the interfaces it was seen on"
    )]
    HostNotOnInterface {
        /// The address.
        ip: String,
        /// The interface given.
        interface: String,
        /// Where it was seen instead (`; it was seen on: eth1`), or empty.
        seen_on: String,
    },
    /// The kernel does not count who talks to whom: `--no-peers`, or programs pinned by an
    /// ntop without a pair table (they are replaced at the next start with other options).
    #[error(
        "peers are not counted: ntop runs with --no-peers (or its kernel programs were pinned \
         by an older ntop without a pair table); restart ntop without --no-peers to count them"
    )]
    PeersNotCounted,
    /// The history database cannot be read (missing, written by a newer ntop, cannot be
    /// opened): the message is the history's own error, which names the file and the fix.
    #[error("history is not available: {0}")]
    HistoryUnavailable(String),
    /// No route has this path. The message lists every route (docs/API.md's table of them;
    /// `dashboard_tests::not_found_names_every_route` checks it), so that a mistyped path
    /// leads to the right one.
    #[error(
        "no such route; the API's routes are GET /api/v1/interfaces, /api/v1/hosts, \
         /api/v1/hosts/{{ip}}, /api/v1/hosts/{{ip}}/usage, /api/v1/hosts/{{ip}}/peers, \
         /api/v1/protocols, /api/v1/history, /api/v1/dump.json, /api/v1/dump.csv, \
         /api/v1/status, /api/v1/config, /api/v1/log, /api/v1/events, /api/v1/health, \
         /api/v1/session, /api/v1/tokens and /login; POST /api/v1/reset, /api/v1/password, \
         /api/v1/tokens, /login and /logout; DELETE /api/v1/tokens/{{id}}; Prometheus \
         metrics are at GET /metrics, and the dashboard at GET / (its pages are #-routes: \
         /#/hosts, /#/hosts/{{ip}}, /#/protocols, /#/interfaces, /#/admin); docs/API.md \
         describes them all"
    )]
    NotFound,
    /// The path exists but not for this method: `allow` lists the methods it takes (`GET` for
    /// every read route).
    #[error("method not allowed; this route answers only {allow}")]
    MethodNotAllowed {
        /// The `Allow` header's value.
        allow: &'static str,
    },
    /// A required header is missing or invalid (from filters layered on top of the API).
    #[error("header `{0}` is missing or invalid")]
    BadHeader(String),
    /// A bug or a panic elsewhere.
    #[error("internal error: {0}; see the daemon's log")]
    Internal(String),
}

impl Reject for ApiError {}

impl ApiError {
    /// HTTP status of the response.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownParameter { .. }
            | Self::DuplicateParameter(_)
            | Self::InvalidParameter { .. }
            | Self::InvalidQuery
            | Self::InvalidAddress(_)
            | Self::InvalidPathEncoding(_)
            | Self::MissingParameter { .. }
            | Self::RangeTooLarge { .. }
            | Self::BadHeader(_) => StatusCode::BAD_REQUEST,
            Self::HostNotFound(_)
            | Self::HostNotOnInterface { .. }
            | Self::InterfaceNotFound { .. }
            | Self::PeersNotCounted
            | Self::NotFound => StatusCode::NOT_FOUND,
            Self::HistoryUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `code` field of the response: stable, `snake_case`, for programs to match on.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownParameter { .. } => "unknown_parameter",
            Self::DuplicateParameter(_) => "duplicate_parameter",
            Self::InvalidParameter { .. } => "invalid_parameter",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidAddress(_) => "invalid_address",
            Self::InvalidPathEncoding(_) => "invalid_path_encoding",
            Self::HostNotFound(_) | Self::HostNotOnInterface { .. } => "host_not_found",
            Self::MissingParameter { .. } => "missing_parameter",
            Self::RangeTooLarge { .. } => "range_too_large",
            Self::HistoryUnavailable(_) => "history_unavailable",
            Self::InterfaceNotFound { .. } => "interface_not_found",
            Self::PeersNotCounted => "peers_not_counted",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BadHeader(_) => "bad_header",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The JSON response for this error (with `Allow` for 405).
    #[must_use]
    pub fn to_response(&self) -> Response {
        let mut response = super::handlers::json(
            self.status(),
            &ErrorBody {
                code: self.code(),
                message: self.to_string(),
            },
        );
        if let Self::MethodNotAllowed { allow } = self {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Turns any rejection into a JSON error response. Use it as the last `recover` of a filter
/// tree that contains [`api`](super::api) (other filters may reject with [`ApiError`] too).
///
/// # Errors
///
/// Never: every rejection becomes a response.
pub async fn handle_rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let error = classify(&rejection).unwrap_or_else(|| {
        tracing::error!(?rejection, "unhandled rejection");
        ApiError::Internal("the request was rejected for an unknown reason".to_owned())
    });
    Ok(error.to_response())
}

/// Our error for a rejection, if we know it.
fn classify(rejection: &Rejection) -> Option<ApiError> {
    if let Some(error) = rejection.find::<ApiError>() {
        Some(error.clone())
    } else if rejection.is_not_found() {
        Some(ApiError::NotFound)
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        Some(ApiError::MethodNotAllowed { allow: "GET" })
    } else if rejection.find::<InvalidQuery>().is_some() {
        Some(ApiError::InvalidQuery)
    } else if let Some(h) = rejection.find::<MissingHeader>() {
        Some(ApiError::BadHeader(h.name().to_owned()))
    } else {
        rejection
            .find::<InvalidHeader>()
            .map(|h| ApiError::BadHeader(h.name().to_owned()))
    }
}
