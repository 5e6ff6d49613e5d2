//! `/metrics` against a real Prometheus server (Debian's `prometheus` binary, started by the test
//! inside a test namespace on its loopback, with a temporary TSDB and a config the test writes:
//! 1 s scrapes, HTTP Basic auth). Debian's systemd service is never used.
//!
//! - [`prometheus_stores_both_formats_exactly`]: the exporter (`ntop::metrics::Exporter`) over a
//!   hand-built state, served by a small HTTP server of the test's own in the namespace, scraped
//!   in both formats (`OpenMetrics` as Prometheus asks by default, and the Prometheus text format on
//!   a second path); Prometheus's query API returns every sample of the exposition with the
//!   exact value, before and after the state changes, and `promtool check metrics` finds nothing
//!   to lint in the text format.
//! - [`daemon_metrics_scraped_by_prometheus_equal_the_json`]: the daemon itself, with ping traffic
//!   on a veth; once its counts have settled, what Prometheus scraped equals the daemon's JSON.

#![expect(
    clippy::float_cmp,
    reason = "Prometheus stores float64: the values must be equal, exactly"
)]

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    path::PathBuf,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ntop::{
    metrics::{Exporter, Format, MetricsConfig},
    sample::{CaptureMode, InterfaceSample, Sample},
    state::{State, key_addr},
    subnets::Subnets,
};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, L4Class, RECEIVED, SENT},
    errors::{ERROR_KINDS, ErrorKind},
    proto::{ETHER_BASE, IPV6_BASE, PROTO_SLOTS},
};
use ntop_tests::{
    LinkStats, Netns, NsChild, TestNet, VethConfig, daemon::http_get, link_stats, ntop_bin, ping,
    require_root, scratch_dir, wait_until,
};
use serde_json::Value;

/// Where Prometheus listens inside the test namespace.
const PROMETHEUS: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
/// The credentials in the scrape config.
const USER: &str = "admin";
const PASSWORD: &str = "prometheus-test-pw";
/// Bound on Prometheus's start-up and on each wait for a scrape to show up in queries.
const PATIENCE: Duration = Duration::from_mins(1);

/// Labels (without `job` and `instance`) of one series, with its name as `__name__`.
type Labels = BTreeMap<String, String>;

/// Standard base64 (RFC 4648, padded), for `Authorization: Basic`.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn basic_auth() -> String {
    format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()))
}

/// Percent-encodes a query parameter value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One scrape job of the config.
struct Job {
    name: &'static str,
    path: &'static str,
    target: SocketAddr,
}

/// A Prometheus server in a test namespace: its own config and TSDB in a scratch directory,
/// listening on [`PROMETHEUS`] there; killed when dropped.
struct Prometheus<'a> {
    ns: &'a Netns,
    child: NsChild,
    dir: PathBuf,
}

