//! Route tests of the whole layer through `warp::test::request()`: [`app`] around the real
//! API ([`http::api`] on an empty state), checking status codes, headers and JSON fields.
//!
//! The password file is written with cheap argon2id parameters (64 KiB, one pass) so that
//! the many logins here cost microseconds; `password.rs` tests the default parameters.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use warp::{
    Filter, Rejection,
    http::{HeaderMap, StatusCode, header},
    hyper::body::Bytes,
    reply::Response,
    test::RequestBuilder,
};

use super::{Auth, AuthConfig, app, password, tokens};
use crate::{
    http::{self, ClientAddr, server::Https},
    state::State,
    store::DataDir,
};

/// A fresh, empty data directory for one test, removed when dropped.
pub(crate) struct Scratch(DataDir);

impl std::ops::Deref for Scratch {
    type Target = DataDir;
    fn deref(&self) -> &DataDir {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.path());
    }
}

pub(crate) fn scratch(name: &str) -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir: PathBuf = std::env::temp_dir().join(format!(
        "ntop-auth-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Scratch(DataDir::open(dir).unwrap())
}

const PASSWORD: &str = "test password";
const ALICE: &str = "198.18.0.1:40000";
const BOB: &str = "198.18.0.2:40000";

fn cheap_hash(dir: &DataDir) {
    let params = Params::new(64, 1, 1, None).unwrap();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .unwrap()
        .to_string();
    dir.write_private(password::FILE, phc.as_bytes()).unwrap();
}

fn load(name: &str, public_read: bool) -> (Scratch, Arc<Auth>) {
    let dir = scratch(name);
    cheap_hash(&dir);
    let auth = Auth::load(dir.clone(), AuthConfig { public_read }).unwrap();
    (dir, auth)
}

/// A stand-in for the Prometheus route, composed next to the API as the daemon does.
fn metrics() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("metrics")
        .and(warp::get())
        .map(|| Response::new("ntop_up 1\n".into()))
}

fn app_with(
    auth: &Arc<Auth>,
    secure: bool,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone + 'static {
    let inner = http::api(State::shared()).or(metrics()).unify();
    app(Arc::clone(auth), inner, secure)
}

fn from(addr: &str) -> RequestBuilder {
    warp::test::request().extension(ClientAddr(addr.parse::<SocketAddr>().unwrap()))
}

