use std::{
    fs,
    net::Ipv4Addr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::*;

/// A fresh temporary data directory, removed on drop.
struct Tmp(PathBuf, DataDir);

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tmp(name: &str) -> Tmp {
    let p = std::env::temp_dir().join(format!("ntop-hist-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    let d = DataDir::open(&p).unwrap();
    Tmp(p, d)
}

/// A fixed, hour-aligned start time.
const T0: u64 = 1_790_000_000 - 1_790_000_000 % 3600;

fn at(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + s)
}

fn c(i: u64) -> Counters {
    Counters {
        rx_bytes: 1000 + i % 97,
        rx_packets: 1 + i % 7,
        tx_bytes: 500 + i % 13,
        tx_packets: 1 + i % 3,
    }
}

fn points(i: u64, hosts: u32) -> Points {
    Points {
        interfaces: vec![("eth0".into(), c(i))],
        protocols: vec![
            ("eth0".into(), 3, c(i + 1)),
            ("eth0".into(), 5, Counters::default()),
        ],
        hosts: (0..hosts)
            .map(|h| {
                (
                    "eth0".into(),
                    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + h)),
                    c(i + u64::from(h)),
                )
            })
            .collect(),
    }
}

fn sum(rows: &[(SystemTime, Counters)]) -> Counters {
    let mut s = Counters::default();
    for (_, c) in rows {
        s.add(c);
    }
    s
}

fn total(range: std::ops::Range<u64>, f: impl Fn(u64) -> Counters) -> Counters {
    let mut s = Counters::default();
    for i in range {
        s.add(&f(i));
    }
    s
}

fn eth0() -> SeriesKey {
    SeriesKey::Interface("eth0".into())
}

fn host(h: u32) -> SeriesKey {
    SeriesKey::Host {
        iface: "eth0".into(),
        addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + h)),
    }
}

fn all() -> (SystemTime, SystemTime) {
    (UNIX_EPOCH, at(10 * 365 * 86_400))
}

#[test]
fn resolution_from_range() {
    assert_eq!(
        Resolution::for_range(Duration::from_hours(1)),
        Resolution::Second
    );
    assert_eq!(
        Resolution::for_range(Duration::from_secs(3601)),
        Resolution::Minute
    );
    assert_eq!(
        Resolution::for_range(Duration::from_hours(168)),
        Resolution::Minute
    );
    assert_eq!(
        Resolution::for_range(Duration::from_hours(192)),
        Resolution::Hour
    );
}

