//! The web dashboard (issue 5) in a real browser: Debian's headless Chromium, driven through
//! chromedriver ([`ntop_tests::browser`]), inside the daemon's test namespace, against the
//! contract of docs/DASHBOARD.md (pages, hash routes, `data-testid` hooks).
//!
//! - log in through the login form; the Summary chart gains points while a bounded UDP flow
//!   crosses the monitored veth, and the peer shows up among the top local talkers;
//! - the hosts table lists what the API lists, sorts by a header in the API's order both ways,
//!   searches (server-side) down to the matching hosts; the peer's row opens its page, whose
//!   history chart plots the peer's traffic once the history (checked through the API) has it,
//!   in as many intervals as the API has with traffic;
//! - protocols, interfaces and admin pages render what the API says; the summary, hosts, host,
//!   protocols, interfaces and admin pages fit a 360 px phone screen;
//! - the page of an address never seen says so and asks for no peers (each would be a 404);
//! - leaving the Summary for another address and coming back with Back (a page restored from
//!   the back/forward cache) resumes its live updates, and the time away is filled from the
//!   history;
//! - an API token created on the admin page works with `Authorization: Bearer` until it is
//!   revoked there; logging out ends the session on the server, and `/` then leads to the login;
//! - no page logs a console error (uncaught exceptions, failed requests, CSP violations), but
//!   for the 404s of the never-seen address's host, history and usage.
//!
//! The oracles are the API's JSON (read with HTTP Basic, not through the page) and the link's
//! counters; a screenshot of every page goes to `<target>/screenshots/dashboard_*.png`.
//!
//! Needs root (namespaces, BPF) and the browser `cargo xtask setup` installs; never skipped.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    thread,
    time::Duration,
};

use ntop_tests::{
    LinkStats, Netns, TestNet, UdpSink, VethConfig,
    browser::{Browser, DESKTOP, PHONE, WAIT, testid},
    daemon::{API, BASIC_AUTH, Daemon, data_dir, http_get, http_request, ntop_command_in},
    link_stats, require_root, scratch_dir, udp_send, unique_name, wait_until,
};
use serde_json::{Value, json};

/// Where the browser finds the daemon (inside the namespace both run in).
const BASE: &str = "http://127.0.0.1:3000";
/// UDP payload of every datagram of the flows.
const PAYLOAD: usize = 100;
/// A datagram's frame on the wire without FCS: Ethernet 14 + IPv4 20 + UDP 8 + payload.
const FRAME4: u64 = 14 + 20 + 8 + PAYLOAD as u64;
/// The same over IPv6 (header 40).
const FRAME6: u64 = 14 + 40 + 8 + PAYLOAD as u64;
/// Datagrams per burst of the IPv4 flow.
const BURST: u32 = 10;
/// At most this many bursts, 20 ms apart: at most 20,000 datagrams and about a minute.
const MAX_BURSTS: u32 = 2000;
/// Datagrams of the IPv6 flow (one burst): a second, smaller peer for sorting and searching.
const V6_DATAGRAMS: u32 = 7;
/// Polls of the daemon while the Summary is in the back/forward cache: the time away (about a
/// second a poll) must be far longer than the gaps the Summary chart has anyway.
const AWAY_POLLS: u32 = 15;
/// The longest time between neighbouring points of the Summary chart (`data-max-gap`, ms)
/// that does not count as a gap: polls are a second apart (two in polling mode), and the
/// history fills up to the last two seconds before the first live point.
const MAX_GAP_MS: u64 = 5000;

/// Sends the IPv4 flow from `from` in `ns` to `to` in bursts until `stop` (or
/// [`MAX_BURSTS`]); counts what it sent in `sent`.
fn flow(ns: &Netns, from: IpAddr, to: SocketAddr, stop: &AtomicBool, sent: &AtomicU64) {
    for _ in 0..MAX_BURSTS {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        udp_send(ns, from, to.ip(), to.port(), BURST, PAYLOAD);
        sent.fetch_add(u64::from(BURST), Ordering::Relaxed);
        // Pacing, not synchronisation: a steady rate over several polls.
        thread::sleep(Duration::from_millis(20));
    }
}

