//! `GET /metrics`: the collector's latest snapshot for Prometheus (series documented in
//! `docs/METRICS.md`).
//!
//! Who runs it: the HTTP handler, at scrape time, on tokio's blocking pool. A scrape takes the
//! state's read lock once, copies out what it exports ([`Exporter::snapshot`]), releases the
//! lock and only then encodes. It never touches the kernel's maps: the collector thread polls
//! them. Cost: one pass over the hosts without sorting ([`State::each_host`]), picking the
//! local hosts and the biggest of them: O(hosts) under the read lock.
//!
//! Encoding is prometheus-client's: the snapshot is a [`Collector`] of `ConstCounter`s and
//! `ConstGauge`s, registered in a fresh [`Registry`] per scrape. The format follows `Accept`:
//! `OpenMetrics` text when the client asks for `application/openmetrics-text` (Prometheus does by
//! default), else the Prometheus text format 0.0.4 ([`Format::negotiate`]).
//!
//! Per-host series: only for local hosts ([`Subnets`]), at most
//! [`MetricsConfig::max_host_series`] host entries (address and interface); the other local
//! hosts of each interface are summed into one `host="other"` series. Which hosts get their own
//! series is sticky: an entry once exported stays exported (hosts are never forgotten), free
//! places go to the local hosts with the most bytes, sent plus received. So every series,
//! `host="other"` included, is a true counter: a host moving between its own series and
//! "other" would make "other" go down, which Prometheus reads as a counter reset.

use std::{
    borrow::Cow,
    collections::HashSet,
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError},
    time::UNIX_EPOCH,
};

use ntop_common::counters::Counter;
use prometheus_client::{
    collector::Collector,
    encoding::{
        DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, prometheus_text, text,
    },
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::{Registry, Unit},
};
use warp::{
    Filter, Rejection,
    http::{
        HeaderValue,
        header::{CONTENT_TYPE, VARY},
    },
    reply::Response,
};

use crate::{
    http::ApiError,
    state::{HostView, SharedState, State},
    subnets::Subnets,
};

/// Host series exported unless configured otherwise.
pub const DEFAULT_MAX_HOST_SERIES: usize = 500;

/// The `Content-Type` of an `OpenMetrics` text response.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `host` label of the series that sums the local hosts without their own series.
pub const OTHER_HOST: &str = "other";

/// The `family` label of non-IP protocol classes (`arp`, `lldp`, …).
pub const NON_IP_FAMILY: &str = "non-ip";

/// What `/metrics` exports per host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Local subnets: only hosts in them get per-host series (`-m`, else the monitored
    /// interfaces' own subnets).
    pub local: Subnets,
    /// Most host entries with their own series; the rest of the local hosts are summed into
    /// `host="other"`.
    pub max_host_series: usize,
}

impl Default for MetricsConfig {
    /// No local subnets (no per-host series), [`DEFAULT_MAX_HOST_SERIES`].
    fn default() -> Self {
        Self {
            local: Subnets::default(),
            max_host_series: DEFAULT_MAX_HOST_SERIES,
        }
    }
}

