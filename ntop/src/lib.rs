//! ntop's daemon as a library, so that integration tests and benchmarks drive the same code.
//!
//! - [`cli`]: the command line.
//! - [`ebpf`]: loading and attaching the kernel programs, reading their maps.
//! - [`collect`]: the poll loop (its own thread).
//! - [`state`]: aggregation, totals and rates (written by the collector, read by HTTP).
//! - [`http`]: the JSON API.
//! - [`sample`]: what one poll yields, the boundary between the kernel and the core.
//! - [`store`]: the data directory (`-P`): private files written atomically.
pub mod auth;
pub mod cli;
pub mod collect;
pub mod daemon;
pub mod ebpf;
pub mod http;
pub mod metrics;
pub mod privilege;
pub mod sample;
pub mod state;
pub mod store;
pub mod subnets;
