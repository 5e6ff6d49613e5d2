//! The HTTP side of the layer: [`app`] (login and logout routes, the token and session
//! routes, and the guard in front of everything else) and [`recover`] (JSON errors).
//!
//! Runs in the HTTP server's tasks. Order of checks for a protected route:
//!
//! 1. `Origin` (when sent) must name the `Host` the request went to (else `403 cross_origin`).
//! 2. Credentials: `Authorization: Basic` (admin password; throttled per client, `429`),
//!    `Authorization: Bearer` (API token), else the session cookie. Wrong credentials are
//!    `401`, whatever `--web-public-read` says.
//! 3. No credentials: `401 unauthorized` with `WWW-Authenticate: Basic realm="ntop"`, unless
//!    [`AuthConfig::public_read`](super::AuthConfig::public_read) and the request is a
//!    `GET`/`HEAD` outside the admin routes (`is_admin`). A browser asking for a page
//!    (`GET`/`HEAD` outside `/api/` and `/metrics`, `Accept` naming `text/html`, no
//!    `Authorization`) is sent to `/login` with `303 See Other` instead.
//! 4. API tokens cannot use the admin routes (`403 forbidden`): manage API tokens, change the
//!    password, reset the statistics, read the configuration or the log. A leaked token must
//!    not be able to mint more, lock the admin out or wipe the counts.
//! 5. A state-changing method with a session cookie needs the session's CSRF token in
//!    `X-CSRF-Token` (`403 csrf`). Basic and Bearer need none: browsers attach neither to
//!    cross-site requests on their own, except Basic after a prompt, which step 1 covers.

use std::{
    convert::Infallible,
    fmt::Write as _,
    future::poll_fn,
    net::SocketAddr,
    pin::pin,
    sync::{Arc, LazyLock},
    time::{Instant, SystemTime},
};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use warp::{
    Buf, Filter, Rejection, Stream,
    http::{
        HeaderMap, HeaderValue, Method, StatusCode,
        header::{
            ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY,
            CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE,
            X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
        },
        uri::Authority,
    },
    path::FullPath,
    reply::{Reply as _, Response},
};

use super::error::json;
use super::{
    Auth, AuthError,
    limit::ClientKey,
    session::{self, constant_time_eq},
};
use crate::http::{self, models::Timestamp, server::Https};

/// Largest body accepted by `POST /login`, `POST /logout` and `POST /api/v1/tokens`.
pub const BODY_LIMIT: usize = 4096;
/// The only user.
pub const USER: &str = "admin";
/// The header carrying the CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";

/// Who made a request that passed the guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A public route (health, static assets): nobody in particular.
    Public,
    /// No credentials, allowed by `--web-public-read`.
    Anonymous,
    /// A dashboard session.
    Session {
        /// Its CSRF token.
        csrf_token: String,
        /// When it ends unless used again.
        expires: Instant,
    },
    /// HTTP Basic with the admin password.
    Basic,
    /// An API token.
    Token {
        /// The token's id.
        id: String,
    },
}

/// The parts of a request the layer looks at.
#[derive(Clone, Debug)]
struct Req {
    method: Method,
    path: String,
    headers: HeaderMap,
    client: Option<SocketAddr>,
    authority: Option<Authority>,
}

fn request() -> impl Filter<Extract = (Req,), Error = Infallible> + Clone {
    // An invalid Host header counts as none: then any Origin is refused.
    let host = warp::host::optional()
        .or(warp::any().map(|| None::<Authority>))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(http::client_addr())
        .and(warp::addr::remote())
        .and(host)
        .map(
            |method, path: FullPath, headers, client: Option<SocketAddr>, remote, authority| Req {
                method,
                path: path.as_str().to_owned(),
                headers,
                client: client.or(remote),
                authority,
            },
        )
}

