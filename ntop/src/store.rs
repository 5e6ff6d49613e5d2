//! The data directory (`-P`, default `/var/lib/ntop`): created with mode 0700 if missing, and
//! every file ntop writes there is private (0600) and replaced atomically (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory), so a crash or a full disk
//! leaves either the old or the new file, never half of one.
//!
//! Runs at startup (main thread) and wherever a layer persists something (password hash, API
//! tokens, TLS key). Ownership: after [`DataDir::chown`] the run-as user owns the directory and
//! everything in it.

use std::{
    fs::{self, DirBuilder, File, OpenOptions},
    io::{self, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

/// Errors of the data directory. Each names the path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory could not be created or opened.
    #[error("cannot use data directory {path}: {source}; create it or choose another with -P DIR")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is not a directory.
    #[error("data directory {0} exists but is not a directory; choose another with -P DIR")]
    NotADirectory(PathBuf),
    /// A file could not be written.
    #[error("cannot write {path}: {source}{hint}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
        /// A hint for the common causes (full disk, read-only file system).
        hint: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Whether the cause is a read-only file system.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        match self {
            Self::Dir { source, .. } | Self::Write { source, .. } | Self::Read { source, .. } => {
                source.raw_os_error() == Some(libc::EROFS)
            }
            Self::NotADirectory(_) => false,
        }
    }
}

fn hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => "; the disk is full: free some space",
        Some(libc::EROFS) => {
            "; the file system is read-only: choose another data directory with -P"
        }
        Some(libc::EACCES | libc::EPERM) => {
            "; permission denied: check the owner of the data directory"
        }
        _ => "",
    }
}

/// The data directory.
#[derive(Clone, Debug)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens `path`, creating it (and missing parents) with mode 0700 if needed. An existing
    /// directory keeps its mode.
    ///
    /// # Errors
    /// [`StoreError::Dir`] or [`StoreError::NotADirectory`].
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = path.into();
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(StoreError::NotADirectory(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&path)
                    .map_err(|source| StoreError::Dir {
                        path: path.clone(),
                        source,
                    })?;
            }
            Err(source) => return Err(StoreError::Dir { path, source }),
        }
        Ok(Self { path })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in the directory.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether `name` exists.
    #[must_use]
    pub fn exists(&self, name: &str) -> bool {
        self.file(name).exists()
    }

    /// Reads `name`; `Ok(None)` if it does not exist.
    ///
    /// # Errors
    /// [`StoreError::Read`] for any other failure.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.file(name);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Read { path, source }),
        }
    }

    /// Replaces `name` with `bytes` atomically, mode 0600.
    ///
    /// # Errors
    /// [`StoreError::Write`], naming a full disk or read-only file system when that is why.
    pub fn write_private(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.file(name);
        let tmp = self.file(&format!(".{name}.tmp"));
        let fail = |source: io::Error, p: &Path| StoreError::Write {
            path: p.to_owned(),
            hint: hint(&source),
            source,
        };
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            // An older temporary file may have had other bits.
            f.set_permissions(fs::Permissions::from_mode(0o600))?;
            f.write_all(bytes)?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(fail(e, &tmp));
        }
        fs::rename(&tmp, &path).map_err(|e| fail(e, &path))?;
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(e, &self.path))
    }

    /// Gives the directory and everything directly in it to `uid`:`gid` (before dropping
    /// privileges to that user).
    ///
    /// # Errors
    /// [`StoreError::Dir`] when a `chown` fails.
    pub fn chown(&self, uid: u32, gid: u32) -> Result<(), StoreError> {
        let dir_err = |source| StoreError::Dir {
            path: self.path.clone(),
            source,
        };
        std::os::unix::fs::chown(&self.path, Some(uid), Some(gid)).map_err(dir_err)?;
        for entry in fs::read_dir(&self.path).map_err(dir_err)? {
            let entry = entry.map_err(dir_err)?;
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid)).map_err(dir_err)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ntop-store-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn creates_a_private_directory_and_private_files() {
        let base = scratch("create");
        let dir = DataDir::open(base.join("a/b")).unwrap();
        assert_eq!(fs::metadata(dir.path()).unwrap().mode() & 0o777, 0o700);
        assert_eq!(dir.read("x").unwrap(), None);
        dir.write_private("x", b"one").unwrap();
        dir.write_private("x", b"two").unwrap();
        assert_eq!(dir.read("x").unwrap().as_deref(), Some(&b"two"[..]));
        assert_eq!(fs::metadata(dir.file("x")).unwrap().mode() & 0o777, 0o600);
        assert!(!dir.exists(".x.tmp"), "no temporary file is left behind");
        fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_file_in_the_way_is_named() {
        let base = scratch("file");
        fs::create_dir_all(&base).unwrap();
        fs::write(base.join("f"), b"").unwrap();
        let err = DataDir::open(base.join("f")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert!(err.to_string().contains("-P"), "{err}");
        fs::remove_dir_all(base).unwrap();
    }
}
