//! The history and data-dump routes (see `docs/API.md`): a series from the history database
//! (`GET /api/v1/history`), a host's daily, weekly and monthly usage
//! (`GET /api/v1/hosts/{ip}/usage`), and every host's totals as JSON or CSV
//! (`GET /api/v1/dump.json`, `GET /api/v1/dump.csv`).
//!
//! Runs in the HTTP server's tasks: the parameters are checked there, everything else runs on
//! tokio's blocking pool. History requests open their own read-only [`HistoryReader`] there
//! (cheap; `SQLite`'s WAL lets it read beside the collector's writer) and take the state's read
//! lock only to look interface and host names up. The dump copies what it needs under the read
//! lock (about 220 bytes a host: milliseconds for 100k hosts), lets the lock go, and sorts and
//! renders outside it, so the collector never waits for a rendering.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLockReadGuard},
    time::{Duration, SystemTime},
};

use ntop_common::{
    counters::{HostCounters, L4_CLASS_NAMES, RECEIVED, SENT},
    proto::{IPV4_BASE, IPV6_BASE, PROTO_SLOTS},
};
use serde::{Serialize, Serializer};
use warp::{
    Filter, Rejection,
    http::{
        HeaderValue, StatusCode,
        header::{CONTENT_DISPOSITION, CONTENT_TYPE},
    },
    reply::Response,
};

use super::{
    error::ApiError,
    handlers::{Query, ifindex_of, json, params},
    models::{
        DumpHost, HistoryPoint, HistoryResponse, HostProtocols, Series, SeriesProtocol, Timestamp,
        UsagePeriod, UsageResponse, Volume,
    },
};
use crate::{
    history::{
        self, Counters, HistoryConfig, HistoryError, HistoryReader, Resolution, SeriesKey,
        from_unix, unix,
        usage::{UsageBucket, civil_from_days, days_from_civil},
    },
    state::{Family, SharedState, State, display_addr, key_addr, slot_name},
    store::DataDir,
};

/// Most points one history response carries.
pub const MAX_POINTS: i64 = 100_000;

/// Latest time the parameters take: 9999-12-31T23:59:59Z.
const MAX_TIME: i64 = 253_402_300_799;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The history and dump routes, with the default retention ([`HistoryConfig::default`]) for
/// picking resolutions. They reject what they do not serve: combine them with
/// [`api`](super::api) and end with `.recover(handle_rejection)`.
pub fn history_api(
    state: SharedState,
    data_dir: DataDir,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    history_api_with(state, data_dir, &HistoryConfig::default())
}

