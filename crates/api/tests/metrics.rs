//! `/metrics` against what operators read from it: after a little traffic (a machine assessed
//! by its agent, one pass of every duty) every metric that the Grafana dashboard and the
//! Prometheus alert rules in `deploy/` name is exposed, and the domain figures say what happened.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::Method;
use common::{azure_2022, eventually, inventory, TestApp, ADMIN};
use serde_json::{json, Value};

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// What a scrape exposes: samples, and each family's type from its `# TYPE` line.
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut samples = vec![];
        let mut types = BTreeMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            samples.push(parse_sample(line));
        }
        Exposition { samples, types }
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    #[track_caller]
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| {
                s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// The family a name in a query refers to: a histogram's `_bucket`, `_sum` and `_count` are
    /// its own.
    fn exposes(&self, name: &str) -> bool {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (self.types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        self.types.contains_key(family) && self.samples.iter().any(|s| s.name.starts_with(family))
    }
}

/// `name{k="v",…} value`, with label values that may hold braces, commas and escapes.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap_or_else(|| panic!("no value: {line}"));
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next().unwrap_or_else(|| panic!("unclosed labels: {line}"));
            match c {
                '}' => {
                    rest = &inner[i + 1..];
                    break;
                }
                ',' => {}
                '=' => {
                    assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                    let mut value = String::new();
                    loop {
                        match chars.next().unwrap_or_else(|| panic!("unclosed value: {line}")).1 {
                            '\\' => value.push(chars.next().unwrap().1),
                            '"' => break,
                            c => value.push(c),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                c => key.push(c),
            }
        }
    }
    let value = rest.trim().split(' ').next().unwrap();
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value of {line}")),
    };
    Sample { name, labels, value }
}

/// Every `hotpatch_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hotpatch_") {
        let preceded_by_word =
            rest[..i].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded_by_word {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard's panels (rows' panels included) and variables.
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, v) in o {
                    match (k.as_str(), v) {
                        ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                        ("query", Value::String(s)) if s.contains('(') => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    walk(&dashboard["panels"], &mut out);
    walk(&dashboard["templating"], &mut out);
    out
}

fn deploy_file(path: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn scrape(app: &TestApp) -> Exposition {
    let r = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(r.status, 200);
    Exposition::parse(r.body.as_str().unwrap())
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alert_rules_use_is_exposed_after_a_little_traffic() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let machine = app.machine_id(azure_2022("metrics-1")).await;
    let agent = app.agent_token(&machine).await;
    app.assess(&machine, ADMIN).await;

    let queued = scrape(&app).await;
    assert_eq!(queued.value("hotpatch_jobs", &[("kind", "assess"), ("state", "queued")]), 1.0);
    assert_eq!(queued.value("hotpatch_jobs", &[("kind", "install"), ("state", "queued")]), 0.0);
    assert_eq!(queued.value("hotpatch_queue_depth", &[]), 1.0);
    assert!(queued.value("hotpatch_queue_oldest_age_seconds", &[]) >= 0.0);

    let job = app.claim(&agent).await;
    let leased = scrape(&app).await;
    assert_eq!(leased.value("hotpatch_jobs", &[("kind", "assess"), ("state", "leased")]), 1.0);
    assert_eq!(leased.value("hotpatch_queue_depth", &[]), 0.0);
    assert_eq!(leased.value("hotpatch_queue_oldest_age_seconds", &[]), 0.0);
    assert_eq!(app.post("/v1/agent/inventory", &agent, inventory()).await.status, 204);
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200);

    // One pass of every duty, as the server starts them, with the agent's last-seen mark written
    // (the presence duty may run after the liveness duty counts).
    state.presence.flush(&app.pool).await.unwrap();
    let stop = state.shutdown.child_token();
    let duties = hotpatch_app::duties::spawn(&state, &stop, &Default::default());
    let ran = |duty: &'static str| {
        let app = app.clone();
        async move {
            let text = app.call(Method::GET, "/metrics", None, None).await.body.as_str().unwrap().to_owned();
            text.contains(&format!("hotpatch_duty_last_run_timestamp_seconds{{duty=\"{duty}\"}}"))
        }
    };
    for duty in [
        "agent_presence",
        "lease_reaper",
        "periodic_assessments",
        "rollout_dispatcher",
        "webhook_delivery",
        "agent_liveness",
        "event_retention",
    ] {
        eventually(duty, Duration::from_secs(10), || ran(duty)).await;
    }
    stop.cancel();
    for d in duties {
        d.await.unwrap();
    }

    let m = scrape(&app).await;
    assert_eq!(m.value("hotpatch_jobs_finished_total", &[("kind", "assess"), ("outcome", "succeeded")]), 1.0);
    assert_eq!(m.value("hotpatch_jobs", &[("kind", "assess"), ("state", "leased")]), 0.0);
    assert_eq!(m.value("hotpatch_claim_duration_seconds_count", &[("outcome", "job")]), 1.0);
    assert_eq!(
        m.value("hotpatch_agents", &[("state", "connected")]),
        1.0,
        "the liveness leader counted the agent"
    );
    assert_eq!(m.value("hotpatch_leader", &[("duty", "lease_reaper")]), 1.0, "the only replica leads");
    assert_eq!(m.value("hotpatch_leases_expired_total", &[("outcome", "requeued")]), 0.0);
    assert_eq!(m.value("hotpatch_status_cache_misses_total", &[]), 1.0);
    assert_eq!(m.value("hotpatch_rollouts", &[("state", "running")]), 0.0);
    assert!(m.value("hotpatch_db_pool_max_connections", &[]) >= 1.0);
    assert_eq!(
        m.value(
            "hotpatch_http_requests_total",
            &[("method", "POST"), ("route", "/v1/agent/jobs/{id}/result"), ("status", "200")]
        ),
        1.0
    );

    let dashboard: Value = serde_json::from_str(&deploy_file("deploy/grafana/hotpatch.json")).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 38);
    assert!(
        dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "a Prometheus data source variable"
    );
    let expressions = dashboard_expressions(&dashboard);
    assert!(expressions.len() > 20, "{expressions:?}");
    let mut used: BTreeMap<String, &str> = BTreeMap::new();
    for e in &expressions {
        used.extend(metric_names(e).into_iter().map(|n| (n, "deploy/grafana/hotpatch.json")));
    }
    let alerts = deploy_file("deploy/prometheus/alerts.yml");
    let in_alerts = metric_names(&alerts);
    assert!(in_alerts.len() > 5, "{in_alerts:?}");
    used.extend(in_alerts.into_iter().map(|n| (n, "deploy/prometheus/alerts.yml")));
    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !m.exposes(name))
        .map(|(name, file)| format!("{name} ({file})"))
        .collect();
    assert!(missing.is_empty(), "named but not exposed: {missing:?}");
}

#[test]
fn names_are_read_out_of_expressions_without_functions_labels_or_longer_words() {
    let e = r#"histogram_quantile(0.95, sum by (le) (rate(hotpatch_claim_duration_seconds_bucket{duty="hotpatch_x"}[5m]))) / my_hotpatch_other"#;
    assert_eq!(
        metric_names(e).into_iter().collect::<Vec<_>>(),
        ["hotpatch_claim_duration_seconds_bucket", "hotpatch_x"],
        "a label value naming a metric counts too (it is checked, not skipped), a longer word does not"
    );
    let s = parse_sample(
        r#"hotpatch_http_requests_total{method="GET",route="/v1/machines/{id}",status="200"} 3"#,
    );
    assert_eq!(s.labels["route"], "/v1/machines/{id}");
    assert_eq!(s.value, 3.0);
}
