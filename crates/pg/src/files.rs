//! Files of the data directory: the directory itself, its lock, secrets, and reading the log.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::error::IoContext;
use super::EmbeddedError;

/// Creates `dir` (mode 0700) if it does not exist.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), EmbeddedError> {
    if dir.is_dir() {
        return Ok(());
    }
    // Parents with the usual permissions (the user PostgreSQL runs as must pass through them),
    // the data directory itself private.
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .or_else(|e| if dir.is_dir() { Ok(()) } else { Err(e) })
        .context(|| format!("creating data directory {}", dir.display()))
}

/// Takes `<data_dir>/hotpatchd.lock` for the life of the returned file.
pub(super) fn lock_data_dir(data_dir: &Path) -> Result<File, EmbeddedError> {
    let path = data_dir.join("hotpatchd.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .context(|| format!("opening lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)
                .and_then(|()| file.rewind())
                .and_then(|()| writeln!(file, "{}", std::process::id()))
                .context(|| format!("writing lock file {}", path.display()))?;
            Ok(file)
        }
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "pid unknown".to_owned(),
                pid => format!("pid {pid}"),
            };
            Err(EmbeddedError::Locked { data_dir: data_dir.to_owned(), lock_file: path, holder })
        }
        Err(TryLockError::Error(e)) => {
            Err(EmbeddedError::Io { context: format!("locking {}", path.display()), source: e })
        }
    }
}

/// Writes a secret to a file only the owner may read, replacing it atomically.
pub(super) fn write_private_file(path: &Path, contents: &str) -> Result<(), EmbeddedError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

pub(super) fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// The last `lines` lines written to `log` after byte offset `from`.
pub(super) fn log_tail(log: &Path, from: u64, lines: usize) -> String {
    let Ok(bytes) = fs::read(log) else { return String::new() };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_data_dir_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
    }
}