#[test]
fn seconds_sum_to_known_totals_and_downsampling_is_exact() {
    let t = tmp("sums");
    let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
    let n = 3 * 3600 + 17;
    for i in 0..n {
        h.record(at(i), &points(i, 3)).unwrap();
    }
    h.flush().unwrap();
    let want = total(0..n, c);
    let want_proto = total(0..n, |i| c(i + 1));
    let (from, to) = all();
    let secs = h
        .query(&eth0(), from, to, Some(Resolution::Second))
        .unwrap();
    assert_eq!(secs.len(), usize::try_from(n).unwrap());
    assert_eq!(sum(&secs), want);
    let host_want = total(0..n, |i| c(i + 2));
    assert_eq!(sum(&h.query(&host(2), from, to, None).unwrap()), host_want);

    // An hour later, the 1 s rows of the first 3 hours are minutes; days later, hours.
    h.downsample_and_expire(at(n + 3600)).unwrap();
    let secs = h
        .query(&eth0(), from, to, Some(Resolution::Second))
        .unwrap();
    assert!(secs.len() < 3600, "{}", secs.len());
    let mins = h
        .query(&eth0(), from, to, Some(Resolution::Minute))
        .unwrap();
    assert_eq!(sum(&mins), want);
    assert!(mins.iter().all(|(t, _)| unix(*t) % 60 == 0));
    let proto = SeriesKey::Protocol {
        iface: "eth0".into(),
        slot: 3,
    };
    assert_eq!(
        sum(&h.query(&proto, from, to, Some(Resolution::Minute)).unwrap()),
        want_proto
    );
    // The all-zero slot wrote nothing.
    let zero = SeriesKey::Protocol {
        iface: "eth0".into(),
        slot: 5,
    };
    assert!(h.query(&zero, from, to, None).unwrap().is_empty());

    h.downsample_and_expire(at(n + 8 * 86_400)).unwrap();
    let n_rows: i64 = h
        .conn()
        .query_row("SELECT count(*) FROM iface_ts WHERE res < 3600", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(n_rows, 0);
    let hours = h.query(&eth0(), from, to, Some(Resolution::Hour)).unwrap();
    assert_eq!(hours.len(), 4);
    assert_eq!(sum(&hours), want);
    assert_eq!(sum(&h.query(&proto, from, to, None).unwrap()), want_proto);
    assert_eq!(
        sum(&h.query(&host(2), from, to, Some(Resolution::Hour)).unwrap()),
        host_want
    );
    // The reader connection sees the same.
    let r = h.reader().unwrap();
    assert_eq!(sum(&r.query(&eth0(), from, to, None).unwrap()), want);
}

#[test]
fn retention_deletes_only_what_is_past_it() {
    let t = tmp("retention");
    let cfg = HistoryConfig {
        hours_for: Duration::from_hours(240),
        host_hours_for: Duration::from_hours(120),
        ..HistoryConfig::default()
    };
    let mut h = History::open(&t.1, cfg).unwrap();
    // One poll every 6 hours for 20 days.
    let step = 6 * 3600;
    for k in 0..80 {
        h.record(at(k * step), &points(k, 1)).unwrap();
    }
    h.flush().unwrap();
    let now = 20 * 86_400;
    h.downsample_and_expire(at(now)).unwrap();
    let (from, to) = all();
    let got = h.query(&eth0(), from, to, Some(Resolution::Hour)).unwrap();
    let keep_from = now - 10 * 86_400;
    let want = total(0..80, |k| {
        if k * step >= keep_from {
            c(k)
        } else {
            Counters::default()
        }
    });
    assert_eq!(sum(&got), want);
    assert_eq!(unix(got[0].0), i64::try_from(T0 + keep_from).unwrap());
    let host_from = now - 5 * 86_400;
    let hw = total(0..80, |k| {
        if k * step >= host_from {
            c(k)
        } else {
            Counters::default()
        }
    });
    assert_eq!(sum(&h.query(&host(0), from, to, None).unwrap()), hw);
}

#[test]
fn disk_budget_holds() {
    let t = tmp("budget");
    let budget = 2 << 20;
    let cfg = HistoryConfig {
        budget_bytes: budget,
        ..HistoryConfig::default()
    };
    let mut h = History::open(&t.1, cfg).unwrap();
    // 2000 hosts, one poll a minute for 2 hours: ~240k host rows, well over 2 MiB.
    for m in 0..120 {
        h.record(at(m * 60), &points(m, 2000)).unwrap();
    }
    h.flush().unwrap();
    let before = h.usage_bytes().unwrap();
    assert!(before > budget, "{before}");
    h.downsample_and_expire(at(120 * 60)).unwrap();
    let after = h.usage_bytes().unwrap();
    assert!(after <= budget, "{after} > {budget}");
    // The newest host rows survive, the oldest went first.
    let (from, to) = all();
    let rows = h
        .query(&host(7), from, to, Some(Resolution::Minute))
        .unwrap();
    assert!(!rows.is_empty());
    assert_eq!(
        unix(rows.last().unwrap().0),
        i64::try_from(T0 + 119 * 60).unwrap()
    );
    // Interface series are untouched.
    assert_eq!(
        sum(&h
            .query(&eth0(), from, to, Some(Resolution::Minute))
            .unwrap()),
        total(0..120, c)
    );
}

#[test]
fn reopen_keeps_data() {
    let t = tmp("reopen");
    {
        let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
        for i in 0..90 {
            h.record(at(i), &points(i, 2)).unwrap();
        }
        // Dropped without flush: Drop writes the current host minute.
    }
    let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
    assert!(h.moved_aside().is_none());
    for i in 90..100 {
        h.record(at(i), &points(i, 2)).unwrap();
    }
    h.flush().unwrap();
    let (from, to) = all();
    assert_eq!(
        sum(&h.query(&eth0(), from, to, None).unwrap()),
        total(0..100, c)
    );
    assert_eq!(
        sum(&h.query(&host(1), from, to, None).unwrap()),
        total(0..100, |i| c(i + 1))
    );
}

fn moved_aside_case(name: &str, damage: impl Fn(&std::path::Path)) {
    let t = tmp(name);
    {
        let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
        for i in 0..600 {
            h.record(at(i), &points(i, 20)).unwrap();
        }
    }
    let path = t.1.file(FILE_NAME);
    // Checkpoint the WAL into the file so damage hits real data.
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    damage(&path);
    let damaged = fs::read(&path).unwrap();
    let h = History::open(&t.1, HistoryConfig::default()).unwrap();
    let m = h.moved_aside().expect("moved aside").clone();
    assert!(
        m.to.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("history.db.corrupt-")
    );
    assert_eq!(
        fs::read(&m.to).unwrap(),
        damaged,
        "original bytes preserved"
    );
    let (from, to) = all();
    assert!(h.query(&eth0(), from, to, None).unwrap().is_empty());
    drop(h);
    let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
    assert!(h.moved_aside().is_none());
    h.record(at(0), &points(0, 1)).unwrap();
    assert_eq!(sum(&h.query(&eth0(), from, to, None).unwrap()), c(0));
}

#[test]
fn truncated_file_is_moved_aside() {
    moved_aside_case("trunc", |p| {
        let len = fs::metadata(p).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len / 3).unwrap();
    });
}

#[test]
fn short_file_is_moved_aside() {
    moved_aside_case("short", |p| {
        let f = fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(50).unwrap();
    });
}

