//! veth pairs between two test namespaces, configured so that only test traffic crosses them.
//!
//! How the link is kept quiet (namespace defaults from [`Netns::new`], repeated per device here):
//! - `accept_ra=0`, `router_solicitations=0`: no router solicitations.
//! - `addr_gen_mode=1`: no link-local address, so no DAD for it and no MLD for its
//!   solicited-node group; the test addresses are added with `nodad`.
//! - Permanent neighbour entries for the peer's addresses: no ARP, no neighbour discovery
//!   (unless [`VethConfig::static_neighbors`] is off).
//! - IPv4 sends nothing by itself (no IGMP for 224.0.0.1, `arp_notify` is off).
//!
//! Still sent: each end's IPv6 address makes it join that address's solicited-node group, so
//! each end sends two `MLDv1` reports (`force_mld_version=1`; the second 1 ms after the first)
//! when the link comes up (there is no sysctl that turns MLD off). [`VethPair::new`] returns
//! only once both ends are operationally up and those reports are out (`/proc/net/igmp6` shows
//! each solicited-node group reported, with no timer left), so the link is quiet from then on:
//! with no querier on the link, `MLDv1` sends nothing more. With `ipv6: None` IPv6 is disabled
//! on the devices and nothing at all is sent. Anything a test adds later (an address, a
//! multicast join, a neighbour without a permanent entry) sends its own packets.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::{Netns, wait_until};

/// How to build a [`VethPair`]. Addresses are in `198.18.0.0/15` and `2001:db8::/32`.
#[derive(Clone, Debug)]
pub struct VethConfig {
    /// Device name in namespace A (at most 15 bytes).
    pub dev_a: String,
    /// Device name in namespace B (at most 15 bytes).
    pub dev_b: String,
    /// Number of tx and rx queues of each end (veth's default is 1).
    pub queues: u16,
    /// MTU of both ends (veth's default is 1500).
    pub mtu: Option<u32>,
    /// IPv4 addresses of A and B and the prefix length, if any.
    pub ipv4: Option<(Ipv4Addr, Ipv4Addr, u8)>,
    /// IPv6 addresses of A and B and the prefix length; `None` disables IPv6 on both devices.
    pub ipv6: Option<(Ipv6Addr, Ipv6Addr, u8)>,
    /// Permanent neighbour entries for the peer's addresses, so no ARP or ND crosses the link.
    pub static_neighbors: bool,
}

impl Default for VethConfig {
    /// `veth-a` `198.18.0.1/24` `2001:db8::1/64` — `veth-b` `198.18.0.2/24` `2001:db8::2/64`, one
    /// queue, MTU 1500, static neighbours.
    fn default() -> Self {
        Self {
            dev_a: "veth-a".into(),
            dev_b: "veth-b".into(),
            queues: 1,
            mtu: None,
            ipv4: Some((
                Ipv4Addr::new(198, 18, 0, 1),
                Ipv4Addr::new(198, 18, 0, 2),
                24,
            )),
            ipv6: Some((
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
                64,
            )),
            static_neighbors: true,
        }
    }
}

impl VethConfig {
    /// Sets the number of tx and rx queues of each end.
    #[must_use]
    pub fn queues(mut self, queues: u16) -> Self {
        self.queues = queues;
        self
    }

    /// Sets the MTU of both ends.
    #[must_use]
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Without IPv6 (disabled on both devices).
    #[must_use]
    pub fn without_ipv6(mut self) -> Self {
        self.ipv6 = None;
        self
    }

    /// Without permanent neighbour entries: ARP and neighbour discovery cross the link.
    #[must_use]
    pub fn dynamic_neighbors(mut self) -> Self {
        self.static_neighbors = false;
        self
    }
}

/// A configured, up veth pair: `dev_a` in namespace A, `dev_b` in namespace B. It goes away
/// with its namespaces.
#[derive(Clone, Debug)]
pub struct VethPair {
    /// Device in namespace A.
    pub dev_a: String,
    /// Device in namespace B.
    pub dev_b: String,
    /// MAC address of `dev_a`.
    pub mac_a: String,
    /// MAC address of `dev_b`.
    pub mac_b: String,
    /// IPv4 address of `dev_a` (unspecified when the config has none).
    pub ipv4_a: Ipv4Addr,
    /// IPv4 address of `dev_b` (unspecified when the config has none).
    pub ipv4_b: Ipv4Addr,
    /// IPv6 address of `dev_a` (unspecified when the config has none).
    pub ipv6_a: Ipv6Addr,
    /// IPv6 address of `dev_b` (unspecified when the config has none).
    pub ipv6_b: Ipv6Addr,
}

