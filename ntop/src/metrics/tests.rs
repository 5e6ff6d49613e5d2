//! Unit tests of `/metrics` on hand-built samples: exact series and values in both formats,
//! the host cap with its "other" sum, sticky host series, content negotiation, the route.

use std::collections::BTreeMap;

use ntop_common::{
    counters::{L4Class, RECEIVED, SENT},
    errors::{ERROR_NAMES, ErrorKind},
    proto::{ETHER_BASE, IPV6_BASE},
};
use warp::{Filter as _, http::StatusCode};

use super::*;
use crate::{
    http::handle_rejection,
    state::tests::{SampleBuilder, sample},
};

const TCP4: u32 = 6;
const UDP6: u32 = IPV6_BASE + 17;
/// The first non-IP class: ARP.
const ARP: u32 = ETHER_BASE;

/// `series{labels}` → value, from the sample lines of an exposition.
fn series(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("`series value`");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The `# TYPE` lines: family name → type.
fn types(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn config(local: &str, max_host_series: usize) -> MetricsConfig {
    MetricsConfig {
        local: Subnets::parse(local).unwrap(),
        max_host_series,
    }
}

fn state_of(samples: impl IntoIterator<Item = SampleBuilder>) -> State {
    let mut s = State::new();
    for b in samples {
        s.ingest(&b.build());
    }
    s
}

/// One interface `eth0` with TCP/IPv4 both ways, UDP/IPv6 and ARP received, two local hosts
/// (one IPv4, one IPv6), one remote host, some "other hosts" traffic and one error kind.
fn small() -> SampleBuilder {
    sample(1000)
        .iface(2, "eth0")
        .proto(2, 0, TCP4, 1000, 10)
        .proto(2, 1, TCP4, 3000, 20)
        .proto(2, 0, UDP6, 500, 5)
        .proto(2, 0, ARP, 60, 1)
        .other(2, SENT, L4Class::Udp, 70, 1)
        .other(2, RECEIVED, L4Class::Tcp, 80, 2)
        .host("198.18.0.1", 2, SENT, L4Class::Tcp, 3000, 20)
        .host("198.18.0.1", 2, RECEIVED, L4Class::Tcp, 1000, 10)
        .host("2001:db8::5", 2, RECEIVED, L4Class::Udp, 500, 5)
        .host("203.0.113.9", 2, SENT, L4Class::Tcp, 1000, 10)
        .error(ErrorKind::TruncatedIpv4, 3)
        .capacity(4096)
}

/// What [`small`] exports, whatever the format (but the build info, which differs).
#[expect(clippy::too_many_lines, reason = "one table of literal series")]
fn small_expected() -> BTreeMap<String, String> {
    let mut want: BTreeMap<String, String> = [
        (r#"ntop_interface_bytes_total{interface="eth0",direction="rx"}"#, "1560"),
        (r#"ntop_interface_bytes_total{interface="eth0",direction="tx"}"#, "3000"),
        (r#"ntop_interface_packets_total{interface="eth0",direction="rx"}"#, "16"),
        (r#"ntop_interface_packets_total{interface="eth0",direction="tx"}"#, "20"),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="rx",protocol="tcp",family="ipv4"}"#,
            "1000",
        ),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="tx",protocol="tcp",family="ipv4"}"#,
            "3000",
        ),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="rx",protocol="udp",family="ipv6"}"#,
            "500",
        ),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="tx",protocol="udp",family="ipv6"}"#,
            "0",
        ),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="rx",protocol="arp",family="non-ip"}"#,
            "60",
        ),
        (
            r#"ntop_protocol_bytes_total{interface="eth0",direction="tx",protocol="arp",family="non-ip"}"#,
            "0",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="rx",protocol="tcp",family="ipv4"}"#,
            "10",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="tx",protocol="tcp",family="ipv4"}"#,
            "20",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="rx",protocol="udp",family="ipv6"}"#,
            "5",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="tx",protocol="udp",family="ipv6"}"#,
            "0",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="rx",protocol="arp",family="non-ip"}"#,
            "1",
        ),
        (
            r#"ntop_protocol_packets_total{interface="eth0",direction="tx",protocol="arp",family="non-ip"}"#,
            "0",
        ),
        (r#"ntop_host_bytes_total{interface="eth0",host="198.18.0.1",direction="sent"}"#, "3000"),
        (
            r#"ntop_host_bytes_total{interface="eth0",host="198.18.0.1",direction="received"}"#,
            "1000",
        ),
        (r#"ntop_host_bytes_total{interface="eth0",host="2001:db8::5",direction="sent"}"#, "0"),
        (
            r#"ntop_host_bytes_total{interface="eth0",host="2001:db8::5",direction="received"}"#,
            "500",
        ),
        (r#"ntop_host_packets_total{interface="eth0",host="198.18.0.1",direction="sent"}"#, "20"),
        (
            r#"ntop_host_packets_total{interface="eth0",host="198.18.0.1",direction="received"}"#,
            "10",
        ),
        (r#"ntop_host_packets_total{interface="eth0",host="2001:db8::5",direction="sent"}"#, "0"),
        (
            r#"ntop_host_packets_total{interface="eth0",host="2001:db8::5",direction="received"}"#,
            "5",
        ),
        (r#"ntop_other_hosts_bytes_total{interface="eth0",direction="sent"}"#, "70"),
        (r#"ntop_other_hosts_bytes_total{interface="eth0",direction="received"}"#, "80"),
        (r#"ntop_other_hosts_packets_total{interface="eth0",direction="sent"}"#, "1"),
        (r#"ntop_other_hosts_packets_total{interface="eth0",direction="received"}"#, "2"),
        (r#"ntop_interface_hosts{interface="eth0"}"#, "3"),
        ("ntop_poll_duration_seconds", "0.0015"),
        ("ntop_last_poll_timestamp_seconds", "1700000001.0"),
        ("ntop_host_table_capacity", "4096"),
        ("ntop_host_table_entries", "3"),
        ("ntop_pair_table_capacity", "4096"),
        ("ntop_pair_table_entries", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for kind in ERROR_NAMES {
        let n = if kind == "truncated_ipv4" { "3" } else { "0" };
        want.insert(
            format!(r#"ntop_errors_total{{kind="{kind}"}}"#),
            n.to_owned(),
        );
    }
    want.insert(
        format!(
            r#"ntop_build_info{{version="{}"}}"#,
            env!("CARGO_PKG_VERSION")
        ),
        "1".to_owned(),
    );
    want
}

#[test]
fn prometheus_text_has_exact_series_and_types() {
    let state = state_of([small()]);
    let text = Exporter::new(config("198.18.0.0/15,2001:db8::/32", 10))
        .render(&state, Format::Prometheus)
        .unwrap();
    if std::env::var_os("NTOP_SHOW_METRICS").is_some() {
        println!("{text}");
    }
    assert_eq!(series(&text), small_expected(), "{text}");
    let want_types: BTreeMap<String, String> = [
        ("ntop_interface_bytes_total", "counter"),
        ("ntop_interface_packets_total", "counter"),
        ("ntop_protocol_bytes_total", "counter"),
        ("ntop_protocol_packets_total", "counter"),
        ("ntop_host_bytes_total", "counter"),
        ("ntop_host_packets_total", "counter"),
        ("ntop_other_hosts_bytes_total", "counter"),
        ("ntop_other_hosts_packets_total", "counter"),
        ("ntop_interface_hosts", "gauge"),
        ("ntop_errors_total", "counter"),
        ("ntop_poll_duration_seconds", "gauge"),
        ("ntop_last_poll_timestamp_seconds", "gauge"),
        ("ntop_host_table_capacity", "gauge"),
        ("ntop_host_table_entries", "gauge"),
        ("ntop_pair_table_capacity", "gauge"),
        ("ntop_pair_table_entries", "gauge"),
        ("ntop_build_info", "gauge"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(types(&text), want_types, "{text}");
    // Every sample belongs to the family typed right before it, and has HELP.
    assert_eq!(text.matches("# HELP ").count(), want_types.len());
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
}

#[test]
fn openmetrics_has_the_same_samples_with_units_and_eof() {
    let state = state_of([small()]);
    let text = Exporter::new(config("198.18.0.0/15,2001:db8::/32", 10))
        .render(&state, Format::OpenMetrics)
        .unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(series(&text), small_expected(), "{text}");
    // Family names without the `_total` suffix; units where the name ends in one.
    let t = types(&text);
    assert_eq!(t["ntop_interface_bytes"], "counter");
    assert_eq!(t["ntop_errors"], "counter");
    assert_eq!(t["ntop_build"], "info");
    assert_eq!(t["ntop_poll_duration_seconds"], "gauge");
    for unit in [
        "# UNIT ntop_interface_bytes bytes",
        "# UNIT ntop_protocol_bytes bytes",
        "# UNIT ntop_host_bytes bytes",
        "# UNIT ntop_other_hosts_bytes bytes",
        "# UNIT ntop_poll_duration_seconds seconds",
        "# UNIT ntop_last_poll_timestamp_seconds seconds",
    ] {
        assert!(text.contains(&format!("{unit}\n")), "{unit}: {text}");
    }
}

#[test]
fn before_the_first_poll_only_errors_and_version() {
    let text = Exporter::new(MetricsConfig::default())
        .render(&State::new(), Format::Prometheus)
        .unwrap();
    let got = series(&text);
    assert_eq!(got.len(), ERROR_NAMES.len() + 1, "{text}");
    assert!(
        got.keys()
            .all(|k| k.starts_with("ntop_errors_total{") || k.starts_with("ntop_build_info{"))
    );
    assert!(got.values().all(|v| v == "0" || v == "1"));
}

#[test]
fn remote_hosts_have_no_series_and_nothing_is_local_by_default() {
    let state = state_of([small()]);
    let text = Exporter::new(config("198.18.0.0/15", 10))
        .render(&state, Format::Prometheus)
        .unwrap();
    let hosts: Vec<_> = series(&text)
        .into_keys()
        .filter(|k| k.starts_with("ntop_host_bytes") || k.starts_with("ntop_host_packets"))
        .collect();
    assert_eq!(hosts.len(), 4, "{hosts:?}");
    assert!(hosts.iter().all(|k| k.contains(r#"host="198.18.0.1""#)));
    // Without local subnets no host is exported, not even as "other".
    let text = Exporter::new(MetricsConfig::default())
        .render(&state, Format::Prometheus)
        .unwrap();
    assert!(!text.contains("ntop_host_bytes_total"), "{text}");
    assert!(!text.contains("ntop_host_packets_total"), "{text}");
}

/// `ntop_host_{bytes,packets}_total` rows as `(interface, host, direction) → value`.
fn host_values(text: &str, family: &str) -> BTreeMap<(String, String, String), u64> {
    series(text)
        .into_iter()
        .filter_map(|(k, v)| {
            let labels = k
                .strip_prefix(family)?
                .strip_prefix('{')?
                .strip_suffix('}')?;
            let get = |name: &str| {
                labels
                    .split(',')
                    .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
                    .map(|v| v.trim_end_matches('"').to_owned())
                    .unwrap()
            };
            let key = (get("interface"), get("host"), get("direction"));
            Some((key, v.parse().unwrap()))
        })
        .collect()
}

/// 12 local hosts on two interfaces with distinct totals, plus remote ones; room for 5.
fn many(ms: u64, bump: u64) -> SampleBuilder {
    let mut b = sample(ms).iface(2, "eth0").iface(3, "eth1");
    for i in 1..=12_u64 {
        let ifindex = if i % 3 == 0 { 3 } else { 2 };
        let ip = format!("198.18.0.{i}");
        // Host 1 grows by `bump` in the second sample.
        let extra = if i == 1 { bump } else { 0 };
        b = b
            .host(&ip, ifindex, SENT, L4Class::Tcp, i * 1000 + extra, i)
            .host(&ip, ifindex, RECEIVED, L4Class::Udp, i * 7, 2 * i);
    }
    for i in 1..=3_u64 {
        b = b.host(&format!("203.0.113.{i}"), 2, SENT, L4Class::Tcp, 1 << 40, 1);
    }
    b
}

#[test]
fn host_cap_sums_the_rest_into_other_exactly() {
    let state = state_of([many(0, 0)]);
    let exporter = Exporter::new(config("198.18.0.0/15", 5));
    let text = exporter.render(&state, Format::Prometheus).unwrap();
    let bytes = host_values(&text, "ntop_host_bytes_total");
    let packets = host_values(&text, "ntop_host_packets_total");
    let named: std::collections::BTreeSet<_> = bytes
        .keys()
        .filter(|(_, h, _)| h != OTHER_HOST)
        .map(|(i, h, _)| (i.clone(), h.clone()))
        .collect();
    // The five biggest: 12, 11, 10, 9, 8 (by total bytes).
    let want: std::collections::BTreeSet<_> = [(3, 12), (2, 11), (2, 10), (3, 9), (2, 8)]
        .into_iter()
        .map(|(i, h)| (format!("eth{}", i - 2), format!("198.18.0.{h}")))
        .collect();
    assert_eq!(named, want);
    // One "other" per interface: eth0 has 1,2,4,5,7 and eth1 has 3,6.
    let other = |iface: &str, dir: &str, m: &BTreeMap<_, u64>| {
        m[&(iface.to_owned(), OTHER_HOST.to_owned(), dir.to_owned())]
    };
    assert_eq!(other("eth0", "sent", &bytes), 19_000);
    assert_eq!(other("eth0", "received", &bytes), 19 * 7);
    assert_eq!(other("eth1", "sent", &bytes), 9000);
    assert_eq!(other("eth1", "received", &packets), 18);
    assert_eq!(bytes.len(), (5 + 2) * 2);
    // Sums over all exported series equal the sums over all local hosts, exactly.
    let sum = |m: &BTreeMap<(String, String, String), u64>, dir: &str| -> u64 {
        m.iter().filter(|(k, _)| k.2 == dir).map(|(_, v)| v).sum()
    };
    let all = 78_u64; // 1 + 2 + … + 12
    assert_eq!(sum(&bytes, "sent"), all * 1000);
    assert_eq!(sum(&bytes, "received"), all * 7);
    assert_eq!(sum(&packets, "sent"), all);
    assert_eq!(sum(&packets, "received"), all * 2);
    assert!(!text.contains("203.0.113."), "remote hosts stay out");
}

#[test]
fn host_series_are_sticky_so_other_never_goes_down() {
    let mut state = state_of([many(0, 0)]);
    let exporter = Exporter::new(config("198.18.0.0/15", 5));
    let first = exporter.render(&state, Format::Prometheus).unwrap();
    // Host 1 (in "other" on eth0) becomes the biggest of all.
    state.ingest(&many(1000, 1_000_000).build());
    let second = exporter.render(&state, Format::Prometheus).unwrap();
    let names = |text: &str| -> Vec<(String, String, String)> {
        host_values(text, "ntop_host_bytes_total")
            .into_keys()
            .collect()
    };
    assert_eq!(names(&first), names(&second), "the same series");
    let key = ("eth0".to_owned(), OTHER_HOST.to_owned(), "sent".to_owned());
    assert_eq!(host_values(&first, "ntop_host_bytes_total")[&key], 19_000);
    assert_eq!(
        host_values(&second, "ntop_host_bytes_total")[&key],
        1_019_000
    );
    // A new exporter (a restarted daemon) picks the biggest afresh.
    let fresh = Exporter::new(config("198.18.0.0/15", 5))
        .render(&state, Format::Prometheus)
        .unwrap();
    assert!(fresh.contains(r#"host="198.18.0.1""#), "{fresh}");
}

#[test]
fn no_host_series_at_all_puts_every_local_host_in_other() {
    let state = state_of([many(0, 0)]);
    let text = Exporter::new(config("198.18.0.0/15", 0))
        .render(&state, Format::Prometheus)
        .unwrap();
    let bytes = host_values(&text, "ntop_host_bytes_total");
    assert_eq!(bytes.len(), 4, "{bytes:?}");
    assert!(bytes.keys().all(|(_, h, _)| h == OTHER_HOST));
    assert_eq!(bytes.values().sum::<u64>(), 78 * 1007);
}

#[test]
fn ipv4_mapped_and_ipv6_hosts_match_their_subnets() {
    let state = state_of([sample(0)
        .iface(2, "eth0")
        .host("::ffff:198.18.0.9", 2, SENT, L4Class::Tcp, 100, 1)
        .host("2001:db8:1::9", 2, SENT, L4Class::Tcp, 100, 1)
        .host("2001:db9::9", 2, SENT, L4Class::Tcp, 100, 1)]);
    let text = Exporter::new(config("198.18.0.0/24,2001:db8::/32", 10))
        .render(&state, Format::Prometheus)
        .unwrap();
    let hosts: Vec<_> = host_values(&text, "ntop_host_bytes_total")
        .into_keys()
        .map(|k| k.1)
        .collect();
    assert_eq!(
        hosts,
        ["198.18.0.9", "198.18.0.9", "2001:db8:1::9", "2001:db8:1::9"]
    );
}

#[test]
fn counters_stay_monotonic_across_a_kernel_reset() {
    // The state keeps totals monotonic; the exposition shows those totals.
    let state = state_of([
        small(),
        sample(2000).iface(2, "eth0").proto(2, 1, TCP4, 100, 1),
    ]);
    let text = Exporter::new(MetricsConfig::default())
        .render(&state, Format::Prometheus)
        .unwrap();
    let s = series(&text);
    assert_eq!(
        s[r#"ntop_interface_bytes_total{interface="eth0",direction="tx"}"#],
        "3100"
    );
}

#[test]
fn negotiation_follows_accept() {
    use Format::{OpenMetrics, Prometheus};
    let cases = [
        (None, Prometheus),
        (Some(""), Prometheus),
        (Some("*/*"), Prometheus),
        (Some("text/plain"), Prometheus),
        (Some("text/plain;version=0.0.4"), Prometheus),
        (Some("application/openmetrics-text"), OpenMetrics),
        (
            Some("Application/OpenMetrics-Text; version=1.0.0"),
            OpenMetrics,
        ),
        // What Prometheus 2.x sends by default.
        (
            Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
            OpenMetrics,
        ),
        (
            Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
            Prometheus,
        ),
        (Some("application/openmetrics-text;q=0"), Prometheus),
        (
            Some("application/openmetrics-text; q=0.0, text/plain"),
            Prometheus,
        ),
        (Some("application/json"), Prometheus),
    ];
    for (accept, want) in cases {
        assert_eq!(Format::negotiate(accept), want, "{accept:?}");
    }
    assert_eq!(
        Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}

#[tokio::test]
async fn the_route_serves_both_formats_and_rejects_other_methods() {
    let state = State::shared();
    state.write().unwrap().ingest(&small().build());
    let app = route(state, config("198.18.0.0/15", 10)).recover(handle_rejection);

    let res = warp::test::request().path("/metrics").reply(&app).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        Format::Prometheus.content_type()
    );
    assert_eq!(res.headers()["vary"], "accept");
    let body = std::str::from_utf8(res.body()).unwrap();
    assert!(
        body.contains("ntop_interface_bytes_total{interface=\"eth0\",direction=\"rx\"} 1560\n")
    );

    let res = warp::test::request()
        .path("/metrics")
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,*/*;q=0.1",
        )
        .reply(&app)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["content-type"],
        Format::OpenMetrics.content_type()
    );
    assert!(
        std::str::from_utf8(res.body())
            .unwrap()
            .ends_with("# EOF\n")
    );

    let res = warp::test::request()
        .method("POST")
        .path("/metrics")
        .reply(&app)
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let res = warp::test::request().path("/metrics/x").reply(&app).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
