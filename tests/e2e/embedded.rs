//! `hotpatchd` on its embedded PostgreSQL: data survives restarts (graceful and `kill -9`), the
//! data directory is locked, and a machine without PostgreSQL gets a clear error.

use std::path::Path;

use hotpatch_e2e::{random_token, Launch};

use crate::{machines, register};

#[tokio::test]
async fn machines_survive_a_restart_on_embedded_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let token = random_token();
    let launch = Launch::new(dir.path()).admin_token(&token);

    let server = launch.start().await;
    let mut ids = Vec::new();
    for name in ["web-1", "web-2", "web-3"] {
        ids.push((register(&server, &token, name).await, name.to_owned()));
    }
    let before = machines(&server, &token).await;
    assert_eq!(before, ids);
    let (status, output) = server.terminate().await;
    assert!(status.success(), "hotpatchd exited with {status} after SIGTERM:\n{output}");
    assert!(output.contains("embedded PostgreSQL stopped"), "{output}");
    assert!(!dir.path().join("pg/postmaster.pid").exists(), "PostgreSQL still running after the stop");

    let server = launch.start().await;
    assert_eq!(machines(&server, &token).await, before);
    let (status, output) = server.terminate().await;
    assert!(status.success(), "second run exited with {status}:\n{output}");
}

#[tokio::test]
async fn a_second_hotpatchd_on_the_same_data_dir_fails_and_names_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let launch = Launch::new(dir.path()).admin_token(&random_token());
    let first = launch.start().await;

    let (status, output) = launch.run_to_exit().await;
    assert!(!status.success(), "the second hotpatchd started:\n{output}");
    let data_dir = dir.path().canonicalize().unwrap();
    assert!(output.contains(&data_dir.display().to_string()), "{output}");
    assert!(output.contains("in use by another hotpatchd"), "{output}");
    assert!(output.contains(&format!("pid {}", first.pid())), "{output}");
    assert!(!output.contains("panicked"), "{output}");

    // The first one is unharmed.
    let health = first.http().get(first.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let (status, output) = first.terminate().await;
    assert!(status.success(), "{output}");
}

#[tokio::test]
async fn without_postgresql_binaries_hotpatchd_says_how_to_install_them() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    // HOTPATCH_PG_BIN_DIR replaces the whole search (PATH, pg_config, /usr/lib/postgresql).
    let launch = Launch::new(dir.path())
        .env("HOTPATCH_PG_BIN_DIR", &empty.path().display().to_string())
        .admin_token(&random_token());

    let (status, output) = launch.run_to_exit().await;
    assert!(!status.success(), "{output}");
    assert!(output.contains("hotpatchd: error: PostgreSQL server binaries"), "{output}");
    assert!(output.contains("apt-get install postgresql"), "{output}");
    assert!(output.contains("DATABASE_URL"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
    let error_lines = output.lines().filter(|l| l.starts_with("hotpatchd: error:")).count();
    assert_eq!(error_lines, 1, "{output}");
}

#[tokio::test]
async fn a_killed_hotpatchd_starts_again_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let token = random_token();
    let launch = Launch::new(dir.path()).admin_token(&token);

    let server = launch.start().await;
    let id = register(&server, &token, "db-1").await;
    let (status, _) = server.kill().await;
    assert!(!status.success());

    // At once: the old PostgreSQL may still be running, and postmaster.pid is there.
    let server = launch.start().await;
    assert_eq!(machines(&server, &token).await, [(id, "db-1".to_owned())]);
    let (status, output) = server.terminate().await;
    assert!(status.success(), "{output}");
    assert_stopped(dir.path());
}

fn assert_stopped(data_dir: &Path) {
    assert!(
        !data_dir.join("pg/postmaster.pid").exists(),
        "PostgreSQL still running in {}",
        data_dir.display()
    );
}
