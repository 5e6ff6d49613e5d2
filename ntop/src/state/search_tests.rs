//! Unit tests of host search, local/remote scope, and the names and MACs of listed hosts, on
//! a hand-built state (expected rows worked out by hand in the comments).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{Arc, Mutex},
};

use ntop_common::counters::{L4Class, SENT};

use super::{HostMacs, HostNames, HostQuery, Scope, SortKey, State, tests::sample};
use crate::subnets::Subnets;

/// Names by address; records the addresses asked for that it does not know.
#[derive(Debug, Default)]
pub(crate) struct FakeNames {
    pub(crate) names: HashMap<IpAddr, Arc<str>>,
    pub(crate) asked: Mutex<Vec<IpAddr>>,
}

impl FakeNames {
    pub(crate) fn with(names: &[(&str, &str)]) -> Self {
        Self {
            names: names
                .iter()
                .map(|(ip, name)| (ip.parse().unwrap(), Arc::from(*name)))
                .collect(),
            asked: Mutex::default(),
        }
    }
}

impl HostNames for FakeNames {
    fn name(&self, ip: IpAddr) -> Option<Arc<str>> {
        let name = self.names.get(&ip).cloned();
        if name.is_none() {
            self.asked.lock().unwrap().push(ip);
        }
        name
    }

    fn matching(&self, needle: &str, out: &mut HashSet<IpAddr>) {
        out.extend(
            self.names
                .iter()
                .filter(|(_, name)| name.to_lowercase().contains(needle))
                .map(|(ip, _)| *ip),
        );
    }
}

#[derive(Debug, Default)]
struct FakeMacs(HashMap<(IpAddr, u32), [u8; 6]>);

impl HostMacs for FakeMacs {
    fn mac(&self, ip: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
        self.0.get(&(ip, ifindex)).copied()
    }
}

/// Six hosts, sent bytes all different so the default order (total bytes, descending) is the
/// order of this table. Local subnets: `198.18.0.0/15` and `2001:db8:1::/48`.
///
/// | host          | if | sent | local | name             | MAC (on if) |
/// |---------------|----|------|-------|------------------|-------------|
/// | 198.18.0.1    | 5  | 600  | yes   | gw.example.net   | 02:00:00:00:00:01 |
/// | 198.18.0.20   | 5  | 500  | yes   |                  |             |
/// | 192.0.2.7     | 5  | 400  | no    | Mail.Example.ORG |             |
/// | 2001:db8::7   | 7  | 300  | no    |                  |             |
/// | 2001:db8:1::a | 7  | 200  | yes   | printer.lan      | 02:00:00:00:00:0a (on 7; not on 5) |
/// | 203.0.113.18  | 7  | 100  | no    |                  |             |
fn six_hosts() -> (State, Arc<FakeNames>) {
    let mut s = State::new();
    s.ingest(
        &sample(0)
            .iface(5, "veth0")
            .iface(7, "veth1")
            .host("198.18.0.1", 5, SENT, L4Class::Tcp, 600, 1)
            .host("198.18.0.20", 5, SENT, L4Class::Tcp, 500, 1)
            .host("192.0.2.7", 5, SENT, L4Class::Tcp, 400, 1)
            .host("2001:db8::7", 7, SENT, L4Class::Tcp, 300, 1)
            .host("2001:db8:1::a", 7, SENT, L4Class::Tcp, 200, 1)
            .host("203.0.113.18", 7, SENT, L4Class::Tcp, 100, 1)
            .build(),
    );
    s.set_local(Subnets::parse("198.18.0.0/15,2001:db8:1::/48").unwrap());
    let names = Arc::new(FakeNames::with(&[
        ("198.18.0.1", "gw.example.net"),
        ("192.0.2.7", "Mail.Example.ORG"),
        ("2001:db8:1::a", "printer.lan"),
    ]));
    s.set_names(Some(names.clone()));
    let mut macs = FakeMacs::default();
    macs.0
        .insert(("198.18.0.1".parse().unwrap(), 5), [2, 0, 0, 0, 0, 1]);
    macs.0
        .insert(("2001:db8:1::a".parse().unwrap(), 7), [2, 0, 0, 0, 0, 0x0a]);
    macs.0
        .insert(("2001:db8:1::a".parse().unwrap(), 5), [2, 0, 0, 0, 0, 0x0b]);
    s.set_macs(Some(Arc::new(macs)));
    (s, names)
}

fn listed(s: &State, q: &HostQuery) -> (usize, Vec<String>) {
    let page = s.hosts(q);
    (
        page.total,
        page.hosts.iter().map(|h| h.ip.to_string()).collect(),
    )
}

fn query(search: Option<&str>, scope: Option<Scope>) -> HostQuery {
    HostQuery {
        search: search.map(str::to_owned),
        scope,
        ..HostQuery::default()
    }
}

