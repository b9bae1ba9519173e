//! The fleet in classes of machines that share everything their summary counts depend on, so
//! the service judges each class once instead of each machine.

use hotpatch_domain::{Enrollment, OsVersion, Platform};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::error::StoreError;
use crate::machines::parse;

/// How fleet counts are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// One group: the whole fleet.
    Nothing,
    /// By region.
    Region,
    /// By OS.
    Os,
    /// By the value of one label (machines without it: the `None` group).
    Label(String),
}

/// Machines that share everything their summary counts depend on, and how many they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetClass {
    /// The group (`None`: no group, or no such label).
    pub group: Option<String>,
    /// OS.
    pub os: OsVersion,
    /// Platform.
    pub platform: Platform,
    /// Hotpatch requested.
    pub hotpatch_enabled: bool,
    /// Eligible.
    pub eligible: bool,
    /// Arc enrollment.
    pub enrollment: Option<Enrollment>,
    /// Installed state: current baseline.
    pub current_baseline_id: Option<Uuid>,
    /// Installed state: latest installed release.
    pub latest_installed_id: Option<Uuid>,
    /// Installed state: reboot pending.
    pub reboot_pending: bool,
    /// Assessed at least once.
    pub assessed: bool,
    /// Its last assessment lists a recommended update (as the service decided when it recorded it).
    pub recommended_pending: bool,
    /// Machines in this class.
    pub machines: i64,
}

/// One row of [`fleet_classes`], as PostgreSQL returns it.
struct ClassRow {
    grp: Option<String>,
    os: String,
    platform: String,
    hotpatch_enabled: bool,
    eligible: bool,
    enrollment: Option<String>,
    current_baseline_id: Option<Uuid>,
    latest_installed_id: Option<Uuid>,
    reboot_pending: bool,
    assessed: bool,
    recommended_pending: bool,
    machines: i64,
}

/// The fleet in classes of machines whose summary counts are alike, in one statement: one scan
/// of `machine_class` (migration 0021: the summary's inputs, a narrow row per machine kept by
/// triggers), no join; the classes are few, as machines of a fleet share their states.
///
/// The statement runs in its own (sub)transaction with settings of its own: PostgreSQL guesses
/// tens of thousands of classes from the columns' statistics, and with the default `work_mem`
/// it would sort a million rows on disk instead of hashing the few classes there are; and
/// compiling the scan with JIT costs more (about 90 ms) than it saves.
pub async fn fleet_classes(
    conn: &mut PgConnection,
    group_by: &GroupBy,
) -> Result<Vec<FleetClass>, StoreError> {
    let (kind, label) = match group_by {
        GroupBy::Nothing => ("", None),
        GroupBy::Region => ("region", None),
        GroupBy::Os => ("os", None),
        GroupBy::Label(k) => ("label", Some(k.as_str())),
    };
    let mut tx = conn.begin().await?;
    sqlx::query("set local work_mem = '64MB'").execute(&mut *tx).await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    let rows = sqlx::query_as!(
        ClassRow,
        r#"select case $1 when 'region' then c.region when 'os' then c.os
                          when 'label' then c.labels->>$2 end as grp,
                  c.os, c.platform, c.hotpatch_enabled, c.eligible, c.enrollment,
                  c.current_baseline_id, c.latest_installed_id, c.reboot_pending, c.assessed,
                  c.recommended_pending, count(*) as "machines!"
           from machine_class c
           group by 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"#,
        kind,
        label,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    rows.into_iter().map(fleet_class).collect()
}

/// A row of [`fleet_classes`] in domain types; a value that does not decode is `StoreError::Decode`.
fn fleet_class(r: ClassRow) -> Result<FleetClass, StoreError> {
    Ok(FleetClass {
        group: r.grp,
        os: parse("os", &r.os)?,
        platform: parse("platform", &r.platform)?,
        hotpatch_enabled: r.hotpatch_enabled,
        eligible: r.eligible,
        enrollment: r.enrollment.map(|e| parse("enrollment", &e)).transpose()?,
        current_baseline_id: r.current_baseline_id,
        latest_installed_id: r.latest_installed_id,
        reboot_pending: r.reboot_pending,
        assessed: r.assessed,
        recommended_pending: r.recommended_pending,
        machines: r.machines,
    })
}
