//! `cargo xtask setup`: everything a fresh Debian 12 (bookworm) machine, as root, needs to build
//! and test ntop, installed only where a check says it is missing.
//!
//! Steps, each printing one line (`ok: …` when present, `installing: …` when not):
//! 1. Debian packages, checked with one `dpkg-query`; `apt-get update` runs once, and only when
//!    a package is missing. Debian's `rustc-web` ships a precompiled `core` for
//!    `bpfel-unknown-none` (`libstd-rust-web-dev-bpf`), so the eBPF programs build on stable.
//!    The browser tests use Debian's `chromium` and `chromium-driver` (no browser download).
//! 2. `bpf-linker` 0.13.0, built against Debian's LLVM 22 with `cargo install` (checked with
//!    `bpf-linker --version`).
//! 3. The rustup toolchain `ntop-bpf` linked to Debian's rustc in `/usr` (checked with
//!    `rustup run ntop-bpf rustc --version` and the `libcore-*.rlib` for the BPF target).
//! 4. bpffs at `/sys/fs/bpf`, mounted when it is not (nothing needs it yet; skipped silently
//!    when it cannot be mounted).
use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{is_root, show};

/// Debian packages, in groups that each get one line of output.
const PACKAGES: &[(&str, &[&str])] = &[
    (
        "Debian's Rust toolchain with a BPF core",
        &[
            "rustc-web",
            "cargo-web",
            "libstd-rust-web-dev-bpf",
            "rust-web-clippy",
        ],
    ),
    (
        "LLVM 22 libraries for bpf-linker",
        &[
            "llvm-22-dev",
            "libpolly-22-dev",
            "libzstd-dev",
            "zlib1g-dev",
        ],
    ),
    (
        "test tools",
        &[
            "iproute2",
            "ethtool",
            "bpftool",
            "tshark",
            "iperf3",
            "tcpreplay",
            "netsniff-ng",
            "curl",
            "iputils-ping",
            "prometheus",
            "openssl",
        ],
    ),
    (
        // The dashboard's browser tests (tests/src/browser.rs) drive headless Chromium through
        // ChromeDriver (the same Debian version: chromium-driver depends on it exactly); a font,
        // so the screenshots show text.
        "browser tests (headless Chromium, ChromeDriver)",
        &["chromium", "chromium-driver", "fonts-dejavu-core"],
    ),
];

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
pub(crate) const TOOLCHAIN: &str = "ntop-bpf";
const BPF_CORE_DIR: &str = "/usr/lib/rustlib/bpfel-unknown-none/lib";
const BPFFS: &str = "/sys/fs/bpf";

/// Runs every step; errors name the step and the fix.
pub fn run() -> Result<()> {
    let mut apt = Apt::default();
    let installed = installed_packages()?;
    for (what, packages) in PACKAGES {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| !installed.contains(*p))
            .collect();
        if missing.is_empty() {
            println!("ok: {what} already present ({})", packages.join(" "));
        } else {
            println!("installing: {what} ({})", missing.join(" "));
            apt.install(&missing)
                .with_context(|| format!("step `{what}` failed"))?;
        }
    }
    bpf_linker().context("step `bpf-linker` failed")?;
    toolchain().with_context(|| format!("step `rustup toolchain {TOOLCHAIN}` failed"))?;
    mount_bpffs();
    Ok(())
}

/// Every package name that `dpkg-query` reports as installed (`ii`), of those we need.
fn installed_packages() -> Result<BTreeSet<String>> {
    let mut cmd = Command::new("dpkg-query");
    cmd.args(["-W", "-f=${Package}\t${db:Status-Abbrev}\n"]);
    cmd.args(PACKAGES.iter().flat_map(|(_, p)| p.iter()));
    // dpkg-query exits 1 when a package is unknown; its stdout still lists the others.
    let out = cmd.stderr(Stdio::null()).output().context(
        "could not run dpkg-query: this setup supports Debian 12 (bookworm) only; on another \
             system install the packages listed in xtask/src/setup.rs by hand",
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(_, status)| status.starts_with("ii"))
        .map(|(name, _)| name.to_owned())
        .collect())
}

/// Installs Debian packages; runs `apt-get update` before the first install only.
#[derive(Default)]
struct Apt {
    updated: bool,
}

