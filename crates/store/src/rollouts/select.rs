//! What the rollout planner reads from the database, in bulk: the selected machines with their
//! recorded patch state and the maintenance configuration that applies to each (one query), and
//! every maintenance configuration, loaded as its typed value (one query).

use hotpatch_domain::machine::Timezone;
use hotpatch_domain::operation::Selector;
use hotpatch_domain::schedule::MaintenanceConfiguration;
use hotpatch_domain::{Enrollment, OsVersion, PatchOrchestration, Platform};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;

/// One selected machine as the planner needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannerInput {
    /// Identifier.
    pub id: Uuid,
    /// Its OS.
    pub os: OsVersion,
    /// Who drives its updates.
    pub orchestration: PatchOrchestration,
    /// Its platform.
    pub platform: Platform,
    /// Arc preview enrollment.
    pub enrollment: Option<Enrollment>,
    /// Hotpatch switched on by the operator.
    pub hotpatch_enabled: bool,
    /// Allowed by the eligibility rules.
    pub eligible: bool,
    /// Region.
    pub region: String,
    /// Availability zone.
    pub availability_zone: Option<String>,
    /// Availability set.
    pub availability_set: Option<String>,
    /// Update domain.
    pub update_domain: Option<i32>,
    /// Its own time zone.
    pub timezone: Timezone,
    /// Its recorded baseline.
    pub current_baseline: Option<Uuid>,
    /// The latest release it installed.
    pub latest_installed: Option<Uuid>,
    /// A reboot is pending.
    pub reboot_pending: bool,
    /// The maintenance configuration that applies to it (the rule of
    /// [`crate::maintenance::for_machine`]), `None` for its default off-peak window.
    pub configuration_id: Option<Uuid>,
}

fn parse<T: std::str::FromStr>(column: &str, v: &str) -> Result<T, StoreError> {
    v.parse().map_err(|_| StoreError::Decode(format!("machine.{column} holds unknown value '{v}'")))
}

/// The machines `selector` names (in id order, at most `limit`), with their patch state and the
/// configuration that applies to each: a configuration naming the machine beats one matching
/// its labels, which beats one matching its region; among equals the oldest wins.
pub async fn planner_inputs(
    db: impl PgExecutor<'_>,
    selector: &Selector,
    limit: i64,
) -> Result<Vec<PlannerInput>, StoreError> {
    let labels = crate::operations::selector_labels(selector);
    let rows = sqlx::query!(
        r#"select m.id, m.os, m.patch_orchestration, m.platform, m.enrollment, m.hotpatch_enabled,
                  m.eligible, m.region, m.availability_zone, m.availability_set, m.update_domain,
                  m.timezone, s.current_baseline_id as "current_baseline_id?",
                  s.latest_installed_id as "latest_installed_id?",
                  coalesce(s.reboot_pending, false) as "reboot_pending!",
                  c.configuration_id as "configuration_id?"
           from machine m
           left join machine_patch_state s on s.machine_id = m.id
           left join lateral applicable_configuration(m.id, m.labels, m.region) c on true
           where selector_matches(m.id, m.labels, m.region, $1, $2, $3)
           order by m.id limit $4"#,
        selector.machine_ids.as_deref(),
        labels,
        selector.regions.as_deref(),
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(PlannerInput {
                id: r.id,
                os: parse("os", &r.os)?,
                orchestration: parse("patch_orchestration", &r.patch_orchestration)?,
                platform: parse("platform", &r.platform)?,
                enrollment: r.enrollment.as_deref().map(|e| parse("enrollment", e)).transpose()?,
                hotpatch_enabled: r.hotpatch_enabled,
                eligible: r.eligible,
                region: r.region,
                availability_zone: r.availability_zone,
                availability_set: r.availability_set,
                update_domain: r.update_domain,
                timezone: parse("timezone", &r.timezone)?,
                current_baseline: r.current_baseline_id,
                latest_installed: r.latest_installed_id,
                reboot_pending: r.reboot_pending,
                configuration_id: r.configuration_id,
            })
        })
        .collect()
}

/// Every maintenance configuration by id, loaded as the typed value it was stored from. A body
/// that no longer loads (edited outside the service, or written by a version with other rules)
/// is a [`StoreError::Decode`] naming the configuration and every bad field: never skipped,
/// so a plan never silently leaves out the machines it governs.
pub async fn configuration_bodies(
    db: impl PgExecutor<'_>,
) -> Result<Vec<(Uuid, MaintenanceConfiguration)>, StoreError> {
    let rows =
        sqlx::query!("select id, body from maintenance_configuration order by id").fetch_all(db).await?;
    rows.into_iter()
        .map(|r| {
            let configuration = serde_json::from_value(r.body)
                .map_err(|e| StoreError::Decode(format!("stored maintenance configuration {}: {e}", r.id)))?;
            Ok((r.id, configuration))
        })
        .collect()
}
