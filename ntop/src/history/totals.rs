//! Persistent totals: what the state carries from one run of the daemon to the next.
//!
//! Written by the persister thread (see [`crate::persist`]) in the same transaction as the
//! history points they match, and read once at start-up, before the first poll, to seed the
//! state ([`crate::state::State::restore`]).
//!
//! # What is kept, and why it is enough
//! The state's totals are `raw + offset`, where `raw` is what the kernel map holds now and
//! `offset` carries everything counted before those maps existed (or before a reset). A row
//! keeps an entity's `total` and `offset` together with the [`Epoch`] of the maps they refer to.
//! At the next start:
//! - the same epoch (the maps were pinned and re-adopted): the kernel went on counting while
//!   the daemon was down, so `raw` now already includes everything since the row was written,
//!   and `offset + raw` is exact whatever the row's age, even after `kill -9`;
//! - another epoch (a reboot, an unpinned restart, replaced programs): the new maps started from
//!   zero, so the whole `total` is carried.
//!
//! # Encoding
//! Counter arrays are little-endian `u64`s in BLOBs: a [`HostCounters`] is 20 of them, the
//! error counters one per kind. An interface's protocol counters (2 × 527 slots) are stored
//! sparsely as `(index: u16, bytes: u64, packets: u64)` for the non-zero slots only, 18 bytes
//! each. A BLOB of the wrong length is reported as damage, never half-read.

use std::{collections::HashMap, path::Path};

use ntop_common::{
    counters::{Counter, HostCounters},
    proto::PROTO_SLOTS,
};
use rusqlite::Connection;

use super::HistoryError;
use crate::sample::Epoch;

/// What is kept of one interface, keyed by its name (stable across reboots, unlike ifindex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceTotals {
    /// Interface name.
    pub name: String,
    /// The maps `proto` and `other` were last read from.
    pub epoch: Epoch,
    /// Totals per `[direction * PROTO_SLOTS + slot]`.
    pub proto: Box<[Counter]>,
    /// The offsets of `proto` (`None`: zero).
    pub proto_offset: Option<Box<[Counter]>>,
    /// Totals of the hosts that did not fit into the host map.
    pub other: HostCounters,
    /// Their offsets (`None`: zero).
    pub other_offset: Option<HostCounters>,
}

/// What is kept of one host on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostTotals {
    /// Interface name.
    pub iface: String,
    /// Address as in [`ntop_common::counters::HostKey::addr`].
    pub addr: [u8; 16],
    /// The maps `totals` was last read from.
    pub epoch: Epoch,
    /// Totals per direction and L4 class.
    pub totals: HostCounters,
    /// Their offsets (`None`: zero).
    pub offset: Option<HostCounters>,
    /// Milliseconds since the epoch.
    pub first_seen_ms: u64,
    /// Milliseconds since the epoch.
    pub last_seen_ms: u64,
}

/// What is kept of the error counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorTotals {
    /// The map they were last read from.
    pub epoch: Epoch,
    /// Totals by [`ntop_common::errors::ErrorKind`].
    pub totals: Vec<u64>,
    /// Their offsets (`None`: zero).
    pub offset: Option<Vec<u64>>,
}

/// A set of rows: what one commit writes, or everything a start-up reads back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Interfaces.
    pub interfaces: Vec<IfaceTotals>,
    /// Hosts.
    pub hosts: Vec<HostTotals>,
    /// Error counters.
    pub errors: Option<ErrorTotals>,
    /// Since when the totals count (the first start, or the last reset), ms since the epoch.
    pub since_ms: Option<u64>,
}

impl Totals {
    /// Whether there is nothing in it.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty()
            && self.hosts.is_empty()
            && self.errors.is_none()
            && self.since_ms.is_none()
    }
}

/// Little-endian `u64`s.
pub(super) fn encode_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Inverse of [`encode_u64s`]; `None` when the length is not `n` values.
pub(super) fn decode_u64s(blob: &[u8], n: usize) -> Option<Vec<u64>> {
    if blob.len() != n * 8 {
        return None;
    }
    Some(
        blob.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect(),
    )
}

/// A [`HostCounters`] as 20 `u64`s.
pub(super) fn encode_host(c: &HostCounters) -> Vec<u8> {
    let flat: Vec<u64> =
        c.c.as_flattened()
            .iter()
            .flat_map(|c| [c.bytes, c.packets])
            .collect();
    encode_u64s(&flat)
}

/// Inverse of [`encode_host`].
pub(super) fn decode_host(blob: &[u8]) -> Option<HostCounters> {
    let mut out = HostCounters::default();
    let flat = out.c.as_flattened_mut();
    let values = decode_u64s(blob, flat.len() * 2)?;
    for (c, v) in flat.iter_mut().zip(values.chunks_exact(2)) {
        *c = Counter {
            bytes: v[0],
            packets: v[1],
        };
    }
    Some(out)
}

/// The non-zero entries of `counters` as `(index, bytes, packets)`.
pub(super) fn encode_sparse(counters: &[Counter]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in counters.iter().enumerate() {
        if *c != Counter::default() {
            let i = u16::try_from(i).expect("at most 2 x 527 slots");
            out.extend_from_slice(&i.to_le_bytes());
            out.extend_from_slice(&c.bytes.to_le_bytes());
            out.extend_from_slice(&c.packets.to_le_bytes());
        }
    }
    out
}

/// Inverse of [`encode_sparse`] into `len` counters; `None` on a bad length or index.
pub(super) fn decode_sparse(blob: &[u8], len: usize) -> Option<Box<[Counter]>> {
    if !blob.len().is_multiple_of(18) {
        return None;
    }
    let mut out = vec![Counter::default(); len].into_boxed_slice();
    for e in blob.chunks_exact(18) {
        let i = usize::from(u16::from_le_bytes([e[0], e[1]]));
        let word = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap_or_default());
        *out.get_mut(i)? = Counter {
            bytes: word(2),
            packets: word(10),
        };
    }
    Some(out)
}

