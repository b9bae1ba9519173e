//! Everything one machine's patch status is computed from, for many machines in one statement,
//! decoded into domain types here so that the service computes without parsing.

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

/// One row of [`inputs`], as PostgreSQL returns it.
struct InputsRow {
    id: Uuid,
    os: String,
    platform: String,
    hotpatch_enabled: bool,
    eligible: bool,
    preview: bool,
    enrollment: Option<String>,
    os_build: Option<String>,
    timezone: String,
    updated_at: DateTime<Utc>,
    machine_v: String,
    ps_v: Option<String>,
    current_baseline_id: Option<Uuid>,
    latest_installed_id: Option<Uuid>,
    reboot_pending: Option<bool>,
    ps_updated_at: Option<DateTime<Utc>>,
    inv_v: Option<String>,
    inv_os_build: Option<String>,
    available_updates: Option<serde_json::Value>,
    assessed_at: Option<DateTime<Utc>>,
    has_agent: bool,
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
    catalog_version: i64,
    maintenance_version: i64,
}

/// Everything the status of the machines `ids` is computed from, in one statement; machines
/// that do not exist are left out. Order: by id.
pub async fn inputs(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<StatusInputs>, StoreError> {
    let rows = sqlx::query_as!(
        InputsRow,
        r#"select m.id, m.os, m.platform, m.hotpatch_enabled, m.eligible,
                  coalesce((m.eligibility->>'preview')::boolean, false) as "preview!",
                  m.enrollment, m.os_build, m.timezone, m.updated_at,
                  m.xmin::text as "machine_v!",
                  ps.xmin::text as ps_v, ps.current_baseline_id as "current_baseline_id?",
                  ps.latest_installed_id as "latest_installed_id?",
                  ps.reboot_pending as "reboot_pending?", ps.updated_at as "ps_updated_at?",
                  inv.xmin::text as inv_v, inv.os_build as "inv_os_build?",
                  inv.available_updates as "available_updates?", inv.assessed_at as "assessed_at?",
                  ag.machine_id is not null as "has_agent!", ag.last_seen_at, ag.health_reported_at,
                  ag.health, md5(ag.health::text) as health_md5,
                  ro.rollout_id as "rollout_id?", ro.rollout_state as "rollout_state?", ro.state as "install_state?",
                  ro.batch_index as "batch_index?", ro.window_start as "window_start?",
                  ro.window_end as "window_end?", ro.attempts as "attempts?",
                  mc.id as "config_id?", mc.body as "config_body?", ac.rank as "config_rank?",
                  e.catalog_version, e.maintenance_version
           from machine m
           cross join status_epoch e
           left join machine_patch_state ps on ps.machine_id = m.id
           left join machine_inventory inv on inv.machine_id = m.id
           left join machine_agent ag on ag.machine_id = m.id
           left join lateral (
               select rm.rollout_id, r.state as rollout_state, rm.state, rm.batch_index, rm.window_start,
                      rm.window_end, rm.attempts
               from rollout_machine rm join rollout r on r.id = rm.rollout_id
               where rm.machine_id = m.id and r.state in ('running', 'paused', 'halted')
               order by rm.rollout_id desc limit 1) ro on true
           left join lateral applicable_configuration(m.id, m.labels, m.region) ac on true
           left join maintenance_configuration mc on mc.id = ac.configuration_id
           where m.id = any($1)
           order by m.id"#,
        ids
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(status_inputs).collect()
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
        id: r.id,
        os: parse("os", &r.os)?,
        platform: parse("platform", &r.platform)?,
        hotpatch_enabled: r.hotpatch_enabled,
        eligible: r.eligible,
        preview: r.preview,
        enrollment: r.enrollment.map(|e| parse("enrollment", &e)).transpose()?,
        registered_os_build: r.os_build,
        timezone: parse("timezone", &r.timezone)?,
        updated_at: r.updated_at,
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
            machine: r.machine_v,
            patch_state: r.ps_v,
            inventory: r.inv_v,
            agent: r.has_agent.then_some(AgentMark {
                last_seen_at: r.last_seen_at,
                health_reported_at: r.health_reported_at,
                health_digest: r.health_md5,
            }),
            rollout,
            catalog_version: r.catalog_version,
            maintenance_version: r.maintenance_version,
        },
    })
}
