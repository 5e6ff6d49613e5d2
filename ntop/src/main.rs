//! `ntop`: parses the command line and runs the daemon's startup in the order that keeps root
//! only as long as it is needed, then serves until SIGINT/SIGTERM and detaches everything.
//!
//! Startup order (each step fails with one line naming the problem and the fix):
//! 1. `-A` / `--set-admin-password`: store the password hash and exit.
//! 2. `-d`: go to the background (single-threaded, before any runtime).
//! 3. Data directory (0700), admin password present (asked for on a terminal), pid-file lock.
//! 4. Bind the HTTP/HTTPS ports, read or generate the certificate, load and attach the kernel
//!    programs, load the credentials.
//! 5. Give the data directory to the run-as user and drop to it (verified).
//! 6. Start the name resolver (unless `-n`), the neighbour-table reader, the collector and the
//!    servers; tell the parent (`-d`) or systemd that ntop serves.
use std::{
    io::{IsTerminal as _, Write as _},
    os::unix::fs::MetadataExt as _,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use clap::{CommandFactory as _, Parser as _};
use ntop::{
    auth::{self, Auth, AuthConfig},
    cli::{Cli, Listen},
    collect,
    daemon::{self, PidFile, Startup},
    ebpf::{Kernel, LoadOptions, iface, pin},
    history::HistoryConfig,
    http::{
        self,
        server::{self, Listener},
        tls,
    },
    logging,
    metrics::{self, MetricsConfig},
    persist, privilege,
    state::{SharedState, State},
    store::DataDir,
    subnets::Subnets,
};
use tokio::signal::unix::{SignalKind, signal};
use warp::Filter as _;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.generate_man {
        return print_man();
    }
    if let Some(shell) = cli.generate_completions {
        clap_complete::generate(shell, &mut Cli::command(), "ntop", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if cli.detach_all {
        return report(detach_all(&cli), Report::Stderr);
    }
    if cli.ask_admin_password || cli.admin_password.is_some() {
        return report(
            set_password(&cli).map(|dir| {
                println!("ntop: admin password stored in {}", dir.display());
            }),
            Report::Stderr,
        );
    }
    let startup = if cli.daemon {
        match daemon::daemonize() {
            Ok(startup) => Some(startup),
            Err(e) => return report(Err(e.into()), Report::Stderr),
        }
    } else {
        None
    };
    logging::init(&cli);
    let how = match (cli.daemon, cli.log_file.is_some()) {
        (true, _) => Report::LogOnly,
        (false, true) => Report::StderrAndLog,
        (false, false) => Report::Stderr,
    };
    report(run(&cli, startup), how)
}

/// How a failure is reported.
#[derive(Clone, Copy)]
enum Report {
    /// One line on standard error.
    Stderr,
    /// One line on standard error and in the log (`--log-file`).
    StderrAndLog,
    /// In the log only: a daemon whose waiting parent already printed the error it sent
    /// through the startup pipe (and whose standard error is /dev/null once it serves).
    LogOnly,
}

fn report(result: Result<()>, how: Report) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if matches!(how, Report::StderrAndLog | Report::LogOnly) {
                tracing::error!("{e:#}");
            }
            if !matches!(how, Report::LogOnly) {
                eprintln!("ntop: error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn print_man() -> ExitCode {
    let mut out = Vec::new();
    match clap_mangen::Man::new(Cli::command())
        .section("8")
        .render(&mut out)
    {
        Ok(()) if std::io::stdout().write_all(&out).is_ok() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// `--detach-all`: removes what ntop left pinned, after adding the pinned programs' last
/// counts to the totals in the data directory.
fn detach_all(cli: &Cli) -> Result<()> {
    // A running daemon on this data directory would lose its programs and write its totals
    // over the ones folded here: refuse ("already running", naming its pid).
    let dir = DataDir::open(&cli.data_dir)?;
    let _pid = PidFile::acquire(&dir.file("ntop.pid")).context(
        "stop the running ntop first (it leaves its programs pinned), then run --detach-all",
    )?;
    let detached = ntop::ebpf::detach_all(&cli.pin_dir)?;
    if detached.removed.is_empty() {
        println!("ntop: nothing pinned under {}", cli.pin_dir.display());
        return Ok(());
    }
    println!(
        "ntop: removed {} pinned objects under {}; ntop's programs no longer count",
        detached.removed.len(),
        cli.pin_dir.display()
    );
    if !detached.final_counts.is_empty() {
        fold_into_data_dir(cli, &detached.final_counts).with_context(|| {
            format!(
                "the last counts of the removed programs could not be added to the totals in {} \
                 (they are lost; the totals saved before are intact)",
                cli.data_dir.display()
            )
        })?;
        println!(
            "ntop: added their last counts to the totals in {}",
            cli.data_dir.display()
        );
    }
    Ok(())
}

/// Carries `samples` (the last counts of removed programs) into the data directory's totals and
/// history, as the daemon would have at its next start.
fn fold_into_data_dir(cli: &Cli, samples: &[ntop::sample::Sample]) -> Result<()> {
    let dir = DataDir::open(&cli.data_dir)?;
    let opened = persist::open(&dir, &history_config(cli));
    let (Some(mut history), None) = (opened.history, opened.error) else {
        bail!("the history database cannot be written (see the error above)");
    };
    // The sample the saved rows were read from (if any) continues them; the others are new.
    let saved = opened.totals.interfaces.first().map(|i| i.epoch);
    let mut ordered: Vec<&ntop::sample::Sample> = samples.iter().collect();
    ordered.sort_by_key(|s| Some(s.epoch) != saved);
    let mut state = State::new();
    let interfaces: Vec<(String, u32)> = ordered
        .iter()
        .flat_map(|s| s.interfaces.iter().map(|i| (i.name.clone(), i.ifindex)))
        .collect();
    state.restore(&opened.totals, ordered[0].epoch, &interfaces);
    for sample in ordered {
        state.ingest(sample);
    }
    state.request_full_checkpoint();
    let c = state.checkpoint(true);
    history.commit(c.at, &c.points, c.at, c.totals)?;
    history.flush()?;
    drop(history);
    // Written as root: give the files back to the directory's owner (the daemon's user).
    let meta = std::fs::metadata(dir.path())
        .with_context(|| format!("reading the owner of {}", dir.path().display()))?;
    dir.chown(meta.uid(), meta.gid())?;
    Ok(())
}

/// `-A` / `--set-admin-password`: returns the data directory it wrote to.
fn set_password(cli: &Cli) -> Result<std::path::PathBuf> {
    let dir = DataDir::open(&cli.data_dir)?;
    let password = match &cli.admin_password {
        Some(pw) => pw.clone(),
        None => auth::read_new_password()?,
    };
    auth::set_admin_password(&dir, &password)?;
    // Keep the file with the directory's owner (the run-as user of a daemon that already ran),
    // so a running daemon can read it on SIGHUP.
    let meta = std::fs::metadata(dir.path())
        .with_context(|| format!("reading the owner of {}", dir.path().display()))?;
    let file = dir.file(auth::password::FILE);
    std::os::unix::fs::chown(&file, Some(meta.uid()), Some(meta.gid()))
        .with_context(|| format!("giving {} to the data directory's owner", file.display()))?;
    Ok(dir.path().to_owned())
}

/// Everything startup produced, owned by the running daemon.
struct Prepared {
    kernel: Kernel,
    listeners: Vec<Listener>,
    tls: Option<Arc<tls::Reloadable>>,
    auth: Arc<Auth>,
    metrics: MetricsConfig,
    store: persist::Opened,
    dir: DataDir,
    _pid: PidFile,
}

fn run(cli: &Cli, startup: Option<Startup>) -> Result<()> {
    let started = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ntop-http")
        .worker_threads(2)
        .build()
        .context("starting the async runtime")
        .and_then(|runtime| prepare(cli, &runtime).map(|prepared| (runtime, prepared)));
    match started {
        Ok((runtime, prepared)) => serve(cli, runtime, prepared, startup),
        Err(e) => {
            if let Some(startup) = startup {
                startup.failed(&format!("{e:#}"));
            }
            Err(e)
        }
    }
}

/// Loads and attaches the kernel programs pinned under `--pin-dir`, or re-adopts the pinned
/// ones (or replaces them, carrying their counts over, after an upgrade or a change of options).
/// Where nothing can be pinned (no BPF file system), loads them unpinned: counting still works,
/// but not while ntop is down.
fn load_kernel(cli: &Cli, interfaces: Vec<String>) -> Result<Kernel> {
    let options = LoadOptions {
        interfaces,
        mode: cli.capture_mode,
        max_hosts: cli.max_hosts(),
        peers: !cli.no_peers,
        attach: true,
        layout: cli.pin_layout.unwrap_or(ntop::ebpf::pin::PIN_LAYOUT),
    };
    let kernel = match Kernel::load_pinned(&options, &cli.pin_dir) {
        Ok(kernel) => {
            if kernel.readopted() {
                tracing::info!(
                    "re-adopted the programs pinned under {}: counting went on while ntop was down",
                    cli.pin_dir.display()
                );
            }
            kernel
        }
        Err(ntop::ebpf::Error::Pin(
            e @ (pin::PinError::NotBpffs(_)
            | pin::PinError::Io {
                what: "mounting bpffs at",
                ..
            }),
        )) => {
            tracing::warn!(
                "cannot pin under {}: {e}; loading unpinned: the counts persist in the data \
                 directory, but nothing is counted while ntop is down",
                cli.pin_dir.display()
            );
            Kernel::load(&options)?
        }
        Err(e) => return Err(e.into()),
    };
    for a in kernel.interfaces() {
        tracing::info!(
            interface = %a.name, ifindex = a.ifindex, ingress = a.mode.as_str(),
            "counting ingress and egress (TCX)"
        );
    }
    tracing::info!(
        hosts = kernel.host_capacity(),
        "host table allocated from a memory budget of {} bytes",
        cli.memory_budget
    );
    Ok(kernel)
}

fn prepare(cli: &Cli, runtime: &tokio::runtime::Runtime) -> Result<Prepared> {
    let dir = DataDir::open(&cli.data_dir)?;
    if !auth::admin_password_set(&dir) {
        if std::io::stdin().is_terminal() {
            eprintln!("ntop: no admin password is set yet; choose one now.");
            let password = auth::read_new_password()?;
            auth::set_admin_password(&dir, &password)?;
        } else {
            bail!(
                "no admin password is set in {}: set one with `ntop -A -P {}` (or \
                 --set-admin-password=PW), then start ntop again",
                dir.path().display(),
                dir.path().display()
            );
        }
    }
    let pid = PidFile::acquire(&dir.file("ntop.pid"))?;

    let interfaces = if cli.interfaces.is_empty() {
        match iface::default_route().context("reading the routing table")? {
            Some(name) => vec![name],
            None => bail!("no default route to pick an interface from; name one with -i IFACE"),
        }
    } else {
        cli.interfaces.clone()
    };
    let local = match &cli.local_subnets {
        Some(text) => Subnets::parse(text)?,
        None => Subnets::from_interfaces(&interfaces)?,
    };

    // Bind first: a busy port fails before anything is attached.
    let bind = |listen: Listen| -> Result<Option<tokio::net::TcpListener>> {
        match listen {
            Listen::Off => Ok(None),
            Listen::On(addr) => Ok(Some(runtime.block_on(server::bind(addr))?)),
        }
    };
    let (plain, secure) = (bind(cli.http)?, bind(cli.https)?);
    let tls = if secure.is_some() {
        let paths = match (&cli.https_cert, &cli.https_key) {
            (Some(cert), Some(key)) => tls::CertPaths {
                cert: cert.clone(),
                key: key.clone(),
            },
            _ => tls::self_signed(&dir, &tls::default_names())?,
        };
        Some(Arc::new(tls::Reloadable::load(paths)?))
    } else {
        None
    };
    let mut listeners: Vec<Listener> = plain.into_iter().map(Listener::Plain).collect();
    if let (Some(l), Some(t)) = (secure, &tls) {
        listeners.push(Listener::Tls(l, Arc::clone(t)));
    }

    let kernel = load_kernel(cli, interfaces)?;
    tracing::info!(%local, "local subnets (per-host series in /metrics)");
    let auth = Auth::load(
        dir.clone(),
        AuthConfig {
            public_read: cli.web_public_read,
        },
    )?;

    if let Some(target) = privilege::resolve(cli.user.as_deref())? {
        if let Err(e) = dir.chown(target.uid, target.gid) {
            // A read-only data directory: counting goes on in memory; the store says why it
            // cannot write (in the log and /api/v1/status) and retries.
            if !e.is_read_only() {
                return Err(e.into());
            }
            tracing::warn!("{e}");
        }
        privilege::drop_to(&target)?;
        tracing::info!(user = %target.name, uid = target.uid, "privileges dropped");
    } else {
        tracing::warn!("running with the privileges ntop started with (-u root or not root)");
    }
    // Opened as the run-as user, so the files are its own.
    let store = persist::open(&dir, &history_config(cli));
    Ok(Prepared {
        kernel,
        listeners,
        tls,
        auth,
        metrics: MetricsConfig {
            local,
            max_host_series: cli.metrics_max_hosts,
        },
        store,
        dir,
        _pid: pid,
    })
}

fn history_config(cli: &Cli) -> HistoryConfig {
    HistoryConfig {
        budget_bytes: cli.history_budget,
        ..HistoryConfig::default()
    }
}

/// Seeds the state with the totals of the earlier run and, when the start-up replaced pinned
/// programs, with the last counts of the replaced ones, before the first poll.
fn carry_over(state: &SharedState, kernel: &mut Kernel, store: &persist::Opened) {
    let mut state = state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let replaced = kernel.take_replaced();
    let epoch = replaced.as_ref().map_or(kernel.epoch(), |r| r.epoch);
    let interfaces: Vec<(String, u32)> = kernel
        .interfaces()
        .iter()
        .map(|a| (a.name.clone(), a.ifindex))
        .chain(
            replaced
                .iter()
                .flat_map(|r| r.interfaces.iter().map(|i| (i.name.clone(), i.ifindex))),
        )
        .collect();
    state.restore(&store.totals, epoch, &interfaces);
    if !store.totals.is_empty() {
        tracing::info!(
            hosts = store.totals.hosts.len(),
            "carried over the totals of the earlier run from the data directory"
        );
    }
    if let Some(replaced) = replaced {
        state.ingest(&replaced);
    }
}

/// Gives the state what listings show beside the counters: the local subnets, names (a
/// reverse-DNS resolver on threads of its own, unless `-n`) and MAC addresses (a thread reading
/// the neighbour tables of the monitored interfaces, returned: it stops when dropped, at the
/// end of `serve`).
fn annotate(
    cli: &Cli,
    state: &SharedState,
    kernel: &Kernel,
    local: &Subnets,
) -> Option<ntop::neighbours::Poller> {
    let names: Option<Arc<dyn ntop::state::HostNames>> = if cli.numeric {
        tracing::info!("-n: host names are not resolved");
        None
    } else {
        match ntop::resolve::Resolver::start(ntop::resolve::Config::default()) {
            Ok(resolver) => Some(Arc::new(resolver)),
            Err(e) => {
                tracing::warn!("cannot start the name resolver threads: {e}; names are not shown");
                None
            }
        }
    };
    let ifindexes = kernel.interfaces().iter().map(|a| a.ifindex).collect();
    let (macs, poller) = match ntop::neighbours::spawn(ifindexes, ntop::neighbours::REFRESH) {
        Ok((table, poller)) => (Some(table as Arc<dyn ntop::state::HostMacs>), Some(poller)),
        Err(e) => {
            tracing::warn!(
                "cannot start the neighbour table thread: {e}; MAC addresses are not shown"
            );
            (None, None)
        }
    };
    let mut state = state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state.set_local(local.clone());
    state.set_names(names);
    state.set_macs(macs);
    poller
}

/// What `/api/v1/config` reports about this run (fixed at start-up).
fn run_config(cli: &Cli, kernel: &Kernel, local: &Subnets, started: u64) -> http::admin::RunConfig {
    let interfaces = kernel.interfaces().iter().map(|a| a.name.clone()).collect();
    http::admin::RunConfig::new(cli, interfaces, local, kernel.host_capacity(), started)
}

/// What `/api/v1/status` reports about this run (fixed at start-up).
fn run_info(cli: &Cli, kernel: &Kernel) -> http::admin::RunInfo {
    http::admin::RunInfo {
        version: env!("CARGO_PKG_VERSION"),
        started: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        pin_dir: kernel.pin_dir().map(|d| d.display().to_string()),
        readopted: kernel.readopted(),
        detach_on_stop: cli.detach_on_stop,
        refresh_interval_ms: u64::try_from(cli.refresh_interval.as_millis()).unwrap_or(u64::MAX),
    }
}

fn serve(
    cli: &Cli,
    runtime: tokio::runtime::Runtime,
    prepared: Prepared,
    startup: Option<Startup>,
) -> Result<()> {
    let Prepared {
        kernel,
        listeners,
        tls,
        auth,
        metrics,
        store,
        dir,
        _pid,
    } = prepared;
    let mut kernel = kernel;
    let run_info = run_info(cli, &kernel);
    let run_config = run_config(cli, &kernel, &metrics.local, run_info.started);
    let state = State::shared();
    let _neighbours = annotate(cli, &state, &kernel, &metrics.local);
    carry_over(&state, &mut kernel, &store);
    let status = persist::SharedStatus::default();
    let persister = persist::spawn(
        dir.clone(),
        history_config(cli),
        state.clone(),
        store,
        Arc::clone(&status),
    )
    .context("starting the persister thread")?;
    // The collector counts its polls for the dashboard's event streams.
    let (polls, polls_seen) = tokio::sync::watch::channel(0_u64);
    let collector = collect::spawn_notifying(
        kernel,
        state.clone(),
        cli.refresh_interval,
        Some(persister.waker()),
        Some(polls),
    )
    .context("starting the collector thread")?;
    let events = http::events::Events::new(state.clone(), Arc::clone(&status), polls_seen);
    for l in &listeners {
        if let Ok(addr) = l.local_addr() {
            tracing::info!("serving on {}://{addr}/", l.scheme());
        }
    }
    let api = http::api(state.clone())
        .or(http::admin::routes(state.clone(), status, run_info))
        .unify()
        .or(http::admin::config_and_log(run_config, logging::ring()))
        .unify()
        .or(http::history::history_api_with(
            state.clone(),
            dir,
            &history_config(cli),
        ))
        .unify()
        .or(metrics::route(state.clone(), metrics))
        .unify()
        .or(events.routes())
        .unify()
        .or(http::dashboard::routes())
        .unify();
    let app = auth::app(Arc::clone(&auth), api, false);

    let served = runtime.block_on(async {
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let mut sighup = signal(SignalKind::hangup()).context("installing a SIGHUP handler")?;
        let (trace_level, data_dir) = (cli.trace_level, cli.data_dir.clone());
        tokio::spawn(async move {
            while sighup.recv().await.is_some() {
                tracing::info!(
                    "SIGHUP: reloading the log level, the TLS certificate and the admin password"
                );
                logging::reload(trace_level, &data_dir);
                if let Some(tls) = &tls {
                    // Keeps the old certificate and logs why when the new files are broken.
                    let _ = tls.reload();
                }
                // A password changed with `ntop -A` takes effect (and ends the sessions).
                if let Err(e) = auth.reload_password() {
                    tracing::warn!("{e}; the previous admin password stays in force");
                }
            }
        });
        let shutdown = async move {
            tokio::select! {
                _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
            }
            // Open dashboards' event streams end now, not at the end of the grace period.
            events.close();
        };
        if let Some(startup) = startup {
            startup.ready();
        }
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        server::serve(app, listeners, shutdown).await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(2));

    let kernel = collector.stop();
    stop_kernel(cli, kernel, &state);
    persister.stop();
    served
}

/// Leaves the programs counting (pinned; the default) or detaches them (`--detach-on-stop`,
/// or nothing could be pinned) after a last read, and says which in the log.
fn stop_kernel(cli: &Cli, kernel: Kernel, state: &SharedState) {
    if !cli.detach_on_stop && kernel.pin_dir().is_some() {
        if let Some(dir) = kernel.leave_pinned() {
            tracing::info!(
                "left the programs counting, pinned under {}: the next start re-adopts them \
                 and loses nothing; `ntop --detach-all` removes them",
                dir.display()
            );
        }
        return;
    }
    let (detached, last) = kernel.detach_with_last_read();
    match last {
        Ok(last) => state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .ingest(&last),
        Err(e) => tracing::warn!("{e}; the counts since the last poll are lost"),
    }
    for a in detached {
        tracing::info!(interface = %a.name, "detached");
    }
}