fn basic(password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("admin:{password}")))
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "status {}",
            self.status
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Asserts a JSON error with this status and code; returns the message.
    fn error(&self, status: StatusCode, code: &str) -> String {
        let body = self.json();
        assert_eq!(
            (self.status, body["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert_eq!(
            body.as_object().unwrap().len(),
            2,
            "only code and message: {body}"
        );
        body["message"].as_str().unwrap().to_owned()
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn cookie(&self) -> Option<&str> {
        self.header(header::SET_COOKIE)
    }

    /// The session id from `Set-Cookie`.
    fn session(&self) -> String {
        let cookie = self.cookie().expect("a session cookie");
        let value = cookie.strip_prefix("ntop_session=").unwrap();
        value.split(';').next().unwrap().to_owned()
    }
}

async fn send<F>(filter: &F, request: RequestBuilder) -> Reply
where
    F: Filter<Extract = (Response,), Error = std::convert::Infallible> + 'static,
{
    let response = request.reply(filter).await;
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.body().clone(),
    }
}

fn json_login(addr: &str, password: &str) -> RequestBuilder {
    from(addr)
        .method("POST")
        .path("/login")
        .json(&json!({"username": "admin", "password": password}))
}

fn form_login(addr: &str, body: &str) -> RequestBuilder {
    from(addr)
        .method("POST")
        .path("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// Logs in with JSON: (session id, CSRF token).
async fn session<F>(app: &F) -> (String, String)
where
    F: Filter<Extract = (Response,), Error = std::convert::Infallible> + 'static,
{
    let r = send(app, json_login(ALICE, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK);
    let csrf = r.json()["csrf_token"].as_str().unwrap().to_owned();
    (r.session(), csrf)
}

const PROTECTED: [(&str, &str); 11] = [
    ("GET", "/api/v1/interfaces"),
    ("GET", "/api/v1/hosts"),
    ("GET", "/api/v1/hosts?sort=bogus"),
    ("GET", "/api/v1/hosts/198.18.0.1"),
    ("GET", "/api/v1/protocols"),
    ("GET", "/api/v1/session"),
    ("GET", "/api/v1/tokens"),
    ("POST", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/0123456789abcdef"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/no-such-route"),
];

#[tokio::test]
async fn every_route_needs_credentials() {
    let (_dir, auth) = load("no-credentials", false);
    let app = app_with(&auth, false);
    for (method, path) in PROTECTED
        .into_iter()
        .chain([("GET", "/"), ("POST", "/api/v1/hosts")])
    {
        let r = send(&app, from(ALICE).method(method).path(path)).await;
        let message = r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(
            message.contains("log in at /login"),
            "{method} {path}: {message}"
        );
        assert_eq!(
            r.header(header::WWW_AUTHENTICATE),
            Some(r#"Basic realm="ntop", charset="UTF-8""#),
            "{method} {path}"
        );
        assert!(r.cookie().is_none());
    }
    // Public: health, and /static/ (no assets yet: the API's 404).
    let r = send(&app, from(ALICE).path("/api/v1/health")).await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let r = send(&app, from(ALICE).path("/static/app.js")).await;
    r.error(StatusCode::NOT_FOUND, "not_found");
    // The icon browsers ask for by themselves, also on a JSON URL (no dashboard here: 404).
    let r = send(&app, from(ALICE).path("/favicon.ico")).await;
    r.error(StatusCode::NOT_FOUND, "not_found");
    // A stale cookie gets a better message.
    let r = send(
        &app,
        from(ALICE).path("/api/v1/hosts").header(
            "cookie",
            format!("ntop_session={}", super::session::random_token()),
        ),
    )
    .await;
    let message = r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("session has expired"), "{message}");
}

#[tokio::test]
async fn the_login_page_is_self_contained() {
    let (_dir, auth) = load("page", false);
    let app = app_with(&auth, false);
    // Spawned: the server needs the filter's futures to be Send.
    let r = tokio::spawn({
        let app = app.clone();
        async move { send(&app, from(ALICE).path("/login")).await }
    })
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    let html = std::str::from_utf8(&r.body).unwrap();
    for part in [
        r#"<form method="post" action="/login">"#,
        r#"name="username""#,
        r#"name="password" type="password""#,
        r#"<button type="submit">"#,
    ] {
        assert!(html.contains(part), "{part} in {html}");
    }
    assert!(!html.contains("<script") && !html.contains("http://") && !html.contains("https://"));
    let csp = r.header(header::CONTENT_SECURITY_POLICY).unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert_eq!(r.header(header::X_FRAME_OPTIONS), Some("DENY"));
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));

    let r = send(&app, from(ALICE).method("PUT").path("/login")).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("GET, HEAD, POST"));
    let r = send(&app, from(ALICE).method("GET").path("/logout")).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("POST"));
}

