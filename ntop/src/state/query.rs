//! The read side of [`State`]: the views the HTTP handlers render.
//!
//! Runs in the HTTP handlers (on a blocking thread, under the read lock); nothing here
//! mutates. Listing hosts is O(hosts) to filter plus O(page × log page) to sort the page: a
//! partial selection puts the page's hosts in front before only they are sorted.
//!
//! Filters (interface, [`Scope`], search) run in that first pass, before anything is sorted.
//! A search formats each candidate's address into a stack buffer (no allocation), and only
//! when the search text could be part of an address; names are matched once, against the
//! name source's cache, before the pass. Names and MACs are looked up for the page's rows
//! only.

use std::{
    borrow::Cow,
    cmp::Ordering,
    collections::HashSet,
    fmt::Write as _,
    net::{IpAddr, Ipv6Addr},
    sync::Arc,
    time::SystemTime,
};

use ntop_common::counters::{Counter, HostCounters, HostKey, RECEIVED, SENT};

use super::{
    Family, Host, Interface, SLOTS, Scope, State, Traffic, carry, display_addr, from_epoch_ms,
    key_addr, slot_name,
};
use crate::sample::CaptureMode;

/// What hosts can be sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// Bytes sent plus received.
    #[default]
    TotalBytes,
    /// Bytes sent.
    SentBytes,
    /// Bytes received.
    ReceivedBytes,
    /// Packets sent plus received.
    TotalPackets,
    /// Packets sent.
    SentPackets,
    /// Packets received.
    ReceivedPackets,
    /// Bytes per second sent plus received.
    Throughput,
    /// When the host was first seen.
    FirstSeen,
    /// When its counters last changed.
    LastSeen,
    /// Its address (IPv4 sorts as IPv4-mapped IPv6, so all IPv4 addresses sort together).
    Ip,
}

impl SortKey {
    /// Every key, in the order the API documents them.
    pub const ALL: [Self; 10] = [
        Self::TotalBytes,
        Self::SentBytes,
        Self::ReceivedBytes,
        Self::TotalPackets,
        Self::SentPackets,
        Self::ReceivedPackets,
        Self::Throughput,
        Self::FirstSeen,
        Self::LastSeen,
        Self::Ip,
    ];

    /// The name the API uses (`sort=`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TotalBytes => "total_bytes",
            Self::SentBytes => "sent_bytes",
            Self::ReceivedBytes => "received_bytes",
            Self::TotalPackets => "total_packets",
            Self::SentPackets => "sent_packets",
            Self::ReceivedPackets => "received_packets",
            Self::Throughput => "throughput",
            Self::FirstSeen => "first_seen",
            Self::LastSeen => "last_seen",
            Self::Ip => "ip",
        }
    }

    /// The key called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The order used when none is given: ascending for [`Ip`](Self::Ip), else descending
    /// (biggest, newest first).
    #[must_use]
    pub const fn default_order(self) -> Order {
        match self {
            Self::Ip => Order::Asc,
            _ => Order::Desc,
        }
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Biggest first.
    Desc,
}

impl Order {
    /// The name the API uses (`order=`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asc => "asc",
            Self::Desc => "desc",
        }
    }

    /// The order called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Asc, Self::Desc]
            .into_iter()
            .find(|o| o.as_str() == name)
    }
}

/// Which page of which hosts, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostQuery {
    /// Sort key; ties are broken by address, then ifindex, ascending.
    pub sort: SortKey,
    /// Sort direction.
    pub order: Order,
    /// Hosts to skip.
    pub offset: usize,
    /// Most hosts to return.
    pub limit: usize,
    /// Only hosts seen on this interface.
    pub ifindex: Option<u32>,
    /// Only hosts whose displayed address (`198.18.0.1`, `2001:db8::1`) or known name
    /// contains this text, ignoring case. `None` or empty: every host.
    pub search: Option<String>,
    /// Only local or only remote hosts, by the state's local subnets
    /// ([`State::set_local`]). `None`: both.
    pub scope: Option<Scope>,
}

impl Default for HostQuery {
    fn default() -> Self {
        Self {
            sort: SortKey::TotalBytes,
            order: SortKey::TotalBytes.default_order(),
            offset: 0,
            limit: 100,
            ifindex: None,
            search: None,
            scope: None,
        }
    }
}

/// One page of hosts.
#[derive(Debug)]
pub struct HostPage<'a> {
    /// Hosts that matched the filter, before paging.
    pub total: usize,
    /// The page, sorted.
    pub hosts: Vec<HostView<'a>>,
}

