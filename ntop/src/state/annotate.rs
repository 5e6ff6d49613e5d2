//! What the state knows about hosts beyond their counters, for listings: which subnets are
//! local (`-m`), and where names (reverse DNS) and MAC addresses (the kernel's neighbour
//! tables) come from.
//!
//! Who runs it: `main` installs them once at start-up ([`State::set_local`],
//! [`State::set_names`], [`State::set_macs`]) before the collector and the HTTP server start.
//! The HTTP handlers (blocking pool, under the state's read lock) read them in the query
//! methods ([`State::hosts`], [`State::host_entries`]). The collector's [`State::ingest`] never
//! touches them.
//!
//! The sources are traits so that the state does not depend on how names and MACs are found
//! (a resolver thread, a neighbour-table poller) and tests can hand-build them.

use std::{collections::HashSet, fmt, fmt::Write as _, net::IpAddr, sync::Arc};

use super::State;
use crate::subnets::Subnets;

/// Where host names come from (the reverse-DNS resolver, see [`crate::resolve`]).
///
/// Implementations must never block: they answer from what they already know.
pub trait HostNames: Send + Sync + fmt::Debug {
    /// The name of `ip` if it is known; when it is not, the address may be queued for a
    /// lookup (so the next listing has it). `None` also for an address without a name.
    fn name(&self, ip: IpAddr) -> Option<Arc<str>>;

    /// Adds to `out` every address whose known name contains `needle`, which is lowercase;
    /// the comparison ignores ASCII case.
    fn matching(&self, needle: &str, out: &mut HashSet<IpAddr>);
}

/// Where MAC addresses come from (the kernel's neighbour tables, see [`crate::neighbours`]).
///
/// Implementations must never block.
pub trait HostMacs: Send + Sync + fmt::Debug {
    /// The link-layer address of `ip` on the interface `ifindex`, if the kernel knows it.
    fn mac(&self, ip: IpAddr, ifindex: u32) -> Option<[u8; 6]>;
}

/// Local or remote host, by the local subnets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// In one of the local subnets (`-m`).
    Local,
    /// In none of them.
    Remote,
}

impl Scope {
    /// The name the API uses (`scope=`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
        }
    }
}

/// The host annotations a state holds.
#[derive(Clone, Debug, Default)]
pub(super) struct Annotations {
    pub(super) local: Subnets,
    pub(super) names: Option<Arc<dyn HostNames>>,
    pub(super) macs: Option<Arc<dyn HostMacs>>,
}

impl State {
    /// Sets the local subnets (`-m`, or the monitored interfaces' own): they decide a host's
    /// [`HostView::local`](super::HostView::local) and [`Scope`].
    pub fn set_local(&mut self, local: Subnets) {
        self.annotations.local = local;
    }

    /// The local subnets (empty until [`set_local`](Self::set_local)).
    #[must_use]
    pub fn local_subnets(&self) -> &Subnets {
        &self.annotations.local
    }

    /// Sets where host names come from (none: every name is `None`, and a search matches
    /// addresses only).
    pub fn set_names(&mut self, names: Option<Arc<dyn HostNames>>) {
        self.annotations.names = names;
    }

    /// Sets where MAC addresses come from (none: every MAC is `None`).
    pub fn set_macs(&mut self, macs: Option<Arc<dyn HostMacs>>) {
        self.annotations.macs = macs;
    }

    /// Whether `ip` is in a local subnet.
    #[must_use]
    pub fn is_local(&self, ip: IpAddr) -> bool {
        self.annotations.local.contains(ip)
    }

    /// The name of `ip`, if known (queues a lookup otherwise, see [`HostNames::name`]).
    #[must_use]
    pub fn name_of(&self, ip: IpAddr) -> Option<Arc<str>> {
        self.annotations.names.as_ref()?.name(ip)
    }

    /// The MAC address of `ip` on `ifindex`, if the kernel's neighbour table has it.
    #[must_use]
    pub fn mac_of(&self, ip: IpAddr, ifindex: u32) -> Option<[u8; 6]> {
        self.annotations.macs.as_ref()?.mac(ip, ifindex)
    }
}

/// Formats a MAC address as the API shows it: six lowercase hex pairs with colons.
#[must_use]
pub fn format_mac(mac: [u8; 6]) -> String {
    let mut out = String::with_capacity(17);
    for (i, byte) in mac.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}
