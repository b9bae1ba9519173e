//! Bulk registration: up to 10,000 machines in one request, all or nothing.
//!
//! Every item is checked before anything is written, so one refusal lists every bad item by
//! index; then the whole batch goes in with one statement.

use std::collections::HashMap;

use hotpatch_domain::{HotpatchStatus, MachineSpec, ObjectOnly, RegionCapabilities};
use hotpatch_store::machines::{self, MachineWrite};
use hotpatch_store::regions;
use serde::{Deserialize as _, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::derive::{derive, write, Derived};
use crate::error::{AppError, ItemError};
use crate::json::field_error;
use crate::App;

/// Most machines one import may carry.
pub const MAX_IMPORT: usize = 10_000;

/// One imported machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedMachine {
    /// Index in the request array.
    pub index: usize,
    /// New identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Hotpatch status.
    pub hotpatch_status: HotpatchStatus,
    /// Whether the machine is eligible for hotpatch.
    pub eligible: bool,
}

/// Result of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// How many machines were registered.
    pub imported: usize,
    /// The machines, in request order.
    pub items: Vec<ImportedMachine>,
}

/// An item that passed every check.
struct Valid {
    index: usize,
    spec: MachineSpec,
    derived: Derived,
}

fn conflict(index: usize, message: String) -> ItemError {
    ItemError { index, field: "name".to_owned(), message, code: Some("conflict".to_owned()) }
}

/// Registers every machine of `items` (the JSON array of an import, one machine spec each), or
/// none: any invalid item, or a name taken within the import or in the fleet, refuses the whole
/// import with [`AppError::ImportRejected`] listing every problem by item index.
pub async fn import(app: &App, items: Vec<serde_json::Value>) -> Result<ImportResult, AppError> {
    let total = items.len();
    if total > MAX_IMPORT {
        return Err(AppError::field(
            "body",
            format!("an import holds at most {MAX_IMPORT} machines, got {total}"),
        ));
    }
    if total == 0 {
        return Err(AppError::field("body", "an import needs at least one machine"));
    }
    let caps = regions::capabilities(&app.pool).await?;
    let (valid, mut errors) = check_items(items, &caps);

    let mut tx = app.pool.begin().await?;
    let names: Vec<String> = valid.iter().map(|v| v.spec.name.clone()).collect();
    let taken = machines::taken_names(&mut *tx, &names).await?;
    errors.extend(
        valid
            .iter()
            .filter(|v| taken.contains(&v.spec.name))
            .map(|v| conflict(v.index, format!("a machine named '{}' already exists", v.spec.name))),
    );
    if !errors.is_empty() {
        return Err(rejected(errors, total));
    }
    let writes: Vec<MachineWrite<'_>> = valid.iter().map(|v| write(&v.spec, &v.derived)).collect();
    let inserted = machines::insert_many(&mut tx, &writes).await?;
    tx.commit().await?;
    tracing::info!(count = inserted.len(), "machines imported");
    let items: Vec<ImportedMachine> = valid
        .iter()
        .zip(inserted)
        .map(|(v, m)| ImportedMachine {
            index: v.index,
            id: m.id,
            name: m.spec.name,
            hotpatch_status: m.hotpatch_status,
            eligible: v.derived.eligibility.eligible,
        })
        .collect();
    Ok(ImportResult { imported: items.len(), items })
}

/// The refusal of an import of `total` items with these problems (a conflict when every
/// problem is a name conflict).
fn rejected(mut errors: Vec<ItemError>, total: usize) -> AppError {
    errors.sort_by_key(|e| e.index);
    let conflict_only = errors.iter().all(|e| e.code.as_deref() == Some("conflict"));
    let mut bad: Vec<usize> = errors.iter().map(|e| e.index).collect();
    bad.dedup();
    AppError::ImportRejected {
        detail: format!("{} of {total} machines are invalid; nothing was imported", bad.len()),
        errors,
        conflict_only,
    }
}

/// Checks every item (shape, fields, eligibility, names unique within the import) without
/// touching the database; returns the valid items and every problem of the others.
fn check_items(items: Vec<serde_json::Value>, caps: &RegionCapabilities) -> (Vec<Valid>, Vec<ItemError>) {
    let mut errors = Vec::new();
    let mut valid = Vec::with_capacity(items.len());
    let mut first_index: HashMap<String, usize> = HashMap::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(item, &mut track);
        let spec = match MachineSpec::deserialize(ObjectOnly(tracked)) {
            Ok(s) => s,
            Err(e) => {
                let fe = field_error(&track.path().to_string(), &e);
                errors.push(ItemError { index, field: fe.field, message: fe.message, code: None });
                continue;
            }
        };
        if let Some(first) = first_index.get(&spec.name) {
            errors.push(conflict(index, format!("'{}' is also the name of item {first}", spec.name)));
        } else {
            first_index.insert(spec.name.clone(), index);
        }
        match derive(&spec, caps, None) {
            Ok(derived) => valid.push(Valid { index, spec, derived }),
            Err(e) => errors.extend(item_errors(index, e)),
        }
    }
    (valid, errors)
}

/// The problems of item `index` that [`derive`] refused.
fn item_errors(index: usize, e: AppError) -> Vec<ItemError> {
    match e {
        AppError::Unprocessable { errors, .. } => errors
            .into_iter()
            .map(|f| ItemError { index, field: f.field, message: f.message, code: None })
            .collect(),
        AppError::Ineligible(r) => vec![ItemError {
            index,
            field: "hotpatch_enabled".to_owned(),
            message: r.detail,
            code: Some(<&'static str>::from(r.code).to_owned()),
        }],
        other => vec![ItemError { index, field: String::new(), message: other.to_string(), code: None }],
    }
}
