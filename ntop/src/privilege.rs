//! Dropping root: after everything that needs it (loading and attaching programs, binding ports,
//! reading the TLS key, opening the data directory), the daemon becomes the run-as user and
//! group, and checks that the drop took before it serves anything.
//!
//! Runs once, on the main thread, before the async runtime starts (glibc's `setuid` changes
//! every thread anyway, but nothing should run between load and drop). The BPF map and link fds
//! keep working afterwards: since Linux 6.5 the capability checks are at map and program
//! creation only.

use std::{fs, io};

use nix::unistd::{self, Gid, Uid, User};

/// Errors of the privilege layer.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `-u` names a user that does not exist.
    #[error(
        "user `{0}` does not exist; create it (groupadd --system ntop; useradd --system -g ntop \
         -d /var/lib/ntop -s /usr/sbin/nologin ntop) or choose another with -u USER"
    )]
    NoSuchUser(String),
    /// The user database could not be read.
    #[error("looking up user `{user}` failed: {source}")]
    Lookup {
        /// The user.
        user: String,
        /// The error.
        #[source]
        source: nix::Error,
    },
    /// Switching user failed.
    #[error("dropping privileges to `{user}` failed: {reason}")]
    Drop {
        /// The user.
        user: String,
        /// What privdrop reported.
        reason: String,
    },
    /// The drop did not take: refusing to run on.
    #[error(
        "privileges were not dropped to `{user}` ({what}); refusing to run as root by accident"
    )]
    NotDropped {
        /// The user.
        user: String,
        /// What check failed.
        what: String,
    },
}

/// Whom to run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// User name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

fn lookup(name: &str) -> Result<Option<Target>, PrivilegeError> {
    let user = User::from_name(name).map_err(|source| PrivilegeError::Lookup {
        user: name.to_owned(),
        source,
    })?;
    Ok(user.map(|u| Target {
        name: u.name,
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// Whom to drop to: `-u USER` if given (`root` keeps root); else, when running as root, `ntop`
/// if that user exists, else `nobody` (as classic ntop did); when not running as root, nobody
/// to drop to (`None`).
///
/// # Errors
/// [`PrivilegeError::NoSuchUser`] for an unknown `-u` user.
pub fn resolve(requested: Option<&str>) -> Result<Option<Target>, PrivilegeError> {
    match requested {
        Some("root") => Ok(None),
        Some(name) => lookup(name)?
            .map(Some)
            .ok_or_else(|| PrivilegeError::NoSuchUser(name.into())),
        None if !Uid::effective().is_root() => Ok(None),
        None => {
            if let Some(ntop) = lookup("ntop")? {
                return Ok(Some(ntop));
            }
            tracing::warn!(
                "user `ntop` does not exist: running as `nobody`; create it (see the README) or \
                 choose a user with -u"
            );
            lookup("nobody")?
                .map(Some)
                .ok_or_else(|| PrivilegeError::NoSuchUser("nobody".into()))
        }
    }
}

/// Becomes `target` (user, its primary group, and that group as the only supplementary group)
/// and verifies it.
///
/// # Errors
/// [`PrivilegeError::Drop`] when switching fails, [`PrivilegeError::NotDropped`] when a check
/// afterwards finds root or a capability left.
pub fn drop_to(target: &Target) -> Result<(), PrivilegeError> {
    privdrop::PrivDrop::default()
        .user(&target.name)
        .fallback_to_ids_if_names_are_numeric()
        .apply()
        .map_err(|e| PrivilegeError::Drop {
            user: target.name.clone(),
            reason: e.to_string(),
        })?;
    verify(target)
}

/// Checks that real, effective and saved ids are the target's, that `setuid(0)` fails, and that
/// no capability is left in the effective, permitted or ambient sets.
///
/// # Errors
/// [`PrivilegeError::NotDropped`] naming the failed check.
pub fn verify(target: &Target) -> Result<(), PrivilegeError> {
    let fail = |what: String| PrivilegeError::NotDropped {
        user: target.name.clone(),
        what,
    };
    let uids = unistd::getresuid().map_err(|e| fail(format!("getresuid: {e}")))?;
    let gids = unistd::getresgid().map_err(|e| fail(format!("getresgid: {e}")))?;
    let want_u = Uid::from_raw(target.uid);
    let want_g = Gid::from_raw(target.gid);
    if [uids.real, uids.effective, uids.saved] != [want_u; 3] {
        return Err(fail(format!("uids are {uids:?}")));
    }
    if [gids.real, gids.effective, gids.saved] != [want_g; 3] {
        return Err(fail(format!("gids are {gids:?}")));
    }
    if target.uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(fail("setuid(0) succeeded".into()));
    }
    let status = fs::read_to_string("/proc/self/status")
        .map_err(|e: io::Error| fail(format!("reading /proc/self/status: {e}")))?;
    for set in ["CapEff", "CapPrm", "CapAmb"] {
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(set).and_then(|v| v.strip_prefix(':')))
            .map(str::trim);
        if target.uid != 0 && value.is_some_and(|v| !v.trim_start_matches('0').is_empty()) {
            return Err(fail(format!("{set} is {}", value.unwrap_or("?"))));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_kept_only_when_asked() {
        assert_eq!(resolve(Some("root")).unwrap(), None);
        let err = resolve(Some("no-such-user-ntop-test")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(err.to_string().contains("-u USER"), "{err}");
    }

    #[test]
    fn nobody_resolves() {
        let t = resolve(Some("nobody")).unwrap().unwrap();
        assert_eq!(t.name, "nobody");
        assert_ne!(t.uid, 0);
    }
}
