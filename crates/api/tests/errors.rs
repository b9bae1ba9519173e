//! Bad input of every kind gets a 4xx `application/problem+json` answer with a stable `code`:
//! never a 5xx, never axum's plain-text rejection (DESIGN §3, issue 2 scope 5).
//!
//! Every case is a row of a table; a test runs its rows and reports every failing row at once,
//! and one test runs all the rows together and checks that none of them is a 5xx.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{Method, Request};
use common::{azure_2022, with, Reply, TestApp, ADMIN};
use hotpatch_api::{BODY_LIMIT, IMPORT_BODY_LIMIT};
use serde_json::{json, Value};

const JSON: Option<&str> = Some("application/json");
const MIB: usize = 1024 * 1024;

/// One bad request and the problem it must get.
struct Case {
    what: String,
    req: Request<Body>,
    status: u16,
    code: &'static str,
    /// `errors[0].field` when the problem must name a field.
    field: Option<String>,
}

/// A request as the admin (so that auth never hides the answer under test).
fn req(method: Method, path: &str, content_type: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(path).header(AUTHORIZATION, format!("Bearer {ADMIN}"));
    if let Some(ct) = content_type {
        b = b.header(CONTENT_TYPE, ct);
    }
    b.body(body.into()).unwrap()
}

fn case(what: impl Into<String>, req: Request<Body>, status: u16, code: &'static str) -> Case {
    Case { what: what.into(), req, status, code, field: None }
}

fn field_case(what: impl Into<String>, req: Request<Body>, status: u16, field: &str) -> Case {
    Case { what: what.into(), req, status, code: "validation_failed", field: Some(field.to_owned()) }
}

/// `POST /v1/machines` with this raw body, declared as JSON.
fn post_machine_raw(body: impl Into<Body>) -> Request<Body> {
    req(Method::POST, "/v1/machines", JSON, body)
}

fn post_machine(spec: Value) -> Request<Body> {
    post_machine_raw(spec.to_string())
}

fn import_raw(body: impl Into<Body>) -> Request<Body> {
    req(Method::POST, "/v1/machines/import", JSON, body)
}

/// `text` padded with trailing whitespace (still valid JSON) to exactly `len` bytes.
fn padded(text: String, len: usize) -> String {
    assert!(text.len() <= len);
    let pad = len - text.len();
    text + &" ".repeat(pad)
}

/// A well-formed fleet of `n` distinct machines.
fn fleet(prefix: &str, n: usize) -> Value {
    Value::Array((0..n).map(|i| azure_2022(&format!("{prefix}-{i:05}"))).collect())
}

