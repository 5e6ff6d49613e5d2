//! Map names and capacities, shared so that the loader and the programs cannot disagree.
//!
//! Names are at most 15 bytes: the kernel truncates longer map names (`BPF_OBJ_NAME_LEN`).
//!
//! | map | type | key | value | entries |
//! |---|---|---|---|---|
//! | [`HOSTS`] | `HASH` (shared, preallocated) | [`HostKey`](crate::counters::HostKey) | [`HostCounters`](crate::counters::HostCounters) | from the memory budget |
//! | [`OTHER_HOSTS`] | `PERCPU_ARRAY` | interface slot | [`HostCounters`](crate::counters::HostCounters) | interfaces |
//! | [`PROTO_STATS`] | `PERCPU_ARRAY` | [`proto_index`](crate::proto::proto_index) | [`Counter`](crate::counters::Counter) | interfaces × 2 × [`PROTO_SLOTS`](crate::proto::PROTO_SLOTS) |
//! | [`IFACE_SLOTS`] | `ARRAY` | ifindex | slot + 1 (0 = not monitored) | highest ifindex + 1 |
//! | [`PAIRS`] | `HASH` (shared, preallocated) | [`PairKey`](crate::counters::PairKey) | [`PairCounters`](crate::counters::PairCounters) | as many as [`HOSTS`] |
//! | [`ERRORS`] | `PERCPU_ARRAY` | [`ErrorKind`](crate::errors::ErrorKind) | `u64` | [`ERROR_KINDS`](crate::errors::ERROR_KINDS) |

/// Per-host counters, keyed by interface and address.
pub const HOSTS: &str = "NTOP_HOSTS";
/// Per-interface counters of the hosts that did not fit into [`HOSTS`].
pub const OTHER_HOSTS: &str = "NTOP_OTHER";
/// Exact per-interface, per-direction, per-protocol totals.
pub const PROTO_STATS: &str = "NTOP_PROTO";
/// ifindex → interface slot + 1.
pub const IFACE_SLOTS: &str = "NTOP_IFSLOT";
/// Per-pair counters: which hosts talk to which, keyed by interface and the two addresses.
pub const PAIRS: &str = "NTOP_PAIRS";
/// Error and anomaly counters.
pub const ERRORS: &str = "NTOP_ERRORS";

/// Global (`.rodata`) the loader sets to 0 for `--no-peers`: the programs then never touch
/// [`PAIRS`], and the verifier removes that code (a frozen read-only value is a known constant).
pub const COUNT_PAIRS: &str = "NTOP_COUNT_PAIRS";

/// Most interfaces one daemon monitors (slots `0..MAX_IFACES`).
pub const MAX_IFACES: u32 = 64;
/// Capacity the object file declares for [`HOSTS`] and [`PAIRS`]; the loader always overrides
/// both from the memory budget.
pub const DEFAULT_MAX_HOSTS: u32 = 65_536;
/// Capacity the object file declares for [`IFACE_SLOTS`]; the loader sets highest ifindex + 1.
pub const DEFAULT_IFINDEX_CAPACITY: u32 = 4096;

/// Kernel memory one [`HOSTS`] entry costs, rounded up: the hash element header (about 48 bytes),
/// the key rounded up to 8 (24), the value (160) and its share of the bucket array (16).
pub const HOST_ENTRY_COST: u64 = 256;

/// Kernel memory one [`PAIRS`] entry costs, rounded up: the element header (about 48 bytes), the
/// key rounded up to 8 (40), the value (32) and its share of the bucket array (16).
pub const PAIR_ENTRY_COST: u64 = 144;

/// Memory budget per host: the pair map has as many entries as the host map, so each host of
/// the budget pays for one of each.
pub const BUDGET_PER_HOST: u64 = HOST_ENTRY_COST + PAIR_ENTRY_COST;

/// Direction of a packet relative to the monitored interface.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface (XDP, or TC ingress).
    Ingress = 0,
    /// Transmitted by the interface (TC egress).
    Egress = 1,
}

/// Number of [`Direction`]s.
pub const DIRECTIONS: u32 = 2;
