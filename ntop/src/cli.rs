//! The command line, in classic ntop's lineage (`-i`, `-w`, `-P`, `-t`, `-V`), plus the eBPF
//! specifics (`--capture-mode`, `--memory-budget`, `--refresh-interval`). Parsed once in `main`.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use clap::Parser;
use ntop_common::maps::{BUDGET_PER_HOST, HOST_ENTRY_COST};

use crate::ebpf::ModeRequest;

/// ntop: a network traffic monitor counting every packet per host and per protocol in the
/// kernel (XDP/TCX), with a JSON API on port 3000.
#[derive(Debug, Parser)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "a command line has on/off flags"
)]
#[command(name = "ntop", version, disable_version_flag = true)]
pub struct Cli {
    /// Interfaces to monitor, comma-separated (default: the interface of the default route).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE[,IFACE]",
        value_delimiter = ','
    )]
    pub interfaces: Vec<String>,

    /// HTTP server address: `[ADDR:]PORT`, `0` disables it.
    #[arg(
        short = 'w',
        long = "http-server",
        value_name = "[ADDR:]PORT",
        default_value = "3000"
    )]
    pub http: Listen,

    /// HTTPS server address: `[ADDR:]PORT` (e.g. 4000), `0` disables it. Both -w and -W may be
    /// on at once and serve the same pages.
    #[arg(
        short = 'W',
        long = "https-server",
        value_name = "[ADDR:]PORT",
        default_value = "0"
    )]
    pub https: Listen,

    /// PEM certificate (chain) for HTTPS; without it ntop generates a self-signed one once into
    /// the data directory (ntop-cert.pem) and reuses it.
    #[arg(long, value_name = "FILE", requires = "https_key")]
    pub https_cert: Option<PathBuf>,

    /// PEM private key for --https-cert.
    #[arg(long, value_name = "FILE", requires = "https_cert")]
    pub https_key: Option<PathBuf>,

    /// Allow reading pages and the API without logging in (read-only; admin actions still
    /// need a login).
    #[arg(long)]
    pub web_public_read: bool,

    /// Ask for the admin password (twice, without echo, on a terminal; one line from standard
    /// input otherwise), store its hash in the data directory, and exit.
    #[arg(short = 'A', long = "ask-admin-password")]
    pub ask_admin_password: bool,

    /// Set the admin password to PW and exit. Visible in `ps` while it runs: prefer -A.
    #[arg(
        long = "set-admin-password",
        value_name = "PW",
        conflicts_with = "ask_admin_password"
    )]
    pub admin_password: Option<String>,

    /// Run as this user after startup (default: `ntop` if it exists, else `nobody`; `root`
    /// keeps root).
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Go to the background once startup has succeeded (the command fails with the daemon's
    /// error if it did not). Logs go to syslog, or to --log-file.
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Write the log to this file (appended) instead of standard error or syslog.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,

    /// Local subnets, comma-separated (`198.18.0.0/15,2001:db8::/32`; `ADDR/MASK` works too).
    /// Local hosts get per-host series in /metrics. Default: the subnets of the monitored
    /// interfaces.
    #[arg(short = 'm', long = "local-subnets", value_name = "SUBNETS")]
    pub local_subnets: Option<String>,

    /// Do not resolve host names: show numeric addresses only (no reverse DNS lookups; the
    /// API's `name` fields stay null).
    #[arg(short = 'n', long = "numeric-ip-addresses")]
    pub numeric: bool,

    /// Most local hosts exported one by one in /metrics (by traffic); the rest are summed.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub metrics_max_hosts: usize,

    /// Print the man page (roff) and exit.
    #[arg(long, hide = true)]
    pub generate_man: bool,

    /// Print shell completions for SHELL (bash, zsh, fish, …) and exit.
    #[arg(long, hide = true, value_name = "SHELL")]
    pub generate_completions: Option<clap_complete::Shell>,

    /// How ingress is counted: `xdp` (native where the driver supports it, else generic),
    /// `xdp-native`, `xdp-generic`, or `tc` (TCX; for interfaces where XDP cannot attach or
    /// another XDP program owns the hook). Egress is always counted with TCX.
    #[arg(long, value_enum, default_value = "xdp", value_name = "MODE")]
    pub capture_mode: ModeRequest,

    /// Detach the programs when ntop stops (after a last read of their counters). By default
    /// they stay pinned under --pin-dir and go on counting while ntop is stopped or restarted,
    /// and the next start re-adopts them, so a restart loses nothing; `ntop --detach-all`
    /// removes them.
    #[arg(long)]
    pub detach_on_stop: bool,

    /// Where the programs, maps and links are pinned (a directory on a BPF file system;
    /// /sys/fs/bpf is mounted if it is not). A versioned `v<N>` directory inside it holds them.
    #[arg(long, value_name = "DIR", default_value = "/sys/fs/bpf/ntop")]
    pub pin_dir: PathBuf,

    /// Pretend to be a build with another pin layout (only for the upgrade test).
    #[arg(long, hide = true, value_name = "N")]
    pub pin_layout: Option<u32>,

    /// Remove everything ntop left pinned under --pin-dir (its programs stop counting), after
    /// adding their last counts to the totals in the data directory (-P), and exit.
    #[arg(long)]
    pub detach_all: bool,

    /// Kernel memory for the host and pair tables, e.g. `64M`, `1G` (suffixes K, M, G; bytes
    /// without). Each host on each interface takes 400 bytes (256 in the host table, 144 for
    /// one entry of the table of who talks to whom): the default 400M holds 1,048,576 hosts and
    /// as many pairs. Hosts beyond that are still counted, in the interface's "other hosts"
    /// total; pairs beyond that are missing from the hosts' top peers.
    #[arg(long, value_name = "SIZE", default_value = "400M", value_parser = parse_size)]
    pub memory_budget: u64,

    /// Do not count who talks to whom: hosts then have no top peers, and the kernel programs
    /// save the pair table's lookup (about 60 ns per packet, see docs/BENCHMARKS.md) and its
    /// memory (each host of --memory-budget takes 256 bytes instead of 400). For the busiest
    /// gateways.
    #[arg(long)]
    pub no_peers: bool,

    /// Disk space the history database (`DATA_DIR/history.db`) may use, e.g. `512M`, `2G`.
    /// Interface and protocol history is small and always kept; per-host history is trimmed,
    /// oldest first, to stay within this.
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = parse_size)]
    pub history_budget: u64,

    /// How often the kernel counters are read, e.g. `1s`, `500ms`, or seconds as a number.
    #[arg(long, value_name = "INTERVAL", default_value = "1s", value_parser = parse_interval)]
    pub refresh_interval: Duration,

    /// Data directory.
    #[arg(
        short = 'P',
        long = "db-file-path",
        value_name = "DIR",
        default_value = "/var/lib/ntop"
    )]
    pub data_dir: PathBuf,

    /// Trace level 0–5: 0 silent, 1 errors, 2 warnings, 3 information, 4 debug, 5 everything.
    #[arg(short = 't', long = "trace-level", value_name = "LEVEL", default_value_t = 3,
          value_parser = clap::value_parser!(u8).range(0..=5))]
    pub trace_level: u8,

    /// Print the version and exit.
    #[arg(short = 'V', long = "version", action = clap::ArgAction::Version)]
    pub version: Option<bool>,
}