/// Checks one answer against the contract; `Err` says what is wrong.
fn check_problem(r: &Reply, status: u16, code: &str, field: Option<&str>) -> Result<(), String> {
    let mut wrong = Vec::new();
    if r.status.as_u16() != status {
        wrong.push(format!("status {} instead of {status}", r.status.as_u16()));
    }
    let ct = r.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("<none>");
    if ct != "application/problem+json" {
        wrong.push(format!("Content-Type {ct:?} instead of application/problem+json"));
    }
    for key in ["type", "title", "detail", "code"] {
        if r.body[key].as_str().is_none_or(str::is_empty) {
            wrong.push(format!("no `{key}` string"));
        }
    }
    if r.body["status"] != status {
        wrong.push(format!("`status` member is {} instead of {status}", r.body["status"]));
    }
    if r.body["code"] != code {
        wrong.push(format!("code {} instead of {code}", r.body["code"]));
    }
    if let Some(f) = field {
        if r.body["errors"][0]["field"] != f {
            wrong.push(format!("errors[0].field is {} instead of {f:?}", r.body["errors"][0]["field"]));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; body: {}", wrong.join(", "), r.body))
    }
}

/// Runs every case and fails once, listing every case that did not get its problem.
async fn run(app: &TestApp, cases: Vec<Case>) {
    assert!(!cases.is_empty());
    let total = cases.len();
    let mut failures = Vec::new();
    for c in cases {
        let r = app.send(c.req).await;
        if let Err(why) = check_problem(&r, c.status, c.code, c.field.as_deref()) {
            failures.push(format!("- {}: {why}", c.what));
        }
    }
    assert!(failures.is_empty(), "{} of {total} cases failed:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The table, by kind of bad input.
// ---------------------------------------------------------------------------------------------

fn malformed_json() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        ("not JSON at all", "this is not json"),
        ("an unclosed key", "{\"name\": "),
        ("single quotes", "{'name': 'web-1'}"),
        ("a trailing comma", "{\"name\": \"web-1\",}"),
        ("an empty body", ""),
        ("only whitespace", "   \n"),
        ("a lone surrogate escape", "{\"name\": \"\\ud800\"}"),
    ]
    .into_iter()
    .map(|(what, body)| {
        case(format!("POST /v1/machines with {what}"), post_machine_raw(body), 400, "validation_failed")
    })
    .collect();
    cases.push(case(
        "POST /v1/machines with invalid UTF-8",
        post_machine_raw(b"{\"name\": \"\xff\xfe\"}".to_vec()),
        400,
        "validation_failed",
    ));
    cases.push(case(
        "POST /v1/machines/import with broken JSON",
        import_raw("[{]"),
        400,
        "validation_failed",
    ));
    cases.push(case(
        "PATCH /v1/machines/{id} with broken JSON",
        req(Method::PATCH, &format!("/v1/machines/{}", uuid::Uuid::now_v7()), JSON, "{nope"),
        400,
        "validation_failed",
    ));
    cases.push(case(
        "POST /v1/tokens with broken JSON",
        req(Method::POST, "/v1/tokens", JSON, "{\"name\""),
        400,
        "validation_failed",
    ));
    cases.push(case(
        "PUT /v1/regions/{name} with broken JSON",
        req(Method::PUT, "/v1/regions/uksouth", JSON, "tru"),
        400,
        "validation_failed",
    ));
    cases
}

fn truncated_json() -> Vec<Case> {
    let spec = azure_2022("web-1").to_string();
    let fleet = fleet("trunc", 3).to_string();
    vec![
        case(
            "POST /v1/machines with the body cut in half",
            post_machine_raw(spec[..spec.len() / 2].to_owned()),
            400,
            "validation_failed",
        ),
        case(
            "POST /v1/machines without the closing brace",
            post_machine_raw(spec[..spec.len() - 1].to_owned()),
            400,
            "validation_failed",
        ),
        case(
            "POST /v1/machines/import without the closing bracket",
            import_raw(fleet[..fleet.len() - 1].to_owned()),
            400,
            "validation_failed",
        ),
    ]
}

fn trailing_garbage() -> Vec<Case> {
    let spec = azure_2022("web-1").to_string();
    vec![
        case(
            "POST /v1/machines with `xyz` after the object",
            post_machine_raw(format!("{spec} xyz")),
            400,
            "validation_failed",
        ),
        case(
            "POST /v1/machines with two objects",
            post_machine_raw(format!("{spec}{spec}")),
            400,
            "validation_failed",
        ),
        case(
            "POST /v1/machines with a stray brace",
            post_machine_raw(format!("{spec}}}")),
            400,
            "validation_failed",
        ),
        case(
            "POST /v1/machines/import with a comma after the array",
            import_raw(format!("{},", fleet("tail", 1))),
            400,
            "validation_failed",
        ),
        case(
            "PUT /v1/regions/{name} with garbage after the object",
            req(Method::PUT, "/v1/regions/uksouth", JSON, "{\"windows_server_2025_azure_edition\": true} 1"),
            400,
            "validation_failed",
        ),
    ]
}

fn wrong_top_level_type() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        ("an array", json!([azure_2022("web-1")])),
        ("a string", json!("web-1")),
        ("a number", json!(42)),
        ("null", Value::Null),
        ("a boolean", json!(true)),
    ]
    .into_iter()
    .map(|(what, body)| {
        case(format!("POST /v1/machines with {what}"), post_machine(body), 422, "validation_failed")
    })
    .collect();
    cases.push(case(
        "POST /v1/machines/import with an object",
        import_raw(azure_2022("web-1").to_string()),
        422,
        "validation_failed",
    ));
    cases.push(case("POST /v1/machines/import with null", import_raw("null"), 422, "validation_failed"));
    cases.push(case(
        "PATCH /v1/machines/{id} with a string",
        req(Method::PATCH, &format!("/v1/machines/{}", uuid::Uuid::now_v7()), JSON, "\"x\""),
        422,
        "validation_failed",
    ));
    cases.push(case(
        "POST /v1/tokens with an array",
        req(Method::POST, "/v1/tokens", JSON, "[{\"name\": \"x\", \"role\": \"reader\"}]"),
        422,
        "validation_failed",
    ));
    cases.push(case(
        "PUT /v1/regions/{name} with a bare boolean",
        req(Method::PUT, "/v1/regions/uksouth", JSON, "true"),
        422,
        "validation_failed",
    ));
    cases
}