impl<'a> Prometheus<'a> {
    /// Starts Prometheus scraping `jobs` every second with Basic auth, and waits until it is
    /// ready.
    #[track_caller]
    fn start(ns: &'a Netns, jobs: &[Job]) -> Self {
        let dir = scratch_dir().join(format!("prometheus-{}", ns.name()));
        fs::create_dir_all(dir.join("data")).expect("creating Prometheus's directory");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1m\n\
             scrape_configs:\n",
        );
        for job in jobs {
            let _ = write!(
                config,
                "  - job_name: {}\n    metrics_path: {}\n    basic_auth:\n      username: {USER}\n      \
                 password: {PASSWORD}\n    static_configs:\n      - targets: ['{}']\n",
                job.name, job.path, job.target
            );
        }
        let config_file = dir.join("prometheus.yml");
        fs::write(&config_file, config).expect("writing prometheus.yml");
        let mut cmd = ns.command("prometheus");
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .arg("--log.level=warn");
        let mut child = NsChild::spawn(cmd);
        let ready = wait_until(PATIENCE, Duration::from_millis(100), || {
            if let Some(status) = child.try_wait() {
                return Some(Err(status));
            }
            let (code, _) = http_get(ns, PROMETHEUS, "/-/ready")?;
            (code == 200).then_some(Ok(()))
        });
        match ready {
            Some(Ok(())) => Self { ns, child, dir },
            Some(Err(status)) => panic!(
                "prometheus exited ({status}) before it was ready:\n{}",
                child.stderr()
            ),
            None => panic!(
                "prometheus was not ready within {PATIENCE:?}:\n{}",
                child.stderr()
            ),
        }
    }

    /// An instant query: every series with its labels (less `job` and `instance`) and value,
    /// by job.
    fn query(&self, promql: &str) -> BTreeMap<(String, Labels), f64> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let (code, body) = http_get(self.ns, PROMETHEUS, &path)
            .unwrap_or_else(|| panic!("Prometheus did not answer {path}"));
        assert_eq!(code, 200, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("no result: {body}"))
            .iter()
            .map(|r| {
                let mut labels: Labels = r["metric"]
                    .as_object()
                    .expect("metric")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_owned()))
                    .collect();
                let job = labels.remove("job").expect("a job label");
                labels.remove("instance");
                let value = r["value"][1]
                    .as_str()
                    .expect("value")
                    .parse()
                    .expect("float");
                ((job, labels), value)
            })
            .collect()
    }

    /// Every `ntop_*` series of `job`.
    fn ntop_series(&self, job: &str) -> BTreeMap<Labels, f64> {
        self.query(&format!(r#"{{__name__=~"ntop_.+",job="{job}"}}"#))
            .into_iter()
            .map(|((_, labels), v)| (labels, v))
            .collect()
    }

    /// The targets' health, for failure messages.
    fn targets(&self) -> String {
        http_get(self.ns, PROMETHEUS, "/api/v1/targets").map_or_else(String::new, |(_, b)| b)
    }

    /// Waits until `job`'s series equal `want` exactly; panics with the difference if they do
    /// not within [`PATIENCE`].
    #[track_caller]
    fn wait_for(&self, job: &str, want: &BTreeMap<Labels, f64>) {
        let mut last = BTreeMap::new();
        let ok = wait_until(PATIENCE, Duration::from_millis(200), || {
            last = self.ntop_series(job);
            (last == *want).then_some(())
        });
        if ok.is_none() {
            let missing: Vec<_> = want
                .iter()
                .filter(|(k, v)| last.get(*k) != Some(v))
                .collect();
            let extra: Vec<_> = last
                .iter()
                .filter(|(k, _)| !want.contains_key(*k))
                .collect();
            panic!(
                "job {job}: Prometheus's series never equalled the exposition.\nwanted but \
                 missing or different: {missing:#?}\nunexpected: {extra:#?}\ntargets: {}\n\
                 prometheus log:\n{}",
                self.targets(),
                self.child.stderr()
            );
        }
    }
}

impl Drop for Prometheus<'_> {
    fn drop(&mut self) {
        self.child.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The samples of an exposition (either format) as Prometheus would store them.
fn exposition_series(text: &str) -> BTreeMap<Labels, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').expect("closing brace")),
                None => (series, ""),
            };
            let mut map: Labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once("=\"").expect("label=\"value\"");
                    (k.to_owned(), v.trim_end_matches('"').to_owned())
                })
                .collect();
            map.insert("__name__".to_owned(), name.to_owned());
            (map, value.parse().expect("a float value"))
        })
        .collect()
}

