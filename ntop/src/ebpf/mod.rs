//! Loading the kernel programs, attaching them to the monitored interfaces, and reading their
//! maps into [`Sample`]s.
//!
//! Runs at startup (load, attach: needs `CAP_BPF` and `CAP_NET_ADMIN`) and then on the collector
//! task ([`Kernel::read`]: only needs the map fds, so it keeps working after privileges are
//! dropped). Dropping [`Kernel`] closes every program and link fd, which detaches everything: no
//! program or link stays behind (`bpftool net` is empty afterwards). Unless it was loaded with
//! [`Kernel::load_pinned`]: then the pins in bpffs keep the programs counting until
//! [`Kernel::detach`] or [`detach_all`] removes them, and a later start re-adopts them or, with
//! other options or a new pin layout, replaces them and hands over their final counts
//! ([`Kernel::take_replaced`]; see [`pin`]).

pub mod batch;
mod counters;
pub mod iface;
pub mod pin;
mod replace;
mod sys;

use std::{
    io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData},
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLinkId, TcAttachOptions},
        xdp::XdpLinkId,
    },
};
use ntop_common::{
    maps::{self, DIRECTIONS, MAX_IFACES},
    proto::PROTO_SLOTS,
};

use self::counters::CounterMaps;
pub use self::counters::PAIR_REFRESH;
pub use self::pin::DetachedAll;
use crate::sample::{CaptureMode, Epoch, Sample};

/// The kernel programs, built by `build.rs` from `ntop-ebpf`.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ntop"));

/// Program names in the object (the entry points of `ntop-ebpf`).
pub const PROG_XDP: &str = "ntop_xdp";
/// TCX ingress program (`--capture-mode tc`).
pub const PROG_TC_INGRESS: &str = "ntop_tc_ingress";
/// TCX egress program.
pub const PROG_TC_EGRESS: &str = "ntop_tc_egress";
/// Benchmark reference: XDP program that only passes packets (never attached by the daemon).
pub const PROG_BENCH_XDP_PASS: &str = "ntop_bench_xdp_pass";
/// Benchmark reference: TC program that only returns `TCX_NEXT`.
pub const PROG_BENCH_TC_NEXT: &str = "ntop_bench_tc_next";
/// Benchmark reference: [`PROG_XDP`] without the pair map (never attached by the daemon).
pub const PROG_BENCH_XDP_NO_PAIRS: &str = "ntop_bench_xdp_no_pairs";

/// How ingress should be counted (`--capture-mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeRequest {
    /// XDP in the driver where it supports it, else generic XDP.
    Xdp,
    /// XDP in the driver only.
    XdpNative,
    /// Generic (skb) XDP only.
    XdpGeneric,
    /// TCX ingress: for interfaces where XDP cannot attach or another XDP program owns the hook.
    Tc,
}

/// What to load and where.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Interface names, each monitored once.
    pub interfaces: Vec<String>,
    /// How ingress is counted.
    pub mode: ModeRequest,
    /// Capacity of the host map.
    pub max_hosts: u32,
    /// Attach to the interfaces (`false` loads and registers them only: for
    /// `BPF_PROG_TEST_RUN` in tests and benchmarks).
    pub attach: bool,
    /// Count who talks to whom (the pair map); `false` for `--no-peers`.
    pub peers: bool,
    /// The pin layout to use: [`pin::PIN_LAYOUT`], except in the upgrade test, which pretends
    /// to be a build with another layout (with today's maps). Pins go to `base/v<layout>`.
    pub layout: u32,
}

