//! Pinning the kernel objects in bpffs so that they keep counting while the daemon is down, and
//! taking them over again: re-adopting them, or replacing them without losing a count.
//!
//! Layout under the pin base (e.g. `/sys/fs/bpf/ntop`):
//!
//! ```text
//! v<N>/layout                  what was pinned (a symlink whose target is the text): layout, mode, host capacity, interfaces
//! v<N>/maps/<NAME>             every map of the object
//! v<N>/links/<iface>-<hook>    the bpf_links (hook: xdp, tcx-ingress, tcx-egress)
//! v<N>-replaced/…              pins being replaced (only while a start replaces them in place)
//! ```
//!
//! `N` is the pin layout ([`PIN_LAYOUT`]). A restart of the same layout with the same options
//! re-adopts the pins (after checking every map's type, key and value size and capacity with
//! `MapInfo`, the interface list and that every link is still attached; aya's
//! `create_pinned_by_name` does not check, aya#837). Pins of another interface set, capture
//! mode or capacity, or of an older layout this build can read ([`layout_maps`]), are replaced
//! by [`Kernel::load_pinned`](super::Kernel::load_pinned): their final counts are read once and
//! handed to the daemon. Pins of a newer layout, or that cannot be read, are refused.

use std::{
    ffi::CString,
    fmt::Write as _,
    fs, io,
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{MapData, MapType},
    programs::links::PinnedLink,
};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey, PairCounters, PairKey},
    errors::ERROR_KINDS,
    maps::{self, DIRECTIONS},
    proto::PROTO_SLOTS,
};

use super::{ModeRequest, counters::CounterMaps, sys};
use crate::sample::{CaptureMode, Sample};

/// Version of the pinned layout: the pin directory is `v<PIN_LAYOUT>`.
///
/// Bump when any map's key/value layout, type or the set of maps changes, and keep a reader
/// for the layouts before it in [`layout_maps`], so that an upgrade folds their counts.
pub const PIN_LAYOUT: u32 = 2;

/// Error kinds of pin layout 1 (its error map has this many entries; layout 2 added the pair
/// map and its two error kinds).
pub const LAYOUT1_ERROR_KINDS: u32 = 13;

/// Where bpffs is normally mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The file recording what was pinned (no dot: bpffs refuses names with one, `EPERM`).
pub const LAYOUT_FILE: &str = "layout";

/// Suffix of a pin directory moved aside while a start replaces it in place.
pub const REPLACED_SUFFIX: &str = "-replaced";

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The fix named when pins cannot be taken over.
const FIX: &str = "a newer or another ntop pinned them: run that ntop, or `ntop --detach-all` to \
                   remove them (which loses the counts they hold since that ntop last saved)";

