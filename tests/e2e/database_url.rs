//! With `DATABASE_URL`, `hotpatchd` uses that server and starts no PostgreSQL of its own.

use hotpatch_e2e::{random_token, Launch};

use crate::register;

#[tokio::test]
async fn with_database_url_hotpatchd_uses_that_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let server = Launch::new(dir.path()).database_url(&db.url).admin_token(&token).start().await;

    let id = register(&server, &token, "app-1").await;
    assert_eq!(stored_name(&db, &id).await, "app-1");
    assert!(!dir.path().join("pg").exists(), "an embedded cluster was created");
    assert!(!server.output().contains("embedded PostgreSQL"), "{}", server.output());

    let (status, output) = server.terminate().await;
    assert!(status.success(), "{output}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let server = Launch::new(dir.path())
        .database_url(&db.url)
        .admin_token(&random_token())
        .env("HOTPATCH_LOG_FORMAT", "json")
        .start()
        .await;
    let (status, output) = server.terminate().await;
    assert!(status.success(), "{output}");
    for line in output.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
    assert!(output.contains(r#""message":"listening on "#), "{output}");
}

/// The machine's name as the database has it, read through the test's own pool.
async fn stored_name(db: &hotpatch_store::testing::TestDb, id: &str) -> String {
    let id: uuid::Uuid = id.parse().expect("a machine id");
    let machine = hotpatch_store::machines::get(&db.pool, id).await.expect("the machine in that database");
    machine.spec.name
}

#[tokio::test]
async fn a_bad_database_url_fails_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let missing = format!("{}_missing", db.url);
    let (status, output) = Launch::new(dir.path()).database_url(&missing).run_to_exit().await;
    assert!(!status.success(), "{output}");
    let errors: Vec<&str> = output.lines().filter(|l| l.starts_with("hotpatchd: error:")).collect();
    assert_eq!(errors.len(), 1, "{output}");
    assert!(errors[0].contains("cannot connect to the database"), "{output}");
    assert!(errors[0].contains("does not exist"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    // The password in the URL is never printed.
    let password = url_password(&db.url);
    assert!(password.is_empty() || !output.contains(&password), "{output}");
}

fn url_password(url: &str) -> String {
    let userinfo = url.split("://").nth(1).and_then(|rest| rest.split('@').next()).unwrap_or_default();
    userinfo.split(':').nth(1).unwrap_or_default().to_owned()
}
