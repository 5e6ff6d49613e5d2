//! `BPF_MAP_LOOKUP_BATCH` on a map fd: aya 0.14 has no batch operations (aya-rs/aya#1124), and
//! one `bpf(2)` call per entry costs about 1 µs, which at 100k hosts would be a tenth of every
//! poll interval. A batch call copies thousands of entries at once.
//!
//! Runs on the collector task. The kernel side is `generic_map_lookup_batch` (arrays) and
//! `__htab_map_lookup_and_delete_batch` (hashes) in `kernel/bpf/`; both take a `u32` cursor.

use std::{io, os::fd::AsRawFd};

/// `BPF_MAP_LOOKUP_BATCH` from `enum bpf_cmd` (include/uapi/linux/bpf.h, since 5.6).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Reusable buffers for batch reads of one map.
#[derive(Debug)]
pub struct BatchReader {
    key_size: usize,
    /// Bytes per entry in the value buffer: the value size, or for per-CPU maps
    /// `round_up(value_size, 8) × possible CPUs`.
    value_stride: usize,
    chunk: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
}

impl BatchReader {
    /// A reader for entries of `key_size` bytes and `value_stride` bytes of value, fetched
    /// `chunk` entries per system call.
    #[must_use]
    pub fn new(key_size: usize, value_stride: usize, chunk: usize) -> Self {
        Self {
            key_size,
            value_stride,
            chunk,
            keys: vec![0; key_size * chunk],
            values: vec![0; value_stride * chunk],
        }
    }

    /// Calls `each(key, value)` for every entry of the map behind `fd`.
    ///
    /// A hash map that changes during the walk may show an entry inserted meanwhile or not; no
    /// entry present throughout is missed or repeated (the walk goes bucket by bucket).
    ///
    /// # Errors
    /// The `bpf(2)` error, e.g. `EPERM` without `CAP_BPF`, `EINVAL` on kernels before 5.6.
    pub fn for_each(
        &mut self,
        fd: &impl AsRawFd,
        mut each: impl FnMut(&[u8], &[u8]),
    ) -> io::Result<()> {
        let mut cursor: u32 = 0;
        let mut first = true;
        loop {
            let mut next: u32 = 0;
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { (&raw const cursor) as u64 },
                out_batch: (&raw mut next) as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: u32::try_from(self.chunk).unwrap_or(u32::MAX),
                map_fd: u32::try_from(fd.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
                ..BatchAttr::default()
            };
            // SAFETY: `attr` is a valid `bpf_attr.batch`; the buffers hold `count` entries and
            // outlive the call; the kernel writes at most `count` entries into them.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &raw mut attr,
                    size_of::<BatchAttr>(),
                )
            };
            let err = (rc < 0).then(io::Error::last_os_error);
            let n = attr.count as usize;
            for i in 0..n.min(self.chunk) {
                each(
                    &self.keys[i * self.key_size..(i + 1) * self.key_size],
                    &self.values[i * self.value_stride..(i + 1) * self.value_stride],
                );
            }
            match err {
                None => {}
                // The walk is over (the last batch may still have carried entries).
                Some(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                Some(e) => return Err(e),
            }
            cursor = next;
            first = false;
        }
    }
}