/// Errors of pinning and re-adopting.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// A file system operation on the pin directory failed.
    #[error("{what} `{}` failed: {source}", path.display())]
    Io {
        /// What was done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The pin base is not on a BPF file system.
    #[error(
        "`{}` is not on a BPF file system (bpffs); pin under /sys/fs/bpf, or mount one with \
         `mount -t bpf bpf DIR`", .0.display()
    )]
    NotBpffs(PathBuf),
    /// What is pinned cannot be read or taken over by this ntop.
    #[error("the programs pinned in `{}` cannot be taken over by this ntop: {what}; {FIX}", dir.display())]
    Mismatch {
        /// The pin directory.
        dir: PathBuf,
        /// What differs.
        what: String,
    },
    /// Pins of a newer layout: only a newer ntop can read their counts.
    #[error(
        "`{}` holds programs pinned by a newer ntop (pin layout {found}; this ntop has layout \
         {ours}); run that newer ntop, or `ntop --detach-all` to remove them (which loses the \
         counts they hold since that ntop last saved)", dir.display()
    )]
    Newer {
        /// The pin directory.
        dir: PathBuf,
        /// Its layout.
        found: u32,
        /// This build's layout.
        ours: u32,
    },
    /// Pins left over by an interrupted replacement, or of more than one layout.
    #[error(
        "`{}` is left over: {what}; run `ntop --detach-all`, which reads the final counts pinned \
         there and removes the pins, then start ntop again", dir.display()
    )]
    Leftover {
        /// The pin directory.
        dir: PathBuf,
        /// What it is.
        what: String,
    },
    /// A replacement of pinned programs failed after it had changed a hook.
    #[error(
        "replacing the programs pinned in `{}` failed: {reason}; the old pins are back in \
         place{}; fix the cause and start ntop again (it replaces them then), or run \
         `ntop --detach-all`", dir.display(),
        if uncounted.is_empty() {
            String::new()
        } else {
            format!(", but the ingress of {} is not counted until a start succeeds", uncounted.join(", "))
        }
    )]
    Replace {
        /// The old pin directory.
        dir: PathBuf,
        /// What failed.
        reason: String,
        /// Interfaces whose old ingress hook had been detached.
        uncounted: Vec<String>,
    },
    /// Pinning or opening a pinned map or link failed.
    #[error("{what} `{}` failed: {reason}", path.display())]
    Bpf {
        /// `pinning map`, `opening pinned link`, …
        what: &'static str,
        /// The pin path.
        path: PathBuf,
        /// aya's error chain.
        reason: String,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PinError {
    let path = path.to_path_buf();
    move |source| PinError::Io { what, path, source }
}

/// One interface as recorded in the layout file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinnedInterface {
    /// Interface name.
    pub name: String,
    /// Its ifindex when it was pinned.
    pub ifindex: u32,
    /// How its ingress is counted.
    pub mode: CaptureMode,
}

/// The content of the layout file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// [`PIN_LAYOUT`] of the writer.
    pub layout: u32,
    /// The `--capture-mode` requested.
    pub mode: String,
    /// Host map capacity (and pair map capacity, from layout 2 on, when `peers`).
    pub max_hosts: u32,
    /// Pairs are counted (layout 2 on; without, for `--no-peers`, the pair map has one entry
    /// and the programs leave it alone). Files without the line: counted.
    pub peers: bool,
    /// When the maps were created (ms since the Unix epoch); `None` in layout 1 files, which
    /// did not record it.
    pub created_ms: Option<u64>,
    /// Interfaces in slot order.
    pub interfaces: Vec<PinnedInterface>,
    /// File names under `maps/`.
    pub maps: Vec<String>,
    /// File names under `links/`.
    pub links: Vec<String>,
}

/// The name a mode request is recorded under.
pub(super) const fn mode_name(mode: ModeRequest) -> &'static str {
    match mode {
        ModeRequest::Xdp => "xdp",
        ModeRequest::XdpNative => "xdp-native",
        ModeRequest::XdpGeneric => "xdp-generic",
        ModeRequest::Tc => "tc",
    }
}

