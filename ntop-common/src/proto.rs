//! Protocol slots: the columns of [`PROTO_STATS`](crate::maps::PROTO_STATS).
//!
//! Every frame lands in exactly one slot, so the slots of an interface and direction always sum
//! to the interface's total. IP packets go to their IP protocol number (IPv4 and IPv6 apart);
//! other frames to a class of their `EtherType`; frames whose headers could not be read to a
//! `malformed` slot of the layer that failed.

/// First slot of the IPv4 protocols: `IPV4_BASE + protocol`.
pub const IPV4_BASE: u32 = 0;
/// First slot of the IPv6 protocols: `IPV6_BASE + next header` (after extension headers).
pub const IPV6_BASE: u32 = 256;
/// First slot of the non-IP `EtherType` classes.
pub const ETHER_BASE: u32 = 512;

/// Non-IP frame classes, `ETHER_BASE + class`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherClass {
    /// 0x0806.
    Arp = 0,
    /// 0x8035.
    Rarp = 1,
    /// 0x88cc.
    Lldp = 2,
    /// 0x888e (802.1X).
    Eapol = 3,
    /// 0x8863.
    PppoeDiscovery = 4,
    /// 0x8864.
    PppoeSession = 5,
    /// 0x8847 and 0x8848.
    Mpls = 6,
    /// 0x8809 (LACP, marker).
    SlowProtocols = 7,
    /// 0x88f7.
    Ptp = 8,
    /// 802.3 frames with a length instead of an `EtherType` (LLC: STP, CDP, …).
    Llc = 9,
    /// A third VLAN tag (the parser follows two).
    VlanDeep = 10,
    /// Any other `EtherType`.
    Other = 11,
    /// Frame too short for its Ethernet or VLAN header.
    MalformedL2 = 12,
    /// IPv4 `EtherType`, but the IPv4 header is truncated or invalid.
    MalformedIpv4 = 13,
    /// IPv6 `EtherType`, but the IPv6 header is truncated.
    MalformedIpv6 = 14,
}

/// Number of [`EtherClass`]es.
pub const ETHER_CLASSES: u32 = 15;
/// Names of the [`EtherClass`]es, by index.
pub const ETHER_CLASS_NAMES: [&str; ETHER_CLASSES as usize] = [
    "arp",
    "rarp",
    "lldp",
    "eapol",
    "pppoe-discovery",
    "pppoe-session",
    "mpls",
    "slow-protocols",
    "ptp",
    "llc",
    "vlan-too-deep",
    "other-ethertype",
    "malformed-l2",
    "malformed-ipv4",
    "malformed-ipv6",
];

/// Slots per interface and direction.
pub const PROTO_SLOTS: u32 = ETHER_BASE + ETHER_CLASSES;

impl EtherClass {
    /// Class of a non-IP `EtherType` (or 802.3 length field).
    #[inline(always)]
    #[must_use]
    pub const fn of(ethertype: u16) -> Self {
        match ethertype {
            0x0806 => Self::Arp,
            0x8035 => Self::Rarp,
            0x88cc => Self::Lldp,
            0x888e => Self::Eapol,
            0x8863 => Self::PppoeDiscovery,
            0x8864 => Self::PppoeSession,
            0x8847 | 0x8848 => Self::Mpls,
            0x8809 => Self::SlowProtocols,
            0x88f7 => Self::Ptp,
            t if t < 0x0600 => Self::Llc,
            _ => Self::Other,
        }
    }

    /// This class's protocol slot.
    #[inline(always)]
    #[must_use]
    pub const fn slot(self) -> u32 {
        ETHER_BASE + self as u32
    }
}

/// Index into [`PROTO_STATS`](crate::maps::PROTO_STATS) of interface `iface_slot`, direction
/// `dir` ([`Direction`](crate::maps::Direction) as `u32`) and protocol slot `proto_slot`.
#[inline(always)]
#[must_use]
pub const fn proto_index(iface_slot: u32, dir: u32, proto_slot: u32) -> u32 {
    (iface_slot * crate::maps::DIRECTIONS + dir) * PROTO_SLOTS + proto_slot
}

/// What a protocol slot stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// An IPv4 protocol number.
    Ipv4(u8),
    /// An IPv6 next-header value.
    Ipv6(u8),
    /// A non-IP class.
    Ether(u32),
}

/// Decodes a protocol slot; `None` past [`PROTO_SLOTS`].
#[must_use]
pub const fn slot_kind(slot: u32) -> Option<SlotKind> {
    if slot < IPV6_BASE {
        #[expect(clippy::cast_possible_truncation, reason = "slot < 256")]
        Some(SlotKind::Ipv4((slot - IPV4_BASE) as u8))
    } else if slot < ETHER_BASE {
        #[expect(clippy::cast_possible_truncation, reason = "slot - 256 < 256")]
        Some(SlotKind::Ipv6((slot - IPV6_BASE) as u8))
    } else if slot < PROTO_SLOTS {
        Some(SlotKind::Ether(slot - ETHER_BASE))
    } else {
        None
    }
}

/// Well-known name of an IP protocol number, as IANA lists it (lower case).
#[must_use]
pub const fn ip_proto_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        0 => "hopopt",
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        43 => "ipv6-route",
        44 => "ipv6-frag",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        59 => "ipv6-nonxt",
        60 => "ipv6-opts",
        88 => "eigrp",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        115 => "l2tp",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}
