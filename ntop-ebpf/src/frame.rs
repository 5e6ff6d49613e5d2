//! [`Frame`]s over packet memory: the one bounds check every header read goes through.

use aya_ebpf::{
    EbpfContext as _, btf_maps::PerCpuArray, helpers::generated::bpf_skb_load_bytes,
    macros::btf_map, programs::TcContext,
};
use ntop_common::parse::Frame;

/// Bytes of an skb copied for parsing when its linear area is too short to hold the headers.
pub const SCRATCH_LEN: usize = 256;

/// Per-CPU buffer for those copies (the 512-byte stack is too small to hold one).
#[btf_map]
static NTOP_SCRATCH: PerCpuArray<[u8; SCRATCH_LEN], 1> = PerCpuArray::new();

/// Directly accessible packet bytes `[data, data_end)`: an XDP frame's first buffer (headers are
/// always there; further fragments hold payload), or an skb's linear area.
pub struct Linear {
    data: usize,
    data_end: usize,
}

impl Linear {
    #[inline(always)]
    pub const fn new(data: usize, data_end: usize) -> Self {
        Self { data, data_end }
    }
}

impl Frame for Linear {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if self.data + offset + N > self.data_end {
            return None;
        }
        // SAFETY: the verifier-visible check above keeps the read inside the packet.
        Some(unsafe { *((self.data + offset) as *const [u8; N]) })
    }
}

/// The first [`SCRATCH_LEN`] bytes of an skb, copied with `bpf_skb_load_bytes` (which never
/// changes the skb, unlike `bpf_skb_pull_data`).
pub struct Copied {
    buf: *const [u8; SCRATCH_LEN],
    len: usize,
}

impl Copied {
    /// Copies the head of the skb; `None` if the copy fails.
    #[inline(always)]
    pub fn new(ctx: &TcContext, skb_len: u32) -> Option<Self> {
        let buf = NTOP_SCRATCH.get_ptr_mut(0)?;
        let len = (skb_len as usize).min(SCRATCH_LEN);
        if len == 0 {
            return None;
        }
        #[expect(clippy::cast_possible_truncation, reason = "len <= SCRATCH_LEN")]
        let len32 = len as u32;
        // SAFETY: `buf` is a SCRATCH_LEN-byte map value and `len <= SCRATCH_LEN`.
        let rc = unsafe { bpf_skb_load_bytes(ctx.as_ptr(), 0, buf.cast(), len32) };
        (rc == 0).then_some(Self { buf, len })
    }
}

impl Frame for Copied {
    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        if offset + N > self.len || offset + N > SCRATCH_LEN {
            return None;
        }
        // SAFETY: within the copied bytes of the map value, checked just above.
        Some(unsafe { *(self.buf.cast::<u8>().add(offset).cast::<[u8; N]>()) })
    }
}