/// The exposition format of a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4.
    Prometheus,
    /// `OpenMetrics` 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format for a request's `Accept` header: `OpenMetrics` if it lists
    /// `application/openmetrics-text` with a quality above 0 and not below that of
    /// `text/plain`, else the Prometheus text format (also without `Accept`).
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Self {
        let mut openmetrics = 0.0_f32;
        let mut plain = 0.0_f32;
        for range in accept.into_iter().flat_map(|a| a.split(',')) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(q);
            } else if media.eq_ignore_ascii_case("text/plain") {
                plain = plain.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= plain {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    #[must_use]
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// `GET /metrics`, answered from the latest snapshot in `state` (see the [module docs](self)).
///
/// Call it once and clone the filter where it is served twice (HTTP and HTTPS): the filter
/// holds which hosts have their own series, and two instances could choose differently.
/// Rejects other paths (404) and methods (405) like the API routes; end with
/// `.recover(handle_rejection)`.
pub fn route(
    state: SharedState,
    config: MetricsConfig,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let exporter = Arc::new(Exporter::new(config));
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .and_then(move |accept: Option<String>| scrape(state.clone(), exporter.clone(), accept))
}

/// One scrape: snapshot under the read lock on the blocking pool, encode after releasing it.
async fn scrape(
    state: SharedState,
    exporter: Arc<Exporter>,
    accept: Option<String>,
) -> Result<Response, Rejection> {
    let format = Format::negotiate(accept.as_deref());
    let body = tokio::task::spawn_blocking(move || {
        let snapshot = {
            // A poisoned lock still holds a usable state (see the API handlers).
            let guard = state.read().unwrap_or_else(PoisonError::into_inner);
            exporter.snapshot(&guard)
        };
        snapshot.encode(format)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the scrape's worker failed: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "encoding /metrics");
        ApiError::Internal("encoding the metrics failed".to_owned())
    })?;
    let mut response = Response::new(body.into_bytes().into());
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

/// Turns the state into metrics; remembers which hosts have their own series. One per
/// server (see [`route`]); also usable without warp.
#[derive(Debug)]
pub struct Exporter {
    config: MetricsConfig,
    /// Host entries (address, ifindex) that have their own series: never more than
    /// `max_host_series`, never removed.
    named: Mutex<HashSet<(IpAddr, u32)>>,
}

impl Exporter {
    /// An exporter that has exported no host yet.
    #[must_use]
    pub fn new(config: MetricsConfig) -> Self {
        Self {
            config,
            named: Mutex::new(HashSet::new()),
        }
    }

    /// The exposition of `state` in `format`: [`snapshot`](Self::snapshot), then encode.
    ///
    /// # Errors
    ///
    /// Only what prometheus-client's encoders report (a bug: writing to a `String` does not
    /// fail).
    pub fn render(&self, state: &State, format: Format) -> Result<String, std::fmt::Error> {
        self.snapshot(state).encode(format)
    }

    /// Copies out of `state` everything a scrape exports, choosing the host series. Call it
    /// under the state's read lock and release the lock before encoding the result.
    #[must_use]
    pub fn snapshot(&self, state: &State) -> Snapshot {
        let interfaces = state
            .interfaces()
            .map(|i| InterfaceRow {
                name: i.name.to_owned(),
                rx: counter(i.rx.bytes, i.rx.packets),
                tx: counter(i.tx.bytes, i.tx.packets),
                other_sent: i.other_sent,
                other_received: i.other_received,
                hosts: i.hosts,
            })
            .collect();
        let protocols = state
            .protocols(None)
            .into_iter()
            .map(|p| ProtocolRow {
                interface: p.interface.to_owned(),
                protocol: p.name.into_owned(),
                family: p.family.map_or(NON_IP_FAMILY, |f| f.as_str()),
                rx: counter(p.rx.bytes, p.rx.packets),
                tx: counter(p.tx.bytes, p.tx.packets),
            })
            .collect();
        let polled = state.polled_at().is_some();
        Snapshot {
            interfaces,
            protocols,
            hosts: self.host_rows(state),
            poll_duration: state.poll_duration().map(|d| d.as_secs_f64()),
            polled_at: state.polled_at().map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            }),
            host_table: polled.then(|| state.host_table()),
            pair_table: polled.then(|| state.pair_table()),
            errors: state.errors().collect(),
        }
    }

    /// The per-host rows: named local hosts, then one "other" row per interface that has
    /// local hosts without their own series.
    fn host_rows(&self, state: &State) -> Vec<HostRow> {
        if self.config.local.is_empty() {
            return Vec::new();
        }
        self.rows_of(state.each_host())
    }

    /// The per-host rows of `hosts` (in any order): gives free places to the biggest local
    /// hosts without a series, then renders the named ones and sums the rest per interface.
    fn rows_of<'a>(&self, hosts: impl Iterator<Item = HostView<'a>>) -> Vec<HostRow> {
        let Self { config, named } = self;
        let local: Vec<HostView<'a>> = hosts.filter(|h| config.local.contains(h.ip)).collect();
        let key = |h: &HostView| (h.ip, h.ifindex);
        let mut named = named.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = local.iter().filter(|h| named.contains(&key(h))).count();
        let free = config.max_host_series.saturating_sub(kept);
        if free > 0 {
            let mut candidates: Vec<&HostView> =
                local.iter().filter(|h| !named.contains(&key(h))).collect();
            if candidates.len() > free {
                // Most bytes (sent plus received) first; ties by address, then ifindex.
                candidates.select_nth_unstable_by(free - 1, |a, b| {
                    let total = |h: &HostView| h.sent.bytes.saturating_add(h.received.bytes);
                    total(b).cmp(&total(a)).then_with(|| key(a).cmp(&key(b)))
                });
                candidates.truncate(free);
            }
            named.extend(candidates.into_iter().map(key));
        }
        let mut rows = Vec::new();
        // (ifindex, row) of the "other" sums, in the order their interfaces first came up.
        let mut others: Vec<(u32, HostRow)> = Vec::new();
        for h in local {
            let sent = counter(h.sent.bytes, h.sent.packets);
            let received = counter(h.received.bytes, h.received.packets);
            if named.contains(&key(&h)) {
                rows.push(HostRow {
                    interface: h.interface.into_owned(),
                    host: Cow::Owned(h.ip.to_string()),
                    sent,
                    received,
                });
                continue;
            }
            let i = if let Some(i) = others.iter().position(|(i, _)| *i == h.ifindex) {
                i
            } else {
                others.push((
                    h.ifindex,
                    HostRow {
                        interface: h.interface.into_owned(),
                        host: Cow::Borrowed(OTHER_HOST),
                        sent: Counter::default(),
                        received: Counter::default(),
                    },
                ));
                others.len() - 1
            };
            let other = &mut others[i].1;
            add(&mut other.sent, sent);
            add(&mut other.received, received);
        }
        rows.extend(others.into_iter().map(|(_, row)| row));
        rows
    }
}

