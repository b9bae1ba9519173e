//! `hotpatchctl` end to end: the real binary against a real `hotpatchd` (and simulated agents),
//! checked by its exit code, its stdout (valid JSON with `--output json`) and its one-line errors.

use std::process::Stdio;
use std::time::Duration;

use hotpatch_e2e::{ctl_bin, random_token, AgentProcess, Launch, Server};
use serde_json::Value;

/// How long one `hotpatchctl` run may take.
const CTL_TIMEOUT: Duration = Duration::from_secs(180);

/// What one `hotpatchctl` run did.
#[derive(Debug)]
pub(crate) struct Ctl {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Ctl {
    /// Its stdout as JSON; panics with what it printed when that is not valid JSON.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self:?}"))
    }

    /// Asserts it exited 0.
    pub(crate) fn ok(self) -> Ctl {
        assert_eq!(self.code, 0, "hotpatchctl failed: {self:?}");
        self
    }

    /// Asserts it exited with `code` after printing exactly one line, `error: …`, on stderr;
    /// returns that line.
    fn one_error_line(&self, code: i32) -> String {
        assert_eq!(self.code, code, "{self:?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0].to_owned()
    }
}

/// Runs `hotpatchctl <args>` with `HOTPATCH_URL` and `HOTPATCH_TOKEN` set for `server`.
pub(crate) async fn ctl(server: &Server, token: &str, args: &[&str]) -> Ctl {
    ctl_env(&[("HOTPATCH_URL", &server.url("")), ("HOTPATCH_TOKEN", token)], args).await
}

/// Runs `hotpatchctl <args>` with only these `HOTPATCH_*` variables.
async fn ctl_env(env: &[(&str, &str)], args: &[&str]) -> Ctl {
    let mut cmd = tokio::process::Command::new(ctl_bin());
    cmd.args(args)
        .env_remove("HOTPATCH_URL")
        .env_remove("HOTPATCH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(CTL_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("hotpatchctl {args:?} did not finish within {CTL_TIMEOUT:?}"))
        .expect("running hotpatchctl");
    Ctl {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A server on a fresh database with a known admin token.
async fn server() -> (Server, String, tempfile::TempDir, hotpatch_store::testing::TestDb) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let server = Launch::new(dir.path()).database_url(&db.url).admin_token(&token).start().await;
    (server, token, dir, db)
}

/// `hotpatch-agent simulate` of `machines` machines labelled `sim=<prefix>`.
async fn simulate(
    server: &Server,
    token: &str,
    prefix: &str,
    machines: &str,
    fail_rate: &str,
) -> AgentProcess {
    let base = server.url("");
    let mut fleet = AgentProcess::start(&[
        "simulate",
        "--server",
        &base,
        "--token",
        token,
        "--machines",
        machines,
        "--prefix",
        prefix,
        "--job-duration-ms",
        "50",
        "--fail-rate",
        fail_rate,
        "--wait",
        "5",
    ]);
    fleet.wait_for(&format!("simulate: ready {machines} machines"), Duration::from_secs(120)).await;
    // Started is not yet connected: an assessment asked for before an agent's first call warns
    // that it has no connected agent. Wait for every agent's first call.
    let url = server.url(&format!("/v1/machines?label=sim:{prefix}&include=patch_status&limit=1000"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list: Value = server
            .http()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let connected = items.iter().filter(|m| m["patch_status"]["agent"]["connected"] == true).count();
        if connected.to_string() == machines {
            return fleet;
        }
        assert!(tokio::time::Instant::now() < deadline, "{connected} of {machines} agents connected: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn assess_wait_exits_zero_when_the_agents_succeed_and_non_zero_with_one_line_when_one_fails() {
    let (server, token, _dir, _db) = server().await;
    let good = simulate(&server, &token, "good", "2", "0").await;
    let bad = simulate(&server, &token, "bad", "1", "1").await;

    // A selector whose agents succeed: exit 0, the final operation on stdout.
    let run =
        ctl(&server, &token, &["assess", "--label", "sim=good", "--wait", "--timeout", "120"]).await.ok();
    assert!(run.stdout.contains("succeeded"), "{run:?}");
    assert!(run.stderr.is_empty(), "nothing on stderr when it succeeds: {run:?}");
    let run = ctl(&server, &token, &["-o", "json", "assess", "--label", "sim=good", "--wait"]).await.ok();
    let op = run.json();
    assert_eq!(op["kind"], "assess", "{op}");
    assert_eq!(op["status"], "succeeded", "{op}");
    assert_eq!(op["machines"]["succeeded"], 2, "{op}");

    // The agent reports failure: exit 1 and one line naming the machine and the agent's reason.
    let run = ctl(&server, &token, &["assess", "--label", "sim=bad", "--wait", "--timeout", "120"]).await;
    let line = run.one_error_line(1);
    assert!(line.starts_with("error: assess operation "), "{line}");
    assert!(line.contains("failed on 1 of 1 machines"), "{line}");
    assert!(line.contains("bad-"), "names the machine: {line}");
    assert!(line.contains("simulated assess failure"), "carries the agent's reason: {line}");

    // One machine by id, JSON output: stdout is still the operation, as valid JSON.
    let list =
        ctl(&server, &token, &["-o", "json", "machines", "list", "--label", "sim=bad"]).await.ok().json();
    let id = list["items"][0]["id"].as_str().expect("the bad machine's id").to_owned();
    let run = ctl(&server, &token, &["-o", "json", "assess", &id, "--wait", "--timeout", "120"]).await;
    run.one_error_line(1);
    let op = run.json();
    assert_eq!(op["status"], "failed", "{op}");
    assert_eq!(op["results"][0]["machine_id"], id.as_str(), "{op}");

    // Without --wait it answers at once with the queued operation, and exits 0.
    let run = ctl(&server, &token, &["-o", "json", "assess", "--label", "sim=good"]).await.ok();
    let op = run.json();
    assert!(op["id"].is_string(), "{op}");
    let run =
        ctl(&server, &token, &["operation", op["id"].as_str().unwrap_or_default(), "--wait"]).await.ok();
    assert!(run.stdout.contains("succeeded"), "{run:?}");
    drop((good, bad));
}

#[tokio::test]
async fn json_output_is_valid_json_for_imports_lists_status_calendar_windows_and_tokens() {
    let (server, token, dir, _db) = server().await;
    let csv = dir.path().join("fleet.csv");
    std::fs::write(
        &csv,
        "name,platform,os,image.publisher,image.offer,image.sku,region,timezone,hotpatch_enabled,labels\n\
         web-1,azure_vm,windows_server_2022,MicrosoftWindowsServer,WindowsServer,\
         2022-datacenter-azure-edition-hotpatch,westeurope,Europe/Berlin,true,env=prod;tier=web\n\
         web-2,azure_vm,windows_server_2022,MicrosoftWindowsServer,WindowsServer,\
         2022-datacenter-azure-edition-hotpatch,westeurope,America/New_York,true,env=prod\n",
    )
    .unwrap();
    let csv = csv.to_string_lossy().into_owned();
    let imported = ctl(&server, &token, &["-o", "json", "machines", "import", &csv]).await.ok().json();
    assert_eq!(imported["imported"], 2, "{imported}");
    let id = imported["items"][0]["id"].as_str().expect("an id").to_owned();

    let list =
        ctl(&server, &token, &["--output", "json", "machines", "list", "--label", "env=prod", "--all"])
            .await
            .ok()
            .json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2), "{list}");
    let table = ctl(&server, &token, &["machines", "list"]).await.ok();
    assert!(table.stdout.starts_with("ID "), "{table:?}");
    assert!(table.stdout.contains("web-1") && table.stdout.contains("web-2"), "{table:?}");

    let machine = ctl(&server, &token, &["-o", "json", "machines", "get", &id]).await.ok().json();
    assert_eq!(machine["labels"]["tier"], "web", "{machine}");
    let status = ctl(&server, &token, &["-o", "json", "status", &id]).await.ok().json();
    assert_eq!(status["machine_id"], id.as_str(), "{status}");
    let windows = ctl(&server, &token, &["-o", "json", "windows", &id, "--count", "2"]).await.ok().json();
    assert_eq!(windows["items"].as_array().map(Vec::len), Some(2), "{windows}");
    let ics = ctl(&server, &token, &["windows", &id, "--ics", "--count", "2"]).await.ok();
    assert!(ics.stdout.starts_with("BEGIN:VCALENDAR"), "{ics:?}");

    let catalog = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/catalog/sample.json");
    let report = ctl(&server, &token, &["-o", "json", "releases", "import", catalog]).await.ok().json();
    let published = report["releases"].as_array().expect("releases").len();
    assert!(published > 0, "{report}");
    assert!(
        report["releases"].as_array().into_iter().flatten().all(|r| r["result"] == "published"),
        "{report}"
    );
    // Importing again skips what is there and still succeeds.
    let again = ctl(&server, &token, &["releases", "import", catalog]).await.ok();
    assert!(
        again.stdout.contains(&format!("releases: 0 published, {published} already in the catalog")),
        "{again:?}"
    );
    let releases = ctl(&server, &token, &["-o", "json", "releases", "list", "--all"]).await.ok().json();
    assert_eq!(releases["items"].as_array().map(Vec::len), Some(published), "{releases}");
    let calendar =
        ctl(&server, &token, &["-o", "json", "calendar", "--os", "windows_server_2022", "--year", "2025"])
            .await
            .ok()
            .json();
    assert_eq!(calendar["months"].as_array().map(Vec::len), Some(12), "{calendar}");

    let created =
        ctl(&server, &token, &["-o", "json", "tokens", "create", "--name", "pipeline", "--role", "ci"])
            .await
            .ok()
            .json();
    let ci_token = created["token"].as_str().expect("the secret, once").to_owned();
    let tokens = ctl(&server, &token, &["-o", "json", "tokens", "list"]).await.ok().json();
    assert!(tokens["items"].as_array().into_iter().flatten().any(|t| t["name"] == "pipeline"), "{tokens}");
    // The CI token may read but not write.
    let refused = ctl(&server, &ci_token, &["machines", "delete", &id]).await;
    let line = refused.one_error_line(3);
    assert!(line.starts_with("error: 403 forbidden: "), "{line}");
}

#[tokio::test]
async fn errors_are_one_line_with_an_exit_code_that_says_what_failed() {
    let (server, token, dir, _db) = server().await;

    // A problem+json answer: status, code and detail on one line; exit 3.
    let missing = "0190b5f4-0000-7000-8000-000000000000";
    let line = ctl(&server, &token, &["machines", "get", missing]).await.one_error_line(3);
    assert!(line.starts_with("error: 404 not_found: "), "{line}");
    assert!(line.contains(missing), "{line}");
    let line = ctl(&server, "not-a-token", &["machines", "list"]).await.one_error_line(3);
    assert!(line.starts_with("error: 401 unauthorized: "), "{line}");

    // An import the server refuses names the bad item and field.
    let file = dir.path().join("bad.json");
    std::fs::write(&file, r#"[{"name": "x", "platform": "azure_vm", "os": "windows_server_2022", "region": "westeurope", "timezone": "Mars/Olympus"}]"#).unwrap();
    let file = file.to_string_lossy().into_owned();
    let line = ctl(&server, &token, &["machines", "import", &file]).await.one_error_line(3);
    assert!(line.starts_with("error: 422 validation_failed: "), "{line}");
    assert!(line.contains("item 0 timezone"), "{line}");

    // A selector that names no machine is refused before anything waits.
    let line = ctl(&server, &token, &["assess", "--label", "sim=nothing", "--wait"]).await.one_error_line(3);
    assert!(line.starts_with("error: 422 validation_failed: "), "{line}");

    // No server there: exit 4. No token: exit 2. Bad input: exit 2.
    let line =
        ctl_env(&[("HOTPATCH_URL", "http://127.0.0.1:1"), ("HOTPATCH_TOKEN", "t")], &["machines", "list"])
            .await
            .one_error_line(4);
    assert!(line.starts_with("error: cannot reach http://127.0.0.1:1/v1/machines"), "{line}");
    let line = ctl_env(&[("HOTPATCH_URL", &server.url(""))], &["machines", "list"]).await.one_error_line(2);
    assert!(line.contains("HOTPATCH_TOKEN"), "{line}");
    let line = ctl(&server, &token, &["assess"]).await.one_error_line(2);
    assert!(line.contains("--fleet"), "{line}");
}
