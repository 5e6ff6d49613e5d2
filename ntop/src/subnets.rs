//! Local subnets, as classic ntop's `-m` takes them: which hosts are "local" (exported per host
//! in `/metrics`) and which are remote.
//!
//! Who runs it: `main` parses `-m` (or reads the monitored interfaces' addresses with
//! [`Subnets::from_interfaces`]) once at start-up; the `/metrics` handler calls
//! [`Subnets::contains`] for every known host at scrape time, so that is a linear scan over a
//! handful of masks, without allocation.
//!
//! Forms accepted by [`Subnets::parse`], comma-separated, spaces around items ignored:
//! - `ADDR/PREFIX`, IPv4 or IPv6: `198.18.0.0/15`, `2001:db8::/32`;
//! - `ADDR/MASK` with a dotted IPv4 netmask, as classic ntop took: `198.51.100.0/255.255.255.0`;
//! - a bare address, one host: `198.18.0.7` (`/32`), `2001:db8::7` (`/128`).
//!
//! Host bits in `ADDR` are ignored (`198.18.0.1/24` is `198.18.0.0/24`, as an interface's
//! address and prefix name its subnet). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4:
//! `contains` matches them against the IPv4 subnets, and an IPv6 subnet inside `::ffff:0:0/96`
//! is stored as the IPv4 subnet it maps.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// An example of a valid `-m` value, for error messages.
const EXAMPLE: &str = "198.18.0.0/15,2001:db8::/32 or 198.51.100.0/255.255.255.0";

/// One subnet: a network address (host bits zero) and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The subnet of `addr` with `prefix` bits (host bits cleared); IPv4-mapped IPv6 subnets
    /// of at least 96 bits become IPv4. `None` if `prefix` is too long for the family.
    #[must_use]
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Self> {
        match addr {
            IpAddr::V4(v4) => (prefix <= 32).then(|| Self {
                network: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask4(prefix))),
                prefix,
            }),
            IpAddr::V6(v6) => {
                if prefix > 128 {
                    return None;
                }
                match v6.to_ipv4_mapped() {
                    Some(v4) if prefix >= 96 => Self::new(IpAddr::V4(v4), prefix - 96),
                    _ => Some(Self {
                        network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask6(prefix))),
                        prefix,
                    }),
                }
            }
        }
    }

    /// The network address (host bits zero).
    #[must_use]
    pub const fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    #[must_use]
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this subnet (an IPv4-mapped IPv6 address counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask6(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A set of local subnets. The default is empty: no host is local.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subnets {
    /// Sorted, without duplicates.
    list: Vec<Subnet>,
}

/// Why a `-m` value or the interfaces' addresses gave no subnets.
#[derive(Debug, thiserror::Error)]
pub enum SubnetError {
    /// One item of the list is not a subnet.
    #[error(
        "local subnet `{item}` {problem}; give ADDR/PREFIX or ADDR/MASK items separated by \
         commas, e.g. {EXAMPLE}"
    )]
    Invalid {
        /// The item as given.
        item: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The list has no items at all.
    #[error(
        "the list of local subnets is empty; give ADDR/PREFIX items separated by commas, e.g. {EXAMPLE}"
    )]
    Empty,
    /// `getifaddrs` failed.
    #[error("reading the addresses of the monitored interfaces: {0}")]
    Interfaces(#[source] std::io::Error),
}