/// [`history_api`] for a history kept with `config`'s retention (when no `resolution` is
/// given, a range is answered at the finest resolution still stored for its start).
pub fn history_api_with(
    state: SharedState,
    data_dir: DataDir,
    config: &HistoryConfig,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + use<> {
    filters(Arc::new(Ctx {
        state,
        dir: data_dir,
        retention: Retention::of(config),
        now: SystemTime::now,
    }))
}

/// The routes with a fixed clock (tests).
#[cfg(test)]
pub(crate) fn history_api_at(
    state: SharedState,
    data_dir: DataDir,
    now: fn() -> SystemTime,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    filters(Arc::new(Ctx {
        state,
        dir: data_dir,
        retention: Retention::of(&HistoryConfig::default()),
        now,
    }))
}

/// What every request of these routes needs.
#[derive(Debug)]
struct Ctx {
    state: SharedState,
    dir: DataDir,
    retention: Retention,
    now: fn() -> SystemTime,
}

/// How long each resolution is kept, in seconds.
#[derive(Clone, Copy, Debug)]
struct Retention {
    seconds: i64,
    minutes: i64,
    host_minutes: i64,
}

impl Retention {
    fn of(c: &HistoryConfig) -> Self {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Self {
            seconds: secs(c.seconds_for),
            minutes: secs(c.minutes_for),
            host_minutes: secs(c.host_minutes_for),
        }
    }
}

fn filters(ctx: Arc<Ctx>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let ctx = warp::any().map(move || Arc::clone(&ctx));
    let query = warp::query::<Query>;

    let series = warp::path!("api" / "v1" / "history")
        .and(warp::get())
        .and(query())
        .and(ctx.clone())
        .and_then(history);
    let usage = warp::path!("api" / "v1" / "hosts" / String / "usage")
        .and(warp::get())
        .and(query())
        .and(ctx.clone())
        .and_then(usage);
    let dump_json = warp::path!("api" / "v1" / "dump.json")
        .and(warp::get())
        .and(query())
        .and(ctx.clone())
        .and_then(|q, c| dump(Format::Json, q, c));
    let dump_csv = warp::path!("api" / "v1" / "dump.csv")
        .and(warp::get())
        .and(query())
        .and(ctx)
        .and_then(|q, c| dump(Format::Csv, q, c));

    series
        .or(usage)
        .unify()
        .or(dump_json)
        .unify()
        .or(dump_csv)
        .unify()
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/history

/// What a series is of.
#[derive(Debug)]
enum What {
    Interface,
    Protocol(ProtocolSel),
    Host(IpAddr),
}

/// One protocol slot, or an IP protocol over both families.
#[derive(Debug)]
struct ProtocolSel {
    name: String,
    family: Option<Family>,
    number: Option<u8>,
    slots: Vec<u16>,
}

/// A checked `GET /api/v1/history` request.
#[derive(Debug)]
struct HistoryRequest {
    interface: Option<String>,
    what: What,
    /// Aligned down to the resolution, unix seconds.
    from: i64,
    /// Aligned up to the resolution, unix seconds.
    to: i64,
    resolution: Resolution,
}

/// `GET /api/v1/history?interface=&protocol=|host=&from=&to=&resolution=`.
async fn history(query: Query, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let now = unix((ctx.now)());
    let request = parse_history(query, now, ctx.retention).map_err(warp::reject::custom)?;
    blocking(move || history_blocking(&ctx, request)).await
}

fn parse_history(query: Query, now: i64, retention: Retention) -> Result<HistoryRequest, ApiError> {
    const ALLOWED: [&str; 6] = ["interface", "protocol", "host", "from", "to", "resolution"];
    const ALLOWED_TEXT: &str = "`interface`, `protocol`, `host`, `from`, `to` and `resolution`";
    let [interface, protocol, host, from, to, resolution] = params(query, ALLOWED, ALLOWED_TEXT)?;
    let what = match (protocol, host) {
        (Some(_), Some(host)) => {
            return Err(ApiError::InvalidParameter {
                name: "host",
                value: host,
                expected: "left out when `protocol` is given: a series is an interface's \
                           totals, one protocol of it, or one host on it"
                    .to_owned(),
            });
        }
        (Some(p), None) => What::Protocol(parse_protocol(p)?),
        (None, Some(h)) => What::Host(parse_ip("host", h)?),
        (None, None) => What::Interface,
    };
    let is_host = matches!(what, What::Host(_));
    let interface = interface
        .map(|v| {
            if v.is_empty() {
                Err(ApiError::InvalidParameter {
                    name: "interface",
                    value: v,
                    expected: "an interface name (GET /api/v1/interfaces lists them)".into(),
                })
            } else {
                Ok(v)
            }
        })
        .transpose()?;
    let (from, to) = parse_range(from, to, now)?;
    let resolution = parse_resolution(resolution, is_host)?
        .unwrap_or_else(|| auto_resolution(from, to, now, is_host, retention));
    let r = resolution.secs();
    let from = from - from.rem_euclid(r);
    let to = to + (r - to.rem_euclid(r)) % r;
    let points = (to - from) / r;
    if points > MAX_POINTS {
        return Err(ApiError::RangeTooLarge {
            from,
            to,
            resolution: resolution_name(resolution),
            points,
            max: MAX_POINTS,
            coarser: match resolution {
                Resolution::Second => " (resolution=minute or hour)",
                Resolution::Minute => " (resolution=hour)",
                Resolution::Hour => "",
            },
        });
    }
    Ok(HistoryRequest {
        interface,
        what,
        from,
        to,
        resolution,
    })
}

/// `from=` and `to=` (unix seconds), defaulting to the hour up to `now`.
fn parse_range(from: Option<String>, to: Option<String>, now: i64) -> Result<(i64, i64), ApiError> {
    let to_given = to.clone();
    let to = to.map(|v| parse_time("to", v)).transpose()?.unwrap_or(now);
    let from_given = from.clone();
    let from = match from {
        Some(v) => parse_time("from", v)?,
        None => (to - 3600).max(0),
    };
    if from >= to {
        return Err(match from_given {
            Some(value) => ApiError::InvalidParameter {
                name: "from",
                value,
                expected: format!("earlier than `to` ({to} in unix seconds)"),
            },
            None => ApiError::InvalidParameter {
                name: "to",
                value: to_given.unwrap_or_default(),
                expected: "later than 1970-01-01T00:00:00Z".into(),
            },
        });
    }
    Ok((from, to))
}

/// `resolution=`; `None` when left out.
fn parse_resolution(value: Option<String>, host: bool) -> Result<Option<Resolution>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_str() {
        "second" if host => Err(ApiError::InvalidParameter {
            name: "resolution",
            value,
            expected: "`minute` or `hour` for a host series (hosts are recorded per minute), \
                       or left out"
                .into(),
        }),
        "second" => Ok(Some(Resolution::Second)),
        "minute" => Ok(Some(Resolution::Minute)),
        "hour" => Ok(Some(Resolution::Hour)),
        _ => Err(ApiError::InvalidParameter {
            name: "resolution",
            value,
            expected: "`second`, `minute` or `hour`, or left out to pick one from the range".into(),
        }),
    }
}

/// The resolution for a range when none is asked for: at least what the range's length calls
/// for ([`Resolution::for_range`]), and at least the finest resolution still stored at its
/// start (1 s rows are rolled into minutes after an hour, minutes into hours after a week;
/// host minutes after a day; hosts have no 1 s rows).
fn auto_resolution(from: i64, to: i64, now: i64, host: bool, r: Retention) -> Resolution {
    let by_range =
        Resolution::for_range(Duration::from_secs(u64::try_from(to - from).unwrap_or(0)));
    let age = now - from;
    let by_age = if host {
        if age <= r.host_minutes {
            Resolution::Minute
        } else {
            Resolution::Hour
        }
    } else if age <= r.seconds {
        Resolution::Second
    } else if age <= r.minutes {
        Resolution::Minute
    } else {
        Resolution::Hour
    };
    by_range.max(by_age)
}

fn resolution_name(r: Resolution) -> &'static str {
    match r {
        Resolution::Second => "second",
        Resolution::Minute => "minute",
        Resolution::Hour => "hour",
    }
}

