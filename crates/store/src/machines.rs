//! Machines: registration (one or a whole import), lookup, filtered pages, update, delete.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hotpatch_domain::{
    Edition, Eligibility, Enrollment, HotpatchStatus, Image, ImageKind, MachineSpec, OrchestrationMode,
    OsVersion, PatchOrchestration, Platform, ScaleSet,
};
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

/// A machine as stored is the domain's [`hotpatch_domain::Machine`]; this path stays for the
/// callers that name it here.
pub use hotpatch_domain::Machine;

/// A machine to write: the spec plus its derived state.
#[derive(Debug, Clone)]
pub struct MachineWrite<'a> {
    /// The spec.
    pub spec: &'a MachineSpec,
    /// Its eligibility.
    pub eligibility: &'a Eligibility,
    /// Its hotpatch status.
    pub hotpatch_status: HotpatchStatus,
    /// Its enrollment (Arc only).
    pub enrollment: Option<Enrollment>,
}

/// Filters of `GET /v1/machines`; every given one must match.
#[derive(Debug, Clone, Default)]
pub struct MachineFilter {
    /// Exact region.
    pub region: Option<String>,
    /// Exact OS.
    pub os: Option<OsVersion>,
    /// Labels that must all be present with these values.
    pub labels: BTreeMap<String, String>,
    /// Hotpatch status.
    pub hotpatch_status: Option<HotpatchStatus>,
    /// The name: exactly, or its beginning.
    pub name: Option<NameMatch>,
}

/// How `GET /v1/machines?name=` matches names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatch {
    /// This name.
    Exact(String),
    /// Names beginning with this (`?name=web-*`).
    Prefix(String),
}