/// One host (one address on one interface).
#[derive(Clone, Debug)]
pub struct HostView<'a> {
    /// Its address; IPv4-mapped addresses as IPv4.
    pub ip: IpAddr,
    /// The interface it was seen on.
    pub ifindex: u32,
    /// That interface's name (`ifindex-N` if it is not a monitored interface).
    pub interface: Cow<'a, str>,
    /// Traffic it sent (it was the source address).
    pub sent: Traffic,
    /// Traffic it received (it was the destination address).
    pub received: Traffic,
    /// Totals by `[SENT | RECEIVED][L4 class]`.
    pub classes: &'a HostCounters,
    /// Wall time of the first sample it was in.
    pub first_seen: SystemTime,
    /// Wall time of the last sample in which its counters changed (or `first_seen`).
    pub last_seen: SystemTime,
    /// Whether its address is in a local subnet ([`State::set_local`]).
    pub local: bool,
    /// Its name (reverse DNS), if known. Looked up for [`State::hosts`] and
    /// [`State::host_entries`] only; always `None` from [`State::each_host`].
    pub name: Option<Arc<str>>,
    /// Its MAC address on that interface, if the kernel's neighbour table has it. Looked up
    /// as `name` is.
    pub mac: Option<[u8; 6]>,
}

/// One monitored interface.
#[derive(Clone, Debug)]
pub struct InterfaceView<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its kernel index.
    pub ifindex: u32,
    /// How its ingress is counted.
    pub mode: CaptureMode,
    /// Received (ingress) traffic, all protocols.
    pub rx: Traffic,
    /// Transmitted (egress) traffic, all protocols.
    pub tx: Traffic,
    /// Sent by hosts that did not fit into the host map (totals).
    pub other_sent: Counter,
    /// Received by hosts that did not fit into the host map (totals).
    pub other_received: Counter,
    /// Hosts known on it.
    pub hosts: usize,
}

/// One protocol slot of one interface.
#[derive(Clone, Debug)]
pub struct ProtocolView<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// Interface index.
    pub ifindex: u32,
    /// The slot ([`ntop_common::proto`]).
    pub slot: u32,
    /// Protocol or class name (`tcp`, `ip-253`, `arp`).
    pub name: Cow<'static, str>,
    /// `None` for non-IP classes.
    pub family: Option<Family>,
    /// IP protocol number; `None` for non-IP classes.
    pub number: Option<u8>,
    /// Received.
    pub rx: Traffic,
    /// Transmitted.
    pub tx: Traffic,
}

/// A host's position in a listing: its sort value, address, ifindex and index.
type Keyed = (u64, [u8; 16], u32, u32);

