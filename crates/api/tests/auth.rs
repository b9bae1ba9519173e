//! Authentication and the role boundaries (DESIGN §3, issue 2 scope 4): 401 without a valid
//! token, 403 for a role that may not, tokens random, shown once and stored hashed.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, Request};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{SecondsFormat, Utc};
use common::{azure_2022, Reply, TestApp, ADMIN};
use hotpatch_api::auth::{ensure_admin_token, BootstrapError, MIN_BOOTSTRAP_LEN};
use hotpatch_api::AppState;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use uuid::Uuid;

/// A request carrying exactly this `Authorization` header value (or none).
fn with_auth(method: Method, path: &str, authorization: Option<HeaderValue>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path);
    if let Some(v) = authorization {
        b = b.header(AUTHORIZATION, v);
    }
    b.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> Option<HeaderValue> {
    Some(HeaderValue::from_str(&format!("Bearer {token}")).unwrap())
}

/// Whether `r` is a problem with this status and code; `Err` says what differs.
fn check_problem(r: &Reply, status: u16, code: &str) -> Result<(), String> {
    let ct = r.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("<none>");
    if r.status.as_u16() != status || ct != "application/problem+json" || r.body["code"] != code {
        return Err(format!("{} {ct} {}", r.status, r.body));
    }
    for key in ["type", "title", "detail"] {
        if r.body[key].as_str().is_none_or(str::is_empty) {
            return Err(format!("no `{key}`: {}", r.body));
        }
    }
    if status == 401 && r.headers.get(WWW_AUTHENTICATE).is_none_or(|v| v != "Bearer") {
        return Err(format!("401 without `WWW-Authenticate: Bearer`: {:?}", r.headers));
    }
    Ok(())
}

#[track_caller]
fn assert_unauthorized(r: &Reply, what: &str) {
    if let Err(why) = check_problem(r, 401, "unauthorized") {
        panic!("{what}: expected 401 unauthorized, got {why}");
    }
}

/// A token created through `POST /v1/tokens`: its id and its string.
async fn create_token(app: &TestApp, role: &str) -> (Uuid, String) {
    let r = app.post("/v1/tokens", ADMIN, json!({"name": format!("{role} token"), "role": role})).await;
    let body = r.ok(201);
    (body["id"].as_str().unwrap().parse().unwrap(), body["token"].as_str().unwrap().to_owned())
}

/// A machine and an agent token bound to it.
async fn agent(app: &TestApp, machine_name: &str) -> (String, Uuid, String) {
    let m = app.machine(azure_2022(machine_name)).await;
    let machine_id = m["id"].as_str().unwrap().to_owned();
    let r =
        app.call(Method::POST, &format!("/v1/machines/{machine_id}/agent-token"), Some(ADMIN), None).await;
    let body = r.ok(201);
    assert_eq!(body["role"], "agent");
    assert_eq!(body["machine_id"], machine_id.as_str());
    (machine_id, body["id"].as_str().unwrap().parse().unwrap(), body["token"].as_str().unwrap().to_owned())
}

/// The raw bytes of one of the API's `hp_` tokens.
fn decode(token: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(token.strip_prefix("hp_").expect("hp_ prefix")).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// 401: no, malformed, unknown, wrong, expired and revoked credentials.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_request_without_authorization_is_401_unauthorized_with_www_authenticate_bearer() {
    let app = TestApp::new().await;
    let id = Uuid::now_v7();
    for (method, path) in [
        (Method::GET, "/v1/machines".to_owned()),
        (Method::POST, "/v1/machines".to_owned()),
        (Method::POST, "/v1/machines/import".to_owned()),
        (Method::GET, format!("/v1/machines/{id}")),
        (Method::PATCH, format!("/v1/machines/{id}")),
        (Method::DELETE, format!("/v1/machines/{id}")),
        (Method::POST, format!("/v1/machines/{id}/agent-token")),
        (Method::GET, "/v1/tokens".to_owned()),
        (Method::POST, "/v1/tokens".to_owned()),
        (Method::GET, format!("/v1/tokens/{id}")),
        (Method::DELETE, format!("/v1/tokens/{id}")),
        (Method::GET, "/v1/regions".to_owned()),
        (Method::GET, "/v1/regions/uksouth".to_owned()),
        (Method::PUT, "/v1/regions/uksouth".to_owned()),
    ] {
        let r = app.send(with_auth(method.clone(), &path, None)).await;
        assert_unauthorized(&r, &format!("{method} {path} without a token"));
    }
}

