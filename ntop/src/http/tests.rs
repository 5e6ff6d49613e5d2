//! Route tests through `warp::test::request()`: status codes, headers and the exact JSON of
//! every route, on a state built from hand-made samples (expected numbers worked out by hand).

use ntop_common::{
    counters::{L4Class, RECEIVED, SENT},
    errors::ErrorKind,
    proto::IPV6_BASE,
};
use serde_json::{Value, json};
use warp::{
    Filter,
    http::{StatusCode, header},
};

use super::{handle_rejection, routes};
use crate::{
    sample::CaptureMode,
    state::{
        SharedState, State,
        tests::{SampleBuilder, T0, sample},
    },
};

const TCP4: u32 = 6;
const UDP4: u32 = 17;
const ARP: u32 = 512;

/// Two interfaces and three hosts over two samples one second apart:
///
/// - veth0 (5, xdp-native): rx TCP 1000/10 → 3000/30, ARP 60/1 both times: rx 3060/31 at
///   2000 B/s, 20 packets/s; tx TCP 500/5 both times. Other hosts sent TCP 70/1.
/// - veth1 (7, tc): rx UDP 0 → 128/2: 128 B/s, 2 packets/s.
/// - 198.18.0.1 on veth0: sent TCP 600/6 → 1600/16 (1000 B/s, 10/s), received UDP 100/1.
/// - `2001:db8::2` on veth1: received `ICMPv6` 64/1 both times.
/// - 198.18.0.2 on veth0: new at 1 s, sent TCP 50/1 (50 B/s, 1/s).
/// - Errors: 3 `host_map_full`.
/// - Pairs at 1 s, on veth0: 198.18.0.1 → 198.18.0.2 600/6, back 50/1; 198.18.0.1 → 198.18.0.9
///   (no host entry of its own) 100/1. The maps were created at `T0`.
fn fixture() -> SharedState {
    std::sync::Arc::new(std::sync::RwLock::new(fixture_state(2, true)))
}

/// The state of [`fixture`] after its first `polls` samples (1 or 2), with its pairs or not.
pub(super) fn fixture_state(polls: u32, pairs: bool) -> State {
    let base = |ms| -> SampleBuilder {
        sample(ms)
            .iface(5, "veth0")
            .iface(7, "veth1")
            .mode(7, CaptureMode::Tc)
            .proto(5, 0, ARP, 60, 1)
            .proto(5, 1, TCP4, 500, 5)
            .other(5, SENT, L4Class::Tcp, 70, 1)
            .error(ErrorKind::HostMapFull, 3)
            .host("198.18.0.1", 5, RECEIVED, L4Class::Udp, 100, 1)
            .host("2001:db8::2", 7, RECEIVED, L4Class::Icmpv6, 64, 1)
    };
    let mut s = State::new();
    s.ingest(
        &base(0)
            .proto(5, 0, TCP4, 1000, 10)
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 600, 6)
            .build(),
    );
    if polls < 2 {
        return s;
    }
    let second = base(1000)
        .proto(5, 0, TCP4, 3000, 30)
        .proto(7, 0, UDP4, 128, 2)
        .host("198.18.0.1", 5, SENT, L4Class::Tcp, 1600, 16)
        .host("198.18.0.2", 5, SENT, L4Class::Tcp, 50, 1);
    let second = if pairs {
        second
            .pair("198.18.0.1", "198.18.0.2", 5, 600, 6)
            .pair("198.18.0.2", "198.18.0.1", 5, 50, 1)
            .pair("198.18.0.1", "198.18.0.9", 5, 100, 1)
            .created(std::time::UNIX_EPOCH + std::time::Duration::from_secs(T0))
    } else {
        second
    };
    s.ingest(&second.build());
    s
}

async fn request(state: &SharedState, method: &str, path: &str) -> (StatusCode, Value) {
    let response = warp::test::request()
        .method(method)
        .path(path)
        .reply(&routes(state.clone()))
        .await;
    assert_eq!(
        response.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/json",
        "{method} {path}"
    );
    let body: Value = serde_json::from_slice(response.body()).expect("a JSON body");
    (response.status(), body)
}

async fn get(state: &SharedState, path: &str) -> (StatusCode, Value) {
    request(state, "GET", path).await
}

