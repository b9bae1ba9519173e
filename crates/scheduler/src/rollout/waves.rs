//! Waves of regions: the canary alone first, then each region in the first wave that holds none
//! of its geo-pairs (rule 1 of the module).

use std::collections::{BTreeMap, BTreeSet};

use hotpatch_domain::rollout::RolloutError;

/// Region name as compared: ASCII lower case.
pub(super) fn region_key(region: &str) -> String {
    region.to_ascii_lowercase()
}

/// The geo-pair relation, symmetric, over lower-case region names.
#[derive(Debug, Default)]
pub(super) struct GeoPairs(BTreeMap<String, BTreeSet<String>>);

impl GeoPairs {
    /// The relation from its pairs, in either order; a region may have several pairs.
    pub(super) fn new(pairs: &[(String, String)]) -> Result<GeoPairs, RolloutError> {
        let mut map: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            let (a, b) = (region_key(a), region_key(b));
            if a == b {
                return Err(RolloutError::RegionPairedWithItself(a));
            }
            map.entry(a.clone()).or_default().insert(b.clone());
            map.entry(b).or_default().insert(a);
        }
        Ok(GeoPairs(map))
    }

    /// Whether `a` and `b` are geo-paired.
    pub(super) fn paired(&self, a: &str, b: &str) -> bool {
        self.0.get(a).is_some_and(|set| set.contains(b))
    }
}

/// The waves of `regions` (the rollout's regions, lower case), each a list of regions in order.
///
/// Regions are taken in `order` (lower case, no duplicates, checked by the options), then the
/// rest by name. With an `order`, its first region is the first wave on its own; every other
/// region joins the first later wave without one of its geo-pairs, or opens a new one.
pub(super) fn region_waves<'a>(
    regions: &'a BTreeSet<String>,
    order: &[String],
    pairs: &GeoPairs,
) -> Result<Vec<Vec<&'a str>>, RolloutError> {
    let mut ordered: Vec<&'a str> = Vec::with_capacity(regions.len());
    for name in order {
        let region =
            regions.get(name.as_str()).ok_or_else(|| RolloutError::RegionNotInRollout(name.clone()))?;
        ordered.push(region);
    }
    let listed: BTreeSet<&str> = ordered.iter().copied().collect();
    ordered.extend(regions.iter().map(String::as_str).filter(|r| !listed.contains(r)));

    let mut waves: Vec<Vec<&'a str>> = Vec::new();
    let mut rest = ordered.into_iter();
    let first_free = if order.is_empty() {
        0
    } else {
        waves.extend(rest.next().map(|canary| vec![canary]));
        waves.len()
    };
    for region in rest {
        let fits = |wave: &&mut Vec<&str>| wave.iter().all(|other| !pairs.paired(region, other));
        match waves[first_free..].iter_mut().find(fits) {
            Some(wave) => wave.push(region),
            None => waves.push(vec![region]),
        }
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(p: &[(&str, &str)]) -> GeoPairs {
        let owned: Vec<(String, String)> = p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        GeoPairs::new(&owned).unwrap()
    }

    #[test]
    fn without_an_order_regions_pack_by_name_around_their_pairs() {
        let regions = set(&["eastus", "uksouth", "ukwest", "westeurope", "westus"]);
        let waves =
            region_waves(&regions, &[], &pairs(&[("eastus", "westus"), ("uksouth", "ukwest")])).unwrap();
        assert_eq!(waves, vec![vec!["eastus", "uksouth", "westeurope"], vec!["ukwest", "westus"]]);
    }

    #[test]
    fn the_canary_is_alone_and_listed_regions_come_before_the_others() {
        let regions = set(&["eastus", "uksouth", "ukwest", "westus"]);
        let order = vec!["ukwest".to_string(), "westus".to_string()];
        let waves =
            region_waves(&regions, &order, &pairs(&[("eastus", "westus"), ("uksouth", "ukwest")])).unwrap();
        assert_eq!(waves, vec![vec!["ukwest"], vec!["westus", "uksouth"], vec!["eastus"]]);
    }

    #[test]
    fn an_ordered_region_outside_the_rollout_is_refused() {
        let err = region_waves(&set(&["eastus"]), &["westus".to_string()], &GeoPairs::default()).unwrap_err();
        assert_eq!(err, RolloutError::RegionNotInRollout("westus".into()));
    }
}