#[tokio::test]
async fn authentication_comes_before_path_and_body_validation() {
    let app = TestApp::new().await;
    let r = app.send(with_auth(Method::GET, "/v1/machines/not-a-uuid", None)).await;
    assert_unauthorized(&r, "a bad id without a token");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/machines")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_unauthorized(&app.send(req).await, "broken JSON without a token");
}

#[tokio::test]
async fn a_malformed_authorization_header_is_401_unauthorized() {
    let app = TestApp::new().await;
    let headers: Vec<(&str, HeaderValue)> = vec![
        ("Basic credentials", HeaderValue::from_static("Basic YWRtaW46YWRtaW4=")),
        ("Basic with the admin token", HeaderValue::from_str(&format!("Basic {ADMIN}")).unwrap()),
        ("the scheme alone", HeaderValue::from_static("Bearer")),
        ("the scheme and blanks", HeaderValue::from_static("Bearer  ")),
        ("the scheme and a tab", HeaderValue::from_static("Bearer \t")),
        ("an empty header", HeaderValue::from_static("")),
        ("the token without a scheme", HeaderValue::from_str(ADMIN).unwrap()),
        ("another scheme", HeaderValue::from_str(&format!("Token {ADMIN}")).unwrap()),
        ("no space after the scheme", HeaderValue::from_str(&format!("Bearer{ADMIN}")).unwrap()),
        ("a comma after the scheme", HeaderValue::from_str(&format!("Bearer,{ADMIN}")).unwrap()),
        ("the token and more", HeaderValue::from_str(&format!("Bearer {ADMIN} {ADMIN}")).unwrap()),
        ("non-UTF-8 bytes", HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap()),
    ];
    for (what, value) in headers {
        let r = app.send(with_auth(Method::GET, "/v1/machines", Some(value))).await;
        assert_unauthorized(&r, what);
    }
}

#[tokio::test]
async fn an_unknown_token_is_401_unauthorized() {
    let app = TestApp::new().await;
    let (_, real) = create_token(&app, "reader").await;
    let unknown_id = hotpatch_api::auth::mint().token; // well-formed, never stored
    let wrong_length = format!("hp_{}", URL_SAFE_NO_PAD.encode([7u8; 40]));
    for (what, token) in [
        ("a random string", "no-such-token-0123456789abcdef0123456789".to_owned()),
        ("a well-formed hp_ token that was never issued", unknown_id),
        ("an hp_ token of the wrong length", wrong_length),
        ("the bare prefix", "hp_".to_owned()),
        ("a real token cut short", real[..real.len() - 4].to_owned()),
        ("a real token with a suffix", format!("{real}A")),
        ("the bootstrap token with a suffix", format!("{ADMIN}x")),
        ("the bootstrap token cut short", ADMIN[..ADMIN.len() - 1].to_owned()),
    ] {
        let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(&token))).await;
        assert_unauthorized(&r, what);
    }
}

#[tokio::test]
async fn a_well_formed_token_with_one_character_of_its_secret_changed_is_401() {
    let app = TestApp::new().await;
    let (_, token) = create_token(&app, "admin").await;
    app.get("/v1/machines", &token).await.ok(200);
    // `hp_` + base64url(16-byte id ‖ 32-byte secret): the last characters are all secret.
    let raw = decode(&token);
    assert_eq!(raw.len(), 48);
    for pos in [token.len() - 1, token.len() - 10, 3 + 24] {
        let mut chars: Vec<char> = token.chars().collect();
        chars[pos] = if chars[pos] == 'A' { 'B' } else { 'A' };
        let forged: String = chars.into_iter().collect();
        let forged_raw = decode(&forged);
        assert_eq!(forged_raw[..16], raw[..16], "the id part is unchanged");
        assert_ne!(forged_raw[16..], raw[16..], "the secret part changed");
        let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(&forged))).await;
        assert_unauthorized(&r, &format!("secret changed at character {pos}"));
    }
    // And with a whole other secret under the same id.
    let mut other = raw.clone();
    other[16..].copy_from_slice(&[0u8; 32]);
    let forged = format!("hp_{}", URL_SAFE_NO_PAD.encode(other));
    assert_unauthorized(
        &app.send(with_auth(Method::GET, "/v1/machines", bearer(&forged))).await,
        "zero secret",
    );
    app.get("/v1/machines", &token).await.ok(200);
}