/// Asserts an error response: status and code, and a message that says something.
async fn assert_error(state: &SharedState, method: &str, path: &str, status: u16, code: &str) {
    let (got_status, body) = request(state, method, path).await;
    assert_eq!(got_status.as_u16(), status, "{method} {path}: {body}");
    assert_eq!(body["code"], code, "{method} {path}: {body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.len() > 20, "{method} {path}: {message}");
    assert_eq!(
        body.as_object().unwrap().len(),
        2,
        "only code and message: {body}"
    );
}

pub(super) fn traffic(bytes: u64, packets: u64, bytes_per_sec: f64, packets_per_sec: f64) -> Value {
    json!({"bytes": bytes, "packets": packets,
           "bytes_per_sec": bytes_per_sec, "packets_per_sec": packets_per_sec})
}

fn volume(bytes: u64, packets: u64) -> Value {
    json!({"bytes": bytes, "packets": packets})
}

fn zero_classes() -> Value {
    let zero = json!({"sent": volume(0, 0), "received": volume(0, 0)});
    json!({"tcp": zero, "udp": zero, "icmp": zero, "icmpv6": zero, "other": zero})
}

const AT_0: &str = "2023-11-14T22:13:20.000Z";
const AT_1: &str = "2023-11-14T22:13:21.000Z";

fn host_1() -> Value {
    let mut protocols = zero_classes();
    protocols["tcp"]["sent"] = volume(1600, 16);
    protocols["udp"]["received"] = volume(100, 1);
    json!({
        "ip": "198.18.0.1", "interface": "veth0",
        "sent": traffic(1600, 16, 1000.0, 10.0), "received": traffic(100, 1, 0.0, 0.0),
        "protocols": protocols, "first_seen": AT_0, "last_seen": AT_1,
        "local": false, "name": null, "mac": null,
    })
}

fn host_2() -> Value {
    let mut protocols = zero_classes();
    protocols["tcp"]["sent"] = volume(50, 1);
    json!({
        "ip": "198.18.0.2", "interface": "veth0",
        "sent": traffic(50, 1, 50.0, 1.0), "received": traffic(0, 0, 0.0, 0.0),
        "protocols": protocols, "first_seen": AT_1, "last_seen": AT_1,
        "local": false, "name": null, "mac": null,
    })
}

fn host_v6() -> Value {
    let mut protocols = zero_classes();
    protocols["icmpv6"]["received"] = volume(64, 1);
    json!({
        "ip": "2001:db8::2", "interface": "veth1",
        "sent": traffic(0, 0, 0.0, 0.0), "received": traffic(64, 1, 0.0, 0.0),
        "protocols": protocols, "first_seen": AT_0, "last_seen": AT_0,
        "local": false, "name": null, "mac": null,
    })
}

#[tokio::test]
async fn health() {
    let (status, body) = get(&State::shared(), "/api/v1/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn routes_without_parameters_ignore_the_query_string() {
    let state = fixture();
    let (status, body) = get(&state, "/api/v1/health?probe=1").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _) = get(&state, "/api/v1/interfaces?x").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&state, "/api/v1/hosts/198.18.0.1?verbose=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ip"], "198.18.0.1");
}

#[tokio::test]
async fn interfaces_before_the_first_poll() {
    let (status, body) = get(&State::shared(), "/api/v1/interfaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "polled_at": null, "poll_duration_ms": null,
            "host_table": {"capacity": 0, "used": 0},
            "pair_table": {"capacity": 0, "used": 0},
            "errors": {
                "truncated_ethernet": 0, "truncated_vlan": 0, "vlan_depth": 0,
                "truncated_ipv4": 0, "bad_ipv4_header": 0, "truncated_ipv6": 0,
                "ipv6_ext_depth": 0, "truncated_l4": 0, "host_map_full": 0,
                "host_update_failed": 0, "unknown_interface": 0, "proto_lookup_failed": 0,
                "bad_ipv6_header": 0, "pair_map_full": 0, "pair_update_failed": 0,
            },
            "interfaces": [],
        })
    );
}

