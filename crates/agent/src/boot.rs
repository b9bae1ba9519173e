//! What identifies the machine's current boot, so that an agent starting with a job in hand
//! can tell whether the machine restarted since the job began (a reboot the job started) or only
//! the agent did (a crash, a service restart).
//!
//! The operating system's own answer is the default: on Linux the kernel's boot id
//! (`/proc/sys/kernel/random/boot_id`, a fresh UUID at every boot); elsewhere the boot time in
//! seconds since the epoch. A [`BootMarker::File`] reads the marker from a file instead: for a
//! container, whose kernel is the host's and does not restart with it, and for tests, which
//! restart a machine by writing a new marker and restarting the agent.

use std::path::PathBuf;

/// Where the boot marker comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootMarker {
    /// The operating system's boot id or boot time.
    Os,
    /// The (trimmed) contents of this file.
    File(PathBuf),
}

/// Boot times read at different moments may differ by the clock's drift: closer than this they
/// are the same boot (no machine restarts twice within it).
const SAME_BOOT_SECONDS: i64 = 5;

impl BootMarker {
    /// The marker of the current boot; `None` (with a warning) when it cannot be read.
    pub fn read(&self) -> Option<String> {
        let read = match self {
            BootMarker::Os => os_marker(),
            BootMarker::File(path) => std::fs::read_to_string(path)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{}: {e}", path.display())),
        };
        match read {
            Ok(marker) if !marker.is_empty() => Some(marker),
            Ok(_) => {
                tracing::warn!("the boot marker is empty; restarts of the machine cannot be told apart");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the boot marker; restarts of the machine cannot be told apart");
                None
            }
        }
    }
}

/// Whether the machine restarted between the markers `before` and `now`. Two boot times (whole
/// seconds) are the same boot when they are close; any other markers when they are equal.
pub fn restarted(before: &str, now: &str) -> bool {
    match (before.parse::<i64>(), now.parse::<i64>()) {
        (Ok(a), Ok(b)) => (b - a).abs() > SAME_BOOT_SECONDS,
        _ => before != now,
    }
}

#[cfg(target_os = "linux")]
fn os_marker() -> Result<String, String> {
    const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
    std::fs::read_to_string(BOOT_ID).map(|s| s.trim().to_owned()).map_err(|e| format!("{BOOT_ID}: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn os_marker() -> Result<String, String> {
    match sysinfo::System::boot_time() {
        0 => Err("the operating system did not tell its boot time".to_owned()),
        secs => Ok(secs.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn boot_times_a_few_seconds_apart_are_one_boot() {
        assert!(!restarted("1764000000", "1764000003"));
        assert!(restarted("1764000000", "1764000300"));
    }

    #[test]
    fn other_markers_differ_or_not() {
        assert!(!restarted("6f1c", "6f1c"));
        assert!(restarted("6f1c", "a0b2"));
        assert!(restarted("1764000000", "a0b2"));
    }

    #[test]
    fn a_file_marker_is_read_trimmed_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot");
        assert_eq!(BootMarker::File(path.clone()).read(), None);
        std::fs::write(&path, "boot-2\n").unwrap();
        assert_eq!(BootMarker::File(path.clone()).read().as_deref(), Some("boot-2"));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(BootMarker::File(path).read(), None);
    }

    #[test]
    fn the_os_tells_a_marker_that_stays_put() {
        let first = BootMarker::Os.read().unwrap();
        let second = BootMarker::Os.read().unwrap();
        assert!(!restarted(&first, &second), "{first} then {second}");
    }
}