fn counter(bytes: u64, packets: u64) -> Counter {
    Counter { bytes, packets }
}

/// Adds like the kernel's 64-bit counters (wrapping).
fn add(sum: &mut Counter, c: Counter) {
    sum.bytes = sum.bytes.wrapping_add(c.bytes);
    sum.packets = sum.packets.wrapping_add(c.packets);
}

/// Everything one scrape exports, copied out of the state; encodes itself as a
/// [`Collector`].
#[derive(Debug, Default)]
pub struct Snapshot {
    interfaces: Vec<InterfaceRow>,
    protocols: Vec<ProtocolRow>,
    hosts: Vec<HostRow>,
    poll_duration: Option<f64>,
    polled_at: Option<f64>,
    host_table: Option<crate::state::TableFill>,
    pair_table: Option<crate::state::TableFill>,
    errors: Vec<(&'static str, u64)>,
}

#[derive(Debug)]
struct InterfaceRow {
    name: String,
    rx: Counter,
    tx: Counter,
    other_sent: Counter,
    other_received: Counter,
    hosts: usize,
}

#[derive(Debug)]
struct ProtocolRow {
    interface: String,
    protocol: String,
    family: &'static str,
    rx: Counter,
    tx: Counter,
}

#[derive(Debug)]
struct HostRow {
    interface: String,
    host: Cow<'static, str>,
    sent: Counter,
    received: Counter,
}

impl Snapshot {
    /// The exposition in `format`.
    ///
    /// # Errors
    ///
    /// Only what prometheus-client's encoders report.
    pub fn encode(self, format: Format) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        match format {
            Format::Prometheus => prometheus_text::encode(&mut out, &registry)?,
            Format::OpenMetrics => text::encode(&mut out, &registry)?,
        }
        Ok(out)
    }
}

/// Bytes and packets of one direction, for the `bytes`/`packets` family pairs.
type Rows<L> = Vec<(L, Counter)>;

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_traffic(&mut enc)?;
        self.encode_health(&mut enc)
    }
}

