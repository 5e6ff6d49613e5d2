//! Replacing pinned programs ("fold and replace"): a start with other options or a newer pin
//! layout takes the hooks over from the programs a previous ntop left pinned, reads their maps
//! once when they can no longer change, and removes their pins. Not a count is lost:
//!
//! 1. Everything that can fail without touching a hook comes first: the old maps are opened
//!    and checked, the old links opened, the new maps created and the new programs verified.
//! 2. The old pin directory is moved aside when the new one takes its name (`v<N>` →
//!    `v<N>-replaced`), and the new one is created.
//! 3. Interfaces that are new get fresh hooks.
//! 4. Ingress hooks whose kind changes (XDP ↔ TCX, native ↔ generic XDP: the kernel refuses
//!    native and generic XDP on one device at once, `dev_xdp_attach` in net/core/dev.c) are
//!    detached, then attached anew: packets crossing in between (the time of two system
//!    calls) are not counted by either program.
//! 5. Every other hook of an interface in both sets (same name and ifindex) is swapped: the
//!    pinned link is made to run the new program with `BPF_LINK_UPDATE` (aya's
//!    `attach_to_link`), which the kernel does atomically (`bpf_xdp_link_update` in
//!    net/core/dev.c, `tcx_link_update` in kernel/bpf/tcx.c): each packet runs either the old
//!    or the new program, never neither, never both. The link keeps its place in the TCX chain
//!    and its XDP mode.
//! 6. Everything new is pinned (maps, links, layout file last).
//! 7. The old hooks of interfaces no longer monitored are detached.
//! 8. With no old program left on any hook, `membarrier` waits for invocations still in flight
//!    ([`sys::wait_for_running_programs`]); then the old maps are read once into a [`Sample`](crate::sample::Sample)
//!    (the old interfaces and epoch) and the old pins are removed.
//!
//! A failure in 3 undoes everything (nothing old was touched). A failure in 4 to 6 undoes what
//! it can: swapped links get their old programs back (again atomically), the new pins go, the
//! old directory is moved back; ingress hooks detached in 4 stay detached, and the error says
//! which (their links are defunct then, so the next start replaces them again). A crash
//! between 2 and 8 leaves `v<N>-replaced` or a second layout directory behind; the next start
//! refuses and names `ntop --detach-all`, which reads and removes both.
//!
//! Runs at startup, before privileges are dropped.

