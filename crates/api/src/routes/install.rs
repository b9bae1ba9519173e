//! "Install updates now" and rollbacks of one machine (DESIGN §1 "Install updates now", "No
//! automatic rollback"): `POST /v1/machines/{id}/install` and `POST /v1/machines/{id}/rollback`.
//!
//! Each answers 202 with an operation of one job whose payload is the shared
//! [`hotpatch_domain::payload`] type the agent reads, and with warnings that say what the job
//! will do to the machine (it runs at once, outside availability-first rollouts, and may reboot).
//! A machine runs one install, rollback or reboot at a time: the `job_one_active_disruptive`
//! index refuses a second one, answered 409 naming the job in the way. Both accept an
//! `Idempotency-Key` the way "assess now" does.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::TimeDelta;
use hotpatch_domain::job::{JobKind, JobState};
use hotpatch_domain::operation::{Operation, OperationKind};
use hotpatch_domain::payload::{
    InstallPayload, IsoDuration, PlanRelease, RebootSetting, RollbackPayload, RollbackStep,
};
use hotpatch_domain::{Classification, FieldError, Kb, Release};
use hotpatch_scheduler::cycle::{rollback_plan, MachineState, RollbackStep as PlanStep};
use hotpatch_store::installs::{self, JobRef};
use hotpatch_store::jobs::NewJob;
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::operations::{self, Created, NewOperation};
use hotpatch_store::{releases, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Principal};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiPath, OptionalJson};
use crate::routes::operations::{idempotency_key, request_hash};
use crate::AppState;

/// Priority of an install or rollback someone asked for: ahead of every assessment of the machine.
pub const DISRUPTIVE_NOW_PRIORITY: i16 = 20;
/// Claims an install or rollback may take (a lost lease re-queues it; both are idempotent on the
/// agent: installed KBs are skipped, rollback steps re-checked).
pub const MAX_ATTEMPTS: i32 = 3;
/// The shortest and longest `maximum_duration` (what Azure's install-patches accepts).
pub const MIN_DURATION: TimeDelta = TimeDelta::minutes(30);
/// See [`MIN_DURATION`].
pub const MAX_DURATION: TimeDelta = TimeDelta::hours(6);
/// `maximum_duration` when the request gives none.
pub const DEFAULT_DURATION: &str = "PT2H";
/// Most KBs in `kb_include` or `kb_exclude`.
pub const MAX_KBS: usize = 1_000;
/// Per-machine results listed in an operation view (one machine here).
const MAX_RESULTS: i64 = 1_000;

/// Said of every install now.
pub const NOT_AVAILABILITY_FIRST: &str =
    "install now does not follow availability-first rollout: this machine \
     is patched at once, outside its maintenance window";

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(install_now)).routes(routes!(rollback))
}

/// `POST /v1/machines/{id}/install`: what to install now. Every field is optional; no body
/// installs the critical and security updates, within two hours, rebooting if required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstallRequest {
    /// Classifications to install (default `["critical", "security"]`; `[]` with `kb_include`
    /// installs only those KBs).
    #[serde(default = "default_classifications")]
    #[schema(example = json!(["critical", "security"]))]
    pub classifications: Vec<String>,
    /// KBs to install as well, whatever their classification.
    #[serde(default)]
    #[schema(example = json!(["KB5040001"]))]
    pub kb_include: Vec<String>,
    /// KBs never to install.
    #[serde(default)]
    pub kb_exclude: Vec<String>,
    /// Leave out every update that needs a reboot.
    #[serde(default)]
    pub exclude_kbs_requiring_reboot: bool,
    /// The job's time limit, reboot included: ISO 8601, 30 minutes to 6 hours (default `PT2H`).
    #[serde(default = "default_duration")]
    #[schema(example = "PT2H")]
    pub maximum_duration: String,
    /// Whether the machine may reboot (default `if_required`).
    #[serde(default)]
    pub reboot: RebootSetting,
}

