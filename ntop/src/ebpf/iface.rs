//! Network interfaces: names, indexes and the default-route interface. Runs at startup.

use std::{ffi::CString, fs, io};

/// The interface index of `name`, or `None` if there is no such interface.
#[must_use]
pub fn index_of(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (index != 0).then_some(index)
}

/// Names of the interfaces in this network namespace, sorted.
#[must_use]
pub fn available() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The interface of the IPv4 default route (`/proc/net/route`), else of the IPv6 one
/// (`/proc/net/ipv6_route`), preferring the route with the lowest metric.
///
/// # Errors
/// When neither file can be read.
pub fn default_route() -> io::Result<Option<String>> {
    let v4 = fs::read_to_string("/proc/net/route")?;
    if let Some(name) = default_route_v4(&v4) {
        return Ok(Some(name));
    }
    let v6 = fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    Ok(default_route_v6(&v6))
}

fn default_route_v4(table: &str) -> Option<String> {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask ...; RTF_UP = 0x1.
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(3)?, 16).ok()?;
            let metric: u32 = f.get(6)?.parse().ok()?;
            (f.get(1)? == &"00000000" && f.get(7)? == &"00000000" && flags & 1 == 1)
                .then(|| (metric, f[0].to_owned()))
        })
        .min()
        .map(|(_, name)| name)
}

fn default_route_v6(table: &str) -> Option<String> {
    // dest dest_len src src_len next_hop metric refcnt use flags iface.
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let metric = u32::from_str_radix(f.get(5)?, 16).ok()?;
            let iface = *f.get(9)?;
            (f[0].bytes().all(|b| b == b'0') && f.get(1)? == &"00" && iface != "lo")
                .then(|| (metric, iface.to_owned()))
        })
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_prefers_lowest_metric() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth1\t00000000\t0112A8C6\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
            eth0\t00000000\t0100A8C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
            eth0\t0012A8C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_route_v4(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_v4("Iface\tDestination\n"), None);
    }

    #[test]
    fn ipv6_default_route() {
        let table = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            20010db8000000000000000000000001 00000400 00000001 00000000 00000003 wan0\n\
            00000000000000000000000000000000 00 00000000000000000000000000000000 00 \
            00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo\n";
        assert_eq!(default_route_v6(table).as_deref(), Some("wan0"));
    }
}