use std::{
    fmt::Write as _,
    fs,
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use aya::{
    Ebpf,
    programs::{
        SchedClassifier, Xdp,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};

use super::{
    Attached, Error, Kernel, LinkHandle, LoadOptions, ModeRequest, PROG_TC_EGRESS, PROG_TC_INGRESS,
    PROG_XDP, attach_ingress, attach_tc, chain, counters::CounterMaps, load_object, load_program,
    pin, pin::Hook, pin_all, sys, take_counters,
};
use crate::sample::CaptureMode;

/// A hook of the old programs, found through its pinned link.
struct OldHook {
    /// Index into the old layout's interfaces.
    iface: usize,
    hook: Hook,
    /// aya's handle on the link, for the swap (consumed by it).
    link: Option<PinnedLink>,
    /// A plain fd of the same link: to detach it, or to put its old program back.
    fd: OwnedFd,
    /// The old program the link runs, held open: once the link runs the new one, nothing else
    /// holds the old program, and an undo needs it (`None`: it could not be opened; this hook
    /// cannot be undone then).
    prog: Option<OwnedFd>,
    /// Attached to its interface (not defunct).
    live: bool,
    /// Swapped or detached by this replacement (else detached at the end).
    taken: bool,
}

/// What to do for one hook of the new programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// Attach anew: nothing of the old programs is on this hook.
    Fresh,
    /// Detach the old link (index into the old hooks), then attach anew.
    Reattach(usize),
    /// Make the old link run the new program.
    Swap(usize),
}

/// Whether an old ingress hook counted in `old` can be swapped to a program attached for
/// `request`: the same hook kind and, for XDP, a mode the request allows. `--capture-mode xdp`
/// keeps the mode it had (generic XDP was chosen because native failed on that device).
const fn swappable(old: CaptureMode, request: ModeRequest) -> bool {
    matches!(
        (old, request),
        (
            CaptureMode::XdpNative,
            ModeRequest::Xdp | ModeRequest::XdpNative
        ) | (
            CaptureMode::XdpGeneric,
            ModeRequest::Xdp | ModeRequest::XdpGeneric
        ) | (CaptureMode::Tc, ModeRequest::Tc)
    )
}

/// Opens every link the old layout records.
fn open_old_hooks(dir: &Path, layout: &pin::Layout) -> Result<Vec<OldHook>, Error> {
    let mut hooks = Vec::new();
    for (index, hook, file) in pin::pinned_hooks(layout) {
        let iface = &layout.interfaces[index];
        let path = dir.join("links").join(&file);
        let link = pin::open_link(dir, &file)?;
        let bpf = |what: &'static str| {
            let path = path.clone();
            move |e: std::io::Error| pin::PinError::Bpf {
                what,
                path,
                reason: e.to_string(),
            }
        };
        let fd = sys::obj_get(&path).map_err(bpf("opening pinned link"))?;
        let state = sys::link_state(fd.as_fd()).map_err(bpf("reading the state of link"))?;
        let expected = match hook {
            Hook::Xdp => sys::LINK_TYPE_XDP,
            Hook::TcxIngress | Hook::TcxEgress => sys::LINK_TYPE_TCX,
        };
        if state.link_type != expected {
            return Err(Error::Pin(pin::PinError::Mismatch {
                dir: dir.to_path_buf(),
                what: format!(
                    "link `{file}` is of type {}, not the {} link ntop pins",
                    state.link_type,
                    hook.name()
                ),
            }));
        }
        hooks.push(OldHook {
            iface: index,
            hook,
            link: Some(link),
            fd,
            prog: sys::prog_by_id(state.prog_id)
                .inspect_err(|e| {
                    tracing::warn!(
                        link = %path.display(),
                        error = %e,
                        "opening the old program failed; its swap cannot be undone"
                    );
                })
                .ok(),
            live: state.ifindex == iface.ifindex,
            taken: false,
        });
    }
    Ok(hooks)
}

/// Makes the pinned `link` run the new program of `hook` (`BPF_LINK_UPDATE`).
fn swap(ebpf: &mut Ebpf, hook: Hook, link: PinnedLink) -> Result<LinkHandle, String> {
    let link = FdLink::from(link);
    match hook {
        Hook::Xdp => {
            let link = XdpLink::try_from(link).map_err(|e| chain(&e))?;
            let xdp = load_program::<Xdp>(ebpf, PROG_XDP).map_err(|e| e.to_string())?;
            xdp.attach_to_link(link)
                .map(LinkHandle::Xdp)
                .map_err(|e| chain(&e))
        }
        Hook::TcxIngress | Hook::TcxEgress => {
            let program = if hook == Hook::TcxIngress {
                PROG_TC_INGRESS
            } else {
                PROG_TC_EGRESS
            };
            let link = SchedClassifierLink::try_from(link).map_err(|e| chain(&e))?;
            let tc = load_program::<SchedClassifier>(ebpf, program).map_err(|e| e.to_string())?;
            tc.attach_to_link(link)
                .map(|id| LinkHandle::Tc(program, id))
                .map_err(|e| chain(&e))
        }
    }
}

/// What a replacement has changed so far, to undo it when it fails.
#[derive(Default)]
struct Changed {
    /// Old hooks whose link now runs a new program.
    swapped: Vec<usize>,
    /// Interfaces whose old ingress hook was detached.
    detached: Vec<String>,
}