/// `(ip, interface)` of every row of the hosts table, in the order shown.
fn table_rows(b: &Browser) -> Vec<(String, String)> {
    let v = b.eval(
        "return Array.from(document.querySelectorAll(arguments[0]), \
         r => [r.getAttribute('data-ip'), r.getAttribute('data-interface')]);",
        vec![json!(format!(
            "{} {}",
            testid("hosts-table"),
            testid("host-row")
        ))],
    );
    v.as_array()
        .expect("an array")
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or("").to_owned(),
                r[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// `(ip, interface)` of the hosts the API lists for `query` (`sort=ip&order=asc`…), in its order.
fn api_rows(d: &Daemon, query: &str) -> Vec<(String, String)> {
    let v = d.get(&format!("/api/v1/hosts?limit=1000&{query}"));
    v["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| {
            (
                h["ip"].as_str().expect("ip").to_owned(),
                h["interface"].as_str().expect("interface").to_owned(),
            )
        })
        .collect()
}

/// The `aria-sort` of the header button `sort-<key>` (or of the header cell it sits in).
fn aria_sort(b: &Browser, key: &str) -> Option<String> {
    b.eval(
        "const e = document.querySelector(arguments[0]); if (!e) return null; \
         return e.getAttribute('aria-sort') \
             || (e.closest('th') && e.closest('th').getAttribute('aria-sort'));",
        vec![json!(testid(&format!("sort-{key}")))],
    )
    .as_str()
    .map(str::to_owned)
}

/// Clicks `sort-<key>` and waits until the table is sorted one way (by `aria-sort`) and its rows
/// are in the API's order for that way; returns the way (`asc` or `desc`).
#[track_caller]
fn sort_by(b: &Browser, d: &Daemon, key: &str, before: Option<&str>) -> String {
    b.click(&testid(&format!("sort-{key}")));
    b.wait(
        &format!("the hosts table sorted by {key} (not {before:?}) in the API's order"),
        WAIT,
        |b| {
            let order = match aria_sort(b, key).as_deref() {
                Some("ascending") => "asc",
                Some("descending") => "desc",
                _ => return None,
            };
            if Some(order) == before {
                return None;
            }
            let want = api_rows(d, &format!("sort={key}&order={order}"));
            (table_rows(b) == want).then(|| order.to_owned())
        },
    )
}

/// The sum of a history answer's points: (rx packets, rx bytes, tx packets, tx bytes).
fn history_sum(v: &Value) -> (u64, u64, u64, u64) {
    let points = v["points"].as_array().cloned().unwrap_or_default();
    points.iter().fold((0, 0, 0, 0), |(a, b, c, d), p| {
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        (
            a + n("rx_packets"),
            b + n("rx_bytes"),
            c + n("tx_packets"),
            d + n("tx_bytes"),
        )
    })
}

/// Opens a page by its navigation link `nav`, waits for its element `root`, and checks that the
/// console stayed clean (naming the page `page`).
#[track_caller]
fn open_page(b: &Browser, nav: &str, root: &str, page: &str) {
    b.click(&testid(nav));
    b.wait_testid(root);
    b.assert_no_console_errors(page);
}

/// Whether the chart `selector` draws a line that is not flat: an SVG `path` inside it whose
/// points have more than one y coordinate. (`data-points` counts the time points plotted, and
/// the charts fill intervals without traffic with zeros, so it alone cannot tell traffic from
/// none.)
fn plots_traffic(b: &Browser, selector: &str) -> bool {
    b.eval(
        "const root = document.querySelector(arguments[0]); if (!root) return false; \
         return Array.from(root.querySelectorAll('path')).some(p => { \
           const n = (p.getAttribute('d') || '').match(/-?[0-9.]+/g) || []; \
           return new Set(n.filter((_, i) => i % 2 === 1)).size > 1; });",
        vec![json!(selector)],
    ) == true
}

/// Whether the page shown fits the viewport's width: no horizontal scrolling of the page itself
/// (wide tables scroll in their own box), and every navigation link inside the viewport.
fn fits_width(b: &Browser) -> Result<(), String> {
    let v = b.eval(
        "const w = window.innerWidth; \
         const wide = document.documentElement.scrollWidth; \
         const out = Array.from(document.querySelectorAll('[data-testid^=\"nav-\"]')) \
           .filter(a => { const r = a.getBoundingClientRect(); \
                          return r.width === 0 || r.left < 0 || r.right > w + 0.5; }) \
           .map(a => a.getAttribute('data-testid')); \
         return [w, wide, out];",
        vec![],
    );
    let (w, wide) = (v[0].as_u64(), v[1].as_u64());
    if w < wide || v[2].as_array().is_none_or(|a| !a.is_empty()) {
        return Err(format!(
            "viewport width {w:?}, page width {wide:?}, navigation links outside: {}",
            v[2]
        ));
    }
    Ok(())
}

/// Bytes received so far on each TCP connection to the daemon's port that a process other than
/// this test holds in `ns` (the browser's), by local address: `ss -tinp` in the namespace.
fn browser_bytes_in(ns: &Netns) -> BTreeMap<String, u64> {
    let out = ns.exec(
        "ss",
        ["-Htinp", "state", "established", "( dport = :3000 )"],
    );
    assert!(out.status.success(), "ss: {out:?}");
    let me = format!("pid={},", std::process::id());
    let mut bytes = BTreeMap::new();
    let mut local = None;
    // "0 0 127.0.0.1:40000 127.0.0.1:3000 users:((\"chromium\",pid=7,fd=9))", then an indented
    // line of TCP information with "bytes_received:1234".
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(addr) = local.take() {
                let n = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("bytes_received:"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                bytes.insert(addr, n);
            }
        } else {
            let words: Vec<&str> = line.split_whitespace().collect();
            let peer = words.iter().position(|w| w.ends_with(":3000"));
            local = peer
                .filter(|&i| i > 0 && !line.contains(&me))
                .map(|i| words[i - 1].to_owned());
        }
    }
    bytes
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What the steps of [`dashboard_pages_follow_the_traffic`] share.
struct Scene<'a> {
    net: &'a TestNet,
    daemon: &'a Daemon<'a>,
    browser: &'a Browser<'a>,
    /// The monitored device (`veth-a`).
    dev: &'a str,
    /// The IPv4 peer (veth-b's address), the source of the flow.
    peer: IpAddr,
    /// The selector of the peer's row in the hosts table.
    row: String,
}