fn history_blocking(ctx: &Ctx, req: HistoryRequest) -> Result<Response, ApiError> {
    let (monitored, host_seen) = {
        let s = read(&ctx.state);
        let seen = match req.what {
            What::Host(ip) => host_interfaces(&s, ip),
            _ => Vec::new(),
        };
        (monitored(&s), seen)
    };
    let reader = open_reader(&ctx.dir)?;
    let iface = match req.interface {
        Some(name) => known_interface(name, &monitored, &reader)?,
        None => only_interface(&monitored)?,
    };
    let (from, to) = (from_unix(req.from), from_unix(req.to));
    let res = Some(req.resolution);
    let (kind, protocol, host, rows) = match req.what {
        What::Interface => {
            let rows = reader.query(&SeriesKey::Interface(iface.clone()), from, to, res);
            ("interface", None, None, rows.map_err(|e| unavailable(&e))?)
        }
        What::Protocol(p) => {
            let mut sum: BTreeMap<SystemTime, Counters> = BTreeMap::new();
            for &slot in &p.slots {
                let key = SeriesKey::Protocol {
                    iface: iface.clone(),
                    slot,
                };
                for (t, c) in reader
                    .query(&key, from, to, res)
                    .map_err(|e| unavailable(&e))?
                {
                    sum.entry(t).or_default().add(&c);
                }
            }
            let protocol = SeriesProtocol {
                name: p.name,
                family: p.family.map(Family::as_str),
                number: p.number,
                slots: p.slots,
            };
            ("protocol", Some(protocol), None, sum.into_iter().collect())
        }
        What::Host(ip) => {
            known_host(ip, &iface, &host_seen, &reader)?;
            let key = SeriesKey::Host {
                iface: iface.clone(),
                addr: ip,
            };
            let rows = reader
                .query(&key, from, to, res)
                .map_err(|e| unavailable(&e))?;
            ("host", None, Some(ip), rows)
        }
    };
    Ok(json(
        StatusCode::OK,
        &HistoryResponse {
            series: Series {
                kind,
                interface: iface,
                protocol,
                host,
            },
            resolution_seconds: req.resolution.secs(),
            from: req.from,
            to: req.to,
            points: rows
                .into_iter()
                .map(|(t, c)| HistoryPoint {
                    t: unix(t),
                    rx_bytes: c.rx_bytes,
                    rx_packets: c.rx_packets,
                    tx_bytes: c.tx_bytes,
                    tx_packets: c.tx_packets,
                })
                .collect(),
        },
    ))
}