#[tokio::test]
async fn an_expired_token_is_401_unauthorized() {
    let app = TestApp::new().await;
    let (id, token) = create_token(&app, "operator").await;
    app.get("/v1/machines", &token).await.ok(200);
    sqlx::query("update api_token set expires_at = now() - interval '1 second' where id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(&token))).await;
    assert_unauthorized(&r, "expired token");
}

#[tokio::test]
async fn a_token_with_an_expiry_works_until_it_expires() {
    let app = TestApp::new().await;
    let expires_at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let r = app
        .post("/v1/tokens", ADMIN, json!({"name": "short-lived", "role": "reader", "expires_at": expires_at}))
        .await;
    let body = r.ok(201).clone();
    assert!(body["expires_at"].is_string(), "{body}");
    let token = body["token"].as_str().unwrap();
    app.get("/v1/machines", token).await.ok(200);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(token))).await;
    assert_unauthorized(&r, "token past its expires_at");
}

#[tokio::test]
async fn creating_a_token_that_expires_in_the_past_is_422_naming_expires_at() {
    let app = TestApp::new().await;
    let past = (Utc::now() - chrono::Duration::minutes(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let r =
        app.post("/v1/tokens", ADMIN, json!({"name": "stale", "role": "reader", "expires_at": past})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "expires_at");

    let m = app.machine(azure_2022("stale-agent")).await;
    let path = format!("/v1/machines/{}/agent-token", m["id"].as_str().unwrap());
    let r = app.post(&path, ADMIN, json!({"expires_at": past})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "expires_at");
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let app = TestApp::new().await;
    let (id, token) = create_token(&app, "operator").await;
    app.get("/v1/machines", &token).await.ok(200);
    app.delete(&format!("/v1/tokens/{id}"), ADMIN).await.ok(204);
    let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(&token))).await;
    assert_unauthorized(&r, "revoked token");
    app.get(&format!("/v1/tokens/{id}"), ADMIN).await.problem(404, "not_found");
    app.delete(&format!("/v1/tokens/{id}"), ADMIN).await.problem(404, "not_found");
}

#[tokio::test]
async fn the_bootstrap_token_works_and_is_listed_as_the_bootstrap_admin() {
    let app = TestApp::new().await;
    app.get("/v1/tokens", ADMIN).await.ok(200);
    // Lower-case scheme and extra blanks around the token are tolerated.
    let lower = HeaderValue::from_str(&format!("bearer {ADMIN}")).unwrap();
    assert_eq!(app.send(with_auth(Method::GET, "/v1/tokens", Some(lower))).await.status, 200);
    let padded = HeaderValue::from_str(&format!("Bearer   {ADMIN} ")).unwrap();
    assert_eq!(app.send(with_auth(Method::GET, "/v1/tokens", Some(padded))).await.status, 200);

    let list = app.get("/v1/tokens", ADMIN).await.ok(200).clone();
    let bootstrap: Vec<&Value> =
        list["items"].as_array().unwrap().iter().filter(|t| t["bootstrap"] == true).collect();
    assert_eq!(bootstrap.len(), 1, "{list}");
    assert_eq!(bootstrap[0]["role"], "admin");
}

#[tokio::test]
async fn the_authorization_scheme_is_matched_case_insensitively() {
    // RFC 9110 §11.1: "It uses a case-insensitive token to identify the authentication scheme."
    let app = TestApp::new().await;
    for scheme in ["Bearer", "bearer", "BEARER", "BeArEr"] {
        let value = HeaderValue::from_str(&format!("{scheme} {ADMIN}")).unwrap();
        let r = app.send(with_auth(Method::GET, "/v1/machines", Some(value))).await;
        assert_eq!(r.status, 200, "scheme {scheme:?}: {}", r.body);
    }
}

#[tokio::test]
async fn a_new_hotpatch_admin_token_replaces_the_old_bootstrap_token() {
    let app = TestApp::new().await;
    let new = "another-admin-token-fedcba9876543210fedcba";
    assert!(ensure_admin_token(&app.pool, Some(new)).await.unwrap().is_none());
    app.get("/v1/tokens", new).await.ok(200);
    let r = app.send(with_auth(Method::GET, "/v1/tokens", bearer(ADMIN))).await;
    assert_unauthorized(&r, "the replaced bootstrap token");
    let count: i64 = sqlx::query_scalar("select count(*) from api_token where bootstrap")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

// ---------------------------------------------------------------------------------------------
// 403: the role boundaries, endpoint by endpoint.
// ---------------------------------------------------------------------------------------------

/// The least role an endpoint needs (`Agent`: an agent token and nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    None,
    Reader,
    Ci,
    Operator,
    Admin,
    Agent,
}

