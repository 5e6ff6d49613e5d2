//! `cargo xtask`: the project's developer tasks (the alias lives in `.cargo/config.toml`).
//!
//! - `setup`: installs what a fresh Debian 12 machine, as root, needs to build and test ntop.
//!   Every step checks first, so it takes well under 2 s when everything is there; the other
//!   commands run it first.
//! - `build [--release]`: `cargo build -p ntop` (the eBPF programs are built by `ntop/build.rs`).
//! - `run [-- ARGS]`: a release build, then `target/release/ntop ARGS` (needs root).
//! - `test [--no-root-tests] [-- CARGO_TEST_ARGS]`: the whole test suite, `cargo test --workspace`
//!   (but `ntop-ebpf`, which builds only for the BPF target).
//!   Tests that need root (network namespaces, BPF) live in the `ntop-tests` crate's `tests/`;
//!   everything else must pass as any user.
//! - `bench [NAME...]`: the benchmarks, `#[ignore]`d tests in `tests/tests/bench.rs`, in release
//!   mode, one at a time.

mod setup;

use std::{
    env,
    ffi::{OsStr, OsString},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Developer tasks for ntop",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need (Debian 12, as root); fast when all is there.
    Setup,
    /// Build the daemon and its eBPF programs.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Build the daemon in release mode and run it (as root) with the arguments after `--`.
    ///
    /// With no arguments ntop monitors the default-route interface.
    Run {
        /// Arguments for ntop, after `--`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Run the whole test suite (`cargo test --workspace`); needs root.
    Test {
        /// Run only the tests that need no root: everything but the integration tests of the
        /// `ntop-tests` crate (its library's own unit tests still run).
        #[arg(long)]
        no_root_tests: bool,
        /// More arguments for `cargo test`, after `--` (a second `--` passes test-harness
        /// arguments, e.g. `-- -- --test-threads=1`). With `--no-root-tests` they go to the
        /// run of every crate but `ntop-tests`.
        #[arg(last = true)]
        cargo_args: Vec<OsString>,
    },
    /// Lint everything: clippy on the workspace (pedantic, warnings are errors), clippy on the
    /// eBPF crate for the BPF target (Debian's clippy, the `ntop-bpf` toolchain), rustfmt.
    Lint,
    /// Run the benchmarks (release build, root, one at a time); all of them without NAME.
    Bench {
        /// Which benchmarks to run.
        #[arg(value_enum)]
        names: Vec<Bench>,
        /// More arguments for the test harness, after `--`.
        #[arg(last = true)]
        harness_args: Vec<OsString>,
    },
}

/// The benchmarks: `#[ignore]`d tests in `tests/tests/bench.rs` whose names contain
/// [`Bench::test_name`] (the test harness's substring filter).
#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Per-packet cost of the kernel programs, measured with `BPF_PROG_TEST_RUN`.
    ProgTestRun,
    /// Live packet rate through a monitored veth pair, generated with trafgen.
    Trafgen,
    /// Cost of one collector poll of the BPF maps.
    CollectorPoll,
    /// Per-packet cost when two CPUs update the same host entries at once.
    ContendedHost,
    /// The persister's write cost per poll at 10k and 100k hosts, and disk bytes per host-day.
    #[value(alias = "persist_write_cost")]
    PersistWriteCost,
    /// The dashboard's hosts page (time to first rows, paging) and the hosts API's p99 latency
    /// at 100k hosts, against 1k hosts, in headless Chromium.
    #[value(alias = "dashboard_hosts_page")]
    DashboardHosts,
}

