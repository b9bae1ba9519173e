//! What a program answers on stdout, read strictly: one JSON object, the last non-empty line
//! when it printed other lines first (PowerShell programs often do).

use hotpatch_domain::job::{Health, Inventory, Outcome};
use hotpatch_domain::Kb;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::executor::JobOutcome;

/// The answer to a job kind (`assess`, `install`, `rollback`, `reboot`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobAnswer {
    /// Succeeded or failed.
    pub outcome: Outcome,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// KBs the job installed.
    #[serde(default)]
    pub installed: Vec<Kb>,
    /// The program started a restart of the machine (scheduled, not yet happened).
    #[serde(default)]
    pub rebooted: bool,
    /// A reboot is pending after the job.
    #[serde(default)]
    pub reboot_pending: Option<bool>,
    /// The machine's inventory after the job (an assessment's is its result).
    #[serde(default)]
    pub inventory: Option<Inventory>,
}

impl JobAnswer {
    /// The outcome the agent reports. A restart the program started is awaited before it is
    /// reported; a failure without a reason gets one.
    pub fn into_outcome(self) -> JobOutcome {
        let reboot_pending =
            self.reboot_pending.or(self.inventory.as_ref().map(|i| i.reboot_pending)).unwrap_or(false);
        let error = match (self.outcome, self.error) {
            (Outcome::Failed, None) => Some("the program reported a failure without a reason".to_owned()),
            (_, error) => error,
        };
        JobOutcome {
            outcome: self.outcome,
            error,
            installed: self.installed,
            rebooted: self.rebooted,
            reboot_pending,
            inventory: self.inventory,
            awaits_restart: self.rebooted,
        }
    }
}

/// Reads the answer `T` from a program's stdout: the whole output when it is one JSON document,
/// else its last non-empty line.
pub fn parse<T: DeserializeOwned>(stdout: &[u8]) -> Result<T, String> {
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return Err("it printed no answer on stdout".to_owned());
    }
    let last = text.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or_default();
    for candidate in [text, last] {
        // A JSON object of the wrong shape is the answer, wrongly written: say what is wrong.
        if let Ok(serde_json::Value::Object(object)) = serde_json::from_str(candidate) {
            return serde_json::from_value(serde_json::Value::Object(object))
                .map_err(|e| format!("its answer is not valid: {e}"));
        }
    }
    Err("its stdout holds no JSON object (the answer must be the whole output or its last line)".to_owned())
}

/// Reads a job answer.
pub fn job(stdout: &[u8]) -> Result<JobAnswer, String> {
    parse(stdout)
}

/// Reads an `inventory` answer.
pub fn inventory(stdout: &[u8]) -> Result<Inventory, String> {
    parse(stdout)
}

/// Reads a `health` answer.
pub fn health(stdout: &[u8]) -> Result<Health, String> {
    parse(stdout)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_object_is_the_answer() {
        let a =
            job(br#"{"outcome": "succeeded", "installed": ["kb5034439"], "reboot_pending": true}"#).unwrap();
        assert_eq!(a.outcome, Outcome::Succeeded);
        assert_eq!(a.installed, ["KB5034439".parse::<Kb>().unwrap()]);
        let o = a.into_outcome();
        assert!(o.reboot_pending && !o.rebooted && !o.awaits_restart);
    }

    #[test]
    fn a_pretty_printed_object_is_one_answer_too() {
        let a = job(b"{\n  \"outcome\": \"failed\",\n  \"error\": \"0x80240022\"\n}\n").unwrap();
        assert_eq!(a.into_outcome().error.as_deref(), Some("0x80240022"));
    }

    #[test]
    fn log_lines_before_the_answer_are_skipped() {
        let out =
            b"Searching for updates...\nFound 2\n\n{\"outcome\": \"succeeded\", \"rebooted\": true}\n\n";
        let o = job(out).unwrap().into_outcome();
        assert!(o.rebooted && o.awaits_restart, "a restart the program started is awaited");
    }

    #[test]
    fn garbage_empty_and_wrong_shapes_say_why() {
        assert_eq!(job(b"").unwrap_err(), "it printed no answer on stdout");
        assert!(job(b"hello\nworld").unwrap_err().contains("no JSON object"));
        let unknown = job(br#"{"outcome": "succeeded", "surprise": 1}"#).unwrap_err();
        assert!(unknown.contains("not valid") && unknown.contains("surprise"), "{unknown}");
        let bad = job(b"log\n{\"outcome\": \"maybe\"}").unwrap_err();
        assert!(bad.contains("not valid"), "{bad}");
    }

    #[test]
    fn a_failure_without_a_reason_gets_one() {
        let o = job(br#"{"outcome": "failed"}"#).unwrap().into_outcome();
        assert!(o.error.unwrap().contains("without a reason"));
    }

    #[test]
    fn the_reboot_pending_flag_falls_back_to_the_inventory() {
        let out =
            br#"{"outcome": "succeeded", "inventory": {"os_build": "20348.2227", "reboot_pending": true}}"#;
        assert!(job(out).unwrap().into_outcome().reboot_pending);
    }

    #[test]
    fn inventory_and_health_answers_read_their_bodies() {
        let i = inventory(br#"{"os_build": "20348.2227", "reboot_pending": false, "installed_updates": [], "available_updates": []}"#).unwrap();
        assert_eq!(i.os_build.to_string(), "20348.2227");
        let h = health(br#"{"status": "unhealthy", "checks": [{"name": "services", "status": "unhealthy", "detail": "W3SVC stopped"}]}"#).unwrap();
        assert_eq!(h.checks.len(), 1);
    }
}
