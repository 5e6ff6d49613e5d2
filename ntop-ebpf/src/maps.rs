//! The maps. Names are those in [`ntop_common::maps`]; the daemon sets every capacity marked
//! "at load" before loading (`EbpfLoader::set_max_entries`).

use aya_ebpf::{
    btf_maps::{Array, HashMap, PerCpuArray},
    macros::btf_map,
};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, PairCounters, PairKey},
    errors::ERROR_KINDS,
    maps::{DEFAULT_IFINDEX_CAPACITY, DEFAULT_MAX_HOSTS, MAX_IFACES},
    proto::PROTO_SLOTS,
};

/// Per-host counters. A shared (not per-CPU) preallocated hash updated with atomic adds: per-CPU
/// values would cost `value × possible CPUs` per host, and preallocation makes the memory a
/// choice made at start rather than a surprise. Not LRU: an LRU map evicts silently and its
/// counts would be lost; when this one is full, new hosts go to `NTOP_OTHER`. Capacity at load.
#[btf_map]
pub static NTOP_HOSTS: HashMap<HostKey, HostCounters, { DEFAULT_MAX_HOSTS as usize }> =
    HashMap::new();

/// Per-pair counters, for each host's top peers. Shared and preallocated like `NTOP_HOSTS`, for
/// the same reasons; when full, new pairs are not counted here (`PairMapFull`), and every other
/// map still counts their packets. Capacity at load (that of `NTOP_HOSTS`).
#[btf_map]
pub static NTOP_PAIRS: HashMap<PairKey, PairCounters, { DEFAULT_MAX_HOSTS as usize }> =
    HashMap::new();

/// Per interface slot: counters of hosts that found the host map full. Per-CPU, no atomics.
#[btf_map]
pub static NTOP_OTHER: PerCpuArray<HostCounters, { MAX_IFACES as usize }> = PerCpuArray::new();

/// `proto_index(slot, direction, protocol slot)` → counter. Exact totals, never evicted.
/// Capacity at load: interfaces × 2 × `PROTO_SLOTS`.
#[btf_map]
pub static NTOP_PROTO: PerCpuArray<Counter, { (MAX_IFACES * 2 * PROTO_SLOTS) as usize }> =
    PerCpuArray::new();

/// ifindex → interface slot + 1; 0 for interfaces the daemon did not set up. Capacity at load:
/// highest monitored ifindex + 1.
#[btf_map]
pub static NTOP_IFSLOT: Array<u32, { DEFAULT_IFINDEX_CAPACITY as usize }> = Array::new();

/// Error counters by `ErrorKind`.
#[btf_map]
pub static NTOP_ERRORS: PerCpuArray<u64, { ERROR_KINDS as usize }> = PerCpuArray::new();
