//! The web dashboard's page and assets (see `docs/DASHBOARD.md`): `GET /` serves `index.html`,
//! `GET /static/<name>` the scripts, the style sheet and the icon, all compiled into the binary
//! from `ntop/assets/` (no CDN, no files to install: firewalls are often offline).
//!
//! Runs in the HTTP server's tasks. Nothing is read from disk: each asset is a `&'static [u8]`
//! with its `ETag` (a SHA-256 of its bytes, computed once, at the first request), so a response
//! is a header map and a pointer. Assets are served with `Cache-Control: no-cache`: browsers
//! keep them and revalidate with `If-None-Match` (a `304` without body), so an upgraded daemon
//! is never shown with stale scripts.
//!
//! Every response carries the page's Content-Security-Policy (no inline script or style, nothing
//! from elsewhere), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `X-Frame-Options: DENY`. `/` is behind the login like the API (the guard in
//! [`crate::auth::web`]); `/static/` is public (the login page needs nothing from it, but a
//! browser asks for the icon before it logs in).

use std::{fmt::Write as _, sync::LazyLock};

use sha2::{Digest as _, Sha256};
use warp::{
    Filter, Rejection,
    http::{
        HeaderValue, StatusCode,
        header::{
            CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
            REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
        },
    },
    path::Tail,
    reply::Response,
};

use super::{handlers::json, models::ErrorBody};

/// The page's Content-Security-Policy (docs/DASHBOARD.md).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; form-action 'self'; \
                       frame-ancestors 'none'; base-uri 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every asset under `/static/`: name, content type, bytes.
const STATIC: &[(&str, &str, &[u8])] = &[
    ("app.js", JS, include_bytes!("../../assets/app.js")),
    ("api.js", JS, include_bytes!("../../assets/api.js")),
    ("dom.js", JS, include_bytes!("../../assets/dom.js")),
    ("format.js", JS, include_bytes!("../../assets/format.js")),
    ("chart.js", JS, include_bytes!("../../assets/chart.js")),
    ("live.js", JS, include_bytes!("../../assets/live.js")),
    ("summary.js", JS, include_bytes!("../../assets/summary.js")),
    ("hosts.js", JS, include_bytes!("../../assets/hosts.js")),
    ("host.js", JS, include_bytes!("../../assets/host.js")),
    (
        "protocols.js",
        JS,
        include_bytes!("../../assets/protocols.js"),
    ),
    (
        "interfaces.js",
        JS,
        include_bytes!("../../assets/interfaces.js"),
    ),
    ("admin.js", JS, include_bytes!("../../assets/admin.js")),
    ("app.css", CSS, include_bytes!("../../assets/app.css")),
    (
        "favicon.svg",
        SVG,
        include_bytes!("../../assets/favicon.svg"),
    ),
];

/// `index.html`.
const INDEX: &[u8] = include_bytes!("../../assets/index.html");

/// One servable asset.
#[derive(Debug)]
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    /// `"<first 128 bits of the SHA-256, hex>"`, quotes included.
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, bytes: &'static [u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let hex = digest[..16].iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        Self {
            content_type,
            bytes,
            // Hex digits in quotes: always a valid header value.
            etag: HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\"")),
        }
    }
}

/// The page and the assets, hashed at first use.
static ASSETS: LazyLock<(Asset, Vec<(&'static str, Asset)>)> = LazyLock::new(|| {
    (
        Asset::new(HTML, INDEX),
        STATIC
            .iter()
            .map(|&(name, content_type, bytes)| (name, Asset::new(content_type, bytes)))
            .collect(),
    )
});

/// `GET /` (and `HEAD`), `GET /static/<name>`, and `GET /favicon.ico` (the SVG icon: browsers
/// ask for it by themselves on any page, e.g. a JSON URL opened directly, and log a 404 when it
/// is missing). Rejects other paths; other methods on these get `405`. Unknown assets get
/// `404 not_found` (JSON).
pub fn routes() -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let get_or_head = warp::get().or(warp::head()).unify();
    let if_none_match = warp::header::optional::<String>(IF_NONE_MATCH.as_str());
    let index = warp::path::end()
        .and(get_or_head)
        .and(if_none_match)
        .map(|inm: Option<String>| serve(&ASSETS.0, inm.as_deref()));
    let assets = warp::path("static")
        .and(warp::path::tail())
        .and(get_or_head)
        .and(if_none_match)
        .map(|tail: Tail, inm: Option<String>| asset(tail.as_str(), inm.as_deref()));
    let favicon = warp::path!("favicon.ico")
        .and(get_or_head)
        .and(if_none_match)
        .map(|inm: Option<String>| asset("favicon.svg", inm.as_deref()));
    index.or(assets).unify().or(favicon).unify()
}

/// The response for `/static/<name>`.
fn asset(name: &str, if_none_match: Option<&str>) -> Response {
    match ASSETS.1.iter().find(|(n, _)| *n == name) {
        Some((_, asset)) => serve(asset, if_none_match),
        None => with_headers(json(
            StatusCode::NOT_FOUND,
            &ErrorBody {
                code: "not_found",
                message: format!(
                    "no asset called `{name}`; the dashboard is at / and its assets are {}",
                    STATIC
                        .iter()
                        .map(|(n, _, _)| format!("/static/{n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        )),
    }
}

/// `asset`, or `304 Not Modified` when `If-None-Match` names its `ETag`.
fn serve(asset: &Asset, if_none_match: Option<&str>) -> Response {
    let fresh = if_none_match.is_some_and(|v| matches_etag(v, &asset.etag));
    let mut response = if fresh {
        let mut r = Response::new(Vec::new().into());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(asset.bytes.into());
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let headers = response.headers_mut();
    headers.insert(ETAG, asset.etag.clone());
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_headers(response)
}

/// Whether an `If-None-Match` value (`*`, or a list of possibly weak entity tags) names `etag`.
fn matches_etag(if_none_match: &str, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag).as_bytes() == etag)
}

/// Adds the headers every dashboard response carries.
fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
#[path = "dashboard_tests.rs"]
mod tests;