/// `protocol=`: a slot number, a name as `/api/v1/protocols` shows it (an IP protocol's name
/// alone means both families), or `ipv4:NAME` / `ipv6:NAME` (NAME may be the number).
fn parse_protocol(value: String) -> Result<ProtocolSel, ApiError> {
    let slot_count = u16::try_from(PROTO_SLOTS).unwrap_or(u16::MAX);
    let invalid = |value: String| ApiError::InvalidParameter {
        name: "protocol",
        value,
        expected: format!(
            "a protocol slot number from 0 to {}, a name as GET /api/v1/protocols shows it \
             (`arp`; `tcp` sums TCP over IPv4 and IPv6), or a family and a name or number \
             (`ipv4:tcp`, `ipv6:58`, `ipv4:ip-253`)",
            slot_count - 1
        ),
    };
    let single = |slot: u16| {
        let (name, family, number) =
            slot_name(u32::from(slot)).expect("a slot below PROTO_SLOTS has a name");
        ProtocolSel {
            name: name.into_owned(),
            family,
            number,
            slots: vec![slot],
        }
    };
    if let Some(slot) = parse_digits(&value) {
        return match u16::try_from(slot) {
            Ok(slot) if slot < slot_count => Ok(single(slot)),
            _ => Err(invalid(value)),
        };
    }
    let (family, name) = match value.split_once(':') {
        None => (None, value.as_str()),
        Some((f, name)) if f.eq_ignore_ascii_case("ipv4") => (Some(Family::Ipv4), name),
        Some((f, name)) if f.eq_ignore_ascii_case("ipv6") => (Some(Family::Ipv6), name),
        Some(_) => return Err(invalid(value)),
    };
    if let (Some(family), Some(n)) = (family, parse_digits(name)) {
        let base = match family {
            Family::Ipv4 => IPV4_BASE,
            Family::Ipv6 => IPV6_BASE,
        };
        return match u8::try_from(n) {
            Ok(n) => Ok(single(
                u16::try_from(base + u32::from(n)).expect("slots fit in u16"),
            )),
            Err(_) => Err(invalid(value)),
        };
    }
    let slots: Vec<u16> = (0..slot_count)
        .filter(|&slot| {
            slot_name(u32::from(slot)).is_some_and(|(n, f, _)| {
                n.eq_ignore_ascii_case(name) && family.is_none_or(|want| f == Some(want))
            })
        })
        .collect();
    match slots.as_slice() {
        [] => Err(invalid(value)),
        [slot] => Ok(single(*slot)),
        _ => {
            let first = single(slots[0]);
            Ok(ProtocolSel {
                family: None,
                slots,
                ..first
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/hosts/{ip}/usage

/// `GET /api/v1/hosts/{ip}/usage?interface=&tz=`.
async fn usage(segment: String, query: Query, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let ip = super::handlers::path_addr(&segment)?;
    let [interface, tz] =
        params(query, ["interface", "tz"], "`interface` and `tz`").map_err(warp::reject::custom)?;
    let offset = tz.map(parse_tz).transpose()?.unwrap_or(0);
    let now = (ctx.now)();
    blocking(move || usage_blocking(&ctx, ip, interface, offset, now)).await
}

fn usage_blocking(
    ctx: &Ctx,
    ip: IpAddr,
    interface: Option<String>,
    offset: i64,
    now: SystemTime,
) -> Result<Response, ApiError> {
    let (monitored, seen) = {
        let s = read(&ctx.state);
        (monitored(&s), host_interfaces(&s, ip))
    };
    let reader = open_reader(&ctx.dir)?;
    let (interfaces, only) = if let Some(name) = interface {
        let name = known_interface(name, &monitored, &reader)?;
        known_host(ip, &name, &seen, &reader)?;
        (vec![name.clone()], Some(name))
    } else {
        let mut all = seen;
        for name in reader.host_interfaces(ip).map_err(|e| unavailable(&e))? {
            if !all.contains(&name) {
                all.push(name);
            }
        }
        if all.is_empty() {
            return Err(ApiError::HostNotFound(ip.to_string()));
        }
        (all, None)
    };
    let report = reader
        .usage(ip, only.as_deref(), now, offset)
        .map_err(|e| unavailable(&e))?;
    let periods = |buckets: Vec<UsageBucket>| -> Vec<UsagePeriod> {
        buckets
            .into_iter()
            .map(|b| UsagePeriod {
                start: rfc3339(b.start, offset),
                rx_bytes: b.counters.rx_bytes,
                rx_packets: b.counters.rx_packets,
                tx_bytes: b.counters.tx_bytes,
                tx_packets: b.counters.tx_packets,
            })
            .collect()
    };
    Ok(json(
        StatusCode::OK,
        &UsageResponse {
            ip,
            interfaces,
            tz: tz_text(offset),
            daily: periods(report.daily),
            weekly: periods(report.weekly),
            monthly: periods(report.monthly),
        },
    ))
}

/// `tz=`: `Z` or a fixed offset `+HH:MM` / `-HH:MM`, as seconds east of UTC. A `+` that was
/// not percent-encoded arrives as a space (form encoding) and is read as `+`.
fn parse_tz(value: String) -> Result<i64, ApiError> {
    parse_offset(&value).ok_or_else(|| ApiError::InvalidParameter {
        name: "tz",
        value,
        expected: "`Z` or a fixed UTC offset `+HH:MM` or `-HH:MM` (`+02:00`, `-05:30`; encode \
                   `+` as `%2B`)"
            .into(),
    })
}

/// `Z`, `+HH:MM` or `-HH:MM` (a leading space standing for `+`) as seconds east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' | b' ' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = parse_digits(&s[1..3]).filter(|h| *h <= 23)?;
    let minutes = parse_digits(&s[4..6]).filter(|m| *m <= 59)?;
    Some(sign * i64::try_from(hours * 3600 + minutes * 60).ok()?)
}

/// An offset as RFC 3339 writes it: `Z` for UTC, else `+HH:MM` / `-HH:MM`.
fn tz_text(offset: i64) -> String {
    if offset == 0 {
        return "Z".to_owned();
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let a = offset.abs();
    format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
}

/// Unix seconds `t` as RFC 3339 with milliseconds, in the local time of `offset`.
fn rfc3339(t: i64, offset: i64) -> String {
    let local = t + offset;
    let (year, month, day) = civil_from_days(local.div_euclid(DAY));
    let secs = local.rem_euclid(DAY);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000{}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
        tz_text(offset)
    )
}

// ---------------------------------------------------------------------------------------------
// GET /api/v1/dump.json, GET /api/v1/dump.csv

/// The dump's formats.
#[derive(Clone, Copy, Debug)]
enum Format {
    Json,
    Csv,
}

/// `GET /api/v1/dump.json?interface=` and `GET /api/v1/dump.csv?interface=`.
async fn dump(format: Format, query: Query, ctx: Arc<Ctx>) -> Result<Response, Rejection> {
    let [interface] =
        params(query, ["interface"], "only `interface`").map_err(warp::reject::custom)?;
    let now = (ctx.now)();
    blocking(move || {
        let snapshot = Snapshot::take(&ctx.state, interface)?;
        Ok(match format {
            Format::Json => snapshot.json(),
            Format::Csv => snapshot.csv(now),
        })
    })
    .await
}

/// What the dump needs of the state, copied under the read lock.
#[derive(Debug)]
struct Snapshot {
    polled_at: Option<SystemTime>,
    /// Interface names by position: the monitored ones in state order, then any other ifindex
    /// a host was seen on.
    interfaces: Vec<(u32, String)>,
    /// Sorted by interface position, then address.
    rows: Vec<DumpRow>,
}

/// One host, copied out of the state.
#[derive(Clone, Copy, Debug)]
struct DumpRow {
    /// Position in [`Snapshot::interfaces`].
    iface: usize,
    ip: IpAddr,
    classes: HostCounters,
    first_seen: SystemTime,
    last_seen: SystemTime,
}

impl Snapshot {
    /// Copies the hosts (of `interface`, if given) under the read lock; sorts after it.
    fn take(state: &SharedState, interface: Option<String>) -> Result<Self, ApiError> {
        let (polled_at, mut interfaces, mut rows) = {
            let s = read(state);
            let ifindex = interface.map(|name| ifindex_of(&s, name)).transpose()?;
            let mut interfaces: Vec<(u32, String)> = s
                .interfaces()
                .map(|i| (i.ifindex, i.name.to_owned()))
                .collect();
            let mut rows = Vec::with_capacity(if ifindex.is_some() { 0 } else { s.host_count() });
            for h in s.each_host() {
                if ifindex.is_some_and(|want| want != h.ifindex) {
                    continue;
                }
                let iface = if let Some(i) = interfaces.iter().position(|(i, _)| *i == h.ifindex) {
                    i
                } else {
                    interfaces.push((h.ifindex, h.interface.into_owned()));
                    interfaces.len() - 1
                };
                rows.push(DumpRow {
                    iface,
                    ip: h.ip,
                    classes: *h.classes,
                    first_seen: h.first_seen,
                    last_seen: h.last_seen,
                });
            }
            (s.polled_at(), interfaces, rows)
        };
        rows.sort_unstable_by_key(|r| (r.iface, key_addr(r.ip)));
        interfaces.shrink_to_fit();
        Ok(Self {
            polled_at,
            interfaces,
            rows,
        })
    }

    fn json(&self) -> Response {
        #[derive(Serialize)]
        struct Doc<'a> {
            polled_at: Option<Timestamp>,
            hosts: Hosts<'a>,
        }
        struct Hosts<'a>(&'a Snapshot);
        impl Serialize for Hosts<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let s = self.0;
                serializer.collect_seq(s.rows.iter().map(|r| DumpHost {
                    ip: r.ip,
                    interface: &s.interfaces[r.iface].1,
                    sent: Volume::from(r.classes.total(SENT)),
                    received: Volume::from(r.classes.total(RECEIVED)),
                    protocols: HostProtocols::from_counters(&r.classes),
                    first_seen: Timestamp(r.first_seen),
                    last_seen: Timestamp(r.last_seen),
                }))
            }
        }
        json(
            StatusCode::OK,
            &Doc {
                polled_at: self.polled_at.map(Timestamp),
                hosts: Hosts(self),
            },
        )
    }

    /// The CSV file as a download named after `now`.
    fn csv(&self, now: SystemTime) -> Response {
        let mut response = Response::new(self.csv_text().into());
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
        );
        let disposition = format!(
            "attachment; filename=\"ntop-hosts-{}.csv\"",
            file_time(unix(now))
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            headers.insert(CONTENT_DISPOSITION, v);
        }
        response
    }

    /// RFC 4180: a header row, CRLF line ends, fields with `,` `"` CR or LF quoted.
    fn csv_text(&self) -> String {
        let mut out = String::with_capacity(400 + self.rows.len() * 200);
        out.push_str(&csv_header());
        for r in &self.rows {
            csv_field(&mut out, &self.interfaces[r.iface].1);
            let _ = write!(out, ",{}", r.ip);
            for dir in [SENT, RECEIVED] {
                let c = r.classes.total(dir);
                let _ = write!(out, ",{},{}", c.bytes, c.packets);
            }
            for class in 0..L4_CLASS_NAMES.len() {
                for dir in [SENT, RECEIVED] {
                    let c = r.classes.c[dir][class];
                    let _ = write!(out, ",{},{}", c.bytes, c.packets);
                }
            }
            let _ = write!(
                out,
                ",{},{}\r\n",
                Timestamp(r.first_seen),
                Timestamp(r.last_seen)
            );
        }
        out
    }
}