/// The plan: for every new interface (slot order) its ingress and egress steps.
struct Plan {
    ingress: Vec<Option<Step>>,
    egress: Vec<Option<Step>>,
}

fn plan(
    opts: &LoadOptions,
    resolved: &[(String, u32)],
    old: &pin::Layout,
    hooks: &[OldHook],
) -> Plan {
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for (name, ifindex) in resolved {
        if !opts.attach {
            ingress.push(None);
            egress.push(None);
            continue;
        }
        let old_iface = old
            .interfaces
            .iter()
            .position(|i| i.name == *name && i.ifindex == *ifindex);
        let find = |want: &dyn Fn(Hook) -> bool| {
            old_iface.and_then(|o| {
                hooks
                    .iter()
                    .position(|h| h.iface == o && h.live && want(h.hook))
            })
        };
        let old_ingress = find(&|h| h != Hook::TcxEgress);
        ingress.push(Some(match (old_iface, old_ingress) {
            (Some(o), Some(h)) if swappable(old.interfaces[o].mode, opts.mode) => Step::Swap(h),
            (_, Some(h)) => Step::Reattach(h),
            _ => Step::Fresh,
        }));
        egress.push(Some(
            find(&|h| h == Hook::TcxEgress).map_or(Step::Fresh, Step::Swap),
        ));
    }
    Plan { ingress, egress }
}

impl Kernel {
    /// Replaces the programs pinned in `old_dir` (recorded as `old`; `why` says how they differ
    /// from `opts`) with new ones pinned in `base/v<opts.layout>`; see the module documentation.
    pub(super) fn replace(
        opts: &LoadOptions,
        resolved: &[(String, u32)],
        base: &Path,
        old_dir: &Path,
        old: &pin::Layout,
        why: &[String],
    ) -> Result<Self, Error> {
        // 1. Nothing is touched yet.
        let mut old_maps = CounterMaps::open_pinned(old_dir, old, opts.layout)?;
        let mut hooks = open_old_hooks(old_dir, old)?;
        let mut ebpf = load_object(opts, resolved)?;
        let plan = plan(opts, resolved, old, &hooks);

        // 2. Move the old pins aside when the new ones take their name.
        let new_dir = pin::version_dir(base, opts.layout);
        let old_home = if old_dir == new_dir {
            let aside = pin::aside_dir(old_dir);
            fs::rename(old_dir, &aside).map_err(|source| pin::PinError::Io {
                what: "moving aside",
                path: old_dir.to_path_buf(),
                source,
            })?;
            aside
        } else {
            old_dir.to_path_buf()
        };

        let mut changed = Changed::default();
        let moved = move_hooks(
            opts,
            resolved,
            base,
            old,
            &mut ebpf,
            &plan,
            &mut hooks,
            &mut changed,
        );
        let (interfaces, pins) = match moved {
            Ok(done) => done,
            Err(e) => {
                return Err(undo(
                    e, ebpf, &hooks, &changed, &new_dir, &old_home, old_dir,
                ));
            }
        };

        // 7. The hooks of interfaces no longer monitored (and defunct links) go.
        for h in hooks.iter_mut().filter(|h| !h.taken) {
            if let Err(e) = sys::link_detach(h.fd.as_fd()) {
                tracing::warn!(
                    iface = %old.interfaces.get(h.iface).map_or("?", |i| i.name.as_str()),
                    hook = h.hook.name(),
                    error = %e,
                    "detaching an old hook failed; it goes when its pin is removed"
                );
            }
        }

        // 8. No old program is on a hook now: wait for invocations in flight, then read.
        sys::settle();
        let sample = old_maps.read()?;
        drop(hooks);
        let mut removed = Vec::new();
        if let Err(e) = pin::remove_dir(&old_home, &mut removed) {
            // The counts are read and handed out: `--detach-all` would read them once more.
            tracing::warn!(
                error = %e,
                "removing the replaced pins failed; remove `{}` by hand (`rm -r`; not with \
                 `ntop --detach-all`, which would carry its counts over a second time)",
                old_home.display()
            );
        }
        drop(old_maps);

        tracing::info!(
            "replaced the programs pinned in {} ({}); their final counts are carried over",
            old_dir.display(),
            why.join("; "),
        );
        let counters = CounterMaps::new(
            interfaces,
            take_counters(&mut ebpf, opts)?,
            opts.max_hosts.max(1),
            Some(std::time::SystemTime::now()),
        );
        Ok(Self {
            ebpf: Some(ebpf),
            pins: Some(pins),
            counters,
            replaced: Some(sample),
        })
    }
}