/// What a role may do: the human roles are a ladder, the agent stands apart.
fn may(role: &str, need: Need) -> bool {
    if need == Need::Agent {
        return role == "agent";
    }
    let rank = match role {
        "admin" => Need::Admin,
        "operator" => Need::Operator,
        // ci is "read + assess now".
        "ci" => Need::Ci,
        "reader" => Need::Reader,
        "agent" => return need == Need::None,
        other => panic!("unknown role {other}"),
    };
    rank >= need
}

#[derive(Debug, Clone, Copy)]
enum Ep {
    Healthz,
    Readyz,
    OpenApi,
    Docs,
    Metrics,
    ListMachines,
    CreateMachine,
    ImportMachines,
    GetMachine,
    PatchMachine,
    DeleteMachine,
    CreateAgentToken,
    CreateToken,
    ListTokens,
    GetToken,
    DeleteToken,
    ListRegions,
    GetRegion,
    PutRegion,
    AgentClaim,
    AgentHeartbeat,
    AgentResult,
    AgentInventory,
    AgentHealth,
    AssessMachine,
    AssessSelected,
    GetOperation,
    InstalledUpdates,
    UpdateHistory,
}

const ENDPOINTS: [(Ep, Need, u16); 29] = [
    (Ep::Healthz, Need::None, 200),
    (Ep::Readyz, Need::None, 200),
    (Ep::OpenApi, Need::None, 200),
    (Ep::Docs, Need::None, 200),
    (Ep::Metrics, Need::None, 200),
    (Ep::ListMachines, Need::Reader, 200),
    (Ep::CreateMachine, Need::Operator, 201),
    (Ep::ImportMachines, Need::Operator, 201),
    (Ep::GetMachine, Need::Reader, 200),
    (Ep::PatchMachine, Need::Operator, 200),
    (Ep::DeleteMachine, Need::Operator, 204),
    (Ep::CreateAgentToken, Need::Operator, 201),
    (Ep::CreateToken, Need::Admin, 201),
    (Ep::ListTokens, Need::Admin, 200),
    (Ep::GetToken, Need::Admin, 200),
    (Ep::DeleteToken, Need::Admin, 204),
    (Ep::ListRegions, Need::Reader, 200),
    (Ep::GetRegion, Need::Reader, 200),
    (Ep::PutRegion, Need::Admin, 201),
    (Ep::AgentClaim, Need::Agent, 204),
    (Ep::AgentHeartbeat, Need::Agent, 200),
    (Ep::AgentResult, Need::Agent, 200),
    (Ep::AgentInventory, Need::Agent, 204),
    (Ep::AgentHealth, Need::Agent, 204),
    (Ep::AssessMachine, Need::Ci, 202),
    (Ep::AssessSelected, Need::Ci, 202),
    (Ep::GetOperation, Need::Reader, 200),
    (Ep::InstalledUpdates, Need::Reader, 200),
    (Ep::UpdateHistory, Need::Reader, 200),
];

/// What every call of the table refers to.
struct World {
    machine_id: String,
    token_id: Uuid,
    /// The machine of the agent token (its jobs are the ones the agent endpoints act on).
    agent_machine_id: Uuid,
}

/// A job of `machine` claimed behind the API's back (as the admin would set it up): the agent
/// endpoints then have a lease to heartbeat and report on, and nothing is left for the claim.
async fn leased_job(app: &TestApp, machine: Uuid) -> (Uuid, Uuid) {
    let now = Utc::now();
    let job = hotpatch_store::jobs::NewJob {
        kind: hotpatch_domain::job::JobKind::Assess,
        machine_id: machine,
        payload: json!({}),
        priority: 0,
        run_after: now,
        max_attempts: 3,
        operation_id: None,
        rollout_id: None,
        now,
    };
    let id = hotpatch_store::jobs::enqueue(&app.pool, &job).await.unwrap();
    let claimed = hotpatch_store::jobs::claim(&app.pool, machine, now, chrono::TimeDelta::minutes(2))
        .await
        .unwrap()
        .expect("the job just enqueued");
    assert_eq!(claimed.id, id);
    (id, claimed.lease.id)
}

