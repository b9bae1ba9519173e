//! One rollout (`/rollouts/{id}`): its state, halted reason, counts, and each wave and batch as a
//! progress bar, refreshed live; pause, resume and cancel for operators, offered in the states
//! that allow them (the use case refuses the others with a 409 all the same).

use axum::extract::{Path, State};
use axum::response::Response;
use hotpatch_app::rollouts::{self, CountsView, FailedMachines};
use hotpatch_domain::Role;
use maud::{html, Markup};
use uuid::Uuid;

use super::see_other;
use crate::error::ConsoleError;
use crate::layout::{badge, csrf, live, progress, shell, utc, utc_or_dash, Nav};
use crate::session::{Posted, SignedIn};
use crate::Host;

fn rollout_id(raw: &str) -> Result<Uuid, ConsoleError> {
    raw.parse().map_err(|_| ConsoleError::BadRequest(format!("'{raw}' is not a rollout id")))
}

fn counts_words(c: &CountsView) -> String {
    format!(
        "{} installed, {} failed, {} queued or running, {} waiting for a window, {} canceled; {} healthy, {} unhealthy",
        c.succeeded, c.failed, c.queued, c.pending, c.canceled, c.healthy, c.unhealthy
    )
}

/// How many failed machines the page names; the rest are counted ("and N more"): a page that
/// must stay quick to refresh live, and a list past a screenful that nobody reads.
const FAILED_SHOWN: i64 = 20;

/// The failed machines by name, each a link to its page with the reason it failed, most recent
/// first, then how many more there are.
fn failed_list(f: &FailedMachines) -> Markup {
    let more = f.total - f.items.len() as i64;
    html! {
        ul.failed-machines aria-label="Failed machines" {
            @for m in &f.items {
                li data-machine=(m.machine_id) {
                    a href=(format!("/machines/{}", m.machine_id)) { (m.name) }
                    " (wave " (m.wave) ", batch " (m.batch) ", " (utc(m.failed_at)) ")"
                    @if let Some(e) = &m.error { ": " span.error { (e) } }
                }
            }
            @if more > 0 { li.more { "and " (more) " more" } }
        }
    }
}

/// `GET /rollouts/{id}`.
pub async fn page<H: Host>(
    State(host): State<H>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let id = rollout_id(&id)?;
    let d = rollouts::get(host.app(), id).await?;
    let failed = if d.counts.failed > 0 {
        rollouts::failed_machines(host.app(), id, FAILED_SHOWN).await?
    } else {
        FailedMachines { items: vec![], total: 0 }
    };
    let r = &d.rollout;
    let state = r.state.as_str();
    let controls: Vec<(&str, &str, &str)> = match state {
        "running" => vec![("pause", "Pause", "Pause this rollout? No new batch opens until it is resumed.")],
        "paused" | "halted" => vec![("resume", "Resume", "Resume this rollout?")],
        _ => vec![],
    };
    let body = html! {
        (live("rollout-live", 10, html! {
            dl.facts {
                dt { "State" } dd id="rollout-state" data-state=(state) { (badge(state)) @if r.overdue { " " (badge("overdue")) } }
                @if let Some(reason) = &r.halted_reason { dt { "Halted because" } dd.error role="alert" { (reason) } }
                dt { "Machines" } dd { (r.machine_count) }
                dt { "Progress" } dd { (progress("All machines", d.counts.succeeded, d.counts.failed, d.counts.total)) }
                dt { "In words" } dd { (counts_words(&d.counts)) }
                @if let Some(n) = d.overdue_machines { dt { "Past the deadline" } dd { (n) " machines" } }
                dt { "Next install" } dd { (utc_or_dash(d.next_install_at)) }
                dt { "Expected finish" } dd { (utc_or_dash(r.expected_finish)) }
                dt { "Deadline" } dd { (utc(r.deadline)) }
                dt { "Options" } dd { "batches of at most " (r.options.max_batch_percent) "%, halt above "
                    (r.options.failure_threshold_percent) "% failed" @if !r.options.region_order.is_empty() { ", first " (r.options.region_order.join(", ")) } }
                dt { "Release" } dd { code { (r.release_id) } }
                dt { "Started" } dd { (utc(r.created_at)) @if r.automatic { " (automatic)" } }
                dt { "Finished" } dd { (utc_or_dash(r.finished_at)) }
            }
            @if who.may(Role::Operator) && (!controls.is_empty() || !matches!(state, "succeeded" | "canceled")) {
                div.actions aria-label="Rollout actions" {
                    @for (action, label, question) in &controls {
                        form method="post" action=(format!("/rollouts/{id}/{action}")) data-confirm=(question) {
                            (csrf(&who)) button type="submit" id=(action) { (label) }
                        }
                    }
                    @if !matches!(state, "succeeded" | "canceled") {
                        form method="post" action=(format!("/rollouts/{id}/cancel"))
                            data-confirm="Cancel this rollout? Installs not started are dropped; this cannot be undone." {
                            (csrf(&who)) button.danger type="submit" id="cancel" { "Cancel rollout" }
                        }
                    }
                }
            }
            @if d.counts.failed > 0 {
                p.warn { (d.counts.failed) " machines failed: their installs are retried in their next window when the rollout resumes; "
                    "see each machine's history." }
                (failed_list(&failed))
            }
            @for w in &d.waves {
                section.wave aria-labelledby=(format!("wave-{}", w.wave)) {
                    h2 id=(format!("wave-{}", w.wave)) { "Wave " (w.wave) ": " (w.regions.join(", ")) }
                    (progress(&format!("Wave {}", w.wave), w.counts.succeeded, w.counts.failed, w.counts.total))
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Batch" } th scope="col" { "Where" } th scope="col" { "State" }
                            th scope="col" { "Progress" } th scope="col" .hide-narrow { "Planned" } th scope="col" .hide-narrow { "Next install" } } }
                        tbody { @for b in &w.batches { tr data-batch=(b.index) data-batch-state=(b.state) {
                            td { (b.index) }
                            td { (b.region) @if let Some(z) = &b.zone { " zone " (z) } }
                            td { (badge(&b.state)) }
                            td { (progress(&format!("Batch {}", b.index), b.counts.succeeded, b.counts.failed, b.counts.total)) }
                            td.hide-narrow { (utc(b.planned_start)) " → " (utc(b.planned_end)) }
                            td.hide-narrow { (utc_or_dash(b.next_install_at)) }
                        } } }
                    } }
                }
            }
        }))
    };
    Ok(shell(&format!("Rollout {}", super::operations::short(id)), &who, Nav::Rollouts, body))
}

/// `POST /rollouts/{id}/{pause|resume|cancel}` (operator).
pub async fn control<H: Host>(
    State(host): State<H>,
    Path((id, action)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, ConsoleError> {
    posted.who.require(Role::Operator)?;
    let id = rollout_id(&id)?;
    let app = host.app();
    match action.as_str() {
        "pause" => rollouts::pause(app, id).await?,
        "resume" => rollouts::resume(app, id).await?,
        "cancel" => rollouts::cancel(app, id).await?,
        other => return Err(ConsoleError::BadRequest(format!("'{other}' is not pause, resume or cancel"))),
    };
    Ok(see_other(&format!("/rollouts/{id}")))
}
