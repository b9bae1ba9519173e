//! The movable service clock's offset (see `hotpatch_app::admin`): one row, shared by replicas.

use sqlx::PgExecutor;

use crate::error::StoreError;

/// The stored offset from the system clock, in milliseconds (`None`: never moved).
pub async fn offset_ms(db: impl PgExecutor<'_>) -> Result<Option<i64>, StoreError> {
    let offset = sqlx::query_scalar!("select offset_ms from service_clock").fetch_optional(db).await?;
    Ok(offset)
}

/// Stores the offset from the system clock, in milliseconds.
pub async fn set_offset_ms(db: impl PgExecutor<'_>, offset_ms: i64) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into service_clock (offset_ms) values ($1)
         on conflict (singleton) do update set offset_ms = excluded.offset_ms, set_at = now()",
        offset_ms
    )
    .execute(db)
    .await?;
    Ok(())
}