impl VethPair {
    /// Creates the pair inside the namespaces (nothing in the root namespace), configures it,
    /// brings it up and waits until the kernel's own start-up packets are out (see the module
    /// documentation).
    #[track_caller]
    #[must_use]
    pub fn new(a: &Netns, b: &Netns, config: &VethConfig) -> Self {
        let (dev_a, dev_b) = (config.dev_a.as_str(), config.dev_b.as_str());
        let mut link_opts = Vec::new();
        if config.queues != 1 {
            let q = config.queues.to_string();
            link_opts.extend([
                "numtxqueues".to_owned(),
                q.clone(),
                "numrxqueues".to_owned(),
                q,
            ]);
        }
        if let Some(mtu) = config.mtu {
            link_opts.extend(["mtu".to_owned(), mtu.to_string()]);
        }
        let mut add = vec!["link", "add", dev_a];
        add.extend(link_opts.iter().map(String::as_str));
        add.extend(["type", "veth", "peer", "name", dev_b, "netns", b.name()]);
        add.extend(link_opts.iter().map(String::as_str));
        a.ip(&add);

        let mac_a = mac(a, dev_a);
        let mac_b = mac(b, dev_b);
        let (ipv4_a, ipv4_b) = config.ipv4.map_or(
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            |(x, y, _)| (x, y),
        );
        let (ipv6_a, ipv6_b) = config.ipv6.map_or(
            (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED),
            |(x, y, _)| (x, y),
        );
        let v4_len = config.ipv4.map(|(_, _, len)| len);
        let v6_len = config.ipv6.map(|(_, _, len)| len);
        let addrs = |v4: Ipv4Addr, v6: Ipv6Addr| -> Vec<(IpAddr, u8)> {
            let mut list = Vec::new();
            list.extend(v4_len.map(|len| (IpAddr::V4(v4), len)));
            list.extend(v6_len.map(|len| (IpAddr::V6(v6), len)));
            list
        };
        let end_a = End {
            ns: a,
            dev: dev_a,
            addrs: addrs(ipv4_a, ipv6_a),
        };
        let end_b = End {
            ns: b,
            dev: dev_b,
            addrs: addrs(ipv4_b, ipv6_b),
        };
        end_a.configure(config, &end_b.addrs, &mac_b);
        end_b.configure(config, &end_a.addrs, &mac_a);
        b.ip(["link", "set", dev_b, "up"]);
        a.ip(["link", "set", dev_a, "up"]);
        end_a.wait_ready(config.ipv6.is_some());
        end_b.wait_ready(config.ipv6.is_some());
        Self {
            dev_a: dev_a.to_owned(),
            dev_b: dev_b.to_owned(),
            mac_a,
            mac_b,
            ipv4_a,
            ipv4_b,
            ipv6_a,
            ipv6_b,
        }
    }
}

/// One end of a pair while it is being set up.
struct End<'a> {
    ns: &'a Netns,
    dev: &'a str,
    addrs: Vec<(IpAddr, u8)>,
}

impl End<'_> {
    /// Quiet sysctls, addresses, and permanent neighbours for the peer's addresses.
    #[track_caller]
    fn configure(&self, config: &VethConfig, peer_addrs: &[(IpAddr, u8)], peer_mac: &str) {
        let (ns, dev) = (self.ns, self.dev);
        let key = |k: &str| format!("net.ipv6.conf.{dev}.{k}");
        let disable = if config.ipv6.is_some() { "0" } else { "1" };
        let settings = [
            (key("disable_ipv6"), disable),
            (key("accept_ra"), "0"),
            (key("router_solicitations"), "0"),
            (key("accept_dad"), "0"),
            (key("addr_gen_mode"), "1"),
            (key("mldv1_unsolicited_report_interval"), "1"),
            (key("mldv2_unsolicited_report_interval"), "1"),
        ];
        let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        ns.sysctl(&settings);
        for (addr, len) in &self.addrs {
            let own = format!("{addr}/{len}");
            let mut args = vec!["addr", "add", own.as_str(), "dev", dev];
            if addr.is_ipv6() {
                args.push("nodad");
            }
            ns.ip(&args);
        }
        if config.static_neighbors {
            for (peer, _) in peer_addrs {
                let peer = peer.to_string();
                ns.ip([
                    "neigh",
                    "replace",
                    &peer,
                    "lladdr",
                    peer_mac,
                    "dev",
                    dev,
                    "nud",
                    "permanent",
                ]);
            }
        }
    }

    /// Waits until the link is operationally up and, with IPv6, its MLD reports are out.
    #[track_caller]
    fn wait_ready(&self, ipv6: bool) {
        let (ns, dev) = (self.ns, self.dev);
        let up = wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
            (operstate(ns, dev) == "UP").then_some(())
        });
        assert!(up.is_some(), "{dev} in {} is not UP after 5 s", ns.name());
        if ipv6 {
            let settled = wait_until(Duration::from_secs(5), Duration::from_millis(2), || {
                mld_settled(&ns.proc_net("igmp6"), dev).then_some(())
            });
            assert!(
                settled.is_some(),
                "MLD reports of {dev} in {} not sent within 5 s (two ends whose addresses share a \
                 solicited-node group never settle):\n{}",
                ns.name(),
                ns.proc_net("igmp6")
            );
        }
    }
}

