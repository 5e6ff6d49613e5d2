//! `GET /api/v1/events`: the dashboard's live feed, as server-sent events (see
//! `docs/DASHBOARD.md` and `docs/API.md`).
//!
//! Which task runs what:
//!
//! - The **collector thread** ([`crate::collect`]) bumps a poll counter (a
//!   [`tokio::sync::watch`] channel) after every poll it has put into the state.
//! - Each open stream has a **pump task** (on the HTTP runtime): it waits for the counter to
//!   change and sends one `event: summary` per poll into its stream. The summary of a poll is
//!   built once, whatever the number of streams: the first pump that needs it builds it on
//!   tokio's blocking pool (under the state's read lock, copying only what the document needs:
//!   a few interfaces, 20 hosts, 10 protocols) and serializes it after the lock is released;
//!   the others reuse the cached JSON.
//! - The **server's connection task** writes the stream out, with a keep-alive comment when
//!   nothing was sent for 15 s (the server closes connections idle for 2 minutes).
//!
//! Bounds: at most [`MAX_STREAMS`] streams at once (more get `503 too_many_streams`); a stream
//! ends after [`MAX_STREAM_AGE`] (the browser's `EventSource` reconnects after the `retry` of
//! 2 s, which checks the credentials again, so a stream does not outlive a session), and every
//! stream ends when the daemon shuts down ([`Events::close`]), so that the server's graceful
//! shutdown does not wait for them.

use std::{
    convert::Infallible,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, PoisonError},
    task::{Context, Poll},
    time::{Duration, UNIX_EPOCH},
};

use serde::Serialize;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use warp::{
    Filter, Rejection, Stream,
    http::StatusCode,
    reply::{Reply as _, Response},
    sse::Event,
};

use super::{
    error::ApiError,
    handlers::json,
    models::{ErrorBody, Traffic},
};
use crate::{
    persist::SharedStatus,
    state::{Family, HostQuery, Order, Scope, SharedState, SortKey, State},
};

/// Most event streams open at once.
pub const MAX_STREAMS: usize = 64;
/// A stream ends after this long; the browser reconnects (and is authenticated again).
pub const MAX_STREAM_AGE: Duration = Duration::from_mins(5);
/// The reconnection delay the streams ask the browser for (`retry:`).
pub const RETRY: Duration = Duration::from_secs(2);
/// A keep-alive comment is sent when nothing else was for this long.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Hosts in each top-talker list.
pub const TOP_HOSTS: usize = 10;
/// Protocols in the summary.
pub const TOP_PROTOCOLS: usize = 10;

// ---------------------------------------------------------------------------------------------
// The summary document

/// `event: summary`: what the dashboard's Summary page shows, after every poll.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Time of the poll, unix seconds with milliseconds.
    pub polled_at: Option<f64>,
    /// Every monitored interface, in the order of `/api/v1/interfaces`.
    pub interfaces: Vec<SummaryInterface>,
    /// The local hosts (by `-m`) with the highest throughput now.
    pub top_local: Vec<Talker>,
    /// The remote hosts with the highest throughput now.
    pub top_remote: Vec<Talker>,
    /// The protocols with the most bytes (rx + tx) over all interfaces.
    pub protocols: Vec<ProtocolTotal>,
    /// How the collector and the store are doing.
    pub collector: CollectorHealth,
}

/// One interface in a [`Summary`].
#[derive(Clone, Debug, Serialize)]
pub struct SummaryInterface {
    /// Its name.
    pub name: String,
    /// `xdp-native`, `xdp-generic` or `tc`.
    pub capture_mode: &'static str,
    /// Received (ingress).
    pub rx: Traffic,
    /// Transmitted (egress).
    pub tx: Traffic,
}

/// One host of a top-talker list.
#[derive(Clone, Debug, Serialize)]
pub struct Talker {
    /// Its address.
    pub ip: IpAddr,
    /// The interface it was seen on.
    pub interface: String,
    /// Its name, when the daemon knows one.
    pub name: Option<String>,
    /// Bytes per second, sent plus received.
    pub bytes_per_sec: f64,
    /// Bytes sent in total.
    pub sent_bytes: u64,
    /// Bytes received in total.
    pub received_bytes: u64,
}

/// One protocol, summed over the interfaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtocolTotal {
    /// As in `/api/v1/protocols`.
    pub name: String,
    /// `ipv4`, `ipv6`, or `null` for non-IP classes.
    pub family: Option<&'static str>,
    /// Bytes, received plus transmitted.
    pub bytes: u64,
    /// Packets, received plus transmitted.
    pub packets: u64,
}