impl Default for InstallRequest {
    fn default() -> Self {
        InstallRequest {
            classifications: default_classifications(),
            kb_include: vec![],
            kb_exclude: vec![],
            exclude_kbs_requiring_reboot: false,
            maximum_duration: default_duration(),
            reboot: RebootSetting::default(),
        }
    }
}

fn default_classifications() -> Vec<String> {
    vec!["critical".to_owned(), "security".to_owned()]
}

fn default_duration() -> String {
    DEFAULT_DURATION.to_owned()
}

/// `{}`: the only body `POST /v1/machines/{id}/rollback` accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyObject {}

/// A rollback's operation, with its plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackOperation {
    /// The operation.
    #[serde(flatten)]
    pub operation: Operation,
    /// The steps the agent runs (uninstall the latest release, install the baseline, reboot)
    /// and the OS build after the reboot: the rollback job's payload.
    pub plan: RollbackPayload,
}

fn accepted(body: impl Serialize, id: Uuid) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&format!("/v1/operations/{id}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(body)).into_response())
}

fn to_json(v: &impl Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Every field error of an install request, or the payload it asks for.
pub fn check(req: &InstallRequest) -> Result<InstallPayload, ApiError> {
    let mut errors = Vec::new();
    let mut classifications: Vec<Classification> = Vec::new();
    for (i, c) in req.classifications.iter().enumerate() {
        match c.parse::<Classification>() {
            Ok(c) if !classifications.contains(&c) => classifications.push(c),
            Ok(_) => {}
            Err(_) => {
                let names: Vec<&'static str> = Classification::ALL.iter().map(|c| c.into()).collect();
                errors.push(FieldError::new(
                    format!("classifications[{i}]"),
                    format!(
                        "unknown classification '{}'; must be one of {}",
                        c.escape_debug(),
                        names.join(", ")
                    ),
                ));
            }
        }
    }
    let mut kbs = |field: &str, list: &[String]| -> Vec<Kb> {
        if list.len() > MAX_KBS {
            errors.push(FieldError::new(field, format!("at most {MAX_KBS} KBs")));
            return vec![];
        }
        let mut out: Vec<Kb> = Vec::new();
        for (i, kb) in list.iter().enumerate() {
            match kb.parse::<Kb>() {
                Ok(kb) if !out.contains(&kb) => out.push(kb),
                Ok(_) => {}
                Err(_) => errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    format!("'{}' is not a KB: KB and 6–8 digits, e.g. KB5034123", kb.escape_debug()),
                )),
            }
        }
        out
    };
    let kb_include = kbs("kb_include", &req.kb_include);
    let kb_exclude = kbs("kb_exclude", &req.kb_exclude);
    for (i, kb) in req.kb_exclude.iter().enumerate() {
        if kb.parse::<Kb>().is_ok_and(|kb| kb_include.contains(&kb)) {
            errors.push(FieldError::new(
                format!("kb_exclude[{i}]"),
                format!("{kb} is also in kb_include; a KB cannot be both included and excluded"),
            ));
        }
    }
    if req.classifications.is_empty() && req.kb_include.is_empty() {
        errors.push(FieldError::new(
            "classifications",
            "nothing to install: give at least one classification, or KBs in kb_include",
        ));
    }
    let maximum_duration = match req.maximum_duration.parse::<IsoDuration>() {
        Ok(d) if (MIN_DURATION..=MAX_DURATION).contains(&d.as_delta()) => Some(d),
        Ok(d) => {
            errors.push(FieldError::new(
                "maximum_duration",
                format!("{d} is out of range: 30 minutes to 6 hours (PT30M to PT6H)"),
            ));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                "maximum_duration",
                "must be an ISO 8601 duration such as PT2H or PT1H30M, 30 minutes to 6 hours",
            ));
            None
        }
    };
    if !errors.is_empty() {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        return Err(ApiError::Unprocessable { detail, errors });
    }
    Ok(InstallPayload {
        classifications: Some(classifications),
        kb_include,
        kb_exclude,
        exclude_kbs_requiring_reboot: req.exclude_kbs_requiring_reboot,
        maximum_duration,
        reboot: req.reboot,
        ..InstallPayload::default()
    })
}

