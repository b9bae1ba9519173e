//! The fleet: machines registered one at a time or by import, read, listed with filters (and
//! their patch status), changed and removed; region capabilities; the fleet summary; what a
//! machine has installed and what was done to it.
//!
//! Every write runs the eligibility rules against the current region data and stores the
//! verdict ([`derive`]), so lists filter on it and reads never re-evaluate.

pub(crate) mod derive;
pub mod history;
pub mod import;
pub mod regions;
pub mod summary;
pub mod views;

use hotpatch_domain::{MachinePatch, MachineSpec};
use hotpatch_store::machines;
use hotpatch_store::regions as region_rows;
use uuid::Uuid;

pub use hotpatch_store::machines::{MachineFilter, NameMatch};
pub use views::{MachineListItem, MachineView};

use self::derive::{derive, write};
use crate::error::{AppError, OrNotFound};
use crate::App;

fn no_machine(id: Uuid) -> impl FnOnce() -> String {
    move || format!("no machine with id {id}")
}

/// Registers a machine; the answer carries its eligibility.
pub async fn register(app: &App, spec: MachineSpec) -> Result<MachineView, AppError> {
    let caps = region_rows::capabilities(&app.pool).await?;
    let derived = derive(&spec, &caps, None)?;
    let mut conn = app.pool.acquire().await?;
    let m = machines::insert(&mut conn, &write(&spec, &derived)).await?;
    tracing::info!(machine_id = %m.id, name = %m.spec.name, eligible = derived.eligibility.eligible, "machine registered");
    Ok(m.into())
}

/// One machine.
pub async fn get(app: &App, id: Uuid) -> Result<MachineView, AppError> {
    Ok(machines::get(&app.pool, id).await.or_not_found(no_machine(id))?.into())
}

/// One machine as `GET /v1/machines/{id}` sends it (JSON): kept in this replica's memory
/// until a write of the machine's rows drops it, as patch status answers are (see
/// [`crate::status::cache`]), so a read repeated by portals costs no query.
pub async fn get_json(app: &App, id: Uuid) -> Result<bytes::Bytes, AppError> {
    let listening = app.wakeups.is_listening();
    if let Some(kept) = app.machine_cache.get(id, listening) {
        app.machine_cache.hit();
        return Ok(kept.body.clone());
    }
    app.machine_cache.miss();
    // Taken before the read: a change after it refuses to keep what is read here.
    let ticket = app.machine_cache.ticket(listening);
    let view: MachineView = machines::get(&app.pool, id).await.or_not_found(no_machine(id))?.into();
    let body = bytes::Bytes::from(serde_json::to_vec(&view).map_err(AppError::internal)?);
    let kept = crate::status::cache::Answer {
        etag: String::new(),
        body: body.clone(),
        computed_at: app.clock.now(),
        valid_until: chrono::DateTime::<chrono::Utc>::MAX_UTC,
        seen: None,
    };
    app.machine_cache.fill(ticket, id, kept);
    Ok(body)
}

/// A page of the machines that match `filter`, in id order after `after`: up to `limit + 1`
/// machines, the extra one only saying that a next page exists. With `include_status`, each
/// machine of the page (not the extra one) carries its patch status and that answer's `ETag`.
pub async fn list(
    app: &App,
    filter: &MachineFilter,
    after: Option<Uuid>,
    limit: i64,
    include_status: bool,
) -> Result<Vec<MachineListItem>, AppError> {
    let rows = machines::list(&app.pool, filter, after, limit + 1).await?;
    let mut answers = if include_status {
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let ids: Vec<Uuid> = rows.iter().take(page).map(|m| m.id).collect();
        crate::status::answers(app, &ids).await?
    } else {
        Default::default()
    };
    rows.into_iter()
        .map(|m| {
            let (patch_status, patch_status_etag) = match answers.remove(&m.id) {
                Some(a) => (Some(raw_json(&a.body)?), Some(a.etag)),
                None => (None, None),
            };
            Ok(MachineListItem { machine: m.into(), patch_status, patch_status_etag })
        })
        .collect()
}

/// An answer's body, to embed as it is.
fn raw_json(body: &[u8]) -> Result<Box<serde_json::value::RawValue>, AppError> {
    let text = std::str::from_utf8(body).map_err(AppError::internal)?;
    serde_json::value::RawValue::from_string(text.to_owned()).map_err(AppError::internal)
}

/// Changes some fields of a machine; the eligibility rules are checked again, against the
/// region data of the same transaction.
pub async fn update(app: &App, id: Uuid, patch: MachinePatch) -> Result<MachineView, AppError> {
    let mut tx = app.pool.begin().await?;
    let current = machines::get_for_update(&mut tx, id).await.or_not_found(no_machine(id))?;
    let spec = current.spec.clone().patched(patch);
    let caps = region_rows::capabilities(&mut *tx).await?;
    let derived = derive(&spec, &caps, current.enrollment)?;
    let m = machines::update(&mut tx, id, &write(&spec, &derived)).await?;
    tx.commit().await?;
    tracing::info!(machine_id = %id, status = <&'static str>::from(m.hotpatch_status), "machine updated");
    Ok(m.into())
}

/// Removes a machine from the fleet (its agent tokens go with it).
pub async fn delete(app: &App, id: Uuid) -> Result<(), AppError> {
    machines::delete(&app.pool, id).await.or_not_found(no_machine(id))?;
    tracing::info!(machine_id = %id, "machine deleted");
    Ok(())
}
