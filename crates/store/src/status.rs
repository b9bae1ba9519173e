//! Patch status at fleet scale: everything one machine's status is computed from, in one
//! statement on the view `machine_status_inputs` (migration 0014); the version of those inputs alone (the cheap check behind `If-None-Match`); the
//! catalog with its version; and the fleet's machines grouped by what their status depends on.
//!
//! A machine's own rows are versioned by their `xmin` (the transaction that wrote the row
//! version this snapshot sees: any write of the row changes it, and a reader never sees two
//! versions written by one transaction). Small values that portals see directly (agent liveness,
//! rollout place) are compared by value, so bookkeeping writes to those rows (the next assessment's
//! schedule, a rollout's health bookkeeping) do not count as changes. The catalog and the
//! maintenance configurations are versioned by the counters of `status_epoch` (migration 0006).

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{AvailableUpdate, Health};
use hotpatch_domain::Release;
use serde::de::DeserializeOwned;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::rollouts::MachineRollout;

/// What an agent shows of itself in a machine's status, as compared for changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMark {
    /// Its last request as stored (a replica may hold a newer mark not yet written).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// When it last reported health.
    pub health_reported_at: Option<DateTime<Utc>>,
    /// MD5 of the last health report as stored (two reports at one instant still differ).
    pub health_digest: Option<String>,
}

/// The version of everything a machine's patch status is computed from, except the clock.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusVersion {
    /// `xmin` of the machine row.
    pub machine: String,
    /// `xmin` of its installed state (`None`: never recorded).
    pub patch_state: Option<String>,
    /// `xmin` of its last assessment (`None`: never assessed).
    pub inventory: Option<String>,
    /// Its agent (`None`: no agent token was ever issued).
    pub agent: Option<AgentMark>,
    /// Its place in its latest unfinished rollout.
    pub rollout: Option<MachineRollout>,
    /// Version of the release catalog.
    pub catalog_version: i64,
    /// Version of the maintenance configurations.
    pub maintenance_version: i64,
}

/// The maintenance configuration that applies to a machine (see `maintenance::for_machine`).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedConfiguration {
    /// Its id.
    pub id: Uuid,
    /// The configuration.
    pub configuration: hotpatch_domain::schedule::MaintenanceConfiguration,
    /// How the machine matched.
    pub matched: hotpatch_domain::schedule::ScopeMatch,
}

/// Everything one machine's patch status is computed from (the catalog apart: see [`catalog`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusInputs {
    /// The machine.
    pub id: Uuid,
    /// Its OS (`machine.os`).
    pub os: String,
    /// Its platform.
    pub platform: String,
    /// Hotpatch requested.
    pub hotpatch_enabled: bool,
    /// Eligible by the rules.
    pub eligible: bool,
    /// Preview (Arc).
    pub preview: bool,
    /// Arc enrollment.
    pub enrollment: Option<String>,
    /// The OS build the operator registered.
    pub registered_os_build: Option<String>,
    /// IANA zone.
    pub timezone: String,
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

fn decode<T: DeserializeOwned>(what: &str, v: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|e| StoreError::Decode(format!("{what}: {e}")))
}