/// Steps 2 to 6: creates the new pin directory, moves the hooks and pins everything new.
#[expect(
    clippy::too_many_arguments,
    reason = "one step of `Kernel::replace`, which owns all of these"
)]
fn move_hooks(
    opts: &LoadOptions,
    resolved: &[(String, u32)],
    base: &Path,
    old: &pin::Layout,
    ebpf: &mut Ebpf,
    plan: &Plan,
    hooks: &mut [OldHook],
    changed: &mut Changed,
) -> Result<(Vec<Attached>, super::Pins), Error> {
    let dir = pin::prepare(base, opts.layout)?;
    let count = resolved.len();
    let mut modes: Vec<Option<CaptureMode>> = vec![None; count];
    let mut ingress: Vec<Option<LinkHandle>> = (0..count).map(|_| None).collect();
    let mut egress: Vec<Option<LinkHandle>> = (0..count).map(|_| None).collect();

    // 3. New interfaces (and hooks with nothing of the old programs on them).
    for (i, (name, ifindex)) in resolved.iter().enumerate() {
        if plan.ingress[i] == Some(Step::Fresh) {
            let (mode, handle) = attach_ingress(ebpf, name, *ifindex, opts.mode)?;
            modes[i] = Some(mode);
            ingress[i] = Some(handle);
        }
        if plan.egress[i] == Some(Step::Fresh) {
            egress[i] = Some(attach_tc(ebpf, name, aya::programs::TcAttachType::Egress)?);
        }
    }

    // 4. Ingress hooks whose kind changes: detach, then attach anew.
    for (i, (name, ifindex)) in resolved.iter().enumerate() {
        if let Some(Step::Reattach(h)) = plan.ingress[i] {
            let old_hook = &mut hooks[h];
            sys::link_detach(old_hook.fd.as_fd()).map_err(|e| pin::PinError::Bpf {
                what: "detaching the old ingress link of",
                path: PathBuf::from(name),
                reason: e.to_string(),
            })?;
            old_hook.taken = true;
            changed.detached.push(name.clone());
            let (mode, handle) = attach_ingress(ebpf, name, *ifindex, opts.mode)?;
            let from = old
                .interfaces
                .get(old_hook.iface)
                .map_or("?", |o| o.mode.as_str());
            tracing::info!(
                iface = %name,
                "ingress moved from {from} to {}: packets crossing while it moved were not \
                 counted",
                mode.as_str()
            );
            modes[i] = Some(mode);
            ingress[i] = Some(handle);
        }
    }

    // 5. Atomic swaps.
    for (i, name) in resolved.iter().map(|(n, _)| n).enumerate() {
        for (step, slot) in [
            (plan.ingress[i], &mut ingress[i]),
            (plan.egress[i], &mut egress[i]),
        ] {
            let Some(Step::Swap(h)) = step else {
                continue;
            };
            let old_hook = &mut hooks[h];
            // Each old hook is planned once, so its link is still there.
            let Some(link) = old_hook.link.take() else {
                continue;
            };
            let handle = swap(ebpf, old_hook.hook, link).map_err(|reason| pin::PinError::Bpf {
                what: "swapping the program of the pinned link",
                path: PathBuf::from(pin::link_file(name, old_hook.hook.name())),
                reason,
            })?;
            old_hook.taken = true;
            changed.swapped.push(h);
            if old_hook.hook != Hook::TcxEgress {
                modes[i] = old.interfaces.get(old_hook.iface).map(|o| o.mode);
            }
            *slot = Some(handle);
        }
    }

    // 6. Pin everything new.
    let mut interfaces = Vec::new();
    let mut handles = Vec::new();
    for (slot, ((name, ifindex), ((mode, ing), eg))) in (0u32..).zip(
        resolved
            .iter()
            .zip(modes.into_iter().zip(ingress).zip(egress)),
    ) {
        let mode = mode.unwrap_or(if opts.mode == ModeRequest::Tc {
            CaptureMode::Tc
        } else {
            CaptureMode::XdpNative
        });
        if let Some(handle) = ing {
            handles.push((pin::link_file(name, Hook::ingress(mode).name()), handle));
        }
        if let Some(handle) = eg {
            handles.push((pin::link_file(name, Hook::TcxEgress.name()), handle));
        }
        interfaces.push(Attached {
            name: name.clone(),
            ifindex: *ifindex,
            slot,
            mode,
        });
    }
    let pins = pin_all(ebpf, &dir, opts, &interfaces, handles)?;
    Ok((interfaces, pins))
}