/// The CSV header row, with its CRLF.
fn csv_header() -> String {
    let mut h =
        String::from("interface,ip,sent_bytes,sent_packets,received_bytes,received_packets");
    for class in L4_CLASS_NAMES {
        for dir in ["sent", "received"] {
            let _ = write!(h, ",{class}_{dir}_bytes,{class}_{dir}_packets");
        }
    }
    h.push_str(",first_seen,last_seen\r\n");
    h
}

/// Appends `s` as one CSV field, quoted (with `"` doubled) if it holds `,` `"` CR or LF.
fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Unix seconds as `YYYYMMDDTHHMMSSZ` (ISO 8601 basic, safe in file names).
fn file_time(t: i64) -> String {
    let (year, month, day) = civil_from_days(t.div_euclid(DAY));
    let secs = t.rem_euclid(DAY);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Runs `f` on the blocking pool.
async fn blocking<F>(f: F) -> Result<Response, Rejection>
where
    F: FnOnce() -> Result<Response, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("the request's worker failed: {e}")))
        .and_then(|r| r)
        .map_err(warp::reject::custom)
}

/// The state, read-locked. A panic in the collector while it held the lock poisons it; the
/// collector carries on, so the state stays worth reading.
fn read(state: &SharedState) -> RwLockReadGuard<'_, State> {
    state.read().unwrap_or_else(PoisonError::into_inner)
}

