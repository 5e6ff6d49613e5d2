//! ntop's daemon as a library, so that integration tests and benchmarks drive the same code.
pub mod ebpf;
pub mod sample;
