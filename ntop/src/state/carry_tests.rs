//! Carrying totals across runs, new maps and resets, on hand-built samples. Each expected value
//! is worked out in the comments from the raw counters the samples hold.

use ntop_common::{
    counters::{L4Class, RECEIVED},
    errors::ErrorKind,
    proto::PROTO_SLOTS,
};

use super::super::tests::sample;
use super::*;
use crate::{
    history::{History, HistoryConfig},
    sample::Sample,
    store::DataDir,
};

const UDP: u32 = 17;
const HOST: &str = "198.51.100.7";

/// eth0 (ifindex 2) with `bytes`/`packets` of UDP received, all of it by [`HOST`], plus `errors`
/// dropped-frame errors, read from maps `map_id` at `ms`.
fn at(ms: u64, map_id: u32, bytes: u64, packets: u64, errors: u64) -> Sample {
    sample(ms)
        .epoch(map_id)
        .iface(2, "eth0")
        .proto(2, 0, UDP, bytes, packets)
        .host(HOST, 2, RECEIVED, L4Class::Udp, bytes, packets)
        .error(ErrorKind::HostMapFull, errors)
        .build()
}

/// (received bytes, received packets) of eth0 and of [`HOST`], and the error count.
fn seen(s: &State) -> (u64, u64, u64, u64, u64) {
    let i = s.interface("eth0").expect("eth0");
    let h = s.host_entries(HOST.parse().unwrap());
    let (hb, hp) = h
        .first()
        .map_or((0, 0), |h| (h.received.bytes, h.received.packets));
    let errors = s
        .errors()
        .find(|(n, _)| *n == ntop_common::errors::ERROR_NAMES[ErrorKind::HostMapFull as usize])
        .map_or(0, |(_, v)| v);
    (i.rx.bytes, i.rx.packets, hb, hp, errors)
}

/// The history a checkpoint adds: (eth0 rx bytes, UDP slot rx bytes, host received bytes).
fn added(c: &Checkpoint) -> (u64, u64, u64) {
    let iface = c.points.interfaces.iter().map(|(_, c)| c.rx_bytes).sum();
    let proto = c
        .points
        .protocols
        .iter()
        .filter(|(_, slot, _)| u32::from(*slot) == UDP)
        .map(|(_, _, c)| c.rx_bytes)
        .sum();
    let host = c.points.hosts.iter().map(|(_, _, c)| c.rx_bytes).sum();
    (iface, proto, host)
}

/// A first run on maps 10: 1000 bytes / 10 packets, then 1500 / 15, checkpointed.
fn first_run() -> (State, Totals) {
    let mut s = State::new();
    s.ingest(&at(0, 10, 1000, 10, 1));
    s.ingest(&at(1000, 10, 1500, 15, 2));
    let c = s.checkpoint(true);
    // Everything so far goes into the history once.
    assert_eq!(added(&c), (1500, 1500, 1500));
    (s, c.totals)
}

fn eth0() -> Vec<(String, u32)> {
    vec![("eth0".into(), 2)]
}

#[test]
fn a_restart_on_the_same_maps_goes_on_from_their_counters() {
    let (_, saved) = first_run();
    let mut s = State::new();
    s.restore(&saved, at(0, 10, 0, 0, 0).epoch, &eth0());
    // The pinned maps counted on while the daemon was down: 1800 / 18 now.
    s.ingest(&at(5000, 10, 1800, 18, 3));
    assert_eq!(seen(&s), (1800, 18, 1800, 18, 3));
    // The history gets the 300 bytes of the downtime, so it still sums to the totals.
    assert_eq!(added(&s.checkpoint(true)), (300, 300, 300));
}

#[test]
fn new_maps_add_to_the_carried_totals() {
    let (_, saved) = first_run();
    let mut s = State::new();
    // A reboot: maps 11 start from zero and hold 200 / 2.
    s.restore(&saved, at(0, 11, 0, 0, 0).epoch, &eth0());
    s.ingest(&at(5000, 11, 200, 2, 1));
    assert_eq!(seen(&s), (1700, 17, 1700, 17, 3));
    assert_eq!(added(&s.checkpoint(true)), (200, 200, 200));
}

