//! Geo-paired regions: data the planner reads to keep pairs out of the same wave.
//!
//! A pair is stored once, in canonical order (`region_a < region_b`, lower case); these functions
//! take the two names in either order and any case. Names are the caller's to validate (the
//! table's checks refuse a malformed name or a region paired with itself).

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::error::StoreError;

/// The two names lower-cased, in canonical order.
fn canonical(a: &str, b: &str) -> (String, String) {
    let (a, b) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Every geo-pair, each once in canonical order, sorted.
pub async fn region_pairs(db: impl PgExecutor<'_>) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query!("select region_a, region_b from region_pair order by region_a, region_b")
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.region_a, r.region_b)).collect())
}

/// Records that `a` and `b` are geo-paired; `false` when they already were.
pub async fn set_region_pair(
    db: impl PgExecutor<'_>,
    a: &str,
    b: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let (a, b) = canonical(a, b);
    let inserted = sqlx::query!(
        "insert into region_pair (region_a, region_b, created_at, updated_at) values ($1, $2, $3, $3)
         on conflict (region_a, region_b) do nothing",
        a,
        b,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Forgets that `a` and `b` are geo-paired; `false` when they were not.
pub async fn remove_region_pair(db: impl PgExecutor<'_>, a: &str, b: &str) -> Result<bool, StoreError> {
    let (a, b) = canonical(a, b);
    let deleted = sqlx::query!("delete from region_pair where region_a = $1 and region_b = $2", a, b)
        .execute(db)
        .await?
        .rows_affected();
    Ok(deleted == 1)
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn a_pair_is_the_same_whatever_the_order_and_case_of_its_names() {
        assert_eq!(canonical("WestUS", " eastus"), ("eastus".into(), "westus".into()));
        assert_eq!(canonical("eastus", "westus"), canonical("westus", "EASTUS"));
    }
}