/// Errors of the kernel layer. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An `-i` name that is not an interface here.
    #[error("interface `{name}` does not exist; interfaces here: {available}; choose with -i")]
    UnknownInterface {
        /// The name given.
        name: String,
        /// Comma-separated list of the interfaces that do exist.
        available: String,
    },
    /// The same interface twice.
    #[error("interface `{0}` is listed more than once in -i; list each interface once")]
    DuplicateInterface(String),
    /// No interface at all.
    #[error("no interface to monitor; name one with -i IFACE")]
    NoInterface,
    /// `-i ""` or `-i eth0,,eth1`.
    #[error("an empty interface name in -i; list names separated by commas, e.g. -i eth0,eth1")]
    EmptyInterfaceName,
    /// More interfaces than slots.
    #[error("{count} interfaces given, but one ntop monitors at most {max}; run a second ntop")]
    TooManyInterfaces {
        /// Interfaces given.
        count: usize,
        /// [`MAX_IFACES`].
        max: u32,
    },
    /// The binary has no kernel programs in it.
    #[error(
        "this ntop was built without its kernel programs (AYA_BUILD_SKIP=1); rebuild it with \
         `cargo xtask build`"
    )]
    NoObject,
    /// Not allowed to create maps or load programs.
    #[error(
        "not permitted to load BPF programs ({0}); run ntop as root, or give it CAP_BPF, \
         CAP_NET_ADMIN and CAP_PERFMON"
    )]
    Permission(String),
    /// The object or its maps could not be loaded.
    #[error("loading the kernel programs failed: {0}")]
    Load(#[source] aya::EbpfError),
    /// The verifier or the kernel refused a program.
    #[error("loading program `{program}` failed: {source}")]
    Program {
        /// Program name.
        program: &'static str,
        /// What aya reported, including the verifier log.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing from the object or has the wrong type.
    #[error(
        "map `{0}` is missing from the kernel object or has an unexpected type (a build mismatch; rebuild ntop)"
    )]
    Map(&'static str),
    /// Setting up the interface slot map failed.
    #[error("registering interface `{iface}` in the kernel map failed: {source}")]
    Slot {
        /// Interface name.
        iface: String,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Attaching a program to an interface failed.
    #[error("attaching {hook} to `{iface}` failed: {reason}; {hint}")]
    Attach {
        /// Interface name.
        iface: String,
        /// `XDP (native)`, `TCX egress`, ….
        hook: &'static str,
        /// The kernel's answer.
        reason: String,
        /// What to try instead.
        hint: &'static str,
    },
    /// Pinning, re-adopting, replacing or removing pinned programs failed (see [`pin`]).
    #[error(transparent)]
    Pin(#[from] pin::PinError),
    /// Reading a map failed.
    #[error("reading map `{map}` failed: {source}")]
    Read {
        /// Map name.
        map: &'static str,
        /// The `bpf(2)` error.
        #[source]
        source: io::Error,
    },
}

/// One attached interface.
#[derive(Clone, Debug)]
pub struct Attached {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    /// Its slot in the per-interface maps.
    pub slot: u32,
    /// How its ingress is counted.
    pub mode: CaptureMode,
}

/// The loaded, attached programs and their maps.
pub struct Kernel {
    /// Owns the programs and their unpinned links (dropping it detaches them); `None` when the
    /// pinned programs were re-adopted.
    ebpf: Option<Ebpf>,
    /// The pinned links and where they are pinned (`None`: nothing pinned).
    pins: Option<Pins>,
    /// The maps the programs count into, and how to read them.
    counters: CounterMaps,
    /// The final counts of the pinned programs this start replaced, until taken.
    replaced: Option<Sample>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("counters", &self.counters)
            .field("pins", &self.pins)
            .field("replaced", &self.replaced.is_some())
            .finish_non_exhaustive()
    }
}

/// The first OS error code in an error's source chain. `io::Error`s that wrap another error
/// (aya wraps the `BPF_PROG_LOAD` error once more) are looked into too: their `source()` skips
/// the wrapped error itself.
fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<(i32, String)> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if let Some(code) = io.raw_os_error() {
                return Some((code, io.to_string()));
            }
            if let Some(found) = io.get_ref().and_then(|inner| os_error(inner)) {
                return Some(found);
            }
        }
        cur = e.source();
    }
    None
}

/// Whether the error chain holds an OS error with one of `codes`.
fn has_errno(err: &(dyn std::error::Error + 'static), codes: &[i32]) -> bool {
    os_error(err).is_some_and(|(code, _)| codes.contains(&code))
}

/// The text of the first OS error in an error's source chain, else of the error itself.
fn errno_text(err: &(dyn std::error::Error + 'static)) -> String {
    os_error(err).map_or_else(|| err.to_string(), |(_, text)| text)
}

/// The full `a: b: c` text of an error chain.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = e.source();
    }
    text
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<MapData, Error> {
    match ebpf.take_map(name) {
        Some(Map::HashMap(m) | Map::PerCpuArray(m) | Map::Array(m)) => Ok(m),
        _ => Err(Error::Map(name)),
    }
}

fn load_program<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, Error>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(Error::Map(name))?;
    program.try_into().map_err(|source| Error::Program {
        program: name,
        source,
    })
}

/// Interface names → `(name, ifindex)`, checked: each exists, none twice, at least one, at most
/// [`MAX_IFACES`].
fn resolve(names: &[String]) -> Result<Vec<(String, u32)>, Error> {
    let mut resolved: Vec<(String, u32)> = Vec::new();
    for name in names {
        if name.is_empty() {
            return Err(Error::EmptyInterfaceName);
        }
        if resolved.iter().any(|(n, _)| n == name) {
            return Err(Error::DuplicateInterface(name.clone()));
        }
        let index = iface::index_of(name).ok_or_else(|| Error::UnknownInterface {
            name: name.clone(),
            available: iface::available().join(", "),
        })?;
        resolved.push((name.clone(), index));
    }
    if resolved.is_empty() {
        return Err(Error::NoInterface);
    }
    if resolved.len() > MAX_IFACES as usize {
        return Err(Error::TooManyInterfaces {
            count: resolved.len(),
            max: MAX_IFACES,
        });
    }
    Ok(resolved)
}