impl Subnets {
    /// Parses a `-m` value: comma-separated `ADDR/PREFIX`, `ADDR/MASK` (IPv4) or bare
    /// addresses (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`SubnetError::Invalid`] naming the first bad item (an empty item included), or
    /// [`SubnetError::Empty`] for an empty or blank value.
    pub fn parse(s: &str) -> Result<Self, SubnetError> {
        if s.trim().is_empty() {
            return Err(SubnetError::Empty);
        }
        let list = s
            .split(',')
            .map(|item| {
                parse_item(item.trim()).map_err(|problem| SubnetError::Invalid {
                    item: item.trim().to_owned(),
                    problem,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_list(list))
    }

    /// The subnets configured on the interfaces called `names` (each address with its prefix
    /// length, link-local IPv6 included), read with `getifaddrs(3)`: without `-m`, these are
    /// the local hosts. Names with no addresses (or no such interface) add nothing; the result
    /// may be empty.
    ///
    /// # Errors
    ///
    /// [`SubnetError::Interfaces`] if `getifaddrs` fails.
    pub fn from_interfaces(names: &[String]) -> Result<Self, SubnetError> {
        let list = interface_subnets()
            .map_err(SubnetError::Interfaces)?
            .into_iter()
            .filter(|(name, _)| names.iter().any(|n| n == name))
            .map(|(_, subnet)| subnet)
            .collect();
        Ok(Self::from_list(list))
    }

    /// A set of these subnets (sorted, duplicates removed).
    #[must_use]
    pub fn from_list(mut list: Vec<Subnet>) -> Self {
        list.sort_unstable();
        list.dedup();
        Self { list }
    }

    /// Whether `ip` is in any of the subnets (an IPv4-mapped IPv6 address counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.list.iter().any(|s| s.contains(ip))
    }

    /// Whether there are no subnets (no host is local).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The subnets, sorted (IPv4 first).
    #[must_use]
    pub fn as_slice(&self) -> &[Subnet] {
        &self.list
    }
}

/// Comma-separated, in the form [`Subnets::parse`] reads back; `none` when empty.
impl fmt::Display for Subnets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.list.is_empty() {
            return f.write_str("none");
        }
        for (i, s) in self.list.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Subnets {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One item; the error says what is wrong with it (the caller names the item).
fn parse_item(item: &str) -> Result<Subnet, String> {
    if item.is_empty() {
        return Err("is empty (two commas in a row, or one at an end)".to_owned());
    }
    let (addr, len) = match item.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (item, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("does not start with an IP address (`{addr}`)"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match len {
        None => max,
        Some(len) if addr.is_ipv4() && len.contains('.') => {
            let mask: Ipv4Addr = len
                .parse()
                .map_err(|_| format!("has a netmask `{len}` that is not a dotted IPv4 mask"))?;
            let bits = u32::from(mask);
            let prefix = bits.leading_ones();
            if bits != mask4(u8::try_from(prefix).unwrap_or(32)) {
                return Err(format!(
                    "has a netmask `{len}` whose one-bits are not contiguous (such as \
                     255.255.255.0)"
                ));
            }
            u8::try_from(prefix).unwrap_or(32)
        }
        Some(len) => match len.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => {
                return Err(format!(
                    "has a prefix length `{len}` that is not a number from 0 to {max}"
                ));
            }
        },
    };
    Subnet::new(addr, prefix).ok_or_else(|| format!("has a prefix longer than {max} bits"))
}

/// The IPv4 mask of `prefix` (≤ 32) bits.
fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// The IPv6 mask of `prefix` (≤ 128) bits.
fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Every interface address with its prefix, by interface name, from `getifaddrs(3)`.
fn interface_subnets() -> std::io::Result<Vec<(String, Subnet)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head` or fails without touching it.
    if unsafe { libc::getifaddrs(&raw mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is an element of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: ifa_addr and ifa_netmask, where not null, point at socket addresses of the
        // family in their sa_family field, owned by the list.
        let subnet = unsafe { sockaddr_subnet(ifa.ifa_addr, ifa.ifa_netmask) };
        if let Some(subnet) = subnet {
            out.push((name, subnet));
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once, after the last use of the list.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The subnet of an interface address and its netmask (a host route if the mask is missing);
/// `None` for families other than IPv4 and IPv6.
///
/// # Safety
///
/// `addr` must point at a valid socket address; `mask`, unless null, at one of the same family.
unsafe fn sockaddr_subnet(
    addr: *const libc::sockaddr,
    mask: *const libc::sockaddr,
) -> Option<Subnet> {
    // SAFETY: the caller guarantees `addr` is valid; every sockaddr starts with sa_family.
    match i32::from(unsafe { (*addr).sa_family }) {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in (read unaligned: it is only
            // guaranteed to be aligned as a sockaddr).
            let ip = unsafe { addr.cast::<libc::sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(u32::from_be(ip.sin_addr.s_addr));
            let prefix = if mask.is_null() {
                32
            } else {
                // SAFETY: as above, the mask has the address's family.
                let m = unsafe { mask.cast::<libc::sockaddr_in>().read_unaligned() };
                u32::from_be(m.sin_addr.s_addr).leading_ones()
            };
            Subnet::new(IpAddr::V4(ip), u8::try_from(prefix).ok()?)
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let ip = unsafe { addr.cast::<libc::sockaddr_in6>().read_unaligned() };
            let ip = Ipv6Addr::from(ip.sin6_addr.s6_addr);
            let prefix = if mask.is_null() {
                128
            } else {
                // SAFETY: as above.
                let m = unsafe { mask.cast::<libc::sockaddr_in6>().read_unaligned() };
                u128::from_be_bytes(m.sin6_addr.s6_addr).leading_ones()
            };
            Subnet::new(IpAddr::V6(ip), u8::try_from(prefix).ok()?)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn err(s: &str) -> String {
        Subnets::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn prefixes_masks_and_bare_addresses() {
        let s =
            Subnets::parse("198.18.0.0/15, 2001:db8::/32,198.51.100.0/255.255.255.0,203.0.113.7")
                .unwrap();
        assert_eq!(
            s.to_string(),
            "198.18.0.0/15,198.51.100.0/24,203.0.113.7/32,2001:db8::/32"
        );
        for inside in [
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.200",
            "203.0.113.7",
            "2001:db8::1",
            "2001:db8:ffff::1",
        ] {
            assert!(s.contains(ip(inside)), "{inside}");
        }
        for outside in [
            "198.17.255.255",
            "198.20.0.0",
            "198.51.101.1",
            "203.0.113.8",
            "2001:db9::1",
            "::1",
        ] {
            assert!(!s.contains(ip(outside)), "{outside}");
        }
        // The round trip through Display.
        assert_eq!(Subnets::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn host_bits_are_ignored_and_duplicates_merged() {
        let s = Subnets::parse("198.18.0.77/24,198.18.0.0/24,2001:db8::1/64").unwrap();
        assert_eq!(s.to_string(), "198.18.0.0/24,2001:db8::/64");
    }

    #[test]
    fn edge_prefixes() {
        let all = Subnets::parse("0.0.0.0/0,::/0").unwrap();
        assert!(all.contains(ip("255.255.255.255")));
        assert!(all.contains(ip("ffff::1")));
        let one = Subnets::parse("198.18.0.1/32,2001:db8::1/128").unwrap();
        assert!(one.contains(ip("198.18.0.1")) && !one.contains(ip("198.18.0.2")));
        assert!(one.contains(ip("2001:db8::1")) && !one.contains(ip("2001:db8::2")));
        assert_eq!(
            Subnets::parse("198.18.0.0/0.0.0.0").unwrap().to_string(),
            "0.0.0.0/0"
        );
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let v4 = Subnets::parse("198.18.0.0/15").unwrap();
        assert!(v4.contains(ip("::ffff:198.18.0.1")));
        assert!(!v4.contains(ip("::ffff:198.20.0.1")));
        // IPv4-compatible (deprecated) addresses are not mapped ones.
        assert!(!v4.contains(ip("::198.18.0.1")));
        // A mapped subnet is stored as IPv4 and matches both forms.
        let mapped = Subnets::parse("::ffff:198.18.0.0/111").unwrap();
        assert_eq!(mapped.to_string(), "198.18.0.0/15");
        assert!(mapped.contains(ip("198.19.1.1")));
        assert!(mapped.contains(ip("::ffff:198.19.1.1")));
        // IPv6 subnets never match IPv4 addresses.
        let v6 = Subnets::parse("::/0").unwrap();
        assert!(!v6.contains(ip("198.18.0.1")));
        assert!(!v6.contains(ip("::ffff:198.18.0.1")));
    }

    #[test]
    fn bad_items_are_named_with_an_example() {
        let e = err("198.18.0.0/15,198.19.0.0/33");
        assert!(e.contains("`198.19.0.0/33`"), "{e}");
        assert!(e.contains("0 to 32"), "{e}");
        assert!(e.contains("e.g. 198.18.0.0/15,2001:db8::/32"), "{e}");
        let e = err("2001:db8::/129");
        assert!(
            e.contains("`2001:db8::/129`") && e.contains("0 to 128"),
            "{e}"
        );
        let e = err("lan");
        assert!(e.contains("`lan`") && e.contains("IP address"), "{e}");
        let e = err("198.18.0.0/255.0.255.0");
        assert!(e.contains("not contiguous"), "{e}");
        let e = err("198.18.0.0/255.255.255.256");
        assert!(e.contains("dotted IPv4 mask"), "{e}");
        let e = err("2001:db8::/ffff::");
        assert!(
            e.contains("`2001:db8::/ffff::`") && e.contains("prefix length"),
            "{e}"
        );
        let e = err("198.18.0.0/");
        assert!(e.contains("prefix length ``"), "{e}");
        let e = err("198.18.0.0/-1");
        assert!(e.contains("`-1`"), "{e}");
        let e = err("198.18.0.0/15,,198.19.0.0/16");
        assert!(e.contains("``") && e.contains("empty"), "{e}");
        let e = err("198.18.0.0/15,");
        assert!(e.contains("empty"), "{e}");
        assert!(matches!(Subnets::parse(" "), Err(SubnetError::Empty)));
        assert!(err("").contains("e.g."));
    }

    #[test]
    fn loopback_from_getifaddrs() {
        // Every network namespace has `lo` with 127.0.0.1/8 (when it is up; the test machine's
        // is). No root needed.
        let s = Subnets::from_interfaces(&["lo".to_owned()]).unwrap();
        assert!(s.contains(ip("127.0.0.1")), "{s}");
        assert!(s.contains(ip("127.255.0.1")), "{s}");
        assert!(!s.contains(ip("198.18.0.1")), "{s}");
        let none = Subnets::from_interfaces(&["no-such-if0".to_owned()]).unwrap();
        assert!(none.is_empty());
        assert_eq!(none.to_string(), "none");
    }
}
