//! Whether an operation's jobs can reach their machines: which machines have no connected agent
//! (the 202 of assess, install and rollback says so, and `?skip_disconnected=true` leaves them
//! out of a bulk assessment), and the reason a job no agent claimed in time ends `expired` with.

use chrono::TimeDelta;
use hotpatch_store::agents;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::AppError;
use crate::App;

/// Machines a warning names at most; the rest are counted.
pub const NAMED: usize = 20;

/// Of `machine_ids`, those whose agent is not connected now (not seen within the agent
/// silence, by the database or by this replica's unwritten marks): `(id, name)` by name.
pub async fn disconnected(
    app: &App,
    conn: &mut PgConnection,
    machine_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, AppError> {
    let now = app.clock.now();
    let silence = app.settings.agent_silence;
    let rows = agents::disconnected(&mut *conn, machine_ids, now - silence).await?;
    Ok(rows
        .into_iter()
        .filter(|(id, _)| app.presence.pending(*id).is_none_or(|t| now - t >= silence))
        .collect())
}

/// The warning of an operation whose jobs wait for agents that are not connected, or `None`.
pub fn warning(disconnected: &[(Uuid, String)], total: usize, ttl: TimeDelta) -> Option<String> {
    if disconnected.is_empty() {
        return None;
    }
    Some(format!(
        "{} of {total} machine(s) have no connected agent ({}): their jobs wait for it and end \
         expired if it does not claim them within {}",
        disconnected.len(),
        names(disconnected),
        human(ttl)
    ))
}

/// The warning of a request that left out the machines without a connected agent.
pub fn left_out(disconnected: &[(Uuid, String)]) -> String {
    format!(
        "{} machine(s) without a connected agent were left out ({})",
        disconnected.len(),
        names(disconnected)
    )
}

/// The first [`NAMED`] names, and how many more.
fn names(machines: &[(Uuid, String)]) -> String {
    let names: Vec<&str> = machines.iter().take(NAMED).map(|(_, n)| n.as_str()).collect();
    match machines.len().saturating_sub(NAMED) {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

/// The `error` of a job that expired unclaimed.
pub fn expiry_reason(ttl: TimeDelta) -> String {
    format!(
        "expired: the machine's agent did not claim the job within {} (is it running and connected?)",
        human(ttl)
    )
}

/// A duration in its largest whole unit (`24h`, `90m`, `45s`).
pub fn human(d: TimeDelta) -> String {
    let secs = d.num_seconds();
    match () {
        _ if secs % 3600 == 0 => format!("{}h", secs / 3600),
        _ if secs % 60 == 0 => format!("{}m", secs / 60),
        _ => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warning_names_the_first_machines_and_counts_the_rest() {
        let machines: Vec<(Uuid, String)> = (0..22).map(|i| (Uuid::nil(), format!("m{i:02}"))).collect();
        let w = warning(&machines, 30, TimeDelta::hours(24)).unwrap();
        assert!(w.starts_with("22 of 30 machine(s) have no connected agent (m00, m01, "), "{w}");
        assert!(w.contains("m19 and 2 more)"), "{w}");
        assert!(w.ends_with("within 24h"), "{w}");
        assert_eq!(warning(&[], 3, TimeDelta::hours(1)), None);
    }

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        assert_eq!(human(TimeDelta::hours(24)), "24h");
        assert_eq!(human(TimeDelta::minutes(90)), "90m");
        assert_eq!(human(TimeDelta::seconds(45)), "45s");
    }
}
