//! Addresses and protocol slots as the API shows them.
//!
//! Pure functions, used by [`State`](super::State)'s query methods (HTTP handlers) and by
//! lookups; nothing here runs per host during ingest.

use std::{
    borrow::Cow,
    net::{IpAddr, Ipv6Addr},
};

use ntop_common::proto::{ETHER_CLASS_NAMES, SlotKind, ip_proto_name, slot_kind};

/// The address a host key stores, as shown: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4.
#[must_use]
pub fn display_addr(addr: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(addr);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// The host-key form of an address: IPv4 becomes IPv4-mapped IPv6, so `198.18.0.1` and
/// `::ffff:198.18.0.1` name the same host.
#[must_use]
pub fn key_addr(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Address family of an IP protocol slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 protocol numbers (slots 0..256).
    Ipv4,
    /// IPv6 next-header values (slots 256..512).
    Ipv6,
}

impl Family {
    /// The name the API uses.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ipv4 => "ipv4",
            Self::Ipv6 => "ipv6",
        }
    }
}

/// What a protocol slot is called: the IANA name of its IP protocol (`tcp`; `ip-253` if it has
/// none), or its non-IP class (`arp`); its family and IP protocol number (`None` for non-IP).
/// `None` for slots past [`PROTO_SLOTS`](ntop_common::proto::PROTO_SLOTS).
#[must_use]
pub fn slot_name(slot: u32) -> Option<(Cow<'static, str>, Option<Family>, Option<u8>)> {
    let ip = |family, n: u8| {
        let name = ip_proto_name(n).map_or_else(|| Cow::Owned(format!("ip-{n}")), Cow::Borrowed);
        (name, Some(family), Some(n))
    };
    Some(match slot_kind(slot)? {
        SlotKind::Ipv4(n) => ip(Family::Ipv4, n),
        SlotKind::Ipv6(n) => ip(Family::Ipv6, n),
        SlotKind::Ether(class) => (
            Cow::Borrowed(*ETHER_CLASS_NAMES.get(usize::try_from(class).ok()?)?),
            None,
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn ipv4_mapped_round_trip() {
        let mut mapped = [0_u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[198, 18, 0, 1]);
        assert_eq!(
            display_addr(mapped),
            IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))
        );
        assert_eq!(display_addr(mapped).to_string(), "198.18.0.1");
        assert_eq!(key_addr("198.18.0.1".parse().unwrap()), mapped);
        assert_eq!(key_addr("::ffff:198.18.0.1".parse().unwrap()), mapped);
    }

    #[test]
    fn ipv6_stays_ipv6() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(display_addr(a.octets()).to_string(), "2001:db8::1");
        // IPv4-compatible (deprecated) addresses are not mapped ones.
        let compat: Ipv6Addr = "::198.18.0.1".parse().unwrap();
        assert_eq!(display_addr(compat.octets()).to_string(), "::c612:1");
    }

    #[test]
    fn slot_names() {
        let name = |slot| {
            let (n, f, num) = slot_name(slot).unwrap();
            (n.into_owned(), f, num)
        };
        assert_eq!(name(6), ("tcp".into(), Some(Family::Ipv4), Some(6)));
        assert_eq!(
            name(256 + 58),
            ("icmpv6".into(), Some(Family::Ipv6), Some(58))
        );
        assert_eq!(name(253), ("ip-253".into(), Some(Family::Ipv4), Some(253)));
        assert_eq!(
            name(256 + 255),
            ("ip-255".into(), Some(Family::Ipv6), Some(255))
        );
        assert_eq!(name(512), ("arp".into(), None, None));
        assert_eq!(name(512 + 14), ("malformed-ipv6".into(), None, None));
        assert!(slot_name(512 + 15).is_none());
    }
}