/// The version of one machine's status inputs; `None` when there is no such machine.
/// Primary-key lookups only: the check behind `If-None-Match`.
pub async fn version(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<StatusVersion>, StoreError> {
    let row = sqlx::query!(
        r#"select machine_v as "machine_v!", ps_v, inv_v, has_agent as "has_agent!", last_seen_at,
                  health_reported_at, health_md5, rollout_id, rollout_state, install_state, batch_index,
                  window_start, window_end, attempts, catalog_version as "catalog_version!",
                  maintenance_version as "maintenance_version!"
           from machine_status_inputs where id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let rollout = rollout_of(
        r.rollout_id,
        r.rollout_state,
        r.install_state,
        r.batch_index,
        r.window_start,
        r.window_end,
        r.attempts,
    )?;
    Ok(Some(StatusVersion {
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
    }))
}

#[allow(clippy::too_many_arguments)]
fn rollout_of(
    rollout_id: Option<Uuid>,
    rollout_state: Option<String>,
    state: Option<String>,
    batch_index: Option<i32>,
    window_start: Option<DateTime<Utc>>,
    window_end: Option<DateTime<Utc>>,
    attempts: Option<i32>,
) -> Result<Option<MachineRollout>, StoreError> {
    match (rollout_id, rollout_state, state, batch_index, window_start, window_end, attempts) {
        (
            Some(rollout_id),
            Some(rs),
            Some(s),
            Some(batch_index),
            Some(window_start),
            Some(window_end),
            Some(attempts),
        ) => Ok(Some(MachineRollout {
            rollout_id,
            rollout_state: rs.parse()?,
            state: s.parse()?,
            batch_index,
            window_start,
            window_end,
            attempts,
        })),
        _ => Ok(None),
    }
}

/// Everything the status of the machines `ids` is computed from, in one statement; machines
/// that do not exist are left out. Order: by id.
pub async fn inputs(db: impl PgExecutor<'_>, ids: &[Uuid]) -> Result<Vec<StatusInputs>, StoreError> {
    sqlx::query_as!(InputsRow, "select * from machine_status_inputs where id = any($1) order by id", ids)
        .fetch_all(db)
        .await?
        .into_iter()
        .map(StatusInputs::try_from)
        .collect()
}

/// Everything the status of the machine `id` is computed from; `None` when there is no such
/// machine. A statement of its own, not [`inputs`] of one id: with `id = $1` PostgreSQL keeps a
/// generic plan per connection and a poll is not planned again (migration 0014).
pub async fn input(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<StatusInputs>, StoreError> {
    sqlx::query_as!(InputsRow, "select * from machine_status_inputs where id = $1", id)
        .fetch_optional(db)
        .await?
        .map(StatusInputs::try_from)
        .transpose()
}

/// A row of the view `machine_status_inputs` (every column of a view may be null to sqlx).
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

/// A column the view's joins never leave null.
fn present<T>(column: &str, v: Option<T>) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Decode(format!("machine_status_inputs.{column} is null")))
}

impl TryFrom<InputsRow> for StatusInputs {
    type Error = StoreError;

    fn try_from(r: InputsRow) -> Result<StatusInputs, StoreError> {
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
            os: present("os", r.os)?,
            platform: present("platform", r.platform)?,
            hotpatch_enabled: present("hotpatch_enabled", r.hotpatch_enabled)?,
            eligible: present("eligible", r.eligible)?,
            preview: present("preview", r.preview)?,
            enrollment: r.enrollment,
            registered_os_build: r.os_build,
            timezone: present("timezone", r.timezone)?,
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
}

/// The whole release catalog (every OS; oldest month first) and its version, read in one
/// statement so that the two agree.
pub async fn catalog(db: impl PgExecutor<'_>) -> Result<(i64, Vec<Release>), StoreError> {
    let row = sqlx::query!(
        r#"select e.catalog_version,
                  coalesce((select jsonb_agg(jsonb_build_object(
                                'id', r.id,
                                'spec', jsonb_build_object('os', r.os, 'kind', r.kind, 'planned', r.planned,
                                    'month', r.month, 'kb', r.kb, 'build', r.build, 'released_at', r.released_at),
                                'superseded_by', r.superseded_by)
                            order by r.month, r.released_at, r.id)
                            from release r), '[]'::jsonb) as "releases!"
           from status_epoch e"#
    )
    .fetch_one(db)
    .await?;
    Ok((row.catalog_version, decode("release", row.releases)?))
}

/// How fleet counts are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// One group: the whole fleet.
    Nothing,
    /// By region.
    Region,
    /// By OS.
    Os,
    /// By the value of one label (machines without it: the `None` group).
    Label(String),
}

/// Machines that share everything their summary counts depend on, and how many they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetClass {
    /// The group (`None`: no group, or no such label).
    pub group: Option<String>,
    /// OS.
    pub os: String,
    /// Platform.
    pub platform: String,
    /// Hotpatch requested.
    pub hotpatch_enabled: bool,
    /// Eligible.
    pub eligible: bool,
    /// Arc enrollment.
    pub enrollment: Option<String>,
    /// Installed state: current baseline.
    pub current_baseline_id: Option<Uuid>,
    /// Installed state: latest installed release.
    pub latest_installed_id: Option<Uuid>,
    /// Installed state: reboot pending.
    pub reboot_pending: bool,
    /// Assessed at least once.
    pub assessed: bool,
    /// Its last assessment lists critical or security updates.
    pub recommended_pending: bool,
    /// Machines in this class.
    pub machines: i64,
}

/// The fleet in classes of machines whose summary counts are alike, in one statement (one scan
/// of the machines; the classes are few: machines of a fleet share their states).
pub async fn fleet_classes(
    db: impl PgExecutor<'_>,
    group_by: &GroupBy,
) -> Result<Vec<FleetClass>, StoreError> {
    let (kind, label) = match group_by {
        GroupBy::Nothing => ("", None),
        GroupBy::Region => ("region", None),
        GroupBy::Os => ("os", None),
        GroupBy::Label(k) => ("label", Some(k.as_str())),
    };
    let rows = sqlx::query!(
        r#"select case $1 when 'region' then m.region when 'os' then m.os
                          when 'label' then m.labels->>$2 end as grp,
                  m.os, m.platform, m.hotpatch_enabled, m.eligible, m.enrollment,
                  ps.current_baseline_id as "current_baseline_id?",
                  ps.latest_installed_id as "latest_installed_id?",
                  coalesce(ps.reboot_pending, false) as "reboot_pending!",
                  inv.machine_id is not null as "assessed!",
                  coalesce(inv.available_updates @? '$[*] ? (@.classification == "critical" || @.classification == "security")', false)
                      as "recommended_pending!",
                  count(*) as "machines!"
           from machine m
           left join machine_patch_state ps on ps.machine_id = m.id
           left join machine_inventory inv on inv.machine_id = m.id
           group by 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"#,
        kind,
        label,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FleetClass {
            group: r.grp,
            os: r.os,
            platform: r.platform,
            hotpatch_enabled: r.hotpatch_enabled,
            eligible: r.eligible,
            enrollment: r.enrollment,
            current_baseline_id: r.current_baseline_id,
            latest_installed_id: r.latest_installed_id,
            reboot_pending: r.reboot_pending,
            assessed: r.assessed,
            recommended_pending: r.recommended_pending,
            machines: r.machines,
        })
        .collect())
}
