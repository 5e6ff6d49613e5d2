//! The packet classifier: Ethernet, up to two VLAN tags, IPv4, IPv6 with its extension headers,
//! and the first bytes of TCP, UDP, SCTP and ICMP.
//!
//! It runs in the kernel programs (on packet memory, through [`Frame`]) and in the daemon's unit
//! tests (on byte slices). It never fails: a frame it cannot read further is classified by the
//! last layer it could read and marked with an [`ErrorKind`], so every frame is counted once.

use crate::{
    counters::L4Class,
    errors::ErrorKind,
    proto::{EtherClass, IPV4_BASE, IPV6_BASE},
};

/// Read access to a frame's bytes. The one bounds check of the kernel programs lives behind it.
pub trait Frame {
    /// The `N` bytes at `offset`, or `None` if the frame is shorter than `offset + N`.
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;
}

impl Frame for [u8] {
    #[inline]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        self.get(offset..offset.checked_add(N)?)?.try_into().ok()
    }
}

/// Largest header offset the parser reads at. Keeps offsets provably bounded for the verifier.
pub const MAX_HEADER_OFFSET: usize = 0x3fff;
/// VLAN tags the parser follows (802.1Q and 802.1ad, `QinQ`).
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers the parser walks before it gives up on finding the L4 header.
pub const MAX_IPV6_EXT_HEADERS: usize = 6;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

/// What the classifier found in one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Protocol slot (see [`proto`](crate::proto)).
    pub proto_slot: u32,
    /// Whether `src` and `dst` hold the IP addresses (the frame is attributed to hosts).
    pub has_addrs: bool,
    /// Host counter class.
    pub l4: L4Class,
    /// Source address, IPv4-mapped for IPv4.
    pub src: [u8; 16],
    /// Destination address, IPv4-mapped for IPv4.
    pub dst: [u8; 16],
    /// L4 source port (TCP, UDP, SCTP) or ICMP type; 0 where there is none.
    pub src_port: u16,
    /// L4 destination port (TCP, UDP, SCTP) or ICMP code; 0 where there is none.
    pub dst_port: u16,
    /// Bytes of headers from the start of the frame through the L4 header, 0 where the L4
    /// header was not read. A GSO super-packet repeats these in every segment.
    pub header_len: u32,
    /// The first anomaly met, if any.
    pub error: Option<ErrorKind>,
}

impl Parsed {
    #[inline(always)]
    const fn non_ip(class: EtherClass, error: Option<ErrorKind>) -> Self {
        Self {
            proto_slot: class.slot(),
            has_addrs: false,
            l4: L4Class::Other,
            src: [0; 16],
            dst: [0; 16],
            src_port: 0,
            dst_port: 0,
            header_len: 0,
            error,
        }
    }
}

#[inline(always)]
const fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
fn get<F: Frame + ?Sized, const N: usize>(frame: &F, offset: usize) -> Option<[u8; N]> {
    if offset > MAX_HEADER_OFFSET {
        return None;
    }
    frame.bytes::<N>(offset)
}

#[inline(always)]
const fn is_vlan(ethertype: u16) -> bool {
    matches!(ethertype, 0x8100 | 0x88a8 | 0x9100)
}

/// IPv4-mapped IPv6 form of an IPv4 address.
#[inline(always)]
#[must_use]
pub const fn ipv4_mapped(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Classifies one frame.
#[inline(always)]
pub fn parse<F: Frame + ?Sized>(frame: &F) -> Parsed {
    let Some(eth) = get::<F, 14>(frame, 0) else {
        return Parsed::non_ip(EtherClass::MalformedL2, Some(ErrorKind::TruncatedEthernet));
    };
    let mut ethertype = be16([eth[12], eth[13]]);
    let mut offset = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if !is_vlan(ethertype) {
            break;
        }
        let Some(tag) = get::<F, 4>(frame, offset) else {
            return Parsed::non_ip(EtherClass::MalformedL2, Some(ErrorKind::TruncatedVlan));
        };
        ethertype = be16([tag[2], tag[3]]);
        offset += 4;
    }
    match ethertype {
        ETH_P_IP => parse_ipv4(frame, offset),
        ETH_P_IPV6 => parse_ipv6(frame, offset),
        t if is_vlan(t) => Parsed::non_ip(EtherClass::VlanDeep, Some(ErrorKind::VlanDepth)),
        t => Parsed::non_ip(EtherClass::of(t), None),
    }
}

#[inline(always)]
fn parse_ipv4<F: Frame + ?Sized>(frame: &F, offset: usize) -> Parsed {
    let Some(h) = get::<F, 20>(frame, offset) else {
        return Parsed::non_ip(EtherClass::MalformedIpv4, Some(ErrorKind::TruncatedIpv4));
    };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < 20 {
        return Parsed::non_ip(EtherClass::MalformedIpv4, Some(ErrorKind::BadIpv4Header));
    }
    // Options: the header must be there in full.
    if get::<F, 1>(frame, offset + ihl - 1).is_none() {
        return Parsed::non_ip(EtherClass::MalformedIpv4, Some(ErrorKind::TruncatedIpv4));
    }
    let proto = h[9];
    let mut p = Parsed {
        proto_slot: IPV4_BASE + u32::from(proto),
        has_addrs: true,
        l4: L4Class::of(proto),
        src: ipv4_mapped([h[12], h[13], h[14], h[15]]),
        dst: ipv4_mapped([h[16], h[17], h[18], h[19]]),
        src_port: 0,
        dst_port: 0,
        header_len: 0,
        error: None,
    };
    let fragment_offset = be16([h[6], h[7]]) & 0x1fff;
    if fragment_offset == 0 {
        parse_l4(frame, offset + ihl, proto, &mut p);
    }
    p
}

