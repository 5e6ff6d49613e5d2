//! The summary document on a hand-built state (expected values worked out by hand), and the
//! event stream: first summary at once, one per poll, `retry`, the stream bound, the age bound
//! and the end at shutdown; and the collector's poll counter.

use std::{
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use ntop_common::counters::{L4Class, SENT};
use serde_json::{Value, json};
use tokio::sync::watch;
use warp::http::{StatusCode, header};

use super::{Events, summary};
use crate::{
    persist::StoreStatus,
    state::{SharedState, State, tests::sample},
    subnets::Subnets,
};

const TCP4: u32 = 6;

/// The state of `http/tests.rs`'s fixture, with 198.18.0.0/15 local:
///
/// - veth0 (5, xdp-native): rx TCP 1000/10 → 3000/30 and ARP 60/1: 3060/31 at 2000 B/s and
///   20 packets/s; tx TCP 500/5 both times (no rate). Other hosts sent TCP 70/1.
/// - veth1 (7, tc): rx UDP 0 → 128/2: 128 B/s, 2 packets/s.
/// - 198.18.0.1 on veth0: sent TCP 600/6 → 1600/16 (1000 B/s), received UDP 100/1.
/// - 198.18.0.2 on veth0: new in the second sample, sent TCP 50/1 (50 B/s).
/// - `2001:db8::2` on veth1: received `ICMPv6` 64/1 both times (0 B/s). Remote.
/// - 3 `host_map_full` errors; 3 hosts in the table of 1024.
use crate::http::tests::traffic;

fn state(polls: u32) -> State {
    let mut s = crate::http::tests::fixture_state(polls, false);
    s.set_local(Subnets::parse("198.18.0.0/15").unwrap());
    s
}

#[test]
fn summary_of_a_hand_built_state() {
    let s = state(2);
    let doc = serde_json::to_value(summary(&s, "ok")).unwrap();
    assert_eq!(
        doc,
        json!({
            // T0 + 1 s.
            "polled_at": 1_700_000_001.0,
            "interfaces": [
                {"name": "veth0", "capture_mode": "xdp-native",
                 "rx": traffic(3060, 31, 2000.0, 20.0), "tx": traffic(500, 5, 0.0, 0.0)},
                {"name": "veth1", "capture_mode": "tc",
                 "rx": traffic(128, 2, 128.0, 2.0), "tx": traffic(0, 0, 0.0, 0.0)},
            ],
            "top_local": [
                {"ip": "198.18.0.1", "interface": "veth0", "name": null,
                 "bytes_per_sec": 1000.0, "sent_bytes": 1600, "received_bytes": 100},
                {"ip": "198.18.0.2", "interface": "veth0", "name": null,
                 "bytes_per_sec": 50.0, "sent_bytes": 50, "received_bytes": 0},
            ],
            "top_remote": [
                {"ip": "2001:db8::2", "interface": "veth1", "name": null,
                 "bytes_per_sec": 0.0, "sent_bytes": 0, "received_bytes": 64},
            ],
            // tcp: veth0 rx 3000/30 + tx 500/5; udp: veth1 rx 128/2; arp: veth0 rx 60/1.
            "protocols": [
                {"name": "tcp", "family": "ipv4", "bytes": 3500, "packets": 35},
                {"name": "udp", "family": "ipv4", "bytes": 128, "packets": 2},
                {"name": "arp", "family": null, "bytes": 60, "packets": 1},
            ],
            "collector": {"host_table_capacity": 1024, "host_table_used": 3,
                          "pair_table_capacity": 1024, "pair_table_used": 0,
                          "other_hosts_bytes": 70, "errors": 3, "poll_duration_ms": 1.5,
                          "store": "ok"},
        })
    );
}

#[test]
fn summary_before_any_poll_and_store_state() {
    let s = State::new();
    let doc = serde_json::to_value(summary(&s, "degraded")).unwrap();
    assert_eq!(doc["polled_at"], Value::Null);
    assert_eq!(doc["interfaces"], json!([]));
    assert_eq!(doc["top_local"], json!([]));
    assert_eq!(doc["protocols"], json!([]));
    assert_eq!(doc["collector"]["store"], "degraded");
    assert_eq!(doc["collector"]["poll_duration_ms"], Value::Null);
}

#[test]
fn summary_keeps_the_ten_largest() {
    // Twelve hosts on one interface, host k sending k * 100 bytes in the second poll, and
    // twelve IPv4 protocols 1..=12 with k * 10 bytes received.
    let build = |ms, grow: u64| {
        let mut b = sample(ms).iface(5, "veth0");
        for k in 1..=12_u64 {
            b = b
                .host(
                    &format!("198.18.1.{k}"),
                    5,
                    SENT,
                    L4Class::Udp,
                    k * 100 * grow,
                    k,
                )
                .proto(5, 0, u32::try_from(k).unwrap(), k * 10, 1);
        }
        b.build()
    };
    let mut s = State::new();
    s.set_local(Subnets::parse("198.18.0.0/15").unwrap());
    s.ingest(&build(0, 1));
    s.ingest(&build(1000, 2));
    let doc = serde_json::to_value(summary(&s, "ok")).unwrap();
    let ips: Vec<&str> = doc["top_local"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ip"].as_str().unwrap())
        .collect();
    // Increase k * 100 B/s: hosts 12 down to 3.
    let expected: Vec<String> = (3..=12).rev().map(|k| format!("198.18.1.{k}")).collect();
    assert_eq!(ips, expected);
    assert_eq!(doc["top_local"][0]["bytes_per_sec"], 1200.0);
    assert_eq!(doc["top_remote"], json!([]));
    let protocols = doc["protocols"].as_array().unwrap();
    assert_eq!(protocols.len(), 10);
    // IPv4 protocols 12 down to 3: 120 bytes first, 30 last.
    assert_eq!(protocols[0]["bytes"], 120);
    assert_eq!(protocols[9]["bytes"], 30);
}

fn events(
    s: State,
    polls: watch::Receiver<u64>,
    max: usize,
    age: Duration,
) -> (Events, SharedState) {
    let shared: SharedState = Arc::new(RwLock::new(s));
    let status = Arc::new(Mutex::new(StoreStatus::default()));
    (
        Events::with_limits(shared.clone(), status, polls, max, age),
        shared,
    )
}

/// Waits (at most 10 s) until `ready` holds.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The poll counter the last summary was built at, if any.
fn built_at(events: &Events) -> Option<u64> {
    events
        .inner
        .cache
        .try_lock()
        .ok()
        .and_then(|c| c.as_ref().map(|(generation, _)| *generation))
}

/// The `data:` of every `event: summary` in an SSE body.
fn summaries(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter(|e| e.lines().any(|l| l == "event:summary"))
        .map(|e| {
            let data = e.lines().find_map(|l| l.strip_prefix("data:")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_summary_at_once_then_one_per_poll_until_shutdown() {
    let (tx, rx) = watch::channel(0_u64);
    let (events, shared) = events(state(1), rx, 4, Duration::from_mins(1));
    let routes = events.routes();
    let request = tokio::spawn(async move {
        warp::test::request()
            .path("/api/v1/events")
            .reply(&routes)
            .await
    });
    until("the stream and its first summary", || {
        events.open_streams() == 1 && built_at(&events) == Some(0)
    })
    .await;
    // The second poll.
    *shared.write().unwrap() = state(2);
    tx.send_modify(|n| *n += 1);
    until("the second summary", || built_at(&events) == Some(1)).await;
    events.close();
    let response = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the stream ends at shutdown")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
    let body = std::str::from_utf8(response.body()).unwrap();
    assert!(body.starts_with("retry:2000\n\n"), "{body}");
    let docs = summaries(body);
    assert_eq!(docs.len(), 2, "{body}");
    assert_eq!(docs[0]["polled_at"], 1_700_000_000.0);
    assert_eq!(docs[0]["interfaces"][0]["rx"]["bytes"], 1060);
    assert_eq!(docs[1]["polled_at"], 1_700_000_001.0);
    assert_eq!(docs[1]["interfaces"][0]["rx"]["bytes"], 3060);
    assert_eq!(docs[1]["top_local"][0]["ip"], "198.18.0.1");
    until("the stream's place to be free", || {
        events.open_streams() == 0
    })
    .await;
    // After shutdown began: 503.
    let late = warp::test::request()
        .path("/api/v1/events")
        .reply(&events.routes())
        .await;
    assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn nothing_before_the_first_poll() {
    let (tx, rx) = watch::channel(0_u64);
    let (events, shared) = events(State::new(), rx, 4, Duration::from_mins(1));
    let routes = events.routes();
    let request = tokio::spawn(async move {
        warp::test::request()
            .path("/api/v1/events")
            .reply(&routes)
            .await
    });
    until("the stream", || events.open_streams() == 1).await;
    *shared.write().unwrap() = state(1);
    tx.send_modify(|n| *n += 1);
    until("the first summary", || built_at(&events) == Some(1)).await;
    events.close();
    let response = request.await.unwrap();
    let docs = summaries(std::str::from_utf8(response.body()).unwrap());
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["polled_at"], 1_700_000_000.0);
}

#[tokio::test]
async fn streams_are_bounded_in_number_and_age() {
    let (_tx, rx) = watch::channel(0_u64);
    let (events, _) = events(state(2), rx, 1, Duration::from_secs(1));
    let routes = events.routes();
    let first = tokio::spawn({
        let routes = routes.clone();
        async move {
            warp::test::request()
                .path("/api/v1/events")
                .reply(&routes)
                .await
        }
    });
    until("the first stream", || events.open_streams() == 1).await;
    let second = warp::test::request()
        .path("/api/v1/events")
        .reply(&routes)
        .await;
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(second.headers()[header::CONTENT_TYPE], "application/json");
    let body: Value = serde_json::from_slice(second.body()).unwrap();
    assert_eq!(body["code"], "too_many_streams");
    // The first ends by itself when it is too old, and frees its place.
    let first = tokio::time::timeout(Duration::from_secs(5), first)
        .await
        .expect("the stream ends at its age limit")
        .unwrap();
    assert_eq!(
        summaries(std::str::from_utf8(first.body()).unwrap()).len(),
        1
    );
    until("the stream's place to be free", || {
        events.open_streams() == 0
    })
    .await;
}

#[tokio::test]
async fn other_methods_and_paths() {
    let (_tx, rx) = watch::channel(0_u64);
    let (events, _) = events(state(1), rx, 4, Duration::from_mins(1));
    let app = warp::Filter::recover(events.routes(), crate::http::handle_rejection);
    let post = warp::test::request()
        .method("POST")
        .path("/api/v1/events")
        .reply(&app)
        .await;
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let other = warp::test::request()
        .path("/api/v1/eventsx")
        .reply(&app)
        .await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

/// A source that yields the same sample every time.
struct Fixed;

impl crate::collect::Source for Fixed {
    fn sample_into(&mut self, out: &mut crate::sample::Sample) -> Result<(), crate::ebpf::Error> {
        *out = sample(0)
            .iface(5, "veth0")
            .proto(5, 0, TCP4, 100, 1)
            .build();
        Ok(())
    }
}

#[tokio::test]
async fn the_collector_counts_its_polls() {
    let shared = State::shared();
    let (tx, mut rx) = watch::channel(0_u64);
    let collector = crate::collect::spawn_notifying(
        Fixed,
        shared.clone(),
        Duration::from_millis(20),
        None,
        Some(tx),
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|&n| n >= 2))
        .await
        .expect("two polls")
        .unwrap();
    // Each poll reached the state before it was counted.
    assert!(shared.read().unwrap().polled_at().is_some());
    let _ = collector.stop();
}
