//! Totals that outlive the kernel maps: carried over from an earlier run ([`State::restore`]),
//! written out with the history ([`State::checkpoint`]), and set back to zero on an admin's
//! request ([`State::reset`]).
//!
//! Who runs it: `restore` runs once at start-up on the main thread, before the collector
//! starts (or on the persister thread, when the database could only be read later);
//! `checkpoint` runs on the persister thread after each poll; `reset` in an HTTP handler. All
//! of them hold the state's write lock.
//!
//! Every total is `offset + raw`, `raw` being what the kernel map holds. Carrying a row of an
//! earlier run adds to the offset what the current maps do not already hold: everything (the
//! maps are new: another [`Epoch`]) or only the row's own offset (the same maps, re-adopted
//! from their pins: they counted on while the daemon was down). A checkpoint remembers the
//! totals it wrote, so the next one writes exactly the increase since: the history on disk sums
//! to the totals on disk, across restarts, resets and new maps.

use std::time::{SystemTime, UNIX_EPOCH};

use ntop_common::counters::{Counter, HostCounters, HostKey, RECEIVED, SENT};

use super::{Host, Interface, SLOTS, State, epoch_ms, from_epoch_ms, monotonic::Cumulative};
use crate::{
    history::{Counters, ErrorTotals, HostTotals, IfaceTotals, Points, Totals, addr_of},
    sample::Epoch,
};

/// What one checkpoint hands to the history store.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The time of the poll the state last took in.
    pub at: SystemTime,
    /// Increases since the previous checkpoint: interfaces and protocols always, hosts when
    /// asked for.
    pub points: Points,
    /// The totals now: every interface, the error counters, and the hosts that changed (all
    /// hosts after a reset or new maps).
    pub totals: Totals,
}

/// Adds `carried` to each of `values`.
fn add_all<T: Cumulative>(values: &mut [T], carried: &[T]) {
    for (v, c) in values.iter_mut().zip(carried) {
        *v = v.plus(*c);
    }
}

/// Adds `carried` to a sparse offset (`None`: zero).
fn add_offset<T: Cumulative + Default>(offset: &mut Option<Box<[T]>>, carried: &[T]) {
    let o = offset.get_or_insert_with(|| vec![T::default(); carried.len()].into_boxed_slice());
    add_all(o, carried);
}

/// What an earlier run's row adds to the current maps' counts (see the module docs).
fn carried<'a, T>(total: &'a [T], offset: Option<&'a [T]>, same_epoch: bool) -> Option<&'a [T]> {
    if same_epoch { offset } else { Some(total) }
}

fn host_from(flat: &[Counter]) -> HostCounters {
    let mut h = HostCounters::default();
    h.c.as_flattened_mut().copy_from_slice(flat);
    h
}

/// Applies an earlier run's row to an interface; `fresh`: it was created for the row (nothing
/// counted in this run yet), so its totals become the row's.
pub(super) fn apply_iface(iface: &mut Interface, row: &IfaceTotals, same_epoch: bool) {
    let fresh = iface.proto_total.iter().all(|c| *c == Counter::default());
    if let Some(c) = carried(&row.proto, row.proto_offset.as_deref(), same_epoch) {
        if !fresh {
            add_all(&mut iface.proto_total, c);
        }
        add_offset(&mut iface.proto_offset, c);
    }
    if fresh {
        iface.proto_total.copy_from_slice(&row.proto);
    }
    add_all(&mut iface.proto_checkpoint, &row.proto);
    let other_offset = row.other_offset.as_ref().map(|o| o.c.as_flattened());
    if let Some(c) = carried(row.other.c.as_flattened(), other_offset, same_epoch) {
        if !fresh {
            add_all(iface.other_total.c.as_flattened_mut(), c);
        }
        add_offset(&mut iface.other_offset, c);
    }
    if fresh {
        iface.other_total = row.other;
    }
    for dir in 0..2 {
        iface.dir_total[dir] = super::sum(&iface.proto_total[dir * SLOTS..(dir + 1) * SLOTS]);
    }
}

