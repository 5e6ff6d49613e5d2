//! `GET /api/v1/status` (is everything working: the collector, the data directory) and
//! `POST /api/v1/reset` (the admin's "reset statistics").
//!
//! Runs in the HTTP server's tasks; the state work runs on tokio's blocking pool. The reset is
//! behind the authentication layer like every API route, and listed there as an admin route
//! (API tokens may not use it; a session needs its CSRF token, see [`crate::auth::web`]).

use std::{
    net::SocketAddr,
    sync::PoisonError,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use warp::{
    Filter, Rejection,
    http::{HeaderValue, Method, StatusCode, header::ALLOW},
    reply::Response,
};

use super::{client_addr, error::ApiError, handlers::json};
use crate::{
    persist::{SharedStatus, StoreStatus},
    state::SharedState,
};

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
        let mut r = ApiError::MethodNotAllowed.to_response();
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return Ok(r);
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