#[tokio::test]
async fn interfaces() {
    let response = warp::test::request()
        .path("/api/v1/interfaces")
        .reply(&routes(fixture()))
        .await;
    // The error counters keep ERROR_NAMES order.
    let text = std::str::from_utf8(response.body()).unwrap();
    let first = text.find("\"truncated_ethernet\"").unwrap();
    let last = text.find("\"bad_ipv6_header\"").unwrap();
    assert!(first < last, "{text}");

    let (status, body) = get(&fixture(), "/api/v1/interfaces").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "polled_at": AT_1, "poll_duration_ms": 1.5,
            "host_table": {"capacity": 1024, "used": 3},
            "pair_table": {"capacity": 1024, "used": 2},
            "errors": {
                "truncated_ethernet": 0, "truncated_vlan": 0, "vlan_depth": 0,
                "truncated_ipv4": 0, "bad_ipv4_header": 0, "truncated_ipv6": 0,
                "ipv6_ext_depth": 0, "truncated_l4": 0, "host_map_full": 3,
                "host_update_failed": 0, "unknown_interface": 0, "proto_lookup_failed": 0,
                "bad_ipv6_header": 0, "pair_map_full": 0, "pair_update_failed": 0,
            },
            "interfaces": [
                {
                    "name": "veth0", "ifindex": 5, "capture_mode": "xdp-native",
                    "rx": traffic(3060, 31, 2000.0, 20.0), "tx": traffic(500, 5, 0.0, 0.0),
                    "other_hosts": {"sent": volume(70, 1), "received": volume(0, 0)},
                    "hosts": 2,
                },
                {
                    "name": "veth1", "ifindex": 7, "capture_mode": "tc",
                    "rx": traffic(128, 2, 128.0, 2.0), "tx": traffic(0, 0, 0.0, 0.0),
                    "other_hosts": {"sent": volume(0, 0), "received": volume(0, 0)},
                    "hosts": 1,
                },
            ],
        })
    );
}

#[tokio::test]
async fn hosts_default_page() {
    let (status, body) = get(&fixture(), "/api/v1/hosts").await;
    assert_eq!(status, StatusCode::OK);
    // By total bytes, descending: 1700, 64, 50.
    assert_eq!(
        body,
        json!({"total": 3, "offset": 0, "limit": 100,
               "hosts": [host_1(), host_v6(), host_2()]})
    );
}

