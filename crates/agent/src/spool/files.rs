//! The state directory on disk: its lock, atomic writes, and reading back what survived.
//!
//! Layout: `lock` (held with an exclusive file lock while an agent runs), `spool/<job id>.json`
//! (one [`Entry`] per unsettled job), `finished.json` (the [`Record`]) and `in-hand.json` (the
//! [`InHand`] job, while there is one). Every write goes to a
//! temporary file that is synced, renamed over the old one and the directory synced, so a crash
//! leaves the old file or the new one, never half of one. The files are small and written once
//! or twice per job, so the blocking calls are made in place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tracing::warn;
use uuid::Uuid;

use super::entry::{decode, encode, Entry, InHand, Record};
use super::SpoolError;

const LOCK: &str = "lock";
const SPOOL: &str = "spool";
const RECORD: &str = "finished.json";
const IN_HAND: &str = "in-hand.json";
/// Suffix of a file being written (removed at open: it never was renamed into place).
const TMP: &str = ".tmp";
/// Suffix a file that cannot be read is renamed to, kept for a person to look at.
const CORRUPT: &str = ".corrupt";

/// An open, locked state directory.
#[derive(Debug)]
pub struct Files {
    dir: PathBuf,
    spool: PathBuf,
    /// Holds the lock for as long as the agent runs; closing it releases the lock.
    _lock: File,
}

fn io_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SpoolError {
    let path = path.to_owned();
    move |source| SpoolError::Io { what, path, source }
}

impl Files {
    /// Creates the directory if needed and locks it; [`SpoolError::Locked`] when another agent
    /// holds it.
    pub fn open(dir: &Path) -> Result<Files, SpoolError> {
        let spool = dir.join(SPOOL);
        fs::create_dir_all(&spool).map_err(io_error("creating the state directory", &spool))?;
        let lock_path = dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error("opening the lock file", &lock_path))?;
        // std's lock is flock on Unix and LockFileEx on Windows: advisory between agents, and
        // released by the OS when the process dies, however it dies.
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir.to_owned())),
            Err(fs::TryLockError::Error(e)) => return Err(io_error("locking", &lock_path)(e)),
        }
        let files = Files { dir: dir.to_owned(), spool, _lock: lock };
        files.remove_temporaries();
        Ok(files)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn remove_temporaries(&self) {
        for dir in [&self.dir, &self.spool] {
            for path in names(dir).into_iter().filter(|p| p.to_string_lossy().ends_with(TMP)) {
                if let Err(e) = fs::remove_file(&path) {
                    warn!(path = %path.display(), error = %e, "could not remove a half-written file");
                }
            }
        }
    }

    /// Writes (or replaces) the entry of its job.
    pub fn write_entry(&self, entry: &Entry) -> io::Result<()> {
        write_atomic(&self.spool, &entry_name(entry.job_id), &encode(entry))
    }

    /// Removes the entry of `job_id` (gone already is fine).
    pub fn remove_entry(&self, job_id: Uuid) -> io::Result<()> {
        match fs::remove_file(self.spool.join(entry_name(job_id))) {
            Ok(()) => sync_dir(&self.spool),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every entry that reads back; a file that does not is renamed `*.corrupt` with a warning.
    pub fn entries(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for path in names(&self.spool) {
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| decode(&b).map_err(|e| e.to_string()))
            {
                Ok(entry) => entries.push(entry),
                Err(e) => set_aside(&path, &e),
            }
        }
        entries
    }

    /// Writes the finished-job record.
    pub fn write_record(&self, record: &Record) -> io::Result<()> {
        write_atomic(&self.dir, RECORD, &encode(record))
    }

    /// Writes the job in hand.
    pub fn write_in_hand(&self, in_hand: &InHand) -> io::Result<()> {
        write_atomic(&self.dir, IN_HAND, &encode(in_hand))
    }

    /// Forgets the job in hand (none already is fine).
    pub fn remove_in_hand(&self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(IN_HAND)) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The job an earlier run had in hand, if it left one that reads back (one that does not is
    /// set aside with a warning).
    pub fn in_hand(&self) -> Option<InHand> {
        let path = self.dir.join(IN_HAND);
        match fs::read(&path) {
            Ok(bytes) => decode(&bytes).map_err(|e| set_aside(&path, &e.to_string())).ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                set_aside(&path, &e.to_string());
                None
            }
        }
    }

    /// The finished-job record; empty when there is none, or (with a warning) when it does not
    /// read back.
    pub fn record(&self) -> Record {
        let path = self.dir.join(RECORD);
        match fs::read(&path) {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|e| {
                set_aside(&path, &e.to_string());
                Record::default()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Record::default(),
            Err(e) => {
                set_aside(&path, &e.to_string());
                Record::default()
            }
        }
    }
}

fn entry_name(job_id: Uuid) -> String {
    format!("{job_id}.json")
}

/// The paths in `dir`, sorted (an unreadable directory reads as empty, with a warning).
fn names(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(read) => read.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "could not list the state directory");
            Vec::new()
        }
    };
    paths.sort();
    paths
}