/// Arrays whose items fit the fields of the expected object in declaration order: serde's
/// derived `Deserialize` accepts a struct in this "sequence form", so these pass as objects
/// unless the API refuses them.
fn positional_arrays(f: &Fixture) -> Vec<Case> {
    let positional_machine = json!([
        "positional-1",
        "azure_vm",
        "windows_server_2022",
        {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
         "sku": "2022-datacenter-azure-edition-hotpatch"},
        null, null, null,
        "westeurope",
        null, null, null, null, null,
        "Europe/Berlin",
        true,
        "automatic_by_platform",
        {}
    ]);
    let positional_image = with(
        azure_2022("positional-image"),
        json!({"image": ["MicrosoftWindowsServer", "WindowsServer", "2022-datacenter-azure-edition-hotpatch"]}),
    );
    let positional_scale_set = with(
        azure_2022("positional-scale-set"),
        json!({"hotpatch_enabled": false, "scale_set": ["ss", "flexible"]}),
    );
    vec![
        case(
            "POST /v1/machines with the machine's field values as an array",
            post_machine(positional_machine),
            422,
            "validation_failed",
        ),
        field_case("POST /v1/machines with image as an array", post_machine(positional_image), 422, "image"),
        field_case(
            "POST /v1/machines with scale_set as an array",
            post_machine(positional_scale_set),
            422,
            "scale_set",
        ),
        case(
            "PATCH /v1/machines/{id} with []",
            req(Method::PATCH, &format!("/v1/machines/{}", f.spare_id), JSON, "[]"),
            422,
            "validation_failed",
        ),
        case(
            "POST /v1/tokens with [name, role]",
            req(Method::POST, "/v1/tokens", JSON, r#"["positional", "admin"]"#),
            422,
            "validation_failed",
        ),
        case(
            "PUT /v1/regions/{name} with [true]",
            req(Method::PUT, "/v1/regions/positional", JSON, "[true]"),
            422,
            "validation_failed",
        ),
        case(
            "POST /v1/machines/{id}/agent-token with []",
            req(Method::POST, &format!("/v1/machines/{}/agent-token", f.spare_id), JSON, "[]"),
            422,
            "validation_failed",
        ),
    ]
}

fn wrong_field_types() -> Vec<Case> {
    let base = || azure_2022("web-1");
    let mut image_sku = base();
    image_sku["image"]["sku"] = json!(7);
    let mut label = base();
    label["labels"]["env"] = json!(1);
    let mut cases: Vec<Case> = [
        ("name", json!({"name": 5})),
        ("hotpatch_enabled", json!({"hotpatch_enabled": "yes"})),
        ("update_domain", json!({"update_domain": "x"})),
        ("update_domain", json!({"update_domain": 1.5})),
        ("update_domain", json!({"update_domain": 1_u64 << 40})),
        ("fault_domain", json!({"fault_domain": -1.0})),
        ("labels", json!({"labels": ["env:prod"]})),
        ("image", json!({"image": "MicrosoftWindowsServer:WindowsServer:2022"})),
        ("vbs_enabled", json!({"vbs_enabled": 1})),
        ("os_build", json!({"os_build": 26100})),
        ("region", json!({"region": null})),
    ]
    .into_iter()
    .map(|(field, change)| {
        field_case(format!("POST /v1/machines with {change}"), post_machine(with(base(), change)), 422, field)
    })
    .collect();
    cases.push(field_case("POST /v1/machines with image.sku: 7", post_machine(image_sku), 422, "image.sku"));
    cases.push(field_case("POST /v1/machines with labels.env: 1", post_machine(label), 422, "labels.env"));
    cases.push(field_case(
        "PATCH /v1/machines/{id} with hotpatch_enabled: \"yes\"",
        req(
            Method::PATCH,
            &format!("/v1/machines/{}", uuid::Uuid::now_v7()),
            JSON,
            r#"{"hotpatch_enabled": "yes"}"#,
        ),
        422,
        "hotpatch_enabled",
    ));
    cases.push(field_case(
        "POST /v1/tokens with expires_at: \"tomorrow\"",
        req(Method::POST, "/v1/tokens", JSON, r#"{"name": "x", "role": "reader", "expires_at": "tomorrow"}"#),
        422,
        "expires_at",
    ));
    cases.push(field_case(
        "PUT /v1/regions/{name} with windows_server_2025_azure_edition: \"yes\"",
        req(Method::PUT, "/v1/regions/uksouth", JSON, r#"{"windows_server_2025_azure_edition": "yes"}"#),
        422,
        "windows_server_2025_azure_edition",
    ));
    cases
}

fn unknown_fields() -> Vec<Case> {
    let mut nested = azure_2022("web-1");
    nested["image"]["color"] = json!("blue");
    let mut scale_set =
        with(azure_2022("web-1"), json!({"scale_set": {"name": "ss", "orchestration_mode": "flexible"}}));
    scale_set["scale_set"]["size"] = json!(3);
    vec![
        field_case(
            "POST /v1/machines with a top-level `surprise`",
            post_machine(with(azure_2022("web-1"), json!({"surprise": true}))),
            422,
            "surprise",
        ),
        field_case("POST /v1/machines with image.color", post_machine(nested), 422, "image.color"),
        field_case("POST /v1/machines with scale_set.size", post_machine(scale_set), 422, "scale_set.size"),
        field_case(
            "PATCH /v1/machines/{id} with `surprise`",
            req(Method::PATCH, &format!("/v1/machines/{}", uuid::Uuid::now_v7()), JSON, r#"{"surprise": 1}"#),
            422,
            "surprise",
        ),
        field_case(
            "POST /v1/tokens with `scope`",
            req(Method::POST, "/v1/tokens", JSON, r#"{"name": "x", "role": "reader", "scope": "all"}"#),
            422,
            "scope",
        ),
        field_case(
            "PUT /v1/regions/{name} with `paired_region`",
            req(
                Method::PUT,
                "/v1/regions/uksouth",
                JSON,
                r#"{"windows_server_2025_azure_edition": true, "paired_region": "ukwest"}"#,
            ),
            422,
            "paired_region",
        ),
    ]
}

fn missing_required_fields() -> Vec<Case> {
    let without = |key: &str| {
        let mut spec = azure_2022("web-1");
        spec.as_object_mut().unwrap().remove(key);
        spec
    };
    let mut no_sku = azure_2022("web-1");
    no_sku["image"].as_object_mut().unwrap().remove("sku");
    vec![
        field_case("POST /v1/machines without timezone", post_machine(without("timezone")), 422, "timezone"),
        field_case("POST /v1/machines without name", post_machine(without("name")), 422, "name"),
        field_case("POST /v1/machines without platform", post_machine(without("platform")), 422, "platform"),
        field_case("POST /v1/machines without region", post_machine(without("region")), 422, "region"),
        field_case("POST /v1/machines without image.sku", post_machine(no_sku), 422, "image.sku"),
        field_case("POST /v1/machines with {}", post_machine(json!({})), 422, "name"),
        field_case(
            "POST /v1/tokens without role",
            req(Method::POST, "/v1/tokens", JSON, r#"{"name": "x"}"#),
            422,
            "role",
        ),
        field_case(
            "PUT /v1/regions/{name} with {}",
            req(Method::PUT, "/v1/regions/uksouth", JSON, "{}"),
            422,
            "windows_server_2025_azure_edition",
        ),
    ]
}

fn unknown_enum_values() -> Vec<Case> {
    vec![
        field_case(
            "POST /v1/machines with platform gcp",
            post_machine(with(azure_2022("web-1"), json!({"platform": "gcp"}))),
            422,
            "platform",
        ),
        field_case(
            "POST /v1/machines with os windows_server_2019",
            post_machine(with(azure_2022("web-1"), json!({"os": "windows_server_2019"}))),
            422,
            "os",
        ),
        field_case(
            "POST /v1/machines with platform AZURE_VM (enums are case-sensitive)",
            post_machine(with(azure_2022("web-1"), json!({"platform": "AZURE_VM"}))),
            422,
            "platform",
        ),
        field_case(
            "POST /v1/machines with patch_orchestration wsus",
            post_machine(with(azure_2022("web-1"), json!({"patch_orchestration": "wsus"}))),
            422,
            "patch_orchestration",
        ),
        field_case(
            "POST /v1/machines with scale_set.orchestration_mode mixed",
            post_machine(with(
                azure_2022("web-1"),
                json!({"scale_set": {"name": "ss", "orchestration_mode": "mixed"}}),
            )),
            422,
            "scale_set.orchestration_mode",
        ),
        field_case(
            "POST /v1/tokens with role root",
            req(Method::POST, "/v1/tokens", JSON, r#"{"name": "x", "role": "root"}"#),
            422,
            "role",
        ),
    ]
}

fn invalid_timezones() -> Vec<Case> {
    ["Mars/Olympus", "", "CEST+2", "europe/berlin "]
        .into_iter()
        .map(|tz| {
            field_case(
                format!("POST /v1/machines with timezone {tz:?}"),
                post_machine(with(azure_2022("web-1"), json!({"timezone": tz}))),
                422,
                "timezone",
            )
        })
        .chain([field_case(
            "PATCH /v1/machines/{id} with timezone Mars/Olympus",
            req(
                Method::PATCH,
                &format!("/v1/machines/{}", uuid::Uuid::now_v7()),
                JSON,
                r#"{"timezone": "Mars/Olympus"}"#,
            ),
            422,
            "timezone",
        )])
        .collect()
}

fn oversized_bodies() -> Vec<Case> {
    let over = |json: Value| padded(json.to_string(), BODY_LIMIT + 1);
    vec![
        case(
            "POST /v1/machines with 1 MiB + 1 byte",
            post_machine_raw(over(azure_2022("big-1"))),
            413,
            "payload_too_large",
        ),
        case(
            "POST /v1/machines with 4 MiB",
            post_machine_raw(padded(azure_2022("big-2").to_string(), 4 * MIB)),
            413,
            "payload_too_large",
        ),
        case(
            "PATCH /v1/machines/{id} with 1 MiB + 1 byte",
            req(
                Method::PATCH,
                &format!("/v1/machines/{}", uuid::Uuid::now_v7()),
                JSON,
                over(json!({"name": "x"})),
            ),
            413,
            "payload_too_large",
        ),
        case(
            "POST /v1/tokens with 1 MiB + 1 byte",
            req(Method::POST, "/v1/tokens", JSON, over(json!({"name": "x", "role": "reader"}))),
            413,
            "payload_too_large",
        ),
        case(
            "PUT /v1/regions/{name} with 1 MiB + 1 byte",
            req(
                Method::PUT,
                "/v1/regions/uksouth",
                JSON,
                over(json!({"windows_server_2025_azure_edition": true})),
            ),
            413,
            "payload_too_large",
        ),
        case(
            "POST /v1/machines/import with 17 MiB",
            import_raw(padded(fleet("huge", 3).to_string(), 17 * MIB)),
            413,
            "payload_too_large",
        ),
        case(
            "POST /v1/machines/import with 16 MiB + 1 byte",
            import_raw(padded(fleet("huge", 3).to_string(), IMPORT_BODY_LIMIT + 1)),
            413,
            "payload_too_large",
        ),
    ]
}

fn unsupported_media_types() -> Vec<Case> {
    let spec = azure_2022("web-1").to_string();
    let id = uuid::Uuid::now_v7();
    let mut cases = Vec::new();
    for (label, ct) in [
        ("no Content-Type", None),
        ("text/plain", Some("text/plain")),
        ("form-urlencoded", Some("application/x-www-form-urlencoded")),
        ("multipart/form-data", Some("multipart/form-data; boundary=x")),
        ("a garbage Content-Type", Some("json")),
    ] {
        cases.push(case(
            format!("POST /v1/machines with {label}"),
            req(Method::POST, "/v1/machines", ct, spec.clone()),
            415,
            "unsupported_media_type",
        ));
    }
    for (what, method, path, body) in [
        ("POST /v1/machines/import", Method::POST, "/v1/machines/import".to_owned(), format!("[{spec}]")),
        (
            "PATCH /v1/machines/{id}",
            Method::PATCH,
            format!("/v1/machines/{id}"),
            r#"{"name": "x"}"#.to_owned(),
        ),
        (
            "POST /v1/tokens",
            Method::POST,
            "/v1/tokens".to_owned(),
            r#"{"name": "x", "role": "reader"}"#.to_owned(),
        ),
        (
            "PUT /v1/regions/{name}",
            Method::PUT,
            "/v1/regions/uksouth".to_owned(),
            r#"{"windows_server_2025_azure_edition": true}"#.to_owned(),
        ),
        (
            "POST /v1/machines/{id}/agent-token",
            Method::POST,
            format!("/v1/machines/{id}/agent-token"),
            "{}".to_owned(),
        ),
    ] {
        cases.push(case(
            format!("{what} with no Content-Type"),
            req(method.clone(), &path, None, body.clone()),
            415,
            "unsupported_media_type",
        ));
        cases.push(case(
            format!("{what} with text/plain"),
            req(method, &path, Some("text/plain"), body),
            415,
            "unsupported_media_type",
        ));
    }
    cases
}

fn bad_path_ids() -> Vec<Case> {
    let mut cases = Vec::new();
    for id in ["not-a-uuid", "123", "0000000-0000-0000-0000-000000000000", "%FF", "%00"] {
        for (method, path, body) in [
            (Method::GET, format!("/v1/machines/{id}"), None),
            (Method::PATCH, format!("/v1/machines/{id}"), Some(r#"{"name": "x"}"#)),
            (Method::DELETE, format!("/v1/machines/{id}"), None),
            (Method::POST, format!("/v1/machines/{id}/agent-token"), Some("{}")),
            (Method::GET, format!("/v1/tokens/{id}"), None),
            (Method::DELETE, format!("/v1/tokens/{id}"), None),
        ] {
            let what = format!("{method} {path}");
            let r = match body {
                Some(b) => req(method, &path, JSON, b),
                None => req(method, &path, None, Body::empty()),
            };
            cases.push(case(what, r, 400, "validation_failed"));
        }
    }
    cases
}

fn bad_region_names() -> Vec<Case> {
    let body = r#"{"windows_server_2025_azure_edition": true}"#;
    let long = "a".repeat(65);
    let mut cases = Vec::new();
    for name in ["UK%20South", "UKSOUTH", "uk_south", "%FF", "uk%00south", long.as_str()] {
        let path = format!("/v1/regions/{name}");
        cases.push(case(
            format!("GET {path}"),
            req(Method::GET, &path, None, Body::empty()),
            400,
            "validation_failed",
        ));
        cases.push(case(
            format!("PUT {path}"),
            req(Method::PUT, &path, JSON, body),
            400,
            "validation_failed",
        ));
    }
    cases
}

fn bad_list_queries() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("cursor=garbage", "cursor"),
        ("cursor=", "cursor"),
        ("cursor=%FF%FE", "cursor"),
        ("os=windows_server_2019", "os"),
        ("os=", "os"),
        ("hotpatch_status=bogus", "hotpatch_status"),
        ("label=nocolon", "label"),
        ("label=:prod", "label"),
        ("colour=blue", "colour"),
        ("regions=uksouth", "regions"),
    ]
    .into_iter()
    .map(|(q, field)| {
        let path = format!("/v1/machines?{q}");
        field_case(format!("GET {path}"), req(Method::GET, &path, None, Body::empty()), 400, field)
    })
    .collect();
    for q in ["limit=0", "limit=abc", "cursor=garbage"] {
        let path = format!("/v1/tokens?{q}");
        cases.push(case(
            format!("GET {path}"),
            req(Method::GET, &path, None, Body::empty()),
            400,
            "validation_failed",
        ));
    }
    cases
}

fn unknown_routes() -> Vec<Case> {
    let id = uuid::Uuid::now_v7();
    ["/v1/nope", "/nope", "/v2/machines", &format!("/v1/machines/{id}/nope"), "/v1/machines/import/x", "/v1/"]
        .into_iter()
        .map(|p| case(format!("GET {p}"), req(Method::GET, p, None, Body::empty()), 404, "not_found"))
        .chain([case(
            "POST /v1/nope with a JSON body",
            req(Method::POST, "/v1/nope", JSON, "{}"),
            404,
            "not_found",
        )])
        .collect()
}

fn wrong_methods() -> Vec<Case> {
    let id = uuid::Uuid::now_v7();
    [
        (Method::PUT, "/v1/machines".to_owned()),
        (Method::DELETE, "/v1/machines".to_owned()),
        (Method::GET, "/v1/machines/import".to_owned()),
        (Method::PUT, format!("/v1/machines/{id}")),
        (Method::POST, format!("/v1/machines/{id}")),
        (Method::GET, format!("/v1/machines/{id}/agent-token")),
        (Method::PUT, "/v1/tokens".to_owned()),
        (Method::PATCH, format!("/v1/tokens/{id}")),
        (Method::POST, "/v1/regions".to_owned()),
        (Method::DELETE, "/v1/regions/uksouth".to_owned()),
        (Method::POST, "/healthz".to_owned()),
        (Method::POST, "/metrics".to_owned()),
        (Method::DELETE, "/openapi.json".to_owned()),
    ]
    .into_iter()
    .map(|(m, p)| case(format!("{m} {p}"), req(m, &p, JSON, "{}"), 405, "method_not_allowed"))
    .collect()
}

fn unknown_ids() -> Vec<Case> {
    let id = uuid::Uuid::now_v7();
    vec![
        case(
            "GET an unknown machine",
            req(Method::GET, &format!("/v1/machines/{id}"), None, Body::empty()),
            404,
            "not_found",
        ),
        case(
            "PATCH an unknown machine",
            req(Method::PATCH, &format!("/v1/machines/{id}"), JSON, r#"{"name": "x"}"#),
            404,
            "not_found",
        ),
        case(
            "DELETE an unknown machine",
            req(Method::DELETE, &format!("/v1/machines/{id}"), None, Body::empty()),
            404,
            "not_found",
        ),
        case(
            "POST an agent token for an unknown machine",
            req(Method::POST, &format!("/v1/machines/{id}/agent-token"), None, Body::empty()),
            404,
            "not_found",
        ),
        case(
            "GET an unknown token",
            req(Method::GET, &format!("/v1/tokens/{id}"), None, Body::empty()),
            404,
            "not_found",
        ),
        case(
            "DELETE an unknown token",
            req(Method::DELETE, &format!("/v1/tokens/{id}"), None, Body::empty()),
            404,
            "not_found",
        ),
        case(
            "GET an unknown region",
            req(Method::GET, "/v1/regions/nowhere", None, Body::empty()),
            404,
            "not_found",
        ),
    ]
}

/// Machines the conflict cases collide with.
struct Fixture {
    /// Id of the machine named `taken-b`.
    other_id: String,
    /// Id of a machine no case may change.
    spare_id: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    app.machine(azure_2022("taken-a")).await;
    let b = app.machine(azure_2022("taken-b")).await;
    let c = app.machine(azure_2022("spare")).await;
    Fixture { other_id: b["id"].as_str().unwrap().to_owned(), spare_id: c["id"].as_str().unwrap().to_owned() }
}

fn duplicate_names(f: &Fixture) -> Vec<Case> {
    let mut import = fleet("dup", 2);
    import[1]["name"] = json!("taken-a");
    vec![
        case("POST a machine with a taken name", post_machine(azure_2022("taken-a")), 409, "conflict"),
        case(
            "PATCH a machine to a taken name",
            req(Method::PATCH, &format!("/v1/machines/{}", f.other_id), JSON, r#"{"name": "taken-a"}"#),
            409,
            "conflict",
        ),
        case("import a machine with a taken name", import_raw(import.to_string()), 409, "conflict"),
        case(
            "import the same name twice",
            import_raw(json!([azure_2022("twice"), azure_2022("twice")]).to_string()),
            409,
            "conflict",
        ),
    ]
}

fn import_sizes() -> Vec<Case> {
    // The count is checked before the items: 10,001 empty objects are over the limit.
    let items = Value::Array(vec![json!({}); 10_001]);
    vec![
        field_case("import of 10,001 items", import_raw(items.to_string()), 422, "body"),
        field_case("import of no items", import_raw("[]"), 422, "body"),
    ]
}

fn control_characters(f: &Fixture) -> Vec<Case> {
    let nul = "a\u{0}b";
    let mut label = azure_2022("nul-label");
    label["labels"]["env"] = json!(nul);
    // Hotpatch off, so that the SKU is not refused by the eligibility rules first.
    let mut sku = with(azure_2022("nul-sku"), json!({"hotpatch_enabled": false}));
    sku["image"]["sku"] = json!(nul);
    let mut import = fleet("nul-import", 2);
    import[1]["labels"]["env"] = json!(nul);
    vec![
        field_case("POST /v1/machines with a NUL in its name", post_machine(azure_2022(nul)), 422, "name"),
        field_case(
            "POST /v1/machines with a NUL in availability_zone",
            post_machine(with(azure_2022("nul-az"), json!({"availability_zone": nul}))),
            422,
            "availability_zone",
        ),
        field_case(
            "POST /v1/machines with a NUL in availability_set",
            post_machine(with(azure_2022("nul-as"), json!({"availability_set": nul}))),
            422,
            "availability_set",
        ),
        field_case(
            "POST /v1/machines with a NUL in scale_set.name",
            post_machine(with(
                azure_2022("nul-ss"),
                json!({"hotpatch_enabled": false, "scale_set": {"name": nul, "orchestration_mode": "flexible"}}),
            )),
            422,
            "scale_set.name",
        ),
        field_case("POST /v1/machines with a NUL in a label value", post_machine(label), 422, "labels.env"),
        field_case("POST /v1/machines with a NUL in image.sku", post_machine(sku), 422, "image.sku"),
        field_case(
            "POST /v1/tokens with a NUL in its name",
            req(Method::POST, "/v1/tokens", JSON, json!({"name": nul, "role": "reader"}).to_string()),
            422,
            "name",
        ),
        field_case(
            "PATCH /v1/machines/{id} with a NUL in availability_zone",
            req(
                Method::PATCH,
                &format!("/v1/machines/{}", f.spare_id),
                JSON,
                json!({"availability_zone": nul}).to_string(),
            ),
            422,
            "availability_zone",
        ),
        field_case(
            "POST /v1/machines/import with a NUL in item 1's label",
            import_raw(import.to_string()),
            422,
            "labels.env",
        ),
        field_case(
            "POST /v1/machines/{id}/agent-token with a NUL in its name",
            req(
                Method::POST,
                &format!("/v1/machines/{}/agent-token", f.spare_id),
                JSON,
                json!({"name": nul}).to_string(),
            ),
            422,
            "name",
        ),
        field_case(
            "GET /v1/machines?region=%00",
            req(Method::GET, "/v1/machines?region=%00", None, Body::empty()),
            400,
            "region",
        ),
        field_case(
            "GET /v1/machines?label=env:%00",
            req(Method::GET, "/v1/machines?label=env:%00", None, Body::empty()),
            400,
            "label",
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// One test per kind of bad input.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400_validation_failed() {
    run(&TestApp::new().await, malformed_json()).await;
}

#[tokio::test]
async fn truncated_json_is_400_validation_failed() {
    run(&TestApp::new().await, truncated_json()).await;
}

#[tokio::test]
async fn trailing_garbage_after_the_json_is_400_validation_failed() {
    run(&TestApp::new().await, trailing_garbage()).await;
}

#[tokio::test]
async fn json_of_the_wrong_top_level_type_is_422_validation_failed() {
    run(&TestApp::new().await, wrong_top_level_type()).await;
}

#[tokio::test]
async fn wrong_field_types_are_422_naming_the_field() {
    run(&TestApp::new().await, wrong_field_types()).await;
}

#[tokio::test]
async fn unknown_fields_at_the_top_level_and_nested_are_422_naming_the_field() {
    run(&TestApp::new().await, unknown_fields()).await;
}

#[tokio::test]
async fn missing_required_fields_are_422_naming_the_field() {
    run(&TestApp::new().await, missing_required_fields()).await;
}

#[tokio::test]
async fn unknown_enum_values_are_422_naming_the_field() {
    run(&TestApp::new().await, unknown_enum_values()).await;
}

#[tokio::test]
async fn an_invalid_timezone_is_422_naming_timezone() {
    run(&TestApp::new().await, invalid_timezones()).await;
}

#[tokio::test]
async fn bodies_over_one_mib_and_imports_over_sixteen_mib_are_413_payload_too_large() {
    run(&TestApp::new().await, oversized_bodies()).await;
}

#[tokio::test]
async fn a_body_just_under_one_mib_is_accepted_on_post_machines() {
    let app = TestApp::new().await;
    let body = padded(azure_2022("just-under").to_string(), BODY_LIMIT);
    let r = app.send(post_machine_raw(body)).await;
    assert_eq!(r.ok(201)["name"], "just-under");
}

#[tokio::test]
async fn an_import_accepts_a_two_mib_body_but_rejects_seventeen_mib_with_413() {
    let app = TestApp::new().await;
    let body = padded(fleet("two-mib", 3).to_string(), 2 * MIB);
    let r = app.send(import_raw(body)).await;
    assert_eq!(r.ok(201)["imported"], 3);

    let body = padded(fleet("seventeen-mib", 3).to_string(), 17 * MIB);
    let r = app.send(import_raw(body)).await;
    check_problem(&r, 413, "payload_too_large", None).unwrap();
    let count: i64 = sqlx::query_scalar("select count(*) from machine").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 3, "the 17 MiB import registered nothing");
}

#[tokio::test]
async fn a_missing_or_non_json_content_type_is_415_unsupported_media_type() {
    run(&TestApp::new().await, unsupported_media_types()).await;
}

#[tokio::test]
async fn json_content_types_with_parameters_or_a_json_suffix_are_accepted() {
    let app = TestApp::new().await;
    for (i, ct) in ["application/json; charset=utf-8", "application/merge-patch+json", "Application/JSON"]
        .into_iter()
        .enumerate()
    {
        let body = azure_2022(&format!("ct-{i}")).to_string();
        let r = app.send(req(Method::POST, "/v1/machines", Some(ct), body)).await;
        assert_eq!(r.status.as_u16(), 201, "{ct}: {}", r.body);
    }
}

#[tokio::test]
async fn a_malformed_id_in_the_path_is_400_validation_failed() {
    run(&TestApp::new().await, bad_path_ids()).await;
}

#[tokio::test]
async fn a_malformed_region_name_in_the_path_is_400_validation_failed() {
    run(&TestApp::new().await, bad_region_names()).await;
}

#[tokio::test]
async fn bad_query_values_on_the_lists_are_400_validation_failed_each() {
    run(&TestApp::new().await, bad_list_queries()).await;
}

#[tokio::test]
async fn an_unknown_route_is_a_404_not_found_problem() {
    run(&TestApp::new().await, unknown_routes()).await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_method_not_allowed_problem() {
    run(&TestApp::new().await, wrong_methods()).await;
}

#[tokio::test]
async fn unknown_ids_are_404_not_found() {
    run(&TestApp::new().await, unknown_ids()).await;
}

#[tokio::test]
async fn a_duplicate_name_is_409_conflict() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    run(&app, duplicate_names(&f)).await;
    let count: i64 = sqlx::query_scalar("select count(*) from machine").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 3, "no conflicting write went through");
}

#[tokio::test]
async fn an_import_of_more_than_ten_thousand_or_of_no_items_is_422() {
    run(&TestApp::new().await, import_sizes()).await;
}

#[tokio::test]
async fn control_characters_in_free_text_fields_and_filters_are_4xx_not_5xx() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    run(&app, control_characters(&f)).await;
    let count: i64 = sqlx::query_scalar("select count(*) from machine").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 3, "nothing was registered");
}

#[tokio::test]
async fn a_json_array_in_place_of_an_object_is_422_even_when_its_items_fit_the_fields_in_order() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    run(&app, positional_arrays(&f)).await;
    let machines: i64 =
        sqlx::query_scalar("select count(*) from machine").fetch_one(&app.pool).await.unwrap();
    assert_eq!(machines, 3, "no machine was registered from an array");
    let tokens: i64 =
        sqlx::query_scalar("select count(*) from api_token").fetch_one(&app.pool).await.unwrap();
    assert_eq!(tokens, 1, "no token was created from an array");
}

#[tokio::test]
async fn problem_documents_have_type_title_status_detail_and_code() {
    let app = TestApp::new().await;
    let r = app.send(post_machine(with(azure_2022("web-1"), json!({"timezone": "Mars/Olympus"})))).await;
    let p = r.problem(422, "validation_failed");
    assert_eq!(p["type"], "urn:hotpatch:problem:validation_failed");
    assert_eq!(p["title"], "Unprocessable Entity");
    assert_eq!(p["errors"][0]["field"], "timezone");
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("Mars/Olympus"), "{p}");
}

#[tokio::test]
async fn every_answer_in_the_whole_error_table_is_a_4xx_problem_and_none_is_a_5xx() {
    let app = TestApp::new().await;
    let f = fixture(&app).await;
    let cases: Vec<Case> = [
        malformed_json(),
        truncated_json(),
        trailing_garbage(),
        wrong_top_level_type(),
        wrong_field_types(),
        unknown_fields(),
        missing_required_fields(),
        unknown_enum_values(),
        invalid_timezones(),
        oversized_bodies(),
        unsupported_media_types(),
        bad_path_ids(),
        bad_region_names(),
        bad_list_queries(),
        unknown_routes(),
        wrong_methods(),
        unknown_ids(),
        duplicate_names(&f),
        import_sizes(),
        control_characters(&f),
        positional_arrays(&f),
    ]
    .into_iter()
    .flatten()
    .collect();
    let total = cases.len();
    let mut failures = Vec::new();
    for c in cases {
        let r = app.send(c.req).await;
        let ct = r.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("<none>").to_owned();
        if !r.status.is_client_error() || ct != "application/problem+json" {
            failures.push(format!("- {}: {} {ct} {}", c.what, r.status, r.body));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} bad requests were not a 4xx problem:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
