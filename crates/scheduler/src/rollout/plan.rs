//! The plan and its types: waves of batches of machines, each with its window (rules 6–7 of the
//! module), and the machines left out.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hotpatch_domain::rollout::{RolloutError, RolloutOptions};
use hotpatch_domain::ReleaseKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::batches::{key, RegionGroup, ZoneBatch};
use super::input::{decide, Decision, PlanWindow, RolloutMachine, RolloutRelease};
use super::waves::{region_waves, GeoPairs};
use crate::cycle::CycleKind;

/// A rollout plan: what each machine installs, in which batch, in which window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// The release rolled out.
    pub release_id: Uuid,
    /// When the first batch may open.
    pub start: DateTime<Utc>,
    /// The options the plan was made with.
    pub options: RolloutOptions,
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// When the last batch's last window ends; `None` when nothing is planned.
    pub expected_finish: Option<DateTime<Utc>>,
    /// The machines left out, by id, with the reason.
    pub unplanned: Vec<Unplanned>,
}

/// A wave: regions that may be patched in the same stretch, none geo-paired with another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// Position of the wave, from 1.
    pub index: usize,
    /// Its regions (lower case), in the order their batches go.
    pub regions: Vec<String>,
    /// Start of its first batch.
    pub planned_start: DateTime<Utc>,
    /// End of its last batch.
    pub planned_end: DateTime<Utc>,
    /// Its batches, in order.
    pub batches: Vec<Batch>,
}

/// A batch: machines of one region and one zone that may install at the same time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Position of the batch in the whole plan, from 1.
    pub index: usize,
    /// The region (lower case).
    pub region: String,
    /// The availability zone (lower case), if the machines have one.
    pub zone: Option<String>,
    /// The earliest window start of its machines.
    pub planned_start: DateTime<Utc>,
    /// The latest window end of its machines: the next batch opens then.
    pub planned_end: DateTime<Utc>,
    /// Its machines: set after set by name (each one update domain), then machines outside sets;
    /// by id within each.
    pub machines: Vec<PlannedMachine>,
}

/// What one machine installs and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMachine {
    /// The machine.
    pub machine_id: Uuid,
    /// How it installs: `hotpatch`, `baseline` (a machine off the hotpatch's baseline gets that
    /// first) or `cumulative_update` (hotpatch off or not eligible).
    pub install: CycleKind,
    /// What it installs: the rollout's release, or the baseline it needs first.
    pub release_id: Uuid,
    /// Whether it reboots (baselines, cumulative updates, or a reboot already pending).
    pub reboot: bool,
    /// Its availability set, as given.
    pub availability_set: Option<String>,
    /// Its update domain, when it is in a set.
    pub update_domain: Option<i32>,
    /// Start of its planned window.
    pub window_start: DateTime<Utc>,
    /// End of its planned window.
    pub window_end: DateTime<Utc>,
}

/// A machine left out of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unplanned {
    /// The machine.
    pub machine_id: Uuid,
    /// Why.
    pub reason: UnplannedReason,
}

/// Why a machine is left out of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnplannedReason {
    /// It already installed the release.
    AlreadyInstalled,
    /// It runs another OS than the release's.
    OtherOs,
    /// Another orchestrator drives its updates; the control plane only assesses it.
    NotAutomaticByPlatform,
    /// It has no maintenance window starting at or after its batch opens, within the window
    /// source's horizon.
    NoWindow,
}