/// Login, the Summary under traffic, the hosts table (listing, sorting, searching), a host's
/// page and history, the protocols, interfaces and admin pages, and the phone width, with the
/// API and the link counters as oracles.
#[test]
fn dashboard_pages_follow_the_traffic() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let dev = net.link.dev_a.as_str();
    let peer = IpAddr::from(net.link.ipv4_b);
    // Nothing crosses the quiet link before the flows (static neighbours, MLD done): from here
    // on its counters are the oracle of everything ntop counts.
    let base = link_stats(&net.a, dev);
    let daemon = Daemon::start(&net.a, &["-i", dev]);
    let browser = Browser::start(&net.a, "dashboard");
    let scene = Scene {
        net: &net,
        daemon: &daemon,
        browser: &browser,
        dev,
        peer,
        row: format!("{}[data-ip=\"{peer}\"]", testid("host-row")),
    };

    // Without a session, `/` leads to the login page.
    browser.goto(&format!("{BASE}/"));
    let url = browser.current_url();
    assert!(url.starts_with(&format!("{BASE}/login")), "{url}");
    browser.assert_no_console_errors("/ without a session");
    browser.log_in(BASE);
    browser.wait_testid("nav-summary");

    let sent = summary_under_traffic(&scene);
    let iface = counted_exactly(&scene, &base, sent);
    hosts_table(&scene);
    host_page(&scene, sent);
    other_pages(&scene, &iface);
    phone_width(&scene);
    unknown_host(&scene);
    drop(browser);
    assert!(daemon.stop().success());
}

/// The Summary: its chart gains points while the IPv4 flow runs, and the peer is a top local
/// talker; then a short IPv6 flow. Returns the IPv4 datagrams sent.
fn summary_under_traffic(s: &Scene) -> u64 {
    let (net, b) = (s.net, s.browser);
    let sink = UdpSink::bind(&net.a, SocketAddr::new(net.link.ipv4_a.into(), 0));
    let sink6 = UdpSink::bind(&net.a, SocketAddr::new(net.link.ipv6_a.into(), 0));
    b.wait_testid("throughput-chart");
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    thread::scope(|scope| {
        let (nb, peer, to, sent) = (&net.b, s.peer, sink.addr(), &sent);
        let flag = &stop;
        let flow = scope.spawn(move || flow(nb, peer, to, flag, sent));
        // Stops the flow however this scope ends (a failed wait too), so the scope's join of
        // the flow thread does not wait for the whole bounded flow.
        let _stop = StopOnDrop(&stop);
        let points = |b: &Browser| b.number_attr(&testid("throughput-chart"), "data-points");
        let first = b.wait("data-points on the throughput chart", WAIT, points);
        b.wait("the chart to gain three points", WAIT, |b| {
            points(b).filter(|&p| p >= first + 3)
        });
        b.wait("the chart to plot the flow", WAIT, |b| {
            plots_traffic(b, &testid("throughput-chart")).then_some(())
        });
        b.wait_visible(&format!(
            "{} {}[data-ip=\"{}\"]",
            testid("top-local"),
            testid("host-link"),
            s.peer
        ));
        let rate = wait_until(WAIT, Duration::from_millis(100), || {
            let v = s.daemon.get("/api/v1/interfaces");
            v["interfaces"][0]["rx"]["bytes_per_sec"]
                .as_f64()
                .filter(|&r| r > 0.0)
        });
        assert!(rate.is_some(), "the API never showed the flow's rate");
        b.screenshot("summary");
        b.assert_no_console_errors("summary");
        stop.store(true, Ordering::Relaxed);
        flow.join().expect("the flow thread");
    });
    let sent = sent.into_inner();
    let to6 = sink6.addr();
    udp_send(
        &net.b,
        net.link.ipv6_b.into(),
        to6.ip(),
        to6.port(),
        V6_DATAGRAMS,
        PAYLOAD,
    );
    assert_eq!(sink.wait_for(sent, Duration::from_secs(20)), sent);
    let v6 = u64::from(V6_DATAGRAMS);
    assert_eq!(sink6.wait_for(v6, Duration::from_secs(20)), v6);
    sent
}

/// The link's counters and the frames worked out by hand against the API, once the daemon has
/// polled everything; returns the interface as the API shows it.
fn counted_exactly(s: &Scene, base: &LinkStats, sent: u64) -> Value {
    let v6 = u64::from(V6_DATAGRAMS);
    let link = link_stats(&s.net.a, s.dev).since(base);
    assert_eq!(
        link.rx_packets,
        sent + v6,
        "only the flows crossed the link"
    );
    let iface = wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
        let v = s.daemon.get("/api/v1/interfaces");
        let i = &v["interfaces"][0];
        (i["rx"]["packets"].as_u64() == Some(link.rx_packets)).then(|| i.clone())
    })
    .unwrap_or_else(|| panic!("ntop never counted the link's {link:?}"));
    assert_eq!(
        iface["rx"]["bytes"].as_u64(),
        Some(sent * FRAME4 + v6 * FRAME6),
        "every frame's bytes, worked out by hand"
    );
    let peer = s.daemon.get(&format!("/api/v1/hosts/{}", s.peer));
    assert_eq!(
        peer["entries"][0]["sent"]["packets"].as_u64(),
        Some(sent),
        "{peer}"
    );
    iface
}