#[test]
fn search_matches_addresses_and_names_ignoring_case() {
    let (s, _) = six_hosts();
    let cases: [(&str, &[&str]); 13] = [
        // Address substrings, in the displayed form.
        ("198.18", &["198.18.0.1", "198.18.0.20"]),
        ("18", &["198.18.0.1", "198.18.0.20", "203.0.113.18"]),
        (".20", &["198.18.0.20"]),
        ("db8", &["2001:db8::7", "2001:db8:1::a"]),
        ("DB8:1", &["2001:db8:1::a"]),
        ("::7", &["2001:db8::7"]),
        // IPv4 is shown as IPv4, never in its IPv4-mapped form.
        ("ffff", &[]),
        // Names: "example" in gw.example.net and Mail.Example.ORG (case ignored).
        ("example", &["198.18.0.1", "192.0.2.7"]),
        ("EXAMPLE.org", &["192.0.2.7"]),
        (".lan", &["2001:db8:1::a"]),
        // "a" is a hex digit: the address 2001:db8:1::a, and the three names with an "a".
        ("a", &["198.18.0.1", "192.0.2.7", "2001:db8:1::a"]),
        ("nothing-like-this", &[]),
        // Empty: no filter.
        (
            "",
            &[
                "198.18.0.1",
                "198.18.0.20",
                "192.0.2.7",
                "2001:db8::7",
                "2001:db8:1::a",
                "203.0.113.18",
            ],
        ),
    ];
    for (text, want) in cases {
        let got = listed(&s, &query(Some(text), None));
        assert_eq!(
            got,
            (want.len(), want.iter().map(|w| (*w).to_owned()).collect()),
            "{text:?}"
        );
    }
}

#[test]
fn scope_splits_local_and_remote() {
    let (s, _) = six_hosts();
    assert_eq!(
        listed(&s, &query(None, Some(Scope::Local))),
        (
            3,
            vec![
                "198.18.0.1".into(),
                "198.18.0.20".into(),
                "2001:db8:1::a".into()
            ]
        )
    );
    assert_eq!(
        listed(&s, &query(None, Some(Scope::Remote))),
        (
            3,
            vec![
                "192.0.2.7".into(),
                "2001:db8::7".into(),
                "203.0.113.18".into()
            ]
        )
    );
    // Scope, search, interface and paging together: local hosts with "a" in address or
    // name are 198.18.0.1 (gw.example.net) and 2001:db8:1::a; on veth0 only the first.
    assert_eq!(
        listed(&s, &query(Some("a"), Some(Scope::Local))),
        (2, vec!["198.18.0.1".into(), "2001:db8:1::a".into()])
    );
    let q = HostQuery {
        ifindex: Some(5),
        ..query(Some("a"), Some(Scope::Local))
    };
    assert_eq!(listed(&s, &q), (1, vec!["198.18.0.1".into()]));
    let q = HostQuery {
        offset: 1,
        limit: 1,
        sort: SortKey::Ip,
        order: SortKey::Ip.default_order(),
        ..query(None, Some(Scope::Remote))
    };
    // Remote by address: 192.0.2.7, 203.0.113.18 (IPv4-mapped sorts before 2001:…), 2001:db8::7.
    assert_eq!(listed(&s, &q), (3, vec!["203.0.113.18".into()]));
}

#[test]
fn without_local_subnets_every_host_is_remote() {
    let (mut s, _) = six_hosts();
    s.set_local(Subnets::default());
    assert_eq!(listed(&s, &query(None, Some(Scope::Local))).0, 0);
    assert_eq!(listed(&s, &query(None, Some(Scope::Remote))).0, 6);
    // Without a name source, a search looks at addresses only.
    s.set_names(None);
    assert_eq!(listed(&s, &query(Some("example"), None)).0, 0);
    assert_eq!(listed(&s, &query(Some("a"), None)).0, 1);
}

#[test]
fn listed_rows_carry_local_name_and_mac_and_ask_for_unknown_names() {
    let (s, names) = six_hosts();
    let page = s.hosts(&HostQuery {
        limit: 3,
        ..HostQuery::default()
    });
    let rows: Vec<_> = page
        .hosts
        .iter()
        .map(|h| {
            (
                h.ip.to_string(),
                h.local,
                h.name.as_deref().map(str::to_owned),
                h.mac,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "198.18.0.1".into(),
                true,
                Some("gw.example.net".into()),
                Some([2, 0, 0, 0, 0, 1])
            ),
            ("198.18.0.20".into(), true, None, None),
            (
                "192.0.2.7".into(),
                false,
                Some("Mail.Example.ORG".into()),
                None
            ),
        ]
    );
    // Only the page's rows are looked up: the one without a name was asked for.
    assert_eq!(
        *names.asked.lock().unwrap(),
        ["198.18.0.20".parse::<IpAddr>().unwrap()]
    );
    // The MAC is the one of the host's own interface.
    let entries = s.host_entries("2001:db8:1::a".parse().unwrap());
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].mac, Some([2, 0, 0, 0, 0, 0x0a]));
    assert_eq!(entries[0].name.as_deref(), Some("printer.lan"));
    assert!(entries[0].local);
    // A scrape's view has the locality, but looks nothing up.
    let all: Vec<_> = s.each_host().collect();
    assert_eq!(all.len(), 6);
    assert!(all.iter().all(|h| h.name.is_none() && h.mac.is_none()));
    assert_eq!(all.iter().filter(|h| h.local).count(), 3);
}

