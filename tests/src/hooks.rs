//! What is attached to a device, seen from outside the daemon: the XDP program (`ip -d -j
//! link`), the TCX chains (`BPF_PROG_QUERY` through aya, inside the namespace) and
//! `bpftool -j net` (version 7.1 lists XDP and classic tc, not TCX).

use aya::programs::{SchedClassifier, TcAttachType};

use crate::Netns;

/// What is attached to a device, seen from outside the daemon.
#[derive(Debug)]
pub struct Hooks {
    /// `ip -d -j link show`'s `xdp` object (`null` when no XDP program is attached).
    pub xdp: serde_json::Value,
    /// Names of the TCX ingress programs, in chain order.
    pub tcx_ingress: Vec<String>,
    /// Names of the TCX egress programs, in chain order.
    pub tcx_egress: Vec<String>,
    /// `bpftool -j net show dev DEV` (version 7.1 lists XDP and classic tc, not TCX).
    pub bpftool: serde_json::Value,
}

impl Hooks {
    /// The attached XDP program's name and attach mode (1 native, 2 generic).
    #[must_use]
    pub fn xdp_prog(&self) -> Option<(&str, u64)> {
        Some((
            self.xdp["prog"]["name"].as_str()?,
            self.xdp["mode"].as_u64()?,
        ))
    }

    /// Nothing at all: no XDP, no TCX, `bpftool net` empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.xdp.is_null()
            && self.tcx_ingress.is_empty()
            && self.tcx_egress.is_empty()
            && ["xdp", "tc"].iter().all(|k| {
                self.bpftool[0][k]
                    .as_array()
                    .is_some_and(std::vec::Vec::is_empty)
            })
    }
}

/// The programs attached to `dev` in `ns`.
#[track_caller]
#[must_use]
pub fn hooks(ns: &Netns, dev: &str) -> Hooks {
    let link: serde_json::Value =
        serde_json::from_str(&ns.ip(["-d", "-j", "link", "show", "dev", dev]))
            .expect("`ip -j link` JSON");
    let tcx = |kind: TcAttachType| -> Vec<String> {
        let (_, progs) = ns
            .enter(|| SchedClassifier::query_tcx(dev, kind))
            .unwrap_or_else(|e| panic!("querying TCX {kind:?} of {dev}: {e}"));
        progs
            .iter()
            .map(|p| p.name_as_str().unwrap_or("?").to_owned())
            .collect()
    };
    let bpftool = serde_json::from_str(&ns.run("bpftool", ["-j", "net", "show", "dev", dev]))
        .expect("`bpftool -j net` JSON");
    Hooks {
        xdp: link[0]["xdp"].clone(),
        tcx_ingress: tcx(TcAttachType::Ingress),
        tcx_egress: tcx(TcAttachType::Egress),
        bpftool,
    }
}

/// Panics unless nothing of ntop's (or anyone's) is attached to `dev` in `ns`.
#[track_caller]
pub fn assert_nothing_attached(ns: &Netns, dev: &str) {
    let h = hooks(ns, dev);
    assert!(h.is_empty(), "left attached to {dev}: {h:#?}");
}
