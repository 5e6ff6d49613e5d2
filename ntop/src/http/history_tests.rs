//! Tests of the history and dump routes through `warp::test::request()`: a history database in a
//! temporary data directory filled with known points, a state built from hand-made samples,
//! and a fixed clock. Every expected number is worked out by hand in the comments.

use std::{
    convert::Infallible,
    fs,
    net::IpAddr,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ntop_common::counters::{L4Class, RECEIVED, SENT};
use serde_json::{Value, json};
use warp::{
    Filter,
    http::{StatusCode, header},
    reply::Response,
};

use super::{handle_rejection, history::history_api_at};
use crate::{
    history::{self, Counters, History, HistoryConfig, Points},
    state::{SharedState, State, tests::sample},
    store::DataDir,
};

/// The clock of every test: 2024-03-01T10:30:00Z, a Friday.
const NOW: u64 = 1_709_289_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn at(t: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t)
}

/// A fresh temporary data directory, removed on drop.
struct Tmp(PathBuf, DataDir);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    let p = std::env::temp_dir().join(format!("ntop-http-hist-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    let d = DataDir::open(&p).unwrap();
    Tmp(p, d)
}

fn c(rx_bytes: u64, rx_packets: u64, tx_bytes: u64, tx_packets: u64) -> Counters {
    Counters {
        rx_bytes,
        rx_packets,
        tx_bytes,
        tx_packets,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn host_point(t: u64, iface: &str, addr: &str, counters: Counters) -> (SystemTime, Points) {
    (
        at(t),
        Points {
            hosts: vec![(iface.into(), ip(addr), counters)],
            ..Points::default()
        },
    )
}

/// The history every test reads (the writer stays open, as in the daemon):
///
/// Host 192.0.2.10 (rx = received by the host, tx = sent by it):
/// - G eth0 2023-04-01T00:30Z (1680309000): 64000/640, 6400/64
/// - F eth0 2023-03-31T12:00Z (1680264000): 32000/320, 3200/32 (before the 12 months)
/// - E eth0 2024-01-15T06:00Z (1705298400): 16000/160, 1600/16
/// - D eth0 2024-02-25T22:30Z (1708900200): 8000/80, 800/8 (a Sunday)
/// - C eth0 2024-02-26T12:00Z (1708948800): 4000/40, 400/4 (the Monday of this week)
/// - H eth1 2024-02-29T12:00Z (1709208000): 5/1, 7/1
/// - B eth0 2024-02-29T23:30Z (1709249400): 2000/20, 200/2
/// - A eth0 2024-03-01T09:10Z (1709284200): 1000/10, 100/1
///
/// After `downsample_and_expire(NOW)` host minutes before 2024-02-29T10:00Z are hour rows:
/// D is the hour row of 22:00Z, G of 00:00Z; H, B and A stay minute rows.
///
/// Host 198.51.100.7 (only in the history) eth0 2024-02-20T08:00Z (1708416000): 9/1, 0/0.
///
/// Interface eth0, 1 s rows at NOW-600+i (2024-03-01T10:20:00Z + i s), i = 0..10:
/// rx 100*(i+1) bytes / i+1 packets, tx 10/1: sums rx 5500/55, tx 100/10.
/// Protocols at the same seconds: tcp over IPv4 (slot 6) 40/1, 4/1 each (sums 400/10, 40/10);
/// tcp over IPv6 (slot 262) 60/1, 6/1 each (sums 600/10, 60/10); arp (slot 512) 60/1, 0/0 for
/// i = 0..3 only (sums 180/3).
/// Interface eth0 two days earlier, 2024-02-28T10:30Z (1709116200) + k min, k = 0..3: rx
/// 1000/10 each (minute rows after downsampling).
/// Interface eth9 (only in the history) at NOW-100: rx 77/7, tx 0/0.
fn history_fixture(name: &str) -> (Tmp, History) {
    let t = tmp(name);
    let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
    let host = "192.0.2.10";
    let mut points = vec![
        host_point(1_680_264_000, "eth0", host, c(32_000, 320, 3200, 32)),
        host_point(1_680_309_000, "eth0", host, c(64_000, 640, 6400, 64)),
        host_point(1_705_298_400, "eth0", host, c(16_000, 160, 1600, 16)),
        host_point(1_708_416_000, "eth0", "198.51.100.7", c(9, 1, 0, 0)),
        host_point(1_708_900_200, "eth0", host, c(8000, 80, 800, 8)),
        host_point(1_708_948_800, "eth0", host, c(4000, 40, 400, 4)),
    ];
    for k in 0..3 {
        points.push((
            at(1_709_116_200 + k * 60),
            Points {
                interfaces: vec![("eth0".into(), c(1000, 10, 0, 0))],
                ..Points::default()
            },
        ));
    }
    points.extend([
        host_point(1_709_208_000, "eth1", host, c(5, 1, 7, 1)),
        host_point(1_709_249_400, "eth0", host, c(2000, 20, 200, 2)),
        host_point(1_709_284_200, "eth0", host, c(1000, 10, 100, 1)),
    ]);
    for i in 0..10 {
        let mut protocols = vec![
            ("eth0".into(), 6, c(40, 1, 4, 1)),
            ("eth0".into(), 262, c(60, 1, 6, 1)),
        ];
        if i < 3 {
            protocols.push(("eth0".into(), 512, c(60, 1, 0, 0)));
        }
        points.push((
            at(NOW - 600 + i),
            Points {
                interfaces: vec![("eth0".into(), c(100 * (i + 1), i + 1, 10, 1))],
                protocols,
                hosts: Vec::new(),
            },
        ));
    }
    points.push((
        at(NOW - 100),
        Points {
            interfaces: vec![("eth9".into(), c(77, 7, 0, 0))],
            ..Points::default()
        },
    ));
    for (t, p) in &points {
        h.record(*t, p).unwrap();
    }
    h.flush().unwrap();
    h.downsample_and_expire(now()).unwrap();
    (t, h)
}

/// One interface, eth0 (2), with 192.0.2.10 on it.
fn one_iface() -> SharedState {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(2, "eth0")
            .host("192.0.2.10", 2, RECEIVED, L4Class::Tcp, 1, 1)
            .build(),
    );
    Arc::new(RwLock::new(s))
}

/// eth0 (2) and eth1 (3); 192.0.2.10 on both, 192.0.2.77 (no history) on eth0.
fn two_ifaces() -> SharedState {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(2, "eth0")
            .iface(3, "eth1")
            .host("192.0.2.10", 2, RECEIVED, L4Class::Tcp, 1, 1)
            .host("192.0.2.10", 3, RECEIVED, L4Class::Tcp, 1, 1)
            .host("192.0.2.77", 2, SENT, L4Class::Udp, 1, 1)
            .build(),
    );
    Arc::new(RwLock::new(s))
}

fn app(
    state: &SharedState,
    dir: &DataDir,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + 'static {
    history_api_at(state.clone(), dir.clone(), now)
        .recover(handle_rejection)
        .unify()
}

/// The response `warp::test` gives: the body collected.
type Reply = warp::http::Response<warp::hyper::body::Bytes>;

async fn request(state: &SharedState, dir: &DataDir, method: &str, path: &str) -> Reply {
    warp::test::request()
        .method(method)
        .path(path)
        .reply(&app(state, dir))
        .await
}

async fn get(state: &SharedState, dir: &DataDir, path: &str) -> (StatusCode, Value) {
    let response = request(state, dir, "GET", path).await;
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json",
        "{path}"
    );
    let body: Value = serde_json::from_slice(response.body()).expect("a JSON body");
    (response.status(), body)
}