fn capture_mode(name: &str) -> Option<CaptureMode> {
    [
        CaptureMode::XdpNative,
        CaptureMode::XdpGeneric,
        CaptureMode::Tc,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

impl Layout {
    /// The text form: `key value` lines; `iface NAME IFINDEX MODE` once per interface in slot
    /// order.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "layout {}", self.layout);
        let _ = writeln!(s, "mode {}", self.mode);
        let _ = writeln!(s, "max_hosts {}", self.max_hosts);
        if !self.peers {
            let _ = writeln!(s, "peers off");
        }
        if let Some(ms) = self.created_ms {
            let _ = writeln!(s, "created_ms {ms}");
        }
        for i in &self.interfaces {
            let _ = writeln!(s, "iface {} {} {}", i.name, i.ifindex, i.mode.as_str());
        }
        for m in &self.maps {
            let _ = writeln!(s, "map {m}");
        }
        for l in &self.links {
            let _ = writeln!(s, "link {l}");
        }
        s
    }

    /// Parses [`Layout::to_text`]'s output; `None` when it is not that.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let mut layout = None;
        let mut mode = None;
        let mut max_hosts = None;
        let mut created_ms = None;
        let mut peers = true;
        let (mut interfaces, mut maps, mut links) = (Vec::new(), Vec::new(), Vec::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            match (words.next()?, words.next()?) {
                ("layout", v) => layout = Some(v.parse().ok()?),
                ("mode", v) => mode = Some(v.to_owned()),
                ("max_hosts", v) => max_hosts = Some(v.parse().ok()?),
                ("created_ms", v) => created_ms = Some(v.parse().ok()?),
                ("peers", "off") => peers = false,
                ("iface", name) => interfaces.push(PinnedInterface {
                    name: name.to_owned(),
                    ifindex: words.next()?.parse().ok()?,
                    mode: capture_mode(words.next()?)?,
                }),
                ("map", v) => maps.push(v.to_owned()),
                ("link", v) => links.push(v.to_owned()),
                _ => return None,
            }
        }
        Some(Self {
            layout: layout?,
            mode: mode?,
            max_hosts: max_hosts?,
            peers,
            created_ms,
            interfaces,
            maps,
            links,
        })
    }
}

/// Whether `path` is on bpffs.
#[allow(clippy::useless_conversion)] // `f_type`'s type differs between targets.
fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs only writes into the zeroed struct; the path is NUL-terminated.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &raw mut st) == 0 && i64::from(st.f_type) == BPF_FS_MAGIC
    }
}

/// Mounts bpffs at [`BPFFS`] when `base` is under it and it is not mounted there yet.
///
/// # Errors
/// [`PinError::Io`] when the mount fails.
pub fn ensure_bpffs(base: &Path) -> Result<(), PinError> {
    let root = Path::new(BPFFS);
    if !base.starts_with(root) || is_bpffs(root) {
        return Ok(());
    }
    fs::create_dir_all(root).map_err(io_err("creating", root))?;
    let target = CString::new(BPFFS).unwrap_or_default();
    let fstype = CString::new("bpf").unwrap_or_default();
    // SAFETY: all strings are NUL-terminated and live across the call; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(PinError::Io {
            what: "mounting bpffs at",
            path: root.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    tracing::info!(path = BPFFS, "mounted bpffs");
    Ok(())
}

/// The pin directory of layout `layout` under `base`: `base/v<layout>`.
#[must_use]
pub fn version_dir(base: &Path, layout: u32) -> PathBuf {
    base.join(format!("v{layout}"))
}

/// Where a start that replaces the pins of `dir` in place moves them meanwhile.
#[must_use]
pub fn aside_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(REPLACED_SUFFIX);
    dir.with_file_name(name)
}

/// Prepares `base`: mounts bpffs if needed, creates `base` and checks it is on bpffs.
///
/// # Errors
/// [`PinError`] when `base` is not on bpffs or cannot be created.
pub fn prepare_base(base: &Path) -> Result<(), PinError> {
    ensure_bpffs(base)?;
    fs::create_dir_all(base).map_err(io_err("creating", base))?;
    if !is_bpffs(base) {
        return Err(PinError::NotBpffs(base.to_path_buf()));
    }
    Ok(())
}

/// Prepares `base` ([`prepare_base`]), creates `base/v<layout>` with its `maps` and `links`
/// and returns it. What else is pinned under `base` is not looked at
/// ([`Kernel::load_pinned`](super::Kernel::load_pinned) does that).
///
/// # Errors
/// [`PinError`] when `base` is not on bpffs or a directory cannot be created.
pub fn prepare(base: &Path, layout: u32) -> Result<PathBuf, PinError> {
    prepare_base(base)?;
    let dir = version_dir(base, layout);
    fs::create_dir_all(dir.join("maps")).map_err(io_err("creating", &dir))?;
    fs::create_dir_all(dir.join("links")).map_err(io_err("creating", &dir))?;
    Ok(dir)
}

