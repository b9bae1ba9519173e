//! Planning a rollout: the release, the selected machines and their windows, read in bulk (the
//! selected machines with their patch state and governing configuration in one query, every
//! maintenance configuration once, the geo-pairs), then the pure planner
//! ([`hotpatch_scheduler::rollout::plan_rollout`]).
//!
//! Maintenance configurations are loaded as the typed values they were stored from
//! ([`MaintenanceConfiguration`]) and turned into the window engine's schedules without further
//! checks ([`Schedule::of_configuration`]). One that no longer loads is an internal error, never
//! a reason to leave machines out.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::operation::Selector;
use hotpatch_domain::rollout::{RolloutError, RolloutOptions};
use hotpatch_domain::schedule::MaintenanceConfiguration;
use hotpatch_domain::Release;
use hotpatch_scheduler::cycle::MachineState;
use hotpatch_scheduler::rollout::{plan_rollout, PlanWindow, RolloutMachine, RolloutPlan, RolloutRelease};
use hotpatch_scheduler::windows::Schedule;
use hotpatch_store::releases;
use hotpatch_store::rollouts::{self, PlannerInput};
use sqlx::PgConnection;
use uuid::Uuid;

use super::DEADLINE_DAYS;
use crate::error::{AppError, OrNotFound};
use crate::selector;
use crate::App;

/// A plan and what the views need besides it.
pub struct Planned {
    /// The plan.
    pub plan: RolloutPlan,
    /// Release + 30 days.
    pub deadline: DateTime<Utc>,
    /// Machines the selector named.
    pub selected: usize,
    /// The schedules machines follow.
    pub schedules: Vec<Schedule>,
    /// Each machine's schedule, by index.
    pub schedule_of: HashMap<Uuid, usize>,
}

impl Planned {
    /// Whether no machine installs anything (every selected one was left out).
    pub fn installs_nothing(&self) -> bool {
        self.plan.waves.iter().all(|w| w.batches.is_empty())
    }
}

/// The planner's refusal: request mistakes are invalid naming the field, a superseded release a
/// conflict, a window source's bug internal.
pub fn refused(e: RolloutError) -> AppError {
    match e {
        RolloutError::ReleaseSuperseded { .. } => AppError::Conflict(e.to_string()),
        RolloutError::InvalidWindow { .. } => AppError::Internal(e.to_string()),
        e => AppError::Unprocessable { detail: e.to_string(), errors: vec![e.field_error()] },
    }
}

/// Plans the rollout of `release_id` to the machines of `selector` from `start`. A selector
/// that names no machine is invalid (`selector: names no machine`).
pub async fn plan(
    app: &App,
    conn: &mut PgConnection,
    release_id: Uuid,
    selector: &Selector,
    options: RolloutOptions,
    start: DateTime<Utc>,
) -> Result<Planned, AppError> {
    plan_selected(app, conn, release_id, selector, options, start)
        .await?
        .ok_or_else(|| AppError::field("selector", "names no machine"))
}

/// Plans the rollout of `release_id` to the machines of `selector` from `start`; `None` when the
/// selector names no machine, the one outcome that means "nothing to roll out" (every other
/// refusal or failure is an error).
pub async fn plan_selected(
    app: &App,
    conn: &mut PgConnection,
    release_id: Uuid,
    selector: &Selector,
    options: RolloutOptions,
    start: DateTime<Utc>,
) -> Result<Option<Planned>, AppError> {
    options.validate().map_err(refused)?;
    selector::check_sizes(selector, "selector")?;
    let release = releases::get(&mut *conn, release_id)
        .await
        .or_not_found(|| format!("no release with id {release_id}"))?
        .release;
    let catalog = releases::catalog_of(&mut *conn, release.spec.os).await?;
    let target = RolloutRelease::from_catalog(&release, &catalog).map_err(refused)?;
    let Some(inputs) = selected_machines(conn, selector, app.settings.max_selected).await? else {
        return Ok(None);
    };
    let configurations = configurations(&mut *conn).await?;
    let pairs = rollouts::region_pairs(&mut *conn).await?;
    let machines = Machines::new(app, &inputs, &configurations);
    let (plan, machines) = run_planner(target, machines, pairs, options, start).await?;
    Ok(Some(Planned {
        plan,
        deadline: deadline(&release),
        selected: inputs.len(),
        schedules: machines.schedules,
        schedule_of: machines.schedule_of,
    }))
}

/// When automatic installs of `release` must be done.
pub fn deadline(release: &Release) -> DateTime<Utc> {
    release.spec.released_at + TimeDelta::days(DEADLINE_DAYS)
}

