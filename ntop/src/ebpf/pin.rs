//! Pinning the kernel objects in bpffs so that they keep counting while the daemon is down.
//!
//! Layout under the pin base (e.g. `/sys/fs/bpf/ntop`):
//!
//! ```text
//! v<PIN_LAYOUT>/layout                  what was pinned (a symlink whose target is the text): layout, mode, host capacity, interfaces
//! v<PIN_LAYOUT>/maps/<NAME>             every map of the object
//! v<PIN_LAYOUT>/links/<iface>-<hook>    the bpf_links (hook: xdp, tcx-ingress, tcx-egress)
//! ```
//!
//! A restart of the same layout re-adopts the pins (after checking every map's type, key and
//! value size and capacity with `MapInfo`, and the interface list); anything else is refused with
//! an error that says what differs (aya's `create_pinned_by_name` does not check, aya#837).

use std::{
    ffi::CString,
    fmt::Write as _,
    fs, io,
    path::{Path, PathBuf},
};

use aya::{
    maps::{MapData, MapType},
    programs::links::PinnedLink,
};
use ntop_common::{
    counters::{Counter, HostCounters, HostKey},
    errors::ERROR_KINDS,
    maps::{self, DIRECTIONS},
    proto::PROTO_SLOTS,
};

use super::ModeRequest;
use crate::sample::CaptureMode;

/// Version of the pinned layout: the pin directory is `v<PIN_LAYOUT>`.
///
/// Bump when any map's key/value layout, type or the set of maps changes.
pub const PIN_LAYOUT: u32 = 1;

/// Where bpffs is normally mounted.
pub const BPFFS: &str = "/sys/fs/bpf";

/// The file recording what was pinned (no dot: bpffs refuses names with one, `EPERM`).
pub const LAYOUT_FILE: &str = "layout";

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The fix named by the mismatch errors.
const FIX: &str = "run `ntop --detach-all` first to remove them (the counts pinned there are lost), \
                   or start ntop with the same options as the pinned instance";

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
    /// What is pinned does not match what this ntop would create.
    #[error("the programs pinned in `{}` do not match this ntop: {what}; {FIX}", dir.display())]
    Mismatch {
        /// The pin directory.
        dir: PathBuf,
        /// What differs.
        what: String,
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
    /// Host map capacity.
    pub max_hosts: u32,
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
        let (mut interfaces, mut maps, mut links) = (Vec::new(), Vec::new(), Vec::new());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut words = line.split_whitespace();
            match (words.next()?, words.next()?) {
                ("layout", v) => layout = Some(v.parse().ok()?),
                ("mode", v) => mode = Some(v.to_owned()),
                ("max_hosts", v) => max_hosts = Some(v.parse().ok()?),
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

/// The versioned pin directory under `base`.
#[must_use]
pub fn version_dir(base: &Path) -> PathBuf {
    base.join(format!("v{PIN_LAYOUT}"))
}

/// Prepares `base` for this layout: mounts bpffs if needed, refuses pins of another layout,
/// creates `base/v<PIN_LAYOUT>`, and returns it.
///
/// # Errors
/// [`PinError`] when `base` is not on bpffs, another layout is pinned, or a directory cannot be
/// created.
pub fn prepare(base: &Path) -> Result<PathBuf, PinError> {
    ensure_bpffs(base)?;
    fs::create_dir_all(base).map_err(io_err("creating", base))?;
    if !is_bpffs(base) {
        return Err(PinError::NotBpffs(base.to_path_buf()));
    }
    let dir = version_dir(base);
    let ours = dir.file_name().map(std::ffi::OsStr::to_os_string);
    for entry in fs::read_dir(base).map_err(io_err("listing", base))? {
        let entry = entry.map_err(io_err("listing", base))?;
        let name = entry.file_name();
        if is_version_dir(&name) && Some(&name) != ours.as_ref() {
            return Err(PinError::Mismatch {
                dir: base.to_path_buf(),
                what: format!(
                    "programs of pin layout {} are pinned there, this ntop uses layout \
                     {PIN_LAYOUT} (an upgrade changed the maps)",
                    name.to_string_lossy()
                ),
            });
        }
    }
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

/// The maps this binary reads, as it would create them for `interfaces` interfaces, the highest
/// ifindex `max_ifindex` and `max_hosts` hosts.
#[must_use]
pub fn expected_maps(interfaces: u32, max_ifindex: u32, max_hosts: u32) -> [MapShape; 5] {
    [
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
            max_entries: ERROR_KINDS,
        },
    ]
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

/// Whether `name` is a layout version directory name (`v<N>`).
fn is_version_dir(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_prefix('v'))
        .is_some_and(|n| n.parse::<u32>().is_ok())
}

/// Removes everything ntop pinned under `base` (every layout version `v<N>`, links first) and
/// says what it removed; `base` itself goes when nothing else is left in it. Anything else in
/// `base` is left alone (so a mistaken `--pin-dir /sys/fs/bpf` cannot wipe other programs'
/// pins). A base that does not exist is nothing to remove.
///
/// # Errors
/// [`super::Error::Pin`] when a file cannot be removed.
pub fn detach_all(base: &Path) -> Result<Vec<String>, super::Error> {
    let mut removed = Vec::new();
    let entries = match fs::read_dir(base) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io_err("listing", base)(e).into()),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", base))?;
        if is_version_dir(&entry.file_name()) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_dir(&entry.path(), &mut removed)?;
        }
    }
    // Fails (and is left) when something that is not ours is in it.
    let _ = fs::remove_dir(base);
    Ok(removed)
}
