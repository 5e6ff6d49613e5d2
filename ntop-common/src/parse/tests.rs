//! Hand-built frames through the classifier. Offsets and lengths are worked out by hand in the
//! comments; none of them come from the parser.
extern crate std;
use std::{vec, vec::Vec};

use super::*;
use crate::{
    proto::{ETHER_BASE, PROTO_SLOTS},
    testing::{eth, frame, ipv4, ipv6, tcp, udp},
};

const V4_SRC: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1];
const V4_DST: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 19, 0, 2];

#[test]
fn ipv4_tcp() {
    let f = frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &tcp(40000, 80, 12))]);
    let p = parse(f.as_slice());
    assert_eq!(p.proto_slot, 6);
    assert_eq!(p.l4, L4Class::Tcp);
    assert!(p.has_addrs);
    assert_eq!((p.src, p.dst), (V4_SRC, V4_DST));
    assert_eq!((p.src_port, p.dst_port), (40000, 80));
    // 14 Ethernet + 20 IPv4 + 32 TCP with 12 bytes of options.
    assert_eq!(p.header_len, 66);
    assert_eq!(p.error, None);
}

#[test]
fn ipv4_options_and_qinq() {
    let f = frame(&[
        &eth(0x0800, &[(0x88a8, 100), (0x8100, 200)]),
        &ipv4(17, 8, 0, &udp(53, 5353, 10)),
    ]);
    let p = parse(f.as_slice());
    assert_eq!(p.proto_slot, 17);
    assert_eq!((p.src_port, p.dst_port), (53, 5353));
    // 14 + 2 tags × 4 + 28 IPv4 with options + 8 UDP.
    assert_eq!(p.header_len, 58);
    assert_eq!(p.error, None);
}

#[test]
fn three_vlan_tags_are_too_deep() {
    let f = frame(&[
        &eth(0x0800, &[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]),
        &ipv4(6, 0, 0, &tcp(1, 2, 0)),
    ]);
    let p = parse(f.as_slice());
    assert_eq!(p.proto_slot, ETHER_BASE + EtherClass::VlanDeep as u32);
    assert!(!p.has_addrs);
    assert_eq!(p.error, Some(ErrorKind::VlanDepth));
}

#[test]
fn ipv4_fragments() {
    // First fragment (MF set, offset 0): ports are read.
    let first = frame(&[
        &eth(0x0800, &[]),
        &ipv4(17, 0, 0x2000, &udp(1000, 2000, 100)),
    ]);
    let p = parse(first.as_slice());
    assert_eq!((p.proto_slot, p.src_port, p.dst_port), (17, 1000, 2000));
    // Non-first fragment (offset 185 × 8): its payload is not a UDP header.
    let rest = frame(&[&eth(0x0800, &[]), &ipv4(17, 0, 185, &[0xee; 64])]);
    let p = parse(rest.as_slice());
    assert_eq!(
        (p.proto_slot, p.l4, p.src_port, p.dst_port),
        (17, L4Class::Udp, 0, 0)
    );
    assert_eq!(p.header_len, 0);
    assert_eq!(p.error, None);
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-hop (8 bytes) → routing (24 bytes: len 2) → fragment (offset 0) → TCP.
    let mut ext = vec![43, 0, 0, 0, 0, 0, 0, 0];
    ext.extend_from_slice(&[44, 2]);
    ext.extend_from_slice(&[0; 22]);
    ext.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 7]);
    let f = frame(&[
        &eth(0x86dd, &[(0x8100, 7)]),
        &ipv6(0, &ext, &tcp(443, 50000, 0)),
    ]);
    let p = parse(f.as_slice());
    assert_eq!(p.proto_slot, 256 + 6);
    assert_eq!(p.l4, L4Class::Tcp);
    assert_eq!((p.src_port, p.dst_port), (443, 50000));
    // 18 + 40 + 8 + 24 + 8 + 20.
    assert_eq!(p.header_len, 118);
    assert_eq!(p.src[..4], [0x20, 0x01, 0x0d, 0xb8]);
}

