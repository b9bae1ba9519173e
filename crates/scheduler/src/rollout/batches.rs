//! Batches within a region (rules 2–5 of the module): one zone at a time; per availability set
//! one update domain and at most 20% (or one machine, for a small set) per batch; other machines
//! in chunks of `max_batch_percent` of their zone.

use std::borrow::Cow;
use std::collections::BTreeMap;

use uuid::Uuid;

/// The largest share of an availability set in one batch, in percent (DESIGN §1).
pub const SET_MAX_PERCENT: u32 = 20;
/// Availability sets smaller than this go one machine at a time (DESIGN §1).
pub const SMALL_SET: usize = 10;

/// A name as grouped: ASCII lower case (Azure names are case-insensitive), borrowed when it
/// already is.
pub(super) fn key(name: &str) -> Cow<'_, str> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// A machine as grouped: its id (to order by) and its index in the planner's input.
type Member = (Uuid, usize);

/// The machines of one zone of a region.
#[derive(Debug, Default)]
struct ZoneGroup<'a> {
    /// Availability set → update domain → machines.
    sets: BTreeMap<Cow<'a, str>, BTreeMap<Option<i32>, Vec<Member>>>,
    /// Machines outside sets.
    loose: Vec<Member>,
}

/// The machines of one region to batch, grouped by zone, set and update domain; within each
/// group they go by id. (The planner adds them in input order, which reads the input's names
/// in memory order: adding them by id would jump around memory for every name.)
#[derive(Debug, Default)]
pub(super) struct RegionGroup<'a> {
    /// Zone (none first) → its machines.
    zones: BTreeMap<Option<Cow<'a, str>>, ZoneGroup<'a>>,
    /// Availability set → its size in the region, across zones.
    set_sizes: BTreeMap<Cow<'a, str>, usize>,
}

/// One batch of a region: its zone and machines.
pub(super) struct ZoneBatch<'a> {
    /// The zone (lower case), if any.
    pub zone: Option<Cow<'a, str>>,
    /// The machines (input indices), set after set (by name, each one update domain), then
    /// machines outside sets.
    pub machines: Vec<usize>,
}

/// Most machines of a set of `size` in one batch.
pub(super) fn set_cap(size: usize, max_batch_percent: u32) -> usize {
    if size < SMALL_SET {
        1
    } else {
        percent_of(size, max_batch_percent.min(SET_MAX_PERCENT))
    }
}

/// `⌊count × percent / 100⌋`, at least 1.
pub(super) fn percent_of(count: usize, percent: u32) -> usize {
    (count.saturating_mul(percent as usize) / 100).max(1)
}

impl<'a> RegionGroup<'a> {
    /// Adds machine `id` (input `index`) of `zone`, in availability set `set` and `update_domain`.
    pub(super) fn add(
        &mut self,
        id: Uuid,
        index: usize,
        zone: Option<&'a str>,
        set: Option<&'a str>,
        update_domain: Option<i32>,
    ) {
        let group = self.zones.entry(zone.map(key)).or_default();
        match set {
            Some(set) => {
                let set = key(set);
                *self.set_sizes.entry(set.clone()).or_default() += 1;
                group.sets.entry(set).or_default().entry(update_domain).or_default().push((id, index));
            }
            None => group.loose.push((id, index)),
        }
    }

    /// The region's batches, zone after zone.
    pub(super) fn batches(self, max_batch_percent: u32) -> Vec<ZoneBatch<'a>> {
        let mut out = Vec::new();
        for (zone, mut group) in self.zones {
            group.loose.sort_unstable();
            group.sets.values_mut().flat_map(BTreeMap::values_mut).for_each(|ms| ms.sort_unstable());
            // Each set's steps: its update domains in order, each in chunks of the set's cap.
            let set_steps: Vec<Vec<&[Member]>> = group
                .sets
                .iter()
                .map(|(set, domains)| {
                    let cap = set_cap(self.set_sizes.get(set).copied().unwrap_or(0), max_batch_percent);
                    domains.values().flat_map(|machines| machines.chunks(cap)).collect()
                })
                .collect();
            let loose: Vec<&[Member]> =
                group.loose.chunks(percent_of(group.loose.len(), max_batch_percent)).collect();
            let count = set_steps.iter().map(Vec::len).chain([loose.len()]).max().unwrap_or(0);
            for k in 0..count {
                let mut machines = Vec::new();
                for steps in set_steps.iter().chain([&loose]) {
                    machines.extend(steps.get(k).copied().unwrap_or(&[]).iter().map(|&(_, i)| i));
                }
                out.push(ZoneBatch { zone: zone.clone(), machines });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> Uuid {
        Uuid::from_u128(i as u128)
    }

    #[test]
    fn set_caps_follow_the_twenty_percent_and_small_set_rules() {
        assert_eq!((1..10).map(|n| set_cap(n, 20)).collect::<Vec<_>>(), vec![1; 9]);
        assert_eq!(set_cap(10, 20), 2);
        assert_eq!(set_cap(14, 20), 2);
        assert_eq!(set_cap(15, 20), 3);
        assert_eq!(set_cap(40, 100), 8, "sets never go above 20%");
        assert_eq!(set_cap(40, 10), 4, "a lower max_batch_percent applies to sets too");
        assert_eq!(set_cap(12, 5), 1);
    }

    #[test]
    fn a_zone_batch_takes_one_step_of_every_set_and_one_chunk_of_the_rest() {
        let mut g = RegionGroup::default();
        // Set "a": 3 machines in 2 update domains (small set: one at a time).
        g.add(id(0), 0, Some("1"), Some("a"), Some(0));
        g.add(id(1), 1, Some("1"), Some("a"), Some(1));
        g.add(id(2), 2, Some("1"), Some("A"), Some(0));
        // Five loose machines at 20%: one at a time.
        for i in 3..8 {
            g.add(id(i), i, Some("1"), None, None);
        }
        g.add(id(8), 8, Some("2"), None, None);
        let batches: Vec<(Option<String>, Vec<usize>)> =
            g.batches(20).into_iter().map(|b| (b.zone.map(String::from), b.machines)).collect();
        let z1 = Some("1".to_string());
        assert_eq!(
            batches,
            vec![
                (z1.clone(), vec![0, 3]),
                (z1.clone(), vec![2, 4]),
                (z1.clone(), vec![1, 5]),
                (z1.clone(), vec![6]),
                (z1, vec![7]),
                (Some("2".to_string()), vec![8]),
            ]
        );
    }
}