/// Whether the machine takes hotpatches: requested, eligible and, on Arc (a preview enabled per
/// machine), confirmed by the machine.
fn takes_hotpatches(m: &Machine) -> bool {
    hotpatch_domain::takes_hotpatches(
        m.spec.hotpatch_enabled,
        m.eligibility.eligible,
        m.spec.platform,
        m.enrollment,
    )
}

/// What an install now will do to the machine, in words.
pub fn install_warnings(hotpatch: bool, p: &InstallPayload) -> Vec<String> {
    let classes = p.effective_classifications();
    let mut out = vec![NOT_AVAILABILITY_FIRST.to_owned()];
    match p.reboot {
        RebootSetting::Always => {
            out.push("the machine may reboot: with reboot always it restarts after the install".to_owned())
        }
        RebootSetting::IfRequired => out.push(
            "the machine may reboot: it restarts if an installed update requires it (reboot if_required)"
                .to_owned(),
        ),
        RebootSetting::Never => {}
    }
    let security = classes.iter().any(|c| matches!(c, Classification::Critical | Classification::Security));
    if !hotpatch && security {
        out.push("hotpatch is not enabled: installing security updates will need a reboot".to_owned());
    }
    let not_hotpatch: Vec<&'static str> = classes
        .iter()
        .filter(|c| !matches!(c, Classification::Critical | Classification::Security))
        .filter(|c| c.default_requires_reboot())
        .map(|c| c.into())
        .collect();
    if !not_hotpatch.is_empty() {
        out.push(format!(
            "{} updates are not covered by hotpatch: installing them needs a reboot",
            not_hotpatch.join(", ")
        ));
    }
    if p.reboot == RebootSetting::Never && !p.exclude_kbs_requiring_reboot {
        out.push(
            "reboot is never: updates that need a reboot are installed and leave a reboot pending until the \
             machine restarts"
                .to_owned(),
        );
    }
    out
}

/// What a rollback will do to the machine, in words.
pub fn rollback_warnings(plan: &RollbackPayload) -> Vec<String> {
    let describe = |r: &PlanRelease| {
        let kind: &'static str = r.kind.into();
        format!("{} ({} {kind})", r.kb, r.month)
    };
    let mut out = vec![
        "rollback does not follow availability-first rollout: this machine is rolled back at once, outside its \
         maintenance window"
            .to_owned(),
    ];
    let what = match (plan.uninstalls(), plan.installs()) {
        (Some(u), Some(b)) => {
            format!(": it uninstalls {}, installs the baseline {}", describe(u), describe(b))
        }
        _ => String::new(),
    };
    out.push(format!(
        "the machine reboots{what} and restarts into build {}",
        match plan.build {
            Some(b) => b.to_string(),
            None => "of its baseline".to_owned(),
        }
    ));
    if let Some(u) = plan.uninstalls() {
        out.push(format!(
            "{} will be offered again: automatic patching or a rollout reinstalls it in a later window unless \
             it is excluded (kb_exclude) or its rollout is paused",
            u.kb
        ));
    }
    out
}