/// Undoes a replacement that failed with `error` after step 2; returns the error to report.
fn undo(
    error: Error,
    ebpf: Ebpf,
    hooks: &[OldHook],
    changed: &Changed,
    new_dir: &Path,
    old_home: &Path,
    old_dir: &Path,
) -> Error {
    // Swapped links get their old programs back, atomically as they went.
    let mut lost = Vec::new();
    for &h in &changed.swapped {
        let hook = &hooks[h];
        let back = hook.prog.as_ref().map_or_else(
            || Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            |prog| sys::link_update(hook.fd.as_fd(), prog.as_fd()),
        );
        if let Err(e) = back {
            tracing::error!(hook = hook.hook.name(), error = %e, "putting an old program back failed");
            lost.push(hook.hook.name());
        }
    }
    // The new programs' own links detach as their fds close.
    drop(ebpf);
    let mut removed = Vec::new();
    if let Err(e) = pin::remove_dir(new_dir, &mut removed) {
        tracing::warn!(error = %e, dir = %new_dir.display(), "removing the new pins failed");
    }
    if old_home != old_dir
        && let Err(e) = fs::rename(old_home, old_dir)
    {
        tracing::error!(
            error = %e,
            "moving the old pins back from {} to {} failed",
            old_home.display(),
            old_dir.display()
        );
    }
    if changed.swapped.is_empty() && changed.detached.is_empty() {
        return error;
    }
    let mut reason = chain(&error);
    if !lost.is_empty() {
        let _ = write!(
            reason,
            " (and {} old hooks could not get their program back: {})",
            lost.len(),
            lost.join(", ")
        );
    }
    Error::Pin(pin::PinError::Replace {
        dir: old_dir.to_path_buf(),
        reason,
        uncounted: changed.detached.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_hook_kind_is_swapped() {
        use CaptureMode::{Tc, XdpGeneric, XdpNative};
        use ModeRequest as R;
        let cases = [
            (XdpNative, R::Xdp, true),
            (XdpNative, R::XdpNative, true),
            (XdpNative, R::XdpGeneric, false),
            (XdpNative, R::Tc, false),
            (XdpGeneric, R::Xdp, true),
            (XdpGeneric, R::XdpGeneric, true),
            (XdpGeneric, R::XdpNative, false),
            (XdpGeneric, R::Tc, false),
            (Tc, R::Tc, true),
            (Tc, R::Xdp, false),
            (Tc, R::XdpNative, false),
            (Tc, R::XdpGeneric, false),
        ];
        for (old, request, swap) in cases {
            assert_eq!(swappable(old, request), swap, "{old:?} → {request:?}");
        }
    }
}
