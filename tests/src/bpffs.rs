//! A BPF file system of the test's own, for daemons that pin their programs.
//!
//! `ip netns exec` gives the daemon its own mount namespace with a fresh `/sys`, so pins under
//! `/sys/fs/bpf` would die with the daemon: tests that restart a daemon pin into a bpffs mounted
//! on a scratch directory of the root mount namespace, which the daemon sees too.

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU32, Ordering},
};

/// A bpffs mounted on a scratch directory; on drop everything pinned in it is detached and
/// removed and it is unmounted, also when the test fails.
#[derive(Debug)]
pub struct Bpffs(PathBuf);

impl Bpffs {
    /// Mounts a new one.
    #[track_caller]
    #[must_use]
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = crate::scratch_dir().join(format!("bpffs-{}", N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir).expect("creating the bpffs mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a bpffs on {}", dir.display());
        Self(dir)
    }

    /// The pin base to give ntop (`--pin-dir`).
    #[must_use]
    pub fn base(&self) -> PathBuf {
        self.0.join("ntop")
    }
}

impl Default for Bpffs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        if let Err(e) = ntop::ebpf::detach_all(&self.base()) {
            eprintln!("removing pins under {}: {e}", self.0.display());
        }
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}
