//! Which machines a configuration applies to, and the precedence rule that picks the one
//! configuration a machine follows when several take it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Which machines a configuration applies to: any listed id, any machine carrying every
/// listed label, any machine in a listed region. Matched when windows are planned, so a
/// machine added later is in scope too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Machines named explicitly (strongest match).
    #[serde(default)]
    pub machine_ids: Vec<Uuid>,
    /// Labels a machine must all carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Regions (weakest match).
    #[serde(default)]
    pub regions: Vec<String>,
}

/// How the machine is in the configuration's scope.
// Strongest first: the order is the precedence (`Ord`). Shown as `matched_by` next to a
// window, under the OpenAPI name the document has always used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = MatchedBy)]
pub enum ScopeMatch {
    /// Its id is listed.
    MachineId,
    /// It carries every label of the scope (a scope with labels).
    Label,
    /// Its region is listed.
    Region,
}

impl Scope {
    /// How a machine with this id, these labels and this region is in the scope, the strongest
    /// way when several hold; `None` when it is not. An empty label set matches no machine
    /// (it would match them all).
    pub fn matches(
        &self,
        machine_id: Uuid,
        labels: &BTreeMap<String, String>,
        region: &str,
    ) -> Option<ScopeMatch> {
        if self.machine_ids.contains(&machine_id) {
            Some(ScopeMatch::MachineId)
        } else if !self.labels.is_empty() && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            Some(ScopeMatch::Label)
        } else if self.regions.iter().any(|r| r == region) {
            Some(ScopeMatch::Region)
        } else {
            None
        }
    }
}

/// A configuration competing for a machine: what the precedence rule reads of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// The configuration's id (the last tie-breaker).
    pub id: Uuid,
    /// When it was created (the oldest wins among equal matches).
    pub created_at: DateTime<Utc>,
    /// Its scope.
    pub scope: &'a Scope,
}

/// The configuration that governs a machine, and how it matched; `None` when no candidate's
/// scope takes the machine (it keeps its default off-peak window).
///
/// A configuration naming the machine beats one whose labels it all carries, which beats one
/// listing its region ([`ScopeMatch`]'s order); among equals the oldest `created_at` wins,
/// then the smallest id.
pub fn applicable_configuration<'a>(
    machine_id: Uuid,
    labels: &BTreeMap<String, String>,
    region: &str,
    candidates: impl IntoIterator<Item = Candidate<'a>>,
) -> Option<(Candidate<'a>, ScopeMatch)> {
    candidates
        .into_iter()
        .filter_map(|c| c.scope.matches(machine_id, labels, region).map(|how| (c, how)))
        .min_by_key(|(c, how)| (*how, c.created_at, c.id))
}
