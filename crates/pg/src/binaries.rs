//! Finding the PostgreSQL server binaries: `HOTPATCH_PG_BIN_DIR` alone when set, else `PATH`,
//! `pg_config --bindir` and `/usr/lib/postgresql/*/bin` (highest version first).

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{EmbeddedError, EmbeddedOptions};

/// The binaries a cluster needs; `pg_ctl` finds `postgres` next to itself.
const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// Where to look for the binaries.
#[derive(Debug, Clone)]
pub(super) struct BinSearch {
    /// `HOTPATCH_PG_BIN_DIR`: only there.
    explicit: Option<PathBuf>,
    /// The `PATH`.
    path: Option<OsString>,
    /// Ask `pg_config --bindir` (found on `PATH`).
    pg_config: bool,
    /// Where Debian and Ubuntu install each major version (`<root>/<version>/bin`).
    versioned_root: PathBuf,
}

impl BinSearch {
    pub(super) fn from_env(options: &EmbeddedOptions) -> BinSearch {
        let explicit = options
            .bin_dir
            .clone()
            .or_else(|| std::env::var_os("HOTPATCH_PG_BIN_DIR").filter(|v| !v.is_empty()).map(PathBuf::from));
        BinSearch {
            explicit,
            path: std::env::var_os("PATH"),
            pg_config: true,
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
        }
    }

    /// Directories to try, best first, and a description of where we looked.
    fn candidates(&self) -> (Vec<PathBuf>, String) {
        if let Some(dir) = &self.explicit {
            return (vec![dir.clone()], format!("HOTPATCH_PG_BIN_DIR={}", dir.display()));
        }
        let mut dirs = Vec::new();
        if let Some(path) = &self.path {
            for dir in std::env::split_paths(path) {
                // Debian links the tools into /usr/local/bin or the like: use the real directory,
                // where `pg_ctl` will look for `postgres`.
                if let Ok(real) = dir.join("pg_ctl").canonicalize() {
                    dirs.extend(real.parent().map(Path::to_path_buf));
                }
                dirs.push(dir);
            }
            if self.pg_config {
                for dir in std::env::split_paths(path) {
                    let pg_config = dir.join("pg_config");
                    if !pg_config.is_file() {
                        continue;
                    }
                    if let Ok(out) = Command::new(&pg_config).arg("--bindir").stdin(Stdio::null()).output() {
                        if out.status.success() {
                            dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
                        }
                    }
                    break;
                }
            }
        }
        dirs.extend(versioned_dirs(&self.versioned_root));
        let searched = format!(
            "PATH{}, {}/*/bin",
            if self.pg_config { ", `pg_config --bindir`" } else { "" },
            self.versioned_root.display()
        );
        (dirs, searched)
    }
}

/// `<root>/<version>/bin` directories, highest version first.
fn versioned_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn has_binaries(dir: &Path) -> bool {
    BINARIES.iter().all(|b| dir.join(b).is_file())
}

/// The major version `postgres --version` reports (`postgres (PostgreSQL) 15.4 …` → `15`).
fn binaries_version(dir: &Path) -> Option<String> {
    let out = Command::new(dir.join("postgres")).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    major_version(&text)
}

fn major_version(version_output: &str) -> Option<String> {
    let version = version_output.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    // Before 10 the major version had two parts (9.6).
    if major.parse::<u32>().ok()? < 10 {
        return Some(version.split('.').take(2).collect::<Vec<_>>().join("."));
    }
    Some(major)
}

/// The first directory with all binaries; with an existing cluster, the first whose major version
/// matches it.
pub(super) fn find_binaries(
    search: &BinSearch,
    pg_dir: &Path,
    cluster_version: Option<&str>,
) -> Result<(PathBuf, String), EmbeddedError> {
    let (candidates, searched) = search.candidates();
    let mut first_mismatch = None;
    for dir in candidates.iter().filter(|d| has_binaries(d)) {
        let Some(version) = binaries_version(dir) else { continue };
        match cluster_version {
            Some(cluster) if cluster != version => {
                first_mismatch.get_or_insert((dir.clone(), version));
            }
            _ => return Ok((dir.clone(), version)),
        }
    }
    match (first_mismatch, cluster_version) {
        (Some((bin_dir, binaries)), Some(cluster)) => Err(EmbeddedError::VersionMismatch {
            pg_dir: pg_dir.to_owned(),
            cluster: cluster.to_owned(),
            bin_dir,
            binaries,
        }),
        _ => Err(EmbeddedError::BinariesNotFound { searched }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_nowhere(root: &Path) -> BinSearch {
        BinSearch {
            explicit: None,
            path: Some(OsString::new()),
            pg_config: false,
            versioned_root: root.to_owned(),
        }
    }

    #[test]
    fn no_binaries_anywhere_is_an_error_that_says_how_to_install_postgresql() {
        let empty = tempfile::tempdir().unwrap();
        let err = find_binaries(&search_nowhere(empty.path()), empty.path(), None).unwrap_err();
        assert!(matches!(err, EmbeddedError::BinariesNotFound { .. }));
        let message = err.to_string();
        assert!(message.contains("apt-get install postgresql"), "{message}");
        assert!(message.contains("DATABASE_URL"), "{message}");
    }

    #[test]
    fn an_explicit_bin_dir_is_the_only_place_searched() {
        let empty = tempfile::tempdir().unwrap();
        let search = BinSearch {
            explicit: Some(empty.path().to_owned()),
            path: std::env::var_os("PATH"),
            pg_config: true,
            versioned_root: PathBuf::from("/usr/lib/postgresql"),
        };
        let message = find_binaries(&search, empty.path(), None).unwrap_err().to_string();
        assert!(message.contains("HOTPATCH_PG_BIN_DIR="), "{message}");
    }

    #[test]
    fn versioned_directories_are_tried_highest_version_first() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "13", "16", "not-a-version"] {
            fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let dirs = versioned_dirs(root.path());
        let names: Vec<_> = dirs
            .iter()
            .map(|d| d.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["16", "13", "9.6"]);
    }

    #[test]
    fn major_version_is_read_from_postgres_version_output() {
        assert_eq!(
            major_version("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)").as_deref(),
            Some("15")
        );
        assert_eq!(major_version("postgres (PostgreSQL) 17beta1").as_deref(), Some("17"));
        assert_eq!(major_version("postgres (PostgreSQL) 9.6.24").as_deref(), Some("9.6"));
        assert_eq!(major_version("nonsense"), None);
    }
}