/// Reads the layout file of `dir`: `None` when nothing is pinned there yet.
///
/// # Errors
/// [`PinError::Mismatch`] when the directory holds pins without a readable layout file (an
/// interrupted first start, or another program's pins).
pub fn read_layout(dir: &Path) -> Result<Option<Layout>, PinError> {
    let file = dir.join(LAYOUT_FILE);
    match fs::read_link(&file) {
        Ok(text) => Layout::parse(&text.to_string_lossy())
            .map(Some)
            .ok_or_else(|| PinError::Mismatch {
                dir: dir.to_path_buf(),
                what: format!(
                    "`{}` is not a layout file this ntop can read",
                    file.display()
                ),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let leftovers = ["maps", "links"]
                .iter()
                .filter_map(|sub| fs::read_dir(dir.join(sub)).ok())
                .flatten()
                .count();
            if leftovers == 0 {
                Ok(None)
            } else {
                Err(PinError::Mismatch {
                    dir: dir.to_path_buf(),
                    what: format!(
                        "{leftovers} pinned objects but no {LAYOUT_FILE} (an interrupted start?)"
                    ),
                })
            }
        }
        Err(e) => Err(io_err("reading", &file)(e)),
    }
}

/// Writes the layout file. bpffs holds only BPF objects, directories and symlinks (no regular
/// files), so the layout is the target of a symlink: written in one `symlink(2)`, so it is there
/// whole or not at all.
///
/// # Errors
/// [`PinError::Io`].
pub fn write_layout(dir: &Path, layout: &Layout) -> Result<(), PinError> {
    let file = dir.join(LAYOUT_FILE);
    std::os::unix::fs::symlink(layout.to_text(), &file).map_err(io_err("writing", &file))
}

/// What a map must look like: type, key size, value size, capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapShape {
    /// Map name (and pin file name).
    pub name: &'static str,
    /// `BPF_MAP_TYPE_*`.
    pub map_type: MapType,
    /// Key size in bytes.
    pub key: u32,
    /// Value size in bytes (per CPU for per-CPU maps).
    pub value: u32,
    /// `max_entries`.
    pub max_entries: u32,
}

fn size<T>() -> u32 {
    u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
}

/// The pair map capacity for `max_hosts` hosts: as many, or 1 without `peers` (`--no-peers`).
#[must_use]
pub const fn pair_capacity(max_hosts: u32, peers: bool) -> u32 {
    if peers && max_hosts > 0 { max_hosts } else { 1 }
}

/// The maps this binary reads, as it would create them for `interfaces` interfaces, the highest
/// ifindex `max_ifindex`, `max_hosts` hosts and `max_pairs` pairs.
#[must_use]
pub fn expected_maps(
    interfaces: u32,
    max_ifindex: u32,
    max_hosts: u32,
    max_pairs: u32,
) -> Vec<MapShape> {
    let mut shapes = layout1_maps(interfaces, max_ifindex, max_hosts);
    for s in &mut shapes {
        if s.name == maps::ERRORS {
            s.max_entries = ERROR_KINDS;
        }
    }
    shapes.push(MapShape {
        name: maps::PAIRS,
        map_type: MapType::Hash,
        key: size::<PairKey>(),
        value: size::<PairCounters>(),
        max_entries: max_pairs.max(1),
    });
    shapes
}

/// The maps of pin layout 1: those of today without the pair map, and 13 error kinds. Its value
/// types are today's, so `CounterMaps::read_into` reads it as it is.
fn layout1_maps(interfaces: u32, max_ifindex: u32, max_hosts: u32) -> Vec<MapShape> {
    vec![
        MapShape {
            name: maps::HOSTS,
            map_type: MapType::Hash,
            key: size::<HostKey>(),
            value: size::<HostCounters>(),
            max_entries: max_hosts.max(1),
        },
        MapShape {
            name: maps::OTHER_HOSTS,
            map_type: MapType::PerCpuArray,
            key: 4,
            value: size::<HostCounters>(),
            max_entries: interfaces,
        },
        MapShape {
            name: maps::PROTO_STATS,
            map_type: MapType::PerCpuArray,
            key: 4,
            value: size::<Counter>(),
            max_entries: interfaces * DIRECTIONS * PROTO_SLOTS,
        },
        MapShape {
            name: maps::IFACE_SLOTS,
            map_type: MapType::Array,
            key: 4,
            value: 4,
            max_entries: max_ifindex + 1,
        },
        MapShape {
            name: maps::ERRORS,
            map_type: MapType::PerCpuArray,
            key: 4,
            value: 8,
            max_entries: LAYOUT1_ERROR_KINDS,
        },
    ]
}

