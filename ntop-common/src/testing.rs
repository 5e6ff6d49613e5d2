//! Frame builders for tests: hand-made Ethernet, VLAN, IPv4, IPv6, TCP and UDP headers.
//!
//! Used by this crate's classifier tests and by the kernel-program tests (`BPF_PROG_TEST_RUN`),
//! so both feed the programs the same frames. Lengths are exactly what the arguments say: 14
//! bytes of Ethernet, 4 per VLAN tag, 20 + options of IPv4, 40 of IPv6, 20 + options of TCP,
//! 8 + payload of UDP.
extern crate alloc;
use alloc::{vec, vec::Vec};

/// Source and destination MAC addresses of every built frame.
pub const MAC: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
/// IPv4 source of [`ipv4`] frames.
pub const IPV4_SRC: [u8; 4] = [198, 18, 0, 1];
/// IPv4 destination of [`ipv4`] frames.
pub const IPV4_DST: [u8; 4] = [198, 19, 0, 2];
/// IPv6 source of [`ipv6`] frames.
pub const IPV6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// IPv6 destination of [`ipv6`] frames.
pub const IPV6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Ethernet header with `vlans` as `(TPID, TCI)` tags, then `ethertype`.
#[must_use]
pub fn eth(ethertype: u16, vlans: &[(u16, u16)]) -> Vec<u8> {
    let mut f = MAC.to_vec();
    for &(tpid, vid) in vlans {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header (`options` bytes of NOPs, flags/fragment word `frag`) from [`IPV4_SRC`] to
/// [`IPV4_DST`], followed by `payload`.
///
/// # Panics
/// If the lengths do not fit the header fields.
#[must_use]
pub fn ipv4(proto: u8, options: usize, frag: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_between(IPV4_SRC, IPV4_DST, proto, options, frag, payload)
}

/// Like [`ipv4`] with the given addresses.
///
/// # Panics
/// If the lengths do not fit the header fields.
#[must_use]
pub fn ipv4_between(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: usize,
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options;
    let mut h = vec![0x40 | u8::try_from(ihl / 4).expect("IHL fits"), 0];
    h.extend_from_slice(
        &u16::try_from(ihl + payload.len())
            .expect("length fits")
            .to_be_bytes(),
    );
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend(core::iter::repeat_n(1u8, options));
    h.extend_from_slice(payload);
    h
}

/// IPv6 header from [`IPV6_SRC`] to [`IPV6_DST`] with first next header `next`, then the raw
/// extension headers `ext`, then `payload`.
///
/// # Panics
/// If the lengths do not fit the header fields.
#[must_use]
pub fn ipv6(next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(
        &u16::try_from(ext.len() + payload.len())
            .expect("length fits")
            .to_be_bytes(),
    );
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&IPV6_SRC);
    h.extend_from_slice(&IPV6_DST);
    h.extend_from_slice(ext);
    h.extend_from_slice(payload);
    h
}

/// TCP header with `options` bytes of NOPs and no payload.
///
/// # Panics
/// If `options` is not a multiple of 4 up to 40.
#[must_use]
pub fn tcp(sport: u16, dport: u16, options: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0; 8]);
    t.push(u8::try_from((20 + options) / 4).expect("data offset fits") << 4);
    t.extend_from_slice(&[0x10, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend(core::iter::repeat_n(1u8, options));
    t
}

/// UDP header and `payload` bytes of 0xab.
///
/// # Panics
/// If the length does not fit the header field.
#[must_use]
pub fn udp(sport: u16, dport: u16, payload: usize) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(
        &u16::try_from(8 + payload)
            .expect("length fits")
            .to_be_bytes(),
    );
    u.extend_from_slice(&[0, 0]);
    u.extend(core::iter::repeat_n(0xabu8, payload));
    u
}

/// The parts, concatenated.
#[must_use]
pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
