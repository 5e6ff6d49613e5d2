//! `GET /api/v1/status` (is everything working: the collector, the data directory),
//! `POST /api/v1/reset` (the admin's "reset statistics"), `GET /api/v1/config` (classic ntop's
//! "Show Configuration": the options this run uses) and `GET /api/v1/log` (the most recent
//! log lines).
//!
//! Runs in the HTTP server's tasks; the state work runs on tokio's blocking pool. Every route
//! is behind the authentication layer like every API route; reset, config and log are listed
//! there as admin routes (API tokens may not use them; a session needs its CSRF token to
//! reset, see [`crate::auth`]). `POST /api/v1/password` lives in the authentication layer,
//! which owns the password.

use std::{
    net::SocketAddr,
    sync::PoisonError,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use warp::{
    Filter, Rejection,
    http::{Method, StatusCode},
    reply::Response,
};

use super::{
    client_addr,
    error::ApiError,
    handlers::{Query, json, params},
};
use crate::{
    cli::{Cli, Listen},
    logging::LogRing,
    persist::{SharedStatus, StoreStatus},
    state::SharedState,
    subnets::Subnets,
};

/// Log lines `GET /api/v1/log` returns unless `lines` says otherwise.
pub const DEFAULT_LOG_LINES: usize = 200;
/// Most log lines one request returns.
pub const MAX_LOG_LINES: usize = 2000;

/// What the daemon runs with, fixed at start-up (for the status page).
#[derive(Clone, Debug, Serialize)]
pub struct RunInfo {
    /// `ntop` version.
    pub version: &'static str,
    /// When the daemon started (unix seconds).
    pub started: u64,
    /// Where the programs are pinned (`None`: unpinned, nothing is counted while ntop is down).
    pub pin_dir: Option<String>,
    /// Whether this start re-adopted pinned programs that counted while ntop was down.
    pub readopted: bool,
    /// Whether the programs are detached when ntop stops (`--detach-on-stop`).
    pub detach_on_stop: bool,
    /// The refresh interval in milliseconds.
    pub refresh_interval_ms: u64,
}

#[derive(Serialize)]
struct Status<'a> {
    ntop: &'a RunInfo,
    collector: Collector,
    store: StoreStatus,
    /// Since when the totals count (the first start on this data directory, or the last
    /// reset), unix seconds.
    counting_since: Option<u64>,
}

#[derive(Serialize)]
struct Collector {
    /// `ok`, `starting` (no poll yet) or `stalled` (no poll for 10 refresh intervals).
    state: &'static str,
    polled_at: Option<u64>,
    poll_duration_ms: Option<f64>,
    host_table_capacity: u32,
    host_table_used: usize,
    pair_table_capacity: u32,
    pair_table_used: usize,
    hosts_known: usize,
}

