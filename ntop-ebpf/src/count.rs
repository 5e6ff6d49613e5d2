//! Counting one packet into the maps.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{Global, bindings::BPF_NOEXIST, btf_maps::HashMap};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, L4_CLASSES, PairCounters, PairKey, RECEIVED, SENT},
    errors::ErrorKind,
    maps::Direction,
    parse::{Frame, Parsed, parse},
    proto::proto_index,
};

use crate::maps::{NTOP_ERRORS, NTOP_HOSTS, NTOP_IFSLOT, NTOP_OTHER, NTOP_PAIRS, NTOP_PROTO};

const NEG_EEXIST: i32 = -17;
const NEG_E2BIG: i32 = -7;

/// The value new hosts start from.
static ZERO: HostCounters = HostCounters {
    c: [[Counter {
        bytes: 0,
        packets: 0,
    }; L4_CLASSES]; 2],
};

/// 0 when the daemon runs with `--no-peers` (set at load; see `ntop_common::maps::COUNT_PAIRS`).
#[unsafe(no_mangle)]
static NTOP_COUNT_PAIRS: Global<u8> = Global::new(1);

/// The value new pairs start from (in `.rodata`, like [`ZERO`]).
static ZERO_PAIR: PairCounters = PairCounters {
    c: [Counter {
        bytes: 0,
        packets: 0,
    }; 2],
};

/// Adds one to an error counter.
#[inline(always)]
pub fn error(kind: ErrorKind) {
    if let Some(c) = NTOP_ERRORS.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot of this CPU; BPF programs are not preempted on it mid-update.
        unsafe { *c += 1 };
    }
}

/// Counts one frame seen on `ifindex` in direction `dir` as `packets` wire packets of
/// `bytes(parsed)` bytes in all. `PAIRS` is false only in the benchmark's reference program,
/// which measures what the pair map costs.
#[inline(always)]
pub fn count<F: Frame, const PAIRS: bool>(
    frame: &F,
    ifindex: u32,
    dir: Direction,
    packets: u64,
    bytes: impl FnOnce(&Parsed) -> u64,
) -> Result<(), ErrorKind> {
    let result = try_count::<F, PAIRS>(frame, ifindex, dir, packets, bytes);
    if let Err(kind) = result {
        error(kind);
    }
    result
}

#[inline(always)]
fn try_count<F: Frame, const PAIRS: bool>(
    frame: &F,
    ifindex: u32,
    dir: Direction,
    packets: u64,
    bytes: impl FnOnce(&Parsed) -> u64,
) -> Result<(), ErrorKind> {
    let slot = match NTOP_IFSLOT.get(ifindex) {
        Some(&s) if s > 0 => s - 1,
        _ => return Err(ErrorKind::UnknownInterface),
    };
    let parsed = parse(frame);
    if let Some(kind) = parsed.error {
        error(kind);
    }
    let bytes = bytes(&parsed);
    let counter = NTOP_PROTO
        .get_ptr_mut(proto_index(slot, dir as u32, parsed.proto_slot))
        .ok_or(ErrorKind::ProtoLookupFailed)?;
    // SAFETY: this CPU's slot of a per-CPU array.
    unsafe {
        (*counter).bytes += bytes;
        (*counter).packets += packets;
    }
    if parsed.has_addrs {
        let l4 = parsed.l4 as usize;
        host(parsed.src, ifindex, slot, SENT, l4, bytes, packets);
        host(parsed.dst, ifindex, slot, RECEIVED, l4, bytes, packets);
        if PAIRS && NTOP_COUNT_PAIRS.load() != 0 {
            pair(parsed.src, parsed.dst, ifindex, bytes, packets);
        }
    }
    Ok(())
}

#[inline(always)]
fn add_atomic(counter: *mut Counter, bytes: u64, packets: u64) {
    // SAFETY: `counter` points into a live hash map value, 8-byte aligned; other CPUs update it
    // concurrently, hence the atomics. The BPF target has no compare-and-swap, so `AtomicU64`
    // offers no `fetch_add`; the intrinsic lowers to the BPF atomic add instruction.
    unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*counter).bytes, bytes);
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*counter).packets, packets);
    }
}

#[inline(always)]
fn cell(value: *mut HostCounters, dir: usize, l4: usize) -> *mut Counter {
    // SAFETY: dir < 2 and l4 < L4_CLASSES (both masked), so the offset stays inside the value.
    unsafe {
        (&raw mut (*value).c)
            .cast::<Counter>()
            .add((dir & 1) * L4_CLASSES + l4 % L4_CLASSES)
    }
}

/// The value of `key` in `map`, inserted as zeros first if it is not there yet. The zeros come
/// from `.rodata` (a map value to the verifier), so no value is built on the 512-byte stack.
/// `Err(full)` when the map is full, `Err(failed)` when the update fails otherwise.
#[inline(always)]
fn entry<K, V, const N: usize>(
    map: &HashMap<K, V, N>,
    key: &K,
    zero: &V,
    full: ErrorKind,
    failed: ErrorKind,
) -> Result<*mut V, ErrorKind> {
    if let Some(value) = map.get_ptr_mut(key) {
        return Ok(value);
    }
    match map.insert(key, zero, u64::from(BPF_NOEXIST)) {
        // EEXIST: another CPU inserted the key first; add to its entry all the same.
        Ok(()) | Err(NEG_EEXIST) => map.get_ptr_mut(key).ok_or(failed),
        Err(NEG_E2BIG) => Err(full),
        Err(_) => Err(failed),
    }
}

#[inline(always)]
fn host(addr: [u8; 16], ifindex: u32, slot: u32, dir: usize, l4: usize, bytes: u64, packets: u64) {
    let key = HostKey { addr, ifindex };
    let overflow = match entry(
        &NTOP_HOSTS,
        &key,
        &ZERO,
        ErrorKind::HostMapFull,
        ErrorKind::HostUpdateFailed,
    ) {
        Ok(value) => return add_atomic(cell(value, dir, l4), bytes, packets),
        Err(kind) => kind,
    };
    error(overflow);
    if let Some(other) = NTOP_OTHER.get_ptr_mut(slot) {
        // SAFETY: this CPU's slot of a per-CPU array.
        unsafe {
            let c = cell(other, dir, l4);
            (*c).bytes += bytes;
            (*c).packets += packets;
        }
    }
}

/// Counts the packet for the pair of its addresses. A full pair map loses nothing but the
/// peer listing: hosts and protocols have counted the packet already.
#[inline(always)]
fn pair(src: [u8; 16], dst: [u8; 16], ifindex: u32, bytes: u64, packets: u64) {
    let (key, dir) = PairKey::of(src, dst, ifindex);
    match entry(
        &NTOP_PAIRS,
        &key,
        &ZERO_PAIR,
        ErrorKind::PairMapFull,
        ErrorKind::PairUpdateFailed,
    ) {
        // SAFETY: dir is A_TO_B or B_TO_A (masked): inside the value.
        Ok(value) => add_atomic(
            unsafe { (&raw mut (*value).c).cast::<Counter>().add(dir & 1) },
            bytes,
            packets,
        ),
        Err(kind) => error(kind),
    }
}