/// A test-only `/metrics` server in `ns`: `/metrics` negotiates like the daemon's route,
/// `/metrics-text` always answers in the Prometheus text format (Prometheus 2.42 always asks
/// for `OpenMetrics` first). Requires Basic auth. Stops (and joins) when dropped.
struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(ns: &Netns, state: Arc<RwLock<State>>, exporter: Arc<Exporter>) -> Self {
        let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").expect("binding in the ns"));
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, scrapes) = (stop.clone(), scrapes.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            if serve(conn, &state, &exporter) {
                                scrapes.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(10));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            scrapes,
            thread: Some(thread),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request; true if it served metrics.
fn serve(mut conn: TcpStream, state: &RwLock<State>, exporter: &Exporter) -> bool {
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let (status, content_type, body) = if header("authorization") == Some(basic_auth()) {
        let format = match path.as_str() {
            "/metrics" => Some(Format::negotiate(header("accept").as_deref())),
            "/metrics-text" => Some(Format::Prometheus),
            _ => None,
        };
        match format {
            Some(format) => {
                let snapshot = exporter.snapshot(&state.read().expect("state lock"));
                let body = snapshot.encode(format).expect("encoding");
                ("200 OK", format.content_type(), body)
            }
            None => ("404 Not Found", "text/plain", "no\n".to_owned()),
        }
    } else {
        ("401 Unauthorized", "text/plain", "log in\n".to_owned())
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    status.starts_with("200")
}

/// A sample with large counters that float64 still holds exactly (below 2^53, also doubled), local hosts beyond
/// the cap, remote hosts, an IPv6 host, "other hosts" and errors; `k` scales the counters.
fn sample(k: u64, secs: u64) -> Sample {
    let zeros = || Box::new([Counter::default(); PROTO_SLOTS as usize]);
    let mut iface = InterfaceSample {
        name: "eth-test".to_owned(),
        ifindex: 7,
        mode: CaptureMode::XdpNative,
        proto: [zeros(), zeros()],
        other_hosts: HostCounters::default(),
    };
    let c = |bytes: u64, packets: u64| Counter {
        bytes: bytes * k,
        packets: packets * k,
    };
    iface.proto[0][6] = c((1 << 51) + 12_345, 3_000_000_001);
    iface.proto[1][6] = c(987_654_321, 654_321);
    iface.proto[0][(IPV6_BASE + 58) as usize] = c(1_000, 10);
    iface.proto[1][ETHER_BASE as usize] = c(42, 1);
    iface.other_hosts.c[SENT][L4Class::Udp as usize] = c(777, 7);
    let mut hosts = Vec::new();
    let mut host = |ip: &str, sent: Counter, received: Counter| {
        let mut h = HostCounters::default();
        h.c[SENT][L4Class::Tcp as usize] = sent;
        h.c[RECEIVED][L4Class::Icmpv6 as usize] = received;
        hosts.push((
            HostKey {
                addr: key_addr(ip.parse().expect("an address")),
                ifindex: 7,
            },
            h,
        ));
    };
    for i in 1..=6_u64 {
        host(&format!("198.18.0.{i}"), c(i << 40, i), c(i * 3, i));
    }
    host("2001:db8::9", c(5, 1), c(1 << 45, 99));
    host("203.0.113.1", c(1 << 50, 1), c(0, 0));
    let mut errors = [0; ERROR_KINDS as usize];
    errors[ErrorKind::HostMapFull as usize] = 5 * k;
    Sample {
        at: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
        monotonic: Duration::from_secs(secs),
        interfaces: vec![iface],
        hosts,
        host_capacity: 4096,
        pairs: Vec::new(),
        pairs_read: true,
        pair_capacity: 4096,
        created: None,
        errors,
        epoch: ntop::sample::Epoch::default(),
        poll_duration: Duration::from_micros(2500),
    }
}

/// The exporter over a hand-built state, scraped by real Prometheus in both formats: every
/// sample arrives with its exact value, and an update arrives too.
#[test]
fn prometheus_stores_both_formats_exactly() {
    require_root();
    let ns = Netns::new();
    let state = Arc::new(RwLock::new(State::new()));
    state.write().unwrap().ingest(&sample(1, 0));
    let exporter = Arc::new(Exporter::new(MetricsConfig {
        local: Subnets::parse("198.18.0.0/15,2001:db8::/32").unwrap(),
        max_host_series: 4,
    }));
    let server = TestServer::start(&ns, state.clone(), exporter.clone());

    // The text format passes promtool's lint.
    let text = exporter
        .render(&state.read().unwrap(), Format::Prometheus)
        .unwrap();
    let (status, lint) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text.as_bytes());
    assert!(status.success(), "promtool check metrics: {lint}\n{text}");

    let prometheus = Prometheus::start(
        &ns,
        &[
            Job {
                name: "openmetrics",
                path: "/metrics",
                target: server.addr,
            },
            Job {
                name: "text",
                path: "/metrics-text",
                target: server.addr,
            },
        ],
    );
    let want = exposition_series(&text);
    // 4 + 12 protocol + 20 host + 4 other-hosts + 1 + 15 error + 2 poll + 4 table + 1 build.
    assert_eq!(want.len(), 63, "{text}");
    // Anchors that do not depend on the exposition parser: the exact big values and the sums.
    let find = |name: &str, pairs: &[(&str, &str)]| -> f64 {
        want.iter()
            .find(|(l, _)| {
                l["__name__"] == name
                    && pairs
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map_or_else(|| panic!("no {name}{pairs:?} in\n{text}"), |(_, v)| *v)
    };
    #[expect(clippy::cast_precision_loss, reason = "below 2^53: exact")]
    let big = ((1_u64 << 51) + 12_345 + 1_000) as f64;
    assert_eq!(
        find("ntop_interface_bytes_total", &[("direction", "rx")]),
        big
    );
    // 4 host series of 7 local hosts: the biggest by bytes are 2001:db8::9 (2^45), 6, 5, 4.
    // "other" holds hosts 1, 2 and 3: (1 + 2 + 3) * 2^40 sent.
    #[expect(clippy::cast_precision_loss, reason = "below 2^53: exact")]
    let other = (6_u64 << 40) as f64;
    assert_eq!(
        find(
            "ntop_host_bytes_total",
            &[("host", "other"), ("direction", "sent")]
        ),
        other
    );
    assert!(!text.contains("203.0.113.1"), "remote hosts have no series");

    prometheus.wait_for("openmetrics", &want);
    prometheus.wait_for("text", &want);

    // Counters change: the next scrapes carry the new values.
    state.write().unwrap().ingest(&sample(2, 1));
    let text = exporter
        .render(&state.read().unwrap(), Format::Prometheus)
        .unwrap();
    let want2 = exposition_series(&text);
    assert_ne!(want2, want);
    prometheus.wait_for("openmetrics", &want2);
    prometheus.wait_for("text", &want2);
    assert!(server.scrapes.load(Ordering::Relaxed) >= 4);
    // The OpenMetrics job really got OpenMetrics (Prometheus records the scrape's
    // content type only in its logs; check what the server answers it instead).
    let (code, body) = ns.enter(|| {
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nAccept: \
             application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
            basic_auth()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        (out.lines().next().unwrap_or_default().to_owned(), out)
    });
    assert!(code.contains("200"), "{body}");
    assert!(
        body.contains("application/openmetrics-text; version=1.0.0") && body.ends_with("# EOF\n"),
        "{body}"
    );
}

/// `Command::output` with bytes on stdin: (status, stdout + stderr).
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> (std::process::ExitStatus, String);
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> (std::process::ExitStatus, String) {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting the command");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("writing stdin");
        let out = child.wait_with_output().expect("waiting for the command");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    }
}

// ---------------------------------------------------------------------------------------------
// The daemon itself.

/// Where the daemon serves in its namespace.
const API: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3000));