#[derive(Serialize)]
struct ResetDone {
    counting_since: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The two routes.
pub fn routes(
    state: SharedState,
    status: SharedStatus,
    info: RunInfo,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let with_state = warp::any().map(move || state.clone());
    let status_route = warp::path!("api" / "v1" / "status")
        .and(warp::get())
        .and(with_state.clone())
        .and(warp::any().map(move || status.clone()))
        .and(warp::any().map(move || info.clone()))
        .and_then(status_handler);
    let reset = warp::path!("api" / "v1" / "reset")
        .and(warp::method())
        .and(with_state)
        .and(client_addr())
        .and_then(reset_handler);
    status_route.or(reset).unify()
}

async fn status_handler(
    state: SharedState,
    status: SharedStatus,
    info: RunInfo,
) -> Result<Response, Rejection> {
    let store = status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let body = tokio::task::spawn_blocking(move || {
        let s = state.read().unwrap_or_else(PoisonError::into_inner);
        let polled_at = s.polled_at();
        let stalled = polled_at.is_some_and(|t| {
            SystemTime::now().duration_since(t).unwrap_or_default()
                > Duration::from_millis(info.refresh_interval_ms.saturating_mul(10).max(10_000))
        });
        let table = s.host_table();
        let collector = Collector {
            state: match (polled_at, stalled) {
                (None, _) => "starting",
                (Some(_), true) => "stalled",
                (Some(_), false) => "ok",
            },
            polled_at: polled_at.map(unix),
            poll_duration_ms: s.poll_duration().map(|d| d.as_secs_f64() * 1000.0),
            host_table_capacity: table.capacity,
            host_table_used: table.used,
            pair_table_capacity: s.pair_table().capacity,
            pair_table_used: s.pair_table().used,
            hosts_known: s.host_count(),
        };
        let counting_since = s.counting_since().map(unix);
        drop(s);
        json(
            StatusCode::OK,
            &Status {
                ntop: &info,
                collector,
                store,
                counting_since,
            },
        )
    })
    .await
    .map_err(|e| warp::reject::custom(ApiError::Internal(format!("status worker: {e}"))))?;
    Ok(body)
}

async fn reset_handler(
    method: Method,
    state: SharedState,
    client: Option<SocketAddr>,
) -> Result<Response, Rejection> {
    if method != Method::POST {
        return Ok(ApiError::MethodNotAllowed { allow: "POST" }.to_response());
    }
    let now = SystemTime::now();
    tokio::task::spawn_blocking(move || {
        state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .reset(now);
    })
    .await
    .map_err(|e| warp::reject::custom(ApiError::Internal(format!("reset worker: {e}"))))?;
    let from = client.map_or_else(|| "an unknown address".to_owned(), |a| a.ip().to_string());
    tracing::warn!("statistics reset by the admin from {from}: every total starts again from zero");
    Ok(json(
        StatusCode::OK,
        &ResetDone {
            counting_since: unix(now),
        },
    ))
}

/// The options this run uses (`GET /api/v1/config`), fixed at start-up: the command line
/// with its defaults filled in and what they resolved to. Never a secret (no password, no
/// token, no key material; certificate and key are named by path only).
#[derive(Clone, Debug, Serialize)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "the command line's on/off flags"
)]
pub struct RunConfig {
    /// `ntop` version.
    pub version: &'static str,
    /// When the daemon started (unix seconds).
    pub started: u64,
    /// The monitored interfaces (`-i`, or the default route's).
    pub interfaces: Vec<String>,
    /// HTTP address (`-w`), `null` when off.
    pub http: Option<String>,
    /// HTTPS address (`-W`), `null` when off.
    pub https: Option<String>,
    /// `--https-cert`, `null`: generated self-signed in the data directory.
    pub https_cert: Option<String>,
    /// `--https-key`.
    pub https_key: Option<String>,
    /// `--web-public-read`.
    pub web_public_read: bool,
    /// The data directory (`-P`).
    pub data_dir: String,
    /// `-u` as given (`null`: the default, `ntop` or `nobody`).
    pub user: Option<String>,
    /// The user the daemon runs as now.
    pub running_as: String,
    /// `-d`.
    pub daemon: bool,
    /// `--capture-mode` as requested (per-interface results are in `/api/v1/interfaces`).
    pub capture_mode: String,
    /// `--memory-budget`, in bytes.
    pub memory_budget_bytes: u64,
    /// Hosts the kernel's host table holds.
    pub host_capacity: u32,
    /// `--no-peers`: who talks to whom is not counted.
    pub no_peers: bool,
    /// `--refresh-interval`, in milliseconds.
    pub refresh_interval_ms: u64,
    /// `--pin-dir`.
    pub pin_dir: String,
    /// `--detach-on-stop`.
    pub detach_on_stop: bool,
    /// `--history-budget`, in bytes.
    pub history_budget_bytes: u64,
    /// The local subnets in use.
    pub local_subnets: Vec<String>,
    /// Where they come from: `-m`, or `interfaces` (the monitored interfaces' own subnets).
    pub local_subnets_from: &'static str,
    /// `--metrics-max-hosts`.
    pub metrics_max_hosts: usize,
    /// `-n`: names are not resolved.
    pub numeric_ip_addresses: bool,
    /// Where the log goes: `file`, `syslog` or `stderr`.
    pub log_target: &'static str,
    /// `--log-file`.
    pub log_file: Option<String>,
    /// `-t` (0–5).
    pub trace_level: u8,
    /// `NTOP_LOG` when set (it overrides `-t`), else `null`.
    pub log_filter: Option<String>,
}