/// The names of the monitored interfaces, in state order.
fn monitored(s: &State) -> Vec<String> {
    s.interfaces().map(|i| i.name.to_owned()).collect()
}

/// The interfaces the state has seen `ip` on.
fn host_interfaces(s: &State, ip: IpAddr) -> Vec<String> {
    s.host_entries(ip)
        .into_iter()
        .map(|h| h.interface.into_owned())
        .collect()
}

/// Opens the history database read-only and checks its schema.
fn open_reader(dir: &DataDir) -> Result<HistoryReader, ApiError> {
    let path = dir.file(history::FILE_NAME);
    if !path.try_exists().unwrap_or(true) {
        return Err(ApiError::HistoryUnavailable(format!(
            "history database {} does not exist; ntop creates it when it starts recording \
             history (if it does not appear within a minute, the daemon's log says why)",
            path.display()
        )));
    }
    let reader = HistoryReader::open(dir).map_err(|e| unavailable(&e))?;
    reader.check_schema().map_err(|e| unavailable(&e))?;
    Ok(reader)
}

/// A history error as a 503: its text names the file; the fix is added where it does not
/// already say one.
fn unavailable(e: &HistoryError) -> ApiError {
    let fix = match e {
        HistoryError::NewerVersion { .. } => "",
        _ => {
            "; check the daemon's log, and that the data directory and the file can be read by \
             the user ntop runs as"
        }
    };
    ApiError::HistoryUnavailable(format!("{e}{fix}"))
}