/// Calls `ep` with `token`; `n` makes names unique. Anything it needs is set up as the admin.
async fn call(app: &TestApp, w: &World, ep: Ep, token: Option<&str>, n: usize) -> (String, Reply) {
    let machine = format!("/v1/machines/{}", w.machine_id);
    let (method, path, body) = match ep {
        Ep::Healthz => (Method::GET, "/healthz".to_owned(), None),
        Ep::Readyz => (Method::GET, "/readyz".to_owned(), None),
        Ep::OpenApi => (Method::GET, "/openapi.json".to_owned(), None),
        Ep::Docs => (Method::GET, "/docs".to_owned(), None),
        Ep::Metrics => (Method::GET, "/metrics".to_owned(), None),
        Ep::ListMachines => (Method::GET, "/v1/machines".to_owned(), None),
        Ep::CreateMachine => {
            (Method::POST, "/v1/machines".to_owned(), Some(azure_2022(&format!("create-{n}"))))
        }
        Ep::ImportMachines => (
            Method::POST,
            "/v1/machines/import".to_owned(),
            Some(json!([azure_2022(&format!("import-{n}"))])),
        ),
        Ep::GetMachine => (Method::GET, machine, None),
        Ep::PatchMachine => (Method::PATCH, machine, Some(json!({"labels": {"n": n.to_string()}}))),
        Ep::DeleteMachine => {
            let victim = app.machine(azure_2022(&format!("delete-{n}"))).await;
            (Method::DELETE, format!("/v1/machines/{}", victim["id"].as_str().unwrap()), None)
        }
        Ep::CreateAgentToken => (Method::POST, format!("{machine}/agent-token"), None),
        Ep::CreateToken => {
            (Method::POST, "/v1/tokens".to_owned(), Some(json!({"name": format!("t-{n}"), "role": "reader"})))
        }
        Ep::ListTokens => (Method::GET, "/v1/tokens".to_owned(), None),
        Ep::GetToken => (Method::GET, format!("/v1/tokens/{}", w.token_id), None),
        Ep::DeleteToken => {
            let (victim, _) = create_token(app, "reader").await;
            (Method::DELETE, format!("/v1/tokens/{victim}"), None)
        }
        Ep::ListRegions => (Method::GET, "/v1/regions".to_owned(), None),
        Ep::GetRegion => (Method::GET, "/v1/regions/uksouth".to_owned(), None),
        Ep::PutRegion => (
            Method::PUT,
            format!("/v1/regions/region-{n}"),
            Some(json!({"windows_server_2025_azure_edition": true})),
        ),
        Ep::AgentClaim => (Method::POST, "/v1/agent/jobs/claim?wait=0".to_owned(), None),
        Ep::AgentHeartbeat => {
            let (job, lease) = leased_job(app, w.agent_machine_id).await;
            (Method::POST, format!("/v1/agent/jobs/{job}/heartbeat"), Some(json!({"lease_id": lease})))
        }
        Ep::AgentResult => {
            let (job, lease) = leased_job(app, w.agent_machine_id).await;
            let result = json!({"lease_id": lease, "outcome": "succeeded"});
            (Method::POST, format!("/v1/agent/jobs/{job}/result"), Some(result))
        }
        Ep::AgentInventory => (
            Method::POST,
            "/v1/agent/inventory".to_owned(),
            Some(json!({"os_build": "20348.2227", "reboot_pending": false})),
        ),
        Ep::AgentHealth => (Method::POST, "/v1/agent/health".to_owned(), Some(json!({"status": "healthy"}))),
        Ep::AssessMachine => (Method::POST, format!("{machine}/assess"), None),
        Ep::AssessSelected => {
            (Method::POST, "/v1/assessments".to_owned(), Some(json!({"machine_ids": [w.machine_id]})))
        }
        Ep::GetOperation => {
            let r = app.call(Method::POST, &format!("{machine}/assess"), Some(ADMIN), None).await;
            (Method::GET, format!("/v1/operations/{}", r.ok(202)["id"].as_str().unwrap()), None)
        }
        Ep::InstalledUpdates => (Method::GET, format!("{machine}/installed-updates"), None),
        Ep::UpdateHistory => (Method::GET, format!("{machine}/update-history"), None),
    };
    let what = format!("{method} {path}");
    (what, app.call(method, &path, token, body).await)
}