/// `GET path` on the daemon with Basic auth: status and body.
fn get(ns: &Netns, path: &str) -> Option<(u16, String)> {
    ns.enter(|| -> Option<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&API, Duration::from_secs(2)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {API}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic_auth()
        )
        .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "the API answers with Content-Length"
        );
        Some((status, body.to_owned()))
    })
}

/// `GET path` as JSON; panics unless 200.
#[track_caller]
fn get_json(ns: &Netns, path: &str) -> Value {
    let (code, body) = get(ns, path).unwrap_or_else(|| panic!("no answer to GET {path}"));
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

/// What the daemon's JSON says every exported series must be, except the hosts (see the test)
/// and the poll time and duration, which change with every poll.
fn json_series(ns: &Netns) -> (BTreeMap<Labels, f64>, Value) {
    let interfaces = get_json(ns, "/api/v1/interfaces");
    let protocols = get_json(ns, "/api/v1/protocols");
    let mut want = BTreeMap::new();
    let mut put = |name: &str, labels: &[(&str, &str)], v: f64| {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        l.insert("__name__".to_owned(), name.to_owned());
        want.insert(l, v);
    };
    for i in interfaces["interfaces"].as_array().expect("interfaces") {
        let name = i["name"].as_str().expect("name");
        for dir in ["rx", "tx"] {
            let labels = [("interface", name), ("direction", dir)];
            put("ntop_interface_bytes_total", &labels, f(&i[dir]["bytes"]));
            put(
                "ntop_interface_packets_total",
                &labels,
                f(&i[dir]["packets"]),
            );
        }
        for dir in ["sent", "received"] {
            let labels = [("interface", name), ("direction", dir)];
            let o = &i["other_hosts"][dir];
            put("ntop_other_hosts_bytes_total", &labels, f(&o["bytes"]));
            put("ntop_other_hosts_packets_total", &labels, f(&o["packets"]));
        }
        put(
            "ntop_interface_hosts",
            &[("interface", name)],
            f(&i["hosts"]),
        );
    }
    for p in protocols["protocols"].as_array().expect("protocols") {
        let family = p["family"].as_str().unwrap_or("non-ip");
        for dir in ["rx", "tx"] {
            let labels = [
                ("interface", p["interface"].as_str().expect("interface")),
                ("direction", dir),
                ("protocol", p["name"].as_str().expect("name")),
                ("family", family),
            ];
            put("ntop_protocol_bytes_total", &labels, f(&p[dir]["bytes"]));
            put(
                "ntop_protocol_packets_total",
                &labels,
                f(&p[dir]["packets"]),
            );
        }
    }
    for (kind, n) in interfaces["errors"].as_object().expect("errors") {
        put("ntop_errors_total", &[("kind", kind)], f(n));
    }
    put(
        "ntop_host_table_capacity",
        &[],
        f(&interfaces["host_table"]["capacity"]),
    );
    put(
        "ntop_host_table_entries",
        &[],
        f(&interfaces["host_table"]["used"]),
    );
    put(
        "ntop_pair_table_capacity",
        &[],
        f(&interfaces["pair_table"]["capacity"]),
    );
    put(
        "ntop_pair_table_entries",
        &[],
        f(&interfaces["pair_table"]["used"]),
    );
    put(
        "ntop_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    (want, interfaces)
}

/// Waits until the daemon's packet counts equal the link's (the traffic has been counted).
fn settle(ns: &Netns, dev: &str, base: &LinkStats) {
    let ok = wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
        let link = link_stats(ns, dev).since(base);
        let v = get_json(ns, "/api/v1/interfaces");
        let i = &v["interfaces"][0];
        (i["rx"]["packets"].as_u64() == Some(link.rx_packets)
            && i["tx"]["packets"].as_u64() == Some(link.tx_packets))
        .then_some(())
    });
    assert!(ok.is_some(), "the daemon's counts never reached the link's");
}

