//! Read-side queries for the HTTP history routes: the per-host usage report (daily, weekly and
//! monthly totals from the host rows), which interfaces and hosts the database knows, and a
//! schema check for read-only connections.
//!
//! Runs in the HTTP handlers, on tokio's blocking pool, on a [`HistoryReader`] opened for the
//! request; nothing here writes.
//!
//! The report is computed from `host_ts`: minute rows cover the last
//! [`HistoryConfig::host_minutes_for`](super::HistoryConfig::host_minutes_for), hour rows the
//! time before (rolling minutes into hours moves them, so no interval is counted twice). One
//! query per (interface, address) sums the rows per local day in SQL; days are then added up
//! into ISO weeks (Monday first) and calendar months here. A day boundary of an offset that is
//! not a whole number of hours falls inside hour rows: such a row counts in the day its hour
//! starts in.

use std::{net::IpAddr, time::SystemTime};

use rusqlite::params;

use super::{Counters, HistoryError, HistoryReader, SCHEMA_VERSION, addr16, read_err, unix};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Days in a usage report's daily part (today included).
pub const USAGE_DAYS: usize = 31;
/// Weeks in its weekly part (this week included).
pub const USAGE_WEEKS: usize = 12;
/// Months in its monthly part (this month included).
pub const USAGE_MONTHS: usize = 12;

/// One period of a usage report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageBucket {
    /// Start of the period: local midnight in the report's offset, as unix seconds.
    pub start: i64,
    /// Traffic in the period: `rx` received by the host, `tx` sent by it.
    pub counters: Counters,
}

/// Daily, weekly and monthly totals of one address, oldest period first; the last period of
/// each part is the current (incomplete) one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageReport {
    /// The interfaces whose rows were summed (those the address has history on), in the order
    /// the database first saw them.
    pub interfaces: Vec<String>,
    /// [`USAGE_DAYS`] days.
    pub daily: Vec<UsageBucket>,
    /// [`USAGE_WEEKS`] weeks, starting on Mondays.
    pub weekly: Vec<UsageBucket>,
    /// [`USAGE_MONTHS`] calendar months.
    pub monthly: Vec<UsageBucket>,
}