impl Bench {
    fn test_name(self) -> &'static str {
        match self {
            Self::ProgTestRun => "bpf_per_packet_cost",
            Self::Trafgen => "trafgen",
            Self::CollectorPoll => "collector_poll_cost",
            Self::ContendedHost => "bpf_contended_host_cost",
            Self::PersistWriteCost => "persist_write_cost",
            Self::DashboardHosts => "dashboard_hosts_page",
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::run().map(|()| ExitCode::SUCCESS),
        Task::Build { release } => build(release),
        Task::Run { args } => run(&args),
        Task::Test {
            no_root_tests,
            cargo_args,
        } => test(no_root_tests, &cargo_args),
        Task::Lint => lint(),
        Task::Bench {
            names,
            harness_args,
        } => bench(&names, &harness_args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace's root directory (this crate's parent).
fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (relative to the workspace, where the
/// builds run), else `target/` in the workspace.
fn target_dir() -> PathBuf {
    let dir = env::var_os("CARGO_TARGET_DIR").map_or_else(|| "target".into(), PathBuf::from);
    workspace_root().join(dir)
}

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The cargo that runs this xtask (so the same toolchain builds everything), in the workspace.
fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Runs `cmd`, printing it first; `Ok(true)` when it succeeded, `Ok(false)` when it failed.
fn run_cmd(cmd: &mut Command) -> Result<bool> {
    let shown = show(cmd);
    eprintln!("running: {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        eprintln!("xtask: `{shown}` failed ({status})");
    }
    Ok(status.success())
}

fn show(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or(cmd.get_program())
        .to_string_lossy()
        .into_owned();
    cmd.get_args().fold(program, |mut s, a| {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
        s
    })
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn lint() -> Result<ExitCode> {
    setup::run()?;
    let host = run_cmd(&mut cargo([
        "clippy",
        "--workspace",
        "--exclude",
        "ntop-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel programs only build for the BPF target, with the toolchain that has its core
    // library; aya-build passes the same cfg and RUSTC_BOOTSTRAP when it builds them.
    let mut ebpf = Command::new("rustup");
    ebpf.args([
        "run",
        setup::TOOLCHAIN,
        "cargo",
        "clippy",
        "-p",
        "ntop-ebpf",
    ])
    .args([
        "--target",
        "bpfel-unknown-none",
        "--release",
        "--",
        "-D",
        "warnings",
    ])
    .current_dir(workspace_root())
    .env("RUSTC_BOOTSTRAP", "aya_ebpf,ntop")
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        "--cfg=bpf_target_arch=\"x86_64\"",
    )
    .env("CARGO_TARGET_DIR", target_dir().join("bpf-clippy"))
    .env_remove("RUSTC")
    .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let ebpf = run_cmd(&mut ebpf)?;
    let fmt = run_cmd(&mut cargo(["fmt", "--all", "--check"]))?;
    Ok(exit_code(host && ebpf && fmt))
}

fn build(release: bool) -> Result<ExitCode> {
    setup::run()?;
    let mut cmd = cargo(["build", "-p", "ntop"]);
    if release {
        cmd.arg("--release");
    }
    Ok(exit_code(run_cmd(&mut cmd)?))
}

fn run(args: &[OsString]) -> Result<ExitCode> {
    if !is_root() {
        bail!(
            "ntop loads and attaches BPF programs, which needs root: run `sudo -E cargo xtask run` \
             (or as root)"
        );
    }
    setup::run()?;
    if !run_cmd(&mut cargo(["build", "--release", "-p", "ntop"]))? {
        return Ok(ExitCode::FAILURE);
    }
    let ntop = target_dir().join("release/ntop");
    // exec: ntop replaces this process, so Ctrl-C and signals reach it directly.
    let err = Command::new(&ntop).args(args).exec();
    Err(err).with_context(|| format!("could not run {}", ntop.display()))
}

/// The kernel programs' crate: it builds only for the BPF target, through `ntop/build.rs`
/// (the workspace leaves it out of `default-members` too).
const NO_HOST_BUILD: &str = "ntop-ebpf";

fn test(no_root_tests: bool, cargo_args: &[OsString]) -> Result<ExitCode> {
    if !no_root_tests && !is_root() {
        bail!(
            "the integration tests create network namespaces and attach BPF programs, which needs \
             root: run `sudo -E cargo xtask test` (or as root), or `cargo xtask test \
             --no-root-tests` for the tests that need no root"
        );
    }
    setup::run()?;
    if no_root_tests {
        let mut all = cargo(["test", "--workspace", "--exclude", NO_HOST_BUILD]);
        all.args(["--exclude", "ntop-tests", "--no-fail-fast"]);
        let others_ok = run_cmd(all.args(cargo_args))?;
        // The harness's own unit tests need no root (extra arguments went to the run above).
        let lib_ok = run_cmd(&mut cargo([
            "test",
            "-p",
            "ntop-tests",
            "--lib",
            "--no-fail-fast",
        ]))?;
        eprintln!("note: skipped the root-only integration tests (ntop-tests, tests/tests/)");
        return Ok(exit_code(others_ok && lib_ok));
    }
    // The integration tests run the daemon's binary (`ntop_tests::ntop_bin`), which `cargo test`
    // builds only for the ntop package's own tests.
    if !run_cmd(&mut cargo(["build", "-p", "ntop"]))? {
        return Ok(ExitCode::FAILURE);
    }
    let mut cmd = cargo([
        "test",
        "--workspace",
        "--exclude",
        NO_HOST_BUILD,
        "--no-fail-fast",
    ]);
    Ok(exit_code(run_cmd(cmd.args(cargo_args))?))
}

fn bench(names: &[Bench], harness_args: &[OsString]) -> Result<ExitCode> {
    if !is_root() {
        bail!(
            "the benchmarks load BPF programs and create network namespaces, which needs root: \
             run `sudo -E cargo xtask bench` (or as root)"
        );
    }
    let file = workspace_root().join("tests/tests/bench.rs");
    if !file.exists() {
        bail!(
            "no benchmarks yet: {} does not exist; add it with #[ignore]d tests named {}",
            file.display(),
            Bench::value_variants()
                .iter()
                .map(|b| b.test_name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    setup::run()?;
    if !run_cmd(&mut cargo(["build", "--release", "-p", "ntop"]))? {
        return Ok(ExitCode::FAILURE);
    }
    let mut cmd = cargo([
        "test",
        "-p",
        "ntop-tests",
        "--release",
        "--test",
        "bench",
        "--",
    ]);
    cmd.args(["--ignored", "--nocapture", "--test-threads=1"]);
    cmd.args(names.iter().map(|b| b.test_name()));
    Ok(exit_code(run_cmd(cmd.args(harness_args))?))
}
