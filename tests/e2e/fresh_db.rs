//! `hotpatch_store::testing::fresh_db`: a database of its own per test, migrated.

use hotpatch_store::testing::fresh_db;

#[tokio::test]
async fn fresh_databases_are_separate_and_migrated() {
    let (a, b) = (fresh_db().await, fresh_db().await);
    assert_ne!(a.name(), b.name());
    assert_ne!(a.url, b.url);
    for db in [&a, &b] {
        let current: String = sqlx_scalar(db, "select current_database()").await;
        assert_eq!(current, db.name());
        let migrations: i64 = sqlx_scalar(db, "select count(*) from _sqlx_migrations").await;
        assert!(migrations >= 1);
    }
}

#[tokio::test]
async fn a_dropped_test_database_is_gone() {
    let db = fresh_db().await;
    let name = db.name().to_owned();
    let keeper = fresh_db().await;
    drop(db);
    let exists: bool =
        sqlx_scalar_bind(&keeper, "select exists (select from pg_database where datname = $1)", &name).await;
    assert!(!exists, "{name} still exists");
}

async fn sqlx_scalar<T>(db: &hotpatch_store::testing::TestDb, sql: &'static str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.expect(sql)
}

async fn sqlx_scalar_bind<T>(db: &hotpatch_store::testing::TestDb, sql: &'static str, arg: &str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    sqlx::query_scalar(sql).bind(arg).fetch_one(&db.pool).await.expect(sql)
}
