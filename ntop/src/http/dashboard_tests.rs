//! Serving the dashboard: content types, `ETag` and `304`, the security headers, unknown
//! assets, and every `data-testid` of docs/DASHBOARD.md present in the assets.

use warp::{
    Filter as _,
    http::{StatusCode, header},
};

use super::{CSP, STATIC, routes};
use crate::http::handle_rejection;

type Reply = warp::http::Response<warp::hyper::body::Bytes>;

async fn get(path: &str, if_none_match: Option<&str>) -> Reply {
    let mut request = warp::test::request().method("GET").path(path);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    request
        .reply(&routes().recover(handle_rejection).unify())
        .await
}

fn header<'a>(r: &'a Reply, name: &header::HeaderName) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn assert_security_headers(r: &Reply) {
    assert_eq!(header(r, &header::CONTENT_SECURITY_POLICY), CSP);
    assert_eq!(header(r, &header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header(r, &header::REFERRER_POLICY), "no-referrer");
    assert_eq!(header(r, &header::X_FRAME_OPTIONS), "DENY");
}

#[tokio::test]
async fn index_is_the_page_with_its_policy() {
    let r = get("/", None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        header(&r, &header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    assert_eq!(header(&r, &header::CACHE_CONTROL), "no-cache");
    assert_security_headers(&r);
    assert!(CSP.contains("script-src 'self'") && CSP.contains("style-src 'self'"));
    assert!(CSP.contains("frame-ancestors 'none'") && CSP.contains("base-uri 'none'"));
    let body = std::str::from_utf8(r.body()).unwrap();
    assert!(body.starts_with("<!DOCTYPE html>"));
    assert!(body.contains(r#"<script type="module" src="/static/app.js"></script>"#));
    // No inline script or style anywhere (the policy would block them).
    assert!(!body.contains("<style"));
    assert!(!body.contains("style="));
    assert!(!body.contains("<script>"));
    assert!(!body.contains("onclick") && !body.contains("onload"));
}

#[tokio::test]
async fn assets_have_their_content_types() {
    for (path, content_type) in [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/chart.js", "text/javascript; charset=utf-8"),
        ("/static/app.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let r = get(path, None).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&r, &header::CONTENT_TYPE), content_type, "{path}");
        assert_eq!(header(&r, &header::CACHE_CONTROL), "no-cache", "{path}");
        assert_security_headers(&r);
        let etag = header(&r, &header::ETAG);
        assert!(
            etag.len() == 34 && etag.starts_with('"') && etag.ends_with('"'),
            "{etag}"
        );
        assert!(!r.body().is_empty());
    }
}

#[tokio::test]
async fn every_asset_is_served_as_compiled_in() {
    for (name, _, bytes) in STATIC {
        let r = get(&format!("/static/{name}"), None).await;
        assert_eq!(r.status(), StatusCode::OK, "{name}");
        assert_eq!(r.body().as_ref(), *bytes, "{name}");
    }
}

#[tokio::test]
async fn if_none_match_gives_304() {
    let first = get("/static/app.js", None).await;
    let etag = header(&first, &header::ETAG).to_owned();

    let again = get("/static/app.js", Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.body().is_empty());
    assert_eq!(header(&again, &header::ETAG), etag);
    assert_eq!(header(&again, &header::CACHE_CONTROL), "no-cache");

    // In a list, weak, or `*`.
    for tag in [
        format!("\"x\", {etag}"),
        format!("W/{etag}"),
        "*".to_owned(),
    ] {
        let r = get("/static/app.js", Some(&tag)).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{tag}");
    }
    // Another tag: the asset.
    let other = get("/static/app.js", Some("\"0123\"")).await;
    assert_eq!(other.status(), StatusCode::OK);
    // Another asset's tag does not match this one.
    let css = get("/static/app.css", Some(&etag)).await;
    assert_eq!(css.status(), StatusCode::OK);

    let page = get("/", None).await;
    let page_tag = header(&page, &header::ETAG).to_owned();
    assert_ne!(page_tag, etag);
    let page_again = get("/", Some(&page_tag)).await;
    assert_eq!(page_again.status(), StatusCode::NOT_MODIFIED);
    assert_security_headers(&page_again);
}

#[tokio::test]
async fn unknown_assets_are_404_json() {
    for path in [
        "/static/nope.js",
        "/static/",
        "/static/../Cargo.toml",
        "/static/app.js/x",
    ] {
        let r = get(path, None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            header(&r, &header::CONTENT_TYPE),
            "application/json",
            "{path}"
        );
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["code"], "not_found", "{path}");
    }
}

#[tokio::test]
async fn other_paths_and_methods_are_not_served_here() {
    let app = routes().recover(handle_rejection).unify();
    let r = warp::test::request()
        .method("GET")
        .path("/index.html")
        .reply(&app)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = warp::test::request()
        .method("POST")
        .path("/")
        .reply(&app)
        .await;
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = warp::test::request()
        .method("HEAD")
        .path("/static/app.css")
        .reply(&app)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    // The page is not served under other paths (the API keeps them).
    assert!(
        warp::test::request()
            .path("/api/v1/interfaces")
            .filter(&routes())
            .await
            .is_err()
    );
}

/// A mistyped path (here the Hosts page without its `#`) gets the API's `{code, message}` 404,
/// and the message names every route of docs/API.md's table, `/metrics`, the dashboard's pages
/// and docs/API.md itself: whoever mistyped learns the right path from it.
#[tokio::test]
async fn not_found_names_every_route() {
    let r = get("/hosts", None).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, &header::CONTENT_TYPE), "application/json");
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    let fields = body.as_object().unwrap();
    assert_eq!(
        fields.keys().collect::<Vec<_>>(),
        ["code", "message"],
        "{body}"
    );
    assert_eq!(body["code"], "not_found");
    let message = body["message"].as_str().unwrap();

    // The table of routes at the top of docs/API.md: "| [`GET /api/v1/hosts`](#…) | … |".
    let doc = include_str!("../../../docs/API.md");
    let mut paths = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| [`")) {
        let route = line.split('|').nth(1).unwrap_or("");
        for quoted in route.split('`').skip(1).step_by(2) {
            if let Some(path) = quoted.split(' ').find(|w| w.starts_with('/')) {
                paths.push(path.to_owned());
            }
        }
    }
    assert!(paths.len() > 15, "routes of docs/API.md: {paths:?}");
    for path in paths
        .iter()
        .map(String::as_str)
        .chain(["/metrics", "/#/hosts"])
    {
        assert!(
            message.contains(path),
            "the 404 message does not name {path}: {message}"
        );
    }
    for method in ["GET", "POST", "DELETE"] {
        assert!(message.contains(method), "{method}: {message}");
    }
    assert!(message.contains("docs/API.md"), "{message}");
}

/// Every hook of docs/DASHBOARD.md's table is in the page or its scripts, and no script or
/// page uses inline styles.
#[test]
fn every_test_hook_exists() {
    let doc = include_str!("../../../docs/DASHBOARD.md");
    let hooks = doc
        .split("## Test hooks")
        .nth(1)
        .expect("docs/DASHBOARD.md has a test hooks section");
    let mut ids = Vec::new();
    for line in hooks.lines().filter(|l| l.starts_with("| `")) {
        let mut columns = line.split('|').skip(1);
        let (first, what) = (columns.next().unwrap_or(""), columns.next().unwrap_or(""));
        for id in first.split('`').skip(1).step_by(2) {
            if !id.starts_with("data-") {
                ids.push(id.to_owned());
            }
        }
        // "rows `host-row` with …"
        if let Some(rows) = what.split("rows `").nth(1) {
            ids.push(rows.split('`').next().unwrap_or("").to_owned());
        }
    }
    assert!(ids.len() > 30, "{ids:?}");
    let mut sources = String::from(std::str::from_utf8(super::INDEX).unwrap());
    for (name, _, bytes) in STATIC {
        let text = std::str::from_utf8(bytes).unwrap();
        if name.to_ascii_lowercase().ends_with(".js") {
            assert!(!text.contains("innerHTML"), "{name} uses innerHTML");
            assert!(!text.contains("'style'"), "{name} sets a style attribute");
        }
        sources.push_str(text);
    }
    for id in ids {
        if let Some(prefix) = id.strip_suffix("<key>") {
            // sort-<key>: one per sort key of the API.
            for key in crate::state::SortKey::ALL {
                let hook = format!("sort: '{}'", key.as_str());
                assert!(
                    sources.contains(&hook),
                    "no {prefix}{} ({hook})",
                    key.as_str()
                );
            }
            assert!(sources.contains("testid: `sort-${col.sort}`"));
            continue;
        }
        // `testid: 'x'` in a script, or a helper's argument `'x'`; `data-testid="x"` in the page.
        let quoted = [
            format!("data-testid=\"{id}\""),
            format!("testid: '{id}'"),
            format!("'{id}'"),
        ];
        let range = id.strip_prefix("range-").is_some_and(|key| {
            sources.contains("testid: `range-${r.key}`")
                && sources.contains(&format!("key: '{key}'"))
        });
        assert!(
            range || quoted.iter().any(|q| sources.contains(q.as_str())),
            "data-testid `{id}` of docs/DASHBOARD.md is missing from the dashboard"
        );
    }
}
