//! Error and anomaly counters, indices of [`ERRORS`](crate::maps::ERRORS).
//!
//! A counted error never changes what happens to the packet: every program still passes it.

/// What went wrong or was unusual while counting one packet.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Frame shorter than an Ethernet header.
    TruncatedEthernet = 0,
    /// Frame ends inside a VLAN tag.
    TruncatedVlan = 1,
    /// More VLAN tags than the parser follows (two).
    VlanDepth = 2,
    /// Frame ends inside the IPv4 header.
    TruncatedIpv4 = 3,
    /// IPv4 header with a version other than 4 or a header length below 20 bytes.
    BadIpv4Header = 4,
    /// Frame ends inside the IPv6 header or one of its extension headers.
    TruncatedIpv6 = 5,
    /// More IPv6 extension headers than the parser walks.
    Ipv6ExtDepth = 6,
    /// Frame ends inside the TCP, UDP, SCTP or ICMP header (the packet is still counted under
    /// its protocol and hosts).
    TruncatedL4 = 7,
    /// The host map was full: the packet went to the interface's "other hosts" counter.
    HostMapFull = 8,
    /// A host map update failed for another reason (also counted into "other hosts").
    HostUpdateFailed = 9,
    /// A packet on an interface without a slot (not set up by the daemon); not counted.
    UnknownInterface = 10,
    /// A protocol counter lookup failed (should not happen); the packet is not in the totals.
    ProtoLookupFailed = 11,
    /// `EtherType` IPv6, but the header's version is not 6.
    BadIpv6Header = 12,
    /// The pair map was full: the packet is counted everywhere but in the pair map, so a
    /// host's top peers miss it.
    PairMapFull = 13,
    /// A pair map update failed for another reason (same consequence).
    PairUpdateFailed = 14,
}

/// Number of [`ErrorKind`]s.
pub const ERROR_KINDS: u32 = 15;

/// Names of the [`ErrorKind`]s, by index, for the API and metrics.
pub const ERROR_NAMES: [&str; ERROR_KINDS as usize] = [
    "truncated_ethernet",
    "truncated_vlan",
    "vlan_depth",
    "truncated_ipv4",
    "bad_ipv4_header",
    "truncated_ipv6",
    "ipv6_ext_depth",
    "truncated_l4",
    "host_map_full",
    "host_update_failed",
    "unknown_interface",
    "proto_lookup_failed",
    "bad_ipv6_header",
    "pair_map_full",
    "pair_update_failed",
];