/// The whole web application: `api` (the JSON API, `/metrics`, later the dashboard: any
/// filter that rejects what it does not serve) behind the guard, plus the login, logout,
/// session and token routes, with every rejection rendered as JSON by [`recover`].
///
/// The session cookie is `Secure` on requests the server marked [`Https`] (its TLS
/// listeners), and on every request when `always_secure` is set (e.g. behind a
/// TLS-terminating proxy), so one `app` serves the HTTP and the HTTPS listeners alike.
pub fn app<F>(
    auth: Arc<Auth>,
    api: F,
    always_secure: bool,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static,
{
    let secure = warp::ext::optional::<Https>()
        .map(move |https: Option<Https>| always_secure || https.is_some());
    let with_auth = warp::any().map(move || Arc::clone(&auth));

    let login = warp::path!("login")
        .and(with_auth.clone())
        .and(request())
        .and(secure)
        .and(warp::body::stream())
        .then(login);
    let logout = warp::path!("logout")
        .and(with_auth.clone())
        .and(request())
        .and(secure)
        .and(warp::body::stream())
        .then(logout);

    let session = warp::path!("api" / "v1" / "session")
        .and(warp::get())
        .map(|| Routed::Session);
    let token_list = warp::path!("api" / "v1" / "tokens")
        .and(with_auth.clone())
        .and(request())
        .and(warp::body::stream())
        .then(tokens_collection);
    let token_item = warp::path!("api" / "v1" / "tokens" / String)
        .and(with_auth.clone())
        .and(warp::method())
        .then(token_item);
    let password = warp::path!("api" / "v1" / "password")
        .and(request())
        .and(warp::body::stream())
        .then(password_request);
    let routes = session
        .or(password)
        .unify()
        .or(token_list
            .or(token_item)
            .unify()
            .or(api)
            .unify()
            .map(Routed::Response))
        .unify();
    let protected = with_auth
        .clone()
        .and(request())
        .and_then(guard)
        .and(routes)
        .and(with_auth)
        .then(|principal, routed, auth| async move {
            match routed {
                Routed::Response(r) => r,
                Routed::Session => session_info(&principal),
                Routed::Password { req, body } => change_password(&auth, &principal, &req, &body)
                    .await
                    .unwrap_or_else(|e| e.to_response()),
            }
        });

    let routes = login
        .or(logout)
        .unify()
        .or(protected)
        .unify()
        .recover(recover)
        .unify();
    warp::header::headers_cloned()
        .and(routes)
        .map(|headers: HeaderMap, response: Response| quiet_401(&headers, response))
}

/// Leaves the Basic challenge out of a 401 to the dashboard's own requests (they send
/// `X-Requested-With`, or a session cookie, which is all an `EventSource` can send): with it,
/// a browser would answer an ended session with its password dialog (and hold the request
/// open meanwhile) instead of letting the page go to `/login`. Scripts and Prometheus still
/// get the challenge.
fn quiet_401(headers: &HeaderMap, mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        let page = headers.contains_key("x-requested-with")
            || headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|h| h.split(';'))
                .any(|pair| pair.trim().split('=').next() == Some(session::COOKIE));
        if page {
            response.headers_mut().remove(WWW_AUTHENTICATE);
        }
    }
    response
}

/// What the routes behind the guard produced: a response, or the session and password
/// routes, which need the [`Principal`].
enum Routed {
    Response(Response),
    Session,
    /// `POST /api/v1/password` with its body read.
    Password {
        req: Req,
        body: Vec<u8>,
    },
}

/// Renders a rejection: the layer's [`AuthError`]s here, the rest by
/// [`http::handle_rejection`] (unknown routes, wrong methods, the API's own errors).
///
/// # Errors
/// Never.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    match rejection.find::<AuthError>() {
        Some(e) => Ok(e.to_response()),
        None => http::handle_rejection(rejection).await,
    }
}

// ---- The guard ----

fn is_public(path: &str) -> bool {
    path == "/api/v1/health" || path == "/favicon.ico" || path.starts_with("/static/")
}