impl HistoryReader {
    /// Checks that the file holds a schema this build reads.
    ///
    /// # Errors
    /// [`HistoryError::NewerVersion`] for a file of a newer ntop, [`HistoryError::Open`] for a
    /// file without ntop's schema, [`HistoryError::Read`] when it cannot be read.
    pub fn check_schema(&self) -> Result<(), HistoryError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| read_err(&self.path, &e))?;
        if version > SCHEMA_VERSION {
            return Err(HistoryError::NewerVersion {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            return Err(HistoryError::Open {
                path: self.path.clone(),
                what: "it holds no ntop history (schema version 0); ntop creates the schema \
                       when it starts recording, and moves a foreign file aside then"
                    .into(),
                source: None,
            });
        }
        Ok(())
    }

    /// The interfaces the database has rows for, in the order it first saw them.
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn interface_names(&self) -> Result<Vec<String>, HistoryError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut st = self
                .conn
                .prepare_cached("SELECT name FROM ifaces ORDER BY id")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect()
        };
        run().map_err(|e| read_err(&self.path, &e))
    }

    /// The interfaces `addr` has host rows on, in the order the database first saw them.
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn host_interfaces(&self, addr: IpAddr) -> Result<Vec<String>, HistoryError> {
        Ok(self
            .host_ids(addr, None)?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// `(interface name, host id)` of every entry of `addr` (on `iface` only, if given).
    fn host_ids(
        &self,
        addr: IpAddr,
        iface: Option<&str>,
    ) -> Result<Vec<(String, i64)>, HistoryError> {
        // ifaces is small: walk it and look each (iface, addr) up in the UNIQUE index, instead
        // of scanning every host (CROSS JOIN fixes the loop order).
        let run = || -> rusqlite::Result<Vec<(String, i64)>> {
            let mut st = self.conn.prepare_cached(
                "SELECT i.name, h.id FROM ifaces i CROSS JOIN hosts h
                 WHERE h.iface = i.id AND h.addr = ?1 AND (?2 IS NULL OR i.name = ?2)
                 ORDER BY i.id",
            )?;
            let rows = st.query_map(params![&addr16(addr)[..], iface], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
            rows.collect()
        };
        run().map_err(|e| read_err(&self.path, &e))
    }

    /// The usage report of `addr` at `now`: on `iface`, or summed over every interface it has
    /// rows on. Periods are local to the fixed offset `offset_secs` east of UTC (`0` for UTC).
    /// The writer keeps the current minute of host deltas in memory, so the report lags by up
    /// to a minute.
    ///
    /// # Errors
    /// [`HistoryError::Read`].
    pub fn usage(
        &self,
        addr: IpAddr,
        iface: Option<&str>,
        now: SystemTime,
        offset_secs: i64,
    ) -> Result<UsageReport, HistoryError> {
        let periods = Periods::new(unix(now), offset_secs);
        let hosts = self.host_ids(addr, iface)?;
        let mut report = periods.empty_report();
        // Rows from local midnight of the earliest day on; `t + offset` stays ≥ 0, so SQLite's
        // integer division is the floor.
        let from = (periods.start_day * DAY - offset_secs)
            .max(-offset_secs)
            .max(0);
        let to = periods.end_day * DAY - offset_secs;
        let run = |host: i64| -> rusqlite::Result<Vec<(i64, Counters)>> {
            let mut st = self.conn.prepare_cached(
                "SELECT (t + ?1) / 86400 AS day, sum(rxb), sum(rxp), sum(txb), sum(txp)
                 FROM host_ts WHERE host = ?2 AND res IN (60, 3600) AND t >= ?3 AND t < ?4
                 GROUP BY day",
            )?;
            let rows = st.query_map(params![offset_secs, host, from, to], |r| {
                let g = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok((
                    r.get(0)?,
                    Counters {
                        rx_bytes: g(1)?,
                        rx_packets: g(2)?,
                        tx_bytes: g(3)?,
                        tx_packets: g(4)?,
                    },
                ))
            })?;
            rows.collect()
        };
        for (name, host) in hosts {
            for (day, c) in run(host).map_err(|e| read_err(&self.path, &e))? {
                periods.add(&mut report, day, &c);
            }
            report.interfaces.push(name);
        }
        Ok(report)
    }
}

/// The periods of a report, as local day numbers (days since 1970-01-01 in the offset).
#[derive(Clone, Copy, Debug)]
struct Periods {
    /// Seconds east of UTC.
    offset: i64,
    /// The first day of the daily part.
    first_day: i64,
    /// The Monday of the first week.
    first_week: i64,
    /// `year * 12 + month - 1` of the first month.
    first_month: i64,
    /// The earliest day any period covers.
    start_day: i64,
    /// The day after the last day any period covers.
    end_day: i64,
}

impl Periods {
    fn new(now: i64, offset: i64) -> Self {
        let today = (now + offset).div_euclid(DAY);
        let this_week = week_start(today);
        let (y, m, _) = civil_from_days(today);
        let this_month = y * 12 + i64::from(m) - 1;
        let first_day = today - (count(USAGE_DAYS) - 1);
        let first_week = this_week - 7 * (count(USAGE_WEEKS) - 1);
        let first_month = this_month - (count(USAGE_MONTHS) - 1);
        Self {
            offset,
            first_day,
            first_week,
            first_month,
            start_day: first_day.min(first_week).min(month_start(first_month)),
            end_day: (today + 1)
                .max(this_week + 7)
                .max(month_start(this_month + 1)),
        }
    }

    fn empty_report(&self) -> UsageReport {
        let bucket = |day: i64| UsageBucket {
            start: day * DAY - self.offset,
            counters: Counters::default(),
        };
        UsageReport {
            interfaces: Vec::new(),
            daily: (0..count(USAGE_DAYS))
                .map(|k| bucket(self.first_day + k))
                .collect(),
            weekly: (0..count(USAGE_WEEKS))
                .map(|k| bucket(self.first_week + 7 * k))
                .collect(),
            monthly: (0..count(USAGE_MONTHS))
                .map(|k| bucket(month_start(self.first_month + k)))
                .collect(),
        }
    }

    /// Adds the traffic of local day `day` to the periods it falls in.
    fn add(&self, report: &mut UsageReport, day: i64, c: &Counters) {
        let slot = |k: i64, n: usize| usize::try_from(k).ok().filter(|k| *k < n);
        if let Some(i) = slot(day - self.first_day, USAGE_DAYS) {
            report.daily[i].counters.add(c);
        }
        if let Some(i) = slot((week_start(day) - self.first_week) / 7, USAGE_WEEKS) {
            report.weekly[i].counters.add(c);
        }
        let (y, m, _) = civil_from_days(day);
        if let Some(i) = slot(y * 12 + i64::from(m) - 1 - self.first_month, USAGE_MONTHS) {
            report.monthly[i].counters.add(c);
        }
    }
}

/// A period count as a day offset.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The Monday on or before `day` (1970-01-01 was a Thursday).
fn week_start(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

/// The first day of month number `ym` (`year * 12 + month - 1`).
fn month_start(ym: i64) -> i64 {
    let m = u32::try_from(ym.rem_euclid(12) + 1).unwrap_or(1);
    days_from_civil(ym.div_euclid(12), m, 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day number (inverse of
/// [`days_from_civil`]).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for d in -800_000..800_000 {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
        }
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2024-02-26 was a Monday, 2024-03-03 a Sunday.
        let monday = days_from_civil(2024, 2, 26);
        for d in monday..monday + 7 {
            assert_eq!(week_start(d), monday);
        }
        assert_eq!(week_start(monday - 1), monday - 7);
    }
}