// Layout 2 is today's layout. A build that bumps PIN_LAYOUT must keep readers for layouts 1 and
// 2 (their shapes, and a reader of their value types beside `read_into`).
const _: () = assert!(
    PIN_LAYOUT == 2,
    "PIN_LAYOUT changed: keep readers for layouts 1 and 2 in layout_maps (their map shapes and \
     value types), so that an upgrade still folds the counts pinned by an earlier ntop"
);

/// The maps of pin layout `layout` as this build reads them, for `interfaces` interfaces, the
/// highest ifindex `max_ifindex`, `max_hosts` hosts and `max_pairs` pairs (layout 1 had no
/// pair map); `None` when this build cannot read that layout. `own` is the layout this build pins with (normally [`PIN_LAYOUT`]; the upgrade
/// tests run as a build of `PIN_LAYOUT + 1` with today's maps, or of layout 1, which creates
/// layout 1's shapes).
#[must_use]
pub fn layout_maps(
    layout: u32,
    own: u32,
    interfaces: u32,
    max_ifindex: u32,
    max_hosts: u32,
    max_pairs: u32,
) -> Option<Vec<MapShape>> {
    let today = || expected_maps(interfaces, max_ifindex, max_hosts, max_pairs);
    match layout {
        1 => Some(layout1_maps(interfaces, max_ifindex, max_hosts)),
        PIN_LAYOUT => Some(today()),
        n if n == own => Some(today()),
        _ => None,
    }
}

/// Compares a map with its expected shape; `Err(what differs)`.
///
/// # Errors
/// A description of the difference.
pub fn check_map(map: &MapData, want: &MapShape) -> Result<(), String> {
    let info = map
        .info()
        .map_err(|e| format!("map {}: no map info: {e}", want.name))?;
    let map_type = info
        .map_type()
        .map_err(|e| format!("map {}: unknown type: {e}", want.name))?;
    let mut diffs = Vec::new();
    if map_type != want.map_type {
        diffs.push(format!("type {map_type:?}, expected {:?}", want.map_type));
    }
    if info.key_size() != want.key {
        diffs.push(format!(
            "key size {}, expected {}",
            info.key_size(),
            want.key
        ));
    }
    if info.value_size() != want.value {
        diffs.push(format!(
            "value size {}, expected {}",
            info.value_size(),
            want.value
        ));
    }
    if info.max_entries() != want.max_entries {
        diffs.push(format!(
            "{} entries, expected {}{}",
            info.max_entries(),
            want.max_entries,
            if want.name == maps::HOSTS {
                " (a different --memory-budget / host capacity)"
            } else {
                " (a different interface set)"
            }
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("map {}: {}", want.name, diffs.join(", ")))
    }
}

/// The file name a map is pinned under (`.rodata` → `_rodata`: bpffs refuses names with a dot).
#[must_use]
pub fn map_file(name: &str) -> String {
    name.replace(['.', '/'], "_")
}

/// The file name a link is pinned under: bpffs refuses names with a dot, which interface names
/// may have (`eth0.100`); interface names never hold a `:`, so `.` → `:` keeps them distinct.
#[must_use]
pub fn link_file(iface: &str, hook: &str) -> String {
    format!("{}-{hook}", iface.replace('.', ":"))
}

/// A hook ntop attaches to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// XDP (native or generic), ingress.
    Xdp,
    /// TCX ingress (`--capture-mode tc`).
    TcxIngress,
    /// TCX egress.
    TcxEgress,
}

