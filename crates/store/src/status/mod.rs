//! Patch status at fleet scale: everything one machine's status is computed from, in one
//! statement ([`mod@inputs`]); the version of those inputs alone (the cheap check behind
//! `If-None-Match`); the catalog with its version; and the fleet's machines grouped by what their
//! status depends on ([`fleet`]).
//!
//! A machine's own rows are versioned by their `xmin` (the transaction that wrote the row
//! version this snapshot sees: any write of the row changes it, and a reader never sees two
//! versions written by one transaction). Small values that portals see directly (agent liveness,
//! rollout place) are compared by value, so bookkeeping writes to those rows (the next assessment's
//! schedule, a rollout's health bookkeeping) do not count as changes. The catalog and the
//! maintenance configurations are versioned by the counters of `status_epoch` (migration 0006).

pub mod fleet;
pub mod inputs;

use chrono::{DateTime, Utc};
use hotpatch_domain::Release;
use serde::de::DeserializeOwned;
use sqlx::PgExecutor;
use uuid::Uuid;

pub use fleet::{fleet_classes, FleetClass, GroupBy};
pub use inputs::{input, inputs, AppliedConfiguration, StatusInputs};

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