impl Cli {
    /// Host map (and pair map) capacity from the memory budget: each host pays for its
    /// entry and, unless `--no-peers`, for a pair entry.
    #[must_use]
    pub fn max_hosts(&self) -> u32 {
        let per_host = if self.no_peers {
            HOST_ENTRY_COST
        } else {
            BUDGET_PER_HOST
        };
        u32::try_from((self.memory_budget / per_host).max(1)).unwrap_or(u32::MAX)
    }
}

/// A `-w`/`-W` value: disabled, or an address to listen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `0`: no server.
    Off,
    /// Listen here.
    On(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("`{s}` is not [ADDR:]PORT; examples: 3000, 127.0.0.1:3000, [::1]:3000, 0 (off)")
        };
        if let Ok(port) = s.parse::<u16>() {
            return Ok(if port == 0 {
                Self::Off
            } else {
                Self::On(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
            });
        }
        let addr: SocketAddr = s.parse().map_err(|_| bad())?;
        Ok(if addr.port() == 0 {
            Self::Off
        } else {
            Self::On(addr)
        })
    }
}

/// `64M`, `1G`, `512K`, `1048576`.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as 64M or 1G"))?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use K, M or G")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if bytes < BUDGET_PER_HOST {
        return Err(format!(
            "`{s}` is too small: one host takes {BUDGET_PER_HOST} bytes"
        ));
    }
    Ok(bytes)
}

/// `1s`, `500ms`, `2` (seconds). At least 100 ms.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("`{s}` is not an interval such as 1s or 500ms ({e})"))?,
    };
    if d < Duration::from_millis(100) {
        return Err(format!(
            "`{s}` is too short: the refresh interval is at least 100ms"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!("0".parse::<Listen>(), Ok(Listen::Off));
        assert_eq!(
            "3000".parse::<Listen>(),
            Ok(Listen::On("0.0.0.0:3000".parse().unwrap()))
        );
        assert_eq!(
            "127.0.0.1:4000".parse::<Listen>(),
            Ok(Listen::On("127.0.0.1:4000".parse().unwrap()))
        );
        assert_eq!(
            "[::1]:3000".parse::<Listen>(),
            Ok(Listen::On("[::1]:3000".parse().unwrap()))
        );
        assert!("localhost:3000".parse::<Listen>().is_err());
        assert!("70000".parse::<Listen>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("100").is_err());
    }

    #[test]
    fn default_budget_holds_a_million_hosts() {
        let cli = Cli::try_parse_from(["ntop"]).unwrap();
        assert_eq!(cli.max_hosts(), 1_048_576);
        let cli = Cli::try_parse_from(["ntop", "--no-peers"]).unwrap();
        assert_eq!(cli.max_hosts(), 1_638_400, "400M at 256 bytes a host");
        assert_eq!(cli.refresh_interval, Duration::from_secs(1));
        assert_eq!(cli.http, Listen::On("0.0.0.0:3000".parse().unwrap()));
    }

    #[test]
    fn interval_forms() {
        assert_eq!(parse_interval("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_interval("10ms").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn numeric_addresses() {
        assert!(!Cli::try_parse_from(["ntop"]).unwrap().numeric);
        assert!(Cli::try_parse_from(["ntop", "-n"]).unwrap().numeric);
        assert!(
            Cli::try_parse_from(["ntop", "--numeric-ip-addresses"])
                .unwrap()
                .numeric
        );
    }

    #[test]
    fn interfaces_are_comma_separated_and_trace_level_bounded() {
        let cli = Cli::try_parse_from(["ntop", "-i", "eth0,eth1", "-t", "5"]).unwrap();
        assert_eq!(cli.interfaces, ["eth0", "eth1"]);
        assert!(Cli::try_parse_from(["ntop", "-t", "6"]).is_err());
        assert!(Cli::try_parse_from(["ntop", "--bogus"]).is_err());
    }
}