/// The hosts table: the API's hosts, sorted both ways by a header in the API's order, and
/// searched down to the matching hosts.
fn hosts_table(s: &Scene) {
    let (b, d) = (s.browser, s.daemon);
    open_page(b, "nav-hosts", "hosts-table", "hosts");
    b.wait_visible(&s.row);
    let all: BTreeSet<_> = api_rows(d, "sort=ip").into_iter().collect();
    assert!(all.len() >= 4, "both ends, IPv4 and IPv6: {all:?}");
    b.wait("the table to list every host of the API", WAIT, |b| {
        (table_rows(b).into_iter().collect::<BTreeSet<_>>() == all).then_some(())
    });
    let total = b.text(&testid("hosts-total")).unwrap_or_default();
    assert!(
        total.contains(&all.len().to_string()),
        "hosts-total `{total}` for {} hosts",
        all.len()
    );
    assert_eq!(
        b.attr(&s.row, "data-interface").as_deref(),
        Some(s.dev),
        "the peer's row names the interface"
    );
    b.screenshot("hosts");

    let way = sort_by(b, d, "ip", None);
    let other = sort_by(b, d, "ip", Some(&way));
    assert_ne!(way, other);
    // Sent bytes, largest first (a second click if the first sorted the other way).
    let way = sort_by(b, d, "sent_bytes", None);
    if way != "desc" {
        assert_eq!(sort_by(b, d, "sent_bytes", Some(&way)), "desc");
    }
    assert_eq!(
        table_rows(b).first().map(|r| r.0.clone()),
        Some(s.peer.to_string()),
        "the peer sent the most"
    );
    b.assert_no_console_errors("hosts, sorted");

    for q in ["198.18.", "2001:db8::", &s.peer.to_string()] {
        b.type_into(&testid("hosts-search"), q);
        let want: BTreeSet<_> = api_rows(d, &format!("q={q}")).into_iter().collect();
        let by_hand: BTreeSet<_> = all.iter().filter(|r| r.0.contains(q)).cloned().collect();
        assert_eq!(want, by_hand, "the API's search for `{q}`");
        assert!(
            !want.is_empty() && want.len() < all.len(),
            "`{q}`: {want:?}"
        );
        b.wait(&format!("only the hosts matching `{q}`"), WAIT, |b| {
            (table_rows(b).into_iter().collect::<BTreeSet<_>>() == want).then_some(())
        });
    }
    b.screenshot("hosts-search");
    b.assert_no_console_errors("hosts, searched");
}

/// The peer's page, opened from its row in the (searched) hosts table: its history chart plots
/// the minutes the API has for it.
fn host_page(s: &Scene, sent: u64) {
    let (b, d, peer) = (s.browser, s.daemon, s.peer);
    let link = format!("{} a", s.row);
    b.click(if b.count(&link) > 0 { &link } else { &s.row });
    let detail = testid("host-detail");
    b.wait("the peer's page", WAIT, |b| {
        (b.attr(&detail, "data-ip") == Some(peer.to_string())).then_some(())
    });
    let url = b.current_url();
    assert!(url.contains(&format!("#/hosts/{peer}")), "{url}");
    // Host history is per minute, written once the minute is over: wait until the API has all
    // the peer sent, then for the page (loaded again) to plot it.
    let history = format!(
        "/api/v1/history?interface={}&host={peer}&resolution=minute",
        s.dev
    );
    let want = (0, 0, sent, sent * FRAME4);
    wait_until(Duration::from_secs(90), Duration::from_millis(500), || {
        (history_sum(&d.get(&history)) == want).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the history never had the peer's traffic: {}",
            d.get(&history)
        )
    });
    // The minutes with traffic: the page's chart (the last hour, per minute) has as many
    // intervals with traffic as the API has points with bytes.
    let busy = d.get(&history)["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["rx_bytes"].as_u64().unwrap_or(0) + p["tx_bytes"].as_u64().unwrap_or(0) > 0)
        .count() as u64;
    assert!(busy > 0, "{}", d.get(&history));
    b.reload();
    b.wait_testid("host-detail");
    let chart = testid("host-history-chart");
    b.wait("the host's history chart to plot its traffic", WAIT, |b| {
        let points = b.number_attr(&chart, "data-points")?;
        (points > 0 && plots_traffic(b, &chart)).then_some(())
    });
    b.wait(
        &format!("the history chart to show traffic in the API's {busy} minutes"),
        WAIT,
        |b| (b.number_attr(&chart, "data-nonzero")? == busy).then_some(()),
    );
    b.wait_testid("usage-table");
    // Its top peer is A, to which it sent every datagram of the flow (hand-computed frame size)
    // and which sent nothing back; the page lists A in the Top peers table.
    let a = IpAddr::from(s.net.link.ipv4_a);
    // (The pair table is read every 5 s; the history above was complete only after the
    // flow's last minute had passed, long after the flow stopped.)
    let peers = d.get(&format!("/api/v1/hosts/{peer}/peers"));
    let top = &peers["peers"][0];
    assert_eq!(top["ip"], a.to_string(), "{peers}");
    assert_eq!(
        (
            &top["sent"]["packets"],
            &top["sent"]["bytes"],
            &top["received"]["packets"]
        ),
        (&json!(sent), &json!(sent * FRAME4), &json!(0)),
        "{peers}"
    );
    let row = format!("{}[data-peer=\"{a}\"]", testid("host-peer-row"));
    b.wait("A in the host's top peers", WAIT, |b| {
        (b.count(&row) == 1).then_some(())
    });
    b.screenshot("host");
    b.assert_no_console_errors("host detail");
}

/// Protocols, interfaces and admin: each renders what the API says.
fn other_pages(s: &Scene, iface: &Value) {
    let b = s.browser;
    open_page(b, "nav-protocols", "protocols-table", "protocols");
    b.wait_testid("protocol-chart");
    b.wait("UDP in the protocols table", WAIT, |b| {
        b.text(&testid("protocols-table"))
            .filter(|t| t.to_lowercase().contains("udp"))
    });
    b.screenshot("protocols");
    open_page(b, "nav-interfaces", "interfaces-table", "interfaces");
    let mode = iface["capture_mode"].as_str().expect("capture_mode");
    b.wait("the interface and its capture mode", WAIT, |b| {
        b.text(&testid("interfaces-table"))
            .filter(|t| t.contains(s.dev) && t.contains(mode))
    });
    b.screenshot("interfaces");
    open_page(b, "nav-admin", "token-create", "admin");
    b.wait_testid("config");
    b.wait_testid("log-lines");
    b.screenshot("admin");
    b.assert_no_console_errors("admin");
}