/// Reads every totals row; a damaged row is an error naming it, not a silent zero.
#[expect(
    clippy::too_many_lines,
    reason = "three tables read in turn, each in one place"
)]
pub(super) fn read(conn: &Connection, path: &Path) -> Result<Totals, HistoryError> {
    use rusqlite::types::Value;
    let slots = 2 * PROTO_SLOTS as usize;
    let damaged = |what: String| HistoryError::Read {
        path: path.to_owned(),
        what: format!(
            "damaged totals row ({what}); move the file aside to start new totals, or restore \
             it from a backup"
        ),
    };
    let r = |e: rusqlite::Error| super::read_err(path, &e);
    let mut epochs = HashMap::new();
    {
        let mut st = conn.prepare("SELECT id, text FROM epochs").map_err(r)?;
        let rows = st
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(r)?;
        for row in rows {
            let (id, text) = row.map_err(r)?;
            epochs.insert(id, Epoch::parse(&text).unwrap_or_default());
        }
    }
    let epoch = |id: i64| epochs.get(&id).copied().unwrap_or_default();
    let mut out = Totals::default();
    {
        let mut st = conn
            .prepare("SELECT name, epoch, proto, proto_off, other, other_off FROM iface_totals")
            .map_err(r)?;
        let rows = st
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, Option<Vec<u8>>>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, Option<Vec<u8>>>(5)?,
                ))
            })
            .map_err(r)?;
        for row in rows {
            let (name, e, proto, proto_off, other, other_off) = row.map_err(r)?;
            let bad = || damaged(format!("interface {name}"));
            out.interfaces.push(IfaceTotals {
                epoch: epoch(e),
                proto: decode_sparse(&proto, slots).ok_or_else(bad)?,
                proto_offset: proto_off
                    .map(|b| decode_sparse(&b, slots).ok_or_else(bad))
                    .transpose()?,
                other: decode_host(&other).ok_or_else(bad)?,
                other_offset: other_off
                    .map(|b| decode_host(&b).ok_or_else(bad))
                    .transpose()?,
                name,
            });
        }
    }
    {
        let mut st = conn
            .prepare("SELECT iface, addr, epoch, c, off, first_seen, last_seen FROM host_totals")
            .map_err(r)?;
        let rows = st
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, Option<Vec<u8>>>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, i64>(6)?,
                ))
            })
            .map_err(r)?;
        for row in rows {
            let (iface, addr, e, c, off, first, last) = row.map_err(r)?;
            let bad = || damaged(format!("a host on {iface}"));
            out.hosts.push(HostTotals {
                addr: addr.try_into().map_err(|_| bad())?,
                epoch: epoch(e),
                totals: decode_host(&c).ok_or_else(bad)?,
                offset: off.map(|b| decode_host(&b).ok_or_else(bad)).transpose()?,
                first_seen_ms: u64::try_from(first).unwrap_or(0),
                last_seen_ms: u64::try_from(last).unwrap_or(0),
                iface,
            });
        }
    }
    let meta = |k: &str| -> Result<Option<rusqlite::types::Value>, HistoryError> {
        conn.query_row("SELECT v FROM meta WHERE k = ?1", [k], |row| row.get(0))
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(r(e)),
            })
    };
    let kinds = ntop_common::errors::ERROR_KINDS as usize;
    if let Some(Value::Blob(b)) = meta("errors")? {
        // A newer build may count more kinds: read what this one knows, ignore the rest. A
        // length that is not a whole number of counters is damage.
        let bad = || damaged("error counters".into());
        let counters = |blob: &[u8]| {
            let mut v = decode_u64s(blob, blob.len() / 8).ok_or_else(bad)?;
            v.resize(kinds, 0);
            Ok::<_, HistoryError>(v)
        };
        let totals = counters(&b)?;
        let offset = match meta("errors_off")? {
            Some(Value::Blob(o)) => Some(counters(&o)?),
            _ => None,
        };
        let e = match meta("errors_epoch")? {
            Some(Value::Integer(id)) => epoch(id),
            _ => Epoch::default(),
        };
        out.errors = Some(ErrorTotals {
            epoch: e,
            totals,
            offset,
        });
    }
    if let Some(Value::Integer(since)) = meta("since_ms")? {
        out.since_ms = u64::try_from(since).ok();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip_and_reject_bad_lengths() {
        let mut h = HostCounters::default();
        h.c[1][3] = Counter {
            bytes: u64::MAX,
            packets: 7,
        };
        let blob = encode_host(&h);
        assert_eq!(blob.len(), 160);
        assert_eq!(decode_host(&blob), Some(h));
        assert_eq!(decode_host(&blob[..159]), None);

        let mut p = vec![Counter::default(); 1054];
        p[0] = Counter {
            bytes: 1,
            packets: 2,
        };
        p[1053] = Counter {
            bytes: 3 << 40,
            packets: 4,
        };
        let blob = encode_sparse(&p);
        assert_eq!(blob.len(), 36);
        assert_eq!(decode_sparse(&blob, 1054).as_deref(), Some(&p[..]));
        assert_eq!(decode_sparse(&blob, 1000), None, "index out of range");
        assert_eq!(decode_sparse(&blob[..35], 1054), None);

        assert_eq!(
            decode_u64s(&encode_u64s(&[1, 2, 3]), 3),
            Some(vec![1, 2, 3])
        );
        assert_eq!(decode_u64s(&[0; 16], 3), None);
    }
}
