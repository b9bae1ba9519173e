//! Sessions and forms through the service's own router (no browser): signing in exchanges a
//! token for a cookie with the right attributes; a revoked token's session ends; agent tokens
//! cannot sign in; a post needs the session's CSRF secret and the role. And a rollout's page
//! naming its failed machines.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used, missing_docs)]

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const ADMIN: &str = "console-admin-token-0123456789abcdef0123456789";

struct Console {
    router: Router,
    _db: hotpatch_store::testing::TestDb,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Console {
    async fn new() -> Console {
        let db = hotpatch_store::testing::fresh_db().await;
        hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
        Console { router: hotpatch_api::router(hotpatch_api::AppState::new(db.pool.clone())), _db: db }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str, cookie: &str) -> Answer {
        self.send(Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: &str, form: &str) -> Answer {
        let req = Request::post(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap();
        self.send(req).await
    }

    async fn api(&self, method: &str, path: &str, body: Value) -> Value {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        serde_json::from_str(&self.send(req).await.body).unwrap_or(Value::Null)
    }

    /// Signs in with `token`: the answer, and the session cookie (`name=value`) when one was set.
    async fn sign_in(&self, token: &str, forwarded_tls: bool) -> (Answer, Option<String>) {
        let form = self.send(Request::get("/signin").body(Body::empty()).unwrap()).await;
        let pre = cookie_of(&form, "hp_signin").unwrap();
        let csrf = pre.split_once('=').unwrap().1.to_owned();
        let mut req = Request::post("/signin")
            .header(header::COOKIE, &pre)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if forwarded_tls {
            req = req.header("x-forwarded-proto", "https");
        }
        let body = format!("csrf={csrf}&token={}", token.replace('+', "%2B"));
        let answer = self.send(req.body(Body::from(body)).unwrap()).await;
        let session = cookie_of(&answer, "hp_session");
        (answer, session)
    }
}

/// The `name=value` of a cookie the answer sets (not a deletion).
fn cookie_of(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")) && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn set_cookie_line(a: &Answer, name: &str) -> String {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap()
        .to_owned()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_token_is_exchanged_for_a_strict_http_only_session_cookie() {
    let c = Console::new().await;
    assert_eq!(c.get("/", "").await.headers[header::LOCATION], "/signin", "signed out: to the sign-in page");
    let (answer, session) = c.sign_in(ADMIN, false).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let line = set_cookie_line(&answer, "hp_session");
    assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict"), "{line}");
    assert!(!line.contains("Secure"), "no TLS, no Secure: {line}");
    let fleet = c.get("/", &session.unwrap()).await;
    assert_eq!(fleet.status, StatusCode::OK);
    assert!(fleet.body.contains("<h1>Fleet</h1>"));
    assert!(fleet.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));

    let (answer, _) = c.sign_in(ADMIN, true).await;
    assert!(set_cookie_line(&answer, "hp_session").ends_with("; Secure"), "behind TLS the cookie is Secure");
}

#[tokio::test]
async fn bad_tokens_and_agent_tokens_do_not_sign_in() {
    let c = Console::new().await;
    let (answer, session) = c.sign_in("hp_not-a-token", false).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(session.is_none());
    let machine = c
        .api("POST", "/v1/machines", json!({"name": "m1", "platform": "azure_vm", "os": "windows_server_2022",
            "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition-hotpatch"},
            "region": "westeurope", "timezone": "UTC", "hotpatch_enabled": true}))
        .await;
    let agent = c
        .api("POST", &format!("/v1/machines/{}/agent-token", machine["id"].as_str().unwrap()), json!({}))
        .await;
    let (answer, session) = c.sign_in(agent["token"].as_str().unwrap(), false).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.body);
    assert!(session.is_none());
}

#[tokio::test]
async fn revoking_the_token_ends_its_sessions() {
    let c = Console::new().await;
    let reader = c.api("POST", "/v1/tokens", json!({"name": "portal person", "role": "reader"})).await;
    let (_, session) = c.sign_in(reader["token"].as_str().unwrap(), false).await;
    let session = session.unwrap();
    assert_eq!(c.get("/machines", &session).await.status, StatusCode::OK);
    let req = Request::delete(format!("/v1/tokens/{}", reader["id"].as_str().unwrap()))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::NO_CONTENT);
    let after = c.get("/machines", &session).await;
    assert_eq!(after.headers[header::LOCATION], "/signin", "the session ended with its token");
}

