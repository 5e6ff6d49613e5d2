//! Monotonic totals from the kernel's cumulative counters, surviving counter resets.
//!
//! Runs inside [`State::ingest`](super::State::ingest), i.e. on the collector's thread.
//!
//! The kernel counters only grow, unless their map was recreated (the programs were reloaded):
//! then they restart from zero. The counters of one map entry (or one map) restart together, so
//! resets are detected per *group*: if any raw value of a group is below the value it had at the
//! previous poll, the whole group starts afresh, and its previous totals become its *offset*.
//! A total is always `offset + raw`, so totals never go backwards and increases are never
//! negative.

use ntop_common::counters::Counter;

/// A cumulative value the kernel keeps: a `u64` or a [`Counter`] (bytes and packets).
pub(super) trait Cumulative: Copy {
    /// Whether any component of `self` is below the same component of `other`.
    fn below(self, other: Self) -> bool;
    /// Component-wise sum, wrapping like the kernel's counters.
    fn plus(self, other: Self) -> Self;
    /// Component-wise difference, wrapping like the kernel's counters.
    fn minus(self, other: Self) -> Self;
}

impl Cumulative for u64 {
    fn below(self, other: Self) -> bool {
        self < other
    }
    fn plus(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn minus(self, other: Self) -> Self {
        self.wrapping_sub(other)
    }
}

impl Cumulative for Counter {
    fn below(self, other: Self) -> bool {
        self.bytes < other.bytes || self.packets < other.packets
    }
    fn plus(self, other: Self) -> Self {
        Self {
            bytes: self.bytes.wrapping_add(other.bytes),
            packets: self.packets.wrapping_add(other.packets),
        }
    }
    fn minus(self, other: Self) -> Self {
        Self {
            bytes: self.bytes.wrapping_sub(other.bytes),
            packets: self.packets.wrapping_sub(other.packets),
        }
    }
}

/// Whether any value of `raw` is below the raw value it had at the previous poll, which is
/// `total - offset` (`offset` `None` means zero).
pub(super) fn went_backwards<T: Cumulative>(total: &[T], offset: Option<&[T]>, raw: &[T]) -> bool {
    debug_assert_eq!(total.len(), raw.len());
    match offset {
        None => raw.iter().zip(total).any(|(r, t)| r.below(*t)),
        Some(offset) => raw
            .iter()
            .zip(total)
            .zip(offset)
            .any(|((r, t), o)| r.below(t.minus(*o))),
    }
}

/// Sets `total = offset + raw`; if `delta` is given, writes each value's increase into it.
pub(super) fn rebase<T: Cumulative>(
    total: &mut [T],
    offset: Option<&[T]>,
    raw: &[T],
    delta: Option<&mut [T]>,
) {
    debug_assert_eq!(total.len(), raw.len());
    let mut delta = delta.map(<[T]>::iter_mut);
    for (i, (t, r)) in total.iter_mut().zip(raw).enumerate() {
        let new = match offset {
            Some(offset) => offset[i].plus(*r),
            None => *r,
        };
        if let Some(d) = delta.as_mut().and_then(Iterator::next) {
            *d = new.minus(*t);
        }
        *t = new;
    }
}

/// One poll of a group whose offset is stored densely: detects a reset, then rebases.
pub(super) fn advance<T: Cumulative>(
    total: &mut [T],
    offset: &mut Option<Box<[T]>>,
    raw: &[T],
    delta: Option<&mut [T]>,
) {
    if went_backwards(total, offset.as_deref(), raw) {
        *offset = Some(Box::from(&*total));
    }
    rebase(total, offset.as_deref(), raw, delta);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_without_offset() {
        let mut total = [0_u64, 0];
        let mut offset = None;
        let mut delta = [0_u64; 2];
        advance(&mut total, &mut offset, &[5, 7], Some(&mut delta));
        assert_eq!((total, delta), ([5, 7], [5, 7]));
        advance(&mut total, &mut offset, &[8, 7], Some(&mut delta));
        assert_eq!((total, delta), ([8, 7], [3, 0]));
        assert!(offset.is_none());
    }

    #[test]
    fn reset_of_one_value_restarts_the_group() {
        let mut total = [10_u64, 20];
        let mut offset = None;
        let mut delta = [0_u64; 2];
        // The first value went backwards: both restart; the second's 25 is all new.
        advance(&mut total, &mut offset, &[3, 25], Some(&mut delta));
        assert_eq!((total, delta), ([13, 45], [3, 25]));
        assert_eq!(offset.as_deref(), Some(&[10_u64, 20][..]));
        // Growth after the reset is measured against the new raw values.
        advance(&mut total, &mut offset, &[4, 25], Some(&mut delta));
        assert_eq!((total, delta), ([14, 45], [1, 0]));
        // A second reset stacks on the first.
        advance(&mut total, &mut offset, &[0, 1], Some(&mut delta));
        assert_eq!((total, delta), ([14, 46], [0, 1]));
    }

    #[test]
    fn counter_resets_on_packets_alone() {
        let c = |bytes, packets| Counter { bytes, packets };
        let mut total = [c(100, 2)];
        let mut offset = None;
        advance(&mut total, &mut offset, &[c(150, 1)], None);
        assert_eq!(total, [c(250, 3)]);
    }
}