#[tokio::test]
async fn each_role_may_call_exactly_the_endpoints_of_its_role_and_gets_403_elsewhere() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("role-fixture")).await;
    let (token_id, _) = create_token(&app, "reader").await;
    let (agent_machine, _, agent_token) = agent(&app, "agent-host").await;
    let w = World {
        machine_id: m["id"].as_str().unwrap().to_owned(),
        token_id,
        agent_machine_id: agent_machine.parse().unwrap(),
    };
    let mut roles: Vec<(String, String)> = Vec::new();
    roles.push(("admin (bootstrap)".to_owned(), ADMIN.to_owned()));
    for role in ["admin", "operator", "ci", "reader"] {
        roles.push((role.to_owned(), create_token(&app, role).await.1));
    }
    roles.push(("agent".to_owned(), agent_token));

    let mut failures = Vec::new();
    let mut n = 0;
    for (role_label, token) in &roles {
        let role = role_label.split(' ').next().unwrap();
        for (ep, need, ok) in ENDPOINTS {
            n += 1;
            let (what, r) = call(&app, &w, ep, Some(token), n).await;
            if may(role, need) {
                if r.status.as_u16() != ok {
                    failures
                        .push(format!("- {role_label} {what}: expected {ok}, got {} {}", r.status, r.body));
                }
            } else if let Err(why) = check_problem(&r, 403, "forbidden") {
                failures.push(format!("- {role_label} {what}: expected 403 forbidden, got {why}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} role boundary violations:\n{}", failures.len(), failures.join("\n"));

    // Refused writes changed nothing: ci and reader created no machines, the agent none either.
    let created: i64 = sqlx::query_scalar("select count(*) from machine where name like 'create-%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(created, 3, "only admin (twice) and operator created machines");
}

#[tokio::test]
async fn the_public_endpoints_need_no_token_and_the_v1_endpoints_do() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("public-fixture")).await;
    let (token_id, _) = create_token(&app, "reader").await;
    let agent_machine = app.machine(azure_2022("public-agent-host")).await;
    let w = World {
        machine_id: m["id"].as_str().unwrap().to_owned(),
        token_id,
        agent_machine_id: agent_machine["id"].as_str().unwrap().parse().unwrap(),
    };
    for (n, (ep, need, ok)) in ENDPOINTS.into_iter().enumerate() {
        let (what, r) = call(&app, &w, ep, None, n).await;
        if need == Need::None {
            assert_eq!(r.status.as_u16(), ok, "{what} without a token");
        } else {
            assert_unauthorized(&r, &format!("{what} without a token"));
        }
    }
}

#[tokio::test]
async fn a_forbidden_role_is_refused_before_its_body_is_read() {
    let app = TestApp::new().await;
    let reader = app.token("reader").await;
    let bodies: [(&str, Option<&str>, &str); 3] = [
        ("broken JSON", Some("application/json"), "{not json"),
        ("text/plain", Some("text/plain"), "hello"),
        ("an invalid machine", Some("application/json"), r#"{"name": ""}"#),
    ];
    for (what, ct, body) in bodies {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/v1/machines")
            .header(AUTHORIZATION, format!("Bearer {reader}"));
        if let Some(ct) = ct {
            b = b.header(CONTENT_TYPE, ct);
        }
        let r = app.send(b.body(Body::from(body)).unwrap()).await;
        check_problem(&r, 403, "forbidden").unwrap_or_else(|why| panic!("reader posting {what}: {why}"));
    }
}

#[tokio::test]
async fn an_agent_token_gets_403_on_every_human_endpoint_even_for_its_own_machine() {
    let app = TestApp::new().await;
    let (machine_id, _, token) = agent(&app, "agent-own").await;
    for (method, path, body) in [
        (Method::GET, format!("/v1/machines/{machine_id}"), None),
        (Method::PATCH, format!("/v1/machines/{machine_id}"), Some(json!({"labels": {"a": "b"}}))),
        (Method::DELETE, format!("/v1/machines/{machine_id}"), None),
        (Method::POST, format!("/v1/machines/{machine_id}/agent-token"), None),
        (Method::GET, "/v1/machines".to_owned(), None),
        (Method::GET, "/v1/regions".to_owned(), None),
        (Method::GET, "/v1/tokens".to_owned(), None),
    ] {
        let r = app.call(method.clone(), &path, Some(&token), body).await;
        check_problem(&r, 403, "forbidden").unwrap_or_else(|why| panic!("agent {method} {path}: {why}"));
    }
    app.get(&format!("/v1/machines/{machine_id}"), ADMIN).await.ok(200);
}

#[tokio::test]
async fn tokens_with_role_agent_cannot_be_created_through_v1_tokens() {
    let app = TestApp::new().await;
    let r = app.post("/v1/tokens", ADMIN, json!({"name": "sneaky", "role": "agent"})).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "role");
    let count: i64 = sqlx::query_scalar("select count(*) from api_token where role = 'agent'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn deleting_a_machine_makes_its_agent_token_invalid() {
    let app = TestApp::new().await;
    let (machine_id, token_id, token) = agent(&app, "doomed").await;
    // The agent authenticates (403 on a human endpoint, not 401) while its machine exists.
    let r = app.get("/v1/machines", &token).await;
    check_problem(&r, 403, "forbidden").unwrap();
    app.delete(&format!("/v1/machines/{machine_id}"), ADMIN).await.ok(204);
    let r = app.send(with_auth(Method::GET, "/v1/machines", bearer(&token))).await;
    assert_unauthorized(&r, "agent token of a deleted machine");
    app.get(&format!("/v1/tokens/{token_id}"), ADMIN).await.problem(404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// Tokens: random, shown once, stored hashed.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_tokens_secret_appears_only_in_the_answer_that_created_it() {
    let app = TestApp::new().await;
    let created = app.post("/v1/tokens", ADMIN, json!({"name": "ci pipeline", "role": "ci"})).await;
    let body = created.ok(201).clone();
    let id = body["id"].as_str().unwrap().to_owned();
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hp_"), "{token}");
    assert_eq!(body["role"], "ci");
    assert_eq!(body["name"], "ci pipeline");
    assert_eq!(created.headers["location"], format!("/v1/tokens/{id}"));
    let (_, agent_id, agent_token) = agent(&app, "secret-keeper").await;

    let list = app.get("/v1/tokens", ADMIN).await.ok(200).clone();
    let items = list["items"].as_array().unwrap();
    assert!(items.len() >= 3, "{list}");
    for item in items {
        assert!(item.get("token").is_none(), "listed token carries a secret: {item}");
        assert!(item.get("secret_hash").is_none(), "listed token carries its hash: {item}");
    }
    for one in [&id, &agent_id.to_string()] {
        let got = app.get(&format!("/v1/tokens/{one}"), ADMIN).await.ok(200).clone();
        assert_eq!(got["id"], one.as_str());
        assert!(got.get("token").is_none(), "{got}");
        assert!(got.get("secret_hash").is_none(), "{got}");
        let text = got.to_string();
        assert!(!text.contains(&token) && !text.contains(&agent_token), "{text}");
    }
    let text = list.to_string();
    for secret in [&token, &agent_token, &ADMIN.to_owned()] {
        assert!(!text.contains(secret.as_str()), "the list shows a secret");
        let secret_part = secret.strip_prefix("hp_").map(|s| &s[22..]).unwrap_or(secret);
        assert!(!text.contains(secret_part), "the list shows part of a secret");
    }
}

#[tokio::test]
async fn secrets_are_stored_only_as_hashes() {
    let app = TestApp::new().await;
    let (_, a) = create_token(&app, "operator").await;
    let (_, _, b) = agent(&app, "hashed").await;
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("select secret_hash from api_token").fetch_all(&app.pool).await.unwrap();
    assert_eq!(hashes.len(), 3, "bootstrap, operator and agent");
    let rows: Vec<String> = sqlx::query_scalar("select row_to_json(t)::text from api_token t")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let all = rows.join("\n");
    for token in [a.as_str(), b.as_str()] {
        let raw = decode(token);
        let secret = &raw[16..];
        for h in &hashes {
            assert_eq!(h.len(), 32);
            assert_ne!(h.as_slice(), secret, "a secret is stored as is");
            assert!(!h.windows(token.len()).any(|w| w == token.as_bytes()));
        }
        for shown in [token.to_owned(), token[3..].to_owned(), URL_SAFE_NO_PAD.encode(secret), hex(secret)] {
            assert!(!all.contains(&shown), "api_token holds {shown}");
        }
    }
    for h in &hashes {
        assert_ne!(h.as_slice(), ADMIN.as_bytes());
    }
    assert!(
        !all.contains(ADMIN) && !all.contains(&hex(ADMIN.as_bytes())),
        "the bootstrap token is stored as is"
    );
}

#[tokio::test]
async fn tokens_are_random_with_at_least_128_bits_of_secret() {
    let app = TestApp::new().await;
    let (id_a, a) = create_token(&app, "reader").await;
    let (id_b, b) = create_token(&app, "reader").await;
    assert_ne!(a, b);
    let (ra, rb) = (decode(&a), decode(&b));
    assert_eq!(ra.len(), 16 + 32, "16-byte id and 32-byte secret");
    assert_eq!(rb.len(), 16 + 32);
    assert_eq!(ra[..16], *id_a.as_bytes(), "the id part is the token id");
    assert_eq!(rb[..16], *id_b.as_bytes());
    let (sa, sb) = (&ra[16..], &rb[16..]);
    assert!(sa.len() * 8 >= 128);
    assert_ne!(sa, sb, "two secrets differ");
    assert!(sa.iter().zip(sb).filter(|(x, y)| x != y).count() > 16, "secrets share too many bytes");
    let distinct: std::collections::HashSet<u8> = sa.iter().copied().collect();
    assert!(distinct.len() > 8, "a 32-byte secret of few distinct bytes is not random: {sa:?}");
}

// ---------------------------------------------------------------------------------------------
// The bootstrap admin token.
// ---------------------------------------------------------------------------------------------

/// `GET path` with `token` on a router over `pool` (no bootstrap token): status and JSON body.
async fn get_on(pool: &hotpatch_store::PgPool, path: &str, token: &str) -> (u16, Value) {
    let router = hotpatch_api::router(AppState::new(pool.clone()));
    let res = router.oneshot(with_auth(Method::GET, path, bearer(token))).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn ensure_admin_token_on_a_fresh_database_generates_one_working_admin_token_once() {
    let db = hotpatch_store::testing::fresh_db().await;
    let token = ensure_admin_token(&db.pool, None).await.unwrap().expect("a generated admin token");
    assert!(token.starts_with("hp_"), "{token}");
    let (status, list) = get_on(&db.pool, "/v1/tokens", &token).await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    assert_eq!(items[0]["role"], "admin");
    assert_eq!(items[0]["bootstrap"], false);

    assert!(ensure_admin_token(&db.pool, None).await.unwrap().is_none(), "a second start generates nothing");
    let count: i64 = sqlx::query_scalar("select count(*) from api_token").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 1);
    assert_eq!(get_on(&db.pool, "/v1/tokens", &token).await.0, 200, "the generated token still works");
}

#[tokio::test]
async fn ensure_admin_token_refuses_a_short_hotpatch_admin_token() {
    let db = hotpatch_store::testing::fresh_db().await;
    for short in ["", "admin", &"x".repeat(MIN_BOOTSTRAP_LEN - 1)] {
        let r = ensure_admin_token(&db.pool, Some(short)).await;
        assert!(matches!(r, Err(BootstrapError::TooShort)), "{short:?} accepted: {r:?}");
    }
    let count: i64 = sqlx::query_scalar("select count(*) from api_token").fetch_one(&db.pool).await.unwrap();
    assert_eq!(count, 0, "nothing was stored");
    let exact = "y".repeat(MIN_BOOTSTRAP_LEN);
    assert!(ensure_admin_token(&db.pool, Some(&exact)).await.unwrap().is_none());
    assert_eq!(
        get_on(&db.pool, "/v1/tokens", &exact).await.0,
        200,
        "a token of exactly the minimum length works"
    );
}

#[tokio::test]
async fn tokens_are_listed_by_role_and_kind() {
    let app = TestApp::new().await;
    let (ci, _) = create_token(&app, "ci").await;
    let (reader, _) = create_token(&app, "reader").await;
    let (_, agent_id, _) = agent(&app, "web-1").await;
    let ids = |r: &Reply| -> Vec<Uuid> {
        r.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    let all = app.get("/v1/tokens", ADMIN).await;
    let kinds: Vec<&str> =
        all.ok(200)["items"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "bootstrap").count(), 1, "{kinds:?}");
    assert_eq!(ids(&app.get("/v1/tokens?role=ci", ADMIN).await), [ci]);
    assert_eq!(ids(&app.get("/v1/tokens?kind=agent", ADMIN).await), [agent_id]);
    assert_eq!(ids(&app.get("/v1/tokens?kind=api&role=reader", ADMIN).await), [reader]);
    let api = ids(&app.get("/v1/tokens?kind=api", ADMIN).await);
    assert_eq!(api, [ci, reader], "neither the agent's nor the bootstrap token");
    for bad in ["role=root", "kind=person", "owner=me"] {
        app.get(&format!("/v1/tokens?{bad}"), ADMIN).await.problem(400, "validation_failed");
    }
}
