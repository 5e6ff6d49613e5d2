//! The JSON documents the API returns (see `docs/API.md`), built from the
//! [`crate::state`] views.
//!
//! Runs in the HTTP handlers, on a blocking thread under the state's read lock; the documents
//! borrow from the state and are serialized before the lock is released.

use std::{
    borrow::Cow,
    fmt,
    net::IpAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ntop_common::counters::{Counter, HostCounters, L4_CLASSES, RECEIVED, SENT};
use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::state;

/// An error: `{"code": "...", "message": "..."}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    /// Stable `snake_case` identifier.
    pub code: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// `GET /api/v1/health`.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// A wall-clock time, serialized as RFC 3339 UTC with milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp(pub SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // humantime panics before 1970 and fails from year 10000 on: clamp into its range.
        const LAST: Duration = Duration::from_millis(253_402_300_799_999);
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let t = UNIX_EPOCH + since_epoch.min(LAST);
        serializer.collect_str(&humantime::format_rfc3339_millis(t))
    }
}

/// Totals and rates of one direction.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Traffic {
    /// L2 frame bytes on the wire (no FCS).
    pub bytes: u64,
    /// Wire packets.
    pub packets: u64,
    /// Bytes per second over the last poll interval.
    pub bytes_per_sec: f64,
    /// Packets per second over the last poll interval.
    pub packets_per_sec: f64,
}

impl From<state::Traffic> for Traffic {
    fn from(t: state::Traffic) -> Self {
        Self {
            bytes: t.bytes,
            packets: t.packets,
            bytes_per_sec: t.bytes_per_sec,
            packets_per_sec: t.packets_per_sec,
        }
    }
}

/// Totals without rates.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Volume {
    /// L2 frame bytes on the wire (no FCS).
    pub bytes: u64,
    /// Wire packets.
    pub packets: u64,
}

impl From<Counter> for Volume {
    fn from(c: Counter) -> Self {
        Self {
            bytes: c.bytes,
            packets: c.packets,
        }
    }
}

/// A pair of sent and received values.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct SentReceived<T> {
    /// The host was the source address.
    pub sent: T,
    /// The host was the destination address.
    pub received: T,
}

/// Fill of a kernel table (`host_table`, `pair_table`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct TableFill {
    /// Entries it holds at most (0 for a pair table: these kernel maps count no pairs).
    pub capacity: u32,
    /// Entries it held at the last poll.
    pub used: usize,
}

impl From<state::TableFill> for TableFill {
    fn from(t: state::TableFill) -> Self {
        Self {
            capacity: t.capacity,
            used: t.used,
        }
    }
}

/// The error counters as one object, in [`ERROR_NAMES`](ntop_common::errors::ERROR_NAMES)
/// order.
#[derive(Clone, Debug)]
pub struct Errors(pub Vec<(&'static str, u64)>);

impl Serialize for Errors {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, n) in &self.0 {
            map.serialize_entry(name, n)?;
        }
        map.end()
    }
}

/// `GET /api/v1/interfaces`.
#[derive(Debug, Serialize)]
pub struct InterfacesResponse<'a> {
    /// Time of the last poll; `null` before the first.
    pub polled_at: Option<Timestamp>,
    /// How long the last poll took, in milliseconds; `null` before the first.
    pub poll_duration_ms: Option<f64>,
    /// The kernel's host map.
    pub host_table: TableFill,
    /// The kernel's pair map (who talks to whom).
    pub pair_table: TableFill,
    /// Error counters by name.
    pub errors: Errors,
    /// Monitored interfaces.
    pub interfaces: Vec<Interface<'a>>,
}

impl<'a> InterfacesResponse<'a> {
    /// The document for `s`.
    #[must_use]
    pub fn new(s: &'a state::State) -> Self {
        Self {
            polled_at: s.polled_at().map(Timestamp),
            poll_duration_ms: s.poll_duration().map(|d| d.as_secs_f64() * 1000.0),
            host_table: s.host_table().into(),
            pair_table: s.pair_table().into(),
            errors: Errors(s.errors().collect()),
            interfaces: s.interfaces().map(Interface::from).collect(),
        }
    }
}