/// Renames an unreadable file out of the way, so it is reported once and kept for a person.
fn set_aside(path: &Path, error: &str) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(CORRUPT);
    warn!(path = %path.display(), %error, "skipping a state file that cannot be read; renamed *.corrupt");
    if let Err(e) = fs::rename(path, &aside) {
        warn!(path = %path.display(), error = %e, "could not rename the unreadable file");
    }
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}{TMP}"));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

/// Makes a rename or removal in `dir` durable (the directory entry itself is synced).
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// NTFS journals renames itself, and a directory cannot be opened as a file to sync it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::DateTime;
    use hotpatch_domain::job::{JobKind, JobResult, Lease, Outcome};

    fn entry(n: u128) -> Entry {
        let lease = Lease {
            id: Uuid::from_u128(100 + n),
            expires_at: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
        };
        let result = JobResult {
            lease_id: lease.id,
            outcome: Outcome::Succeeded,
            error: None,
            installed: Vec::new(),
            rebooted: None,
            reboot_pending: None,
        };
        Entry {
            job_id: Uuid::from_u128(n),
            kind: JobKind::Assess,
            lease,
            result,
            inventory: None,
            inventory_decides: true,
            health: false,
        }
    }

    #[test]
    fn entries_survive_a_reopen_and_removed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        files.write_entry(&entry(1)).unwrap();
        files.write_entry(&entry(2)).unwrap();
        files.remove_entry(Uuid::from_u128(1)).unwrap();
        files.remove_entry(Uuid::from_u128(1)).unwrap();
        drop(files);
        let files = Files::open(dir.path()).unwrap();
        assert_eq!(files.entries(), [entry(2)]);
    }

    #[test]
    fn a_torn_entry_is_set_aside_and_a_leftover_temporary_removed() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        files.write_entry(&entry(1)).unwrap();
        let spool = dir.path().join(SPOOL);
        let whole = fs::read(spool.join(entry_name(Uuid::from_u128(1)))).unwrap();
        fs::write(spool.join(entry_name(Uuid::from_u128(2))), &whole[..whole.len() / 2]).unwrap();
        fs::write(spool.join("x.json.tmp"), b"half").unwrap();
        drop(files);
        let files = Files::open(dir.path()).unwrap();
        assert!(!spool.join("x.json.tmp").exists());
        assert_eq!(files.entries(), [entry(1)]);
        assert!(spool.join(format!("{}{CORRUPT}", entry_name(Uuid::from_u128(2)))).exists());
        assert_eq!(files.entries(), [entry(1)], "set aside once, not read again");
    }

    #[test]
    fn a_garbage_record_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        assert!(files.record().jobs.is_empty());
        fs::write(dir.path().join(RECORD), b"{\"format\": 1, \"jobs\": [").unwrap();
        assert!(files.record().jobs.is_empty());
    }

    #[test]
    fn a_second_open_of_a_locked_directory_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let first = Files::open(dir.path()).unwrap();
        let second = Files::open(dir.path());
        assert!(matches!(second, Err(SpoolError::Locked(ref d)) if d == dir.path()), "{second:?}");
        drop(first);
        assert!(Files::open(dir.path()).is_ok());
    }
}