#[tokio::test]
async fn form_login_sets_the_cookie_and_redirects() {
    let (_dir, auth) = load("form-login", false);
    let app = app_with(&auth, false);
    let r = send(
        &app,
        form_login(ALICE, "username=admin&password=test+password"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{:?}", r.body);
    assert_eq!(r.header(header::LOCATION), Some("/"));
    let id = r.session();
    assert_eq!(id.len(), 43);
    assert_eq!(
        r.cookie().unwrap(),
        format!("ntop_session={id}; HttpOnly; SameSite=Strict; Path=/")
    );
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));

    let cookie = format!("theme=dark; ntop_session={id}");
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/interfaces")
            .header("cookie", &cookie),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["interfaces"], json!([]));
    let r = send(&app, from(ALICE).path("/metrics").header("cookie", &cookie)).await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::OK, &b"ntop_up 1\n"[..])
    );
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/session")
            .header("cookie", &cookie),
    )
    .await;
    let body = r.json();
    assert_eq!(
        (body["user"].as_str(), body["auth"].as_str()),
        (Some("admin"), Some("session"))
    );
    assert_eq!(body["csrf_token"].as_str().unwrap().len(), 43);
    assert!(body["expires"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn the_cookie_is_secure_over_https() {
    let (_dir, auth) = load("secure", false);
    let login = || form_login(ALICE, "username=admin&password=test%20password");
    // One app for both listeners: the server marks TLS requests with `Https`.
    let app = app_with(&auth, false);
    let r = send(&app, login().extension(Https)).await;
    assert!(
        r.cookie()
            .unwrap()
            .ends_with("; HttpOnly; SameSite=Strict; Path=/; Secure")
    );
    let r = send(&app, login()).await;
    assert!(
        r.cookie().unwrap().ends_with("; Path=/"),
        "{:?}",
        r.cookie()
    );
    // Always, when asked (TLS terminated in front of ntop).
    let always = app_with(&auth, true);
    let r = send(&always, login()).await;
    assert!(r.cookie().unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn failed_logins_are_401_without_a_cookie() {
    let (_dir, auth) = load("login-fail", false);
    let app = app_with(&auth, false);
    let r = send(&app, json_login(ALICE, "wrong password")).await;
    let message = r.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert!(message.contains("wrong user name or password"), "{message}");
    assert!(r.cookie().is_none());
    let r = send(
        &app,
        from(BOB)
            .method("POST")
            .path("/login")
            .json(&json!({"username": "root", "password": PASSWORD})),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let r = send(&app, form_login(BOB, "username=admin&password=nope")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.header(header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert!(
        std::str::from_utf8(&r.body)
            .unwrap()
            .contains("Wrong user name or password.")
    );
    assert!(r.cookie().is_none());
    assert!(auth.sessions().is_empty());

    // Malformed requests are 400/415, and not counted as failures.
    let r = send(&app, form_login(BOB, "username=admin")).await;
    r.error(StatusCode::BAD_REQUEST, "bad_request");
    let r = send(
        &app,
        form_login(BOB, "username=admin&password=a&password=b"),
    )
    .await;
    r.error(StatusCode::BAD_REQUEST, "bad_request");
    let r = send(
        &app,
        from(BOB)
            .method("POST")
            .path("/login")
            .header("content-type", "application/json")
            .body("{"),
    )
    .await;
    r.error(StatusCode::BAD_REQUEST, "bad_request");
    let r = send(
        &app,
        from(BOB)
            .method("POST")
            .path("/login")
            .header("content-type", "text/plain")
            .body("admin"),
    )
    .await;
    r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let r = send(&app, json_login(BOB, PASSWORD)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "two failures and four bad requests do not block"
    );
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let (_dir, auth) = load("throttle", false);
    let app = app_with(&auth, false);
    for i in 0..5 {
        let r = send(&app, json_login(ALICE, "wrong password")).await;
        r.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(i < 4 || r.header(header::RETRY_AFTER).is_none());
    }
    for request in [
        json_login(ALICE, "wrong password"),
        json_login(ALICE, PASSWORD),
        form_login(ALICE, "username=admin&password=test+password"),
        from(ALICE)
            .path("/api/v1/hosts")
            .header("authorization", basic(PASSWORD)),
    ] {
        let r = send(&app, request).await;
        let message = r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        let retry: u64 = r.header(header::RETRY_AFTER).unwrap().parse().unwrap();
        assert!((55..=60).contains(&retry), "{retry}");
        assert!(
            message.contains(&format!("try again in {retry} s")),
            "{message}"
        );
        assert!(r.cookie().is_none());
    }
    // Another address is not affected, and IPv6 clients are throttled by /64.
    let r = send(&app, json_login(BOB, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK);
    for i in 0..6 {
        let addr = format!("[2001:db8:1:2::{i}]:1");
        let r = send(&app, json_login(&addr, "wrong password")).await;
        let expected = if i < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, expected, "attempt {i}");
    }
}

#[tokio::test]
async fn basic_auth() {
    let (_dir, auth) = load("basic", false);
    let app = app_with(&auth, false);
    let get = |path: &str, authorization: String| {
        from(ALICE)
            .path(path)
            .header("authorization", authorization)
    };
    let r = send(&app, get("/api/v1/hosts", basic(PASSWORD))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["total"], 0);
    let r = send(&app, get("/metrics", basic(PASSWORD))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, get("/api/v1/session", basic(PASSWORD))).await;
    assert_eq!(
        r.json(),
        json!({"user": "admin", "auth": "basic", "csrf_token": null, "expires": null})
    );
    // The API's own errors still come through.
    let r = send(&app, get("/api/v1/nope", basic(PASSWORD))).await;
    r.error(StatusCode::NOT_FOUND, "not_found");
    let r = send(&app, get("/api/v1/hosts?limit=x", basic(PASSWORD))).await;
    r.error(StatusCode::BAD_REQUEST, "invalid_parameter");
    let r = send(&app, get("/api/v1/hosts", basic(PASSWORD)).method("POST")).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    for authorization in [
        basic("wrong"),
        format!("Basic {}", STANDARD.encode(format!("root:{PASSWORD}"))),
        "Basic !!!".to_owned(),
        "Digest x".to_owned(),
    ] {
        let r = send(&app, get("/api/v1/hosts", authorization.clone())).await;
        let message = r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(!message.contains("log in at"), "{authorization}: {message}");
    }
    // Two Basic failures above; three more and the address is throttled.
    for _ in 0..3 {
        let r = send(&app, get("/metrics", basic("wrong"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = send(&app, get("/metrics", basic(PASSWORD))).await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn api_tokens() {
    let (dir, auth) = load("tokens", false);
    let app = app_with(&auth, false);
    let admin = |method: &str, path: &str| {
        from(ALICE)
            .method(method)
            .path(path)
            .header("authorization", basic(PASSWORD))
    };
    let r = send(
        &app,
        admin("POST", "/api/v1/tokens").json(&json!({"name": "prometheus"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let created = r.json();
    let mut keys: Vec<_> = created.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["created", "id", "name", "token"]);
    assert_eq!(created["name"], "prometheus");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("ntop_") && token.len() == 48, "{token}");

    // No body: a token without a name.
    let r = send(&app, admin("POST", "/api/v1/tokens")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["name"], "");

    let bearer = |path: &str, token: &str| {
        from(BOB)
            .path(path)
            .header("authorization", format!("Bearer {token}"))
    };
    let r = send(&app, bearer("/api/v1/interfaces", &token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, bearer("/metrics", &token)).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(&app, bearer("/api/v1/session", &token)).await;
    assert_eq!(r.json()["auth"], "token");

    let r = send(&app, admin("GET", "/api/v1/tokens")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        !std::str::from_utf8(&r.body).unwrap().contains(&token[5..]),
        "no secrets"
    );
    let list = r.json();
    let first = &list["tokens"][0];
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["name"], "prometheus");
    assert!(
        first["created"].is_string() && first["last_used"].is_string(),
        "{first}"
    );
    assert_eq!(list["tokens"][1]["last_used"], Value::Null);
    assert_eq!(first.as_object().unwrap().len(), 4, "{first}");

    // Tokens cannot manage tokens.
    for method in ["GET", "POST"] {
        let r = send(&app, bearer("/api/v1/tokens", &token).method(method)).await;
        r.error(StatusCode::FORBIDDEN, "forbidden");
    }
    let r = send(
        &app,
        bearer(&format!("/api/v1/tokens/{id}"), &token).method("DELETE"),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "forbidden");

    let r = send(&app, admin("PUT", "/api/v1/tokens")).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("GET, POST"));
    let r = send(&app, admin("GET", &format!("/api/v1/tokens/{id}"))).await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("DELETE"));

    let r = send(&app, admin("DELETE", &format!("/api/v1/tokens/{id}"))).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = send(&app, bearer("/api/v1/interfaces", &token)).await;
    let message = r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("revoked"), "{message}");
    let r = send(&app, admin("DELETE", &format!("/api/v1/tokens/{id}"))).await;
    r.error(StatusCode::NOT_FOUND, "token_not_found");
    let r = send(&app, bearer("/api/v1/interfaces", "ntop_not-a-token")).await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Bad bodies.
    let r = send(
        &app,
        admin("POST", "/api/v1/tokens").json(&json!({"nmae": "x"})),
    )
    .await;
    r.error(StatusCode::BAD_REQUEST, "bad_request");
    let r = send(
        &app,
        admin("POST", "/api/v1/tokens")
            .header("content-type", "text/plain")
            .body("x"),
    )
    .await;
    r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    // On disk: digests only; a restart keeps the remaining token.
    let file = std::fs::read_to_string(dir.file(tokens::FILE)).unwrap();
    assert!(!file.contains(&token[5..]));
    let reloaded = Auth::load(dir.clone(), AuthConfig::default()).unwrap();
    assert_eq!(reloaded.tokens().list().len(), 1);
}

#[tokio::test]
async fn session_writes_need_the_csrf_token() {
    let (_dir, auth) = load("csrf", false);
    let app = app_with(&auth, false);
    let (id, csrf) = session(&app).await;
    let post = || {
        from(ALICE)
            .method("POST")
            .path("/api/v1/tokens")
            .header("cookie", format!("ntop_session={id}"))
    };
    let r = send(&app, post()).await;
    let message = r.error(StatusCode::FORBIDDEN, "csrf");
    assert!(message.contains("X-CSRF-Token"), "{message}");
    let r = send(&app, post().header("x-csrf-token", "0".repeat(43))).await;
    r.error(StatusCode::FORBIDDEN, "csrf");
    let r = send(&app, post().header("x-csrf-token", &csrf)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token_id = r.json()["id"].as_str().unwrap().to_owned();
    let r = send(
        &app,
        from(ALICE)
            .method("DELETE")
            .path(&format!("/api/v1/tokens/{token_id}"))
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "csrf");
    // Reads need none.
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/tokens")
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn cross_origin_requests_are_refused() {
    let (_dir, auth) = load("origin", false);
    let app = app_with(&auth, false);
    let (id, csrf) = session(&app).await;
    let host = "ntop.example:3000";
    let with = |origin: &str| {
        from(ALICE)
            .method("POST")
            .path("/api/v1/tokens")
            .header("host", host)
            .header("origin", origin)
    };
    // Basic, which a browser replays on its own after a prompt.
    let r = send(
        &app,
        with("https://evil.example").header("authorization", basic(PASSWORD)),
    )
    .await;
    let message = r.error(StatusCode::FORBIDDEN, "cross_origin");
    assert!(message.contains("https://evil.example"), "{message}");
    let r = send(&app, with("null").header("authorization", basic(PASSWORD))).await;
    r.error(StatusCode::FORBIDDEN, "cross_origin");
    let r = send(
        &app,
        with("http://ntop.example:3000").header("authorization", basic(PASSWORD)),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // A session with the right CSRF token, from the wrong origin.
    let r = send(
        &app,
        with("http://ntop.example:3001")
            .header("cookie", format!("ntop_session={id}"))
            .header("x-csrf-token", &csrf),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "cross_origin");
    // Reads too, and login (login CSRF), before the password is checked.
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/hosts")
            .header("host", host)
            .header("origin", "http://evil.example")
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "cross_origin");
    let r = send(
        &app,
        json_login(BOB, PASSWORD)
            .header("host", host)
            .header("origin", "http://evil.example"),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "cross_origin");
    let r = send(
        &app,
        json_login(BOB, PASSWORD)
            .header("host", host)
            .header("origin", "http://ntop.example:3000"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // An Origin without a Host to compare with is refused.
    let r = send(
        &app,
        json_login(BOB, PASSWORD).header("origin", "http://ntop.example:3000"),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "cross_origin");
}

#[tokio::test]
async fn public_read_allows_reads_only() {
    let (_dir, auth) = load("public-read", true);
    let app = app_with(&auth, false);
    for path in [
        "/api/v1/interfaces",
        "/api/v1/hosts",
        "/api/v1/protocols",
        "/metrics",
    ] {
        let r = send(&app, from(ALICE).path(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let r = send(&app, from(ALICE).path("/api/v1/nope")).await;
    r.error(StatusCode::NOT_FOUND, "not_found");
    for (method, path) in [
        ("GET", "/api/v1/tokens"),
        ("POST", "/api/v1/tokens"),
        ("DELETE", "/api/v1/tokens/0123456789abcdef"),
        ("GET", "/api/v1/session"),
        ("POST", "/api/v1/hosts"),
    ] {
        let r = send(&app, from(ALICE).method(method).path(path)).await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // Wrong credentials are still wrong.
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/hosts")
            .header("authorization", basic("wrong")),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (_dir, auth) = load("oversize", false);
    let app = app_with(&auth, false);
    let big = format!("username=admin&password={}", "x".repeat(5000));
    let r = send(&app, form_login(ALICE, &big)).await;
    let message = r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(message.contains("4096 bytes"), "{message}");
    // A body longer than its Content-Length says (as a chunked one would be) is cut off too.
    let r = send(&app, form_login(ALICE, &big).header("content-length", "10")).await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = send(
        &app,
        from(ALICE)
            .method("POST")
            .path("/api/v1/tokens")
            .header("authorization", basic(PASSWORD))
            .json(&json!({"name": "x".repeat(5000)})),
    )
    .await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = send(&app, from(ALICE).method("POST").path("/logout").body(&big)).await;
    r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // At the limit: read, and an ordinary failure.
    let exact = format!("username=admin&password={}", "x".repeat(4096 - 24));
    assert_eq!(exact.len(), 4096);
    let r = send(&app, form_login(ALICE, &exact)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let (_dir, auth) = load("logout", false);
    let app = app_with(&auth, true);
    let (id, csrf) = session(&app).await;
    let cookie = format!("ntop_session={id}");
    let logout = || {
        from(ALICE)
            .method("POST")
            .path("/logout")
            .header("cookie", &cookie)
    };
    let r = send(&app, logout()).await;
    r.error(StatusCode::FORBIDDEN, "csrf");
    let r = send(&app, logout().header("x-csrf-token", &csrf)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        r.cookie(),
        Some("ntop_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/; Secure")
    );
    let r = send(
        &app,
        from(ALICE).path("/api/v1/hosts").header("cookie", &cookie),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(auth.sessions().is_empty());

    // The form variant (no JavaScript): the token as a form field, then back to the login.
    let (id, csrf) = session(&app).await;
    let r = send(
        &app,
        from(ALICE)
            .method("POST")
            .path("/logout")
            .header("cookie", format!("ntop_session={id}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf_token={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION), Some("/login"));
    assert!(r.cookie().unwrap().contains("Max-Age=0"));
    assert!(auth.sessions().is_empty());
    // Without a session: nothing to end, the cookie is cleared anyway.
    let r = send(&app, from(ALICE).method("POST").path("/logout")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.cookie().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn a_changed_password_ends_sessions() {
    let (dir, auth) = load("reload", false);
    let app = app_with(&auth, false);
    let (id, _) = session(&app).await;
    assert!(!auth.reload_password().unwrap(), "unchanged");
    assert_eq!(auth.sessions().len(), 1);
    cheap_hash(&dir);
    assert!(auth.reload_password().unwrap());
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/hosts")
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[test]
fn loading_needs_a_password() {
    let dir = scratch("load-none");
    let err = Auth::load(dir.clone(), AuthConfig::default()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "set one with `ntop -A -P {}`",
            dir.path().display()
        )),
        "{err}"
    );
}

/// `POST /api/v1/reset` behind the layer: the admin's Basic credentials reset the totals; an API
/// token may not (403), an anonymous reader may not (401), and `GET` is not the way (405).
#[tokio::test]
async fn reset_is_for_the_admin_only() {
    use crate::state::tests::sample;
    let (_dir, auth) = load("reset", true);
    let state = State::shared();
    state
        .write()
        .unwrap()
        .ingest(&sample(0).iface(2, "eth0").proto(2, 0, 17, 1000, 10).build());
    let info = http::admin::RunInfo {
        version: "test",
        started: 0,
        pin_dir: None,
        readopted: false,
        detach_on_stop: false,
        refresh_interval_ms: 1000,
    };
    let inner = http::api(state.clone())
        .or(http::admin::routes(
            state.clone(),
            crate::persist::SharedStatus::default(),
            info,
        ))
        .unify();
    let app = app(Arc::clone(&auth), inner, false);
    let rx = || state.read().unwrap().interface("eth0").unwrap().rx.bytes;

    let r = send(&app, from(ALICE).method("POST").path("/api/v1/reset")).await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    let token = auth
        .tokens()
        .create("script", std::time::SystemTime::now())
        .unwrap()
        .token;
    let r = send(
        &app,
        from(ALICE)
            .method("POST")
            .path("/api/v1/reset")
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    let message = r.error(StatusCode::FORBIDDEN, "forbidden");
    assert!(message.contains("reset"), "{message}");
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/reset")
            .header("authorization", basic(PASSWORD)),
    )
    .await;
    let message = r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("POST"));
    assert!(message.contains("only POST"), "{message}");
    assert_eq!(rx(), 1000, "nothing was reset yet");

    let r = send(
        &app,
        from(ALICE)
            .method("POST")
            .path("/api/v1/reset")
            .header("authorization", basic(PASSWORD)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.json()["counting_since"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(rx(), 0);
}

// ---- Issue 5: browsers sent to the login page, admin routes, changing the password ----

/// The API with the config and log routes, as the daemon composes them.
fn app_with_admin(
    auth: &Arc<Auth>,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone + 'static {
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(["ntop"]).unwrap();
    let config = http::admin::RunConfig::new(
        &cli,
        vec!["veth0".into()],
        &crate::subnets::Subnets::default(),
        1,
        0,
    );
    let ring = Arc::new(crate::logging::LogRing::new(10, 1000));
    ring.push("2023-11-14T22:13:20.000000Z  INFO ntop: started");
    let inner = http::api(State::shared())
        .or(metrics())
        .unify()
        .or(http::admin::config_and_log(config, ring))
        .unify();
    app(Arc::clone(auth), inner, false)
}

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test]
async fn browsers_without_a_session_are_sent_to_the_login_page() {
    let (_dir, auth) = load("redirect", false);
    let app = app_with(&auth, false);
    for (method, path) in [("GET", "/"), ("HEAD", "/"), ("GET", "/index.html")] {
        let r = send(
            &app,
            from(ALICE).method(method).path(path).header("accept", HTML),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{method} {path}");
        assert_eq!(
            r.header(header::LOCATION),
            Some("/login"),
            "{method} {path}"
        );
        assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    }
    // A stale cookie too.
    let r = send(
        &app,
        from(ALICE).path("/").header("accept", "TEXT/HTML").header(
            "cookie",
            format!("ntop_session={}", super::session::random_token()),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // API clients, /metrics, other methods, non-HTML clients and wrong credentials: 401 JSON.
    for request in [
        from(ALICE).path("/api/v1/hosts").header("accept", HTML),
        from(ALICE)
            .path("/api/v1/no-such-route")
            .header("accept", HTML),
        from(ALICE).path("/metrics").header("accept", HTML),
        from(ALICE).path("/").header("accept", "application/json"),
        from(ALICE).path("/"),
        from(ALICE).method("POST").path("/").header("accept", HTML),
        from(ALICE)
            .path("/")
            .header("accept", HTML)
            .header("authorization", basic("wrong password")),
        from(ALICE)
            .path("/")
            .header("accept", "text/htmlx, application/json"),
    ] {
        let r = send(&app, request).await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(r.header(header::LOCATION).is_none());
    }
    // With a session, the request goes through (here to the API's 404: no dashboard in this
    // test app).
    let (id, _) = session(&app).await;
    let r = send(
        &app,
        from(ALICE)
            .path("/")
            .header("accept", HTML)
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    r.error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn admin_routes_refuse_tokens_and_anonymous_readers() {
    let (_dir, auth) = load("admin-routes", true);
    let app = app_with_admin(&auth);
    let token = auth
        .tokens()
        .create("script", std::time::SystemTime::now())
        .unwrap()
        .token;
    for (method, path) in [
        ("GET", "/api/v1/config"),
        ("GET", "/api/v1/log"),
        ("POST", "/api/v1/password"),
    ] {
        let r = send(
            &app,
            from(ALICE)
                .method(method)
                .path(path)
                .header("authorization", format!("Bearer {token}"))
                .json(&json!({"current": PASSWORD, "new": "a new password"})),
        )
        .await;
        let message = r.error(StatusCode::FORBIDDEN, "forbidden");
        assert!(message.contains("change the password"), "{message}");
        // --web-public-read does not open them.
        let r = send(&app, from(ALICE).method(method).path(path)).await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The admin reads them.
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/config")
            .header("authorization", basic(PASSWORD)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["interfaces"], json!(["veth0"]));
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/log?lines=5")
            .header("authorization", basic(PASSWORD)),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            json!({"lines": ["2023-11-14T22:13:20.000000Z  INFO ntop: started"]})
        )
    );
    // Tokens still read the data.
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/interfaces")
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
}

fn change(addr: &str, session: Option<(&str, Option<&str>)>, body: &Value) -> RequestBuilder {
    let mut r = from(addr)
        .method("POST")
        .path("/api/v1/password")
        .json(body);
    if let Some((id, csrf)) = session {
        r = r.header("cookie", format!("ntop_session={id}"));
        if let Some(csrf) = csrf {
            r = r.header("x-csrf-token", csrf);
        }
    }
    r
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one story: each refusal, then the change"
)]
async fn changing_the_password_from_a_session() {
    let (dir, auth) = load("change", false);
    let app = app_with_admin(&auth);
    let (id, csrf) = session(&app).await;
    let other = send(&app, json_login(BOB, PASSWORD)).await.session();
    assert_eq!(auth.sessions().len(), 2);
    let mine = Some((id.as_str(), Some(csrf.as_str())));
    let new = "correct horse battery";

    // Without the CSRF token.
    let r = send(
        &app,
        change(
            ALICE,
            Some((&id, None)),
            &json!({"current": PASSWORD, "new": new}),
        ),
    )
    .await;
    r.error(StatusCode::FORBIDDEN, "csrf");
    // Wrong current password: 403, not 401 (which would log the dashboard out).
    let r = send(
        &app,
        change(ALICE, mine, &json!({"current": "not it", "new": new})),
    )
    .await;
    let message = r.error(StatusCode::FORBIDDEN, "wrong_password");
    assert!(message.contains("`current`"), "{message}");
    // A new password that `ntop -A` would refuse.
    for (weak, what) in [("short", "too short (5 characters)"), ("", "is empty")] {
        let r = send(
            &app,
            change(ALICE, mine, &json!({"current": PASSWORD, "new": weak})),
        )
        .await;
        let message = r.error(StatusCode::BAD_REQUEST, "weak_password");
        assert!(
            message.contains(what) && message.contains("at least 8"),
            "{message}"
        );
    }
    // Malformed requests.
    let r = send(&app, change(ALICE, mine, &json!({"current": PASSWORD}))).await;
    let message = r.error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("\"new\""), "{message}");
    let r = send(
        &app,
        from(ALICE)
            .method("POST")
            .path("/api/v1/password")
            .header("cookie", format!("ntop_session={id}"))
            .header("x-csrf-token", &csrf)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("current=x&new=y"),
    )
    .await;
    r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/password")
            .header("cookie", format!("ntop_session={id}")),
    )
    .await;
    r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert_eq!(r.header(header::ALLOW), Some("POST"));
    assert_eq!(auth.sessions().len(), 2, "nothing changed yet");

    // Success: the caller's session goes on, the other one ends.
    let r = send(
        &app,
        change(ALICE, mine, &json!({"current": PASSWORD, "new": new})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            json!({"sessions_ended": 1, "session_kept": true})
        )
    );
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let with_cookie = |id: &str| {
        from(ALICE)
            .path("/api/v1/session")
            .header("cookie", format!("ntop_session={id}"))
    };
    assert_eq!(send(&app, with_cookie(&id)).await.status, StatusCode::OK);
    send(&app, with_cookie(&other))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    // The new password works, the old one does not, on disk too.
    let basic_get = |pw: &str| {
        from(BOB)
            .path("/api/v1/interfaces")
            .header("authorization", basic(pw))
    };
    assert_eq!(send(&app, basic_get(new)).await.status, StatusCode::OK);
    send(&app, basic_get(PASSWORD))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(password::verify(&dir, new).unwrap());
    assert!(!password::verify(&dir, PASSWORD).unwrap());
    assert_eq!(
        std::fs::metadata(dir.file(password::FILE))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap(),
        0o600
    );
    // A SIGHUP reload sees the same hash: no session ends.
    assert!(!auth.reload_password().unwrap());
    assert_eq!(auth.sessions().len(), 1);
    let r = send(&app, json_login(BOB, new)).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_with_basic_ends_every_session_and_is_throttled() {
    let (_dir, auth) = load("change-basic", false);
    let app = app_with_admin(&auth);
    let _ = session(&app).await;
    let carol = "198.18.0.3:40000";
    // Wrong current passwords count as failed logins of the client's address.
    for _ in 0..5 {
        let r = send(
            &app,
            change(
                carol,
                None,
                &json!({"current": "nope", "new": "new password"}),
            )
            .header("authorization", basic(PASSWORD)),
        )
        .await;
        r.error(StatusCode::FORBIDDEN, "wrong_password");
    }
    let r = send(
        &app,
        change(
            carol,
            None,
            &json!({"current": PASSWORD, "new": "new password"}),
        )
        .header("authorization", basic(PASSWORD)),
    )
    .await;
    r.error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.header(header::RETRY_AFTER).is_some());
    // From another address, with Basic: no session of the caller to keep.
    let r = send(
        &app,
        change(
            BOB,
            None,
            &json!({"current": PASSWORD, "new": "new password"}),
        )
        .header("authorization", basic(PASSWORD)),
    )
    .await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            json!({"sessions_ended": 1, "session_kept": false})
        )
    );
    assert!(auth.sessions().is_empty());
}

/// A 401 to the dashboard's own requests (`X-Requested-With`, or a session cookie as an
/// `EventSource` sends it) has no Basic challenge, so the browser shows no password dialog and
/// the page can go to `/login`; scripts still get the challenge.
#[tokio::test]
async fn no_basic_challenge_for_the_page() {
    let (_dir, auth) = load("challenge", false);
    let app = app_with(&auth, false);
    let r = send(&app, from(ALICE).path("/api/v1/interfaces")).await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(
        r.header(header::WWW_AUTHENTICATE).is_some(),
        "scripts get it"
    );
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/interfaces")
            .header("x-requested-with", "XMLHttpRequest"),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.header(header::WWW_AUTHENTICATE), None);
    let r = send(
        &app,
        from(ALICE)
            .path("/api/v1/events")
            .header("cookie", "ntop_session=ended"),
    )
    .await;
    r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(r.header(header::WWW_AUTHENTICATE), None);
}

/// The login page lets the browser send its origin with the form (`Referrer-Policy:
/// same-origin`; `no-referrer` makes Chromium send `Origin: null`, which is refused) and
/// names the dashboard's icon.
#[tokio::test]
async fn login_page_headers() {
    let (_dir, auth) = load("login-headers", false);
    let app = app_with(&auth, false);
    let r = send(&app, from(ALICE).path("/login")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header(header::REFERRER_POLICY), Some("same-origin"));
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("/static/favicon.svg"), "{body}");
    assert!(
        r.header(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|c| c.contains("img-src 'self'")),
        "the icon is allowed"
    );
}