#[test]
fn ipv6_non_first_fragment_and_ext_depth() {
    let frag = [17, 0, 0x05, 0xa8, 0, 0, 0, 9]; // offset 181 × 8
    let f = frame(&[&eth(0x86dd, &[]), &ipv6(44, &frag, &[0; 32])]);
    let p = parse(f.as_slice());
    assert_eq!(
        (p.proto_slot, p.l4, p.src_port),
        (256 + 17, L4Class::Udp, 0)
    );
    assert_eq!(p.error, None);

    // Seven destination-options headers: one more than the walk follows.
    let mut ext = Vec::new();
    for _ in 0..7 {
        ext.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
    }
    let f = frame(&[&eth(0x86dd, &[]), &ipv6(60, &ext, &[])]);
    let p = parse(f.as_slice());
    assert_eq!(p.proto_slot, 256 + 60);
    assert_eq!(p.l4, L4Class::Other);
    assert!(p.has_addrs);
    assert_eq!(p.error, Some(ErrorKind::Ipv6ExtDepth));
}

#[test]
fn icmpv6_and_sctp() {
    let f = frame(&[
        &eth(0x86dd, &[]),
        &ipv6(58, &[], &[128, 0, 0, 0, 0, 1, 0, 1]),
    ]);
    let p = parse(f.as_slice());
    assert_eq!(
        (p.proto_slot, p.l4, p.src_port),
        (256 + 58, L4Class::Icmpv6, 128)
    );
    let sctp = [0x0b, 0xb8, 0x0b, 0xb9, 0, 0, 0, 0, 0, 0, 0, 0];
    let f = frame(&[&eth(0x0800, &[]), &ipv4(132, 0, 0, &sctp)]);
    let p = parse(f.as_slice());
    assert_eq!(
        (p.proto_slot, p.l4, p.src_port, p.dst_port),
        (132, L4Class::Other, 3000, 3001)
    );
}

#[test]
fn truncated_frames_are_classified_not_lost() {
    let full = frame(&[&eth(0x0800, &[(0x8100, 5)]), &ipv4(6, 4, 0, &tcp(1, 2, 0))]);
    // Every prefix lands in exactly one valid slot.
    for cut in 0..full.len() {
        let p = parse(&full[..cut]);
        assert!(p.proto_slot < PROTO_SLOTS, "cut {cut}");
        let expected = match cut {
            0..14 => (
                EtherClass::MalformedL2.slot(),
                Some(ErrorKind::TruncatedEthernet),
            ),
            14..18 => (
                EtherClass::MalformedL2.slot(),
                Some(ErrorKind::TruncatedVlan),
            ),
            18..42 => (
                EtherClass::MalformedIpv4.slot(),
                Some(ErrorKind::TruncatedIpv4),
            ),
            _ => (6, Some(ErrorKind::TruncatedL4)),
        };
        assert_eq!((p.proto_slot, p.error), expected, "cut {cut}");
    }
    assert_eq!(parse(full.as_slice()).error, None);
}

#[test]
fn bad_ip_versions() {
    let mut f = frame(&[&eth(0x0800, &[]), &ipv4(6, 0, 0, &tcp(1, 2, 0))]);
    f[14] = 0x45 | 0x20; // version 6 in an IPv4 EtherType
    assert_eq!(parse(f.as_slice()).error, Some(ErrorKind::BadIpv4Header));
    f[14] = 0x44; // IHL 16 bytes
    assert_eq!(
        parse(f.as_slice()).proto_slot,
        EtherClass::MalformedIpv4.slot()
    );
    let mut f = frame(&[&eth(0x86dd, &[]), &ipv6(59, &[], &[])]);
    f[14] = 0x40;
    assert_eq!(parse(f.as_slice()).error, Some(ErrorKind::BadIpv6Header));
}

#[test]
fn non_ip_ethertypes() {
    for (t, class) in [
        (0x0806, EtherClass::Arp),
        (0x88cc, EtherClass::Lldp),
        (0x8847, EtherClass::Mpls),
        (0x0026, EtherClass::Llc),
        (0x1234, EtherClass::Other),
    ] {
        let f = frame(&[&eth(t, &[]), &[0; 46]]);
        let p = parse(f.as_slice());
        assert_eq!(p.proto_slot, class.slot());
        assert!(!p.has_addrs);
        assert_eq!(p.error, None);
    }
}

#[test]
fn gso_wire_length() {
    // 3 segments of a 14+20+20 header: 2 more copies of 54 bytes on the wire.
    assert_eq!(segmented_wire_len(54 + 3000, 3, 54), 54 * 3 + 3000);
    assert_eq!(segmented_wire_len(1514, 1, 54), 1514);
    assert_eq!(segmented_wire_len(1514, 0, 54), 1514);
}
