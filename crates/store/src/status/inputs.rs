//! Everything one machine's patch status is computed from, read from the view
//! `machine_status_inputs` (migration 0014) for one machine or many, decoded into domain types here so that the service computes without parsing.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{AvailableUpdate, Health};
use hotpatch_domain::schedule::{MaintenanceConfiguration, ScopeMatch};
use hotpatch_domain::{Enrollment, OsVersion, Platform, Timezone};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{decode, rollout_of, AgentMark, StatusVersion};
use crate::error::StoreError;
use crate::machines::parse;

/// The maintenance configuration that applies to a machine (see `maintenance::for_machine`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedConfiguration {
    /// Its id.
    pub id: Uuid,
    /// The configuration.
    pub configuration: MaintenanceConfiguration,
    /// How the machine matched.
    pub matched: ScopeMatch,
}

/// Everything one machine's patch status is computed from (the catalog apart: see
/// [`super::catalog`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusInputs {
    /// The machine.
    pub id: Uuid,
    /// Its OS.
    pub os: OsVersion,
    /// Its platform.
    pub platform: Platform,
    /// Hotpatch requested.
    pub hotpatch_enabled: bool,
    /// Eligible by the rules.
    pub eligible: bool,
    /// Preview (Arc).
    pub preview: bool,
    /// Arc enrollment.
    pub enrollment: Option<Enrollment>,
    /// The OS build the operator registered.
    pub registered_os_build: Option<String>,
    /// Its time zone.
    pub timezone: Timezone,
    /// When the machine row last changed.
    pub updated_at: DateTime<Utc>,
    /// Installed state: current baseline.
    pub current_baseline_id: Option<Uuid>,
    /// Installed state: latest installed release.
    pub latest_installed_id: Option<Uuid>,
    /// Installed state: reboot pending (`false` when never recorded).
    pub reboot_pending: bool,
    /// When the installed state was last recorded.
    pub patch_state_updated_at: Option<DateTime<Utc>>,
    /// The OS build its agent reported.
    pub assessed_os_build: Option<String>,
    /// Available updates of its last assessment.
    pub available_updates: Vec<AvailableUpdate>,
    /// When it was last assessed.
    pub assessed_at: Option<DateTime<Utc>>,
    /// Its agent's last health report.
    pub health: Option<Health>,
    /// The maintenance configuration that applies to it, if any.
    pub configuration: Option<AppliedConfiguration>,
    /// The version of all of the above.
    pub version: StatusVersion,
}

/// A row of the view `machine_status_inputs` (to sqlx, every column of a view may be null).
struct InputsRow {
    id: Option<Uuid>,
    os: Option<String>,
    platform: Option<String>,
    hotpatch_enabled: Option<bool>,
    eligible: Option<bool>,
    preview: Option<bool>,
    enrollment: Option<String>,
    os_build: Option<String>,
    timezone: Option<String>,
    updated_at: Option<DateTime<Utc>>,
    machine_v: Option<String>,
    ps_v: Option<String>,
    current_baseline_id: Option<Uuid>,
    latest_installed_id: Option<Uuid>,
    reboot_pending: Option<bool>,
    ps_updated_at: Option<DateTime<Utc>>,
    inv_v: Option<String>,
    inv_os_build: Option<String>,
    available_updates: Option<serde_json::Value>,
    assessed_at: Option<DateTime<Utc>>,
    has_agent: Option<bool>,
    last_seen_at: Option<DateTime<Utc>>,
    health_reported_at: Option<DateTime<Utc>>,
    health: Option<serde_json::Value>,
    health_md5: Option<String>,
    rollout_id: Option<Uuid>,
    rollout_state: Option<String>,
    install_state: Option<String>,
    batch_index: Option<i32>,
    window_start: Option<DateTime<Utc>>,
    window_end: Option<DateTime<Utc>>,
    attempts: Option<i32>,
    config_id: Option<Uuid>,
    config_body: Option<serde_json::Value>,
    config_rank: Option<i32>,
    catalog_version: Option<i64>,
    maintenance_version: Option<i64>,
}

/// Everything the status of the machines `ids` is computed from, in one statement; machines
/// that do not exist are left out. Order: by id.
pub async fn inputs(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<StatusInputs>, StoreError> {
    sqlx::query_as!(InputsRow, "select * from machine_status_inputs where id = any($1) order by id", ids)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(status_inputs)
        .collect()
}

/// Everything the status of the machine `id` is computed from; `None` when there is no such
/// machine. A statement of its own, not [`inputs`] of one id: with `id = $1` PostgreSQL keeps a
/// generic plan per connection and a poll is not planned again (migration 0014).
pub async fn input(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<StatusInputs>, StoreError> {
    sqlx::query_as!(InputsRow, "select * from machine_status_inputs where id = $1", id)
        .fetch_optional(db)
        .await?
        .map(status_inputs)
        .transpose()
}

/// A column the view's joins never leave null.
fn present<T>(column: &str, v: Option<T>) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Decode(format!("machine_status_inputs.{column} is null")))
}

/// A row of [`inputs`] in domain types; a value that does not decode is `StoreError::Decode`.
fn status_inputs(r: InputsRow) -> Result<StatusInputs, StoreError> {
    let rollout = rollout_of(
        r.rollout_id,
        r.rollout_state,
        r.install_state,
        r.batch_index,
        r.window_start,
        r.window_end,
        r.attempts,
    )?;
    let configuration = match (r.config_id, r.config_body, r.config_rank) {
        (Some(id), Some(body), Some(rank)) => Some(AppliedConfiguration {
            id,
            configuration: crate::maintenance::load(id, body)?,
            matched: crate::maintenance::scope_match(rank)?,
        }),
        _ => None,
    };
    Ok(StatusInputs {
        id: present("id", r.id)?,
        os: parse("os", &present("os", r.os)?)?,
        platform: parse("platform", &present("platform", r.platform)?)?,
        hotpatch_enabled: present("hotpatch_enabled", r.hotpatch_enabled)?,
        eligible: present("eligible", r.eligible)?,
        preview: present("preview", r.preview)?,
        enrollment: r.enrollment.map(|e| parse("enrollment", &e)).transpose()?,
        registered_os_build: r.os_build,
        timezone: parse("timezone", &present("timezone", r.timezone)?)?,
        updated_at: present("updated_at", r.updated_at)?,
        current_baseline_id: r.current_baseline_id,
        latest_installed_id: r.latest_installed_id,
        reboot_pending: r.reboot_pending.unwrap_or(false),
        patch_state_updated_at: r.ps_updated_at,
        assessed_os_build: r.inv_os_build,
        available_updates: r
            .available_updates
            .map(|v| decode("machine_inventory.available_updates", v))
            .transpose()?
            .unwrap_or_default(),
        assessed_at: r.assessed_at,
        health: r.health.map(|v| decode("machine_agent.health", v)).transpose()?,
        configuration,
        version: StatusVersion {
            machine: present("machine_v", r.machine_v)?,
            patch_state: r.ps_v,
            inventory: r.inv_v,
            agent: present("has_agent", r.has_agent)?.then_some(AgentMark {
                last_seen_at: r.last_seen_at,
                health_reported_at: r.health_reported_at,
                health_digest: r.health_md5,
            }),
            rollout,
            catalog_version: present("catalog_version", r.catalog_version)?,
            maintenance_version: present("maintenance_version", r.maintenance_version)?,
        },
    })
}
