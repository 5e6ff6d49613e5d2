//! Types shared by ntop's kernel programs (`ntop-ebpf`) and its daemon (`ntop`).
//!
//! Everything a BPF map stores is defined here once, `#[repr(C)]`, without implicit padding and
//! with its size asserted at compile time, so both sides agree on the layout byte for byte.
//! The packet classifier ([`parse`]) lives here too: the kernel programs run it on packet memory
//! and the daemon's unit tests run the very same code on byte slices.
#![no_std]
#![expect(
    clippy::inline_always,
    reason = "the classifier runs inside the kernel programs, where everything on the packet \
              path is inlined on purpose (BPF-to-BPF calls cost stack and verifier state)"
)]

pub mod counters;
pub mod errors;
pub mod maps;
pub mod parse;
pub mod proto;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: every type below is `#[repr(C)]`, `Copy`, has no padding (asserted in its module)
    // and is valid for any bit pattern.
    unsafe impl aya::Pod for crate::counters::Counter {}
    unsafe impl aya::Pod for crate::counters::HostCounters {}
    unsafe impl aya::Pod for crate::counters::HostKey {}
    unsafe impl aya::Pod for crate::counters::PairCounters {}
    unsafe impl aya::Pod for crate::counters::PairKey {}
}