#[test]
fn garbage_file_is_moved_aside() {
    moved_aside_case("garbage", |p| {
        let _ = fs::remove_file(format!("{}-wal", p.display()));
        let _ = fs::remove_file(format!("{}-shm", p.display()));
        fs::write(
            p,
            b"this is not a database, just some text that someone wrote here\n".repeat(100),
        )
        .unwrap();
    });
}

#[test]
fn damaged_pages_are_moved_aside() {
    moved_aside_case("pages", |p| {
        // Keep the header, scribble over the b-tree pages.
        let mut b = fs::read(p).unwrap();
        for x in b.iter_mut().skip(4096 + 8) {
            *x ^= 0x5a;
        }
        fs::write(p, b).unwrap();
    });
}

#[test]
fn newer_version_is_refused_and_left_alone() {
    let t = tmp("newer");
    drop(History::open(&t.1, HistoryConfig::default()).unwrap());
    let path = t.1.file(FILE_NAME);
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let before = fs::read(&path).unwrap();
    let Err(e) = History::open(&t.1, HistoryConfig::default()) else {
        panic!("opened")
    };
    let msg = e.to_string();
    assert!(matches!(e, HistoryError::NewerVersion { .. }), "{msg}");
    assert!(
        msg.contains("newer ntop")
            && msg.contains("upgrade ntop")
            && msg.contains("move the file aside"),
        "{msg}"
    );
    assert!(msg.contains("history.db"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn directory_in_place_of_the_file_is_an_error_naming_it() {
    let t = tmp("isdir");
    fs::create_dir(t.1.file(FILE_NAME)).unwrap();
    let Err(e) = History::open(&t.1, HistoryConfig::default()) else {
        panic!("opened")
    };
    let msg = e.to_string();
    assert!(
        msg.contains("history.db") && msg.contains("directory"),
        "{msg}"
    );
}

/// Disk full, injected with `max_page_count` (`SQLite` then fails with `SQLITE_FULL`, the code a
/// full file system gives): errors say so, points wait in the backlog, nothing is lost.
#[test]
fn disk_full_then_recovery_flushes_the_backlog() {
    let t = tmp("full");
    let mut h = History::open(&t.1, HistoryConfig::default()).unwrap();
    for i in 0..10 {
        h.record(at(i), &points(i, 2)).unwrap();
    }
    let pages: i64 = h
        .conn()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    h.conn()
        .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
        .unwrap();
    let mut failed = 0;
    for i in 10..400 {
        if let Err(e) = h.record(at(i), &points(i, 2)) {
            let msg = e.to_string();
            assert!(
                msg.contains("the disk is full") && msg.contains("history.db"),
                "{msg}"
            );
            failed += 1;
        }
    }
    assert!(failed > 0);
    assert!(h.backlog_len() > 0);
    h.conn()
        .execute_batch("PRAGMA max_page_count = 1073741823")
        .unwrap();
    h.record(at(400), &points(400, 2)).unwrap();
    h.flush().unwrap();
    assert_eq!(h.backlog_len(), 0);
    assert_eq!(h.dropped_points(), 0);
    let (from, to) = all();
    assert_eq!(
        sum(&h.query(&eth0(), from, to, None).unwrap()),
        total(0..401, c)
    );
    assert_eq!(
        sum(&h.query(&host(1), from, to, None).unwrap()),
        total(0..401, |i| c(i + 1))
    );
}

/// A read-only database, injected with `PRAGMA query_only` (`SQLITE_READONLY`, as for a file on
/// a read-only mount; tests run as root, which ignores mode bits). The backlog is bounded.
#[test]
fn read_only_then_recovery_with_bounded_backlog() {
    let t = tmp("ro");
    let cfg = HistoryConfig {
        backlog: 50,
        ..HistoryConfig::default()
    };
    let mut h = History::open(&t.1, cfg).unwrap();
    h.conn().execute_batch("PRAGMA query_only = ON").unwrap();
    for i in 0..80 {
        let e = h.record(at(i), &points(i, 1)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("read-only") && msg.contains("history.db"),
            "{msg}"
        );
    }
    assert_eq!(h.backlog_len(), 50);
    assert_eq!(h.dropped_points(), 30);
    h.conn().execute_batch("PRAGMA query_only = OFF").unwrap();
    h.record(at(80), &points(80, 1)).unwrap();
    let (from, to) = all();
    assert_eq!(
        sum(&h.query(&eth0(), from, to, None).unwrap()),
        total(30..81, c)
    );
}

/// An error-counter row whose length is not a whole number of counters is damage, named as
/// such, not half read.
#[test]
fn a_torn_error_counter_row_is_damage() {
    let t = tmp("torn-errors");
    drop(History::open(&t.1, HistoryConfig::default()).unwrap());
    {
        let conn = Connection::open(t.1.file(FILE_NAME)).unwrap();
        conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES ('errors', ?1)",
            [vec![1u8; 8 * 3 + 5]],
        )
        .unwrap();
    }
    let h = History::open(&t.1, HistoryConfig::default()).unwrap();
    let e = h.load_totals().expect_err("torn");
    assert!(
        e.to_string()
            .contains("damaged totals row (error counters)"),
        "{e}"
    );
}
