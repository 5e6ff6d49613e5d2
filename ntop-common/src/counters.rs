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

/// Key of [`PAIRS`](crate::maps::PAIRS): two addresses that exchanged packets on one interface.
///
/// One entry per conversation, whichever side sent: the address whose two native-endian 64-bit
/// halves compare lower is [`PairKey::a`] (see [`PairKey::of`]). 36 bytes, a multiple of 4.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    /// The lower address (IPv4-mapped IPv6 for IPv4), network byte order.
    pub a: [u8; 16],
    /// The higher address.
    pub b: [u8; 16],
    /// Interface index the packets were seen on.
    pub ifindex: u32,
}
const _: () = assert!(size_of::<PairKey>() == 36);

/// Index of [`PairCounters::c`] for packets from [`PairKey::a`] to [`PairKey::b`].
pub const A_TO_B: usize = 0;
/// Index of [`PairCounters::c`] for packets from [`PairKey::b`] to [`PairKey::a`].
pub const B_TO_A: usize = 1;

impl PairKey {
    /// The key of a packet from `src` to `dst` on `ifindex`, and the index of its direction in
    /// [`PairCounters::c`] ([`A_TO_B`] or [`B_TO_A`]).
    ///
    /// The order only has to be total and cheap in the kernel (two 64-bit compares, no byte
    /// loop); it is not the numeric order of the addresses.
    #[inline(always)]
    #[must_use]
    pub fn of(src: [u8; 16], dst: [u8; 16], ifindex: u32) -> (Self, usize) {
        if halves(&src) <= halves(&dst) {
            (
                Self {
                    a: src,
                    b: dst,
                    ifindex,
                },
                A_TO_B,
            )
        } else {
            (
                Self {
                    a: dst,
                    b: src,
                    ifindex,
                },
                B_TO_A,
            )
        }
    }
}

#[inline(always)]
fn halves(addr: &[u8; 16]) -> (u64, u64) {
    let [
        a0,
        a1,
        a2,
        a3,
        a4,
        a5,
        a6,
        a7,
        b0,
        b1,
        b2,
        b3,
        b4,
        b5,
        b6,
        b7,
    ] = *addr;
    (
        u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

/// Counters of one [`PairKey`]: `c[A_TO_B | B_TO_A]`, all L4 classes together.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairCounters {
    /// `[direction]`: [`A_TO_B`], [`B_TO_A`].
    pub c: [Counter; 2],
}
const _: () = assert!(size_of::<PairCounters>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_has_one_key_whichever_side_sends() {
        let (x, y) = ([0x20; 16], [0x10; 16]);
        let (k1, d1) = PairKey::of(x, y, 7);
        let (k2, d2) = PairKey::of(y, x, 7);
        assert_eq!(k1, k2);
        assert_ne!(d1, d2);
        assert_eq!((k1.a, k1.b, k1.ifindex), (y, x, 7));
        assert_eq!(d1, B_TO_A);
        // The second half decides when the first halves are equal.
        let mut z = y;
        z[15] = 0x11;
        assert_eq!(PairKey::of(z, y, 1).0.a, y);
        assert_eq!(PairKey::of(y, y, 1).1, A_TO_B);
    }
}
