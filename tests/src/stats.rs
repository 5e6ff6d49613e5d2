//! Kernel counters as oracles: per-link counters (`ip -s -j link`) and a namespace's SNMP
//! counters under nstat's names (`/proc/net/snmp`, `netstat`, `snmp6`).
//!
//! On a veth the kernel counts whole Ethernet frames (without FCS), like tshark's `frame.len`;
//! the receiving end's rx counters are the sending end's tx counters, counted when it sends.
//! With a native XDP program attached, a veth's `rx_bytes` lack the 14-byte Ethernet header.
use std::collections::HashMap;

use crate::Netns;

/// A link's counters (`stats64` of `ip -s -j link show`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets dropped on sending.
    pub tx_dropped: u64,
}

impl LinkStats {
    /// The counts since `earlier` (which must come from the same link, before).
    #[track_caller]
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        let d = |now: u64, then: u64| {
            now.checked_sub(then).unwrap_or_else(|| {
                panic!("link counter went backwards ({then} -> {now}): not the same link?")
            })
        };
        Self {
            rx_bytes: d(self.rx_bytes, earlier.rx_bytes),
            rx_packets: d(self.rx_packets, earlier.rx_packets),
            rx_dropped: d(self.rx_dropped, earlier.rx_dropped),
            tx_bytes: d(self.tx_bytes, earlier.tx_bytes),
            tx_packets: d(self.tx_packets, earlier.tx_packets),
            tx_dropped: d(self.tx_dropped, earlier.tx_dropped),
        }
    }
}

/// The counters of `dev` in `ns`.
#[track_caller]
#[must_use]
pub fn link_stats(ns: &Netns, dev: &str) -> LinkStats {
    let json = ns.ip(["-s", "-j", "link", "show", "dev", dev]);
    parse_link_stats(&json).unwrap_or_else(|| panic!("no stats64 for {dev} in: {json}"))
}

fn parse_link_stats(json: &str) -> Option<LinkStats> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = &v.get(0)?["stats64"];
    let n = |dir: &str, k: &str| s[dir][k].as_u64();
    Some(LinkStats {
        rx_bytes: n("rx", "bytes")?,
        rx_packets: n("rx", "packets")?,
        rx_dropped: n("rx", "dropped")?,
        tx_bytes: n("tx", "bytes")?,
        tx_packets: n("tx", "packets")?,
        tx_dropped: n("tx", "dropped")?,
    })
}

/// The namespace's SNMP counters by nstat's names (`TcpOutSegs`, `UdpInDatagrams`,
/// `IcmpOutEchos`, `Ip6InReceives`, `TcpExtTCPTimeouts`…), absolute values. Counters that are
/// not unsigned (`TcpMaxConn` is -1) are left out.
#[track_caller]
#[must_use]
pub fn nstat(ns: &Netns) -> HashMap<String, u64> {
    let mut counters = HashMap::new();
    for file in ["snmp", "netstat"] {
        parse_snmp_table(&ns.proc_net(file), &mut counters);
    }
    parse_snmp6(&ns.proc_net("snmp6"), &mut counters);
    counters
}

/// `/proc/net/snmp` and `/proc/net/netstat`: pairs of lines `Tcp: Name…` / `Tcp: value…`.
fn parse_snmp_table(text: &str, out: &mut HashMap<String, u64>) {
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((prefix, names)), Some((prefix2, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if prefix != prefix2 {
            continue;
        }
        for (name, value) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(value) = value.parse() {
                out.insert(format!("{prefix}{name}"), value);
            }
        }
    }
}

/// `/proc/net/snmp6`: lines `Ip6InReceives  123`.
fn parse_snmp6(text: &str, out: &mut HashMap<String, u64>) {
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if let (Some(name), Some(Ok(value))) = (f.next(), f.next().map(str::parse)) {
            out.insert(name.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_stats() {
        let json = r#"[{"ifindex":2,"ifname":"veth-a","stats64":{"rx":{"bytes":3193,"packets":29,"errors":0,"dropped":1,"over_errors":0,"multicast":0},"tx":{"bytes":3000,"packets":20,"errors":0,"dropped":2,"carrier_errors":0,"collisions":0}}}]"#;
        let s = parse_link_stats(json).unwrap();
        assert_eq!(
            s,
            LinkStats {
                rx_bytes: 3193,
                rx_packets: 29,
                rx_dropped: 1,
                tx_bytes: 3000,
                tx_packets: 20,
                tx_dropped: 2
            }
        );
        let earlier = LinkStats { rx_packets: 9, ..s };
        assert_eq!(s.since(&earlier).rx_packets, 20);
        assert_eq!(s.since(&earlier).tx_bytes, 0);
    }

    #[test]
    fn parses_snmp_files() {
        let snmp = "Ip: Forwarding DefaultTTL\nIp: 2 64\nTcp: RtoAlgorithm MaxConn OutSegs\n\
                    Tcp: 1 -1 42\n";
        let snmp6 = "Ip6InReceives                   \t7\nIcmp6OutMsgs  3\n";
        let mut out = HashMap::new();
        parse_snmp_table(snmp, &mut out);
        parse_snmp6(snmp6, &mut out);
        assert_eq!(out["IpDefaultTTL"], 64);
        assert_eq!(out["TcpOutSegs"], 42);
        assert!(!out.contains_key("TcpMaxConn"));
        assert_eq!(out["Ip6InReceives"], 7);
        assert_eq!(out["Icmp6OutMsgs"], 3);
    }
}