/// A phone: every page fits 360 px (tables scroll in their own box).
fn phone_width(s: &Scene) {
    let b = s.browser;
    b.set_viewport(PHONE);
    b.goto(&format!("{BASE}/#/"));
    b.wait_testid("throughput-chart");
    b.wait("the summary to fit 360 px", WAIT, |b| fits_width(b).ok());
    b.screenshot("summary-360");
    b.goto(&format!("{BASE}/#/hosts"));
    b.wait_visible(&s.row);
    fits_width(b).unwrap_or_else(|e| panic!("hosts at 360 px: {e}"));
    b.screenshot("hosts-360");
    // The other pages, each once it shows what it waits for (the host's entries, a table row).
    let pages = [
        (
            format!("#/hosts/{}@{}", s.peer, s.dev),
            "usage-table",
            "host",
        ),
        ("#/protocols".to_owned(), "protocols-table", "protocols"),
        ("#/interfaces".to_owned(), "interfaces-table", "interfaces"),
        ("#/admin".to_owned(), "config", "admin"),
    ];
    for (route, root, page) in pages {
        b.goto(&format!("{BASE}/{route}"));
        b.wait_visible(&format!("{} tbody tr, {} dl", testid(root), testid(root)));
        b.wait(&format!("the {page} page to fit 360 px"), WAIT, |b| {
            fits_width(b).ok()
        });
        b.screenshot(&format!("{page}-360"));
    }
    b.set_viewport(DESKTOP);
    b.assert_no_console_errors("360 px pages");
}

/// The page of an address ntop never saw (TEST-NET-2, not on the link) says so, and asks for
/// no peers while the host API does not know it: each such request would be a 404, which the
/// browser logs as a console error (the 404s of the host, its history and its usage are
/// logged too, and are the only console errors of the page).
fn unknown_host(s: &Scene) {
    let b = s.browser;
    let nobody = "198.51.100.7";
    let host = format!("/api/v1/hosts/{nobody}");
    let (status, body) = http_get(&s.net.a, API, &host).expect("an answer");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("host_not_found"), "{body}");
    b.assert_no_console_errors("before the unknown host's page");
    // Requests are counted by the page's resource timing: cleared first, the buffer may be full.
    b.eval("performance.clearResourceTimings(); return null;", vec![]);
    b.goto(&format!("{BASE}/#/hosts/{nobody}"));
    b.wait("the page to say the address was not seen", WAIT, |b| {
        b.text(&testid("host-detail"))
            .filter(|t| t.contains("has not seen this address"))
    });
    let asked = |b: &Browser| {
        b.eval(
            "return performance.getEntriesByType('resource') \
               .map(e => new URL(e.name).pathname);",
            vec![],
        )
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
    };
    // The page refreshes the host every 3 s (and would then ask for the peers): three answers.
    let paths = b.wait("three answers of the host API", WAIT, |b| {
        let paths = asked(b);
        (paths.iter().filter(|p| **p == host).count() >= 3).then_some(paths)
    });
    let peers: Vec<_> = paths.iter().filter(|p| p.contains("/peers")).collect();
    assert!(
        peers.is_empty(),
        "peers asked for an unknown host: {peers:?}"
    );
    b.wait_visible(&testid("host-peers"));
    let text = b.text(&testid("host-peers")).unwrap_or_default();
    assert!(text.contains("No peers counted yet"), "{text}");
    b.screenshot("host-unknown");
    let errors = b.console_errors();
    let others: Vec<_> = errors
        .iter()
        .filter(|e| !e.contains(nobody) || e.contains("/peers"))
        .collect();
    assert!(
        others.is_empty(),
        "console errors besides the 404s of the unknown host: {others:#?}"
    );
}

