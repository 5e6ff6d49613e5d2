//! Builds the kernel programs (`ntop-ebpf`) for the BPF target and leaves the object in
//! `OUT_DIR/ntop`, which `src/ebpf` embeds with `include_bytes_aligned!`.
//!
//! Which toolchain builds them:
//! - `NTOP_BPF_TOOLCHAIN` if set (a rustup toolchain name);
//! - else `ntop-bpf` if rustup knows it: Debian's stable rustc linked in by `cargo xtask setup`,
//!   which ships a precompiled `core` for `bpfel-unknown-none`; the two crates that use an
//!   unstable feature (aya-ebpf's `generic_const_exprs`, ntop-ebpf's `atomic_xadd` intrinsic) are
//!   allowed it with `RUSTC_BOOTSTRAP=aya_ebpf,ntop`, which does not turn on `-Z build-std`;
//! - else `nightly` (needs `rust-src`; aya-build adds `-Z build-std=core`).
//!
//! `AYA_BUILD_SKIP=1` skips the build (for `cargo check`/clippy of the daemon on machines without
//! the BPF toolchain); an empty object is embedded then and loading it fails with a clear error.
use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn toolchain_exists(name: &str) -> bool {
    Command::new("rustup")
        .args(["run", name, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=NTOP_BPF_TOOLCHAIN");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        fs::write(out_dir.join("ntop"), b"").context("writing the placeholder object")?;
        return Ok(());
    }
    let name = match env::var("NTOP_BPF_TOOLCHAIN") {
        Ok(name) => name,
        Err(_) if toolchain_exists("ntop-bpf") => "ntop-bpf".to_owned(),
        Err(_) => "nightly".to_owned(),
    };
    if !toolchain_exists(&name) {
        return Err(anyhow!(
            "no toolchain to build the eBPF programs: rustup toolchain `{name}` does not run; \
             run `cargo xtask setup` (installs Debian's rustc with a BPF core and links it as \
             `ntop-bpf`), or set NTOP_BPF_TOOLCHAIN to a nightly toolchain that has rust-src"
        ));
    }
    if name != "nightly" && env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: build scripts are single-threaded here; the variable only reaches the child
        // cargo that aya-build spawns, and only the two named crates may use unstable features.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", "aya_ebpf,ntop") };
    }
    let package = Package {
        name: "ntop-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ntop-ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(&name))
        .with_context(|| format!("building the eBPF programs with toolchain `{name}`"))
}
