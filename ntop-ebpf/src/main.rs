//! ntop's kernel programs. They count every frame once, by host and by protocol, and never
//! change what happens to it:
//!
//! - [`ntop_xdp`]: ingress, at XDP (native or generic); returns `XDP_PASS`.
//! - [`ntop_tc_ingress`]: ingress at TCX, for `--capture-mode tc`; returns `TCX_NEXT`.
//! - [`ntop_tc_egress`]: egress at TCX; returns `TCX_NEXT`.
//!
//! A packet is counted at exactly one hook: the daemon attaches either XDP or TC ingress to an
//! interface, never both.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "atomic_xadd: the BPF target has no stable atomic add"
)]
#![expect(
    clippy::inline_always,
    reason = "everything on the packet path is inlined into the entry points on purpose: \
              BPF-to-BPF calls cost a frame of the 512-byte stack and verifier state"
)]

mod count;
mod frame;
mod maps;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::generated::bpf_xdp_get_buff_len,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use ntop_common::{maps::Direction, parse::segmented_wire_len};

/// `TCX_NEXT` (`TC_ACT_UNSPEC`): hand the packet to the next program or the stack as if we were
/// not there. See `include/uapi/linux/bpf.h`, `enum tcx_action_base`.
const TCX_NEXT: i32 = -1;

/// Ingress at XDP. Multi-buffer aware (`xdp.frags`), so it attaches at any MTU.
#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya-ebpf entry points take the context by value"
)]
pub fn ntop_xdp(ctx: XdpContext) -> u32 {
    // SAFETY: `ctx.ctx` is the kernel's `xdp_md` for this invocation.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // SAFETY: the helper only reads the xdp_buff behind `ctx.ctx`.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    let frame = frame::Linear::new(ctx.data(), ctx.data_end());
    match count::count::<_, true>(&frame, ifindex, Direction::Ingress, 1, |_| len) {
        Ok(()) | Err(_) => xdp_action::XDP_PASS,
    }
}

/// Ingress at TCX (`--capture-mode tc`).
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya-ebpf entry points take the context by value"
)]
pub fn ntop_tc_ingress(ctx: TcContext) -> i32 {
    tc(&ctx, Direction::Ingress)
}

/// Egress at TCX.
#[classifier]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya-ebpf entry points take the context by value"
)]
pub fn ntop_tc_egress(ctx: TcContext) -> i32 {
    tc(&ctx, Direction::Egress)
}

#[inline(always)]
fn tc(ctx: &TcContext, dir: Direction) -> i32 {
    let skb = ctx.skb.skb;
    // SAFETY: `skb` is the kernel's `__sk_buff` for this invocation; these fields are readable
    // by TC programs.
    let (len, segs, wire_len, vlan_present, ifindex) = unsafe {
        (
            (*skb).len,
            (*skb).gso_segs,
            (*skb).wire_len,
            (*skb).vlan_present,
            (*skb).ifindex,
        )
    };
    let packets = u64::from(segs.max(1));
    let bytes = |p: &ntop_common::parse::Parsed| {
        // A GSO super-packet becomes `gso_segs` frames on the wire. At egress the kernel has
        // already worked out their total length (`qdisc_pkt_len_init`, run before the egress
        // hook in `__dev_queue_xmit`; it also knows tunnel headers). At ingress (GRO) `wire_len`
        // is just `len`, so repeat the parsed headers per extra segment.
        let base = if dir == Direction::Egress && packets > 1 && wire_len > len {
            u64::from(wire_len)
        } else {
            segmented_wire_len(u64::from(len), packets, u64::from(p.header_len))
        };
        // An offloaded VLAN tag is not in the packet data but is on the wire, in every segment.
        if vlan_present != 0 {
            base + 4 * packets
        } else {
            base
        }
    };
    // Headers are nearly always in the linear area; when it is shorter than both the packet and
    // the scratch buffer, parse a copy of the head instead.
    let linear = frame::Linear::new(ctx.data(), ctx.data_end());
    let linear_len = ctx.data_end() - ctx.data();
    let result = if linear_len >= len as usize || linear_len >= frame::SCRATCH_LEN {
        count::count::<_, true>(&linear, ifindex, dir, packets, bytes)
    } else if let Some(copied) = frame::Copied::new(ctx, len) {
        count::count::<_, true>(&copied, ifindex, dir, packets, bytes)
    } else {
        count::count::<_, true>(&linear, ifindex, dir, packets, bytes)
    };
    match result {
        Ok(()) | Err(_) => TCX_NEXT,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Reference for benchmarks: an XDP program that only passes the packet. Never attached by the
/// daemon; `cargo xtask bench` measures ntop's cost as the difference to it.
#[xdp(frags)]
pub fn ntop_bench_xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// Reference for benchmarks: [`ntop_xdp`] without the pair map (what pin layout 1 counted), so
/// that `cargo xtask bench` measures the pair map's cost in the same run.
#[xdp(frags)]
#[expect(
    clippy::needless_pass_by_value,
    reason = "aya-ebpf entry points take the context by value"
)]
pub fn ntop_bench_xdp_no_pairs(ctx: XdpContext) -> u32 {
    // SAFETY: as in `ntop_xdp`.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // SAFETY: as in `ntop_xdp`.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) };
    let frame = frame::Linear::new(ctx.data(), ctx.data_end());
    match count::count::<_, false>(&frame, ifindex, Direction::Ingress, 1, |_| len) {
        Ok(()) | Err(_) => xdp_action::XDP_PASS,
    }
}

/// Reference for benchmarks: a TC program that only returns `TCX_NEXT`.
#[classifier]
pub fn ntop_bench_tc_next(_ctx: TcContext) -> i32 {
    TCX_NEXT
}