/// The host series in `got` (Prometheus): one for one local host, "other" for the rest, equal
/// to the daemon's JSON for the hosts on `dev`, the only (and local) ones.
fn assert_hosts(got: &BTreeMap<Labels, f64>, a: &Netns, dev_a: &String) {
    let hosts = get_json(a, "/api/v1/hosts?limit=10000");
    // The daemon's default: the subnets of its interfaces, as its namespace sees them.
    let local = a.enter(|| Subnets::from_interfaces(std::slice::from_ref(dev_a)).unwrap());
    assert_eq!(local.to_string(), "198.18.0.0/24,2001:db8::/64");
    let mut json_hosts: BTreeMap<(String, String), f64> = BTreeMap::new();
    for h in hosts["hosts"].as_array().expect("hosts") {
        let ip: IpAddr = h["ip"].as_str().unwrap().parse().unwrap();
        assert!(local.contains(ip), "only the link's own addresses: {ip}");
        for dir in ["sent", "received"] {
            json_hosts.insert(
                (ip.to_string(), format!("{dir}/bytes")),
                f(&h[dir]["bytes"]),
            );
            json_hosts.insert(
                (ip.to_string(), format!("{dir}/packets")),
                f(&h[dir]["packets"]),
            );
        }
    }
    assert_eq!(json_hosts.len(), 4 * 4, "four local addresses: {hosts}");
    let named: Vec<String> = got
        .keys()
        .filter(|l| l["__name__"] == "ntop_host_bytes_total" && l["host"] != "other")
        .map(|l| l["host"].clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(named.len(), 1, "one host series: {got:#?}");
    for dir in ["sent", "received"] {
        for (unit, name) in [
            ("bytes", "ntop_host_bytes_total"),
            ("packets", "ntop_host_packets_total"),
        ] {
            let series = |host: &str| {
                got.iter()
                    .find(|(l, _)| {
                        l["__name__"] == name && l["host"] == host && l["direction"] == dir
                    })
                    .map_or_else(|| panic!("no {name} for {host} {dir}"), |(_, v)| *v)
            };
            let key = format!("{dir}/{unit}");
            let all: f64 = json_hosts
                .iter()
                .filter(|((_, k), _)| *k == key)
                .map(|(_, v)| v)
                .sum();
            assert_eq!(
                series(&named[0]),
                json_hosts[&(named[0].clone(), key.clone())]
            );
            assert_eq!(series(&named[0]) + series("other"), all, "{key}");
        }
    }
}

/// Sets the admin password in a fresh data directory, starts the daemon on `dev` in `ns` (HTTP
/// on [`API`], room for one host series) and waits until it has polled once.
fn start_daemon(ns: &Netns, dev: &str) -> NsChild {
    let data = scratch_dir().join(format!("data-{}", ns.name()));
    let data = data.to_str().expect("a UTF-8 path");
    let set_password = format!("--set-admin-password={PASSWORD}");
    ns.run(ntop_bin(), ["-P", data, set_password.as_str()]);
    let mut cmd = ns.command(ntop_bin());
    cmd.args([
        "-w",
        &API.to_string(),
        "-i",
        dev,
        "--memory-budget",
        "1M",
        "--metrics-max-hosts",
        "1",
        "-P",
        data,
        "-u",
        "root",
    ]);
    let mut daemon = NsChild::spawn(cmd);
    let started = wait_until(PATIENCE, Duration::from_millis(50), || {
        if let Some(status) = daemon.try_wait() {
            panic!("ntop exited ({status}):\n{}", daemon.stderr());
        }
        let (code, body) = get(ns, "/api/v1/interfaces")?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && !v["polled_at"].is_null()).then_some(())
    });
    assert!(
        started.is_some(),
        "ntop did not serve:\n{}",
        daemon.stderr()
    );
    daemon
}

