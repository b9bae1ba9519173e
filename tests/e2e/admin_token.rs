//! The first admin token: generated at first start into a 0600 file whose path is logged.

use std::os::unix::fs::PermissionsExt;

use hotpatch_e2e::Launch;

#[tokio::test]
async fn a_generated_admin_token_is_written_to_a_private_file_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let launch = Launch::new(dir.path()).database_url(&db.url);

    let server = launch.start().await;
    let path = dir.path().join("admin-token");
    let mode = std::fs::metadata(&path).expect("the admin token file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&path).unwrap().trim().to_owned();
    assert!(token.len() >= 22, "a token of at least 128 bits");

    let output = server.output();
    assert!(output.contains(&path.display().to_string()), "the log names the file:\n{output}");
    assert!(!output.contains(&token), "the log shows the secret:\n{output}");

    let tokens = server.http().get(server.url("/v1/tokens")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(tokens.status(), 200);
    let anonymous = server.http().get(server.url("/v1/tokens")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, output) = server.terminate().await;
    assert!(status.success(), "{output}");

    // An admin exists now: a restart mints no other one.
    let server = launch.start().await;
    assert_eq!(std::fs::read_to_string(&path).unwrap().trim(), token);
    assert!(!server.output().contains("generated the first admin token"));
    let (status, output) = server.terminate().await;
    assert!(status.success(), "{output}");
}