impl State {
    /// Seeds the state with the totals of an earlier run, read from the data directory.
    /// `epoch` is that of the next sample to be taken in (the replaced maps' when
    /// the start-up replaced pinned programs, else the kernel's); `interfaces` the monitored
    /// interfaces (name, ifindex), to place the hosts. Rows of other interfaces are skipped.
    /// Call it before the first [`State::ingest`]; later calls add the rows to what was
    /// counted meanwhile.
    pub fn restore(&mut self, totals: &Totals, epoch: Epoch, interfaces: &[(String, u32)]) {
        let epoch = *self.epoch.get_or_insert(epoch);
        if let Some(since) = totals.since_ms {
            self.since_ms = Some(self.since_ms.map_or(since, |s| s.min(since)));
        }
        for row in &totals.interfaces {
            match self.interfaces.iter_mut().find(|i| i.name == row.name) {
                Some(iface) => apply_iface(iface, row, row.epoch == epoch),
                None => self.restored_ifaces.push(row.clone()),
            }
        }
        if let Some(row) = &totals.errors {
            let n = self.error_total.len().min(row.totals.len());
            let fresh = self.error_total.iter().all(|e| *e == 0);
            if let Some(c) = carried(
                &row.totals[..n],
                row.offset.as_deref().map(|o| &o[..n.min(o.len())]),
                row.epoch == epoch,
            ) {
                if !fresh {
                    add_all(&mut self.error_total, c);
                }
                add_offset(&mut self.error_offset, c);
            }
            if fresh {
                self.error_total[..n].copy_from_slice(&row.totals[..n]);
            }
        }
        let ifindex_of = |name: &str| {
            interfaces
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, i)| *i)
                .or_else(|| {
                    self.interfaces
                        .iter()
                        .find(|i| i.name == name)
                        .map(|i| i.ifindex)
                })
        };
        let placed: Vec<(HostKey, &HostTotals)> = totals
            .hosts
            .iter()
            .filter_map(|row| {
                let ifindex = ifindex_of(&row.iface)?;
                Some((
                    HostKey {
                        addr: row.addr,
                        ifindex,
                    },
                    row,
                ))
            })
            .collect();
        self.hosts.reserve(placed.len());
        self.host_index.reserve(placed.len());
        for (key, row) in placed {
            self.restore_host(key, row, row.epoch == epoch);
        }
    }

    fn restore_host(&mut self, key: HostKey, row: &HostTotals, same_epoch: bool) {
        let row_total = [row.totals.total(SENT), row.totals.total(RECEIVED)];
        let carried = carried(
            row.totals.c.as_flattened(),
            row.offset.as_ref().map(|o| o.c.as_flattened()),
            same_epoch,
        )
        .map(host_from);
        let index = if let Some(&index) = self.host_index.get(&key) {
            let host = &mut self.hosts[index as usize];
            if let Some(c) = &carried {
                add_all(host.totals.c.as_flattened_mut(), c.c.as_flattened());
            }
            add_all(&mut host.checkpoint, &row_total);
            host.first_seen_ms = host.first_seen_ms.min(row.first_seen_ms);
            host.last_seen_ms = host.last_seen_ms.max(row.last_seen_ms);
            index
        } else {
            self.insert_host(Host {
                key,
                generation: 0,
                totals: row.totals,
                delta: [Counter::default(); 2],
                checkpoint: row_total,
                first_seen_ms: row.first_seen_ms,
                last_seen_ms: row.last_seen_ms,
            })
        };
        if let Some(c) = carried {
            let o = self.host_offsets.entry(index).or_default();
            add_all(o.c.as_flattened_mut(), c.c.as_flattened());
        }
    }

    /// New maps (another [`Epoch`]): their counters start from zero, so every total so far
    /// becomes an offset.
    pub(super) fn begin_epoch(&mut self) {
        for iface in &mut self.interfaces {
            iface.proto_offset = Some(iface.proto_total.clone());
            iface.other_offset = Some(Box::from(iface.other_total.c.as_flattened()));
        }
        self.error_offset = Some(Box::from(&self.error_total[..]));
        for (index, host) in (0_u32..).zip(&self.hosts) {
            self.host_offsets.insert(index, host.totals);
        }
        self.last_order.clear();
        self.full_checkpoint = true;
        self.pairs.begin_epoch();
    }

    /// What changed since the last checkpoint, as history points and totals rows; the
    /// checkpoint then moves to now. Hosts are included when `hosts` is set (the persister
    /// asks once a minute: per-host history has minute resolution).
    pub fn checkpoint(&mut self, hosts: bool) -> Checkpoint {
        let epoch = self.epoch.unwrap_or_default();
        let mut points = Points::default();
        let mut totals = Totals {
            since_ms: self.since_ms,
            ..Totals::default()
        };
        for iface in &mut self.interfaces {
            let mut sum = Counters::default();
            for (id, slot) in (0_u16..).zip(0..SLOTS) {
                let d = |i: usize| iface.proto_total[i].minus(iface.proto_checkpoint[i]);
                let (rx, tx) = (d(slot), d(SLOTS + slot));
                if rx != Counter::default() || tx != Counter::default() {
                    let c = counters(rx, tx);
                    sum.add(&c);
                    points.protocols.push((iface.name.clone(), id, c));
                }
            }
            if sum != Counters::default() {
                points.interfaces.push((iface.name.clone(), sum));
            }
            iface.proto_checkpoint.copy_from_slice(&iface.proto_total);
            totals.interfaces.push(IfaceTotals {
                name: iface.name.clone(),
                epoch,
                proto: iface.proto_total.clone(),
                proto_offset: iface.proto_offset.clone(),
                other: iface.other_total,
                other_offset: iface.other_offset.as_deref().map(host_from),
            });
        }
        totals.errors = Some(ErrorTotals {
            epoch,
            totals: self.error_total.to_vec(),
            offset: self.error_offset.as_deref().map(<[u64]>::to_vec),
        });
        if hosts || self.full_checkpoint {
            let full = std::mem::take(&mut self.full_checkpoint);
            self.checkpoint_hosts(epoch, full, &mut points, &mut totals);
        }
        Checkpoint {
            at: self.polled_at.unwrap_or(UNIX_EPOCH),
            points,
            totals,
        }
    }

    fn checkpoint_hosts(&mut self, epoch: Epoch, full: bool, points: &mut Points, t: &mut Totals) {
        let names: Vec<(u32, String)> = self
            .interfaces
            .iter()
            .map(|i| (i.ifindex, i.name.clone()))
            .collect();
        for (index, host) in (0_u32..).zip(&mut self.hosts) {
            let Some((_, name)) = names.iter().find(|(i, _)| *i == host.key.ifindex) else {
                continue;
            };
            let now = [host.totals.total(SENT), host.totals.total(RECEIVED)];
            let d = [
                now[SENT].minus(host.checkpoint[SENT]),
                now[RECEIVED].minus(host.checkpoint[RECEIVED]),
            ];
            let changed = d != [Counter::default(); 2];
            if changed {
                points.hosts.push((
                    name.clone(),
                    addr_of(host.key.addr),
                    counters(d[RECEIVED], d[SENT]),
                ));
                host.checkpoint = now;
            }
            if changed || full {
                t.hosts.push(HostTotals {
                    iface: name.clone(),
                    addr: host.key.addr,
                    epoch,
                    totals: host.totals,
                    offset: self.host_offsets.get(&index).copied(),
                    first_seen_ms: host.first_seen_ms,
                    last_seen_ms: host.last_seen_ms,
                });
            }
        }
    }

    /// Sets every total to zero (the admin's "reset statistics"); counting goes on from here.
    /// The history is kept. Hosts disappear from the listings until they send or receive again.
    pub fn reset(&mut self, now: SystemTime) {
        fn zero<T: Cumulative + Default>(
            total: &mut [T],
            offset: &mut Option<Box<[T]>>,
            checkpoint: Option<&mut [T]>,
        ) {
            let o =
                offset.get_or_insert_with(|| vec![T::default(); total.len()].into_boxed_slice());
            for (o, t) in o.iter_mut().zip(total.iter()) {
                *o = o.minus(*t);
            }
            if let Some(cp) = checkpoint {
                for (c, t) in cp.iter_mut().zip(total.iter()) {
                    *c = c.minus(*t);
                }
            }
            total.fill(T::default());
        }
        for iface in &mut self.interfaces {
            zero(
                &mut iface.proto_total,
                &mut iface.proto_offset,
                Some(&mut iface.proto_checkpoint),
            );
            zero(
                iface.other_total.c.as_flattened_mut(),
                &mut iface.other_offset,
                None,
            );
            iface.proto_delta.fill(Counter::default());
            iface.dir_total = [Counter::default(); 2];
            iface.dir_delta = [Counter::default(); 2];
        }
        zero(&mut self.error_total, &mut self.error_offset, None);
        for (index, host) in (0_u32..).zip(&mut self.hosts) {
            let o = self.host_offsets.entry(index).or_default();
            for (o, t) in
                o.c.as_flattened_mut()
                    .iter_mut()
                    .zip(host.totals.c.as_flattened())
            {
                *o = o.minus(*t);
            }
            host.checkpoint = [
                host.checkpoint[SENT].minus(host.totals.total(SENT)),
                host.checkpoint[RECEIVED].minus(host.totals.total(RECEIVED)),
            ];
            host.totals = HostCounters::default();
            host.delta = [Counter::default(); 2];
        }
        self.since_ms = Some(epoch_ms(now));
        self.full_checkpoint = true;
        self.pairs.reset(now);
    }

    /// Makes the next checkpoint write every host, changed or not (the database was
    /// unavailable, or is new).
    pub fn request_full_checkpoint(&mut self) {
        self.full_checkpoint = true;
    }

    /// Since when the totals count: the first start of ntop on this data directory, or the
    /// last reset (`None` before the first poll of a new data directory).
    #[must_use]
    pub fn counting_since(&self) -> Option<SystemTime> {
        self.since_ms.map(from_epoch_ms)
    }

    /// The maps the last sample came from.
    #[must_use]
    pub fn epoch(&self) -> Option<Epoch> {
        self.epoch
    }
}

/// A host or interface is listed once it has counted something (since the last reset).
pub(super) fn counted(totals: &HostCounters) -> bool {
    totals.total(SENT) != Counter::default() || totals.total(RECEIVED) != Counter::default()
}

fn counters(rx: Counter, tx: Counter) -> Counters {
    Counters {
        rx_bytes: rx.bytes,
        rx_packets: rx.packets,
        tx_bytes: tx.bytes,
        tx_packets: tx.packets,
    }
}

#[cfg(test)]
#[path = "carry_tests.rs"]
mod tests;