/// Routes only credentials may use, whatever `--web-public-read` says (and, but for
/// `/api/v1/session`, not API tokens).
fn is_admin(path: &str) -> bool {
    path == "/api/v1/session"
        || path == "/api/v1/tokens"
        || path.starts_with("/api/v1/tokens/")
        || path == "/api/v1/reset"
        || path == "/api/v1/password"
        || path == "/api/v1/config"
        || path == "/api/v1/log"
}

/// Whether a request without credentials is a browser asking for a page, which is better
/// sent to the login page than answered with JSON: `GET`/`HEAD`, outside the API and
/// `/metrics`, `Accept` naming `text/html`, and no `Authorization` header (a client that sent
/// wrong credentials gets the 401).
fn wants_login_page(req: &Req) -> bool {
    matches!(req.method, Method::GET | Method::HEAD)
        && !(req.path == "/api" || req.path.starts_with("/api/"))
        && req.path != "/metrics"
        && !req.headers.contains_key(AUTHORIZATION)
        && req
            .headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|media| {
                media
                    .split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/html"))
            })
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

const NO_CREDENTIALS: &str = "authentication required: log in at /login, or send HTTP Basic \
                              credentials (user admin) or an API token (Authorization: Bearer \
                              ntop_...)";
const STALE_SESSION: &str = "your session has expired or ended; log in again at /login";
const BAD_BASIC: &str = "wrong user name or password in the HTTP Basic credentials; the user \
                         name is admin";
const MALFORMED_BASIC: &str = "malformed HTTP Basic credentials; send base64 of `admin:<password>`";
const BAD_TOKEN: &str =
    "unknown or revoked API token; an admin creates tokens with POST /api/v1/tokens";
const BAD_SCHEME: &str = "unsupported Authorization scheme; use Basic or Bearer";

async fn guard(auth: Arc<Auth>, req: Req) -> Result<Principal, Rejection> {
    if req.path == "/login" || req.path == "/logout" {
        // Served by their own routes; never reached from here.
        return Err(warp::reject::not_found());
    }
    if is_public(&req.path) {
        return Ok(Principal::Public);
    }
    check(&auth, &req).await.map_err(|e| {
        warp::reject::custom(match e {
            AuthError::Unauthorized(_) if wants_login_page(&req) => AuthError::LoginRequired,
            e => e,
        })
    })
}

async fn check(auth: &Arc<Auth>, req: &Req) -> Result<Principal, AuthError> {
    check_origin(req)?;
    let principal = match credentials(auth, req).await? {
        Found::Principal(p) => p,
        Found::Nothing { stale_cookie } => {
            if auth.config().public_read && is_safe(&req.method) && !is_admin(&req.path) {
                Principal::Anonymous
            } else if stale_cookie {
                return Err(AuthError::Unauthorized(STALE_SESSION));
            } else {
                return Err(AuthError::Unauthorized(NO_CREDENTIALS));
            }
        }
    };
    if matches!(principal, Principal::Token { .. })
        && is_admin(&req.path)
        && req.path != "/api/v1/session"
    {
        return Err(AuthError::Forbidden(
            "API tokens cannot manage API tokens, change the password, reset the statistics, \
             or read the configuration and the log; log in, or use HTTP Basic with the admin \
             password",
        ));
    }
    if let Principal::Session { csrf_token, .. } = &principal
        && !is_safe(&req.method)
    {
        let sent = req.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !sent.is_some_and(|sent| constant_time_eq(sent, csrf_token)) {
            return Err(AuthError::Csrf);
        }
    }
    Ok(principal)
}

enum Found {
    Principal(Principal),
    Nothing { stale_cookie: bool },
}