impl Snapshot {
    /// The counters of interfaces, protocols and hosts.
    fn encode_traffic(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ifaces: Rows<[(&str, &str); 2]> = self
            .interfaces
            .iter()
            .flat_map(|i| {
                [
                    ([("interface", i.name.as_str()), ("direction", "rx")], i.rx),
                    ([("interface", i.name.as_str()), ("direction", "tx")], i.tx),
                ]
            })
            .collect();
        traffic(
            enc,
            "ntop_interface",
            "L2 frame bytes (without FCS) the interface received (rx) or transmitted (tx)",
            "Wire packets the interface received (rx) or transmitted (tx); a GSO/GRO \
             super-packet counts as its segments",
            &ifaces,
        )?;

        let protocols: Rows<[(&str, &str); 4]> = self
            .protocols
            .iter()
            .flat_map(|p| {
                let labels = |direction| {
                    [
                        ("interface", p.interface.as_str()),
                        ("direction", direction),
                        ("protocol", p.protocol.as_str()),
                        ("family", p.family),
                    ]
                };
                [(labels("rx"), p.rx), (labels("tx"), p.tx)]
            })
            .collect();
        traffic(
            enc,
            "ntop_protocol",
            "L2 frame bytes by IP protocol (family ipv4 or ipv6) or non-IP class (family non-ip)",
            "Wire packets by IP protocol (family ipv4 or ipv6) or non-IP class (family non-ip)",
            &protocols,
        )?;

        let hosts: Rows<[(&str, &str); 3]> = self
            .hosts
            .iter()
            .flat_map(|h| {
                let labels = |direction| {
                    [
                        ("interface", h.interface.as_str()),
                        ("host", &*h.host),
                        ("direction", direction),
                    ]
                };
                [(labels("sent"), h.sent), (labels("received"), h.received)]
            })
            .collect();
        traffic(
            enc,
            "ntop_host",
            "L2 frame bytes a local host sent (it was the source) or received (the \
             destination); host=\"other\" sums the local hosts beyond the series cap",
            "Wire packets a local host sent or received; host=\"other\" sums the local hosts \
             beyond the series cap",
            &hosts,
        )?;

        let other: Rows<[(&str, &str); 2]> = self
            .interfaces
            .iter()
            .flat_map(|i| {
                [
                    (
                        [("interface", i.name.as_str()), ("direction", "sent")],
                        i.other_sent,
                    ),
                    (
                        [("interface", i.name.as_str()), ("direction", "received")],
                        i.other_received,
                    ),
                ]
            })
            .collect();
        traffic(
            enc,
            "ntop_other_hosts",
            "L2 frame bytes of hosts that did not fit into the kernel's host table",
            "Wire packets of hosts that did not fit into the kernel's host table",
            &other,
        )
    }

    /// Host counts, errors, the collector's own health, the version.
    fn encode_health(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauges(
            enc,
            "ntop_interface_hosts",
            "Hosts known on the interface, local and remote, including those gone from the \
             kernel's host table",
            None,
            self.interfaces
                .iter()
                .map(|i| ([("interface", i.name.as_str())], i.hosts)),
        )?;
        counters(
            enc,
            "ntop_errors",
            "Packets the kernel programs counted an error for, by kind (see docs/API.md)",
            None,
            self.errors.iter().map(|&(kind, n)| ([("kind", kind)], n)),
        )?;
        if let Some(d) = self.poll_duration {
            gauge(
                enc,
                "ntop_poll_duration",
                "How long the last poll of the kernel maps took",
                Some(&Unit::Seconds),
                d,
            )?;
        }
        if let Some(t) = self.polled_at {
            gauge(
                enc,
                "ntop_last_poll_timestamp",
                "Time of the last poll of the kernel maps, seconds since the Unix epoch",
                Some(&Unit::Seconds),
                t,
            )?;
        }
        if let Some(table) = self.host_table {
            gauge(
                enc,
                "ntop_host_table_capacity",
                "Entries the kernel's host table holds at most (--memory-budget)",
                None,
                table.capacity,
            )?;
            gauge(
                enc,
                "ntop_host_table_entries",
                "Entries the kernel's host table held at the last poll",
                None,
                table.used,
            )?;
        }
        if let Some(table) = self.pair_table {
            gauge(
                enc,
                "ntop_pair_table_capacity",
                "Entries the kernel's table of who talks to whom holds at most (--memory-budget)",
                None,
                table.capacity,
            )?;
            gauge(
                enc,
                "ntop_pair_table_entries",
                "Entries the kernel's table of who talks to whom held at the last poll",
                None,
                table.used,
            )?;
        }
        let info = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        info.encode(enc.encode_descriptor(
            "ntop_build",
            "The running ntop's version (value 1)",
            None,
            MetricType::Info,
        )?)
    }
}

/// `NAME_bytes_total` and `NAME_packets_total` from the same rows; nothing without rows.
fn traffic<L: EncodeLabelSet + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    bytes_help: &str,
    packets_help: &str,
    rows: &[(L, Counter)],
) -> Result<(), std::fmt::Error> {
    counters(
        enc,
        name,
        bytes_help,
        Some(&Unit::Bytes),
        rows.iter().map(|&(l, c)| (l, c.bytes)),
    )?;
    counters(
        enc,
        &format!("{name}_packets"),
        packets_help,
        None,
        rows.iter().map(|&(l, c)| (l, c.packets)),
    )
}

/// One counter family (`NAME[_UNIT]_total`); nothing without rows.
fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge family; nothing without rows.
fn gauges<L: EncodeLabelSet, N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, N)>,
) -> Result<(), std::fmt::Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut family = enc.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels.
fn gauge<N: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: N,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

#[cfg(test)]
mod tests;