/// Plans the rollout of `release` to `machines` from `start`, by the rules of the module.
///
/// `region_pairs` lists the geo-pairs (in either order); `windows(machine, from)` answers the
/// machine's first maintenance window starting at or after `from` (not one in progress: see
/// [`PlanWindow::first_of_schedule`]), or `None` when it has none within the caller's horizon
/// (the machine is then `unplanned` with `no_window`). A window that starts before `from` or is
/// empty is refused with [`RolloutError::InvalidWindow`].
pub fn plan_rollout(
    release: &RolloutRelease,
    machines: &[RolloutMachine],
    region_pairs: &[(String, String)],
    options: &RolloutOptions,
    start: DateTime<Utc>,
    windows: impl Fn(&RolloutMachine, DateTime<Utc>) -> Option<PlanWindow>,
) -> Result<RolloutPlan, RolloutError> {
    options.validate()?;
    if release.kind == ReleaseKind::Hotpatch && release.baseline_id.is_none() {
        return Err(RolloutError::HotpatchWithoutBaseline(release.id));
    }
    let pairs = GeoPairs::new(region_pairs)?;
    refuse_duplicates(machines)?;

    let Grouped { installs, all_regions, mut regions, mut unplanned } = group(release, machines);
    let order = listed_regions(&options.region_order, &all_regions, &regions)?;
    let names: BTreeSet<String> = regions.keys().map(|r| r.to_string()).collect();

    let mut placing = Placing {
        machines,
        installs: &installs,
        windows: &windows,
        unplanned: &mut unplanned,
        max_batch_percent: options.max_batch_percent,
        cursor: start,
        batch_count: 0,
    };
    let mut waves: Vec<Wave> = Vec::new();
    for wave_regions in region_waves(&names, &order, &pairs)? {
        if let Some(wave) = placing.wave(waves.len() + 1, wave_regions, &mut regions)? {
            waves.push(wave);
        }
    }

    unplanned.sort_unstable_by_key(|u| u.machine_id);
    let expected_finish = waves.iter().map(|w| w.planned_end).max();
    Ok(RolloutPlan {
        release_id: release.id,
        start,
        options: options.clone(),
        waves,
        expected_finish,
        unplanned,
    })
}

/// Refuses a machine given twice.
fn refuse_duplicates(machines: &[RolloutMachine]) -> Result<(), RolloutError> {
    // Ids sorted next to their index (sorting through the index would jump around memory).
    let mut ids: Vec<(Uuid, usize)> = machines.iter().enumerate().map(|(i, m)| (m.machine_id, i)).collect();
    ids.sort_unstable();
    match ids.windows(2).find(|w| w[0].0 == w[1].0) {
        Some(w) => Err(RolloutError::DuplicateMachine(w[0].0)),
        None => Ok(()),
    }
}

/// The regions of the options' `region_order` (lower case) that have machines to install; a
/// listed region the rollout does not reach at all is refused.
fn listed_regions(
    region_order: &[String],
    all_regions: &BTreeSet<Cow<'_, str>>,
    regions: &BTreeMap<Cow<'_, str>, RegionGroup<'_>>,
) -> Result<Vec<String>, RolloutError> {
    let mut order = Vec::with_capacity(region_order.len());
    for name in region_order {
        let name = key(name);
        if !all_regions.contains(&name) {
            return Err(RolloutError::RegionNotInRollout(name.into_owned()));
        }
        // A listed region with nothing to install gives its place to the next one.
        if regions.contains_key(&name) {
            order.push(name.into_owned());
        }
    }
    Ok(order)
}

/// The state of placing waves one after another: each wave opens when the previous one's last
/// window ends (`cursor`), and batches are numbered across the plan.
struct Placing<'m, 'p, W> {
    machines: &'m [RolloutMachine],
    installs: &'p [Option<(CycleKind, Uuid, bool)>],
    windows: &'p W,
    unplanned: &'p mut Vec<Unplanned>,
    max_batch_percent: u32,
    cursor: DateTime<Utc>,
    batch_count: usize,
}

impl<W: Fn(&RolloutMachine, DateTime<Utc>) -> Option<PlanWindow>> Placing<'_, '_, W> {
    /// Wave `index` of `wave_regions`, their groups taken out of `regions`; `None` when none of
    /// its machines has a window.
    fn wave(
        &mut self,
        index: usize,
        wave_regions: Vec<&str>,
        regions: &mut BTreeMap<Cow<'_, str>, RegionGroup<'_>>,
    ) -> Result<Option<Wave>, RolloutError> {
        let (mut batches, mut wave_names) = (Vec::new(), Vec::new());
        // Every region of the wave starts when the wave does (the rollout loop opens them
        // together); its own batches follow one another.
        let wave_start = self.cursor;
        let mut wave_end = wave_start;
        for region in wave_regions {
            let Some(group) = regions.remove(region) else { continue };
            let before = batches.len();
            let mut cursor = wave_start;
            for zone_batch in group.batches(self.max_batch_percent) {
                if let Some(batch) = self.batch(region, zone_batch, cursor)? {
                    cursor = batch.planned_end;
                    batches.push(batch);
                }
            }
            if batches.len() > before {
                wave_names.push(region.to_owned());
                wave_end = wave_end.max(cursor);
            }
        }
        let Some(planned_start) = batches.iter().map(|b| b.planned_start).min() else { return Ok(None) };
        self.cursor = wave_end;
        Ok(Some(Wave { index, regions: wave_names, planned_start, planned_end: wave_end, batches }))
    }