/// The collector's health in a [`Summary`].
#[derive(Clone, Debug, Serialize)]
pub struct CollectorHealth {
    /// Entries the kernel's host table holds at most.
    pub host_table_capacity: u32,
    /// Entries it held at the last poll.
    pub host_table_used: usize,
    /// Entries the kernel's pair table (who talks to whom) holds at most; 0 with `--no-peers`.
    pub pair_table_capacity: u32,
    /// Entries it held at the last poll.
    pub pair_table_used: usize,
    /// Bytes of hosts that did not fit into the host table (sent plus received, all
    /// interfaces).
    pub other_hosts_bytes: u64,
    /// Every error counter summed.
    pub errors: u64,
    /// How long the last poll took, in milliseconds.
    pub poll_duration_ms: Option<f64>,
    /// The store's state: `ok`, `degraded` or `unavailable` (as in `/api/v1/status`).
    pub store: &'static str,
}

/// The hosts of `scope` (by `-m`) with the highest throughput now.
fn top_talkers(s: &State, scope: Scope) -> Vec<Talker> {
    let page = s.hosts(&HostQuery {
        sort: SortKey::Throughput,
        order: Order::Desc,
        offset: 0,
        limit: TOP_HOSTS,
        scope: Some(scope),
        ..HostQuery::default()
    });
    page.hosts
        .into_iter()
        .map(|h| Talker {
            ip: h.ip,
            interface: h.interface.into_owned(),
            name: h.name.as_deref().map(str::to_owned),
            bytes_per_sec: h.sent.bytes_per_sec + h.received.bytes_per_sec,
            sent_bytes: h.sent.bytes,
            received_bytes: h.received.bytes,
        })
        .collect()
}

/// The summary of `s` as it is now; `store` is the store's state. Runs under the state's read
/// lock: it copies what the document needs and nothing else.
#[must_use]
pub fn summary(s: &State, store: &'static str) -> Summary {
    let mut other_hosts_bytes = 0_u64;
    let interfaces = s
        .interfaces()
        .map(|i| {
            other_hosts_bytes = other_hosts_bytes
                .saturating_add(i.other_sent.bytes)
                .saturating_add(i.other_received.bytes);
            SummaryInterface {
                name: i.name.to_owned(),
                capture_mode: i.mode.as_str(),
                rx: i.rx.into(),
                tx: i.tx.into(),
            }
        })
        .collect();

    // Protocols summed over the interfaces, by name and family.
    let mut protocols: Vec<ProtocolTotal> = Vec::new();
    for p in s.protocols(None) {
        let family = p.family.map(Family::as_str);
        let bytes = p.rx.bytes.saturating_add(p.tx.bytes);
        let packets = p.rx.packets.saturating_add(p.tx.packets);
        match protocols
            .iter_mut()
            .find(|t| t.family == family && t.name == p.name)
        {
            Some(t) => {
                t.bytes = t.bytes.saturating_add(bytes);
                t.packets = t.packets.saturating_add(packets);
            }
            None => protocols.push(ProtocolTotal {
                name: p.name.into_owned(),
                family,
                bytes,
                packets,
            }),
        }
    }
    // Biggest first; ties by name, then family, for a stable order.
    protocols.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.family.cmp(&b.family))
    });
    protocols.truncate(TOP_PROTOCOLS);

    let table = s.host_table();
    Summary {
        polled_at: s.polled_at().map(|t| {
            let ms = t
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            #[expect(
                clippy::cast_precision_loss,
                reason = "milliseconds since 1970 are far below 2^53"
            )]
            let secs = ms as f64 / 1000.0;
            secs
        }),
        interfaces,
        top_local: top_talkers(s, Scope::Local),
        top_remote: top_talkers(s, Scope::Remote),
        protocols,
        collector: CollectorHealth {
            host_table_capacity: table.capacity,
            host_table_used: table.used,
            pair_table_capacity: s.pair_table().capacity,
            pair_table_used: s.pair_table().used,
            other_hosts_bytes,
            errors: s.errors().fold(0_u64, |a, (_, n)| a.saturating_add(n)),
            poll_duration_ms: s.poll_duration().map(|d| d.as_secs_f64() * 1000.0),
            store,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The streams

/// The event streams of one daemon: cheap to clone, shared by every route filter.
#[derive(Clone, Debug)]
pub struct Events {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: SharedState,
    status: SharedStatus,
    /// The collector's poll counter.
    polls: watch::Receiver<u64>,
    /// `true` once the daemon shuts down.
    stop: watch::Sender<bool>,
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// The JSON of the last summary and the poll counter it was built at.
    cache: Mutex<Option<(u64, Arc<str>)>>,
    max_age: Duration,
}

impl Events {
    /// The streams of `state`, woken by the collector's poll counter `polls` (see
    /// [`crate::collect::spawn_notifying`]); `status` gives the store's state.
    #[must_use]
    pub fn new(state: SharedState, status: SharedStatus, polls: watch::Receiver<u64>) -> Self {
        Self::with_limits(state, status, polls, MAX_STREAMS, MAX_STREAM_AGE)
    }

    /// [`new`](Self::new) with other bounds (tests).
    #[must_use]
    pub fn with_limits(
        state: SharedState,
        status: SharedStatus,
        polls: watch::Receiver<u64>,
        max_streams: usize,
        max_age: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state,
                status,
                polls,
                stop: watch::Sender::new(false),
                streams: Arc::new(Semaphore::new(max_streams)),
                max_streams,
                cache: Mutex::new(None),
                max_age,
            }),
        }
    }

    /// Ends every open stream and refuses new ones (`503`): call it when shutdown begins, so
    /// that open dashboards do not hold the server's graceful shutdown up.
    pub fn close(&self) {
        self.inner.stop.send_replace(true);
    }

    /// Streams open now.
    #[must_use]
    pub fn open_streams(&self) -> usize {
        self.inner
            .max_streams
            .saturating_sub(self.inner.streams.available_permits())
    }

    /// `GET /api/v1/events`. Rejects other paths; other methods get `405`.
    #[must_use]
    pub fn routes(&self) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
        let events = self.clone();
        warp::path!("api" / "v1" / "events")
            .and(warp::get())
            .map(move || events.open())
    }

    /// Opens a stream, or answers `503` when there are too many or the daemon shuts down.
    fn open(&self) -> Response {
        let unavailable = |message: &str| {
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &ErrorBody {
                    code: "too_many_streams",
                    message: message.to_owned(),
                },
            )
        };
        if *self.inner.stop.borrow() {
            return unavailable("ntop is shutting down; the dashboard reconnects by itself");
        }
        let Ok(permit) = Arc::clone(&self.inner.streams).try_acquire_owned() else {
            return unavailable(&format!(
                "{} event streams are open, the most allowed; close a dashboard \
                 tab, or poll GET /api/v1/interfaces instead",
                self.inner.max_streams
            ));
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(pump(Arc::clone(&self.inner), tx, permit));
        let stream = warp::sse::keep_alive()
            .interval(KEEP_ALIVE)
            .stream(Receiver(rx));
        warp::sse::reply(stream).into_response()
    }
}