/// Flat row shape, one column per field, so filters and rollouts can use indexes.
struct Row {
    id: Uuid,
    name: String,
    platform: String,
    os: String,
    image_publisher: Option<String>,
    image_offer: Option<String>,
    image_sku: Option<String>,
    image_kind: Option<String>,
    edition: Option<String>,
    os_build: Option<String>,
    vbs_enabled: Option<bool>,
    region: String,
    availability_zone: Option<String>,
    availability_set: Option<String>,
    update_domain: Option<i32>,
    fault_domain: Option<i32>,
    scale_set_name: Option<String>,
    scale_set_orchestration: Option<String>,
    timezone: String,
    hotpatch_enabled: bool,
    patch_orchestration: String,
    labels: Value,
    eligibility: Value,
    hotpatch_status: String,
    enrollment: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The text of the `machine` column `column` as its domain type; an unknown value is `Decode`.
pub(crate) fn parse<T: std::str::FromStr>(column: &str, v: &str) -> Result<T, StoreError> {
    v.parse().map_err(|_| StoreError::Decode(format!("machine.{column} holds unknown value '{v}'")))
}

fn parse_opt<T: std::str::FromStr>(column: &str, v: Option<String>) -> Result<Option<T>, StoreError> {
    v.map(|v| parse(column, &v)).transpose()
}

impl TryFrom<Row> for Machine {
    type Error = StoreError;
    fn try_from(r: Row) -> Result<Self, StoreError> {
        let image = match (r.image_publisher, r.image_offer, r.image_sku) {
            (Some(publisher), Some(offer), Some(sku)) => Some(Image {
                publisher,
                offer,
                sku,
                kind: parse_opt::<ImageKind>("image_kind", r.image_kind)?.unwrap_or_default(),
            }),
            _ => None,
        };
        let scale_set = match (r.scale_set_name, r.scale_set_orchestration) {
            (Some(name), Some(mode)) => Some(ScaleSet {
                name,
                orchestration_mode: parse::<OrchestrationMode>("scale_set_orchestration", &mode)?,
            }),
            _ => None,
        };
        let decode =
            |column: &str, e: serde_json::Error| StoreError::Decode(format!("machine.{column}: {e}"));
        let spec = MachineSpec {
            name: r.name,
            platform: parse::<Platform>("platform", &r.platform)?,
            os: parse::<OsVersion>("os", &r.os)?,
            image,
            edition: parse_opt::<Edition>("edition", r.edition)?,
            os_build: parse_opt("os_build", r.os_build)?,
            vbs_enabled: r.vbs_enabled,
            region: r.region,
            availability_zone: r.availability_zone,
            availability_set: r.availability_set,
            update_domain: r.update_domain,
            fault_domain: r.fault_domain,
            scale_set,
            timezone: parse("timezone", &r.timezone)?,
            hotpatch_enabled: r.hotpatch_enabled,
            patch_orchestration: parse::<PatchOrchestration>("patch_orchestration", &r.patch_orchestration)?,
            labels: serde_json::from_value(r.labels).map_err(|e| decode("labels", e))?,
        };
        Ok(Machine {
            id: r.id,
            spec,
            eligibility: serde_json::from_value(r.eligibility).map_err(|e| decode("eligibility", e))?,
            hotpatch_status: parse("hotpatch_status", &r.hotpatch_status)?,
            enrollment: parse_opt("enrollment", r.enrollment)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The JSON object `jsonb_to_recordset` turns into one row; its keys are the column names.
fn record(id: Uuid, m: &MachineWrite<'_>) -> Value {
    let s = m.spec;
    let as_str = |v: &'static str| Value::String(v.to_owned());
    json!({
        "id": id,
        "name": s.name,
        "platform": as_str(s.platform.into()),
        "os": as_str(s.os.into()),
        "image_publisher": s.image.as_ref().map(|i| &i.publisher),
        "image_offer": s.image.as_ref().map(|i| &i.offer),
        "image_sku": s.image.as_ref().map(|i| &i.sku),
        "image_kind": s.image.as_ref().map(|i| as_str(i.kind.into())),
        "edition": s.edition.map(|e| as_str(e.into())),
        "os_build": s.os_build.map(|b| b.to_string()),
        "vbs_enabled": s.vbs_enabled,
        "region": s.region,
        "availability_zone": s.availability_zone,
        "availability_set": s.availability_set,
        "update_domain": s.update_domain,
        "fault_domain": s.fault_domain,
        "scale_set_name": s.scale_set.as_ref().map(|x| &x.name),
        "scale_set_orchestration": s.scale_set.as_ref().map(|x| as_str(x.orchestration_mode.into())),
        "timezone": s.timezone.name(),
        "hotpatch_enabled": s.hotpatch_enabled,
        "patch_orchestration": as_str(s.patch_orchestration.into()),
        "labels": s.labels,
        "eligible": m.eligibility.eligible,
        "eligibility": m.eligibility,
        "hotpatch_status": as_str(m.hotpatch_status.into()),
        "enrollment": m.enrollment.map(|e| as_str(e.into())),
    })
}

/// Inserts machines in one statement (the shape of an import: thousands of rows, one round
/// trip). Returns them in input order. A taken name is `StoreError::Conflict`.
pub async fn insert_many(
    conn: &mut PgConnection,
    machines: &[MachineWrite<'_>],
) -> Result<Vec<Machine>, StoreError> {
    let ids: Vec<Uuid> = machines.iter().map(|_| Uuid::now_v7()).collect();
    let records = Value::Array(ids.iter().zip(machines).map(|(id, m)| record(*id, m)).collect());
    let rows = sqlx::query_as!(
        Row,
        r#"
        insert into machine (
            id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligible, eligibility, hotpatch_status, enrollment)
        select id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligible, eligibility, hotpatch_status, enrollment
        from jsonb_to_recordset($1::jsonb) as x(
            id uuid, name text, platform text, os text, image_publisher text, image_offer text,
            image_sku text, image_kind text, edition text, os_build text, vbs_enabled boolean,
            region text, availability_zone text, availability_set text, update_domain integer,
            fault_domain integer, scale_set_name text, scale_set_orchestration text, timezone text,
            hotpatch_enabled boolean, patch_orchestration text, labels jsonb, eligible boolean,
            eligibility jsonb, hotpatch_status text, enrollment text)
        returning id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligibility, hotpatch_status, enrollment, created_at, updated_at
        "#,
        records,
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(unique_violation)?;
    let mut by_id: BTreeMap<Uuid, Machine> =
        rows.into_iter().map(|r| Machine::try_from(r).map(|m| (m.id, m))).collect::<Result<_, _>>()?;
    ids.iter().map(|id| by_id.remove(id).ok_or(StoreError::NotFound)).collect()
}

/// Inserts one machine.
pub async fn insert(conn: &mut PgConnection, m: &MachineWrite<'_>) -> Result<Machine, StoreError> {
    insert_many(conn, std::slice::from_ref(m)).await?.pop().ok_or(StoreError::NotFound)
}

/// The names among `names` that are already taken.
pub async fn taken_names(db: impl PgExecutor<'_>, names: &[String]) -> Result<Vec<String>, StoreError> {
    let rows =
        sqlx::query_scalar!("select name from machine where name = any($1)", names).fetch_all(db).await?;
    Ok(rows)
}

/// One machine.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Machine, StoreError> {
    let row = sqlx::query_as!(
        Row,
        r#"select id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligibility, hotpatch_status, enrollment, created_at, updated_at
           from machine where id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// One machine, locked for update until the caller's transaction ends.
pub async fn get_for_update(conn: &mut PgConnection, id: Uuid) -> Result<Machine, StoreError> {
    let row = sqlx::query_as!(
        Row,
        r#"select id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligibility, hotpatch_status, enrollment, created_at, updated_at
           from machine where id = $1 for update"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// A page of machines in id order, after `after` (the cursor), at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &MachineFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Machine>, StoreError> {
    let os: Option<&'static str> = filter.os.map(Into::into);
    let status: Option<&'static str> = filter.hotpatch_status.map(Into::into);
    let labels = (!filter.labels.is_empty()).then(|| json!(filter.labels));
    let (exact, prefix) = match &filter.name {
        Some(NameMatch::Exact(n)) => (Some(n.as_str()), None),
        Some(NameMatch::Prefix(p)) => (None, Some(p.as_str())),
        None => (None, None),
    };
    // `starts_with` rather than `like`: a name may hold `%` and `_`, which `like` would read as
    // wildcards.
    let rows = sqlx::query_as!(
        Row,
        r#"select id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligibility, hotpatch_status, enrollment, created_at, updated_at
           from machine
           where ($1::uuid is null or id > $1)
             and ($2::text is null or region = $2)
             and ($3::text is null or os = $3)
             and ($4::text is null or hotpatch_status = $4)
             and ($5::jsonb is null or labels @> $5)
             and ($6::text is null or name = $6)
             and ($7::text is null or starts_with(name, $7))
           order by id
           limit $8"#,
        after,
        filter.region,
        os,
        status,
        labels,
        exact,
        prefix,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Machine::try_from).collect()
}

/// Replaces a machine's spec and derived state.
pub async fn update(conn: &mut PgConnection, id: Uuid, m: &MachineWrite<'_>) -> Result<Machine, StoreError> {
    let rec = record(id, m);
    let row = sqlx::query_as!(
        Row,
        r#"
        update machine set
            name = x.name, platform = x.platform, os = x.os, image_publisher = x.image_publisher,
            image_offer = x.image_offer, image_sku = x.image_sku, image_kind = x.image_kind,
            edition = x.edition, os_build = x.os_build, vbs_enabled = x.vbs_enabled, region = x.region,
            availability_zone = x.availability_zone, availability_set = x.availability_set,
            update_domain = x.update_domain, fault_domain = x.fault_domain,
            scale_set_name = x.scale_set_name, scale_set_orchestration = x.scale_set_orchestration,
            timezone = x.timezone, hotpatch_enabled = x.hotpatch_enabled,
            patch_orchestration = x.patch_orchestration, labels = x.labels, eligible = x.eligible,
            eligibility = x.eligibility, hotpatch_status = x.hotpatch_status,
            enrollment = x.enrollment, updated_at = now()
        from jsonb_to_record($2::jsonb) as x(
            name text, platform text, os text, image_publisher text, image_offer text,
            image_sku text, image_kind text, edition text, os_build text, vbs_enabled boolean,
            region text, availability_zone text, availability_set text, update_domain integer,
            fault_domain integer, scale_set_name text, scale_set_orchestration text, timezone text,
            hotpatch_enabled boolean, patch_orchestration text, labels jsonb, eligible boolean,
            eligibility jsonb, hotpatch_status text, enrollment text)
        where machine.id = $1
        returning machine.id, machine.name, machine.platform, machine.os, machine.image_publisher,
            machine.image_offer, machine.image_sku, machine.image_kind, machine.edition,
            machine.os_build, machine.vbs_enabled, machine.region, machine.availability_zone,
            machine.availability_set, machine.update_domain, machine.fault_domain,
            machine.scale_set_name, machine.scale_set_orchestration, machine.timezone,
            machine.hotpatch_enabled, machine.patch_orchestration, machine.labels,
            machine.eligibility, machine.hotpatch_status, machine.enrollment, machine.created_at,
            machine.updated_at
        "#,
        id,
        rec,
    )
    .fetch_optional(conn)
    .await
    .map_err(unique_violation)?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}

/// Deletes a machine (its agent tokens go with it).
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!("delete from machine where id = $1", id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// The machines whose eligibility depends on the given region's capabilities (Windows
/// Server 2025 Azure VMs there), locked for re-evaluation until the caller's transaction ends.
pub async fn affected_by_region(conn: &mut PgConnection, region: &str) -> Result<Vec<Machine>, StoreError> {
    let rows = sqlx::query_as!(
        Row,
        r#"select id, name, platform, os, image_publisher, image_offer, image_sku, image_kind, edition,
            os_build, vbs_enabled, region, availability_zone, availability_set, update_domain,
            fault_domain, scale_set_name, scale_set_orchestration, timezone, hotpatch_enabled,
            patch_orchestration, labels, eligibility, hotpatch_status, enrollment, created_at, updated_at
           from machine
           where region = $1 and platform = 'azure_vm' and os = 'windows_server_2025'
           order by id for update"#,
        region
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Machine::try_from).collect()
}