/// The machines `selector` names, each known; `None` when it names none.
async fn selected_machines(
    conn: &mut PgConnection,
    selector: &Selector,
    max: usize,
) -> Result<Option<Vec<PlannerInput>>, AppError> {
    selector::check_known(&mut *conn, selector, "selector").await?;
    let inputs = rollouts::planner_inputs(&mut *conn, selector, selector::read_limit(max)).await?;
    if inputs.is_empty() {
        return Ok(None);
    }
    selector::check_count(inputs.len(), max)?;
    Ok(Some(inputs))
}

/// Every maintenance configuration by id, as stored (read once per plan). One that no longer
/// loads fails the plan: skipping it would plan its machines in the wrong windows.
async fn configurations(
    conn: &mut PgConnection,
) -> Result<HashMap<Uuid, MaintenanceConfiguration>, AppError> {
    Ok(rollouts::configuration_bodies(conn).await?.into_iter().collect())
}

/// The planner's machines and the schedules they follow.
struct Machines {
    /// The machines as the planner reads them.
    machines: Vec<RolloutMachine>,
    /// Distinct schedules (machines share them).
    schedules: Vec<Schedule>,
    /// Each machine's schedule, by index.
    schedule_of: HashMap<Uuid, usize>,
}

impl Machines {
    /// Each machine with its state and its schedule: its configuration's, on the configuration's
    /// zone or else its own; without one, the server's daily off-peak window in its own zone.
    fn new(
        app: &App,
        inputs: &[PlannerInput],
        configurations: &HashMap<Uuid, MaintenanceConfiguration>,
    ) -> Machines {
        // One schedule per (configuration, zone it runs in): machines share them.
        let mut index: HashMap<(Option<Uuid>, &'static str), usize> = HashMap::new();
        let mut out = Machines {
            machines: Vec::with_capacity(inputs.len()),
            schedules: Vec::new(),
            schedule_of: HashMap::with_capacity(inputs.len()),
        };
        for m in inputs {
            let own = m.timezone.0;
            let configuration = m.configuration_id.and_then(|id| configurations.get(&id).map(|c| (id, c)));
            let zone = configuration.and_then(|(_, c)| c.timezone()).map_or(own, |tz| tz.0);
            let key = (configuration.map(|(id, _)| id), zone.name());
            let i = *index.entry(key).or_insert_with(|| {
                out.schedules.push(match configuration {
                    Some((_, c)) => Schedule::of_configuration(c, own),
                    None => Schedule::daily_off_peak(
                        own,
                        app.settings.off_peak_start,
                        app.settings.off_peak_duration,
                    ),
                });
                out.schedules.len() - 1
            });
            out.schedule_of.insert(m.id, i);
            out.machines.push(rollout_machine(m));
        }
        out
    }
}

/// A selected machine as the planner reads it.
fn rollout_machine(m: &PlannerInput) -> RolloutMachine {
    RolloutMachine {
        machine_id: m.id,
        os: m.os,
        orchestration: m.orchestration,
        region: m.region.clone(),
        availability_zone: m.availability_zone.clone(),
        availability_set: m.availability_set.clone(),
        update_domain: m.update_domain,
        state: MachineState {
            // The rule of the patch status: switched on, eligible, and for Arc enrolled.
            hotpatch: hotpatch_domain::takes_hotpatches(
                m.hotpatch_enabled,
                m.eligible,
                m.platform,
                m.enrollment,
            ),
            current_baseline: m.current_baseline,
            latest_installed: m.latest_installed,
            reboot_pending: m.reboot_pending,
        },
    }
}

/// The pure planner over the machines' schedules; the machines come back for their schedules.
async fn run_planner(
    target: RolloutRelease,
    machines: Machines,
    pairs: Vec<(String, String)>,
    options: RolloutOptions,
    start: DateTime<Utc>,
) -> Result<(RolloutPlan, Machines), AppError> {
    // Planning 100,000 machines is CPU work: off the async workers.
    let (plan, machines) = tokio::task::spawn_blocking(move || {
        let windows = |m: &RolloutMachine, from: DateTime<Utc>| {
            let schedule = &machines.schedules[*machines.schedule_of.get(&m.machine_id)?];
            PlanWindow::first_of_schedule(schedule, from)
        };
        let plan = plan_rollout(&target, &machines.machines, &pairs, &options, start, windows);
        (plan, machines)
    })
    .await
    .map_err(|e| AppError::internal(format!("rollout planning: {e}")))?;
    Ok((plan.map_err(refused)?, machines))
}