#[test]
fn search_at_100k_hosts_finds_exactly_the_matches() {
    // 100k IPv4 hosts 198.18.x.y (x, y < 256; local) and one remote name match.
    let mut sample = sample(0).iface(5, "veth0").build();
    sample.hosts = (0_u32..100_000)
        .map(|i| {
            let [_, high, third, fourth] = i.to_be_bytes();
            let ip = IpAddr::from([198, 18 + high, third, fourth]);
            let mut c = ntop_common::counters::HostCounters::default();
            c.c[SENT][0] = ntop_common::counters::Counter {
                bytes: u64::from(i) + 1,
                packets: 1,
            };
            (
                ntop_common::counters::HostKey {
                    addr: super::key_addr(ip),
                    ifindex: 5,
                },
                c,
            )
        })
        .collect();
    let mut s = State::new();
    s.ingest(&sample);
    s.set_local(Subnets::parse("198.18.0.0/16").unwrap());
    s.set_names(Some(Arc::new(FakeNames::with(&[(
        "198.19.1.2",
        "far.example",
    )]))));
    // ".255.25" : 198.18.255.25x (x = 0..5) and 198.19.255.25x would need i >= 131072: 6 hits,
    // plus 198.18.x.255.25? no (4 octets). 198.18.255.25, .250–.255 → 7 hits.
    let page = s.hosts(&query(Some(".255.25"), None));
    let mut got: Vec<String> = page.hosts.iter().map(|h| h.ip.to_string()).collect();
    got.sort();
    let mut want: Vec<String> = std::iter::once(25)
        .chain(250..=255)
        .map(|d| format!("198.18.255.{d}"))
        .collect();
    want.sort();
    assert_eq!((page.total, got), (7, want));
    // By name, and remote (198.19.0.0/16 is outside the local /16).
    let page = s.hosts(&query(Some("far"), Some(Scope::Remote)));
    assert_eq!(page.total, 1);
    assert_eq!(page.hosts[0].ip.to_string(), "198.19.1.2");
    assert_eq!(
        s.hosts(&query(None, Some(Scope::Remote))).total,
        100_000 - 65_536
    );
}

/// Prints how long a searched and a scoped page take at 100k hosts, with 10k names cached:
/// `cargo test --release -p ntop --lib state::search_tests::timing -- --ignored --nocapture`.
#[test]
#[ignore = "timing only; run in release with --ignored --nocapture"]
fn timing() {
    use std::time::Instant;
    let mut sample = sample(0).iface(5, "veth0").build();
    sample.hosts = (0_u32..100_000)
        .map(|i| {
            let [_, high, third, fourth] = i.to_be_bytes();
            let mut c = ntop_common::counters::HostCounters::default();
            c.c[SENT][0] = ntop_common::counters::Counter {
                bytes: u64::from(i.wrapping_mul(2_654_435_761) >> 8),
                packets: 1,
            };
            (
                ntop_common::counters::HostKey {
                    addr: super::key_addr(IpAddr::from([198, 18 + high, third, fourth])),
                    ifindex: 5,
                },
                c,
            )
        })
        .collect();
    let mut s = State::new();
    s.ingest(&sample);
    s.set_local(Subnets::parse("198.18.0.0/16").unwrap());
    let names: Vec<(String, String)> = (0_u32..10_000)
        .map(|i| {
            let [_, high, third, fourth] = i.to_be_bytes();
            (
                IpAddr::from([198, 18 + high, third, fourth]).to_string(),
                format!("host-{i}.example.net"),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(|(a, n)| (a.as_str(), n.as_str()))
        .collect();
    s.set_names(Some(Arc::new(FakeNames::with(&pairs))));
    for (what, q) in [
        ("no filter", query(None, None)),
        ("scope=local", query(None, Some(Scope::Local))),
        ("q=198.18.1", query(Some("198.18.1"), None)),
        ("q=host-12 (names)", query(Some("host-12"), None)),
        (
            "q=example (all names)",
            query(Some("example"), Some(Scope::Remote)),
        ),
    ] {
        let started = Instant::now();
        let page = s.hosts(&q);
        println!(
            "100k hosts, {what}: {:?} ({} matched)",
            started.elapsed(),
            page.total
        );
    }
}