/// Whether `/proc/net/igmp6` shows every solicited-node group (`ff02::1:ffXX:XXXX`) of `dev`
/// reported (`MAF_LAST_REPORTER` = 2 in the flags column) with no report timer left
/// (`MAF_TIMER_RUNNING` = 1), and at least one such group.
fn mld_settled(igmp6: &str, dev: &str) -> bool {
    let mut groups = 0;
    for line in igmp6.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && f[1] == dev && f[2].starts_with("ff0200000000000000000001ff") {
            groups += 1;
            let flags = u32::from_str_radix(f[4], 16).unwrap_or(1);
            if flags & 1 != 0 || flags & 2 == 0 {
                return false;
            }
        }
    }
    groups > 0
}

/// The operational state of `dev` in `ns` (`UP` once the kernel's link watch has seen the
/// carrier).
#[track_caller]
fn operstate(ns: &Netns, dev: &str) -> String {
    link_json(ns, dev)["operstate"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[track_caller]
fn link_json(ns: &Netns, dev: &str) -> serde_json::Value {
    let json = ns.ip(["-j", "link", "show", "dev", dev]);
    let mut v: serde_json::Value = serde_json::from_str(&json).expect("`ip -j link` JSON");
    v[0].take()
}

/// The MAC address of `dev` in `ns`.
#[track_caller]
fn mac(ns: &Netns, dev: &str) -> String {
    link_json(ns, dev)["address"]
        .as_str()
        .expect("a link address in `ip -j link`")
        .to_owned()
}

/// Turns receive offload (GRO) and segmentation offloads (TSO and GSO) on or off with ethtool.
#[track_caller]
pub fn set_offloads(ns: &Netns, dev: &str, gro: bool, tso_gso: bool) {
    let on = |b: bool| if b { "on" } else { "off" };
    ns.run(
        "ethtool",
        [
            "-K",
            dev,
            "gro",
            on(gro),
            "tso",
            on(tso_gso),
            "gso",
            on(tso_gso),
        ],
    );
}

/// Two fresh namespaces joined by a [`VethPair`]; everything goes on drop.
#[derive(Debug)]
pub struct TestNet {
    /// The link; `link.dev_a` is in `a`, `link.dev_b` in `b`.
    pub link: VethPair,
    /// Namespace A.
    pub a: Netns,
    /// Namespace B.
    pub b: Netns,
}

impl TestNet {
    /// Creates both namespaces and the pair.
    #[track_caller]
    #[must_use]
    pub fn new(config: &VethConfig) -> Self {
        let a = Netns::new();
        let b = Netns::new();
        let link = VethPair::new(&a, &b, config);
        Self { link, a, b }
    }
}

#[cfg(test)]
mod tests {
    use super::mld_settled;

    #[test]
    fn mld_settled_reads_the_timer_flag() {
        let running = "2    veth-a          ff0200000000000000000001ff000001     1 00000005 12\n";
        let not_yet = "2    veth-a          ff0200000000000000000001ff000001     1 00000004 0\n";
        assert!(!mld_settled(not_yet, "veth-a"));
        let done = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n\
                    2    veth-a          ff0200000000000000000001ff000001     1 00000006 0\n\
                    2    veth-a          ff020000000000000000000000000001     1 0000000C 0\n";
        assert!(!mld_settled(running, "veth-a"));
        assert!(mld_settled(done, "veth-a"));
        assert!(!mld_settled(done, "veth-b"));
    }
}
