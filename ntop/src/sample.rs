//! What one poll of the kernel maps yields: the boundary between the kernel side
//! ([`ebpf`](crate::ebpf), which fills it) and the pure core ([`state`](crate::state), which
//! aggregates it). Tests build samples by hand, so `state` and `http` run without root.
//!
//! All counters are the kernel's cumulative values (per-CPU values already summed); they only
//! grow, and reading them never resets them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ntop_common::{
    counters::{Counter, HostCounters, HostKey},
    errors::ERROR_KINDS,
    proto::PROTO_SLOTS,
};

/// How an interface's ingress is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureMode {
    /// XDP in the driver.
    XdpNative,
    /// XDP in the generic (skb) path.
    XdpGeneric,
    /// TCX ingress.
    Tc,
}

impl CaptureMode {
    /// The name the API and logs use.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::XdpNative => "xdp-native",
            Self::XdpGeneric => "xdp-generic",
            Self::Tc => "tc",
        }
    }
}

/// One monitored interface in a sample.
#[derive(Clone, Debug)]
pub struct InterfaceSample {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// Kernel interface index.
    pub ifindex: u32,
    /// How ingress is counted.
    pub mode: CaptureMode,
    /// `proto[direction][slot]`: direction 0 ingress (rx), 1 egress (tx); slots as in
    /// [`ntop_common::proto`]. Exact: the slots of one direction sum to its total.
    pub proto: [Box<[Counter; PROTO_SLOTS as usize]>; 2],
    /// Traffic of hosts that did not fit into the host map.
    pub other_hosts: HostCounters,
}

/// One poll of all maps.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Wall-clock time of the poll.
    pub at: SystemTime,
    /// Monotonic time of the poll (for rates): time since the collector started.
    pub monotonic: Duration,
    /// Monitored interfaces.
    pub interfaces: Vec<InterfaceSample>,
    /// Every host map entry.
    pub hosts: Vec<(HostKey, HostCounters)>,
    /// Host map capacity (entries).
    pub host_capacity: u32,
    /// Error counters by [`ntop_common::errors::ErrorKind`].
    pub errors: [u64; ERROR_KINDS as usize],
    /// How long reading the maps took.
    pub poll_duration: Duration,
}

impl Sample {
    /// A sample with nothing in it, to be filled by a poll.
    #[must_use]
    pub fn empty() -> Self {
        Self {
            at: UNIX_EPOCH,
            monotonic: Duration::ZERO,
            interfaces: Vec::new(),
            hosts: Vec::new(),
            host_capacity: 0,
            errors: [0; ERROR_KINDS as usize],
            poll_duration: Duration::ZERO,
        }
    }
}