async fn ok(state: &SharedState, dir: &DataDir, path: &str) -> Value {
    let (status, body) = get(state, dir, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Asserts an error: status, code, and a message; returns the message.
async fn error(state: &SharedState, dir: &DataDir, path: &str, status: u16, code: &str) -> String {
    let (got, body) = get(state, dir, path).await;
    assert_eq!(got.as_u16(), status, "{path}: {body}");
    assert_eq!(body["code"], code, "{path}: {body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    let message = body["message"].as_str().unwrap().to_owned();
    assert!(message.len() > 30, "{message}");
    message
}

fn point(t: u64, rx_bytes: u64, rx_packets: u64, tx_bytes: u64, tx_packets: u64) -> Value {
    json!({"t": t, "rx_bytes": rx_bytes, "rx_packets": rx_packets,
           "tx_bytes": tx_bytes, "tx_packets": tx_packets})
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/history

#[tokio::test]
async fn interface_series_of_the_last_hour_by_default() {
    let (t, _h) = history_fixture("default");
    // One monitored interface: `interface` may be left out. The last hour → 1 s points.
    let body = ok(&one_iface(), &t.1, "/api/v1/history").await;
    let points: Vec<Value> = (0..10)
        .map(|i| point(NOW - 600 + i, 100 * (i + 1), i + 1, 10, 1))
        .collect();
    assert_eq!(
        body,
        json!({
            "series": {"type": "interface", "interface": "eth0", "protocol": null, "host": null},
            "resolution_seconds": 1,
            "from": NOW - 3600,
            "to": NOW,
            "points": points,
        })
    );
}

#[tokio::test]
async fn interface_series_by_minute_with_rfc3339_times() {
    let (t, _h) = history_fixture("minute");
    let state = two_ifaces();
    // 2024-03-01T09:30:00Z = NOW-3600; 12:30+02:00 = NOW.
    for path in [
        "/api/v1/history?interface=eth0&resolution=minute&from=1709285400&to=1709289000",
        "/api/v1/history?interface=eth0&resolution=minute&from=2024-03-01T09:30:00Z\
         &to=2024-03-01T12:30:00%2B02:00",
        // An unencoded `+` arrives as a space and is read as `+`.
        "/api/v1/history?interface=eth0&resolution=minute&from=2024-03-01T09:30:00.5Z\
         &to=2024-03-01T12:30:00+02:00",
    ] {
        let body = ok(&state, &t.1, path).await;
        assert_eq!(body["resolution_seconds"], 60, "{path}");
        assert_eq!(body["from"], NOW - 3600, "{path}");
        assert_eq!(body["to"], NOW, "{path}");
        assert_eq!(
            body["points"],
            json!([point(NOW - 600, 5500, 55, 100, 10)]),
            "{path}"
        );
    }
    // Unaligned bounds widen to whole minutes.
    let body = ok(
        &state,
        &t.1,
        "/api/v1/history?interface=eth0&resolution=minute&from=1709288401&to=1709288430",
    )
    .await;
    assert_eq!(
        (&body["from"], &body["to"]),
        (&json!(NOW - 600), &json!(NOW - 540))
    );
    assert_eq!(body["points"], json!([point(NOW - 600, 5500, 55, 100, 10)]));
}

#[tokio::test]
async fn old_ranges_get_the_resolution_still_stored() {
    let (t, _h) = history_fixture("old");
    // An hour two days ago: 1 s rows are gone, so minutes (3 rows of 1000/10).
    let from = 1_709_116_200;
    let body = ok(
        &one_iface(),
        &t.1,
        &format!("/api/v1/history?from={from}&to={}", from + 3600),
    )
    .await;
    assert_eq!(body["resolution_seconds"], 60);
    assert_eq!(
        body["points"],
        json!([
            point(from, 1000, 10, 0, 0),
            point(from + 60, 1000, 10, 0, 0),
            point(from + 120, 1000, 10, 0, 0),
        ])
    );
}

#[tokio::test]
async fn protocol_series_by_slot_and_name() {
    let (t, _h) = history_fixture("proto");
    let state = one_iface();
    let q = "/api/v1/history?resolution=minute&protocol=";
    let body = ok(&state, &t.1, &format!("{q}tcp")).await;
    assert_eq!(
        body["series"],
        json!({"type": "protocol", "interface": "eth0", "host": null,
               "protocol": {"name": "tcp", "family": null, "number": 6, "slots": [6, 262]}})
    );
    // 400 + 600 bytes, 10 + 10 packets received; 40 + 60, 10 + 10 sent.
    assert_eq!(body["points"], json!([point(NOW - 600, 1000, 20, 100, 20)]));
    let body = ok(&state, &t.1, &format!("{q}6")).await;
    assert_eq!(
        body["series"]["protocol"],
        json!({"name": "tcp", "family": "ipv4", "number": 6, "slots": [6]})
    );
    assert_eq!(body["points"], json!([point(NOW - 600, 400, 10, 40, 10)]));
    let body = ok(&state, &t.1, &format!("{q}ipv6:tcp")).await;
    assert_eq!(body["series"]["protocol"]["family"], "ipv6");
    assert_eq!(body["points"], json!([point(NOW - 600, 600, 10, 60, 10)]));
    let body = ok(&state, &t.1, &format!("{q}arp")).await;
    assert_eq!(
        body["series"]["protocol"],
        json!({"name": "arp", "family": null, "number": null, "slots": [512]})
    );
    assert_eq!(body["points"], json!([point(NOW - 600, 180, 3, 0, 0)]));
    // A protocol without rows is an empty series, not an error.
    let body = ok(&state, &t.1, &format!("{q}udp")).await;
    assert_eq!(body["points"], json!([]));
}

#[tokio::test]
async fn host_series() {
    let (t, _h) = history_fixture("host");
    let state = one_iface();
    // 09:00Z to 10:00Z: A at 09:10Z (1709284200), by minute.
    for host in ["192.0.2.10", "::ffff:192.0.2.10"] {
        let body = ok(
            &state,
            &t.1,
            &format!(
                "/api/v1/history?host={host}&from=2024-03-01T09:00:00Z&to=2024-03-01T10:00:00Z"
            ),
        )
        .await;
        assert_eq!(
            body,
            json!({
                "series": {"type": "host", "interface": "eth0", "protocol": null,
                           "host": "192.0.2.10"},
                "resolution_seconds": 60,
                "from": 1_709_283_600,
                "to": 1_709_287_200,
                "points": [point(1_709_284_200, 1000, 10, 100, 1)],
            })
        );
    }
    // 2024-02-25 and 26 by hour: D in the hour of 22:00Z, C at 12:00Z.
    let body = ok(
        &state,
        &t.1,
        "/api/v1/history?host=192.0.2.10&resolution=hour&from=1708819200&to=1708992000",
    )
    .await;
    assert_eq!(
        body["points"],
        json!([
            point(1_708_898_400, 8000, 80, 800, 8),
            point(1_708_948_800, 4000, 40, 400, 4),
        ])
    );
    // Two days of a host, without a resolution: host minutes are kept a day → hours.
    let body = ok(
        &state,
        &t.1,
        "/api/v1/history?host=192.0.2.10&from=1708819200&to=1708992000",
    )
    .await;
    assert_eq!(body["resolution_seconds"], 3600);
    // A host only the history knows, on an interface only the history knows of it.
    let body = ok(
        &state,
        &t.1,
        "/api/v1/history?host=198.51.100.7&interface=eth0&from=1708416000&to=1708419600",
    )
    .await;
    assert_eq!(body["points"], json!([point(1_708_416_000, 9, 1, 0, 0)]));
}

#[tokio::test]
async fn interfaces_only_in_the_history_are_known() {
    let (t, _h) = history_fixture("eth9");
    let body = ok(&one_iface(), &t.1, "/api/v1/history?interface=eth9").await;
    assert_eq!(body["points"], json!([point(NOW - 100, 77, 7, 0, 0)]));
}

#[tokio::test]
async fn history_parameter_errors() {
    let (t, _h) = history_fixture("params");
    let (one, d) = (one_iface(), &t.1);
    let q = "/api/v1/history?";
    for (query, code, name) in [
        ("bogus=1", "unknown_parameter", "bogus"),
        ("from=1&from=2", "duplicate_parameter", "from"),
        ("from=yesterday", "invalid_parameter", "from"),
        ("from=-5", "invalid_parameter", "from"),
        ("to=2023-02-30T00:00:00Z", "invalid_parameter", "to"),
        ("from=1709289000&to=1709288990", "invalid_parameter", "from"),
        ("resolution=day", "invalid_parameter", "resolution"),
        (
            "host=192.0.2.10&resolution=second",
            "invalid_parameter",
            "resolution",
        ),
        ("protocol=tcp&host=192.0.2.10", "invalid_parameter", "host"),
        ("protocol=bogus", "invalid_parameter", "protocol"),
        ("protocol=527", "invalid_parameter", "protocol"),
        ("host=192.0.2", "invalid_parameter", "host"),
        ("interface=", "invalid_parameter", "interface"),
    ] {
        let message = error(&one, d, &format!("{q}{query}"), 400, code).await;
        assert!(message.contains(&format!("`{name}`")), "{query}: {message}");
    }
    // Ten years at 1 s: 315,360,000 points; the message names the fix.
    let message = error(
        &one,
        d,
        "/api/v1/history?from=1393929000&to=1709289000&resolution=second",
        400,
        "range_too_large",
    )
    .await;
    assert!(message.contains("resolution=minute or hour"), "{message}");
    assert!(message.contains("315360000 points"), "{message}");
    // Without a resolution, ten years come in hours (87,600 points): fine; twelve do not.
    ok(&one, d, "/api/v1/history?from=1393929000&to=1709289000").await;
    let message = error(
        &one,
        d,
        "/api/v1/history?from=1330000000",
        400,
        "range_too_large",
    )
    .await;
    assert!(message.contains("shorter range"), "{message}");
    // Several interfaces, or none yet: `interface` must be given.
    let message = error(&two_ifaces(), d, q, 400, "missing_parameter").await;
    assert!(message.contains("eth0, eth1"), "{message}");
    error(&State::shared(), d, q, 400, "missing_parameter").await;
    // HEAD and POST: 405.
    let response = request(&one, d, "POST", "/api/v1/history").await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn history_not_found() {
    let (t, _h) = history_fixture("404");
    let d = &t.1;
    let message = error(
        &two_ifaces(),
        d,
        "/api/v1/history?interface=nope",
        404,
        "interface_not_found",
    )
    .await;
    assert!(
        message.contains("eth0, eth1; the history also has eth9"),
        "{message}"
    );
    error(
        &one_iface(),
        d,
        "/api/v1/history?host=203.0.113.99",
        404,
        "host_not_found",
    )
    .await;
    // Known, but on another interface.
    let message = error(
        &two_ifaces(),
        d,
        "/api/v1/history?host=198.51.100.7&interface=eth1",
        404,
        "host_not_found",
    )
    .await;
    assert!(message.contains("seen on: eth0"), "{message}");
}

#[tokio::test]
async fn history_unavailable_is_503() {
    let state = one_iface();
    // No database at all.
    let t = tmp("missing");
    for path in ["/api/v1/history", "/api/v1/hosts/192.0.2.10/usage"] {
        let message = error(&state, &t.1, path, 503, "history_unavailable").await;
        assert!(message.contains("does not exist"), "{message}");
        assert!(message.contains("history.db"), "{message}");
    }
    // A database of a newer ntop.
    let (t, h) = history_fixture("newer");
    drop(h);
    {
        let conn = rusqlite::Connection::open(t.1.file(history::FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", history::SCHEMA_VERSION + 1)
            .unwrap();
    }
    for path in ["/api/v1/history", "/api/v1/hosts/192.0.2.10/usage"] {
        let message = error(&state, &t.1, path, 503, "history_unavailable").await;
        assert!(
            message.contains("newer ntop") && message.contains("upgrade ntop"),
            "{message}"
        );
    }
    // A directory in place of the file.
    let t = tmp("isdir");
    fs::create_dir(t.1.file(history::FILE_NAME)).unwrap();
    let message = error(&state, &t.1, "/api/v1/history", 503, "history_unavailable").await;
    assert!(message.contains("history.db"), "{message}");
    // The dump does not need the history.
    let (status, _) = get(&state, &t.1, "/api/v1/dump.json").await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/hosts/{ip}/usage

/// `(start, [rx_bytes, rx_packets, tx_bytes, tx_packets])` of each period of `part`.
fn periods(body: &Value, part: &str) -> Vec<(String, [u64; 4])> {
    body[part]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap();
            (
                p["start"].as_str().unwrap().to_owned(),
                [
                    n("rx_bytes"),
                    n("rx_packets"),
                    n("tx_bytes"),
                    n("tx_packets"),
                ],
            )
        })
        .collect()
}

/// `n` zero periods with the given ones set.
fn counts(n: usize, set: &[(usize, [u64; 4])]) -> Vec<[u64; 4]> {
    let mut v = vec![[0; 4]; n];
    for (i, c) in set {
        v[*i] = *c;
    }
    v
}

fn only_counts(p: &[(String, [u64; 4])]) -> Vec<[u64; 4]> {
    p.iter().map(|(_, c)| *c).collect()
}

fn starts(p: &[(String, [u64; 4])]) -> Vec<&str> {
    p.iter().map(|(s, _)| s.as_str()).collect()
}

const WEEKS_UTC: [&str; 12] = [
    "2023-12-11T00:00:00.000Z",
    "2023-12-18T00:00:00.000Z",
    "2023-12-25T00:00:00.000Z",
    "2024-01-01T00:00:00.000Z",
    "2024-01-08T00:00:00.000Z",
    "2024-01-15T00:00:00.000Z",
    "2024-01-22T00:00:00.000Z",
    "2024-01-29T00:00:00.000Z",
    "2024-02-05T00:00:00.000Z",
    "2024-02-12T00:00:00.000Z",
    "2024-02-19T00:00:00.000Z",
    "2024-02-26T00:00:00.000Z",
];

const MONTHS_UTC: [&str; 12] = [
    "2023-04-01T00:00:00.000Z",
    "2023-05-01T00:00:00.000Z",
    "2023-06-01T00:00:00.000Z",
    "2023-07-01T00:00:00.000Z",
    "2023-08-01T00:00:00.000Z",
    "2023-09-01T00:00:00.000Z",
    "2023-10-01T00:00:00.000Z",
    "2023-11-01T00:00:00.000Z",
    "2023-12-01T00:00:00.000Z",
    "2024-01-01T00:00:00.000Z",
    "2024-02-01T00:00:00.000Z",
    "2024-03-01T00:00:00.000Z",
];

#[tokio::test]
async fn usage_in_utc_over_every_interface() {
    let (t, _h) = history_fixture("usage-utc");
    let body = ok(&two_ifaces(), &t.1, "/api/v1/hosts/192.0.2.10/usage").await;
    assert_eq!(body["ip"], "192.0.2.10");
    assert_eq!(body["interfaces"], json!(["eth0", "eth1"]));
    assert_eq!(body["tz"], "Z");
    let daily = periods(&body, "daily");
    assert_eq!(daily.len(), 31);
    assert_eq!(daily[0].0, "2024-01-31T00:00:00.000Z");
    assert_eq!(daily[25].0, "2024-02-25T00:00:00.000Z");
    assert_eq!(daily[29].0, "2024-02-29T00:00:00.000Z");
    assert_eq!(daily[30].0, "2024-03-01T00:00:00.000Z");
    // 03-01: A. 02-29: B + H = 2005/21, 207/3. 02-26: C. 02-25: D. E is before the 31 days.
    assert_eq!(
        only_counts(&daily),
        counts(
            31,
            &[
                (25, [8000, 80, 800, 8]),
                (26, [4000, 40, 400, 4]),
                (29, [2005, 21, 207, 3]),
                (30, [1000, 10, 100, 1]),
            ]
        )
    );
    let weekly = periods(&body, "weekly");
    assert_eq!(starts(&weekly), WEEKS_UTC);
    // Week of 02-26: A + B + H + C = 7005/71, 707/8. Of 02-19: D (Sunday 02-25). Of 01-15: E.
    assert_eq!(
        only_counts(&weekly),
        counts(
            12,
            &[
                (5, [16_000, 160, 1600, 16]),
                (10, [8000, 80, 800, 8]),
                (11, [7005, 71, 707, 8]),
            ]
        )
    );
    let monthly = periods(&body, "monthly");
    assert_eq!(starts(&monthly), MONTHS_UTC);
    // March: A. February: B + H + C + D = 14005/141, 1407/15. January: E. April 2023: G.
    // F (2023-03-31) is before the 12 months.
    assert_eq!(
        only_counts(&monthly),
        counts(
            12,
            &[
                (0, [64_000, 640, 6400, 64]),
                (9, [16_000, 160, 1600, 16]),
                (10, [14_005, 141, 1407, 15]),
                (11, [1000, 10, 100, 1]),
            ]
        )
    );
}

#[tokio::test]
async fn usage_of_one_interface() {
    let (t, _h) = history_fixture("usage-eth0");
    let body = ok(
        &two_ifaces(),
        &t.1,
        "/api/v1/hosts/192.0.2.10/usage?interface=eth0",
    )
    .await;
    assert_eq!(body["interfaces"], json!(["eth0"]));
    // Without H (eth1).
    assert_eq!(periods(&body, "daily")[29].1, [2000, 20, 200, 2]);
    assert_eq!(periods(&body, "weekly")[11].1, [7000, 70, 700, 7]);
    assert_eq!(periods(&body, "monthly")[10].1, [14_000, 140, 1400, 14]);
    // A host the history knows and the state does not: 02-20 is day 20 of 31.
    let body = ok(&one_iface(), &t.1, "/api/v1/hosts/198.51.100.7/usage").await;
    assert_eq!(body["interfaces"], json!(["eth0"]));
    assert_eq!(
        only_counts(&periods(&body, "daily")),
        counts(31, &[(20, [9, 1, 0, 0])])
    );
    // A host the state knows without history yet: zeros.
    let body = ok(&two_ifaces(), &t.1, "/api/v1/hosts/192.0.2.77/usage").await;
    assert_eq!(body["interfaces"], json!(["eth0"]));
    assert!(
        ["daily", "weekly", "monthly"]
            .iter()
            .all(|p| periods(&body, p).iter().all(|(_, c)| *c == [0; 4]))
    );
}

#[tokio::test]
async fn usage_in_a_fixed_offset() {
    let (t, _h) = history_fixture("usage-tz");
    let state = two_ifaces();
    for tz in ["%2B02:00", "+02:00"] {
        let body = ok(
            &state,
            &t.1,
            &format!("/api/v1/hosts/192.0.2.10/usage?tz={tz}"),
        )
        .await;
        assert_eq!(body["tz"], "+02:00");
        // Local times: A 03-01 11:10, B 03-01 01:30, H 02-29 14:00, C 02-26 14:00, D (its
        // hour row, 22:00Z) 02-26 00:00, E 01-15, G (hour row 00:00Z) 2023-04-01 02:00.
        let daily = periods(&body, "daily");
        assert_eq!(daily[0].0, "2024-01-31T00:00:00.000+02:00");
        assert_eq!(daily[30].0, "2024-03-01T00:00:00.000+02:00");
        assert_eq!(
            only_counts(&daily),
            counts(
                31,
                &[
                    (26, [12_000, 120, 1200, 12]),
                    (29, [5, 1, 7, 1]),
                    (30, [3000, 30, 300, 3]),
                ]
            )
        );
        let weekly = periods(&body, "weekly");
        assert_eq!(weekly[11].0, "2024-02-26T00:00:00.000+02:00");
        assert_eq!(
            only_counts(&weekly),
            counts(
                12,
                &[(5, [16_000, 160, 1600, 16]), (11, [15_005, 151, 1507, 16])]
            )
        );
        let monthly = periods(&body, "monthly");
        assert_eq!(monthly[0].0, "2023-04-01T00:00:00.000+02:00");
        assert_eq!(
            only_counts(&monthly),
            counts(
                12,
                &[
                    (0, [64_000, 640, 6400, 64]),
                    (9, [16_000, 160, 1600, 16]),
                    (10, [12_005, 121, 1207, 13]),
                    (11, [3000, 30, 300, 3]),
                ]
            )
        );
    }
    // West of UTC: today is still 03-01 (05:30 local); G's hour row is 2023-03-31 19:00 local,
    // before the 12 months; B is 02-29 18:30.
    let body = ok(&state, &t.1, "/api/v1/hosts/192.0.2.10/usage?tz=-05:00").await;
    let monthly = periods(&body, "monthly");
    assert_eq!(monthly[0], ("2023-04-01T00:00:00.000-05:00".into(), [0; 4]));
    assert_eq!(monthly[11].1, [1000, 10, 100, 1]);
    assert_eq!(periods(&body, "daily")[29].1, [2005, 21, 207, 3]);
}

#[tokio::test]
async fn usage_errors() {
    let (t, _h) = history_fixture("usage-err");
    let (state, d) = (two_ifaces(), &t.1);
    let u = "/api/v1/hosts";
    error(
        &state,
        d,
        &format!("{u}/203.0.113.99/usage"),
        404,
        "host_not_found",
    )
    .await;
    let message = error(
        &state,
        d,
        &format!("{u}/198.51.100.7/usage?interface=eth1"),
        404,
        "host_not_found",
    )
    .await;
    assert!(message.contains("seen on: eth0"), "{message}");
    error(
        &state,
        d,
        &format!("{u}/192.0.2.10/usage?interface=nope"),
        404,
        "interface_not_found",
    )
    .await;
    error(
        &state,
        d,
        &format!("{u}/192.0.2/usage"),
        400,
        "invalid_address",
    )
    .await;
    error(
        &state,
        d,
        &format!("{u}/%zz/usage"),
        400,
        "invalid_path_encoding",
    )
    .await;
    for (query, code) in [
        ("tz=CET", "invalid_parameter"),
        ("tz=%2B2", "invalid_parameter"),
        ("tz=Z&tz=Z", "duplicate_parameter"),
        ("days=3", "unknown_parameter"),
    ] {
        error(
            &state,
            d,
            &format!("{u}/192.0.2.10/usage?{query}"),
            400,
            code,
        )
        .await;
    }
    // Percent-encoded IPv6 and IPv4-mapped forms are the same hosts.
    let body = ok(&state, d, &format!("{u}/%3A%3Affff%3A192.0.2.10/usage")).await;
    assert_eq!(body["ip"], "192.0.2.10");
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/dump.json, GET /api/v1/dump.csv

const AT_0: &str = "2023-11-14T22:13:20.000Z";
const AT_1: &str = "2023-11-14T22:13:21.000Z";

/// eth0 (2) and `we"ird,if` (3), two samples a second apart:
/// - 192.0.2.1 on eth0: sent TCP 1000/10 → 1500/15, sent UDP 200/2, received TCP 500/5,
///   received ICMP 84/1: sent 1700/17, received 584/6; last seen at 1 s.
/// - 198.51.100.2 on eth0: received UDP 300/3 (unchanged).
/// - `2001:db8::1` on `we"ird,if`: received `ICMPv6` 64/1, sent other 40/1 (unchanged).
fn dump_state() -> SharedState {
    let base = |ms| {
        sample(ms)
            .iface(2, "eth0")
            .iface(3, "we\"ird,if")
            .host("2001:db8::1", 3, RECEIVED, L4Class::Icmpv6, 64, 1)
            .host("2001:db8::1", 3, SENT, L4Class::Other, 40, 1)
            .host("198.51.100.2", 2, RECEIVED, L4Class::Udp, 300, 3)
            .host("192.0.2.1", 2, SENT, L4Class::Udp, 200, 2)
            .host("192.0.2.1", 2, RECEIVED, L4Class::Tcp, 500, 5)
            .host("192.0.2.1", 2, RECEIVED, L4Class::Icmp, 84, 1)
    };
    let mut s = State::new();
    s.ingest(
        &base(0)
            .host("192.0.2.1", 2, SENT, L4Class::Tcp, 1000, 10)
            .build(),
    );
    s.ingest(
        &base(1000)
            .host("192.0.2.1", 2, SENT, L4Class::Tcp, 1500, 15)
            .build(),
    );
    Arc::new(RwLock::new(s))
}

fn volume(bytes: u64, packets: u64) -> Value {
    json!({"bytes": bytes, "packets": packets})
}

fn classes(set: &[(&str, &str, u64, u64)]) -> Value {
    let zero = json!({"sent": volume(0, 0), "received": volume(0, 0)});
    let mut v = json!({"tcp": zero, "udp": zero, "icmp": zero, "icmpv6": zero, "other": zero});
    for (class, dir, bytes, packets) in set {
        v[*class][*dir] = volume(*bytes, *packets);
    }
    v
}

#[tokio::test]
async fn dump_json() {
    let t = tmp("dump-json");
    let body = ok(&dump_state(), &t.1, "/api/v1/dump.json").await;
    let h1 = json!({
        "ip": "192.0.2.1", "interface": "eth0",
        "sent": volume(1700, 17), "received": volume(584, 6),
        "protocols": classes(&[
            ("tcp", "sent", 1500, 15), ("udp", "sent", 200, 2),
            ("tcp", "received", 500, 5), ("icmp", "received", 84, 1),
        ]),
        "first_seen": AT_0, "last_seen": AT_1,
    });
    let h2 = json!({
        "ip": "198.51.100.2", "interface": "eth0",
        "sent": volume(0, 0), "received": volume(300, 3),
        "protocols": classes(&[("udp", "received", 300, 3)]),
        "first_seen": AT_0, "last_seen": AT_0,
    });
    let h3 = json!({
        "ip": "2001:db8::1", "interface": "we\"ird,if",
        "sent": volume(40, 1), "received": volume(64, 1),
        "protocols": classes(&[("other", "sent", 40, 1), ("icmpv6", "received", 64, 1)]),
        "first_seen": AT_0, "last_seen": AT_0,
    });
    // By interface (in state order), then address.
    assert_eq!(
        body,
        json!({"polled_at": AT_1, "hosts": [h1.clone(), h2.clone(), h3.clone()]})
    );
    let body = ok(&dump_state(), &t.1, "/api/v1/dump.json?interface=eth0").await;
    assert_eq!(body["hosts"], json!([h1, h2]));
    let body = ok(
        &dump_state(),
        &t.1,
        "/api/v1/dump.json?interface=we%22ird%2Cif",
    )
    .await;
    assert_eq!(body["hosts"], json!([h3]));
    let body = ok(&State::shared(), &t.1, "/api/v1/dump.json").await;
    assert_eq!(body, json!({"polled_at": null, "hosts": []}));
}

#[tokio::test]
async fn dump_csv() {
    let t = tmp("dump-csv");
    let response = request(&dump_state(), &t.1, "GET", "/api/v1/dump.csv").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "text/csv; charset=utf-8; header=present"
    );
    assert_eq!(
        response.headers().get(header::CONTENT_DISPOSITION).unwrap(),
        "attachment; filename=\"ntop-hosts-20240301T103000Z.csv\""
    );
    let text = std::str::from_utf8(response.body()).unwrap();
    let header = "interface,ip,sent_bytes,sent_packets,received_bytes,received_packets,\
        tcp_sent_bytes,tcp_sent_packets,tcp_received_bytes,tcp_received_packets,\
        udp_sent_bytes,udp_sent_packets,udp_received_bytes,udp_received_packets,\
        icmp_sent_bytes,icmp_sent_packets,icmp_received_bytes,icmp_received_packets,\
        icmpv6_sent_bytes,icmpv6_sent_packets,icmpv6_received_bytes,icmpv6_received_packets,\
        other_sent_bytes,other_sent_packets,other_received_bytes,other_received_packets,\
        first_seen,last_seen";
    let rows = [
        format!(
            "eth0,192.0.2.1,1700,17,584,6,1500,15,500,5,200,2,0,0,0,0,84,1,0,0,0,0,0,0,0,0,\
             {AT_0},{AT_1}"
        ),
        format!(
            "eth0,198.51.100.2,0,0,300,3,0,0,0,0,0,0,300,3,0,0,0,0,0,0,0,0,0,0,0,0,{AT_0},{AT_0}"
        ),
        format!(
            "\"we\"\"ird,if\",2001:db8::1,40,1,64,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,64,1,40,1,0,0,\
             {AT_0},{AT_0}"
        ),
    ];
    assert_eq!(text, format!("{header}\r\n{}\r\n", rows.join("\r\n")));

    let response = request(
        &dump_state(),
        &t.1,
        "GET",
        "/api/v1/dump.csv?interface=eth0",
    )
    .await;
    let text = std::str::from_utf8(response.body()).unwrap();
    assert_eq!(text, format!("{header}\r\n{}\r\n{}\r\n", rows[0], rows[1]));
    // No hosts: the header alone.
    let response = request(&State::shared(), &t.1, "GET", "/api/v1/dump.csv").await;
    assert_eq!(response.body().as_ref(), format!("{header}\r\n").as_bytes());
}

#[tokio::test]
async fn dump_errors() {
    let t = tmp("dump-err");
    let state = dump_state();
    for path in ["/api/v1/dump.json", "/api/v1/dump.csv"] {
        let message = error(
            &state,
            &t.1,
            &format!("{path}?interface=eth7"),
            404,
            "interface_not_found",
        )
        .await;
        assert!(message.contains("eth0, we\"ird,if"), "{message}");
        error(
            &state,
            &t.1,
            &format!("{path}?sort=ip"),
            400,
            "unknown_parameter",
        )
        .await;
        let response = request(&state, &t.1, "DELETE", path).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