impl Apt {
    fn install(&mut self, packages: &[&str]) -> Result<()> {
        if !is_root() {
            bail!(
                "missing Debian packages ({}); installing them needs root: run `sudo -E cargo \
                 xtask setup`, or `apt-get install {}` as root",
                packages.join(" "),
                packages.join(" ")
            );
        }
        if !self.updated {
            let mut update = Command::new("apt-get");
            update.args(["update", "-q"]);
            checked(
                &mut update,
                "check the apt sources (bookworm, bookworm-updates, bookworm-security)",
            )?;
            self.updated = true;
        }
        // tshark asks whether non-root users may capture; answer "no" before it can ask.
        let mut preseed = Command::new("debconf-set-selections");
        let mut child = preseed
            .stdin(Stdio::piped())
            .spawn()
            .context("could not run debconf-set-selections (package debconf)")?;
        child
            .stdin
            .take()
            .context("no stdin for debconf-set-selections")?
            .write_all(b"wireshark-common wireshark-common/install-setuid boolean false\n")
            .context("writing to debconf-set-selections")?;
        let status = child.wait().context("waiting for debconf-set-selections")?;
        if !status.success() {
            bail!("debconf-set-selections failed ({status})");
        }
        let mut install = Command::new("apt-get");
        install
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(packages);
        checked(
            &mut install,
            "run the same `apt-get install` by hand to see why; the Rust and LLVM 22 packages come \
             from bookworm-security/bookworm-updates",
        )
    }
}

/// Runs `cmd` (output shown); an error says what to do when it fails.
fn checked(cmd: &mut Command, fix: &str) -> Result<()> {
    let shown = show(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`; fix: {fix}"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); fix: {fix}");
    }
    Ok(())
}

/// The stdout of `program args` when it ran and succeeded.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn bpf_linker() -> Result<()> {
    let version = output_of("bpf-linker", &["--version"]);
    if let Some(v) = &version
        && v.split_whitespace().any(|w| w == BPF_LINKER_VERSION)
    {
        println!("ok: bpf-linker {BPF_LINKER_VERSION} already present");
        return Ok(());
    }
    match &version {
        Some(v) => println!("installing: bpf-linker {BPF_LINKER_VERSION} (found `{v}`)"),
        None => println!("installing: bpf-linker {BPF_LINKER_VERSION}"),
    }
    let mut cmd = crate::cargo([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--no-default-features",
        "--features",
        "llvm-22",
    ]);
    cmd.env("LLVM_PREFIX", LLVM_PREFIX);
    checked(
        &mut cmd,
        "it builds against Debian's llvm-22-dev and libpolly-22-dev (step 1 installs them); \
         check that /usr/lib/llvm-22/bin/llvm-config runs",
    )?;
    let after = output_of("bpf-linker", &["--version"]).unwrap_or_default();
    if !after.contains(BPF_LINKER_VERSION) {
        bail!(
            "bpf-linker installed but `bpf-linker --version` gives `{after}`: put cargo's bin \
             directory (~/.cargo/bin) first on PATH"
        );
    }
    Ok(())
}

/// The file name of the BPF target's precompiled `core`, if Debian's package put it there.
fn bpf_core() -> Option<String> {
    fs::read_dir(BPF_CORE_DIR).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let rlib = Path::new(&name).extension().is_some_and(|x| x == "rlib");
        (name.starts_with("libcore-") && rlib).then_some(name)
    })
}

fn toolchain() -> Result<()> {
    let Some(core) = bpf_core() else {
        bail!(
            "no libcore-*.rlib in {BPF_CORE_DIR}; fix: `apt-get install --reinstall \
             libstd-rust-web-dev-bpf` as root"
        );
    };
    if let Some(version) = output_of("rustup", &["run", TOOLCHAIN, "rustc", "--version"]) {
        println!("ok: rustup toolchain {TOOLCHAIN} ({version}, {core}) already present");
        return Ok(());
    }
    println!("installing: rustup toolchain {TOOLCHAIN} -> /usr");
    checked(
        Command::new("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]),
        "rustup must be on PATH (/root/.cargo/bin) and /usr/bin/rustc must come from rustc-web",
    )?;
    if output_of("rustup", &["run", TOOLCHAIN, "rustc", "--version"]).is_none() {
        bail!(
            "`rustup run {TOOLCHAIN} rustc --version` still fails after linking; fix: `rustup \
             toolchain uninstall {TOOLCHAIN}` and run `cargo xtask setup` again"
        );
    }
    Ok(())
}

/// Mounts bpffs at /sys/fs/bpf unless it is there; quiet when it cannot (not needed yet).
fn mount_bpffs() {
    let mounted = fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut f = l.split_whitespace();
            f.nth(1) == Some(BPFFS) && f.next() == Some("bpf")
        })
    });
    if mounted {
        println!("ok: bpffs already mounted at {BPFFS}");
    } else if is_root()
        && Path::new(BPFFS).is_dir()
        && Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    {
        println!("mounted: bpffs at {BPFFS}");
    }
}
