//! ntop's daemon as a library, so that integration tests and benchmarks drive the same code.
//!
//! - [`cli`]: the command line.
//! - [`ebpf`]: loading and attaching the kernel programs, reading their maps.
//! - [`collect`]: the poll loop (its own thread).
//! - [`state`]: aggregation, totals and rates (written by the collector, read by HTTP).
//! - [`http`]: the JSON API, the server (HTTP and HTTPS) and TLS.
//! - [`auth`]: admin password, sessions, API tokens and the guard in front of every route.
//! - [`metrics`]: Prometheus `/metrics`; [`subnets`]: local subnets (`-m`).
//! - [`resolve`]: host names (reverse DNS, not with `-n`); [`neighbours`]: MAC addresses from
//!   the kernel's neighbour tables.
//! - [`history`]: time series in the data directory (`SQLite`, WAL).
//! - [`store`]: the data directory (`-P`): private files written atomically.
//! - [`privilege`]: dropping to the run-as user (`-u`); [`daemon`]: `-d`, the pid file, syslog;
//!   [`logging`]: log destination and level.
//! - [`sample`]: what one poll yields, the boundary between the kernel and the core.
pub mod auth;
pub mod cli;
pub mod collect;
pub mod daemon;
pub mod ebpf;
pub mod history;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod neighbours;
pub mod persist;
pub mod privilege;
pub mod resolve;
pub mod sample;
pub mod state;
pub mod store;
pub mod subnets;
