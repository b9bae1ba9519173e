//! Stopping `hotpatchd` while agents long-poll: the waiting claims answer 204 at once and the
//! process exits within a few seconds (it used to wait out every long poll, ~27 s).

use std::time::{Duration, Instant};

use hotpatch_e2e::{random_token, Launch};

use crate::register;

#[tokio::test]
async fn sigterm_answers_long_polls_and_exits_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let server = Launch::new(dir.path()).database_url(&db.url).admin_token(&token).start().await;

    let mut polls = vec![];
    for i in 0..5 {
        let id = register(&server, &token, &format!("drain-{i}")).await;
        let agent: serde_json::Value = server
            .http()
            .post(server.url(&format!("/v1/machines/{id}/agent-token")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let agent = agent["token"].as_str().unwrap().to_owned();
        let claim = server.http().post(server.url("/v1/agent/jobs/claim?wait=60")).bearer_auth(agent).send();
        polls.push(tokio::spawn(claim));
    }
    // Let the claims reach the server and start waiting.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopping = Instant::now();
    let (status, output) = server.terminate().await;
    let took = stopping.elapsed();
    assert!(status.success(), "{output}");
    for poll in polls {
        let answer = poll.await.unwrap().expect("the waiting claim is answered, not cut off");
        assert_eq!(answer.status(), 204);
    }
    // The default drain deadline is 5 s; long polls must not hold the exit anywhere near 60 s.
    assert!(took < Duration::from_secs(8), "stopping took {took:?}:\n{output}");
}

#[tokio::test]
async fn a_moved_clock_outlives_a_restart_and_is_every_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let launch = || {
        Launch::new(dir.path())
            .database_url(&db.url)
            .admin_token(&token)
            .env("HOTPATCH_CLOCK_CONTROL", "true")
    };
    let first = launch().start().await;
    let second = launch().start().await;
    let moved: serde_json::Value = first
        .http()
        .put(first.url("/v1/admin/clock"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"now": "2031-07-01T12:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(moved["now"].as_str().unwrap().starts_with("2031-07-01T12:00"), "{moved}");

    let now_of = |server: &hotpatch_e2e::Server| {
        let request = server.http().get(server.url("/v1/admin/clock")).bearer_auth(&token).send();
        async move {
            request.await.unwrap().json::<serde_json::Value>().await.unwrap()["now"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    // The other replica follows within its next sync (every second).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !now_of(&second).await.starts_with("2031-07-01") {
        assert!(Instant::now() < deadline, "the second replica kept its own clock");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, output) = first.terminate().await;
    assert!(status.success(), "{output}");
    drop(second);
    let restarted = launch().start().await;
    assert!(now_of(&restarted).await.starts_with("2031-07-01"), "the clock reset on restart");
}