impl State {
    /// Monitored interfaces, in the order they first appeared in a sample.
    pub fn interfaces(&self) -> impl Iterator<Item = InterfaceView<'_>> {
        self.interfaces.iter().map(|i| self.interface_view(i))
    }

    /// The interface called `name`.
    #[must_use]
    pub fn interface(&self, name: &str) -> Option<InterfaceView<'_>> {
        self.interfaces
            .iter()
            .find(|i| i.name == name)
            .map(|i| self.interface_view(i))
    }

    fn interface_view<'a>(&self, i: &'a Interface) -> InterfaceView<'a> {
        InterfaceView {
            name: &i.name,
            ifindex: i.ifindex,
            mode: i.mode,
            rx: self.traffic(i.dir_total[0], i.dir_delta[0], i.generation),
            tx: self.traffic(i.dir_total[1], i.dir_delta[1], i.generation),
            other_sent: i.other_total.total(SENT),
            other_received: i.other_total.total(RECEIVED),
            hosts: i.hosts,
        }
    }

    /// The protocol slots with any traffic (either direction), of one interface or of all,
    /// by interface, then slot.
    #[must_use]
    pub fn protocols(&self, ifindex: Option<u32>) -> Vec<ProtocolView<'_>> {
        let mut out = Vec::new();
        for i in &self.interfaces {
            if ifindex.is_some_and(|want| want != i.ifindex) {
                continue;
            }
            let (rx, tx) = i.proto_total.split_at(SLOTS);
            let (rx_delta, tx_delta) = i.proto_delta.split_at(SLOTS);
            for (slot, (r, t)) in (0_u32..).zip(rx.iter().zip(tx)) {
                let zero = Counter::default();
                if *r == zero && *t == zero {
                    continue;
                }
                let Some((name, family, number)) = slot_name(slot) else {
                    continue;
                };
                let s = slot as usize;
                out.push(ProtocolView {
                    interface: &i.name,
                    ifindex: i.ifindex,
                    slot,
                    name,
                    family,
                    number,
                    rx: self.traffic(*r, rx_delta[s], i.generation),
                    tx: self.traffic(*t, tx_delta[s], i.generation),
                });
            }
        }
        out
    }

    /// One page of hosts, filtered, sorted and paged as `q` says. The page's rows get their
    /// names and MACs (a name not known yet is queued for a lookup, see
    /// [`HostNames`](super::HostNames)).
    #[must_use]
    pub fn hosts(&self, q: &HostQuery) -> HostPage<'_> {
        let filter = Filter::new(self, q);
        let mut keyed: Vec<Keyed> = self
            .hosts
            .iter()
            .zip(0_u32..)
            .filter(|(h, _)| {
                q.ifindex.is_none_or(|want| h.key.ifindex == want)
                    && carry::counted(&h.totals)
                    && filter.admits(h)
            })
            .map(|(h, index)| (self.sort_value(h, q.sort), h.key.addr, h.key.ifindex, index))
            .collect();
        let total = keyed.len();
        let end = q.offset.saturating_add(q.limit).min(total);
        let start = q.offset.min(end);
        let cmp = comparator(q.sort, q.order);
        if start < end {
            if end < total {
                keyed.select_nth_unstable_by(end - 1, cmp);
            }
            let head = &mut keyed[..end];
            if start > 0 {
                head.select_nth_unstable_by(start, cmp);
            }
            head[start..].sort_unstable_by(cmp);
        }
        HostPage {
            total,
            hosts: keyed[start..end]
                .iter()
                .map(|&(_, _, _, index)| self.annotated_view(&self.hosts[index as usize]))
                .collect(),
        }
    }

    /// Every host entry, in no particular order, without sorting or collecting (for scrapes
    /// that visit them all).
    pub fn each_host(&self) -> impl Iterator<Item = HostView<'_>> + '_ {
        self.hosts
            .iter()
            .filter(|h| carry::counted(&h.totals))
            .map(|h| self.host_view(h))
    }

    /// Every entry of one address: one per interface it was seen on, in interface order.
    /// IPv4 addresses and their IPv4-mapped IPv6 form find the same entries.
    #[must_use]
    pub fn host_entries(&self, ip: IpAddr) -> Vec<HostView<'_>> {
        let mut found: Vec<&Host> = self.entries_of(ip).collect();
        found.sort_by_key(|h| {
            let position = self
                .interfaces
                .iter()
                .position(|i| i.ifindex == h.key.ifindex);
            (position.unwrap_or(usize::MAX), h.key.ifindex)
        });
        found.into_iter().map(|h| self.annotated_view(h)).collect()
    }

    /// Whether `ip` has an entry on any interface (as [`host_entries`](Self::host_entries)
    /// would list), without building its views.
    #[must_use]
    pub fn has_host(&self, ip: IpAddr) -> bool {
        self.entries_of(ip).next().is_some()
    }

    /// The hosts of `ip`, one per interface it has counted something on.
    fn entries_of(&self, ip: IpAddr) -> impl Iterator<Item = &Host> {
        let addr = key_addr(ip);
        self.host_ifindexes
            .iter()
            .filter_map(move |&(ifindex, _)| self.host_index.get(&HostKey { addr, ifindex }))
            .map(|&index| &self.hosts[index as usize])
            .filter(|h| carry::counted(&h.totals))
    }

    /// [`host_view`](Self::host_view) with the name and the MAC looked up.
    fn annotated_view<'a>(&'a self, h: &'a Host) -> HostView<'a> {
        let mut view = self.host_view(h);
        view.name = self.name_of(view.ip);
        view.mac = self.mac_of(view.ip, view.ifindex);
        view
    }

    /// The name of the interface `ifindex`, or `ifindex-N` for one that is not monitored.
    pub(super) fn interface_name(&self, ifindex: u32) -> Cow<'_, str> {
        self.interfaces
            .iter()
            .find(|i| i.ifindex == ifindex)
            .map_or_else(
                || Cow::Owned(format!("ifindex-{ifindex}")),
                |i| Cow::Borrowed(i.name.as_str()),
            )
    }

    fn host_view<'a>(&'a self, h: &'a Host) -> HostView<'a> {
        let interface = self.interface_name(h.key.ifindex);
        let ip = display_addr(h.key.addr);
        HostView {
            ip,
            ifindex: h.key.ifindex,
            interface,
            sent: self.traffic(h.totals.total(SENT), h.delta[SENT], h.generation),
            received: self.traffic(h.totals.total(RECEIVED), h.delta[RECEIVED], h.generation),
            classes: &h.totals,
            first_seen: from_epoch_ms(h.first_seen_ms),
            last_seen: from_epoch_ms(h.last_seen_ms),
            local: self.is_local(ip),
            name: None,
            mac: None,
        }
    }

    /// The value `h` sorts by under `key` (0 for [`SortKey::Ip`], which sorts by address).
    fn sort_value(&self, h: &Host, key: SortKey) -> u64 {
        let sent = || h.totals.total(SENT);
        let received = || h.totals.total(RECEIVED);
        match key {
            SortKey::TotalBytes => sent().bytes.saturating_add(received().bytes),
            SortKey::SentBytes => sent().bytes,
            SortKey::ReceivedBytes => received().bytes,
            SortKey::TotalPackets => sent().packets.saturating_add(received().packets),
            SortKey::SentPackets => sent().packets,
            SortKey::ReceivedPackets => received().packets,
            // Every current host's rate has the same divisor: compare the increases.
            SortKey::Throughput => match self.elapsed {
                Some(e) if !e.is_zero() && h.generation == self.generation => {
                    h.delta[SENT].bytes.saturating_add(h.delta[RECEIVED].bytes)
                }
                _ => 0,
            },
            SortKey::FirstSeen => h.first_seen_ms,
            SortKey::LastSeen => h.last_seen_ms,
            SortKey::Ip => 0,
        }
    }
}

