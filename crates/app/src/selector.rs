//! A selector (`{machine_ids?, labels?, regions?}`, DESIGN §3): the checks every use of one makes
//! (bulk assessments, rollouts), once. Which machines it names is the SQL function
//! `selector_matches` in the store.

use hotpatch_domain::operation::Selector;
use hotpatch_store::operations;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::AppError;
use crate::operations::MAX_IDS;

/// Most labels and regions a selector may list.
const MAX_LABELS: usize = 50;
const MAX_REGIONS: usize = 500;
/// Unknown ids named in an error at most.
const NAMED_UNKNOWN: usize = 20;

/// The field path of a part: `prefix.part`, or `part` at the top level.
fn path(prefix: &str, part: &str) -> String {
    if prefix.is_empty() {
        part.to_owned()
    } else {
        format!("{prefix}.{part}")
    }
}

/// The selector's sizes, checked before any database work; `prefix` is where it stands in the
/// request (`selector`, or empty when it is the whole body).
pub fn check_sizes(s: &Selector, prefix: &str) -> Result<(), AppError> {
    if s.machine_ids.as_ref().is_some_and(|ids| ids.len() > MAX_IDS) {
        return Err(AppError::field(&path(prefix, "machine_ids"), format!("at most {MAX_IDS} ids")));
    }
    if s.labels.as_ref().is_some_and(|l| l.len() > MAX_LABELS) {
        return Err(AppError::field(&path(prefix, "labels"), format!("at most {MAX_LABELS} labels")));
    }
    if s.regions.as_ref().is_some_and(|r| r.len() > MAX_REGIONS) {
        return Err(AppError::field(&path(prefix, "regions"), format!("at most {MAX_REGIONS} regions")));
    }
    Ok(())
}

/// Every machine id the selector lists must exist (a typo must not shrink a fleet-wide action
/// silently).
pub async fn check_known(conn: &mut PgConnection, s: &Selector, prefix: &str) -> Result<(), AppError> {
    let Some(ids) = &s.machine_ids else { return Ok(()) };
    let unknown = operations::unknown_machines(&mut *conn, ids).await?;
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown.iter().take(NAMED_UNKNOWN).map(Uuid::to_string).collect();
    Err(AppError::field(
        &path(prefix, "machine_ids"),
        format!("{} unknown machine id(s): {}", unknown.len(), list.join(", ")),
    ))
}

/// The row limit to read a selection with: one more than `max` (the setting `max_selected`), so
/// that [`check_count`] sees a selection that is too big.
pub fn read_limit(max: usize) -> i64 {
    i64::try_from(max).unwrap_or(i64::MAX - 1) + 1
}

/// A selection of `n` machines (read with [`read_limit`]) must not be more than `max`.
pub fn check_count(n: usize, max: usize) -> Result<(), AppError> {
    if n > max {
        return Err(AppError::field("selector", format!("names more than {max} machines; narrow it")));
    }
    Ok(())
}
