//! Empty on the host. The kernel programs are the `ntop` binary of this crate, built for the BPF
//! target by `ntop/build.rs`; this library only lets the daemon's build depend on the crate so
//! that cargo rebuilds the programs when they change.
#![no_std]
