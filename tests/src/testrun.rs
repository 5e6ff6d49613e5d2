//! ntop's kernel programs under `BPF_PROG_TEST_RUN`: loaded without being attached, looked up by
//! name, and given the context a driver or the stack would give them (`struct xdp_md`,
//! `struct __sk_buff`; offsets from include/uapi/linux/bpf.h).

use aya::programs::{Program, ProgramError};
use ntop::ebpf::{Kernel, LoadOptions, ModeRequest};

use crate::require_root;

/// The ifindex of `lo`, which is always 1: a test run with this `ingress_ifindex`/`ifindex`
/// counts into `lo`'s slot when the programs were loaded for `lo`.
pub const LO: u32 = 1;

/// Loads the kernel programs for `interface` (in the calling thread's namespace) without
/// attaching them, as `BPF_PROG_TEST_RUN` and the benchmarks want them. Needs root.
#[track_caller]
#[must_use]
pub fn load(interface: &str, mode: ModeRequest, max_hosts: u32) -> Kernel {
    load_with(interface, mode, max_hosts, true)
}

/// [`load`], counting pairs or not (`--no-peers`).
#[track_caller]
#[must_use]
pub fn load_with(interface: &str, mode: ModeRequest, max_hosts: u32, peers: bool) -> Kernel {
    require_root();
    Kernel::load(&LoadOptions {
        interfaces: vec![interface.to_owned()],
        mode,
        max_hosts,
        peers,
        attach: false,
        layout: ntop::ebpf::pin::PIN_LAYOUT,
    })
    .unwrap_or_else(|e| panic!("loading the kernel programs for {interface}: {e}"))
}

/// The program `name` of `kernel` as a `P` (`Xdp`, `SchedClassifier`, …); panics when there is
/// none or it has another type.
#[track_caller]
pub fn program<'k, P>(kernel: &'k mut Kernel, name: &str) -> &'k mut P
where
    &'k mut P: TryFrom<&'k mut Program, Error = ProgramError>,
{
    kernel
        .ebpf_mut()
        .program_mut(name)
        .unwrap_or_else(|| panic!("no program {name} in the kernel object"))
        .try_into()
        .unwrap_or_else(|e| panic!("program {name}: {e}"))
}

/// `struct xdp_md` (24 bytes) with `ingress_ifindex` set and `data_end` = `linear`: test runs of
/// `xdp.frags` programs take `data_end` as the size of the linear part and put the rest of the
/// frame into fragments, as a driver would put payload.
#[must_use]
pub fn xdp_ctx(ifindex: u32, linear: usize) -> [u8; 24] {
    let linear = u32::try_from(linear).expect("a test frame is shorter than 4 GiB");
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&linear.to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    ctx
}

/// `struct __sk_buff` (192 bytes) with `ifindex`, `wire_len`, `gso_segs` and `gso_size` set
/// (0 for a plain packet) and the rest zero.
#[must_use]
pub fn skb_ctx(ifindex: u32, wire_len: u32, gso_segs: u32, gso_size: u32) -> [u8; 192] {
    let mut ctx = [0u8; 192];
    ctx[40..44].copy_from_slice(&ifindex.to_ne_bytes());
    ctx[160..164].copy_from_slice(&wire_len.to_ne_bytes());
    ctx[164..168].copy_from_slice(&gso_segs.to_ne_bytes());
    ctx[176..180].copy_from_slice(&gso_size.to_ne_bytes());
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_put_the_fields_at_their_uapi_offsets() {
        let x = xdp_ctx(7, 0x0102);
        assert_eq!(&x[4..8], &0x0102u32.to_ne_bytes());
        assert_eq!(&x[12..16], &7u32.to_ne_bytes());
        assert_eq!(x.iter().filter(|&&b| b != 0).count(), 3);

        let s = skb_ctx(LO, 3162, 3, 1000);
        assert_eq!(&s[40..44], &LO.to_ne_bytes());
        assert_eq!(&s[160..164], &3162u32.to_ne_bytes());
        assert_eq!(&s[164..168], &3u32.to_ne_bytes());
        assert_eq!(&s[176..180], &1000u32.to_ne_bytes());
        assert_eq!(skb_ctx(LO, 0, 0, 0), {
            let mut only_ifindex = [0u8; 192];
            only_ifindex[40..44].copy_from_slice(&LO.to_ne_bytes());
            only_ifindex
        });
    }
}