#[tokio::test]
async fn posts_need_the_csrf_secret_and_the_role() {
    let c = Console::new().await;
    let reader = c.api("POST", "/v1/tokens", json!({"name": "reader", "role": "reader"})).await;
    let (_, admin) = c.sign_in(ADMIN, false).await;
    let admin = admin.unwrap();
    let (_, reader) = c.sign_in(reader["token"].as_str().unwrap(), false).await;
    let reader = reader.unwrap();

    // Without the secret, or with another session's: refused, nothing created.
    let page = c.get("/maintenance/new", &admin).await;
    let form = "name=nightly&frequency=daily&start_time=02:00&duration=PT2H&reboot=if_required";
    assert_eq!(c.post("/maintenance", &admin, form).await.status, StatusCode::FORBIDDEN);
    let reader_csrf = csrf_of(&c.get("/", &reader).await.body);
    assert_eq!(
        c.post("/maintenance", &admin, &format!("csrf={reader_csrf}&{form}")).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(c.api("GET", "/v1/maintenance-configurations", Value::Null).await["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // With it: created.
    let created = c.post("/maintenance", &admin, &format!("csrf={}&{form}", csrf_of(&page.body))).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(
        c.api("GET", "/v1/maintenance-configurations", Value::Null).await["items"].as_array().unwrap().len(),
        1
    );

    // A reader's genuine form is refused by role, and the reader's pages offer no action.
    let refused = c.post("/maintenance", &reader, &format!("csrf={reader_csrf}&{form}")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("operator role"), "{}", refused.body);
    assert!(!c.get("/maintenance", &reader).await.body.contains("/maintenance/new"));

    // Another site's post is refused even with the secret.
    let req = Request::post("/maintenance")
        .header(header::COOKIE, &admin)
        .header(header::HOST, "console.example")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={}&{form}", csrf_of(&page.body))))
        .unwrap();
    assert_eq!(c.send(req).await.status, StatusCode::FORBIDDEN);

    // The console's writes are in the audit log as the API's are: the sign-in, the creation, and
    // the refusals (the reader's, and the forms without the secret, under the session they rode on).
    let audit = c.api("GET", "/v1/audit?limit=100", Value::Null).await;
    let actions: Vec<(String, u64)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["status"].as_u64().unwrap()))
        .collect();
    assert!(actions.contains(&("POST /signin".to_owned(), 303)), "{actions:?}");
    assert!(actions.contains(&("POST /maintenance".to_owned(), 200)), "{actions:?}");
    assert!(actions.contains(&("POST /maintenance".to_owned(), 403)), "{actions:?}");

    // Signing out ends the session.
    let out = c.post("/signout", &admin, &format!("csrf={}", csrf_of(&page.body))).await;
    assert_eq!(out.headers[header::LOCATION], "/signin");
    assert_eq!(c.get("/", &admin).await.headers[header::LOCATION], "/signin");
}

#[tokio::test]
async fn a_rollouts_page_names_its_failed_machines_with_links_and_reasons_and_counts_the_rest() {
    let c = Console::new().await;
    let machines: Vec<Value> = (0..23)
        .map(|i| json!({"name": format!("web-{i:02}"), "platform": "azure_vm", "os": "windows_server_2022",
            "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter-azure-edition-hotpatch"},
            "region": "westeurope", "timezone": "UTC", "hotpatch_enabled": true}))
        .collect();
    c.api("POST", "/v1/machines/import", Value::Array(machines)).await;
    let release = c
        .api("POST", "/v1/releases", json!({"os": "windows_server_2022", "kind": "baseline", "planned": true,
            "month": "2025-01", "kb": "KB5000001", "build": "20348.3000", "released_at": "2025-01-14T18:00:00Z"}))
        .await;
    let rollout = c.api("POST", "/v1/rollouts", json!({"release_id": release["id"], "selector": {}})).await;
    let id = rollout["id"].as_str().unwrap_or_else(|| panic!("{rollout}"));
    // 22 of the 23 failed (as the dispatcher records a failure), web-00 last.
    let failed = sqlx::query(
        "update rollout_machine rm set state = 'failed', error = 'KB5000001 failed: 0x80070005 <access denied>',
                updated_at = now() + case when m.name = 'web-00' then interval '1 minute' else interval '0' end
         from machine m where m.id = rm.machine_id and rm.rollout_id = $1 and m.name <> 'web-22'",
    )
    .bind(id.parse::<uuid::Uuid>().unwrap())
    .execute(&c._db.pool)
    .await
    .unwrap();
    assert_eq!(failed.rows_affected(), 22);

    let (_, session) = c.sign_in(ADMIN, false).await;
    let page = c.get(&format!("/rollouts/{id}"), &session.unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    let listed = page.body.matches("<li data-machine=").count();
    assert_eq!(listed, 20, "a screenful named");
    assert!(page.body.contains("and 2 more"), "the rest counted");
    let web00 = machines_id(&c, "web-00").await;
    let first = page.body.find("<li data-machine=").unwrap();
    assert!(
        page.body[first..]
            .starts_with(&format!("<li data-machine=\"{web00}\"><a href=\"/machines/{web00}\">web-00</a>")),
        "the most recent failure first, linked to its machine: {}",
        &page.body[first..first + 200]
    );
    assert!(page.body.contains("KB5000001 failed: 0x80070005 &lt;access denied&gt;"), "the reason, escaped");
    assert!(!page.body.contains(">web-22<"), "a machine that did not fail is not listed");
}

async fn machines_id(c: &Console, name: &str) -> String {
    let req = Request::get(format!("/v1/machines?name={name}"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let page: Value = serde_json::from_str(&c.send(req).await.body).unwrap();
    page["items"][0]["id"].as_str().unwrap().to_owned()
}