/// Orders listing entries by value in `order`, then by address and ifindex ascending (for
/// [`SortKey::Ip`], by address and ifindex in `order`).
fn comparator(sort: SortKey, order: Order) -> impl Fn(&Keyed, &Keyed) -> Ordering + Copy {
    move |a, b| {
        let directed = |o: Ordering| match order {
            Order::Asc => o,
            Order::Desc => o.reverse(),
        };
        let by_addr = (a.1, a.2).cmp(&(b.1, b.2));
        if sort == SortKey::Ip {
            directed(by_addr)
        } else {
            directed(a.0.cmp(&b.0)).then(by_addr)
        }
    }
}

/// The scope and search of a [`HostQuery`], prepared once per listing.
struct Filter<'a> {
    /// Only hosts whose locality is this, by these subnets.
    scope: Option<(Scope, &'a crate::subnets::Subnets)>,
    search: Option<Search>,
}

/// A search, lowercased, with the addresses whose names match it.
struct Search {
    needle: String,
    /// Whether the needle could be part of a displayed address at all (hex digits, `:`, `.`):
    /// if not, no address is formatted.
    in_addresses: bool,
    /// Key addresses whose known names contain the needle.
    named: HashSet<[u8; 16]>,
}

impl<'a> Filter<'a> {
    fn new(state: &'a State, q: &HostQuery) -> Self {
        let search = q.search.as_deref().filter(|s| !s.is_empty()).map(|text| {
            let needle = text.to_lowercase();
            let in_addresses = needle
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
            let mut named = HashSet::new();
            if let Some(names) = &state.annotations.names {
                names.matching(&needle, &mut named);
            }
            Search {
                needle,
                in_addresses,
                named: named.into_iter().map(key_addr).collect(),
            }
        });
        Self {
            scope: q.scope.map(|s| (s, &state.annotations.local)),
            search,
        }
    }

    fn admits(&self, h: &Host) -> bool {
        if let Some((scope, local)) = self.scope {
            // `contains` reads IPv4-mapped addresses as IPv4.
            let is_local = local.contains(IpAddr::V6(Ipv6Addr::from(h.key.addr)));
            if is_local != (scope == Scope::Local) {
                return false;
            }
        }
        let Some(search) = &self.search else {
            return true;
        };
        search.named.contains(&h.key.addr)
            || (search.in_addresses && {
                let mut text = AddrText::default();
                // A buffer of 64 bytes holds any address (45 at most); cannot fail.
                let _ = write!(text, "{}", display_addr(h.key.addr));
                text.as_str().contains(search.needle.as_str())
            })
    }
}

/// A displayed address, formatted on the stack.
struct AddrText {
    buf: [u8; 64],
    len: usize,
}

impl Default for AddrText {
    fn default() -> Self {
        Self {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl AddrText {
    fn as_str(&self) -> &str {
        // Only `write_str` fills it, with whole `str`s.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for AddrText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