/// `name` if the state monitors it or the history has rows of it.
fn known_interface(
    name: String,
    monitored: &[String],
    reader: &HistoryReader,
) -> Result<String, ApiError> {
    if monitored.contains(&name) {
        return Ok(name);
    }
    let in_history = reader.interface_names().map_err(|e| unavailable(&e))?;
    if in_history.contains(&name) {
        return Ok(name);
    }
    let mut known = if monitored.is_empty() {
        "none yet".to_owned()
    } else {
        monitored.join(", ")
    };
    let past: Vec<&str> = in_history
        .iter()
        .filter(|n| !monitored.contains(n))
        .map(String::as_str)
        .collect();
    if !past.is_empty() {
        let _ = write!(known, "; the history also has {}", past.join(", "));
    }
    Err(ApiError::InterfaceNotFound { name, known })
}

/// The interface when `interface=` is left out: the only monitored one.
fn only_interface(monitored: &[String]) -> Result<String, ApiError> {
    match monitored {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::MissingParameter {
            name: "interface",
            reason: "no interface has been polled yet, so there is no default; give \
                     `interface=NAME`"
                .into(),
        }),
        several => Err(ApiError::MissingParameter {
            name: "interface",
            reason: format!(
                "the daemon monitors {}; give one of them as `interface=NAME`",
                several.join(", ")
            ),
        }),
    }
}

/// Checks that `ip` was seen on `iface`, by the state (`seen`) or the history.
fn known_host(
    ip: IpAddr,
    iface: &str,
    seen: &[String],
    reader: &HistoryReader,
) -> Result<(), ApiError> {
    if seen.iter().any(|n| n == iface) {
        return Ok(());
    }
    let mut all = seen.to_vec();
    for name in reader.host_interfaces(ip).map_err(|e| unavailable(&e))? {
        if name == iface {
            return Ok(());
        }
        if !all.contains(&name) {
            all.push(name);
        }
    }
    if all.is_empty() {
        return Err(ApiError::HostNotFound(ip.to_string()));
    }
    Err(ApiError::HostNotOnInterface {
        ip: ip.to_string(),
        interface: iface.to_owned(),
        seen_on: format!("; it was seen on: {}", all.join(", ")),
    })
}

/// An IP address parameter, in the form the API shows (IPv4-mapped as IPv4).
fn parse_ip(name: &'static str, value: String) -> Result<IpAddr, ApiError> {
    match value.parse::<IpAddr>() {
        Ok(ip) => Ok(display_addr(key_addr(ip))),
        Err(_) => Err(ApiError::InvalidParameter {
            name,
            value,
            expected: "an IPv4 address such as 198.18.0.1 or an IPv6 address such as \
                       2001:db8::1"
                .into(),
        }),
    }
}