/// One monitored interface.
#[derive(Debug, Serialize)]
pub struct Interface<'a> {
    /// Name.
    pub name: &'a str,
    /// Kernel index.
    pub ifindex: u32,
    /// `xdp-native`, `xdp-generic` or `tc`.
    pub capture_mode: &'static str,
    /// Received (ingress), all protocols.
    pub rx: Traffic,
    /// Transmitted (egress), all protocols.
    pub tx: Traffic,
    /// Hosts that did not fit into the host map.
    pub other_hosts: SentReceived<Volume>,
    /// Hosts known on it.
    pub hosts: usize,
}

impl<'a> From<state::InterfaceView<'a>> for Interface<'a> {
    fn from(v: state::InterfaceView<'a>) -> Self {
        Self {
            name: v.name,
            ifindex: v.ifindex,
            capture_mode: v.mode.as_str(),
            rx: v.rx.into(),
            tx: v.tx.into(),
            other_hosts: SentReceived {
                sent: v.other_sent.into(),
                received: v.other_received.into(),
            },
            hosts: v.hosts,
        }
    }
}

/// One host on one interface.
#[derive(Debug, Serialize)]
pub struct Host<'a> {
    /// Address; IPv4 as dotted quad.
    pub ip: IpAddr,
    /// Interface name.
    pub interface: Cow<'a, str>,
    /// Traffic from this address.
    pub sent: Traffic,
    /// Traffic to this address.
    pub received: Traffic,
    /// Totals by L4 class.
    pub protocols: HostProtocols,
    /// First sample it was in.
    pub first_seen: Timestamp,
    /// Last sample in which its counters changed.
    pub last_seen: Timestamp,
    /// In a local subnet (`-m`).
    pub local: bool,
    /// Its name (reverse DNS); `null` when not known (yet), or with `-n`.
    #[serde(serialize_with = "shared_str")]
    pub name: Option<Arc<str>>,
    /// Its MAC address (`02:00:5e:00:53:01`) from the kernel's neighbour table of the
    /// interface; `null` when not known (a host behind a router has none there).
    pub mac: Option<String>,
}

/// A host's totals by L4 class; the field names are
/// [`L4_CLASS_NAMES`](ntop_common::counters::L4_CLASS_NAMES).
#[derive(Debug, Serialize)]
pub struct HostProtocols {
    /// IP protocol 6.
    pub tcp: SentReceived<Volume>,
    /// IP protocol 17.
    pub udp: SentReceived<Volume>,
    /// IP protocol 1.
    pub icmp: SentReceived<Volume>,
    /// IP protocol 58.
    pub icmpv6: SentReceived<Volume>,
    /// Everything else.
    pub other: SentReceived<Volume>,
}

impl<'a> From<state::HostView<'a>> for Host<'a> {
    fn from(v: state::HostView<'a>) -> Self {
        let class: [SentReceived<Volume>; L4_CLASSES] = std::array::from_fn(|i| SentReceived {
            sent: v.classes.c[SENT][i].into(),
            received: v.classes.c[RECEIVED][i].into(),
        });
        let [tcp, udp, icmp, icmpv6, other] = class;
        Self {
            ip: v.ip,
            interface: v.interface,
            sent: v.sent.into(),
            received: v.received.into(),
            protocols: HostProtocols {
                tcp,
                udp,
                icmp,
                icmpv6,
                other,
            },
            first_seen: Timestamp(v.first_seen),
            last_seen: Timestamp(v.last_seen),
            local: v.local,
            name: v.name,
            mac: v.mac.map(state::format_mac),
        }
    }
}

/// Serializes a shared string (serde's `rc` feature is not enabled: it would allow
/// deserializing into `Arc`, which we never need).
#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes the field by reference"
)]
fn shared_str<S: Serializer>(s: &Option<Arc<str>>, serializer: S) -> Result<S::Ok, S::Error> {
    match s {
        Some(s) => serializer.serialize_some(&**s),
        None => serializer.serialize_none(),
    }
}