#[test]
fn replaced_maps_are_read_to_the_end_then_the_new_ones_add_on() {
    let (_, saved) = first_run();
    let mut s = State::new();
    // An upgrade: the old maps 10 are read once more at their end (1600 / 16), then the new
    // maps 12 count from zero (50 / 1).
    s.restore(&saved, at(0, 10, 0, 0, 0).epoch, &eth0());
    s.ingest(&at(5000, 10, 1600, 16, 2));
    s.ingest(&at(6000, 12, 50, 1, 0));
    assert_eq!(seen(&s), (1650, 17, 1650, 17, 2));
    assert_eq!(added(&s.checkpoint(true)), (150, 150, 150));
}

#[test]
fn new_maps_in_a_running_state_are_not_mistaken_for_old_ones() {
    let mut s = State::new();
    s.ingest(&at(0, 10, 1000, 10, 0));
    // The new maps already hold more than the old ones did: a reset that no counter going
    // backwards would reveal. The epoch does: 1000 + 1200.
    s.ingest(&at(1000, 11, 1200, 12, 0));
    assert_eq!(seen(&s), (2200, 22, 2200, 22, 0));
}

#[test]
fn reset_zeroes_totals_hides_hosts_and_keeps_the_history_exact() {
    let (mut s, _) = first_run();
    s.reset(SystemTime::UNIX_EPOCH + std::time::Duration::from_hours(500_000));
    assert_eq!(seen(&s), (0, 0, 0, 0, 0));
    assert!(
        s.each_host().next().is_none(),
        "no host counted since the reset"
    );
    // A full checkpoint follows a reset: the (zero) host totals are written even though
    // nothing changed, and nothing is added to the history.
    let c = s.checkpoint(false);
    assert_eq!(c.totals.hosts.len(), 1);
    assert_eq!(added(&c), (0, 0, 0));
    assert_eq!(c.totals.since_ms, Some(1_800_000_000_000));
    // 1500 → 1700 raw: 200 since the reset, and 200 more in the history.
    s.ingest(&at(2000, 10, 1700, 17, 2));
    assert_eq!(seen(&s), (200, 2, 200, 2, 0));
    let after = s.checkpoint(true);
    assert_eq!(added(&after), (200, 200, 200));
    // A restart after the reset carries the reset totals (same maps: raw 1800 is 300 since).
    // What the database holds: the latest row of each entity.
    let saved = after.totals;
    assert_eq!(saved.hosts.len(), 1);
    let mut r = State::new();
    r.restore(&saved, at(0, 10, 0, 0, 0).epoch, &eth0());
    r.ingest(&at(3000, 10, 1800, 18, 2));
    assert_eq!(seen(&r), (300, 3, 300, 3, 0));
}

#[test]
fn only_changed_hosts_are_checkpointed_and_hosts_only_when_asked() {
    let (mut s, _) = first_run();
    s.ingest(&at(2000, 10, 1500, 15, 2));
    let c = s.checkpoint(true);
    assert!(c.totals.hosts.is_empty(), "nothing changed");
    assert_eq!(
        c.totals.interfaces.len(),
        1,
        "interfaces are always written"
    );
    s.ingest(&at(3000, 10, 1600, 16, 2));
    let c = s.checkpoint(false);
    assert_eq!(added(&c), (100, 100, 0));
    // The host's 100 wait for the next host checkpoint.
    assert_eq!(added(&s.checkpoint(true)), (0, 0, 100));
}

#[test]
fn totals_survive_the_database() {
    let dir = std::env::temp_dir().join(format!("ntop-carry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = DataDir::open(&dir).unwrap();
    let (mut s, _) = first_run();
    s.ingest(&at(2000, 10, 1700, 17, 4));
    let c = s.checkpoint(true);
    {
        let mut h = History::open(&data, HistoryConfig::default()).unwrap();
        h.commit(c.at, &c.points, c.at, c.totals.clone()).unwrap();
    }
    let h = History::open(&data, HistoryConfig::default()).unwrap();
    let back = h.load_totals().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(back, c.totals);
    assert_eq!(back.interfaces[0].proto.len(), 2 * PROTO_SLOTS as usize);
    let mut r = State::new();
    r.restore(&back, at(0, 11, 0, 0, 0).epoch, &eth0());
    r.ingest(&at(9000, 11, 10, 1, 1));
    assert_eq!(seen(&r), (1710, 18, 1710, 18, 5));
    let h = r.host_entries(HOST.parse().unwrap());
    assert_eq!(h[0].sent.bytes, 0);
    // First seen in the first run's first sample (at `T0`), not in this run's.
    assert_eq!(
        h[0].first_seen,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(crate::state::tests::T0)
    );
}