/// `from=` / `to=`: unix seconds, or an RFC 3339 time with `Z` or an offset.
fn parse_time(name: &'static str, value: String) -> Result<i64, ApiError> {
    let t = match parse_digits(&value) {
        Some(n) => i64::try_from(n).ok(),
        None if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() => None,
        None => parse_rfc3339(&value),
    };
    t.filter(|t| (0..=MAX_TIME).contains(t))
        .ok_or_else(|| ApiError::InvalidParameter {
            name,
            value,
            expected: "unix seconds (`1700000000`) or an RFC 3339 time \
                       (`2023-11-14T22:13:20Z`, `2023-11-14T23:13:20%2B01:00`), from 1970 to \
                       9999"
                .into(),
        })
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` as unix seconds (the fraction is cut
/// off); `t` may be lower case or a space, and a space before the offset stands for `+`.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(parse_digits);
    let year = i64::try_from(num(0..4)?).ok()?;
    let month = u32::try_from(num(5..7)?)
        .ok()
        .filter(|m| (1..=12).contains(m))?;
    let day = u32::try_from(num(8..10)?).ok()?;
    let next_month = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    let month_days = next_month - days_from_civil(year, month, 1);
    if day == 0 || i64::from(day) > month_days {
        return None;
    }
    let hour = i64::try_from(num(11..13)?).ok().filter(|h| *h <= 23)?;
    let minute = i64::try_from(num(14..16)?).ok().filter(|m| *m <= 59)?;
    let second = i64::try_from(num(17..19)?).ok().filter(|s| *s <= 60)?;
    let mut rest = &s[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = parse_offset(rest)?;
    Some(days_from_civil(year, month, day) * DAY + hour * 3600 + minute * 60 + second - offset)
}

/// Decimal digits only (no sign, no spaces), at most `u64`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod unit {
    use std::{net::Ipv4Addr, time::Instant};

    use ntop_common::counters::{Counter, HostKey};

    use super::*;

    /// 100k hosts: the copy under the read lock is a small part of the work, and the lock is
    /// free while the documents are rendered. Prints the times (run with `--nocapture`).
    #[test]
    fn dump_of_100k_hosts_renders_outside_the_lock() {
        const HOSTS: u32 = 100_000;
        let mut sample = crate::state::tests::sample(0).iface(2, "eth0").build();
        sample.hosts = (0..HOSTS)
            .map(|i| {
                let mut c = HostCounters::default();
                c.c[SENT][0] = Counter {
                    bytes: u64::from(i),
                    packets: 1,
                };
                // 198.18.0.0/15 holds 131,072 addresses.
                let ip = IpAddr::V4(Ipv4Addr::from(0xc612_0000 + i));
                let key = HostKey {
                    addr: key_addr(ip),
                    ifindex: 2,
                };
                (key, c)
            })
            .collect();
        let mut s = State::new();
        s.ingest(&sample);
        let state: SharedState = Arc::new(std::sync::RwLock::new(s));

        let start = Instant::now();
        let snapshot = Snapshot::take(&state, None).unwrap();
        let copied = start.elapsed();
        assert!(
            state.try_write().is_ok(),
            "the lock is released after the copy"
        );
        assert_eq!(snapshot.rows.len(), 100_000);
        let start = Instant::now();
        let csv = snapshot.csv_text();
        let csv_time = start.elapsed();
        let start = Instant::now();
        let json = snapshot.json();
        let json_time = start.elapsed();
        assert_eq!(csv.matches("\r\n").count(), 100_001);
        assert_eq!(json.status(), StatusCode::OK);
        let json_len = warp::hyper::body::Body::size_hint(json.body()).exact();
        println!(
            "{HOSTS} hosts: copy under the lock {copied:?}; CSV {csv_time:?}, {} bytes; JSON \
             {json_time:?}, {json_len:?} bytes",
            csv.len()
        );
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-14t22:13:20.999z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20+01:00"),
            Some(1_700_000_000)
        );
        // An unencoded `+` arrives as a space.
        assert_eq!(
            parse_rfc3339("2023-11-14T23:13:20 01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T16:43:20-05:30"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        assert_eq!(parse_rfc3339("2023-02-29T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None);
        assert_eq!(parse_rfc3339("2023-11-14T24:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20.Z"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20+1:00"), None);
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Zjunk"), None);
    }

    #[test]
    fn offsets_and_local_times() {
        assert_eq!(parse_offset("Z"), Some(0));
        assert_eq!(parse_offset("+02:00"), Some(7200));
        assert_eq!(parse_offset(" 05:45"), Some(20_700));
        assert_eq!(parse_offset("-09:30"), Some(-34_200));
        assert_eq!(parse_offset("+24:00"), None);
        assert_eq!(parse_offset("+0200"), None);
        assert_eq!(parse_offset("02:00"), None);
        assert_eq!(tz_text(0), "Z");
        assert_eq!(tz_text(-34_200), "-09:30");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20.000Z");
        assert_eq!(
            rfc3339(1_700_000_000, 7200),
            "2023-11-15T00:13:20.000+02:00"
        );
        assert_eq!(file_time(1_700_000_000), "20231114T221320Z");
    }

    #[test]
    fn csv_quoting() {
        let mut out = String::new();
        csv_field(&mut out, "eth0");
        out.push('|');
        csv_field(&mut out, "a,b");
        out.push('|');
        csv_field(&mut out, "say \"hi\"");
        out.push('|');
        csv_field(&mut out, "two\r\nlines");
        assert_eq!(out, "eth0|\"a,b\"|\"say \"\"hi\"\"\"|\"two\r\nlines\"");
    }

    #[test]
    fn protocols_by_slot_and_name() {
        let p = |v: &str| parse_protocol(v.to_owned()).map(|p| (p.name, p.family, p.slots));
        assert_eq!(p("6").unwrap(), ("tcp".into(), Some(Family::Ipv4), vec![6]));
        assert_eq!(p("tcp").unwrap(), ("tcp".into(), None, vec![6, 262]));
        assert_eq!(p("TCP").unwrap(), ("tcp".into(), None, vec![6, 262]));
        assert_eq!(
            p("ipv6:tcp").unwrap(),
            ("tcp".into(), Some(Family::Ipv6), vec![262])
        );
        assert_eq!(
            p("ipv6:58").unwrap(),
            ("icmpv6".into(), Some(Family::Ipv6), vec![314])
        );
        assert_eq!(
            p("ipv4:ip-253").unwrap(),
            ("ip-253".into(), Some(Family::Ipv4), vec![253])
        );
        assert_eq!(p("arp").unwrap(), ("arp".into(), None, vec![512]));
        assert_eq!(p("526").unwrap().2, vec![526]);
        for bad in ["527", "", "ipv4:arp", "ipv7:tcp", "ipv4:256", "bogus", "-1"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
