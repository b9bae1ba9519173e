//! "Install updates now" on one machine (DESIGN §1 "Install updates now"): the request, checked
//! whole into the payload the agent reads, and the warnings that say what the job will do to the
//! machine (it runs at once, outside availability-first rollouts, and may reboot).

use chrono::TimeDelta;
use hotpatch_domain::job::JobKind;
use hotpatch_domain::operation::{Operation, OperationKind};
use hotpatch_domain::payload::{InstallPayload, IsoDuration, RebootSetting};
use hotpatch_domain::{Classification, FieldError, Kb};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::disruptive;
use super::idempotency::{Caller, Request};
use crate::error::AppError;
use crate::App;

/// The shortest and longest `maximum_duration` (what Azure's install-patches accepts).
pub const MIN_DURATION: TimeDelta = TimeDelta::minutes(30);
/// See [`MIN_DURATION`].
pub const MAX_DURATION: TimeDelta = TimeDelta::hours(6);
/// `maximum_duration` when the request gives none.
pub const DEFAULT_DURATION: &str = "PT2H";
/// Most KBs in `kb_include` or `kb_exclude`.
pub const MAX_KBS: usize = 1_000;

/// Said of every install now.
pub const NOT_AVAILABILITY_FIRST: &str =
    "install now does not follow availability-first rollout: this machine \
     is patched at once, outside its maintenance window";

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

/// Installs updates on one machine now: the operation, with `warnings`. It does not follow
/// availability-first rollouts and ignores the machine's maintenance window.
pub async fn install_now(
    app: &App,
    caller: &Caller,
    machine_id: Uuid,
    req: InstallRequest,
) -> Result<Operation, AppError> {
    let payload = check(&req)?;
    let path = format!("/v1/machines/{machine_id}/install");
    let body = serde_json::to_value(&req).map_err(AppError::internal)?;
    let stored = serde_json::json!({ "machine_ids": [machine_id], "install": body });
    let request = Request { kind: OperationKind::Install, path: &path, body: &body, stored: &stored };
    let started =
        disruptive::start(app, caller, (JobKind::Install, machine_id), request, async |_, _| Ok(payload))
            .await?;
    if started.new {
        let operation_id = started.operation.id;
        let reboot = started.payload.reboot;
        tracing::info!(%operation_id, %machine_id, ?reboot, "install now requested");
    }
    let mut operation = started.operation;
    operation.warnings = install_warnings(started.machine.takes_hotpatches(), &started.payload);
    operation.warnings.extend(started.disconnected);
    Ok(operation)
}

/// Every field error of an install request, or the payload it asks for.
pub fn check(req: &InstallRequest) -> Result<InstallPayload, AppError> {
    let mut errors = Vec::new();
    let classifications = classifications(&req.classifications, &mut errors);
    let kb_include = kbs("kb_include", &req.kb_include, &mut errors);
    let kb_exclude = kbs("kb_exclude", &req.kb_exclude, &mut errors);
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
    let maximum_duration = maximum_duration(&req.maximum_duration, &mut errors);
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
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

/// The classifications named, without repeats; an error for each unknown one.
fn classifications(names: &[String], errors: &mut Vec<FieldError>) -> Vec<Classification> {
    let mut out: Vec<Classification> = Vec::new();
    for (i, c) in names.iter().enumerate() {
        match c.parse::<Classification>() {
            Ok(c) if !out.contains(&c) => out.push(c),
            Ok(_) => {}
            Err(_) => {
                let known: Vec<&'static str> = Classification::ALL.iter().map(|c| c.into()).collect();
                errors.push(FieldError::new(
                    format!("classifications[{i}]"),
                    format!(
                        "unknown classification '{}'; must be one of {}",
                        c.escape_debug(),
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    out
}

/// The KBs of `field`, without repeats; an error for each that is not a KB, or for too many.
fn kbs(field: &str, list: &[String], errors: &mut Vec<FieldError>) -> Vec<Kb> {
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
}

/// The job's time limit, within [`MIN_DURATION`] and [`MAX_DURATION`].
fn maximum_duration(text: &str, errors: &mut Vec<FieldError>) -> Option<IsoDuration> {
    match text.parse::<IsoDuration>() {
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
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(r: Result<InstallPayload, AppError>) -> Vec<String> {
        match r {
            Err(AppError::Unprocessable { errors, .. }) => errors.into_iter().map(|e| e.field).collect(),
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
