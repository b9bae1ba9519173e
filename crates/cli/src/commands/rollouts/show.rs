//! How a rollout plan and a rollout with its progress are printed, and the one-line progress
//! (which `rollouts watch` shows beside its bar).

use serde_json::Value;

use crate::error::{one_line, CliError};
use crate::output::{text, Out};

/// A plan in table form: counts, then its batches.
pub(super) fn show_plan(out: &mut Out, p: &Value) -> Result<(), CliError> {
    out.fields(&[
        ("release", text(p, "/release_id")),
        ("start", text(p, "/start")),
        ("expected finish", text(p, "/expected_finish")),
        ("deadline", text(p, "/deadline")),
        ("overdue", text(p, "/overdue")),
        ("selected", text(p, "/counts/selected")),
        ("planned", text(p, "/counts/planned")),
        ("unplanned", unplanned(p)),
        ("waves", text(p, "/counts/waves")),
        ("batches", text(p, "/counts/batches")),
    ])?;
    let rows: Vec<Vec<String>> = p
        .get("batches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|b| {
            vec![
                text(b, "/index"),
                text(b, "/wave"),
                text(b, "/region"),
                text(b, "/zone"),
                text(b, "/machine_count"),
                text(b, "/planned_start"),
                text(b, "/planned_end"),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.line("")?;
        out.table(&["batch", "wave", "region", "zone", "machines", "planned_start", "planned_end"], &rows)?;
    }
    Ok(())
}

/// `2 (not_eligible=1,no_window=1)`, or `0`.
fn unplanned(p: &Value) -> String {
    let by_reason = text(p, "/counts/unplanned_by_reason");
    match by_reason.as_str() {
        "-" => text(p, "/counts/unplanned"),
        reasons => format!("{} ({reasons})", text(p, "/counts/unplanned")),
    }
}

/// A rollout with its progress in table form (or its JSON).
pub(super) fn show_detail(out: &mut Out, r: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(r);
    }
    let mut pairs = vec![
        ("rollout", text(r, "/id")),
        ("release", text(r, "/release_id")),
        ("state", text(r, "/state")),
        ("progress", progress_text(r)),
        ("machines", text(r, "/machine_count")),
        ("expected finish", text(r, "/expected_finish")),
        ("deadline", text(r, "/deadline")),
        ("overdue", text(r, "/overdue")),
    ];
    if r.get("halted_reason").is_some_and(|h| !h.is_null()) {
        pairs.push(("halted", one_line(&text(r, "/halted_reason"))));
    }
    out.fields(&pairs)?;
    let rows: Vec<Vec<String>> = batches(r)
        .map(|b| {
            vec![
                text(b, "/index"),
                text(b, "/wave"),
                text(b, "/region"),
                text(b, "/zone"),
                text(b, "/state"),
                format!("{}/{}", finished(b.get("counts")), text(b, "/counts/total")),
                text(b, "/counts/failed"),
                text(b, "/counts/canceled"),
                text(b, "/planned_start"),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.line("")?;
        out.table(
            &["batch", "wave", "region", "zone", "state", "done", "failed", "canceled", "planned_start"],
            &rows,
        )?;
    }
    Ok(())
}

/// Every batch of a rollout detail, wave by wave.
fn batches(r: &Value) -> impl Iterator<Item = &Value> {
    r.get("waves")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|w| w.get("batches").and_then(Value::as_array).into_iter().flatten())
}

/// Machines whose install ran to its end (succeeded or failed) in a `counts` object: a canceled
/// machine never installed, so it is not "done".
fn finished(counts: Option<&Value>) -> i64 {
    let n = |k: &str| counts.and_then(|c| c.get(k)).and_then(Value::as_i64).unwrap_or(0);
    n("succeeded") + n("failed")
}

/// ` 45%  9/20 machines · 8 succeeded · 1 failed · batch 3/6 · running`; a canceled rollout
/// says how many machines it left out and at which batch it stopped.
pub fn progress_text(r: &Value) -> String {
    let counts = r.get("counts");
    let total = counts.and_then(|c| c.get("total")).and_then(Value::as_i64).unwrap_or(0);
    let canceled = counts.and_then(|c| c.get("canceled")).and_then(Value::as_i64).unwrap_or(0);
    let done = finished(counts);
    let all: Vec<&Value> = batches(r).collect();
    let state_of = |b: &Value| b.get("state").and_then(Value::as_str).map(str::to_owned);
    let closed = all.iter().filter(|b| state_of(b).as_deref() == Some("succeeded")).count();
    let current =
        all.iter().position(|b| matches!(state_of(b).as_deref(), Some("open" | "halted" | "pending")));
    let stopped = all.iter().position(|b| state_of(b).as_deref() == Some("canceled"));
    let batch = match (current, stopped) {
        (Some(i), _) => format!("batch {}/{}", i + 1, all.len()),
        (None, Some(i)) => format!("canceled at batch {}/{}", i + 1, all.len()),
        (None, None) => format!("batch {closed}/{}", all.len()),
    };
    let canceled = if canceled > 0 { format!(" · {canceled} canceled") } else { String::new() };
    format!(
        "{:>3}%  {done}/{total} machines · {} succeeded · {} failed{canceled} · {batch} · {}",
        percent(done, total),
        text(r, "/counts/succeeded"),
        text(r, "/counts/failed"),
        text(r, "/state"),
    )
}

fn percent(done: i64, total: i64) -> i64 {
    if total <= 0 {
        return 100;
    }
    done.clamp(0, total) * 100 / total
}

/// Machines whose install ran to its end, and every machine, of a rollout detail: the bar's
/// position and length.
pub fn progress_counts(r: &Value) -> (u64, u64) {
    let counts = r.get("counts");
    let total = counts.and_then(|c| c.get("total")).and_then(Value::as_i64).unwrap_or(0);
    (u64::try_from(finished(counts)).unwrap_or(0), u64::try_from(total).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_bar_counts_finished_machines_of_all() {
        let r = json!({"counts": {"total": 20, "succeeded": 8, "failed": 1, "canceled": 3, "pending": 8}});
        assert_eq!(progress_counts(&r), (9, 20));
        assert_eq!(progress_counts(&json!({})), (0, 0));
    }

    #[test]
    fn the_progress_line_counts_machines_and_names_the_current_batch() {
        let r = json!({
            "state": "running",
            "counts": {"total": 20, "succeeded": 8, "failed": 1, "canceled": 0},
            "waves": [
                {"batches": [{"state": "succeeded"}, {"state": "succeeded"}]},
                {"batches": [{"state": "open"}, {"state": "pending"}]}
            ]
        });
        assert_eq!(progress_text(&r), " 45%  9/20 machines · 8 succeeded · 1 failed · batch 3/4 · running");
    }

    #[test]
    fn a_canceled_rollout_shows_what_it_left_out_not_a_full_bar() {
        let r = json!({
            "state": "canceled",
            "counts": {"total": 17, "succeeded": 3, "failed": 0, "canceled": 14},
            "waves": [
                {"batches": [{"state": "succeeded"}, {"state": "canceled"}]},
                {"batches": [{"state": "canceled"}]}
            ]
        });
        assert_eq!(
            progress_text(&r),
            " 17%  3/17 machines · 3 succeeded · 0 failed · 14 canceled · canceled at batch 2/3 · canceled"
        );
    }
}