async fn credentials(auth: &Arc<Auth>, req: &Req) -> Result<Found, AuthError> {
    if let Some(value) = req.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Unauthorized(BAD_SCHEME))?;
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let (user, password) =
                decode_basic(rest).ok_or(AuthError::Unauthorized(MALFORMED_BASIC))?;
            let attempt = auth
                .limiter()
                .begin(ClientKey::of(req.client), Instant::now())
                .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
            if auth.check_credentials(&user, password).await {
                attempt.succeeded();
                return Ok(Found::Principal(Principal::Basic));
            }
            attempt.failed(Instant::now());
            return Err(AuthError::Unauthorized(BAD_BASIC));
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            let found = auth
                .tokens()
                .authenticate(rest, SystemTime::now())
                .ok_or(AuthError::Unauthorized(BAD_TOKEN))?;
            if found.save {
                let auth = Arc::clone(auth);
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = auth.tokens().save() {
                        tracing::warn!("cannot record the API token's last use: {e}");
                    }
                });
            }
            return Ok(Found::Principal(Principal::Token { id: found.id }));
        }
        return Err(AuthError::Unauthorized(BAD_SCHEME));
    }
    let ids = session_cookies(&req.headers);
    let now = Instant::now();
    for id in &ids {
        if let Some(info) = auth.sessions().validate(id, now) {
            return Ok(Found::Principal(Principal::Session {
                csrf_token: info.csrf_token,
                expires: info.expires,
            }));
        }
    }
    Ok(Found::Nothing {
        stale_cookie: !ids.is_empty(),
    })
}

fn session_cookies(headers: &HeaderMap) -> Vec<String> {
    session::cookie_values(
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `user` and `password` from the base64 part of a Basic header.
fn decode_basic(b64: &str) -> Option<(String, String)> {
    let bytes = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Refuses a request whose `Origin` is not the server it was sent to.
fn check_origin(req: &Req) -> Result<(), AuthError> {
    let Some(origin) = req.headers.get(ORIGIN) else {
        return Ok(());
    };
    let text = origin.to_str().unwrap_or("");
    if req
        .authority
        .as_ref()
        .is_some_and(|host| same_origin(text, host))
    {
        Ok(())
    } else {
        Err(AuthError::CrossOrigin {
            origin: String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(200)
                .collect(),
        })
    }
}

/// Whether `origin` (`scheme://host[:port]`) names `host` (the request's authority), with
/// the origin scheme's default port when either leaves it out. The scheme itself is not
/// compared with the connection's, so that a TLS-terminating proxy in front of plain HTTP
/// works.
fn same_origin(origin: &str, host: &Authority) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false; // "null", garbage
    };
    let default_port = if scheme.eq_ignore_ascii_case("http") {
        80
    } else if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        return false;
    };
    if rest.contains(['/', '@', '?', '#']) {
        return false;
    }
    let Ok(origin) = rest.parse::<Authority>() else {
        return false;
    };
    origin.host().eq_ignore_ascii_case(host.host())
        && origin.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
}

// ---- Bodies ----

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Form,
    Json,
}

/// The media type of the body, lower case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn kind(headers: &HeaderMap) -> Option<Kind> {
    match media_type(headers)?.as_str() {
        "application/x-www-form-urlencoded" => Some(Kind::Form),
        "application/json" => Some(Kind::Json),
        _ => None,
    }
}

