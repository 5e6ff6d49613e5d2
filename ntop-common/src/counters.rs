//! Counter values and host keys stored in the maps.

use core::mem::size_of;

/// Bytes and packets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Layer-2 frame bytes as seen on the wire, without FCS.
    pub bytes: u64,
    /// Wire packets (a GSO super-packet counts as its segments).
    pub packets: u64,
}
const _: () = assert!(size_of::<Counter>() == 16);

/// Layer-4 classes that host counters are broken down by.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Class {
    /// IP protocol 6.
    Tcp = 0,
    /// IP protocol 17.
    Udp = 1,
    /// IP protocol 1 (over IPv4).
    Icmp = 2,
    /// IP protocol 58 (over IPv6).
    Icmpv6 = 3,
    /// Any other IP protocol, including fragments and IPv6 with too many extension headers.
    Other = 4,
}

/// Number of [`L4Class`]es.
pub const L4_CLASSES: usize = 5;
/// Names of the [`L4Class`]es, by index; the API and metrics use these.
pub const L4_CLASS_NAMES: [&str; L4_CLASSES] = ["tcp", "udp", "icmp", "icmpv6", "other"];

impl L4Class {
    /// Class of an IP protocol number (`next header` for IPv6, after the extension headers).
    #[inline(always)]
    #[must_use]
    pub const fn of(proto: u8) -> Self {
        match proto {
            6 => Self::Tcp,
            17 => Self::Udp,
            1 => Self::Icmp,
            58 => Self::Icmpv6,
            _ => Self::Other,
        }
    }
}

/// Index of the "sent" half of [`HostCounters::c`]: the host was the source address.
pub const SENT: usize = 0;
/// Index of the "received" half of [`HostCounters::c`]: the host was the destination address.
pub const RECEIVED: usize = 1;

/// Per-host counters: `c[SENT | RECEIVED][L4Class]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCounters {
    /// `[direction][l4 class]`.
    pub c: [[Counter; L4_CLASSES]; 2],
}
const _: () = assert!(size_of::<HostCounters>() == 160);

impl HostCounters {
    /// Adds `other` into `self`, wrapping like the kernel's 64-bit counters.
    pub fn accumulate(&mut self, other: &Self) {
        for (mine, theirs) in self.c.iter_mut().zip(other.c.iter()) {
            for (m, t) in mine.iter_mut().zip(theirs.iter()) {
                m.bytes = m.bytes.wrapping_add(t.bytes);
                m.packets = m.packets.wrapping_add(t.packets);
            }
        }
    }

    /// Sum over the L4 classes of one direction ([`SENT`] or [`RECEIVED`]).
    #[must_use]
    pub fn total(&self, dir: usize) -> Counter {
        let mut t = Counter::default();
        for c in &self.c[dir] {
            t.bytes = t.bytes.wrapping_add(c.bytes);
            t.packets = t.packets.wrapping_add(c.packets);
        }
        t
    }
}

/// Key of [`HOSTS`](crate::maps::HOSTS): an address seen on one interface.
///
/// 20 bytes, a multiple of 4, so the kernel hashes it with the faster `jhash2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    /// IPv6 address, or IPv4-mapped IPv6 (`::ffff:a.b.c.d`) for IPv4, network byte order.
    pub addr: [u8; 16],
    /// Interface index the packet was seen on.
    pub ifindex: u32,
}
const _: () = assert!(size_of::<HostKey>() == 20);