#[inline(always)]
fn parse_ipv6<F: Frame + ?Sized>(frame: &F, offset: usize) -> Parsed {
    let Some(h) = get::<F, 40>(frame, offset) else {
        return Parsed::non_ip(EtherClass::MalformedIpv6, Some(ErrorKind::TruncatedIpv6));
    };
    if h[0] >> 4 != 6 {
        return Parsed::non_ip(EtherClass::MalformedIpv6, Some(ErrorKind::BadIpv6Header));
    }
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let mut p = Parsed {
        proto_slot: 0,
        has_addrs: true,
        l4: L4Class::Other,
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        header_len: 0,
        error: None,
    };
    let mut next = h[6];
    let mut offset = offset + 40;
    let mut reached_l4 = false;
    let mut first_fragment = true;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8.
            0 | 43 | 60 | 135 | 139 | 140 => {
                let Some(ext) = get::<F, 2>(frame, offset) else {
                    p.error = Some(ErrorKind::TruncatedIpv6);
                    break;
                };
                next = ext[0];
                offset += (usize::from(ext[1]) + 1) * 8;
            }
            // Fragment header: fixed 8 bytes; only the first fragment carries the L4 header.
            44 => {
                let Some(ext) = get::<F, 8>(frame, offset) else {
                    p.error = Some(ErrorKind::TruncatedIpv6);
                    break;
                };
                next = ext[0];
                offset += 8;
                if be16([ext[2], ext[3]]) >> 3 != 0 {
                    first_fragment = false;
                    reached_l4 = true;
                    break;
                }
            }
            // Authentication header: (len + 2) * 4.
            51 => {
                let Some(ext) = get::<F, 2>(frame, offset) else {
                    p.error = Some(ErrorKind::TruncatedIpv6);
                    break;
                };
                next = ext[0];
                offset += (usize::from(ext[1]) + 2) * 4;
            }
            _ => {
                reached_l4 = true;
                break;
            }
        }
    }
    if !reached_l4 && p.error.is_none() {
        // Still on an extension header after the walk: leave it as the protocol.
        p.error = Some(ErrorKind::Ipv6ExtDepth);
    }
    p.proto_slot = IPV6_BASE + u32::from(next);
    if reached_l4 {
        p.l4 = L4Class::of(next);
        if first_fragment {
            parse_l4(frame, offset, next, &mut p);
        }
    }
    p
}

#[inline(always)]
fn parse_l4<F: Frame + ?Sized>(frame: &F, offset: usize, proto: u8, p: &mut Parsed) {
    let header_len = match proto {
        IPPROTO_TCP => {
            let Some(tcp) = get::<F, 20>(frame, offset) else {
                p.error = Some(ErrorKind::TruncatedL4);
                return;
            };
            p.src_port = be16([tcp[0], tcp[1]]);
            p.dst_port = be16([tcp[2], tcp[3]]);
            let data_offset = usize::from(tcp[12] >> 4) * 4;
            if data_offset < 20 || get::<F, 1>(frame, offset + data_offset - 1).is_none() {
                p.error = Some(ErrorKind::TruncatedL4);
                return;
            }
            data_offset
        }
        IPPROTO_UDP | IPPROTO_UDPLITE | IPPROTO_SCTP => {
            // UDP's 8-byte header; SCTP's common header is 12 bytes, ports first as well.
            let Some(h) = get::<F, 8>(frame, offset) else {
                p.error = Some(ErrorKind::TruncatedL4);
                return;
            };
            p.src_port = be16([h[0], h[1]]);
            p.dst_port = be16([h[2], h[3]]);
            if proto == IPPROTO_SCTP {
                if get::<F, 12>(frame, offset).is_none() {
                    p.error = Some(ErrorKind::TruncatedL4);
                    return;
                }
                12
            } else {
                8
            }
        }
        IPPROTO_ICMP | IPPROTO_ICMPV6 => {
            let Some(h) = get::<F, 4>(frame, offset) else {
                p.error = Some(ErrorKind::TruncatedL4);
                return;
            };
            p.src_port = u16::from(h[0]);
            p.dst_port = u16::from(h[1]);
            4
        }
        _ => return,
    };
    #[expect(
        clippy::cast_possible_truncation,
        reason = "offsets are below MAX_HEADER_OFFSET"
    )]
    {
        p.header_len = (offset + header_len) as u32;
    }
}

/// Wire bytes of a packet that carries `segments` wire packets (a GSO/GRO super-packet when
/// `segments > 1`) and whose buffer holds `len` bytes with `header_len` bytes of headers: the
/// headers repeat in every segment but the first is already in `len`.
#[inline(always)]
#[must_use]
pub const fn segmented_wire_len(len: u64, segments: u64, header_len: u64) -> u64 {
    if segments > 1 {
        len + (segments - 1) * header_len
    } else {
        len
    }
}

#[cfg(test)]
mod tests;