/// Why the machine cannot take another disruptive job now: the job in the way, by id.
async fn blocked(state: &AppState, machine_id: Uuid) -> ApiError {
    let active = match installs::active_disruptive(&state.pool, machine_id).await {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    match active {
        Some(JobRef { id, kind, state: job_state, operation_id, rollout_id, .. }) => {
            let kind: &'static str = kind.into();
            let running = if job_state == JobState::Leased { "running" } else { "queued" };
            let origin = match (operation_id, rollout_id) {
                (_, Some(r)) => format!(" for rollout {r}"),
                (Some(o), None) => format!(" for operation {o}"),
                (None, None) => String::new(),
            };
            ApiError::Conflict(format!(
                "machine {machine_id} already has {kind} job {id} {running}{origin}; one install, rollback or \
                 reboot runs at a time: wait for it to finish"
            ))
        }
        // It ended between the refusal and this look.
        None => ApiError::Conflict(format!(
            "machine {machine_id} had an install, rollback or reboot queued or running; retry"
        )),
    }
}

/// Enqueues the operation's one job, in the caller's transaction; `None` when the machine
/// already has a disruptive job (the transaction is then aborted: drop it).
async fn enqueue(
    tx: &mut PgConnection,
    kind: JobKind,
    machine_id: Uuid,
    operation_id: Uuid,
    payload: serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Uuid>, ApiError> {
    let job = NewJob {
        kind,
        machine_id,
        payload,
        priority: DISRUPTIVE_NOW_PRIORITY,
        run_after: now,
        max_attempts: MAX_ATTEMPTS,
        operation_id: Some(operation_id),
        rollout_id: None,
        now,
    };
    match installs::enqueue_for_operation(tx, &job).await {
        Ok(id) => Ok(Some(id)),
        Err(StoreError::Conflict { constraint, .. }) if constraint == "job_one_active_disruptive" => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Creates the operation, or finds the one an earlier request with the same key made:
/// `(id, true)` when new (the caller enqueues its job), `(id, false)` when replayed. The key used
/// for another request is a 422 `idempotency_key_reused`.
async fn create_operation(
    tx: &mut PgConnection,
    kind: OperationKind,
    principal: Principal,
    key: Option<&str>,
    (path, request): (&str, &serde_json::Value),
    stored: &serde_json::Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Uuid, bool), ApiError> {
    let hash = request_hash(path, request);
    let created = operations::create(
        tx,
        &NewOperation {
            kind,
            request: stored,
            created_by: Some(principal.token_id),
            idempotency: key.map(|k| (k, hash)),
            now,
        },
    )
    .await?;
    match created {
        Created::New(id) => Ok((id, true)),
        Created::Replayed(id) => Ok((id, false)),
        Created::KeyReused(id) => Err(ApiError::IdempotencyKeyReused(format!(
            "Idempotency-Key {:?} was used for another request (operation {id}); use a new key",
            key.unwrap_or_default()
        ))),
    }
}

/// The payload of the job an earlier request with the same key made.
async fn replayed_payload<T: for<'de> Deserialize<'de>>(
    tx: &mut PgConnection,
    operation_id: Uuid,
    machine_id: Uuid,
) -> Result<T, ApiError> {
    let job = installs::operation_job(&mut *tx, operation_id, machine_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("operation {operation_id} has no job")))?;
    serde_json::from_value(job.payload).map_err(|e| {
        ApiError::Internal(format!("payload of job {} of operation {operation_id}: {e}", job.id))
    })
}

/// Install updates on one machine now: 202 with the operation to poll (also in `Location`)
/// and `warnings`. It runs at once: it does not follow availability-first rollouts, ignores the
/// machine's maintenance window, and may reboot the machine (unless `reboot` is `never`).
/// Which updates: the available ones of `classifications`, plus `kb_include`, minus
/// `kb_exclude`, minus those needing a reboot with `exclude_kbs_requiring_reboot`.
#[utoipa::path(post, path = "/v1/machines/{id}/install", tag = "operations", request_body = InstallRequest,
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 403, description = "Not an operator", body = Problem),
        (status = 404, description = "No such machine", body = Problem),
        (status = 409, description = "`conflict`: the machine already has an install, rollback or reboot queued or running (named in `detail`)", body = Problem),
        (status = 422, description = "`validation_failed` (every bad field in `errors`) or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn install_now(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<InstallRequest>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let payload = check(&body)?;
    let now = state.clock.now();
    let path = format!("/v1/machines/{id}/install");
    let request = to_json(&body)?;
    let mut tx = state.pool.begin().await?;
    let machine = machines::get(&mut *tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let stored = serde_json::json!({ "machine_ids": [id], "install": request });
    let (operation_id, new) = create_operation(
        &mut tx,
        OperationKind::Install,
        principal,
        key.as_deref(),
        (&path, &request),
        &stored,
        now,
    )
    .await?;
    let payload = if new {
        if enqueue(&mut tx, JobKind::Install, id, operation_id, to_json(&payload)?, now).await?.is_none() {
            drop(tx);
            return Err(blocked(&state, id).await);
        }
        tracing::info!(%operation_id, machine_id = %id, reboot = ?payload.reboot, "install now requested");
        payload
    } else {
        replayed_payload::<InstallPayload>(&mut tx, operation_id, id).await?
    };
    let mut view = operations::get(&mut tx, operation_id, MAX_RESULTS).await?;
    tx.commit().await?;
    view.warnings = install_warnings(takes_hotpatches(&machine), &payload);
    accepted(view, operation_id)
}

/// The catalog release a plan step names.
fn plan_release(catalog: &[Release], id: Uuid) -> Result<PlanRelease, ApiError> {
    catalog
        .iter()
        .find(|r| r.id == id)
        .map(PlanRelease::from)
        .ok_or_else(|| ApiError::Internal(format!("rollback plan names release {id}, not in the catalog")))
}

/// The rollback plan of the machine's recorded state (its current baseline and latest installed
/// release), with the releases spelled out; a 409 when it cannot be rolled back.
async fn plan_rollback(tx: &mut PgConnection, machine: &Machine) -> Result<RollbackPayload, ApiError> {
    let installed = releases::patch_state(&mut *tx, machine.id).await?;
    let catalog = releases::catalog_of(&mut *tx, machine.spec.os).await?;
    let machine_state = MachineState {
        hotpatch: takes_hotpatches(machine),
        current_baseline: installed.current_baseline,
        latest_installed: installed.latest_installed,
        reboot_pending: installed.reboot_pending,
    };
    let steps = rollback_plan(&machine_state, &catalog).map_err(|refused| {
        ApiError::Conflict(format!("machine {} cannot be rolled back: {refused}", machine.id))
    })?;
    let mut plan = RollbackPayload::default();
    for step in steps {
        plan.steps.push(match step {
            PlanStep::Uninstall { release_id } => {
                RollbackStep::Uninstall { release: plan_release(&catalog, release_id)? }
            }
            PlanStep::Install { release_id } => {
                RollbackStep::Install { release: plan_release(&catalog, release_id)? }
            }
            PlanStep::Reboot => RollbackStep::Reboot,
        });
    }
    plan.build = plan.installs().map(|b| b.build);
    Ok(plan)
}

/// Roll one machine back (there is no automatic rollback): uninstall its latest update, install
/// the last baseline, reboot. 202 with the operation, its `plan` and `warnings`. Refused with 409
/// `conflict` when the machine's recorded state allows no rollback (nothing installed, the
/// latest release unknown, no earlier baseline) or it already has an install, rollback or
/// reboot queued or running. No body (an empty JSON object is accepted too).
#[utoipa::path(post, path = "/v1/machines/{id}/rollback", tag = "operations",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = RollbackOperation),
        (status = 403, description = "Not an operator", body = Problem),
        (status = 404, description = "No such machine", body = Problem),
        (status = 409, description = "`conflict`: nothing to roll back (why, in `detail`), or another install, rollback or reboot is queued or running", body = Problem),
        (status = 422, description = "A body other than `{}`, or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn rollback(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    OptionalJson(EmptyObject {}): OptionalJson<EmptyObject>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let now = state.clock.now();
    let path = format!("/v1/machines/{id}/rollback");
    let request = serde_json::json!({ "machine_ids": [id] });
    let mut tx = state.pool.begin().await?;
    let machine = machines::get(&mut *tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let (operation_id, new) = create_operation(
        &mut tx,
        OperationKind::Rollback,
        principal,
        key.as_deref(),
        (&path, &request),
        &request,
        now,
    )
    .await?;
    let plan = if new {
        let plan = plan_rollback(&mut tx, &machine).await?;
        if enqueue(&mut tx, JobKind::Rollback, id, operation_id, to_json(&plan)?, now).await?.is_none() {
            drop(tx);
            return Err(blocked(&state, id).await);
        }
        tracing::info!(%operation_id, machine_id = %id, "rollback requested");
        plan
    } else {
        replayed_payload::<RollbackPayload>(&mut tx, operation_id, id).await?
    };
    let mut operation = operations::get(&mut tx, operation_id, MAX_RESULTS).await?;
    tx.commit().await?;
    operation.warnings = rollback_warnings(&plan);
    accepted(RollbackOperation { operation, plan }, operation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<InstallPayload, ApiError>) -> Vec<String> {
        match r {
            Err(ApiError::Unprocessable { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn the_default_request_installs_critical_and_security_within_two_hours() {
        let p = check(&InstallRequest::default()).unwrap();
        assert_eq!(p.classifications, Some(vec![Classification::Critical, Classification::Security]));
        assert_eq!(p.maximum_duration.map(|d| d.to_string()).as_deref(), Some("PT2H"));
        assert_eq!(p.reboot, RebootSetting::IfRequired);
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let req = InstallRequest {
            classifications: vec!["security".into(), "hotfixes".into()],
            kb_include: vec!["KB5040001".into(), "5040x".into()],
            kb_exclude: vec!["kb5040001".into()],
            maximum_duration: "PT7H".into(),
            ..InstallRequest::default()
        };
        assert_eq!(
            fields(check(&req)),
            ["classifications[1]", "kb_include[1]", "kb_exclude[0]", "maximum_duration"]
        );
    }

    #[test]
    fn maximum_duration_runs_from_thirty_minutes_to_six_hours() {
        for (d, ok) in [("PT29M", false), ("PT30M", true), ("PT6H", true), ("PT6H1S", false), ("P1D", false)]
        {
            let req = InstallRequest { maximum_duration: d.into(), ..InstallRequest::default() };
            assert_eq!(check(&req).is_ok(), ok, "{d}");
        }
    }

    #[test]
    fn no_classification_and_no_included_kb_is_nothing_to_install() {
        let req = InstallRequest { classifications: vec![], ..InstallRequest::default() };
        assert_eq!(fields(check(&req)), ["classifications"]);
        let req = InstallRequest { classifications: vec![], kb_include: vec!["KB5040001".into()], ..req };
        assert_eq!(check(&req).unwrap().classifications, Some(vec![]));
    }

    #[test]
    fn install_warnings_say_it_is_immediate_and_may_reboot_unless_reboot_is_never() {
        let p = InstallPayload::default();
        let w = install_warnings(true, &p);
        assert_eq!(w[0], NOT_AVAILABILITY_FIRST);
        assert!(w.iter().any(|w| w.contains("may reboot")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains("hotpatch is not enabled")), "{w:?}");
        let never = InstallPayload { reboot: RebootSetting::Never, ..InstallPayload::default() };
        assert!(!install_warnings(true, &never).iter().any(|w| w.contains("may reboot")));
        let w = install_warnings(false, &p);
        assert!(
            w.contains(&"hotpatch is not enabled: installing security updates will need a reboot".to_owned())
        );
        let dotnet = InstallPayload {
            classifications: Some(vec![Classification::Dotnet]),
            ..InstallPayload::default()
        };
        let w = install_warnings(false, &dotnet);
        assert!(!w.iter().any(|w| w.contains("hotpatch is not enabled")), "{w:?}");
        assert!(w.iter().any(|w| w.contains("dotnet updates are not covered by hotpatch")), "{w:?}");
    }
}