/// Reads a body of at most [`BODY_LIMIT`] bytes (`Content-Length` is checked first, and the
/// count is enforced while reading, for chunked bodies).
async fn read_body<S, B>(headers: &HeaderMap, body: S) -> Result<Vec<u8>, AuthError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = AuthError::PayloadTooLarge { limit: BODY_LIMIT };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large);
    }
    let mut body = pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let mut chunk = chunk
            .map_err(|e| AuthError::BadRequest(format!("cannot read the request body: {e}")))?;
        if out.len() + chunk.remaining() > BODY_LIMIT {
            return Err(too_large);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded`.
fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, AuthError> {
    let bad = || {
        AuthError::BadRequest(
            "malformed form body; send application/x-www-form-urlencoded UTF-8".into(),
        )
    };
    let text = std::str::from_utf8(body).map_err(|_| bad())?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((
                percent_decode(name).ok_or_else(bad)?,
                percent_decode(value).ok_or_else(bad)?,
            ))
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                u8::try_from(hi * 16 + lo).ok()?
            }
            b => b,
        });
    }
    String::from_utf8(out).ok()
}

/// The one value of `name` in form fields, if any.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = fields.iter().filter(|(n, _)| n == name);
    let first = values.next().map(|(_, v)| v.as_str());
    if values.next().is_some() {
        return Err(AuthError::BadRequest(format!(
            "form field `{name}` is given more than once; give it once"
        )));
    }
    Ok(first)
}

#[derive(Deserialize)]
struct LoginJson {
    username: String,
    password: String,
}

fn login_credentials(kind: Kind, body: &[u8]) -> Result<(String, String), AuthError> {
    match kind {
        Kind::Json => {
            let LoginJson { username, password } = serde_json::from_slice(body).map_err(|e| {
                AuthError::BadRequest(format!(
                    "the body must be a JSON object {{\"username\": \"admin\", \"password\": \
                     \"...\"}}: {e}"
                ))
            })?;
            Ok((username, password))
        }
        Kind::Form => {
            let fields = form_fields(body)?;
            let missing = |name| {
                AuthError::BadRequest(format!(
                    "form field `{name}` is missing; send username and password"
                ))
            };
            let username = field(&fields, "username")?.ok_or_else(|| missing("username"))?;
            let password = field(&fields, "password")?.ok_or_else(|| missing("password"))?;
            Ok((username.to_owned(), password.to_owned()))
        }
    }
}

// ---- Responses ----

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

fn empty(status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply(), status).into_response()
}

fn see_other(location: &'static str) -> Response {
    let mut response = empty(StatusCode::SEE_OTHER);
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_static(location));
    response
}

fn set_cookie(mut response: Response, cookie: &str) -> Response {
    match HeaderValue::from_str(cookie) {
        Ok(v) => {
            response.headers_mut().insert(SET_COOKIE, v);
            response
        }
        // Ids are base64url: always a valid header value.
        Err(e) => AuthError::Internal(format!("bad cookie: {e}")).to_response(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f3f4f6;margin:0;\
display:flex;justify-content:center;padding-top:12vh}form{background:#fff;padding:2em;\
border-radius:8px;box-shadow:0 1px 4px #0003;width:18em}h1{margin:0 0 .8em;font-size:1.5em}\
label{display:block;margin:.9em 0 .3em}input{width:100%;box-sizing:border-box;padding:.5em;\
font-size:1em}button{margin-top:1.5em;width:100%;padding:.6em;font-size:1em;cursor:pointer}\
.error{color:#b00020;margin:0}";

/// The login page's policy: no scripts, no external anything, the one inline style by hash.
static LOGIN_CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        STANDARD.encode(Sha256::digest(STYLE.as_bytes()))
    )
});

/// The login page, with a fixed error line when a login failed.
fn login_page(status: StatusCode, error: Option<&'static str>) -> Response {
    let mut html = String::with_capacity(1500);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ntop: log in</title><link rel=\"icon\" href=\"/static/favicon.svg\">\
         <style>{STYLE}</style></head>\n<body>\
         <form method=\"post\" action=\"/login\"><h1>ntop</h1>"
    );
    if let Some(error) = error {
        let _ = write!(html, "<p class=\"error\" role=\"alert\">{error}</p>");
    }
    html.push_str(
        "<label for=\"username\">User name</label>\
         <input id=\"username\" name=\"username\" value=\"admin\" autocomplete=\"username\" \
         required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required autofocus>\
         <button type=\"submit\">Log in</button></form></body></html>\n",
    );
    let mut response = warp::reply::with_status(warp::reply::html(html), status).into_response();
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&LOGIN_CSP) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Not `no-referrer`: with it, Chromium posts the form with `Origin: null`, which the
    // Origin check refuses. `same-origin` sends the real origin to us and nothing elsewhere.
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    no_store(response)
}

// ---- Login and logout ----

async fn login<S, B>(auth: Arc<Auth>, req: Req, secure: bool, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    match req.method {
        Method::GET | Method::HEAD => login_page(StatusCode::OK, None),
        Method::POST => post_login(&auth, &req, secure, body)
            .await
            .unwrap_or_else(|e| e.to_response()),
        _ => AuthError::MethodNotAllowed {
            allow: "GET, HEAD, POST",
        }
        .to_response(),
    }
}

#[derive(Serialize)]
struct LoginResponse {
    csrf_token: String,
}

async fn post_login<S, B>(
    auth: &Arc<Auth>,
    req: &Req,
    secure: bool,
    body: S,
) -> Result<Response, AuthError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_origin(req)?;
    let body = read_body(&req.headers, body).await?;
    let kind = kind(&req.headers).ok_or(AuthError::UnsupportedMediaType {
        expected: "application/x-www-form-urlencoded (an HTML form) or application/json",
    })?;
    let (user, password) = login_credentials(kind, &body)?;
    let attempt = auth
        .limiter()
        .begin(ClientKey::of(req.client), Instant::now())
        .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
    if !auth.check_credentials(&user, password).await {
        attempt.failed(Instant::now());
        tracing::info!(client = ?req.client, "failed login");
        return Ok(match kind {
            Kind::Form => login_page(
                StatusCode::UNAUTHORIZED,
                Some("Wrong user name or password."),
            ),
            Kind::Json => AuthError::InvalidCredentials.to_response(),
        });
    }
    attempt.succeeded();
    let session = auth.sessions().create(Instant::now());
    tracing::info!(client = ?req.client, "login");
    let response = match kind {
        Kind::Form => see_other("/"),
        Kind::Json => json(
            StatusCode::OK,
            &LoginResponse {
                csrf_token: session.csrf_token,
            },
        ),
    };
    Ok(no_store(set_cookie(
        response,
        &session::cookie(&session.id, secure),
    )))
}

async fn logout<S, B>(auth: Arc<Auth>, req: Req, secure: bool, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if req.method != Method::POST {
        return AuthError::MethodNotAllowed { allow: "POST" }.to_response();
    }
    post_logout(&auth, &req, secure, body)
        .await
        .unwrap_or_else(|e| e.to_response())
}

async fn post_logout<S, B>(
    auth: &Arc<Auth>,
    req: &Req,
    secure: bool,
    body: S,
) -> Result<Response, AuthError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    check_origin(req)?;
    let body = read_body(&req.headers, body).await?;
    let form = kind(&req.headers) == Some(Kind::Form);
    let now = Instant::now();
    for id in session_cookies(&req.headers) {
        let Some(info) = auth.sessions().validate(&id, now) else {
            continue;
        };
        let from_form = if form {
            field(&form_fields(&body)?, "csrf_token")?.map(str::to_owned)
        } else {
            None
        };
        let sent = req
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or(from_form);
        if !sent.is_some_and(|sent| constant_time_eq(&sent, &info.csrf_token)) {
            return Err(AuthError::Csrf);
        }
        auth.sessions().remove(&id);
        tracing::info!(client = ?req.client, "logout");
    }
    let response = if form {
        see_other("/login")
    } else {
        empty(StatusCode::NO_CONTENT)
    };
    Ok(no_store(set_cookie(
        response,
        &session::clear_cookie(secure),
    )))
}

// ---- Session and token routes ----

#[derive(Serialize)]
struct SessionResponse {
    user: &'static str,
    auth: &'static str,
    csrf_token: Option<String>,
    expires: Option<Timestamp>,
}

/// `GET /api/v1/session`.
fn session_info(principal: &Principal) -> Response {
    let (auth, csrf_token, expires) = match principal {
        Principal::Session {
            csrf_token,
            expires,
        } => (
            "session",
            Some(csrf_token.clone()),
            Some(Timestamp(
                SystemTime::now() + expires.saturating_duration_since(Instant::now()),
            )),
        ),
        Principal::Basic => ("basic", None, None),
        Principal::Token { .. } => ("token", None, None),
        // The guard lets neither through to this route.
        Principal::Public | Principal::Anonymous => {
            return AuthError::Unauthorized(NO_CREDENTIALS).to_response();
        }
    };
    no_store(json(
        StatusCode::OK,
        &SessionResponse {
            user: USER,
            auth,
            csrf_token,
            expires,
        },
    ))
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<super::tokens::TokenInfo>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    #[serde(default)]
    name: Option<String>,
}

/// `GET` and `POST /api/v1/tokens`.
async fn tokens_collection<S, B>(auth: Arc<Auth>, req: Req, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    match req.method {
        Method::GET => no_store(json(
            StatusCode::OK,
            &TokenList {
                tokens: auth.tokens().list(),
            },
        )),
        Method::POST => create_token(auth, &req, body)
            .await
            .unwrap_or_else(|e| e.to_response()),
        _ => AuthError::MethodNotAllowed { allow: "GET, POST" }.to_response(),
    }
}

async fn create_token<S, B>(auth: Arc<Auth>, req: &Req, body: S) -> Result<Response, AuthError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let body = read_body(&req.headers, body).await?;
    let name = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        if kind(&req.headers) != Some(Kind::Json) {
            return Err(AuthError::UnsupportedMediaType {
                expected: "application/json, or no body",
            });
        }
        let create: CreateToken = serde_json::from_slice(&body).map_err(|e| {
            AuthError::BadRequest(format!(
                "the body must be a JSON object like {{\"name\": \"prometheus\"}}: {e}"
            ))
        })?;
        create.name.unwrap_or_default()
    };
    let new = tokio::task::spawn_blocking(move || auth.tokens().create(&name, SystemTime::now()))
        .await
        .map_err(|e| AuthError::Internal(format!("token creation failed: {e}")))??;
    tracing::info!(id = %new.id, "API token created");
    Ok(no_store(json(StatusCode::CREATED, &new)))
}

/// `DELETE /api/v1/tokens/{id}`.
async fn token_item(id: String, auth: Arc<Auth>, method: Method) -> Response {
    if method != Method::DELETE {
        return AuthError::MethodNotAllowed { allow: "DELETE" }.to_response();
    }
    let revoked = {
        let id = id.clone();
        tokio::task::spawn_blocking(move || auth.tokens().revoke(&id)).await
    };
    match revoked {
        Ok(Ok(())) => {
            tracing::info!(%id, "API token revoked");
            no_store(empty(StatusCode::NO_CONTENT))
        }
        Ok(Err(e)) => e.to_response(),
        Err(e) => AuthError::Internal(format!("token revocation failed: {e}")).to_response(),
    }
}

// ---- Changing the password ----

/// `/api/v1/password` behind the guard: a `POST`'s body, read (at most [`BODY_LIMIT`]).
async fn password_request<S, B>(req: Req, body: S) -> Routed
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    if req.method != Method::POST {
        return Routed::Response(AuthError::MethodNotAllowed { allow: "POST" }.to_response());
    }
    match read_body(&req.headers, body).await {
        Ok(body) => Routed::Password { req, body },
        Err(e) => Routed::Response(e.to_response()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    current: String,
    new: String,
}

#[derive(Serialize)]
struct PasswordChanged {
    /// Sessions that ended (every one but the caller's).
    sessions_ended: usize,
    /// Whether the caller's session goes on (a session kept, not Basic).
    session_kept: bool,
}

/// `POST /api/v1/password` `{"current", "new"}`: checks the new password's rules, then the
/// current password (throttled with the logins of the client's address), stores the new
/// hash and ends every other session.
async fn change_password(
    auth: &Arc<Auth>,
    principal: &Principal,
    req: &Req,
    body: &[u8],
) -> Result<Response, AuthError> {
    if kind(&req.headers) != Some(Kind::Json) {
        return Err(AuthError::UnsupportedMediaType {
            expected: "application/json: {\"current\": \"...\", \"new\": \"...\"}",
        });
    }
    let ChangePassword { current, new } = serde_json::from_slice(body).map_err(|e| {
        AuthError::BadRequest(format!(
            "the body must be a JSON object {{\"current\": \"<the password now>\", \"new\": \
             \"<the new password>\"}}: {e}"
        ))
    })?;
    super::password::check_new(&new)?;
    let attempt = auth
        .limiter()
        .begin(ClientKey::of(req.client), Instant::now())
        .map_err(|retry_after| AuthError::RateLimited { retry_after })?;
    if !auth.verify_password(current).await {
        attempt.failed(Instant::now());
        tracing::warn!(client = ?req.client, "password change refused: wrong current password");
        return Err(AuthError::WrongPassword);
    }
    attempt.succeeded();
    // The caller's own session goes on; Basic callers have none.
    let keep = if matches!(principal, Principal::Session { .. }) {
        let now = Instant::now();
        session_cookies(&req.headers)
            .into_iter()
            .find(|id| auth.sessions().validate(id, now).is_some())
    } else {
        None
    };
    let ended = auth.change_password(new, keep.as_deref()).await?;
    tracing::warn!(
        client = ?req.client,
        "the admin password was changed from the web; {ended} other session(s) ended"
    );
    Ok(no_store(json(
        StatusCode::OK,
        &PasswordChanged {
            sessions_ended: ended,
            session_kept: keep.is_some(),
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let host = |s: &str| s.parse::<Authority>().unwrap();
        assert!(same_origin(
            "http://ntop.example:3000",
            &host("ntop.example:3000")
        ));
        assert!(same_origin(
            "HTTPS://NTOP.example",
            &host("ntop.example:443")
        ));
        assert!(same_origin("http://ntop.example", &host("ntop.example")));
        assert!(same_origin(
            "http://[2001:db8::1]:3000",
            &host("[2001:db8::1]:3000")
        ));
        assert!(!same_origin(
            "http://evil.example:3000",
            &host("ntop.example:3000")
        ));
        assert!(!same_origin(
            "http://ntop.example:3001",
            &host("ntop.example:3000")
        ));
        // Without a port in Host, the origin's scheme decides the port (the scheme is not
        // compared, so that a TLS-terminating proxy in front of plain HTTP works).
        assert!(same_origin("https://ntop.example", &host("ntop.example")));
        assert!(!same_origin(
            "https://ntop.example",
            &host("ntop.example:80")
        ));
        assert!(!same_origin("null", &host("ntop.example")));
        assert!(!same_origin("ftp://ntop.example", &host("ntop.example")));
        assert!(!same_origin("http://ntop.example/x", &host("ntop.example")));
        assert!(!same_origin("http://a@ntop.example", &host("ntop.example")));
    }

    #[test]
    fn forms() {
        assert_eq!(
            form_fields(b"username=admin&password=p%40ss+w%C3%B6rd&&x").unwrap(),
            [
                ("username".into(), "admin".into()),
                ("password".into(), "p@ss wörd".into()),
                ("x".into(), String::new())
            ]
        );
        assert!(form_fields(b"a=%zz").is_err());
        assert!(form_fields(b"a=%4").is_err());
        assert!(form_fields(b"a=%ff").is_err(), "not UTF-8");
        let fields = form_fields(b"a=1&a=2").unwrap();
        assert!(field(&fields, "a").is_err());
        assert_eq!(field(&fields, "b").unwrap(), None);
    }

    #[test]
    fn basic_credentials() {
        assert_eq!(
            decode_basic(&STANDARD.encode("admin:pa:ss")),
            Some(("admin".into(), "pa:ss".into()))
        );
        assert_eq!(decode_basic(&STANDARD.encode("admin")), None);
        assert_eq!(decode_basic("!!!"), None);
    }

    #[test]
    fn the_login_page_style_matches_its_policy() {
        let page = login_page(StatusCode::OK, None);
        let csp = page.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains(&STANDARD.encode(Sha256::digest(STYLE.as_bytes()))));
        assert!(csp.starts_with("default-src 'none'"));
    }
}
