//! The publishing rules of the catalog (DESIGN §3 "Release"), as one pure check.
//!
//! The store backs the uniqueness rules with constraints too; this check is what turns a
//! refused release into a problem whose detail names the rule.

use hotpatch_domain::{Kb, Month, OsVersion, Release, ReleaseKind, ReleaseSpec};
use uuid::Uuid;

use super::calendar::CalendarRule;

/// What publishing a release does besides adding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Publication {
    /// The hotpatch of the same OS and month that the new unplanned baseline replaces.
    pub supersedes: Option<Uuid>,
}

/// A publishing rule the new release breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishRuleViolation {
    /// KB numbers are unique in the catalog.
    #[error("rule 'kb unique': {kb} is already in the catalog")]
    KbTaken {
        /// The KB.
        kb: Kb,
    },
    /// One active release per OS and month.
    #[error("rule 'one active release per os and month': {os_name} already has the {kind} {kb} for {month}")]
    MonthTaken {
        /// The OS's wire name.
        os_name: &'static str,
        /// The month.
        month: Month,
        /// The kind of the release already there.
        kind: &'static str,
        /// Its KB.
        kb: Kb,
    },
    /// Planned baselines only in baseline months.
    #[error(
        "rule 'planned baselines only in baseline months': {month} is not a baseline month of {os_name} \
         (baseline months: {baseline_months})"
    )]
    PlannedBaselineOutsideBaselineMonth {
        /// The OS's wire name.
        os_name: &'static str,
        /// The month.
        month: Month,
        /// The OS's baseline months, e.g. `01, 04, 07, 10`.
        baseline_months: String,
    },
    /// An unplanned baseline replaces a hotpatch; a baseline month has its planned baseline.
    #[error(
        "rule 'an unplanned baseline replaces a hotpatch month's hotpatch': {month} is a baseline month \
         of {os_name}; publish its planned baseline"
    )]
    UnplannedBaselineInBaselineMonth {
        /// The OS's wire name.
        os_name: &'static str,
        /// The month.
        month: Month,
    },
    /// Hotpatches are always planned.
    #[error("rule 'only baselines can be unplanned': a hotpatch is always planned")]
    UnplannedHotpatch,
    /// Hotpatches only in the two months after a published baseline of the same OS.
    #[error(
        "rule 'hotpatches only in the two months after a published baseline of the same os': \
         {os_name} has no baseline published for {after} or {before_last}, so nothing for a {month} \
         hotpatch to apply on"
    )]
    HotpatchWithoutBaseline {
        /// The OS's wire name.
        os_name: &'static str,
        /// The hotpatch's month.
        month: Month,
        /// The month before.
        after: String,
        /// Two months before.
        before_last: String,
    },
    /// A hotpatch month of the rule; a baseline month has a baseline.
    #[error(
        "rule 'hotpatches only in the two months after a published baseline of the same os': {month} is \
         a baseline month of {os_name}"
    )]
    HotpatchInBaselineMonth {
        /// The OS's wire name.
        os_name: &'static str,
        /// The month.
        month: Month,
    },
}

impl PublishRuleViolation {
    /// Whether the release conflicts with one already in the catalog (HTTP 409) rather than
    /// being invalid on its own terms against the rules (HTTP 422).
    pub fn is_conflict(&self) -> bool {
        matches!(self, PublishRuleViolation::KbTaken { .. } | PublishRuleViolation::MonthTaken { .. })
    }
}

fn os_name(os: OsVersion) -> &'static str {
    os.into()
}

/// The active release of `os` in `month`, if any.
pub fn active_in(catalog: &[Release], os: OsVersion, month: Month) -> Option<&Release> {
    catalog.iter().find(|r| r.spec.os == os && r.spec.month == month && r.is_active())
}

/// Checks `new` against the catalog and the rule. On success, says which hotpatch (if any) the
/// new release supersedes.
pub fn check_publish(
    catalog: &[Release],
    new: &ReleaseSpec,
    rule: &CalendarRule,
) -> Result<Publication, PublishRuleViolation> {
    let os = new.os;
    if catalog.iter().any(|r| r.spec.kb == new.kb) {
        return Err(PublishRuleViolation::KbTaken { kb: new.kb.clone() });
    }
    let baseline_month = rule.is_baseline_month(os, new.month);
    match (new.kind, new.planned) {
        (ReleaseKind::Hotpatch, false) => return Err(PublishRuleViolation::UnplannedHotpatch),
        (ReleaseKind::Baseline, true) if !baseline_month => {
            let baseline_months =
                rule.baseline_months(os).iter().map(|m| format!("{m:02}")).collect::<Vec<_>>().join(", ");
            return Err(PublishRuleViolation::PlannedBaselineOutsideBaselineMonth {
                os_name: os_name(os),
                month: new.month,
                baseline_months,
            });
        }
        (ReleaseKind::Baseline, false) if baseline_month => {
            return Err(PublishRuleViolation::UnplannedBaselineInBaselineMonth {
                os_name: os_name(os),
                month: new.month,
            });
        }
        (ReleaseKind::Hotpatch, true) if baseline_month => {
            return Err(PublishRuleViolation::HotpatchInBaselineMonth {
                os_name: os_name(os),
                month: new.month,
            });
        }
        (ReleaseKind::Hotpatch, true) => {
            let before = |n: i64| new.month.plus(-n);
            let has_baseline = [before(1), before(2)]
                .into_iter()
                .flatten()
                .any(|m| active_in(catalog, os, m).is_some_and(|r| r.spec.kind == ReleaseKind::Baseline));
            if !has_baseline {
                let name = |m: Option<Month>| m.map(|m| m.to_string()).unwrap_or_default();
                return Err(PublishRuleViolation::HotpatchWithoutBaseline {
                    os_name: os_name(os),
                    month: new.month,
                    after: name(before(1)),
                    before_last: name(before(2)),
                });
            }
        }
        _ => {}
    }
    match active_in(catalog, os, new.month) {
        None => Ok(Publication::default()),
        // An unplanned baseline in a hotpatch month replaces that month's hotpatch, which stays
        // in the catalog marked `superseded_by`.
        Some(existing) if existing.spec.kind == ReleaseKind::Hotpatch && !new.planned => {
            Ok(Publication { supersedes: Some(existing.id) })
        }
        Some(existing) => Err(PublishRuleViolation::MonthTaken {
            os_name: os_name(os),
            month: new.month,
            kind: existing.spec.kind.into(),
            kb: existing.spec.kb.clone(),
        }),
    }
}
