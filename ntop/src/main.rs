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
//! 6. Start the collector and the servers; tell the parent (`-d`) or systemd that ntop serves.
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
    ebpf::{Kernel, LoadOptions, iface},
    http::{
        self,
        server::{self, Listener},
        tls,
    },
    logging,
    metrics::{self, MetricsConfig},
    privilege,
    state::State,
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

/// `--detach-all`: removes what `--keep-counting` left pinned.
fn detach_all(cli: &Cli) -> Result<()> {
    let removed = ntop::ebpf::detach_all(&cli.pin_dir)?;
    if removed.is_empty() {
        println!("ntop: nothing pinned under {}", cli.pin_dir.display());
    } else {
        println!(
            "ntop: removed {} pinned objects under {}; ntop's programs no longer count",
            removed.len(),
            cli.pin_dir.display()
        );
    }
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

/// Loads and attaches the kernel programs (or re-adopts the pinned ones, `--keep-counting`).
fn load_kernel(cli: &Cli, interfaces: Vec<String>) -> Result<Kernel> {
    let options = LoadOptions {
        interfaces,
        mode: cli.capture_mode,
        max_hosts: cli.max_hosts(),
        attach: true,
        layout: ntop::ebpf::pin::PIN_LAYOUT,
    };
    let kernel = if cli.keep_counting {
        let kernel = Kernel::load_pinned(&options, &cli.pin_dir)?;
        if kernel.readopted() {
            tracing::info!(
                "re-adopted the programs pinned under {}: counting went on while ntop was down",
                cli.pin_dir.display()
            );
        }
        kernel
    } else {
        Kernel::load(&options)?
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
        dir.chown(target.uid, target.gid)?;
        privilege::drop_to(&target)?;
        tracing::info!(user = %target.name, uid = target.uid, "privileges dropped");
    } else {
        tracing::warn!("running with the privileges ntop started with (-u root or not root)");
    }
    Ok(Prepared {
        kernel,
        listeners,
        tls,
        auth,
        metrics: MetricsConfig {
            local,
            max_host_series: cli.metrics_max_hosts,
        },
        _pid: pid,
    })
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
        _pid,
    } = prepared;
    let state = State::shared();
    let collector = collect::spawn(kernel, state.clone(), cli.refresh_interval)
        .context("starting the collector thread")?;
    for l in &listeners {
        if let Ok(addr) = l.local_addr() {
            tracing::info!("serving on {}://{addr}/", l.scheme());
        }
    }
    let api = http::api(state.clone())
        .or(metrics::route(state, metrics))
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
    if cli.keep_counting {
        if let Some(dir) = kernel.leave_pinned() {
            tracing::info!(
                "left the programs counting, pinned under {} (--keep-counting): the next start \
                 with --keep-counting re-adopts them; `ntop --detach-all` removes them",
                dir.display()
            );
        }
    } else {
        for a in kernel.detach() {
            tracing::info!(interface = %a.name, "detached");
        }
    }
    served
}
