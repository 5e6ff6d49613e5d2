//! Logging: `-t` levels as tracing filters, the log's destination (standard error, `--log-file`,
//! or syslog under `-d`), and reloading the filter on SIGHUP.
//!
//! Runs on the main thread at startup ([`init`]) and in the SIGHUP task ([`reload`]).

use std::{
    io::IsTerminal as _,
    sync::{Arc, OnceLock},
};

use tracing_subscriber::EnvFilter;

use crate::{cli::Cli, daemon};

/// The tracing filter of a trace level (`-t`): ntop at that level, other crates (aya, warp,
/// hyper) at most at `warn`, everything silent at 0.
#[must_use]
pub fn level_filter(level: u8) -> EnvFilter {
    let ours = match level {
        0 => "off",
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        _ => "trace",
    };
    let others = if level <= 1 { ours } else { "warn" };
    EnvFilter::new(format!("ntop={ours},{others}"))
}

/// Replaces the log filter of the running daemon (set by [`init`]).
type Reloader = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;
static RELOAD_LOG: OnceLock<Reloader> = OnceLock::new();

/// The log filter after a SIGHUP: `DATA_DIR/log-level` when it exists (a trace level 0–5, or a
/// tracing filter such as `ntop=debug,aya=info`), else the command line's.
pub fn reload(trace_level: u8, dir: &std::path::Path) {
    let file = dir.join("log-level");
    let filter = match std::fs::read_to_string(&file) {
        Ok(text) => match text.trim().parse::<u8>() {
            Ok(level) if level <= 5 => level_filter(level),
            _ => match EnvFilter::try_new(text.trim()) {
                Ok(filter) => filter,
                Err(e) => {
                    tracing::warn!(
                        "{}: not a trace level 0-5 or a filter ({e}); log level unchanged",
                        file.display()
                    );
                    return;
                }
            },
        },
        Err(_) => level_filter(trace_level),
    };
    if let Some(reload) = RELOAD_LOG.get() {
        match reload(filter) {
            Ok(()) => tracing::info!("log level reloaded"),
            Err(e) => tracing::warn!("reloading the log level failed: {e}"),
        }
    }
}

pub fn init(cli: &Cli) {
    let filter =
        EnvFilter::try_from_env("NTOP_LOG").unwrap_or_else(|_| level_filter(cli.trace_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = RELOAD_LOG.set(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
            builder.init();
        }};
    }
    if let Some(path) = &cli.log_file {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => {
                install!(builder.with_ansi(false).with_writer(Arc::new(file)));
                return;
            }
            Err(e) => eprintln!(
                "ntop: cannot open log file {}: {e}; logging to stderr",
                path.display()
            ),
        }
    }
    if cli.daemon {
        let syslog = daemon::Syslog::open();
        install!(
            builder
                .with_ansi(false)
                .without_time()
                .with_writer(move || syslog)
        );
    } else {
        install!(
            builder
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
        );
    }
}