/// `GET /api/v1/hosts`.
#[derive(Debug, Serialize)]
pub struct HostsResponse<'a> {
    /// Hosts matching the filter, before paging.
    pub total: usize,
    /// Hosts skipped.
    pub offset: usize,
    /// Most hosts returned.
    pub limit: usize,
    /// The page.
    pub hosts: Vec<Host<'a>>,
}

/// `GET /api/v1/hosts/{ip}`.
#[derive(Debug, Serialize)]
pub struct HostEntriesResponse<'a> {
    /// The address, as the API shows it.
    pub ip: IpAddr,
    /// One entry per interface it was seen on.
    pub entries: Vec<Host<'a>>,
}

/// `GET /api/v1/hosts/{ip}/peers`.
#[derive(Debug, Serialize)]
pub struct PeersResponse<'a> {
    /// The host, as the API shows it.
    pub ip: IpAddr,
    /// Peer entries (peer × interface) the host has, before `limit`.
    pub total: usize,
    /// `false` when the kernel's pair table overflowed (or failed to count a pair) since
    /// `since`: some peers are missing.
    pub complete: bool,
    /// Since when the peer counts count (the kernel maps' creation or the last reset);
    /// `null` when not known.
    pub since: Option<Timestamp>,
    /// Fill of the kernel's pair table.
    pub pair_table: TableFill,
    /// The top peers, most bytes (both ways) first.
    pub peers: Vec<Peer<'a>>,
}

/// One peer of a host on one interface.
#[derive(Debug, Serialize)]
pub struct Peer<'a> {
    /// The peer's address.
    pub ip: IpAddr,
    /// The interface the pair was seen on.
    pub interface: Cow<'a, str>,
    /// From the host to the peer.
    pub sent: Volume,
    /// From the peer to the host.
    pub received: Volume,
    /// The peer is in a local subnet (`-m`).
    pub local: bool,
    /// The peer's name (reverse DNS); `null` when not known (yet), or with `-n`.
    #[serde(serialize_with = "shared_str")]
    pub name: Option<Arc<str>>,
}

impl<'a> PeersResponse<'a> {
    /// The response for `ip`'s peer list.
    #[must_use]
    pub fn new(ip: IpAddr, list: state::PeerList<'a>) -> Self {
        Self {
            ip,
            total: list.total,
            complete: list.complete,
            since: list.since.map(Timestamp),
            pair_table: list.table.into(),
            peers: list
                .peers
                .into_iter()
                .map(|p| Peer {
                    ip: p.ip,
                    interface: p.interface,
                    sent: p.sent.into(),
                    received: p.received.into(),
                    local: p.local,
                    name: p.name,
                })
                .collect(),
        }
    }
}

/// `GET /api/v1/protocols`.
#[derive(Debug, Serialize)]
pub struct ProtocolsResponse<'a> {
    /// Slots with traffic, by interface, then slot.
    pub protocols: Vec<Protocol<'a>>,
}

/// One protocol slot of one interface.
#[derive(Debug, Serialize)]
pub struct Protocol<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// Protocol name.
    pub name: Cow<'static, str>,
    /// `ipv4`, `ipv6`, or `null` for non-IP classes.
    pub family: Option<&'static str>,
    /// IP protocol number, or `null` for non-IP classes.
    pub number: Option<u8>,
    /// Received.
    pub rx: Traffic,
    /// Transmitted.
    pub tx: Traffic,
}

impl<'a> From<state::ProtocolView<'a>> for Protocol<'a> {
    fn from(v: state::ProtocolView<'a>) -> Self {
        Self {
            interface: v.interface,
            name: v.name,
            family: v.family.map(state::Family::as_str),
            number: v.number,
            rx: v.rx.into(),
            tx: v.tx.into(),
        }
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC with milliseconds, as serialized (for CSV and file names).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const LAST: Duration = Duration::from_millis(253_402_300_799_999);
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let t = UNIX_EPOCH + since_epoch.min(LAST);
        fmt::Display::fmt(&humantime::format_rfc3339_millis(t), f)
    }
}

