//! The generated first admin token, handed over in a file only the service's user can read.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `secret` to `<data_dir>/admin-token` (mode 0600, replacing any older file) and returns
/// the path.
pub fn write(data_dir: &Path, secret: &str) -> std::io::Result<PathBuf> {
    fs::create_dir_all(data_dir)?;
    let path = data_dir.join("admin-token");
    let tmp = data_dir.join("admin-token.tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_token_file_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "hp_secret").unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), "hp_secret");
    }

    #[test]
    fn a_new_token_replaces_an_old_file_and_tightens_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin-token");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write(dir.path(), "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), "new");
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
