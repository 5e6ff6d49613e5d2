//! What one poll of the kernel maps yields: the boundary between the kernel side
//! ([`ebpf`](crate::ebpf), which fills it) and the pure core ([`state`](crate::state), which
//! aggregates it). Tests build samples by hand, so `state` and `http` run without root.
//!
//! All counters are the kernel's cumulative values (per-CPU values already summed); they only
//! grow, and reading them never resets them.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ntop_common::{
    counters::{Counter, HostCounters, HostKey, PairCounters, PairKey},
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

/// Which set of kernel counters a sample was read from.
///
/// The maps of one load are created together and count from zero; they live as long as the
/// programs are attached or pinned. Two samples with the same epoch come from the same maps, so
/// the later one's counters include the earlier one's. A different epoch means new maps
/// (a reboot, a daemon start without pinning, an upgrade that replaced the programs): their
/// counters started again from zero. The state uses this to carry totals across restarts
/// without mistaking new counters for old ones or the other way round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Epoch {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`); all zero when unknown.
    pub boot: [u8; 16],
    /// Kernel id of the protocol-counter map (map ids are not reused within a boot until
    /// 2^31 maps have been created).
    pub map_id: u32,
}

impl Epoch {
    /// `boot-id-as-uuid/map-id`, as stored in the data directory.
    #[must_use]
    pub fn to_text(&self) -> String {
        let hex = self.boot.iter().fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        });
        format!(
            "{}-{}-{}-{}-{}/{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..],
            self.map_id
        )
    }

    /// Inverse of [`Epoch::to_text`] (also reads the boot id file's own text before the `/`).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (boot, id) = text.trim().split_once('/')?;
        Some(Self {
            boot: parse_boot_id(boot)?,
            map_id: id.parse().ok()?,
        })
    }
}

/// Parses a boot id as the kernel prints it (a UUID, 36 characters with dashes).
#[must_use]
pub fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
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
    /// Every pair map entry: who talked to whom, for top peers; only when `pairs_read`.
    pub pairs: Vec<(PairKey, PairCounters)>,
    /// `pairs` was read in this poll (the collector reads the pair map every few seconds
    /// only, see [`PAIR_REFRESH`](crate::ebpf::PAIR_REFRESH)); otherwise it holds an older
    /// reading or nothing.
    pub pairs_read: bool,
    /// Pair map capacity (entries; 0 when the maps have none, pin layout 1).
    pub pair_capacity: u32,
    /// When these maps were created, if known (pins of layout 1 did not record it).
    pub created: Option<SystemTime>,
    /// Error counters by [`ntop_common::errors::ErrorKind`].
    pub errors: [u64; ERROR_KINDS as usize],
    /// How long reading the maps took.
    pub poll_duration: Duration,
    /// Which maps these counters come from.
    pub epoch: Epoch,
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
            pairs: Vec::new(),
            pairs_read: false,
            pair_capacity: 0,
            created: None,
            errors: [0; ERROR_KINDS as usize],
            poll_duration: Duration::ZERO,
            epoch: Epoch::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_text_round_trips() {
        let e = Epoch {
            boot: parse_boot_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap(),
            map_id: 4711,
        };
        assert_eq!(e.to_text(), "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0/4711");
        assert_eq!(Epoch::parse(&e.to_text()), Some(e));
        assert_eq!(Epoch::parse("0f1e2d3c/1"), None);
        assert_eq!(Epoch::parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz/1"), None);
        assert_eq!(Epoch::parse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"), None);
    }
}
