//! `ntop`: parses the command line, loads and attaches the kernel programs, starts the collector
//! and the HTTP server, and on SIGINT/SIGTERM stops them and detaches everything.
use std::{io::IsTerminal as _, process::ExitCode, time::Duration};

use anyhow::{Context as _, Result, bail};
use clap::Parser as _;
use ntop::{
    cli::{Cli, Listen},
    collect,
    ebpf::{Kernel, LoadOptions, iface},
    http,
    state::State,
};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.trace_level);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ntop: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: u8) {
    let filter = match level {
        0 => "off",
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("NTOP_LOG").unwrap_or_else(|_| {
        // Other crates (aya, warp) at most at `warn`, and silent at -t 0.
        let others = if level <= 1 { filter } else { "warn" };
        tracing_subscriber::EnvFilter::new(format!("ntop={filter},{others}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn run(cli: &Cli) -> Result<()> {
    let interfaces = if cli.interfaces.is_empty() {
        match iface::default_route().context("reading the routing table")? {
            Some(name) => vec![name],
            None => bail!("no default route to pick an interface from; name one with -i IFACE"),
        }
    } else {
        cli.interfaces.clone()
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ntop-http")
        .worker_threads(2)
        .build()
        .context("starting the async runtime")?;

    // Bind first: a busy port should fail before anything is attached.
    let listener = match cli.http {
        Listen::Off => None,
        Listen::On(addr) => Some(runtime.block_on(tokio::net::TcpListener::bind(addr)).with_context(
            || format!(
                "cannot listen on {addr} for HTTP (is another ntop running?); choose another port \
                 with -w PORT, or -w 0 to turn HTTP off"
            ),
        )?),
    };

    let kernel = Kernel::load(&LoadOptions {
        interfaces,
        mode: cli.capture_mode,
        max_hosts: cli.max_hosts(),
        attach: true,
    })?;
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

    let state = State::shared();
    let collector = collect::spawn(kernel, state.clone(), cli.refresh_interval)
        .context("starting the collector thread")?;

    let served = runtime.block_on(async {
        let mut sigterm =
            signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let mut sigint = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
            }
        };
        match listener {
            Some(listener) => {
                tracing::info!("HTTP API on http://{}/api/v1/", listener.local_addr()?);
                warp::serve(http::routes(state))
                    .incoming(listener)
                    .graceful(shutdown)
                    .run()
                    .await;
            }
            None => shutdown.await,
        }
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(2));

    let kernel = collector.stop();
    for a in kernel.detach() {
        tracing::info!(interface = %a.name, "detached");
    }
    served
}
