//! How long the console's pages take on the server for a 100,000-machine fleet (not a timed test:
//! it prints figures). The service's own router runs in process over a fresh database (the
//! `DATABASE_URL` server, or an embedded one), so each figure is server time: extract, the use
//! cases, PostgreSQL, rendering; no network.
//!
//! The fleet: 100,000 Windows Server 2022/2025 Azure VMs over 10 regions, 3 zones, labels `env`
//! and `team`, imported 10,000 at a time; the January–May 2025 catalog; one rollout of the
//! January baseline to the 10,000 machines of one region. Each page is fetched once to warm it,
//! then `ROUNDS` times (`CONSOLE_BENCH_ROUNDS`, default 20): minimum, median, 95th percentile and
//! maximum are printed. `CONSOLE_BENCH_MACHINES` changes the fleet's size.
//!
//! `cargo bench -p hotpatch-console --bench pages`

// A benchmark prints its figures; a panic is its failure report.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

const ADMIN: &str = "console-bench-admin-0123456789abcdef0123456789";
const REGIONS: [&str; 10] = [
    "westeurope",
    "northeurope",
    "eastus",
    "westus",
    "uksouth",
    "ukwest",
    "eastasia",
    "southeastasia",
    "westcentralus",
    "centralus",
];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = String::from_utf8_lossy(&res.into_body().collect().await.unwrap().to_bytes()).into_owned();
    (status, headers, body)
}

async fn api(router: &Router, method: &str, path: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = send(router, req).await;
    assert!(status.is_success(), "{path}: {status} {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn machine(i: usize) -> Value {
    let region = REGIONS[i % REGIONS.len()];
    let ws2025 = i.is_multiple_of(5) && ["uksouth", "eastasia", "westcentralus"].contains(&region);
    let (os, sku) = if ws2025 {
        ("windows_server_2025", "2025-datacenter-azure-edition")
    } else {
        ("windows_server_2022", "2022-datacenter-azure-edition-hotpatch")
    };
    let timezone = ["Europe/Berlin", "America/New_York", "Asia/Singapore", "UTC"][i % 4];
    let env = ["prod", "staging", "dev"][i % 3];
    json!({
        "name": format!("vm-{i:06}"), "platform": "azure_vm", "os": os,
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": sku},
        "region": region, "availability_zone": ((i / 10) % 3 + 1).to_string(),
        "timezone": timezone,
        "hotpatch_enabled": !i.is_multiple_of(7),
        "labels": {"env": env, "team": format!("team-{}", i % 20)},
    })
}

/// Signs in through the sign-in form; the session cookie.
async fn sign_in(router: &Router) -> String {
    let (_, headers, _) = send(router, Request::get("/signin").body(Body::empty()).unwrap()).await;
    let pre = headers[header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = pre.split_once('=').unwrap().1.to_owned();
    let req = Request::post("/signin")
        .header(header::COOKIE, &pre)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&token={ADMIN}")))
        .unwrap();
    let (_, headers, _) = send(router, req).await;
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("hp_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let machines = env_number("CONSOLE_BENCH_MACHINES", 100_000);
    let rounds = env_number("CONSOLE_BENCH_ROUNDS", 20);
    let db = hotpatch_store::testing::fresh_db().await;
    hotpatch_api::auth::ensure_admin_token(&db.pool, Some(ADMIN)).await.unwrap();
    let state = hotpatch_api::AppState::new(db.pool.clone());
    let app = state.app.clone();
    let router = hotpatch_api::router(state);

    let seeding = Instant::now();
    for chunk in (0..machines).collect::<Vec<_>>().chunks(10_000) {
        let items: Vec<Value> = chunk.iter().map(|&i| machine(i)).collect();
        hotpatch_app::fleet::import::import(&app, items).await.unwrap();
    }
    let mut january = String::new();
    for (i, (kind, month)) in [
        ("baseline", "2025-01"),
        ("hotpatch", "2025-02"),
        ("hotpatch", "2025-03"),
        ("baseline", "2025-04"),
        ("hotpatch", "2025-05"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = api(&router, "POST", "/v1/releases", json!({"os": "windows_server_2022", "kind": kind, "planned": true,
            "month": month, "kb": format!("KB500000{i}"), "build": "20348.2227", "released_at": format!("{month}-14T18:00:00Z")})).await;
        if i == 0 {
            january = r["id"].as_str().unwrap().to_owned();
        }
    }
    let rollout = api(
        &router,
        "POST",
        "/v1/rollouts",
        json!({"release_id": january, "selector": {"regions": ["westeurope"]}}),
    )
    .await;
    let rollout = rollout["id"].as_str().unwrap().to_owned();
    let page = api(&router, "GET", "/v1/machines?limit=1&region=eastus", Value::Null).await;
    let machine_id = page["items"][0]["id"].as_str().unwrap().to_owned();
    let middle = api(&router, "GET", "/v1/machines?limit=1000", Value::Null).await;
    let after = middle["items"][999]["id"].as_str().unwrap_or(&machine_id).to_owned();
    println!(
        "seeded {machines} machines, 5 releases, a rollout of one region in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let cookie = sign_in(&router).await;
    let pages = [
        "/".to_owned(),
        "/?group_by=os".to_owned(),
        "/?label_key=team".to_owned(),
        "/machines".to_owned(),
        "/machines?region=westeurope&status=enabled".to_owned(),
        format!("/machines?label=env:prod&after={after}"),
        format!("/machines/{machine_id}"),
        "/rollouts".to_owned(),
        format!("/rollouts/{rollout}"),
        "/releases".to_owned(),
        "/maintenance".to_owned(),
        "/operations".to_owned(),
        "/machines?name=vm-099999".to_owned(),
    ];
    println!("{rounds} rounds per page, server time in ms (in-process router, no network)");
    println!(
        "{:<48} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "page", "first", "min", "median", "p95", "max", "bytes"
    );
    // The API's answers to the same questions, for reference (bearer token, JSON).
    let reference = [
        "/v1/fleet/summary?group_by=region".to_owned(),
        "/v1/machines?limit=50&include=patch_status".to_owned(),
        "/v1/machines?limit=50&include=patch_status&region=westeurope&hotpatch_status=enabled".to_owned(),
        "/v1/machines?limit=50&include=patch_status&label=env:prod".to_owned(),
    ];
    let all = pages.iter().map(|p| (p, true)).chain(reference.iter().map(|p| (p, false)));
    for (path, console) in all {
        let get = || {
            let req = Request::get(path.as_str());
            let req = if console {
                req.header(header::COOKIE, &cookie)
            } else {
                req.header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            };
            req.body(Body::empty()).unwrap()
        };
        let started = Instant::now();
        let (status, _, body) = send(&router, get()).await;
        let first = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let (status, _, _) = send(&router, get()).await;
            times.push(started.elapsed());
            assert_eq!(status, StatusCode::OK);
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{:<48} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            path.chars().take(48).collect::<String>(),
            ms(first),
            ms(times[0]),
            ms(at(0.5)),
            ms(at(0.95)),
            ms(times[times.len() - 1]),
            body.len()
        );
    }
}