/// The Summary, left for another address and shown again with Back, takes up its live updates:
/// the throughput chart gains points again, with the traffic of a flow that runs meanwhile;
/// while it is away, none of the browser's connections to the daemon receives anything. The
/// time away is filled from the 1-second history: once back, the chart has no gap between
/// points longer than [`MAX_GAP_MS`] (or than its longest before leaving), although it was away
/// for [`AWAY_POLLS`] polls, and it plots traffic in every second of that time that the
/// history (read through the API) has traffic in.
///
/// live.js closes the page's event stream on `pagehide` when the page goes into the browser's
/// back/forward cache and opens it again on `pageshow`; without that, a restored page would
/// stay frozen (or, with the stream kept open, hold one of the six connections a browser allows
/// per host). Chromium keeps the page (the test checks that the restored document is the one it
/// left: a mark set by the test survives), so the `pageshow` path is what resumes the updates.
/// If a later Chromium stopped keeping it, the test fails saying why Chromium did not
/// (`notRestoredReasons`); loaded again, the page would resume updates anyway, which would not
/// test live.js's handlers.
#[test]
fn dashboard_live_updates_resume_after_back() {
    require_root();
    let net = TestNet::new(&VethConfig::default());
    let dev = net.link.dev_a.as_str();
    let peer = IpAddr::from(net.link.ipv4_b);
    let d = Daemon::start(&net.a, &["-i", dev]);
    let b = Browser::start(&net.a, "dashboard_back");
    b.log_in(BASE);
    b.wait_testid("throughput-chart");
    let sink = UdpSink::bind(&net.a, SocketAddr::new(net.link.ipv4_a.into(), 0));
    let chart = testid("throughput-chart");
    let latest = |b: &Browser| b.number_attr(&chart, "data-latest");
    let nonzero = |b: &Browser| b.number_attr(&chart, "data-nonzero");
    // Waits until the daemon has polled `n` more times (its API's `polled_at` changed).
    let wait_polls = |n: u32| {
        let polled_at = || d.get("/api/v1/interfaces")["polled_at"].clone();
        let (mut last, mut polls) = (polled_at(), 0);
        let bound = WAIT + Duration::from_secs(n.into());
        wait_until(bound, Duration::from_millis(50), || {
            let now = polled_at();
            if now != last {
                polls += 1;
                last = now;
            }
            (polls >= n).then_some(())
        })
        .unwrap_or_else(|| panic!("the daemon did not poll {n} times within {bound:?}"));
    };
    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    thread::scope(|scope| {
        let (nb, to, flag, sent) = (&net.b, sink.addr(), &stop, &sent);
        let flow = scope.spawn(move || flow(nb, peer, to, flag, sent));
        let _stop = StopOnDrop(&stop);

        // Live before leaving: new points, some with the flow's traffic.
        let first = b.wait("a first point on the chart", WAIT, latest);
        b.wait("a new point", WAIT, |b| latest(b).filter(|&t| t > first));
        b.wait("a point with traffic", WAIT, |b| {
            nonzero(b).filter(|&n| n > 0)
        });
        mark_before_leaving(&b);

        // Away: another document of the same server (the login page: one that, unlike the
        // API's JSON, does not make Chromium ask for a /favicon.ico there is not). While the
        // daemon polls, no connection of the browser receives anything: the hidden Summary's
        // event stream is closed (one summary a poll would arrive on it otherwise).
        b.goto(&format!("{BASE}/login"));
        b.wait_visible("#password");
        wait_polls(1);
        let before = browser_bytes_in(&net.a);
        wait_polls(2);
        let after = browser_bytes_in(&net.a);
        let receiving: Vec<_> = after
            .iter()
            .filter(|&(local, n)| before.get(local).is_some_and(|was| n > was))
            .collect();
        assert!(
            receiving.is_empty(),
            "connections of the browser that went on receiving while the Summary was away (its \
             event stream was not closed on pagehide): {receiving:?}"
        );
        // Long enough away that a gap would be plain (the flow goes on meanwhile).
        wait_polls(AWAY_POLLS - 3);

        b.back();
        b.wait_testid("throughput-chart");
        let kept = b.eval("return window.__ntopLeft === true;", vec![]) == true;
        if !kept {
            let why = b.eval(
                "const n = performance.getEntriesByType('navigation')[0]; \
                 return n && n.notRestoredReasons ? JSON.stringify(n.notRestoredReasons) : null;",
                vec![],
            );
            b.fail(&format!(
                "Back loaded the Summary again instead of restoring it from the back/forward \
                 cache, so live.js's pagehide/pageshow handlers were not exercised; Chromium's \
                 reasons: {why}"
            ));
        }
        let (left, busy, gap_before) = chart_at_pagehide(&b);
        let resumed = b.wait("a new point after coming back", WAIT, |b| {
            latest(b).filter(|&t| t > left)
        });
        check_gap_filled(&b, &d, dev, (left, busy, gap_before), resumed);
        b.wait("another new point (the updates go on)", WAIT, |b| {
            latest(b).filter(|&t| t > resumed)
        });
        b.wait("new points with the flow's traffic", WAIT, |b| {
            nonzero(b).filter(|&n| n > busy)
        });
        assert!(
            !b.visible(&testid("status-banner")),
            "the banner after coming back: {:?}",
            b.text(&testid("status-banner"))
        );
        b.screenshot("summary-after-back");
        b.assert_no_console_errors("summary, after Back");
        stop.store(true, Ordering::Relaxed);
        flow.join().expect("the flow thread");
    });
    drop(b);
    assert!(d.stop().success());
}

/// Marks the Summary's document (`window.__ntopLeft`: only a restored document has it), and
/// has it note its throughput chart's `data-latest`, `data-nonzero` and `data-max-gap` on
/// `pagehide` (no summary is taken after that), for [`chart_at_pagehide`].
fn mark_before_leaving(b: &Browser) {
    b.eval(
        "window.__ntopLeft = true; \
         addEventListener('pagehide', () => { \
           const c = document.querySelector(arguments[0]); \
           window.__ntopHidden = ['data-latest', 'data-nonzero', 'data-max-gap'] \
             .map(a => Number(c.getAttribute(a))); }, { once: true }); \
         return null;",
        vec![json!(testid("throughput-chart"))],
    );
}

/// The chart's `data-latest`, `data-nonzero` and `data-max-gap` when the page was hidden.
#[track_caller]
fn chart_at_pagehide(b: &Browser) -> (u64, u64, u64) {
    let v = b.eval("return window.__ntopHidden || null;", vec![]);
    let got: Vec<u64> = (0..3).filter_map(|i| v[i].as_u64()).collect();
    let [latest, nonzero, gap] = got[..] else {
        panic!("the chart's attributes at pagehide: {v}");
    };
    (latest, nonzero, gap)
}

