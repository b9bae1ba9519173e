//! `hotpatchd --config <file>`: a TOML file between the environment and the defaults, checked
//! at start with errors that name the key, and every non-default setting logged.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use hotpatch_e2e::{random_token, Launch};

#[tokio::test]
async fn the_file_sets_what_the_environment_does_not_and_the_log_says_where_each_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let file = dir.path().join("hotpatchd.toml");
    std::fs::write(&file, "off_peak_minutes = 180\noff_peak_start = \"22:30\"\nclock_control = true\n")
        .unwrap();
    let server = Launch::new(dir.path())
        .database_url(&db.url)
        .admin_token(&random_token())
        .env("HOTPATCH_OFF_PEAK_MINUTES", "90")
        .args(&["--config", file.to_str().unwrap()])
        .start()
        .await;
    let log = server.output();
    let line =
        |key: &str| log.lines().find(|l| l.contains(&format!("key={key} "))).unwrap_or_default().to_owned();
    assert!(line("off_peak_minutes").contains("value=90 source=\"environment\""), "{log}");
    assert!(line("off_peak_start").contains("value=22:30 source=\"file\""), "{log}");
    assert!(line("clock_control").contains("WARN"), "clock control is a warning: {log}");
    assert!(line("database_url").contains("<redacted>"), "{log}");
    assert!(!log.contains(&db.url), "the database URL is not logged");
}

#[tokio::test]
async fn a_bad_key_stops_the_start_with_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hotpatchd.toml");
    std::fs::write(&file, "off_peak_minutes = 20\n").unwrap();
    let (status, output) =
        Launch::new(dir.path()).args(&["--config", file.to_str().unwrap()]).run_to_exit().await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("key `off_peak_minutes`") && output.contains("hotpatchd.toml"), "{output}");
    std::fs::write(&file, "listn = \"0.0.0.0:1\"\n").unwrap();
    let (status, output) =
        Launch::new(dir.path()).args(&["--config", file.to_str().unwrap()]).run_to_exit().await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("unknown key `listn`"), "{output}");
}