impl RunConfig {
    /// The configuration of this run: `cli` as parsed, the interfaces monitored, the local
    /// subnets used, the host table's capacity and the start time (unix seconds).
    #[must_use]
    pub fn new(
        cli: &Cli,
        interfaces: Vec<String>,
        local: &Subnets,
        host_capacity: u32,
        started: u64,
    ) -> Self {
        let listen = |l: Listen| match l {
            Listen::Off => None,
            Listen::On(addr) => Some(addr.to_string()),
        };
        let path = |p: &std::path::Path| p.display().to_string();
        let running_as = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {}", nix::unistd::geteuid()), |u| u.name);
        Self {
            version: env!("CARGO_PKG_VERSION"),
            started,
            interfaces,
            http: listen(cli.http),
            https: listen(cli.https),
            https_cert: cli.https_cert.as_deref().map(path),
            https_key: cli.https_key.as_deref().map(path),
            web_public_read: cli.web_public_read,
            data_dir: path(&cli.data_dir),
            user: cli.user.clone(),
            running_as,
            daemon: cli.daemon,
            capture_mode: clap::ValueEnum::to_possible_value(&cli.capture_mode)
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            memory_budget_bytes: cli.memory_budget,
            host_capacity,
            no_peers: cli.no_peers,
            refresh_interval_ms: u64::try_from(cli.refresh_interval.as_millis())
                .unwrap_or(u64::MAX),
            pin_dir: path(&cli.pin_dir),
            detach_on_stop: cli.detach_on_stop,
            history_budget_bytes: cli.history_budget,
            local_subnets: local.as_slice().iter().map(ToString::to_string).collect(),
            local_subnets_from: if cli.local_subnets.is_some() {
                "-m"
            } else {
                "interfaces"
            },
            metrics_max_hosts: cli.metrics_max_hosts,
            numeric_ip_addresses: cli.numeric,
            log_target: match (&cli.log_file, cli.daemon) {
                (Some(_), _) => "file",
                (None, true) => "syslog",
                (None, false) => "stderr",
            },
            log_file: cli.log_file.as_deref().map(path),
            trace_level: cli.trace_level,
            log_filter: std::env::var("NTOP_LOG").ok(),
        }
    }
}

#[derive(Serialize)]
struct LogLines {
    lines: Vec<String>,
}

/// `GET /api/v1/config` and `GET /api/v1/log?lines=N`.
pub fn config_and_log(
    config: RunConfig,
    log: std::sync::Arc<LogRing>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let config = std::sync::Arc::new(config);
    let config_route = warp::path!("api" / "v1" / "config")
        .and(warp::get())
        .map(move || json(StatusCode::OK, &*config));
    let log_route = warp::path!("api" / "v1" / "log")
        .and(warp::get())
        .and(warp::query::<Query>())
        .and(warp::any().map(move || std::sync::Arc::clone(&log)))
        .and_then(log_handler);
    config_route.or(log_route).unify()
}