#[tokio::test]
async fn hosts_sorting_paging_filtering() {
    let state = fixture();
    let ips = |body: &Value| -> Vec<String> {
        body["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["ip"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases: [(&str, usize, &[&str]); 9] = [
        ("sort=ip", 3, &["198.18.0.1", "198.18.0.2", "2001:db8::2"]),
        (
            "sort=ip&order=desc",
            3,
            &["2001:db8::2", "198.18.0.2", "198.18.0.1"],
        ),
        (
            "sort=received_bytes",
            3,
            &["198.18.0.1", "2001:db8::2", "198.18.0.2"],
        ),
        (
            "sort=throughput&order=asc",
            3,
            &["2001:db8::2", "198.18.0.2", "198.18.0.1"],
        ),
        (
            "sort=first_seen",
            3,
            &["198.18.0.2", "198.18.0.1", "2001:db8::2"],
        ),
        ("sort=ip&limit=1&offset=1", 3, &["198.18.0.2"]),
        ("limit=0", 3, &[]),
        ("offset=3", 3, &[]),
        (
            "interface=veth0&sort=sent_packets&order=asc",
            2,
            &["198.18.0.2", "198.18.0.1"],
        ),
    ];
    for (query, total, want) in cases {
        let (status, body) = get(&state, &format!("/api/v1/hosts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["total"], total, "{query}");
        assert_eq!(ips(&body), want, "{query}");
    }
    let (_, body) = get(&state, "/api/v1/hosts?limit=10000&offset=2").await;
    assert_eq!(
        (&body["limit"], &body["offset"]),
        (&json!(10000), &json!(2))
    );
    assert_eq!(ips(&body), ["198.18.0.2"]);
    // A percent-encoded parameter value.
    let (_, body) = get(&state, "/api/v1/hosts?interface=veth%31").await;
    assert_eq!(
        body,
        json!({"total": 1, "offset": 0, "limit": 100, "hosts": [host_v6()]})
    );
}

#[tokio::test]
async fn hosts_search_and_scope() {
    let state = fixture();
    {
        let mut s = state.write().unwrap();
        s.set_local(crate::subnets::Subnets::parse("198.18.0.0/15").unwrap());
        s.set_names(Some(std::sync::Arc::new(
            crate::state::search_tests::FakeNames::with(&[("198.18.0.1", "gw.example.net")]),
        )));
    }
    let ips = |body: &Value| -> Vec<String> {
        body["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["ip"].as_str().unwrap().to_owned())
            .collect()
    };
    let cases: [(&str, &[&str]); 10] = [
        ("q=198.18.0.2", &["198.18.0.2"]),
        ("q=%3A%3A2", &["2001:db8::2"]),
        ("q=GW", &["198.18.0.1"]),
        ("q=example.net&scope=remote", &[]),
        ("q=", &["198.18.0.1", "2001:db8::2", "198.18.0.2"]),
        ("q=%20", &["198.18.0.1", "2001:db8::2", "198.18.0.2"]),
        ("scope=local", &["198.18.0.1", "198.18.0.2"]),
        ("scope=remote", &["2001:db8::2"]),
        ("scope=all", &["198.18.0.1", "2001:db8::2", "198.18.0.2"]),
        ("scope=local&interface=veth1", &[]),
    ];
    for (query, want) in cases {
        let (status, body) = get(&state, &format!("/api/v1/hosts?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(body["total"], want.len(), "{query}");
        assert_eq!(ips(&body), want, "{query}");
    }
    let (_, body) = get(&state, "/api/v1/hosts?q=gw").await;
    let mut want = host_1();
    want["local"] = json!(true);
    want["name"] = json!("gw.example.net");
    assert_eq!(body["hosts"][0], want);
    for (query, code) in [
        ("scope=inside", "invalid_parameter"),
        ("scope=", "invalid_parameter"),
        ("q=a&q=b", "duplicate_parameter"),
    ] {
        assert_error(&state, "GET", &format!("/api/v1/hosts?{query}"), 400, code).await;
    }
    let long = "a".repeat(257);
    assert_error(
        &state,
        "GET",
        &format!("/api/v1/hosts?q={long}"),
        400,
        "invalid_parameter",
    )
    .await;
    let (status, _) = get(&state, &format!("/api/v1/hosts?q={}", "a".repeat(256))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn hosts_bad_queries() {
    let state = fixture();
    for (query, status, code) in [
        ("sort=bytes", 400, "invalid_parameter"),
        ("sort=", 400, "invalid_parameter"),
        ("order=up", 400, "invalid_parameter"),
        ("limit=10001", 400, "invalid_parameter"),
        ("limit=-1", 400, "invalid_parameter"),
        ("limit=ten", 400, "invalid_parameter"),
        ("offset=1.5", 400, "invalid_parameter"),
        ("offset=99999999999999999999999", 400, "invalid_parameter"),
        ("page=2", 400, "unknown_parameter"),
        ("limit=1&limit=2", 400, "duplicate_parameter"),
        ("interface=eth9", 404, "interface_not_found"),
    ] {
        assert_error(
            &state,
            "GET",
            &format!("/api/v1/hosts?{query}"),
            status,
            code,
        )
        .await;
    }
    let (_, body) = get(&state, "/api/v1/hosts?interface=eth9").await;
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("veth0, veth1"), "{message}");
    let (_, body) = get(&state, "/api/v1/hosts?sort=bytes").await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("total_bytes") && message.contains("`bytes`"),
        "{message}"
    );
}

#[tokio::test]
async fn host_by_address() {
    let state = fixture();
    for path in [
        "/api/v1/hosts/198.18.0.1",
        "/api/v1/hosts/::ffff:198.18.0.1",
        "/api/v1/hosts/%3A%3Affff%3A198.18.0.1",
        "/api/v1/hosts/::ffff:c612:1",
    ] {
        let (status, body) = get(&state, path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            body,
            json!({"ip": "198.18.0.1", "entries": [host_1()]}),
            "{path}"
        );
    }
    let (status, body) = get(&state, "/api/v1/hosts/2001:DB8:0::2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"ip": "2001:db8::2", "entries": [host_v6()]}));
}

#[tokio::test]
async fn host_errors() {
    let state = fixture();
    for (path, status, code) in [
        ("/api/v1/hosts/198.18.0.3", 404, "host_not_found"),
        ("/api/v1/hosts/2001:db8::3", 404, "host_not_found"),
        ("/api/v1/hosts/not-an-ip", 400, "invalid_address"),
        ("/api/v1/hosts/198.18.0.256", 400, "invalid_address"),
        ("/api/v1/hosts/fe80::1%25eth0", 400, "invalid_address"),
        ("/api/v1/hosts/%zz", 400, "invalid_path_encoding"),
        ("/api/v1/hosts/198.18.0.1%2", 400, "invalid_path_encoding"),
        ("/api/v1/hosts/%C3%28", 400, "invalid_path_encoding"),
        ("/api/v1/hosts/198.18.0.1/extra", 404, "not_found"),
    ] {
        assert_error(&state, "GET", path, status, code).await;
    }
    let (_, body) = get(&state, "/api/v1/hosts/not-an-ip").await;
    assert!(body["message"].as_str().unwrap().contains("`not-an-ip`"));
}

#[tokio::test]
async fn peers_of_a_host() {
    let state = fixture();
    let peer = |ip: &str, sent: Value, received: Value| {
        json!({
            "ip": ip, "interface": "veth0", "sent": sent, "received": received,
            "local": false, "name": null,
        })
    };
    let (status, body) = get(&state, "/api/v1/hosts/198.18.0.1/peers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "ip": "198.18.0.1", "total": 2, "complete": true,
            "since": "2023-11-14T22:13:20.000Z",
            "pair_table": {"capacity": 1024, "used": 2},
            "peers": [
                peer("198.18.0.2", volume(600, 6), volume(50, 1)),
                peer("198.18.0.9", volume(100, 1), volume(0, 0)),
            ],
        })
    );
    let (_, body) = get(
        &state,
        "/api/v1/hosts/198.18.0.2/peers?limit=1&interface=veth0",
    )
    .await;
    assert_eq!(body["total"], 1);
    assert_eq!(
        body["peers"],
        json!([peer("198.18.0.1", volume(50, 1), volume(600, 6))])
    );
    let (_, body) = get(&state, "/api/v1/hosts/198.18.0.1/peers?limit=1").await;
    assert_eq!(
        (
            body["total"].as_u64(),
            body["peers"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    // A host without pairs on that interface: an empty list.
    let (status, body) = get(&state, "/api/v1/hosts/2001:db8::2/peers?interface=veth1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["total"].as_u64(), body["peers"].clone()),
        (Some(0), json!([]))
    );
    for (path, status, code) in [
        ("/api/v1/hosts/198.18.0.3/peers", 404, "host_not_found"),
        ("/api/v1/hosts/not-an-ip/peers", 400, "invalid_address"),
        (
            "/api/v1/hosts/198.18.0.1/peers?limit=0",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/hosts/198.18.0.1/peers?limit=101",
            400,
            "invalid_parameter",
        ),
        (
            "/api/v1/hosts/198.18.0.1/peers?limit=1&limit=2",
            400,
            "duplicate_parameter",
        ),
        (
            "/api/v1/hosts/198.18.0.1/peers?sort=bytes",
            400,
            "unknown_parameter",
        ),
        (
            "/api/v1/hosts/198.18.0.1/peers?interface=eth9",
            404,
            "interface_not_found",
        ),
    ] {
        assert_error(&state, "GET", path, status, code).await;
    }
    assert_error(
        &state,
        "POST",
        "/api/v1/hosts/198.18.0.1/peers",
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn protocols() {
    let state = fixture();
    let veth0 = [
        json!({"interface": "veth0", "name": "tcp", "family": "ipv4", "number": 6,
               "rx": traffic(3000, 30, 2000.0, 20.0), "tx": traffic(500, 5, 0.0, 0.0)}),
        json!({"interface": "veth0", "name": "arp", "family": null, "number": null,
               "rx": traffic(60, 1, 0.0, 0.0), "tx": traffic(0, 0, 0.0, 0.0)}),
    ];
    let veth1 = json!({"interface": "veth1", "name": "udp", "family": "ipv4", "number": 17,
                       "rx": traffic(128, 2, 128.0, 2.0), "tx": traffic(0, 0, 0.0, 0.0)});
    let (status, body) = get(&state, "/api/v1/protocols").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"protocols": [veth0[0], veth0[1], veth1]}));
    let (status, body) = get(&state, "/api/v1/protocols?interface=veth1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"protocols": [veth1]}));

    assert_error(
        &state,
        "GET",
        "/api/v1/protocols?interface=nope",
        404,
        "interface_not_found",
    )
    .await;
    assert_error(
        &state,
        "GET",
        "/api/v1/protocols?sort=ip",
        400,
        "unknown_parameter",
    )
    .await;
    assert_error(
        &state,
        "GET",
        "/api/v1/protocols?interface=veth0&interface=veth1",
        400,
        "duplicate_parameter",
    )
    .await;
}

#[tokio::test]
async fn ipv6_protocol_slots() {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .proto(5, 1, IPV6_BASE + 58, 80, 1)
            .proto(5, 0, 253, 10, 1)
            .build(),
    );
    let state = std::sync::Arc::new(std::sync::RwLock::new(s));
    let (_, body) = get(&state, "/api/v1/protocols").await;
    assert_eq!(
        body,
        json!({"protocols": [
            {"interface": "veth0", "name": "ip-253", "family": "ipv4", "number": 253,
             "rx": traffic(10, 1, 0.0, 0.0), "tx": traffic(0, 0, 0.0, 0.0)},
            {"interface": "veth0", "name": "icmpv6", "family": "ipv6", "number": 58,
             "rx": traffic(0, 0, 0.0, 0.0), "tx": traffic(80, 1, 0.0, 0.0)},
        ]})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let state = fixture();
    for (method, path, status, code) in [
        ("GET", "/", 404, "not_found"),
        ("GET", "/api/v1", 404, "not_found"),
        ("GET", "/api/v2/hosts", 404, "not_found"),
        ("GET", "/api/v1/host", 404, "not_found"),
        ("POST", "/nope", 404, "not_found"),
        ("POST", "/api/v1/hosts", 405, "method_not_allowed"),
        (
            "DELETE",
            "/api/v1/hosts/198.18.0.1",
            405,
            "method_not_allowed",
        ),
        ("PUT", "/api/v1/interfaces", 405, "method_not_allowed"),
        (
            "POST",
            "/api/v1/protocols?interface=veth0",
            405,
            "method_not_allowed",
        ),
        ("POST", "/api/v1/health", 405, "method_not_allowed"),
        ("HEAD", "/api/v1/health", 405, "method_not_allowed"),
    ] {
        assert_error(&state, method, path, status, code).await;
    }
    let response = warp::test::request()
        .method("POST")
        .path("/api/v1/hosts")
        .reply(&routes(state))
        .await;
    assert_eq!(response.headers().get(header::ALLOW).unwrap(), "GET");
}

#[tokio::test]
async fn warp_rejections_become_json() {
    #[derive(Debug)]
    struct Unknown;
    impl warp::reject::Reject for Unknown {}

    // A query string warp cannot decode (here: none where one is required).
    let filter = warp::query::raw()
        .map(|_: String| warp::reply())
        .map(warp::Reply::into_response)
        .recover(handle_rejection)
        .unify();
    let response = warp::test::request().path("/x").reply(&filter).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["code"], "invalid_query");

    // A rejection we do not know: a 500, still JSON.
    let filter = warp::any()
        .and_then(|| async { Err::<warp::reply::Response, _>(warp::reject::custom(Unknown)) })
        .recover(handle_rejection)
        .unify();
    let response = warp::test::request().path("/x").reply(&filter).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: Value = serde_json::from_slice(response.body()).unwrap();
    assert_eq!(body["code"], "internal_error");
}

#[tokio::test]
async fn timestamps_clamp_into_rfc3339_range() {
    use std::time::{Duration, UNIX_EPOCH};

    use super::models::Timestamp;
    let render = |t| serde_json::to_string(&Timestamp(t)).unwrap();
    assert_eq!(
        render(UNIX_EPOCH - Duration::from_secs(5)),
        "\"1970-01-01T00:00:00.000Z\""
    );
    assert_eq!(
        render(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
        "\"2023-11-14T22:13:20.123Z\""
    );
    assert_eq!(
        render(UNIX_EPOCH + Duration::from_secs(253_402_300_801)),
        "\"9999-12-31T23:59:59.999Z\""
    );
}
