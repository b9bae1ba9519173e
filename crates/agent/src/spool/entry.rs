//! What the spool keeps on disk, and its file format: one JSON document per file, tagged with a
//! format number so a later agent can tell an old file from garbage.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{ClaimedJob, Inventory, JobKind, JobResult, Lease, Outcome};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::executor::JobOutcome;

/// The format of spool entries and of the finished-job record this agent writes.
pub const FORMAT: u32 = 1;

/// A job whose work finished and whose reports are not settled yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The job.
    pub job_id: Uuid,
    /// What it was.
    pub kind: JobKind,
    /// The lease the result goes under, with its expiry as last known.
    pub lease: Lease,
    /// The body of `POST /v1/agent/jobs/{id}/result` (its `lease_id` is `lease.id`).
    pub result: JobResult,
    /// The inventory to report before the result; `None` once it is settled (or when none).
    #[serde(default)]
    pub inventory: Option<Inventory>,
    /// An assessment's result is its inventory: when the server refuses the inventory for good,
    /// the result reports a failure instead of a success.
    #[serde(default)]
    pub inventory_decides: bool,
    /// Report the machine's health once the result is settled (after disruptive jobs).
    #[serde(default)]
    pub health: bool,
}

impl Entry {
    /// The entry that reports `kept` (a result already sent for this job) again under a new
    /// lease: the job was re-offered after a late report, and must not run again. After a
    /// disruptive job the health goes again too: the server counts only a health report that
    /// comes after the job ended, and the one sent after the refused report came before.
    pub fn again(job_id: Uuid, kind: JobKind, lease: Lease, kept: &JobResult) -> Entry {
        Entry {
            job_id,
            kind,
            lease,
            result: JobResult { lease_id: lease.id, ..kept.clone() },
            inventory: None,
            inventory_decides: false,
            health: kind.is_disruptive(),
        }
    }

    /// Turns the result into a failure with `error` (an assessment whose inventory was refused).
    pub fn fail(&mut self, error: String) {
        self.result.outcome = Outcome::Failed;
        self.result.error = Some(error);
        self.result.installed.clear();
    }
}

/// A job of the finished-job record: its work finished and its result was settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finished {
    /// The job.
    pub job_id: Uuid,
    /// What it was.
    pub kind: JobKind,
    /// The result last sent for it (under the lease of that time).
    pub result: JobResult,
}

/// The job the agent has in hand: written before its work starts, removed once its [`Entry`]
/// is spooled. One found at start was interrupted, by a crash of the agent or by a restart of
/// the machine, which the boot marker tells apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InHand {
    /// The job, as claimed (its lease as last known).
    pub job: ClaimedJob,
    /// The machine's boot marker when the work started (see [`crate::boot`]); `None` when it
    /// could not be read.
    pub boot: Option<String>,
    /// The executor's answer when it started a restart of the machine: the answer holds once
    /// the machine has restarted.
    #[serde(default)]
    pub answer: Option<JobOutcome>,
    /// When that answer came: the restart is waited for from then.
    #[serde(default)]
    pub answered_at: Option<DateTime<Utc>>,
}

/// The finished-job record's file body.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Oldest first.
    pub jobs: Vec<Finished>,
}

/// Why a file could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Not JSON of the expected shape (torn, truncated, garbage).
    #[error("not a spool document: {0}")]
    Invalid(#[from] serde_json::Error),
    /// Written by an agent of another format.
    #[error("format {0}, this agent reads format {FORMAT}")]
    Format(u32),
}

/// The bytes of a spool file holding `body`.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Out<'a, T> {
        format: u32,
        #[serde(flatten)]
        body: &'a T,
    }
    // Serializing these plain structs cannot fail (string keys, no custom serializers).
    serde_json::to_vec_pretty(&Out { format: FORMAT, body }).unwrap_or_default()
}

/// Reads back what [`encode`] wrote.
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, FormatError> {
    #[derive(Deserialize)]
    struct Head {
        format: u32,
    }
    let head: Head = serde_json::from_slice(bytes)?;
    if head.format != FORMAT {
        return Err(FormatError::Format(head.format));
    }
    // The body's own fields are checked strictly (deny_unknown_fields), so the tag goes first.
    let mut object: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(map) = object.as_object_mut() {
        map.remove("format");
    }
    Ok(serde_json::from_value(object)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{TimeZone, Utc};

    fn entry() -> Entry {
        let lease =
            Lease { id: Uuid::from_u128(7), expires_at: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() };
        Entry {
            job_id: Uuid::from_u128(1),
            kind: JobKind::Install,
            lease,
            result: JobResult {
                lease_id: lease.id,
                outcome: Outcome::Succeeded,
                error: None,
                installed: vec!["KB5034439".parse().unwrap()],
                rebooted: Some(false),
                reboot_pending: Some(false),
            },
            inventory: None,
            inventory_decides: false,
            health: true,
        }
    }

    #[test]
    fn an_entry_reads_back_as_it_was_written() {
        let bytes = encode(&entry());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"format\": 1"), "{text}");
        assert_eq!(decode::<Entry>(&bytes).unwrap(), entry());
    }

    #[test]
    fn the_record_reads_back_as_it_was_written() {
        let e = entry();
        let record = Record { jobs: vec![Finished { job_id: e.job_id, kind: e.kind, result: e.result }] };
        let back: Record = decode(&encode(&record)).unwrap();
        assert_eq!(back.jobs, record.jobs);
    }

    #[test]
    fn a_torn_file_is_an_error_not_a_panic() {
        let bytes = encode(&entry());
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(matches!(decode::<Entry>(&bytes[..cut]), Err(FormatError::Invalid(_))), "cut at {cut}");
        }
        assert!(decode::<Entry>(b"\x00\xff garbage").is_err());
        assert!(decode::<Entry>(b"{\"format\": 1, \"job_id\": 3}").is_err());
    }

    #[test]
    fn another_format_is_refused_by_its_number() {
        let text = String::from_utf8(encode(&entry())).unwrap().replace("\"format\": 1", "\"format\": 9");
        assert!(matches!(decode::<Entry>(text.as_bytes()), Err(FormatError::Format(9))));
    }

    #[test]
    fn reporting_again_keeps_the_result_under_the_new_lease() {
        let kept = entry().result;
        let lease = Lease { id: Uuid::from_u128(99), expires_at: Utc::now() };
        let again = Entry::again(Uuid::from_u128(1), JobKind::Install, lease, &kept);
        assert_eq!(again.result, JobResult { lease_id: lease.id, ..kept.clone() });
        // The health goes again after a disruptive job: only a report after the job ended counts.
        assert!(again.inventory.is_none() && again.health);
        let assess = Entry::again(Uuid::from_u128(1), JobKind::Assess, lease, &kept);
        assert!(!assess.health);
    }
}