async fn log_handler(query: Query, log: std::sync::Arc<LogRing>) -> Result<Response, Rejection> {
    let [lines] = params(query, ["lines"], "only `lines`").map_err(warp::reject::custom)?;
    let n = match lines {
        None => DEFAULT_LOG_LINES,
        Some(v) => super::handlers::parse_count(&v)
            .filter(|n| (1..=MAX_LOG_LINES).contains(n))
            .ok_or_else(|| {
                warp::reject::custom(ApiError::InvalidParameter {
                    name: "lines",
                    value: v,
                    expected: format!("a whole number from 1 to {MAX_LOG_LINES}"),
                })
            })?,
    };
    Ok(json(
        StatusCode::OK,
        &LogLines {
            lines: log.recent(n),
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser as _;
    use serde_json::Value;

    use super::*;
    use crate::http::handle_rejection;

    async fn get(
        filter: &(impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static),
        path: &str,
    ) -> (StatusCode, Value) {
        let r = warp::test::request()
            .path(path)
            .reply(&filter.clone().recover(handle_rejection))
            .await;
        (r.status(), serde_json::from_slice(r.body()).unwrap())
    }

    #[tokio::test]
    async fn config_shows_the_effective_options_and_no_secret() {
        let cli = Cli::try_parse_from([
            "ntop",
            "-i",
            "veth0,veth1",
            "-w",
            "127.0.0.1:3000",
            "-W",
            "4000",
            "--set-admin-password",
            "not this one",
            "-m",
            "198.18.0.0/15",
            "-n",
            "--memory-budget",
            "64M",
            "--refresh-interval",
            "500ms",
            "-t",
            "4",
        ])
        .unwrap();
        let local = Subnets::parse("198.18.0.0/15").unwrap();
        let config = RunConfig::new(
            &cli,
            vec!["veth0".into(), "veth1".into()],
            &local,
            cli.max_hosts(),
            1_790_000_000,
        );
        let filter = config_and_log(config, Arc::new(LogRing::new(10, 1000)));
        let (status, body) = get(&filter, "/api/v1/config").await;
        assert_eq!(status, StatusCode::OK);
        for (field, want) in [
            ("interfaces", serde_json::json!(["veth0", "veth1"])),
            ("http", serde_json::json!("127.0.0.1:3000")),
            ("https", serde_json::json!("0.0.0.0:4000")),
            ("https_cert", Value::Null),
            ("data_dir", serde_json::json!("/var/lib/ntop")),
            ("capture_mode", serde_json::json!("xdp")),
            ("memory_budget_bytes", serde_json::json!(64 << 20)),
            ("host_capacity", serde_json::json!((64 << 20) / 400)),
            ("refresh_interval_ms", serde_json::json!(500)),
            ("pin_dir", serde_json::json!("/sys/fs/bpf/ntop")),
            ("detach_on_stop", serde_json::json!(false)),
            ("history_budget_bytes", serde_json::json!(512 << 20)),
            ("local_subnets", serde_json::json!(["198.18.0.0/15"])),
            ("local_subnets_from", serde_json::json!("-m")),
            ("numeric_ip_addresses", serde_json::json!(true)),
            ("log_target", serde_json::json!("stderr")),
            ("trace_level", serde_json::json!(4)),
            ("started", serde_json::json!(1_790_000_000)),
            ("version", serde_json::json!(env!("CARGO_PKG_VERSION"))),
        ] {
            assert_eq!(body[field], want, "{field}: {body}");
        }
        assert!(body["running_as"].as_str().is_some_and(|u| !u.is_empty()));
        let text = body.to_string();
        assert!(!text.contains("not this one"), "no password: {text}");
        assert!(!text.contains("password"), "{text}");
    }

    #[tokio::test]
    async fn log_returns_the_last_lines_within_bounds() {
        let cli = Cli::try_parse_from(["ntop"]).unwrap();
        let ring = Arc::new(LogRing::new(5000, 1 << 20));
        for i in 0..2500 {
            ring.push(&format!("line {i}"));
        }
        let filter = config_and_log(
            RunConfig::new(&cli, Vec::new(), &Subnets::default(), 1, 0),
            Arc::clone(&ring),
        );
        let lines = |body: &Value| -> Vec<String> {
            body["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_owned())
                .collect()
        };
        let (status, body) = get(&filter, "/api/v1/log").await;
        assert_eq!(status, StatusCode::OK);
        let got = lines(&body);
        assert_eq!(got.len(), DEFAULT_LOG_LINES);
        assert_eq!(
            (got[0].as_str(), got[199].as_str()),
            ("line 2300", "line 2499")
        );
        let (_, body) = get(&filter, "/api/v1/log?lines=3").await;
        assert_eq!(lines(&body), ["line 2497", "line 2498", "line 2499"]);
        let (_, body) = get(&filter, "/api/v1/log?lines=2000").await;
        assert_eq!(lines(&body).len(), 2000);
        for (query, code) in [
            ("lines=2001", "invalid_parameter"),
            ("lines=0", "invalid_parameter"),
            ("lines=-1", "invalid_parameter"),
            ("lines=", "invalid_parameter"),
            ("lines=1&lines=2", "duplicate_parameter"),
            ("n=5", "unknown_parameter"),
        ] {
            let (status, body) = get(&filter, &format!("/api/v1/log?{query}")).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some(code)),
                "{query}: {body}"
            );
        }
        let (status, _) = get(&filter, "/api/v1/log?lines=+5").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