impl HostProtocols {
    /// The classes of a host's totals.
    #[must_use]
    pub fn from_counters(c: &HostCounters) -> Self {
        let class: [SentReceived<Volume>; L4_CLASSES] = std::array::from_fn(|i| SentReceived {
            sent: c.c[SENT][i].into(),
            received: c.c[RECEIVED][i].into(),
        });
        let [tcp, udp, icmp, icmpv6, other] = class;
        Self {
            tcp,
            udp,
            icmp,
            icmpv6,
            other,
        }
    }
}

/// `GET /api/v1/history`.
#[derive(Debug, Serialize)]
pub struct HistoryResponse {
    /// Which series.
    pub series: Series,
    /// Seconds per point: 1, 60 or 3600.
    pub resolution_seconds: i64,
    /// Start of the range (inclusive), unix seconds, aligned down to the resolution.
    pub from: i64,
    /// End of the range (exclusive), unix seconds, aligned up to the resolution.
    pub to: i64,
    /// One per interval with traffic, in time order.
    pub points: Vec<HistoryPoint>,
}

/// What a history series is of.
#[derive(Debug, Serialize)]
pub struct Series {
    /// `interface`, `protocol` or `host`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Interface name.
    pub interface: String,
    /// The protocol of a `protocol` series, else `null`.
    pub protocol: Option<SeriesProtocol>,
    /// The address of a `host` series, else `null`.
    pub host: Option<IpAddr>,
}

/// The protocol of a history series.
#[derive(Debug, Serialize)]
pub struct SeriesProtocol {
    /// Name, as in `GET /api/v1/protocols`.
    pub name: String,
    /// `ipv4`, `ipv6`, or `null` for non-IP classes and for both families summed.
    pub family: Option<&'static str>,
    /// IP protocol number, `null` for non-IP classes.
    pub number: Option<u8>,
    /// The protocol slots summed (two for an IP protocol over both families).
    pub slots: Vec<u16>,
}

/// One interval of a history series.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HistoryPoint {
    /// Start of the interval, unix seconds.
    pub t: i64,
    /// Bytes received in it (for a host: the host was the destination).
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes transmitted (for a host: the host was the source).
    pub tx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
}

/// `GET /api/v1/hosts/{ip}/usage`.
#[derive(Debug, Serialize)]
pub struct UsageResponse {
    /// The address, as the API shows it.
    pub ip: IpAddr,
    /// The interfaces summed.
    pub interfaces: Vec<String>,
    /// The offset the periods are local to: `Z` or `+HH:MM` / `-HH:MM`.
    pub tz: String,
    /// The last 31 days, oldest first.
    pub daily: Vec<UsagePeriod>,
    /// The last 12 weeks (Monday to Sunday).
    pub weekly: Vec<UsagePeriod>,
    /// The last 12 calendar months.
    pub monthly: Vec<UsagePeriod>,
}

/// One period of a usage report.
#[derive(Debug, Serialize)]
pub struct UsagePeriod {
    /// Local midnight the period starts at, RFC 3339 with milliseconds and the report's offset.
    pub start: String,
    /// Bytes the host received (it was the destination).
    pub rx_bytes: u64,
    /// Packets it received.
    pub rx_packets: u64,
    /// Bytes it sent (it was the source).
    pub tx_bytes: u64,
    /// Packets it sent.
    pub tx_packets: u64,
}

/// One host of `GET /api/v1/dump.json`: a [`Host`] without rates.
#[derive(Debug, Serialize)]
pub struct DumpHost<'a> {
    /// Address; IPv4 as dotted quad.
    pub ip: IpAddr,
    /// Interface name.
    pub interface: &'a str,
    /// Traffic from this address.
    pub sent: Volume,
    /// Traffic to this address.
    pub received: Volume,
    /// Totals by L4 class.
    pub protocols: HostProtocols,
    /// First sample it was in.
    pub first_seen: Timestamp,
    /// Last sample in which its counters changed.
    pub last_seen: Timestamp,
}