/// After coming back to the Summary (see [`dashboard_live_updates_resume_after_back`]): the
/// time away, from `left` (the chart's `data-latest` at `pagehide`, when it had `busy` points
/// with traffic and no gap over `gap_before`) to `back` (the first point after `pageshow`), is
/// filled from the history: no gap between points over [`MAX_GAP_MS`] (or `gap_before`), and
/// a point with traffic for every second in between that has traffic in the API's 1-second
/// history of `dev`.
#[track_caller]
fn check_gap_filled(b: &Browser, d: &Daemon, dev: &str, hidden: (u64, u64, u64), back: u64) {
    let (left, busy, gap_before) = hidden;
    let chart = testid("throughput-chart");
    let limit = gap_before.max(MAX_GAP_MS);
    let away = back - left;
    assert!(
        away > limit + 1000,
        "the Summary was away only {away} ms: not enough to tell a gap from the {limit} ms the \
         chart may have anyway"
    );
    let gap = b.wait(
        &format!(
            "the {away} ms away to be filled from the history (no gap over {limit} ms between \
             the chart's points)"
        ),
        WAIT,
        |b| {
            b.number_attr(&chart, "data-max-gap")
                .filter(|&g| g <= limit)
        },
    );
    let nonzero = b.number_attr(&chart, "data-nonzero").unwrap_or(0);
    // The seconds well inside the time away (a filled point is plotted at the end of its
    // second, before the first point after coming back): those with traffic in the history.
    let (from, to) = (left.div_ceil(1000), back / 1000 - 1);
    let history = d.get(&format!(
        "/api/v1/history?interface={dev}&from={from}&to={to}&resolution=second"
    ));
    let flowing = history["points"]
        .as_array()
        .expect("points")
        .iter()
        .filter(|p| p["rx_bytes"].as_u64().unwrap_or(0) + p["tx_bytes"].as_u64().unwrap_or(0) > 0)
        .count() as u64;
    assert!(
        flowing * 2 >= to - from,
        "the flow ran while the Summary was away: traffic in {flowing} of the {} seconds of the \
         history: {history}",
        to - from
    );
    assert!(
        nonzero >= busy + flowing,
        "the chart plots traffic at {nonzero} points, {busy} before leaving: not the {flowing} \
         seconds with traffic while away (largest gap {gap} ms)"
    );
}

/// A restart of the daemon with the page open (an upgrade, say): the page notices (its banner
/// says the daemon does not answer), then comes back by itself once the new daemon serves,
/// still logged in (sessions survive a restart), with new points on its chart. Between the two
/// daemons the data directory is all they share.
#[test]
fn dashboard_recovers_from_a_daemon_restart_still_logged_in() {
    require_root();
    let ns = Netns::new();
    let dir = data_dir(None);
    let api = API.to_string();
    let start = || {
        Daemon::spawn(
            &ns,
            API,
            ntop_command_in(&ns, &dir, &["-i", "lo", "-w", &api]),
        )
    };
    let d = start();
    let b = Browser::start(&ns, "dashboard_restart");
    b.log_in(BASE);
    b.wait_testid("nav-summary");
    let chart = testid("throughput-chart");
    b.wait("a first point on the chart", WAIT, |b| {
        b.number_attr(&chart, "data-latest")
    });
    assert!(
        !b.visible(&testid("status-banner")),
        "no banner while all is well"
    );
    let first = d.get("/api/v1/status")["ntop"]["started"].clone();

    assert!(d.stop().success());
    let stopped_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("ms fit");
    b.wait("the banner saying the daemon does not answer", WAIT, |b| {
        b.visible(&testid("status-banner")).then_some(())
    });
    b.screenshot("daemon-down");

    let d = start();
    let second = d.get("/api/v1/status")["ntop"]["started"].clone();
    let started = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("ntop.started: {v}"));
    assert!(started(&second) >= started(&first), "{first} then {second}");
    b.wait(
        "the page to come back with new points, banner gone",
        WAIT,
        |b| {
            let latest = b.number_attr(&chart, "data-latest")?;
            (latest > stopped_ms && !b.visible(&testid("status-banner"))).then_some(())
        },
    );
    let url = b.current_url();
    assert!(
        !url.contains("/login"),
        "still logged in after the restart: {url}"
    );
    // The page's own session works against the new daemon (not a cached page).
    let session = b.eval_async(
        "const done = arguments[arguments.length - 1]; \
         fetch('/api/v1/session', {credentials: 'same-origin'}) \
           .then((r) => done(r.status), (e) => done(String(e)));",
        vec![],
    );
    assert_eq!(session, json!(200), "the session survived the restart");
    b.screenshot("after-restart");
    drop(b);
    assert!(d.stop().success());
}

