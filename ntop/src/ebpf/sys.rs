//! The few `bpf(2)` commands aya 0.14 does not offer on pinned links, and the grace period that
//! makes reading replaced maps exact.
//!
//! - `BPF_OBJ_GET` of a pinned link into a plain fd (aya's `FdLink` does not lend its fd);
//! - `BPF_LINK_DETACH` (Linux 5.9): takes a link off its hook now, whoever still holds it
//!   (unpinning only drops a reference; the last one goes on a workqueue, `bpf_link_put` in
//!   kernel/bpf/syscall.c);
//! - `BPF_OBJ_GET_INFO_BY_FD` of a link: its program and the interface it is attached to
//!   (0 once detached: `bpf_xdp_link_fill_link_info` in net/core/dev.c,
//!   `tcx_link_fill_info` in kernel/bpf/tcx.c);
//! - `BPF_PROG_GET_FD_BY_ID` and `BPF_LINK_UPDATE`: to hold an old program while its link is
//!   swapped to a new one (the link held the only reference), and to put it back when a
//!   replacement has to be undone;
//! - `membarrier(MEMBARRIER_CMD_GLOBAL)`: waits for every program invocation in flight.
//!
//! Runs at startup (replacing pinned programs) and for `ntop --detach-all`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

/// `enum bpf_cmd` values from include/uapi/linux/bpf.h.
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_UPDATE: libc::c_long = 29;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a `#[repr(C)]` prefix of `union bpf_attr` for `cmd` (the kernel reads
    // `size` bytes and zero-fills the rest, `bpf_check_uarg_tail_zero`); every pointer in it
    // points to memory that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the BPF object pinned at `path` (`BPF_OBJ_GET`).
///
/// # Errors
/// The `bpf(2)` error (`ENOENT` when nothing is pinned there).
pub(super) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        pathname: u64,
        bpf_fd: u32,
        file_flags: u32,
        path_fd: i32,
        _pad: u32,
    }
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = Attr {
        pathname: c.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
        path_fd: 0,
        _pad: 0,
    };
    owned(bpf(BPF_OBJ_GET, &mut attr)?)
}

/// Takes the link off its hook now (`BPF_LINK_DETACH`); the link object stays, defunct, until
/// its last reference goes. Detaching a link that is already detached succeeds.
///
/// # Errors
/// The `bpf(2)` error.
pub(super) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        _pad: u32,
    }
    let mut attr = Attr {
        link_fd: u32::try_from(link.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
        _pad: 0,
    };
    bpf(BPF_LINK_DETACH, &mut attr).map(drop)
}

/// What the kernel says about a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LinkState {
    /// `BPF_LINK_TYPE_*`.
    pub link_type: u32,
    /// Id of the program the link runs.
    pub prog_id: u32,
    /// The interface of an XDP or TCX link; 0 once it is detached (or its device is gone).
    pub ifindex: u32,
}

/// `BPF_LINK_TYPE_XDP`.
pub(super) const LINK_TYPE_XDP: u32 = 6;
/// `BPF_LINK_TYPE_TCX`.
pub(super) const LINK_TYPE_TCX: u32 = 11;

/// Reads a link's `struct bpf_link_info` (`BPF_OBJ_GET_INFO_BY_FD`).
///
/// # Errors
/// The `bpf(2)` error.
pub(super) fn link_state(link: BorrowedFd<'_>) -> io::Result<LinkState> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    // `struct bpf_link_info`: type, id, prog_id, then a union aligned to 8 whose `xdp` and `tcx`
    // members start with `ifindex` (offset 16). Zeroed: the kernel wants the part it does not
    // know to be zero.
    let mut info = [0u32; 32];
    let mut attr = Attr {
        bpf_fd: u32::try_from(link.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput)?,
        info_len: u32::try_from(size_of_val(&info)).unwrap_or(u32::MAX),
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(LinkState {
        link_type: info[0],
        prog_id: info[2],
        ifindex: info[4],
    })
}

/// Opens the program with kernel id `id` (`BPF_PROG_GET_FD_BY_ID`).
///
/// # Errors
/// The `bpf(2)` error (`ENOENT` when it is gone).
pub(super) fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct Attr {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut attr = Attr {
        prog_id: id,
        next_id: 0,
        open_flags: 0,
    };
    owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut attr)?)
}

/// Makes `link` run `prog` (`BPF_LINK_UPDATE`: atomic, as aya's `attach_to_link`).
///
/// # Errors
/// The `bpf(2)` error.
pub(super) fn link_update(link: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        link_fd: u32,
        new_prog_fd: u32,
        flags: u32,
        old_prog_fd: u32,
    }
    let fd =
        |f: BorrowedFd<'_>| u32::try_from(f.as_raw_fd()).map_err(|_| io::ErrorKind::InvalidInput);
    let mut attr = Attr {
        link_fd: fd(link)?,
        new_prog_fd: fd(prog)?,
        flags: 0,
        old_prog_fd: 0,
    };
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// Waits until no BPF program invocation that started before the call is still running, so
/// that programs already taken off their hooks have written their last count.
///
/// XDP and TCX programs run inside RCU read-side critical sections (the driver's NAPI poll,
/// `do_xdp_generic` and `__netif_receive_skb_core` / `sch_handle_egress` in net/core/dev.c, all
/// with softirqs or preemption off or under `rcu_read_lock`; since Linux 4.20, commit
/// "rcu: Consolidate RCU-bh and RCU-sched into RCU", one grace period covers all of them).
/// `membarrier(MEMBARRIER_CMD_GLOBAL)` runs `synchronize_rcu()` (kernel/sched/membarrier.c, the
/// `MEMBARRIER_CMD_GLOBAL` case of `sys_membarrier`), which returns only after every such
/// section that was open when it started has ended. With one online CPU the kernel skips the
/// grace period: no other CPU can be inside a program while this thread is in the system call.
///
/// # Errors
/// The `membarrier(2)` error: `EINVAL` on `nohz_full` kernels, where `MEMBARRIER_CMD_GLOBAL`
/// is refused.
pub(super) fn wait_for_running_programs() -> io::Result<()> {
    // SAFETY: membarrier takes plain integers and touches no memory of ours.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            libc::MEMBARRIER_CMD_GLOBAL,
            0_u32,
            0_i32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// [`wait_for_running_programs`], with a warning when the kernel refuses: the final counts are
/// then read without the grace period (a packet being counted at that very moment may be
/// missed).
pub(super) fn settle() {
    if let Err(e) = wait_for_running_programs() {
        tracing::warn!(
            error = %e,
            "membarrier(MEMBARRIER_CMD_GLOBAL) failed (nohz_full?); reading the final counts \
             without waiting for program invocations still in flight"
        );
    }
}