/// Writes ifindex → slot + 1 for every monitored interface.
fn register_slots(ebpf: &mut Ebpf, resolved: &[(String, u32)]) -> Result<(), Error> {
    let slots = ebpf
        .map_mut(maps::IFACE_SLOTS)
        .ok_or(Error::Map(maps::IFACE_SLOTS))?;
    let mut slots: Array<&mut MapData, u32> =
        Array::try_from(slots).map_err(|_| Error::Map(maps::IFACE_SLOTS))?;
    for (slot, (name, index)) in (0u32..).zip(resolved) {
        slots
            .set(*index, slot + 1, 0)
            .map_err(|source| Error::Slot {
                iface: name.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Loads (verifies) the programs `mode` needs: XDP or TC ingress, and TC egress.
fn load_programs(ebpf: &mut Ebpf, mode: ModeRequest) -> Result<(), Error> {
    let failed = |program: &'static str| {
        move |source: aya::programs::ProgramError| {
            // Without CAP_NET_ADMIN (XDP, TC) or CAP_PERFMON the kernel refuses the program
            // itself, after the maps were created.
            if has_errno(&source, &[libc::EPERM, libc::EACCES]) {
                Error::Permission(format!(
                    "loading program `{program}`: {}",
                    errno_text(&source)
                ))
            } else {
                Error::Program { program, source }
            }
        }
    };
    if mode == ModeRequest::Tc {
        load_program::<SchedClassifier>(ebpf, PROG_TC_INGRESS)?
            .load()
            .map_err(failed(PROG_TC_INGRESS))?;
    } else {
        load_program::<Xdp>(ebpf, PROG_XDP)?
            .load()
            .map_err(failed(PROG_XDP))?;
    }
    load_program::<SchedClassifier>(ebpf, PROG_TC_EGRESS)?
        .load()
        .map_err(failed(PROG_TC_EGRESS))
}

/// Creates the maps (sized for `resolved` and `opts`), registers the interface slots and loads
/// (verifies) the programs `opts.mode` needs. Nothing is attached yet.
fn load_object(opts: &LoadOptions, resolved: &[(String, u32)]) -> Result<Ebpf, Error> {
    if OBJECT.is_empty() {
        return Err(Error::NoObject);
    }
    let count = u32::try_from(resolved.len()).unwrap_or(u32::MAX);
    let max_ifindex = resolved.iter().map(|&(_, i)| i).max().unwrap_or(0);
    let mut ebpf = EbpfLoader::new()
        .map_max_entries(maps::HOSTS, opts.max_hosts.max(1))
        .map_max_entries(maps::PAIRS, pin::pair_capacity(opts.max_hosts, opts.peers))
        .override_global(maps::COUNT_PAIRS, &u8::from(opts.peers), true)
        .map_max_entries(
            maps::ERRORS,
            if opts.layout == 1 {
                pin::LAYOUT1_ERROR_KINDS
            } else {
                ntop_common::errors::ERROR_KINDS
            },
        )
        .map_max_entries(maps::OTHER_HOSTS, count)
        .map_max_entries(maps::PROTO_STATS, count * DIRECTIONS * PROTO_SLOTS)
        .map_max_entries(maps::IFACE_SLOTS, max_ifindex + 1)
        .load(OBJECT)
        .map_err(|e| {
            if has_errno(&e, &[libc::EPERM, libc::EACCES]) {
                Error::Permission(format!("creating the maps: {}", errno_text(&e)))
            } else {
                Error::Load(e)
            }
        })?;
    register_slots(&mut ebpf, resolved)?;
    load_programs(&mut ebpf, opts.mode)?;
    Ok(ebpf)
}

/// Takes the counter maps out of a loaded object; the pair map unless pairs are not counted
/// (`--no-peers`) or `opts.layout` is 1 (the upgrade test's stand-in for an ntop of layout 1,
/// which had none).
fn take_counters(ebpf: &mut Ebpf, opts: &LoadOptions) -> Result<counters::MapSet, Error> {
    Ok(counters::MapSet {
        hosts: take(ebpf, maps::HOSTS)?,
        other: take(ebpf, maps::OTHER_HOSTS)?,
        proto: take(ebpf, maps::PROTO_STATS)?,
        errors: take(ebpf, maps::ERRORS)?,
        pairs: if opts.layout == 1 || !opts.peers {
            None
        } else {
            Some(take(ebpf, maps::PAIRS)?)
        },
    })
}

/// The one pin directory under `base` whose programs a start of layout `layout` takes over
/// (re-adopts or replaces), with its layout file; `None` when nothing is pinned there.
///
/// Refused (nothing is changed): pins of a newer layout ([`pin::PinError::Newer`]); pins
/// without a readable layout file or of a layout this build cannot read
/// ([`pin::PinError::Mismatch`]); pins of more than one layout, and pins moved aside by a
/// replacement that did not finish ([`pin::PinError::Leftover`]: `ntop --detach-all` reads
/// them and removes them). Empty directories are ignored.
fn pinned_under(base: &Path, layout: u32) -> Result<Option<(PathBuf, pin::Layout)>, Error> {
    let mismatch = |dir: &Path, what: String| {
        Error::Pin(pin::PinError::Mismatch {
            dir: dir.to_path_buf(),
            what,
        })
    };
    let mut found: Option<(PathBuf, pin::Layout)> = None;
    for d in pin::scan(base)? {
        if !pin::holds_pins(&d.dir) {
            continue;
        }
        if d.aside {
            return Err(Error::Pin(pin::PinError::Leftover {
                dir: d.dir,
                what: "a replacement of these pins was interrupted (it had moved them aside)"
                    .to_owned(),
            }));
        }
        if d.layout > layout {
            return Err(Error::Pin(pin::PinError::Newer {
                dir: d.dir,
                found: d.layout,
                ours: layout,
            }));
        }
        let Some(pinned) = pin::read_layout(&d.dir)? else {
            continue;
        };
        if pinned.layout != d.layout {
            return Err(mismatch(
                &d.dir,
                format!(
                    "its layout file says pin layout {}, its directory {}",
                    pinned.layout, d.layout
                ),
            ));
        }
        if pin::layout_maps(d.layout, layout, 0, 0, 0, 0).is_none() {
            return Err(mismatch(
                &d.dir,
                format!(
                    "pin layout {}, which this ntop (layout {layout}) cannot read",
                    d.layout
                ),
            ));
        }
        if let Some((first, _)) = &found {
            return Err(Error::Pin(pin::PinError::Leftover {
                dir: d.dir,
                what: format!(
                    "programs are pinned in `{}` too (an interrupted replacement?), and a start \
                     takes over one pin layout only",
                    first.display()
                ),
            }));
        }
        found = Some((d.dir, pinned));
    }
    Ok(found)
}

/// `a, b` or, when the names are the same, `a (ifindex 3), b (ifindex 4)`.
fn interface_list(names: &[(String, u32)], with_index: bool) -> String {
    names
        .iter()
        .map(|(n, i)| {
            if with_index {
                format!("{n} (ifindex {i})")
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How the programs pinned in `dir` (as `layout` records them) differ from what `opts` asks
/// for: empty when they can be re-adopted as they are. Also checks that every pinned link is
/// still attached to its interface (a link whose interface went, or that a failed replacement
/// detached, is defunct).
fn differences(
    opts: &LoadOptions,
    resolved: &[(String, u32)],
    dir: &Path,
    layout: &pin::Layout,
) -> Vec<String> {
    let mut why = Vec::new();
    if layout.layout != opts.layout {
        why.push(format!(
            "pin layout {}, this ntop uses {}",
            layout.layout, opts.layout
        ));
    }
    let pinned: Vec<(String, u32)> = layout
        .interfaces
        .iter()
        .map(|i| (i.name.clone(), i.ifindex))
        .collect();
    if pinned != resolved {
        let same_names = pinned
            .iter()
            .map(|p| &p.0)
            .eq(resolved.iter().map(|r| &r.0));
        why.push(format!(
            "pinned for [{}], now [{}]",
            interface_list(&pinned, same_names),
            interface_list(resolved, same_names)
        ));
    }
    if layout.mode != pin::mode_name(opts.mode) {
        why.push(format!(
            "pinned with --capture-mode {}, now {}",
            layout.mode,
            pin::mode_name(opts.mode)
        ));
    }
    let max_hosts = opts.max_hosts.max(1);
    if layout.max_hosts != max_hosts {
        why.push(format!(
            "pinned with a host capacity of {}, now {max_hosts} (a different --memory-budget)",
            layout.max_hosts
        ));
    }
    if layout.layout > 1 && layout.peers != opts.peers {
        why.push(format!(
            "pinned {} peers, now {}",
            if layout.peers {
                "counting"
            } else {
                "not counting"
            },
            if opts.peers {
                "counting them"
            } else {
                "--no-peers"
            }
        ));
    }
    if why.is_empty() {
        for (index, hook, file) in pin::pinned_hooks(layout) {
            let iface = &layout.interfaces[index];
            let state = sys::obj_get(&dir.join("links").join(&file))
                .and_then(|fd| sys::link_state(fd.as_fd()));
            match state {
                Ok(s) if s.ifindex == iface.ifindex => {}
                Ok(_) => why.push(format!(
                    "the {} link of {} is no longer attached",
                    hook.name(),
                    iface.name
                )),
                Err(e) => why.push(format!("the pinned link `{file}` cannot be opened: {e}")),
            }
        }
    }
    why
}

/// The pinned links of a pinned [`Kernel`] and where they are.
#[derive(Debug)]
struct Pins {
    /// `base/v<layout>`.
    dir: PathBuf,
    /// Kept open: the links stay attached while the pins or these fds exist.
    links: Vec<PinnedLink>,
    /// Whether the programs were re-adopted (their counters go on from before this start).
    readopted: bool,
}

/// A link just attached, to be pinned.
enum LinkHandle {
    Xdp(XdpLinkId),
    Tc(&'static str, SchedClassifierLinkId),
}

/// Takes an attached link from its program as an [`FdLink`] (a `bpf_link`).
fn take_fd_link(ebpf: &mut Ebpf, handle: LinkHandle) -> Result<FdLink, String> {
    match handle {
        LinkHandle::Xdp(id) => {
            let xdp = load_program::<Xdp>(ebpf, PROG_XDP).map_err(|e| e.to_string())?;
            let link = xdp.take_link(id).map_err(|e| chain(&e))?;
            FdLink::try_from(link).map_err(|e| {
                format!("the XDP attachment is not a bpf_link (kernel older than 5.9?): {e}")
            })
        }
        LinkHandle::Tc(program, id) => {
            let tc = load_program::<SchedClassifier>(ebpf, program).map_err(|e| e.to_string())?;
            let link = tc.take_link(id).map_err(|e| chain(&e))?;
            FdLink::try_from(link).map_err(|e| chain(&e))
        }
    }
}

impl Kernel {
    /// Loads the programs, sizes the maps and attaches to every interface. Nothing is pinned:
    /// dropping the [`Kernel`] detaches everything.
    ///
    /// # Errors
    /// See [`Error`]; nothing stays attached when this fails.
    pub fn load(opts: &LoadOptions) -> Result<Self, Error> {
        if OBJECT.is_empty() {
            return Err(Error::NoObject);
        }
        let resolved = resolve(&opts.interfaces)?;
        Self::load_fresh(opts, resolved, None)
    }

    /// Like [`Kernel::load`], but pinned under `base/v<opts.layout>` (see [`pin`]). bpffs is
    /// mounted at `/sys/fs/bpf` first when `base` is under it and it is not mounted.
    ///
    /// - Nothing pinned under `base`: loads, attaches and pins every map and link.
    /// - `base/v<layout>` pinned with the same interfaces (names and ifindexes), capture mode
    ///   and host capacity, every link still attached: re-adopts the pins, so the counters go
    ///   on from where they were with no gap ([`Kernel::readopted`]).
    /// - Otherwise, when the pins are readable (that layout with other options, or an older
    ///   layout this build reads, [`pin::layout_maps`]): replaces them. The new programs take
    ///   over every hook whose kind stays the same by an atomic `BPF_LINK_UPDATE` of the pinned
    ///   link (no packet uncounted, none counted twice); the other hooks are detached, then
    ///   attached anew (packets in between are not counted). Then the old maps are read once,
    ///   after every invocation of the old programs has finished, into a [`Sample`] that
    ///   [`Kernel::take_replaced`] hands out, and the old pins are removed.
    ///
    /// # Errors
    /// See [`Error`]. [`Error::Pin`] with [`pin::PinError::Newer`] for pins of a newer layout
    /// and [`pin::PinError::Mismatch`] for pins this build cannot read (nothing is changed
    /// then); [`pin::PinError::Replace`] when a replacement failed after it had touched a hook
    /// (it is undone as far as possible). On a failed first start nothing stays pinned or
    /// attached.
    pub fn load_pinned(opts: &LoadOptions, base: &Path) -> Result<Self, Error> {
        if OBJECT.is_empty() {
            return Err(Error::NoObject);
        }
        let resolved = resolve(&opts.interfaces)?;
        pin::prepare_base(base)?;
        let ours = pin::version_dir(base, opts.layout);
        let Some((old_dir, layout)) = pinned_under(base, opts.layout)? else {
            let dir = pin::prepare(base, opts.layout)?;
            let result = Self::load_fresh(opts, resolved, Some(&dir));
            if result.is_err() {
                let mut removed = Vec::new();
                if let Err(e) = pin::remove_dir(&dir, &mut removed) {
                    tracing::warn!(error = %e, "removing the partial pins failed");
                }
            }
            return result;
        };
        let why = differences(opts, &resolved, &old_dir, &layout);
        if old_dir == ours && why.is_empty() {
            Self::adopt(opts, old_dir, &layout)
        } else {
            Self::replace(opts, &resolved, base, &old_dir, &layout, &why)
        }
    }

    /// Re-adopts the programs pinned in `dir` (the options match, see [`differences`]).
    fn adopt(opts: &LoadOptions, dir: PathBuf, layout: &pin::Layout) -> Result<Self, Error> {
        let counters = CounterMaps::open_pinned(&dir, layout, opts.layout)?;
        let mut links = Vec::new();
        for file in &layout.links {
            links.push(pin::open_link(&dir, file)?);
        }
        tracing::info!(dir = %dir.display(), links = links.len(), "re-adopted the pinned programs");
        Ok(Self {
            ebpf: None,
            pins: Some(Pins {
                dir,
                links,
                readopted: true,
            }),
            counters,
            replaced: None,
        })
    }

    /// Loads and attaches; pins everything into `pin_dir` when given.
    fn load_fresh(
        opts: &LoadOptions,
        resolved: Vec<(String, u32)>,
        pin_dir: Option<&Path>,
    ) -> Result<Self, Error> {
        let mut ebpf = load_object(opts, &resolved)?;

        let mut interfaces = Vec::new();
        let mut handles = Vec::new();
        for (slot, (name, ifindex)) in (0u32..).zip(resolved) {
            let mode = if opts.attach {
                let (mode, ingress) = attach_ingress(&mut ebpf, &name, ifindex, opts.mode)?;
                handles.push((
                    pin::link_file(&name, pin::Hook::ingress(mode).name()),
                    ingress,
                ));
                let egress = attach_tc(&mut ebpf, &name, TcAttachType::Egress)?;
                handles.push((pin::link_file(&name, pin::Hook::TcxEgress.name()), egress));
                mode
            } else if opts.mode == ModeRequest::Tc {
                CaptureMode::Tc
            } else {
                CaptureMode::XdpNative
            };
            interfaces.push(Attached {
                name,
                ifindex,
                slot,
                mode,
            });
        }

        let pins = match pin_dir {
            Some(dir) => Some(pin_all(&mut ebpf, dir, opts, &interfaces, handles)?),
            None => None,
        };
        let counters = CounterMaps::new(
            interfaces,
            take_counters(&mut ebpf, opts)?,
            opts.max_hosts.max(1),
            Some(std::time::SystemTime::now()),
        );
        Ok(Self {
            ebpf: Some(ebpf),
            pins,
            counters,
            replaced: None,
        })
    }

    /// The final counts of the pinned programs this start replaced (other options, or an older
    /// pin layout), read once after the old programs had stopped: with the old pins'
    /// interfaces and [`Epoch`]. Handed out once; `None` afterwards and when nothing was
    /// replaced. The daemon folds them into its saved totals before its first poll.
    pub fn take_replaced(&mut self) -> Option<Sample> {
        self.replaced.take()
    }

    /// Which maps this load counts into (see [`Epoch`]).
    #[must_use]
    pub const fn epoch(&self) -> Epoch {
        self.counters.epoch()
    }

    /// Where the programs are pinned (`base/v<layout>`), if they are.
    #[must_use]
    pub fn pin_dir(&self) -> Option<&Path> {
        self.pins.as_ref().map(|p| p.dir.as_path())
    }

    /// Whether this start re-adopted pinned programs: their counters go on from before the
    /// start (they are not new counters starting at zero).
    #[must_use]
    pub fn readopted(&self) -> bool {
        self.pins.as_ref().is_some_and(|p| p.readopted)
    }

    /// Stops without detaching when pinned: closes every fd but leaves the pins in bpffs, so the
    /// programs keep counting until a later start re-adopts them or [`pin::detach_all`] removes
    /// them. Returns the pin directory, or `None` when nothing was pinned (then this detached
    /// everything, as [`Kernel::detach`] does).
    #[must_use]
    pub fn leave_pinned(self) -> Option<PathBuf> {
        let Self { ebpf, pins, .. } = self;
        drop(ebpf);
        pins.map(|p| p.dir)
    }

    /// The attached interfaces, in slot order.
    #[must_use]
    pub fn interfaces(&self) -> &[Attached] {
        self.counters.interfaces()
    }

    /// Host map capacity.
    #[must_use]
    pub const fn host_capacity(&self) -> u32 {
        self.counters.host_capacity()
    }

    /// The loaded programs, e.g. for `BPF_PROG_TEST_RUN` in tests and benchmarks.
    ///
    /// # Panics
    /// When the programs were re-adopted from pins ([`Kernel::readopted`]): this process did
    /// not load them.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        self.ebpf
            .as_mut()
            .expect("re-adopted pinned programs have no Ebpf object")
    }

    /// Reads every map into a new [`Sample`]. Never resets a kernel counter.
    ///
    /// # Errors
    /// [`Error::Read`] when a `bpf(2)` call fails.
    pub fn read(&mut self) -> Result<Sample, Error> {
        self.counters.read()
    }

    /// Reads every map into `out`, reusing its buffers: the collector keeps one sample, so a
    /// poll at a million hosts does not allocate and free 180 MB every second. The pair map
    /// is read once every [`PAIR_REFRESH`] only (`out.pairs_read` says whether it was).
    ///
    /// # Errors
    /// [`Error::Read`] when a `bpf(2)` call fails; `out` is then incomplete.
    pub fn read_into(&mut self, out: &mut Sample) -> Result<(), Error> {
        self.counters.read_into(out)
    }

    /// Makes the next [`read_into`](Self::read_into) read the pair map, due or not (for the
    /// benchmark that measures a poll with and without it).
    pub fn read_pairs_next(&mut self) {
        self.counters.read_pairs_next();
    }

    /// Detaches everything and says what was detached. Dropping does the same when nothing is
    /// pinned; when pinned, this also takes the pinned links off their hooks
    /// (`BPF_LINK_DETACH`: off when this returns) and removes the pins (links, maps, layout
    /// file): the pinned counts are gone.
    #[must_use]
    pub fn detach(self) -> Vec<Attached> {
        self.detach_then(|_| ()).0
    }

    /// Like [`Kernel::detach`], but reads the counters once more after the programs are off
    /// their hooks and no invocation is in flight any more, before the maps go: the final
    /// counts, nothing after them uncounted.
    ///
    /// # Errors
    /// The read's [`Error::Read`] (everything is detached all the same).
    pub fn detach_with_last_read(self) -> (Vec<Attached>, Result<Sample, Error>) {
        self.detach_then(|counters| {
            sys::settle();
            counters.read()
        })
    }

    /// Takes every program off its hook, runs `last` on the maps, then drops everything.
    fn detach_then<T>(self, last: impl FnOnce(&mut CounterMaps) -> T) -> (Vec<Attached>, T) {
        let Self {
            ebpf,
            pins,
            mut counters,
            ..
        } = self;
        // Unpinned links go with the object that owns them (closing a link's last fd detaches
        // it); the maps are held by `counters`.
        drop(ebpf);
        if let Some(pins) = &pins {
            pin::detach_links(&pins.dir);
        }
        let result = last(&mut counters);
        if let Some(pins) = pins {
            let mut removed = Vec::new();
            if let Err(e) = pin::remove_dir(&pins.dir, &mut removed) {
                tracing::warn!(error = %e, dir = %pins.dir.display(), "removing the pins failed");
            }
            drop(pins.links);
            if let Some(base) = pins.dir.parent() {
                // The base goes too when this was its only content.
                let _ = std::fs::remove_dir(base);
            }
        }
        (counters.into_interfaces(), result)
    }

    /// Time since the programs were loaded (or re-adopted).
    #[must_use]
    pub fn uptime(&self) -> Duration {
        self.counters.started().elapsed()
    }
}

/// Pins every map of a freshly loaded `ebpf` and the attached links into `dir`, and writes the
/// layout file last (a directory without it is an interrupted first start).
fn pin_all(
    ebpf: &mut Ebpf,
    dir: &Path,
    opts: &LoadOptions,
    interfaces: &[Attached],
    handles: Vec<(String, LinkHandle)>,
) -> Result<Pins, Error> {
    let count = u32::try_from(interfaces.len()).unwrap_or(u32::MAX);
    let max_ifindex = interfaces.iter().map(|a| a.ifindex).max().unwrap_or(0);
    // What re-adoption will check must hold for what this binary creates.
    let shapes = pin::layout_maps(
        opts.layout,
        opts.layout,
        count,
        max_ifindex,
        opts.max_hosts,
        pin::pair_capacity(opts.max_hosts, opts.peers),
    )
    .ok_or(Error::Map(maps::HOSTS))?;
    for shape in shapes {
        match ebpf.map(shape.name) {
            Some(Map::HashMap(m) | Map::PerCpuArray(m) | Map::Array(m)) => {
                if let Err(what) = pin::check_map(m, &shape) {
                    tracing::error!(%what, "a freshly loaded map differs from what pinning expects");
                    return Err(Error::Map(shape.name));
                }
            }
            _ => return Err(Error::Map(shape.name)),
        }
    }
    let mut map_files = Vec::new();
    for (name, map) in ebpf.maps() {
        let file = pin::map_file(name);
        let path = dir.join("maps").join(&file);
        map.pin(&path).map_err(|e| pin::PinError::Bpf {
            what: "pinning map",
            path: path.clone(),
            reason: chain(&e),
        })?;
        map_files.push(file);
    }
    let mut links = Vec::new();
    let mut link_files = Vec::new();
    for (file, handle) in handles {
        let path = dir.join("links").join(&file);
        let link = take_fd_link(ebpf, handle).map_err(|reason| pin::PinError::Bpf {
            what: "taking the link to pin it at",
            path: path.clone(),
            reason,
        })?;
        let pinned = link.pin(&path).map_err(|e| pin::PinError::Bpf {
            what: "pinning link",
            path: path.clone(),
            reason: chain(&e),
        })?;
        links.push(pinned);
        link_files.push(file);
    }
    pin::write_layout(
        dir,
        &pin::Layout {
            layout: opts.layout,
            mode: pin::mode_name(opts.mode).to_owned(),
            max_hosts: opts.max_hosts.max(1),
            peers: opts.peers,
            // Just after the maps were created; the collector reports peer counts as since then.
            created_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok()),
            interfaces: interfaces
                .iter()
                .map(|a| pin::PinnedInterface {
                    name: a.name.clone(),
                    ifindex: a.ifindex,
                    mode: a.mode,
                })
                .collect(),
            maps: map_files,
            links: link_files,
        },
    )?;
    Ok(Pins {
        dir: dir.to_path_buf(),
        links,
        readopted: false,
    })
}

fn attach_ingress(
    ebpf: &mut Ebpf,
    name: &str,
    ifindex: u32,
    mode: ModeRequest,
) -> Result<(CaptureMode, LinkHandle), Error> {
    const HINT_TC: &str = "try --capture-mode tc (counts ingress with TCX instead of XDP)";
    if mode == ModeRequest::Tc {
        let link = attach_tc(ebpf, name, TcAttachType::Ingress)?;
        return Ok((CaptureMode::Tc, link));
    }
    let xdp = load_program::<Xdp>(ebpf, PROG_XDP)?;
    let attempts: &[(XdpMode, CaptureMode, &'static str)] = match mode {
        ModeRequest::Xdp => &[
            (XdpMode::Driver, CaptureMode::XdpNative, "XDP (native)"),
            (XdpMode::Skb, CaptureMode::XdpGeneric, "XDP (generic)"),
        ],
        ModeRequest::XdpNative => &[(XdpMode::Driver, CaptureMode::XdpNative, "XDP (native)")],
        ModeRequest::XdpGeneric | ModeRequest::Tc => {
            &[(XdpMode::Skb, CaptureMode::XdpGeneric, "XDP (generic)")]
        }
    };
    // The error to report: the first "hook is busy" one (it names the fix), else the last.
    let mut last: Option<Error> = None;
    let mut busy_seen = false;
    for &(xdp_mode, capture, hook) in attempts {
        match xdp.attach_to_if_index(ifindex, xdp_mode) {
            Ok(id) => return Ok((capture, LinkHandle::Xdp(id))),
            Err(e) => {
                tracing::debug!(iface = name, hook, error = %chain(&e), "XDP attach failed");
                let busy = has_errno(&e, &[libc::EBUSY, libc::EEXIST]);
                if busy_seen {
                    continue;
                }
                busy_seen = busy;
                last = Some(Error::Attach {
                    iface: name.to_owned(),
                    hook,
                    reason: if busy {
                        "another XDP program owns this interface's hook".to_owned()
                    } else {
                        chain(&e)
                    },
                    hint: HINT_TC,
                });
            }
        }
    }
    Err(last.unwrap_or(Error::NoInterface))
}

fn attach_tc(ebpf: &mut Ebpf, name: &str, kind: TcAttachType) -> Result<LinkHandle, Error> {
    let (program, hook) = match kind {
        TcAttachType::Ingress => (PROG_TC_INGRESS, "TCX ingress"),
        _ => (PROG_TC_EGRESS, "TCX egress"),
    };
    let prog = load_program::<SchedClassifier>(ebpf, program)?;
    // First in the chain, so no other program can hide a packet from the count; the program
    // returns TCX_NEXT, so the rest of the chain runs as if ntop were not there.
    prog.attach_with_options(name, kind, TcAttachOptions::TcxOrder(LinkOrder::first()))
        .map(|id| LinkHandle::Tc(program, id))
        .map_err(|e| Error::Attach {
            iface: name.to_owned(),
            hook,
            reason: chain(&e),
            hint: "TCX needs Linux 6.6 or later and CAP_NET_ADMIN",
        })
}

/// Removes everything pinned under `base` (every layout version; for `ntop --detach-all`) and
/// says what it removed, with the final counts of every pin directory this build can read
/// (see [`pin::detach_all`]). Every pinned link is off its hook when this returns, also one a
/// running ntop still holds.
///
/// # Errors
/// [`Error::Pin`] when a pin cannot be removed.
pub fn detach_all(base: &Path) -> Result<DetachedAll, Error> {
    pin::detach_all(base)
}
