//! A maintenance configuration as a client sends it: JSON → spec → validated configuration →
//! the next windows on a machine's clock, from instants around DST changes. Nothing may panic,
//! and every window must end after it starts.
#![no_main]

use chrono::{DateTime, Utc};
use hotpatch_domain::schedule::{ConfigurationSpec, MaintenanceConfiguration};
use hotpatch_scheduler::windows::{next_windows, Schedule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<ConfigurationSpec>(data) else { return };
    let Ok(configuration) = MaintenanceConfiguration::parse(spec) else { return };
    let zone = chrono_tz::Europe::Berlin;
    let schedule = Schedule::of_configuration(&configuration, zone);
    for from in ["2025-03-29T12:00:00Z", "2025-10-25T12:00:00Z", "2099-12-31T00:00:00Z"] {
        let from: DateTime<Utc> = from.parse().unwrap();
        for w in next_windows(&schedule, from, 4) {
            assert!(w.end > w.start, "{w:?}");
        }
    }
});