/// An API token made on the admin page works with `Authorization: Bearer` (checked against the
/// API) until it is revoked there; logging out ends the session on the server.
#[test]
fn dashboard_tokens_and_logout() {
    require_root();
    let ns = Netns::new();
    let d = Daemon::start(&ns, &["-i", "lo"]);
    let b = Browser::start(&ns, "dashboard_tokens");
    b.log_in(BASE);
    open_page(&b, "nav-admin", "token-create", "admin");

    let name = format!("browser-{}", unique_name());
    b.type_into(&testid("token-name"), &name);
    b.click(&testid("token-create"));
    let secret = b.wait("the new token's secret", WAIT, |b| {
        let v = b
            .try_eval(
                "const e = document.querySelector(arguments[0]); \
                 return e ? (e.value || e.innerText || '').trim() : null;",
                vec![json!(testid("token-secret"))],
            )
            .ok()?;
        v.as_str()
            .and_then(|t| t.split_whitespace().find(|w| w.starts_with("ntop_")))
            .map(str::to_owned)
    });
    b.screenshot("admin-token");
    let bearer = format!("Bearer {secret}");
    let get = |auth: &str, path: &str| {
        http_request(&ns, API, "GET", path, &[("Authorization", auth)], b"")
            .unwrap_or_else(|| panic!("no answer to GET {path}: {}", d.stderr()))
    };
    let r = get(&bearer, "/api/v1/interfaces");
    assert_eq!(r.status, 200, "the new token works: {}", r.body);
    let tokens = get(BASIC_AUTH, "/api/v1/tokens").json().expect("JSON");
    let listed = tokens
        .as_array()
        .or_else(|| tokens["tokens"].as_array())
        .and_then(|a| a.iter().find(|t| t["name"] == name.as_str()).cloned())
        .unwrap_or_else(|| panic!("`{name}` in {tokens}"));
    let id = listed["id"]
        .as_str()
        .map_or_else(|| listed["id"].to_string(), str::to_owned);
    let row = format!("{}[data-id=\"{id}\"]", testid("token-row"));
    b.wait_visible(&row);

    // Revoke it on the page (accepting a confirmation if the page asks for one).
    b.click(&format!("{row} {}", testid("token-revoke")));
    b.wait("the token's row to go", WAIT, |b| {
        let _ = b.accept_dialog();
        let n = b
            .try_eval(
                "return document.querySelectorAll(arguments[0]).length;",
                vec![json!(row)],
            )
            .ok()?;
        (n == 0).then_some(())
    });
    let r = get(&bearer, "/api/v1/interfaces");
    assert_eq!(r.status, 401, "the revoked token is refused: {}", r.body);
    let tokens = get(BASIC_AUTH, "/api/v1/tokens").body;
    assert!(!tokens.contains(&name), "{tokens}");
    b.assert_no_console_errors("admin, tokens");

    // Log out: the session ends on the server, and `/` leads to the login page.
    let cookie = b
        .cookie("ntop_session")
        .expect("the session cookie while logged in");
    let session = |cookie: &str| {
        http_request(
            &ns,
            API,
            "GET",
            "/api/v1/session",
            &[("Cookie", &format!("ntop_session={cookie}"))],
            b"",
        )
        .expect("an answer")
        .status
    };
    assert_eq!(session(&cookie), 200, "the browser's session is valid");
    b.click(&testid("logout"));
    b.wait("the login page after logging out", WAIT, |b| {
        let url = b.try_eval("return location.href;", vec![]).ok()?;
        url.as_str()
            .filter(|u| u.starts_with(&format!("{BASE}/login")))
            .map(|_| ())
    });
    assert_eq!(session(&cookie), 401, "the session ended on the server");
    b.goto(&format!("{BASE}/"));
    assert!(
        b.current_url().starts_with(&format!("{BASE}/login")),
        "{}",
        b.current_url()
    );
    b.screenshot("login-after-logout");
    b.assert_no_console_errors("logout");
    drop(b);
    assert!(d.stop().success());
}

/// The harness itself, on a local page: waits, clicks, typing, attributes, screenshots, a
/// phone viewport, and console errors (an uncaught exception and `console.error` are caught);
/// dropping the browser ends chromedriver, Chromium and the profile.
#[test]
fn browser_harness_drives_a_local_page_and_catches_console_errors() {
    require_root();
    let ns = Netns::new();
    let dir = scratch_dir().join(format!("{}-page", unique_name()));
    fs::create_dir_all(&dir).expect("a page directory");
    let page = dir.join("page.html");
    fs::write(
        &page,
        r#"<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>harness</title></head>
<body><input data-testid="in"><button data-testid="go">Go</button>
<p data-testid="out" data-count="0"></p>
<script>
const out = document.querySelector('[data-testid=out]');
document.querySelector('[data-testid=go]').addEventListener('click', () => {
  out.dataset.count = Number(out.dataset.count) + 1;
  out.textContent = document.querySelector('[data-testid=in]').value;
});
setTimeout(() => {
  const late = document.createElement('p');
  late.dataset.testid = 'late';
  late.textContent = 'late';
  document.body.append(late);
}, 300);
if (location.search === '?fail') {
  console.error('harness: a console error');
  setTimeout(() => { throw new Error('harness: an uncaught exception'); }, 0);
}
</script></body></html>"#,
    )
    .expect("writing the page");
    let url = format!("file://{}", page.display());
    let (driver_group, profile_dirs) = {
        let b = Browser::start(&ns, "harness");
        b.goto(&url);
        b.wait_testid("late");
        b.type_into(&testid("in"), "hello, ntop");
        b.click(&testid("go"));
        b.click(&testid("go"));
        b.wait("two clicks", WAIT, |b| {
            b.number_attr(&testid("out"), "data-count")
                .filter(|&n| n == 2)
        });
        assert_eq!(b.text(&testid("out")).as_deref(), Some("hello, ntop"));
        assert_eq!(b.count("p"), 2);
        assert!(!b.visible(&testid("missing")));
        let shot = b.screenshot("local");
        let png = fs::read(&shot).expect("the screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", shot.display());
        b.set_viewport(PHONE);
        b.set_viewport(DESKTOP);
        b.assert_no_console_errors("the local page");

        b.goto(&format!("{url}?fail"));
        let errors = b.wait("two console errors", WAIT, |b| {
            let e = b.console_errors();
            (!e.is_empty()).then_some(e)
        });
        let mut all = errors.join("\n");
        if !all.contains("uncaught exception") {
            all.push_str(&b.wait("the uncaught exception", WAIT, |b| {
                let e = b.console_errors();
                (!e.is_empty()).then(|| e.join("\n"))
            }));
        }
        assert!(all.contains("harness: a console error"), "{all}");
        assert!(all.contains("harness: an uncaught exception"), "{all}");
        let group = b.driver_pid();
        let dirs = b.profile_dir().to_path_buf();
        (group, dirs)
    };
    // Dropped: no process of chromedriver's group is left, and the profile is gone.
    let pgid = libc::pid_t::try_from(driver_group).expect("a pid");
    // SAFETY: signal 0 only asks whether the group has a process.
    let rc = unsafe { libc::kill(-pgid, 0) };
    assert_eq!(rc, -1, "chromedriver's process group {pgid} is gone");
    assert!(!profile_dirs.exists(), "{}", profile_dirs.display());
    let _ = fs::remove_dir_all(&dir);
}