/// The events a pump sends, as a stream for warp.
struct Receiver(mpsc::Receiver<Result<Event, Infallible>>);

impl Stream for Receiver {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Feeds one stream until the client goes, the stream is [`MAX_STREAM_AGE`] old, the
/// collector stops, or the daemon shuts down. Holds `_permit` (one of [`MAX_STREAMS`]) as
/// long.
async fn pump(
    inner: Arc<Inner>,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    _permit: OwnedSemaphorePermit,
) {
    let mut polls = inner.polls.clone();
    let mut stop = inner.stop.subscribe();
    let deadline = tokio::time::sleep(inner.max_age);
    tokio::pin!(deadline);
    if tx.send(Ok(Event::default().retry(RETRY))).await.is_err() {
        return;
    }
    loop {
        // The current state first (the page has data at once), then one per poll.
        let generation = *polls.borrow_and_update();
        match summary_json(&inner, generation).await {
            Ok(Some(data)) => {
                let event = Event::default().event("summary").data(&*data);
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            // Nothing polled yet.
            Ok(None) => {}
            Err(e) => {
                tracing::error!("building the dashboard's summary: {e}");
                return;
            }
        }
        // A poll that is already pending goes out before a shutdown or the age limit ends the
        // stream.
        tokio::select! {
            biased;
            changed = polls.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|&s| s) => return,
            () = tx.closed() => return,
            () = &mut deadline => return,
        }
    }
}

/// The summary's JSON at poll `generation` (`None` before the first poll), built once per
/// poll for every stream.
async fn summary_json(inner: &Arc<Inner>, generation: u64) -> Result<Option<Arc<str>>, ApiError> {
    let mut cache = inner.cache.lock().await;
    if let Some((built_at, data)) = &*cache
        && *built_at == generation
    {
        return Ok(Some(Arc::clone(data)));
    }
    let store = inner
        .status
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .state;
    let state = Arc::clone(&inner.state);
    let data = tokio::task::spawn_blocking(move || {
        let doc = {
            let s = state.read().unwrap_or_else(PoisonError::into_inner);
            s.polled_at().map(|_| summary(&s, store))
        };
        doc.map(|doc| serde_json::to_string(&doc))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("serializing the summary: {e}")))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the summary's worker failed: {e}")))??;
    let data: Option<Arc<str>> = data.map(Arc::from);
    if let Some(data) = &data {
        *cache = Some((generation, Arc::clone(data)));
    }
    Ok(data)
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