impl Hook {
    /// The name in link file names ([`link_file`]).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::TcxIngress => "tcx-ingress",
            Self::TcxEgress => "tcx-egress",
        }
    }

    /// The ingress hook of an interface counted in `mode`.
    #[must_use]
    pub const fn ingress(mode: CaptureMode) -> Self {
        match mode {
            CaptureMode::XdpNative | CaptureMode::XdpGeneric => Self::Xdp,
            CaptureMode::Tc => Self::TcxIngress,
        }
    }
}

/// The links `layout` records, each with its interface (index into `layout.interfaces`),
/// hook and file name: the ingress and egress hook of every interface, where a link file for it
/// is listed.
#[must_use]
pub fn pinned_hooks(layout: &Layout) -> Vec<(usize, Hook, String)> {
    let mut hooks = Vec::new();
    for (index, iface) in layout.interfaces.iter().enumerate() {
        for hook in [Hook::ingress(iface.mode), Hook::TcxEgress] {
            let file = link_file(&iface.name, hook.name());
            if layout.links.contains(&file) {
                hooks.push((index, hook, file));
            }
        }
    }
    hooks
}

/// Opens a pinned map.
///
/// # Errors
/// [`PinError::Bpf`].
pub fn open_map(dir: &Path, name: &str) -> Result<MapData, PinError> {
    let path = dir.join("maps").join(map_file(name));
    MapData::from_pin(&path).map_err(|e| PinError::Bpf {
        what: "opening pinned map",
        path,
        reason: super::chain(&e),
    })
}

/// Opens a pinned link (keeping it open keeps it attached even if the pin goes).
///
/// # Errors
/// [`PinError::Bpf`].
pub fn open_link(dir: &Path, file: &str) -> Result<PinnedLink, PinError> {
    let path = dir.join("links").join(file);
    PinnedLink::from_pin(&path).map_err(|e| PinError::Bpf {
        what: "opening pinned link",
        path,
        reason: super::chain(&e),
    })
}

/// Removes the pin directory `dir` (one version) and says what it removed. Links detach when
/// their last reference (pin or open fd) goes.
///
/// # Errors
/// [`PinError::Io`] for the first file that could not be removed.
pub fn remove_dir(dir: &Path, removed: &mut Vec<String>) -> Result<(), PinError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    // Links first, so the programs stop before their maps' pins go.
    paths.sort_by_key(|p| p.file_name().is_none_or(|n| n != "links"));
    for path in paths {
        if path.is_dir() {
            remove_dir(&path, removed)?;
        } else {
            fs::remove_file(&path).map_err(io_err("removing", &path))?;
            removed.push(path.display().to_string());
        }
    }
    fs::remove_dir(dir).map_err(io_err("removing", dir))?;
    Ok(())
}

/// The layout of a directory name `v<N>` or `v<N>-replaced`, and whether it is the latter.
fn version_of(name: &std::ffi::OsStr) -> Option<(u32, bool)> {
    let name = name.to_str()?.strip_prefix('v')?;
    let (number, aside) = match name.strip_suffix(REPLACED_SUFFIX) {
        Some(n) => (n, true),
        None => (name, false),
    };
    // `u32::from_str` takes a leading `+`: not ours.
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((number.parse().ok()?, aside))
}

/// A pin directory of ntop's under the base.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinDir {
    /// `base/v<N>` or `base/v<N>-replaced`.
    pub dir: PathBuf,
    /// `N`.
    pub layout: u32,
    /// Moved aside by a replacement that did not finish (`v<N>-replaced`).
    pub aside: bool,
}

