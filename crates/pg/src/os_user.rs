//! The user PostgreSQL runs as: this process's own, or, when this process is root (which
//! PostgreSQL refuses), the `postgres` system user or `nobody`, who must be able to reach the
//! data directory.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::IoContext;
use super::EmbeddedError;

/// The user PostgreSQL runs as when this process is root.
#[derive(Debug, Clone)]
pub(super) struct RunAs {
    pub(super) name: String,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// Whether this process runs as root.
pub(super) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The `postgres` system user, else `nobody`.
pub(super) fn run_as_user() -> Result<RunAs, EmbeddedError> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in ["postgres", "nobody"] {
        if let Some(user) = passwd_entry(&passwd, name).or_else(|| id_entry(name)) {
            return Ok(user);
        }
    }
    Err(EmbeddedError::Unusable(
        "PostgreSQL refuses to run as root and there is neither a 'postgres' nor a 'nobody' user to run it \
         as; create a 'postgres' system user, run hotpatchd as another user, or set DATABASE_URL"
            .into(),
    ))
}

fn passwd_entry(passwd: &str, name: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(RunAs { name: name.to_owned(), uid, gid })
    })
}

/// Users that live outside `/etc/passwd` (LDAP and the like) are known to `id`.
fn id_entry(name: &str) -> Option<RunAs> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).stdin(Stdio::null()).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(RunAs { name: name.to_owned(), uid: id("-u")?, gid: id("-g")? })
}

/// Whether `user` may enter a directory with this metadata. The server runs with no supplementary
/// groups (std drops them when it changes the uid), so owner, group and other bits tell it all.
fn searchable_by(meta: &fs::Metadata, user: &RunAs) -> bool {
    let mode = meta.mode();
    if meta.uid() == user.uid {
        mode & 0o100 != 0
    } else if meta.gid() == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// Makes sure `user` can reach the data directory: its parents must already let it pass (we do not
/// change directories that are not ours); the data directory itself gets `o+x` if it needs it.
pub(super) fn make_reachable(data_dir: &Path, user: &RunAs) -> Result<(), EmbeddedError> {
    for parent in data_dir.ancestors().skip(1) {
        let meta = fs::metadata(parent).context(|| format!("reading {}", parent.display()))?;
        if !searchable_by(&meta, user) {
            return Err(EmbeddedError::Inaccessible {
                user: user.name.clone(),
                data_dir: data_dir.to_owned(),
                blocked: parent.to_owned(),
            });
        }
    }
    let meta = fs::metadata(data_dir).context(|| format!("reading {}", data_dir.display()))?;
    if !searchable_by(&meta, user) {
        let mode = (meta.mode() & 0o7777) | 0o001;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(mode))
            .context(|| format!("letting user {} into {}", user.name, data_dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries_give_uid_and_gid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\npostgres:x:101:104:PostgreSQL administrator:/var/lib/postgresql:/bin/bash\n";
        let user = passwd_entry(passwd, "postgres").unwrap();
        assert_eq!((user.uid, user.gid), (101, 104));
        assert!(passwd_entry(passwd, "nobody").is_none());
    }

    #[test]
    fn a_directory_closed_to_others_is_not_searchable_by_another_user() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let meta = fs::metadata(dir.path()).unwrap();
        let stranger = RunAs { name: "stranger".into(), uid: meta.uid() + 1, gid: meta.gid() + 1 };
        assert!(!searchable_by(&meta, &stranger));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o701)).unwrap();
        assert!(searchable_by(&fs::metadata(dir.path()).unwrap(), &stranger));
    }
}