    /// The batch of one zone of `region`, its machines in their first windows at or after `from`;
    /// `None` when none of its machines has a window.
    fn batch(
        &mut self,
        region: &str,
        zone_batch: ZoneBatch<'_>,
        from: DateTime<Utc>,
    ) -> Result<Option<Batch>, RolloutError> {
        let planned =
            place(self.machines, &zone_batch.machines, self.installs, from, self.windows, self.unplanned)?;
        let (Some(first), Some(last)) =
            (planned.iter().map(|p| p.window_start).min(), planned.iter().map(|p| p.window_end).max())
        else {
            return Ok(None);
        };
        self.batch_count += 1;
        Ok(Some(Batch {
            index: self.batch_count,
            region: region.to_owned(),
            zone: zone_batch.zone.map(Cow::into_owned),
            planned_start: first,
            planned_end: last,
            machines: planned,
        }))
    }
}

/// What each machine does, with the machines to install grouped by region.
struct Grouped<'a> {
    /// Per input index: how, what and whether it reboots, for the machines that install.
    installs: Vec<Option<(CycleKind, Uuid, bool)>>,
    /// Every region of the input (lower case).
    all_regions: BTreeSet<Cow<'a, str>>,
    /// The machines that install, by region.
    regions: BTreeMap<Cow<'a, str>, RegionGroup<'a>>,
    /// The machines left out so far.
    unplanned: Vec<Unplanned>,
}

/// Decides what each machine does and groups those that install. Reads the machines in input
/// order, so their names are read in memory order.
fn group<'a>(release: &RolloutRelease, machines: &'a [RolloutMachine]) -> Grouped<'a> {
    let mut g = Grouped {
        installs: vec![None; machines.len()],
        all_regions: BTreeSet::new(),
        regions: BTreeMap::new(),
        unplanned: Vec::new(),
    };
    for (i, m) in machines.iter().enumerate() {
        let region = key(&m.region);
        g.all_regions.insert(region.clone());
        match decide(release, m) {
            Decision::Skip(reason) => g.unplanned.push(Unplanned { machine_id: m.machine_id, reason }),
            Decision::Install { kind, release_id, reboot } => {
                g.installs[i] = Some((kind, release_id, reboot));
                let set = m.availability_set.as_deref();
                let domain = set.and(m.update_domain);
                let zone = m.availability_zone.as_deref();
                g.regions.entry(region).or_default().add(m.machine_id, i, zone, set, domain);
            }
        }
    }
    g
}

/// The machines of one batch (`indices`) with their first window at or after `from`; those
/// without one go to `unplanned`.
fn place(
    machines: &[RolloutMachine],
    indices: &[usize],
    installs: &[Option<(CycleKind, Uuid, bool)>],
    from: DateTime<Utc>,
    windows: &impl Fn(&RolloutMachine, DateTime<Utc>) -> Option<PlanWindow>,
    unplanned: &mut Vec<Unplanned>,
) -> Result<Vec<PlannedMachine>, RolloutError> {
    let mut planned = Vec::with_capacity(indices.len());
    for &i in indices {
        let m = &machines[i];
        let Some((install, release_id, reboot)) = installs[i] else { continue };
        let Some(w) = windows(m, from) else {
            unplanned.push(Unplanned { machine_id: m.machine_id, reason: UnplannedReason::NoWindow });
            continue;
        };
        if w.start < from || w.end <= w.start {
            return Err(RolloutError::InvalidWindow {
                machine_id: m.machine_id,
                from,
                start: w.start,
                end: w.end,
            });
        }
        planned.push(PlannedMachine {
            machine_id: m.machine_id,
            install,
            release_id,
            reboot,
            availability_set: m.availability_set.clone(),
            update_domain: m.availability_set.as_ref().and(m.update_domain),
            window_start: w.start,
            window_end: w.end,
        });
    }
    Ok(planned)
}