/// ntop's pin directories under `base` (`v<N>` and `v<N>-replaced`), by layout; nothing else
/// in `base` is looked at. A missing base holds none.
///
/// # Errors
/// [`PinError::Io`] when `base` cannot be listed.
pub fn scan(base: &Path) -> Result<Vec<PinDir>, PinError> {
    let entries = match fs::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", base)(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", base))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if let Some((layout, aside)) = version_of(&entry.file_name()) {
            found.push(PinDir {
                dir: entry.path(),
                layout,
                aside,
            });
        }
    }
    found.sort_by_key(|d| (d.layout, d.aside));
    Ok(found)
}

/// Whether anything but (empty) directories is under `dir`: pins, or a layout file.
#[must_use]
pub fn holds_pins(dir: &Path) -> bool {
    fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            holds_pins(&e.path())
        } else {
            true
        }
    })
}

/// Takes every link pinned under `dir/links` off its hook now (`BPF_LINK_DETACH`), whoever
/// still holds it; the pins stay. Returns how many links were detached. A link that cannot be
/// opened or detached is logged and left to go with its pin (the kernel then detaches it when
/// its last reference goes, from a workqueue: `bpf_link_put` in kernel/bpf/syscall.c).
pub fn detach_links(dir: &Path) -> usize {
    let mut detached = 0;
    for entry in fs::read_dir(dir.join("links"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        match sys::obj_get(&path).and_then(|fd| sys::link_detach(fd.as_fd())) {
            Ok(()) => detached += 1,
            Err(e) => tracing::warn!(
                link = %path.display(),
                error = %e,
                "detaching a pinned link failed; it goes when its pin is removed"
            ),
        }
    }
    detached
}

/// What [`detach_all`] did.
#[derive(Debug, Default)]
pub struct DetachedAll {
    /// The pins it removed (paths).
    pub removed: Vec<String>,
    /// The final counts of every pin directory it could read, one sample each (with the
    /// interfaces and [`Epoch`](crate::sample::Epoch) of those pins), for the daemon to fold
    /// into its saved totals. Pins of a newer or unreadable layout have none (their counts are
    /// lost; a warning says so).
    pub final_counts: Vec<Sample>,
}

/// Removes everything ntop pinned under `base` (every layout `v<N>`, and `v<N>-replaced` left
/// by an interrupted replacement) and says what it removed; `base` itself goes when nothing
/// else is left in it. Anything else in `base` is left alone (so a mistaken
/// `--pin-dir /sys/fs/bpf` cannot wipe other programs' pins). A base that does not exist is
/// nothing to remove.
///
/// First every pinned link is taken off its hook ([`detach_links`]: off when this returns,
/// also when a running ntop still holds it), then the kernel is waited for until no program
/// invocation is in flight (`membarrier(MEMBARRIER_CMD_GLOBAL)`: `synchronize_rcu()`), then the
/// maps of each directory this build can read are read once into a [`Sample`], and only then
/// are the pins removed.
///
/// # Errors
/// [`super::Error::Pin`] when a file cannot be removed.
pub fn detach_all(base: &Path) -> Result<DetachedAll, super::Error> {
    let mut done = DetachedAll::default();
    let dirs = scan(base)?;
    let mut detached = 0;
    for d in &dirs {
        detached += detach_links(&d.dir);
    }
    let mut readable = Vec::new();
    for d in &dirs {
        match read_layout(&d.dir) {
            Ok(Some(layout)) => match CounterMaps::open_pinned(&d.dir, &layout, PIN_LAYOUT) {
                Ok(maps) => readable.push((d, maps)),
                Err(e) => tracing::warn!(
                    dir = %d.dir.display(),
                    error = %e,
                    "the counts pinned there cannot be read by this ntop; they are lost"
                ),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(
                dir = %d.dir.display(),
                error = %e,
                "the counts pinned there cannot be read by this ntop; they are lost"
            ),
        }
    }
    if detached > 0 && !readable.is_empty() {
        sys::settle();
    }
    for (d, mut maps) in readable {
        match maps.read() {
            Ok(sample) => done.final_counts.push(sample),
            Err(e) => tracing::warn!(
                dir = %d.dir.display(),
                error = %e,
                "reading the final counts failed; they are lost"
            ),
        }
    }
    for d in &dirs {
        remove_dir(&d.dir, &mut done.removed)?;
    }
    // Fails (and is left) when something that is not ours is in it.
    let _ = fs::remove_dir(base);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_directory_names() {
        let v = |s: &str| version_of(std::ffi::OsStr::new(s));
        assert_eq!(v("v1"), Some((1, false)));
        assert_eq!(v("v12-replaced"), Some((12, true)));
        assert_eq!(v("v"), None);
        assert_eq!(v("v+1"), None);
        assert_eq!(v("v1-new"), None);
        assert_eq!(v("foreign"), None);
        let base = Path::new("/sys/fs/bpf/ntop");
        assert_eq!(version_dir(base, 3), base.join("v3"));
        assert_eq!(aside_dir(&version_dir(base, 3)), base.join("v3-replaced"));
        assert_eq!(
            version_of(
                aside_dir(&version_dir(base, 3))
                    .file_name()
                    .unwrap_or_default()
            ),
            Some((3, true))
        );
    }

    #[test]
    fn readable_layouts() {
        // Layout 1 stays readable by every build; a build reads its own layout; nothing else.
        assert!(layout_maps(1, PIN_LAYOUT, 1, 2, 3, 3).is_some());
        assert!(layout_maps(1, PIN_LAYOUT + 1, 1, 2, 3, 3).is_some());
        assert!(layout_maps(PIN_LAYOUT + 1, PIN_LAYOUT + 1, 1, 2, 3, 3).is_some());
        assert!(layout_maps(PIN_LAYOUT + 1, PIN_LAYOUT, 1, 2, 3, 3).is_none());
        assert!(layout_maps(0, PIN_LAYOUT, 1, 2, 3, 3).is_none());
        assert_eq!(
            layout_maps(2, PIN_LAYOUT, 2, 7, 100, 1),
            Some(expected_maps(2, 7, 100, 1))
        );
        assert_eq!(
            (pair_capacity(100, true), pair_capacity(100, false)),
            (100, 1)
        );
        // Layout 1: no pair map, 13 error kinds; the other maps as today.
        let one = layout_maps(1, PIN_LAYOUT, 2, 7, 100, 100).unwrap();
        let today = expected_maps(2, 7, 100, 100);
        assert!(one.iter().all(|s| s.name != maps::PAIRS));
        assert_eq!(one.len() + 1, today.len());
        for s in &one {
            let t = today.iter().find(|t| t.name == s.name).unwrap();
            if s.name == maps::ERRORS {
                assert_eq!((s.max_entries, t.max_entries), (13, ERROR_KINDS));
            } else {
                assert_eq!(s, t);
            }
        }
    }

    #[test]
    fn pinned_hooks_follow_the_modes_and_the_listed_links() {
        let layout = Layout {
            layout: 1,
            mode: "xdp".into(),
            max_hosts: 10,
            peers: false,
            created_ms: Some(1_700_000_000_123),
            interfaces: vec![
                PinnedInterface {
                    name: "eth0.100".into(),
                    ifindex: 3,
                    mode: CaptureMode::XdpGeneric,
                },
                PinnedInterface {
                    name: "eth1".into(),
                    ifindex: 4,
                    mode: CaptureMode::Tc,
                },
            ],
            maps: vec![],
            links: vec![
                "eth0:100-xdp".into(),
                "eth0:100-tcx-egress".into(),
                "eth1-tcx-ingress".into(),
            ],
        };
        assert_eq!(Layout::parse(&layout.to_text()), Some(layout.clone()));
        assert_eq!(
            pinned_hooks(&layout),
            [
                (0, Hook::Xdp, "eth0:100-xdp".to_owned()),
                (0, Hook::TcxEgress, "eth0:100-tcx-egress".to_owned()),
                (1, Hook::TcxIngress, "eth1-tcx-ingress".to_owned()),
            ]
        );
    }
}
