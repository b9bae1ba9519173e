//! The release catalog, the updates hotpatch does not cover, and each machine's installed state.
//!
//! Publishing is check-then-insert under a per-OS advisory lock (the rules read the whole
//! catalog of the OS); the constraints of `0002_releases.sql` still refuse what a caller that
//! skipped the lock would get wrong.

use chrono::{DateTime, Utc};
use hotpatch_domain::{Classification, OsVersion, Release, ReleaseKind, ReleaseSpec, UpdateSpec};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

/// A release with its bookkeeping times.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRelease {
    /// The release.
    pub release: Release,
    /// When it was published here.
    pub created_at: DateTime<Utc>,
    /// When it last changed (e.g. was superseded).
    pub updated_at: DateTime<Utc>,
}

struct ReleaseRow {
    id: Uuid,
    os: String,
    kind: String,
    planned: bool,
    month: String,
    kb: String,
    build: String,
    released_at: DateTime<Utc>,
    superseded_by: Option<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn parse<T: std::str::FromStr>(table: &str, column: &str, v: &str) -> Result<T, StoreError> {
    v.parse().map_err(|_| StoreError::Decode(format!("{table}.{column} holds unknown value '{v}'")))
}

impl TryFrom<ReleaseRow> for StoredRelease {
    type Error = StoreError;
    fn try_from(r: ReleaseRow) -> Result<Self, StoreError> {
        let spec = ReleaseSpec {
            os: parse("release", "os", &r.os)?,
            kind: parse("release", "kind", &r.kind)?,
            planned: r.planned,
            month: parse("release", "month", &r.month)?,
            kb: parse("release", "kb", &r.kb)?,
            build: parse("release", "build", &r.build)?,
            released_at: r.released_at,
        };
        Ok(StoredRelease {
            release: Release { id: r.id, spec, superseded_by: r.superseded_by },
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Serialises publishing for one OS until the caller's transaction ends, so the rules see
/// every release published before this one.
pub async fn lock_catalog(conn: &mut PgConnection, os: OsVersion) -> Result<(), StoreError> {
    let key = format!("hotpatch.release.{}", <&'static str>::from(os));
    sqlx::query!("select pg_advisory_xact_lock(hashtext($1)::bigint)", key).execute(conn).await?;
    Ok(())
}

/// The whole catalog (every OS), oldest month first. Small by nature: 12 releases per OS a year.
pub async fn catalog(db: impl PgExecutor<'_>) -> Result<Vec<Release>, StoreError> {
    let rows = sqlx::query_as!(
        ReleaseRow,
        "select id, os, kind, planned, month, kb, build, released_at, superseded_by, created_at, updated_at
         from release order by month, released_at, id"
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|r| StoredRelease::try_from(r).map(|s| s.release)).collect()
}

/// The releases of one OS, oldest month first.
pub async fn catalog_of(db: impl PgExecutor<'_>, os: OsVersion) -> Result<Vec<Release>, StoreError> {
    let os: &'static str = os.into();
    let rows = sqlx::query_as!(
        ReleaseRow,
        "select id, os, kind, planned, month, kb, build, released_at, superseded_by, created_at, updated_at
         from release where os = $1 order by month, released_at, id",
        os
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|r| StoredRelease::try_from(r).map(|s| s.release)).collect()
}

/// The releases of the OS the machine `machine_id` runs, oldest month first (none when there is
/// no such machine), read in one statement so that the OS and its releases agree.
pub async fn catalog_of_machine(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
) -> Result<Vec<Release>, StoreError> {
    let rows = sqlx::query_as!(
        ReleaseRow,
        "select r.id, r.os, r.kind, r.planned, r.month, r.kb, r.build, r.released_at, r.superseded_by,
                r.created_at, r.updated_at
         from release r join machine m on m.os = r.os
         where m.id = $1 order by r.month, r.released_at, r.id",
        machine_id
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(|r| StoredRelease::try_from(r).map(|s| s.release)).collect()
}

/// Adds a release; when it `supersedes` a hotpatch, that one is marked in the same statement
/// order the constraints need (the caller's transaction makes both one change).
pub async fn insert(
    conn: &mut PgConnection,
    spec: &ReleaseSpec,
    supersedes: Option<Uuid>,
) -> Result<StoredRelease, StoreError> {
    let id = Uuid::now_v7();
    if let Some(old) = supersedes {
        sqlx::query!(
            "update release set superseded_by = $2, updated_at = now() where id = $1 and kind = 'hotpatch'",
            old,
            id
        )
        .execute(&mut *conn)
        .await?;
    }
    let os: &'static str = spec.os.into();
    let kind: &'static str = spec.kind.into();
    let row = sqlx::query_as!(
        ReleaseRow,
        "insert into release (id, os, kind, planned, month, kb, build, released_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         returning id, os, kind, planned, month, kb, build, released_at, superseded_by, created_at, updated_at",
        id,
        os,
        kind,
        spec.planned,
        spec.month.to_string(),
        spec.kb.as_str(),
        spec.build.to_string(),
        spec.released_at,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(unique_violation)?;
    row.try_into()
}

/// One release.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<StoredRelease, StoreError> {
    sqlx::query_as!(
        ReleaseRow,
        "select id, os, kind, planned, month, kb, build, released_at, superseded_by, created_at, updated_at
         from release where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?
    .try_into()
}

/// Filters of `GET /v1/releases`; every given one must match.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    /// OS.
    pub os: Option<OsVersion>,
    /// Kind.
    pub kind: Option<ReleaseKind>,
    /// Months from (inclusive), `YYYY-MM`.
    pub from_month: Option<String>,
    /// Months to (inclusive), `YYYY-MM`.
    pub to_month: Option<String>,
}

/// A page of releases in id (publication) order.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &ReleaseFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredRelease>, StoreError> {
    let os: Option<&'static str> = filter.os.map(Into::into);
    let kind: Option<&'static str> = filter.kind.map(Into::into);
    let rows = sqlx::query_as!(
        ReleaseRow,
        r#"select id, os, kind, planned, month, kb, build, released_at, superseded_by, created_at, updated_at
           from release
           where ($1::uuid is null or id > $1)
             and ($2::text is null or os = $2)
             and ($3::text is null or kind = $3)
             and ($4::text is null or month >= $4)
             and ($5::text is null or month <= $5)
           order by id
           limit $6"#,
        after,
        os,
        kind,
        filter.from_month,
        filter.to_month,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(StoredRelease::try_from).collect()
}

/// An update hotpatch does not cover, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredUpdate {
    /// Identifier.
    pub id: Uuid,
    /// What was published (with `requires_reboot` resolved).
    pub spec: UpdateSpec,
    /// When it was published here.
    pub created_at: DateTime<Utc>,
}

struct UpdateRow {
    id: Uuid,
    kb: String,
    title: String,
    classification: String,
    os: Option<String>,
    requires_reboot: bool,
    released_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl TryFrom<UpdateRow> for StoredUpdate {
    type Error = StoreError;
    fn try_from(r: UpdateRow) -> Result<Self, StoreError> {
        Ok(StoredUpdate {
            id: r.id,
            spec: UpdateSpec {
                kb: parse("catalog_update", "kb", &r.kb)?,
                title: r.title,
                classification: parse("catalog_update", "classification", &r.classification)?,
                os: r.os.map(|os| parse("catalog_update", "os", &os)).transpose()?,
                requires_reboot: Some(r.requires_reboot),
                released_at: r.released_at,
            },
            created_at: r.created_at,
        })
    }
}

/// Adds an update; a taken KB is `StoreError::Conflict` on `catalog_update_kb_key`.
pub async fn insert_update(db: impl PgExecutor<'_>, spec: &UpdateSpec) -> Result<StoredUpdate, StoreError> {
    let classification: &'static str = spec.classification.into();
    let os: Option<&'static str> = spec.os.map(Into::into);
    let reboot = spec.requires_reboot.unwrap_or_else(|| spec.classification.default_requires_reboot());
    sqlx::query_as!(
        UpdateRow,
        "insert into catalog_update (id, kb, title, classification, os, requires_reboot, released_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning id, kb, title, classification, os, requires_reboot, released_at, created_at",
        Uuid::now_v7(),
        spec.kb.as_str(),
        spec.title,
        classification,
        os,
        reboot,
        spec.released_at,
    )
    .fetch_one(db)
    .await
    .map_err(unique_violation)?
    .try_into()
}

/// Filters of `GET /v1/updates`.
#[derive(Debug, Clone, Default)]
pub struct UpdateFilter {
    /// Updates for this OS (and those for every OS).
    pub os: Option<OsVersion>,
    /// Classification.
    pub classification: Option<Classification>,
}

/// A page of updates in id (publication) order.
pub async fn list_updates(
    db: impl PgExecutor<'_>,
    filter: &UpdateFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<StoredUpdate>, StoreError> {
    let os: Option<&'static str> = filter.os.map(Into::into);
    let classification: Option<&'static str> = filter.classification.map(Into::into);
    let rows = sqlx::query_as!(
        UpdateRow,
        r#"select id, kb, title, classification, os, requires_reboot, released_at, created_at
           from catalog_update
           where ($1::uuid is null or id > $1)
             and ($2::text is null or os is null or os = $2)
             and ($3::text is null or classification = $3)
           order by id
           limit $4"#,
        after,
        os,
        classification,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(StoredUpdate::try_from).collect()
}

/// What a machine has installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PatchState {
    /// The baseline it runs on.
    pub current_baseline: Option<Uuid>,
    /// The latest release it installed.
    pub latest_installed: Option<Uuid>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
    /// When it was last reported (`None`: never).
    pub updated_at: Option<DateTime<Utc>>,
}

/// A machine's installed state; the default (nothing known) when never reported.
pub async fn patch_state(db: impl PgExecutor<'_>, machine_id: Uuid) -> Result<PatchState, StoreError> {
    let row = sqlx::query!(
        "select current_baseline_id, latest_installed_id, reboot_pending, updated_at
         from machine_patch_state where machine_id = $1",
        machine_id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map_or_else(PatchState::default, |r| PatchState {
        current_baseline: r.current_baseline_id,
        latest_installed: r.latest_installed_id,
        reboot_pending: r.reboot_pending,
        updated_at: Some(r.updated_at),
    }))
}

/// Records a machine's installed state (replacing what was there).
pub async fn set_patch_state(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    state: &PatchState,
) -> Result<PatchState, StoreError> {
    let r = sqlx::query!(
        "insert into machine_patch_state (machine_id, current_baseline_id, latest_installed_id, reboot_pending)
         values ($1, $2, $3, $4)
         on conflict (machine_id) do update set current_baseline_id = excluded.current_baseline_id,
             latest_installed_id = excluded.latest_installed_id, reboot_pending = excluded.reboot_pending,
             updated_at = now()
         returning current_baseline_id, latest_installed_id, reboot_pending, updated_at",
        machine_id,
        state.current_baseline,
        state.latest_installed,
        state.reboot_pending,
    )
    .fetch_one(db)
    .await?;
    Ok(PatchState {
        current_baseline: r.current_baseline_id,
        latest_installed: r.latest_installed_id,
        reboot_pending: r.reboot_pending,
        updated_at: Some(r.updated_at),
    })
}
