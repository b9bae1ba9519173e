//! Availability-first rollout plans (DESIGN §1 "Orchestration"): from a release, the machines
//! of a rollout and their maintenance windows, which machines go together, in what order, and
//! when each one is expected to install what.
//!
//! The rules [`plan_rollout`] follows:
//! 1. **Waves of regions.** Regions are taken in order: those of `region_order` as listed, then
//!    the others by name. With a `region_order`, its first region (the canary) is wave 1 on its
//!    own. Every other region, in that order, joins the first wave after the canary's that holds
//!    none of its geo-pairs, or opens a new wave: geo-paired regions never share a wave.
//! 2. **One zone at a time.** A batch holds machines of one region and one availability zone
//!    (machines without a zone are one more group, taken before the zones, which go by name).
//!    Within a wave, regions go one after the other; within a region, zone after zone.
//! 3. **Availability sets** (a set is its name within a region): a batch holds at most
//!    `max(1, ⌊size × min(20, max_batch_percent) / 100⌋)` machines of a set, all of one update
//!    domain; a set of fewer than 10 machines goes one machine at a time. Update domains go in
//!    ascending order within a zone (machines of a set without one are one more domain, taken
//!    first).
//! 4. **Machines outside sets** go in chunks of `max(1, ⌊m × max_batch_percent / 100⌋)`, `m` being
//!    the number of such machines in their region and zone.
//! 5. Batch `k` of a zone takes step `k` of every set of the zone and chunk `k` of the others.
//! 6. **Timing**, as the rollout loop runs them ([`progress`] rule 5): the regions of a wave go
//!    in parallel, each from the wave's start (wave 1 at the plan's `start`), a region's batches
//!    one after the other, batch `k + 1` opening at batch `k`'s planned end; the next wave opens
//!    at the latest end of this one's regions. Each machine takes its first window starting at or
//!    after its batch opens; a batch's planned start and end are the earliest start and latest
//!    end of its machines' windows; a wave ends with its last region; the rollout's expected
//!    finish is the last wave's end. This is conservative (a batch is done when its machines
//!    succeeded, often long before its windows close): the rollout loop advances on results,
//!    not on these times.
//! 7. **What each machine gets** (see [`RolloutMachine`]) follows the cycle engine:
//!    hotpatch, or its baseline first, or the month's cumulative update without hotpatch.
//!
//! Region, zone and set names are compared case-insensitively; regions and zones are written in
//! lower case (a machine's set as given). Waves and batches are numbered from 1, batches across
//! the whole plan. The plan depends on the input's content only, not its order: machines go by
//! region, zone, set, update domain and id. Every input machine is either in exactly one batch
//! or in `unplanned`, with the reason.
//!
//! How a rollout then advances, on its machines' results rather than on these times, is
//! [`progress`]: the rollout loop's decisions as a pure state machine.

mod batches;
mod input;
mod plan;
pub mod progress;
mod waves;

pub use batches::{SET_MAX_PERCENT, SMALL_SET};
pub use input::{PlanWindow, RolloutMachine, RolloutRelease};
// The options moved to the domain (the store reads them without the scheduler); kept here too.
pub use hotpatch_domain::rollout::{
    RolloutError, RolloutOptions, DEFAULT_FAILURE_THRESHOLD_PERCENT, DEFAULT_MAX_BATCH_PERCENT,
};
pub use plan::{plan_rollout, Batch, PlannedMachine, RolloutPlan, Unplanned, UnplannedReason, Wave};