/// The daemon on a veth with ping traffic, scraped by Prometheus with Basic auth: once the
/// counts have settled and Prometheus has scraped again, every series equals the daemon's JSON;
/// the local hosts (the veth's own subnets, the default without `-m`) are one host series (the
/// cap is 1) and "other", summing exactly to the JSON's local hosts.
#[test]
fn daemon_metrics_scraped_by_prometheus_equal_the_json() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let (a, dev_a) = (&net.a, &net.link.dev_a);
    let base = link_stats(a, dev_a);
    let mut daemon = start_daemon(a, dev_a);
    let prometheus = Prometheus::start(
        a,
        &[Job {
            name: "ntop",
            path: "/metrics",
            target: API,
        }],
    );

    let (v4_b, v6_b): (IpAddr, IpAddr) = (net.link.ipv4_b.into(), net.link.ipv6_b.into());
    assert_eq!(ping(a, v4_b, 5, 56).received, 5);
    assert_eq!(ping(a, v6_b, 5, 200).received, 5);
    settle(a, dev_a, &base);
    let settled = SystemTime::now();

    // Everything but the hosts and the poll time and duration, exactly. Waiting for equality
    // also waits for a scrape after the traffic (the counts no longer change) and for the pair
    // table's fill, which the daemon reads every few seconds only (so the JSON is read again
    // each round).
    let mut got = BTreeMap::new();
    let (mut want, mut interfaces) = json_series(a);
    let same = wait_until(PATIENCE, Duration::from_millis(200), || {
        (want, interfaces) = json_series(a);
        got = prometheus.ntop_series("ntop");
        let comparable: BTreeMap<Labels, f64> = got
            .iter()
            .filter(|(l, _)| {
                !l["__name__"].starts_with("ntop_host_bytes")
                    && !l["__name__"].starts_with("ntop_host_packets")
                    && l["__name__"] != "ntop_poll_duration_seconds"
                    && l["__name__"] != "ntop_last_poll_timestamp_seconds"
            })
            .map(|(l, v)| (l.clone(), *v))
            .collect();
        (comparable == want).then_some(())
    });
    assert!(
        same.is_some(),
        "Prometheus {got:#?}\n!= JSON {want:#?}\ntargets: {}",
        prometheus.targets()
    );

    assert_hosts(&got, a, dev_a);
    // The poll gauges: a poll after the traffic, taking less than a second.
    let polled = prometheus.query("ntop_last_poll_timestamp_seconds");
    let polled = polled.values().next().copied().expect("a poll time");
    let settled = settled.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(polled > settled - 2.0, "{polled} vs {settled}");
    let duration = prometheus.query("ntop_poll_duration_seconds");
    assert!(
        duration.values().all(|d| (0.0..1.0).contains(d)),
        "{duration:?}"
    );
    assert!(!interfaces["polled_at"].is_null());
    drop(prometheus);
    daemon.stop(Duration::from_secs(10));
}
