//! The fleet inventory through the API: registration, eligibility errors, filters, paging, updates.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use common::{arc_2025, azure_2022, azure_2025, with, TestApp, ADMIN};
use serde_json::json;

#[tokio::test]
async fn registering_a_supported_machine_returns_201_with_location_and_eligibility() {
    let app = TestApp::new().await;
    let r = app.post("/v1/machines", ADMIN, azure_2022("web-1")).await;
    let m = r.ok(201);
    assert_eq!(r.headers["location"], format!("/v1/machines/{}", m["id"].as_str().unwrap()));
    assert_eq!(m["eligibility"], json!({"eligible": true, "preview": false, "reasons": []}));
    assert_eq!(m["hotpatch_status"], "enabled");
    assert_eq!(m["timezone"], "Europe/Berlin");
    assert_eq!(m["labels"], json!({"env": "prod", "team": "web"}));
    assert!(m.get("enrollment").is_none(), "enrollment is for Arc only");

    let got = app.get(&format!("/v1/machines/{}", m["id"].as_str().unwrap()), ADMIN).await;
    assert_eq!(got.ok(200), m);
}

#[tokio::test]
async fn hotpatch_on_an_unsupported_image_is_400_unsupported_image_listing_the_skus() {
    let app = TestApp::new().await;
    let spec = with(
        azure_2022("legacy"),
        json!({"image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter"}}),
    );
    let r = app.post("/v1/machines", ADMIN, spec).await;
    let p = r.problem(400, "unsupported_image");
    let detail = p["detail"].as_str().unwrap();
    for sku in [
        "2022-datacenter-azure-edition-core",
        "2022-datacenter-azure-edition-core-smalldisk",
        "2022-datacenter-azure-edition-hotpatch",
        "2022-datacenter-azure-edition-hotpatch-smalldisk",
    ] {
        assert!(detail.contains(sku), "{detail} lists {sku}");
    }
    assert_eq!(p["reasons"][0]["code"], "unsupported_image");
}

#[tokio::test]
async fn custom_and_container_images_with_hotpatch_on_are_unsupported_images() {
    let app = TestApp::new().await;
    for (i, kind) in ["custom", "container"].iter().enumerate() {
        let mut spec = azure_2022(&format!("img-{i}"));
        spec["image"]["kind"] = json!(kind);
        app.post("/v1/machines", ADMIN, spec).await.problem(400, "unsupported_image");
    }
}

#[tokio::test]
async fn windows_server_2025_in_a_region_without_it_is_400_naming_regions_that_have_it() {
    let app = TestApp::new().await;
    let spec = with(azure_2025("ws25"), json!({"region": "westeurope"}));
    let r = app.post("/v1/machines", ADMIN, spec).await;
    let detail = r.problem(400, "region_not_supported")["detail"].as_str().unwrap().to_owned();
    for region in ["uksouth", "eastasia", "westcentralus"] {
        assert!(detail.contains(region), "{detail} names {region}");
    }
}

#[tokio::test]
async fn regions_are_data_an_admin_can_extend() {
    let app = TestApp::new().await;
    let spec = with(azure_2025("ws25"), json!({"region": "westeurope"}));
    app.post("/v1/machines", ADMIN, spec.clone()).await.problem(400, "region_not_supported");
    let r = app
        .call(
            axum::http::Method::PUT,
            "/v1/regions/westeurope",
            Some(ADMIN),
            Some(json!({"windows_server_2025_azure_edition": true})),
        )
        .await;
    assert_eq!(r.ok(201)["name"], "westeurope");
    let m = app.post("/v1/machines", ADMIN, spec).await;
    assert_eq!(m.ok(201)["hotpatch_status"], "enabled");
    let regions = app.get("/v1/regions", ADMIN).await;
    let names: Vec<&str> =
        regions.ok(200)["items"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["eastasia", "uksouth", "westcentralus", "westeurope"]);
}

#[tokio::test]
async fn taking_availability_away_from_a_region_reevaluates_its_machines() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2025("ws25")).await;
    let r = app
        .call(
            axum::http::Method::PUT,
            "/v1/regions/uksouth",
            Some(ADMIN),
            Some(json!({"windows_server_2025_azure_edition": false})),
        )
        .await;
    r.ok(200);
    let after = app.get(&format!("/v1/machines/{}", m["id"].as_str().unwrap()), ADMIN).await;
    let after = after.ok(200);
    assert_eq!(after["hotpatch_status"], "not_eligible");
    assert_eq!(after["eligibility"]["reasons"][0]["code"], "region_not_supported");
}

#[tokio::test]
async fn uniform_scale_set_with_hotpatch_on_is_400() {
    let app = TestApp::new().await;
    let spec =
        with(azure_2022("vmss-1"), json!({"scale_set": {"name": "web", "orchestration_mode": "uniform"}}));
    app.post("/v1/machines", ADMIN, spec).await.problem(400, "uniform_scale_set_not_supported");
    let flexible =
        with(azure_2022("vmss-2"), json!({"scale_set": {"name": "web", "orchestration_mode": "flexible"}}));
    assert_eq!(app.machine(flexible).await["hotpatch_status"], "enabled");
}

#[tokio::test]
async fn arc_needs_datacenter_or_standard_2025_and_is_a_preview_with_enrollment() {
    let app = TestApp::new().await;
    let m = app.machine(arc_2025("arc-1")).await;
    assert_eq!(m["eligibility"], json!({"eligible": true, "preview": true, "reasons": []}));
    assert_eq!(m["enrollment"], "pending");
    let wrong_os = with(arc_2025("arc-2"), json!({"os": "windows_server_2022"}));
    app.post("/v1/machines", ADMIN, wrong_os).await.problem(400, "arc_edition_not_supported");
    let no_edition = with(arc_2025("arc-3"), json!({"edition": null}));
    app.post("/v1/machines", ADMIN, no_edition).await.problem(400, "arc_edition_not_supported");
    let off = app.machine(with(arc_2025("arc-4"), json!({"hotpatch_enabled": false}))).await;
    assert_eq!(off["enrollment"], "not_enrolled");
    assert_eq!(off["hotpatch_status"], "disabled");
}

#[tokio::test]
async fn hotpatch_off_on_any_image_is_accepted_with_every_failing_reason() {
    let app = TestApp::new().await;
    let spec = json!({
        "name": "old-box", "platform": "azure_vm", "os": "windows_server_2025",
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2019-datacenter"},
        "region": "westeurope", "timezone": "America/New_York", "hotpatch_enabled": false,
        "scale_set": {"name": "legacy", "orchestration_mode": "uniform"}
    });
    let m = app.machine(spec).await;
    assert_eq!(m["hotpatch_status"], "not_eligible");
    let codes: Vec<&str> =
        m["eligibility"]["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["unsupported_image", "region_not_supported", "uniform_scale_set_not_supported"]);
}

#[tokio::test]
async fn timezone_must_be_an_iana_name() {
    let app = TestApp::new().await;
    for tz in ["Mars/Olympus", "CEST", "+01:00", ""] {
        let r = app.post("/v1/machines", ADMIN, with(azure_2022("tz"), json!({"timezone": tz}))).await;
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "timezone", "{tz}");
    }
    for tz in ["Asia/Kathmandu", "Australia/Lord_Howe", "UTC"] {
        app.machine(with(azure_2022(&format!("tz-{tz}")), json!({"timezone": tz}))).await;
    }
}

#[tokio::test]
async fn names_are_unique() {
    let app = TestApp::new().await;
    app.machine(azure_2022("web-1")).await;
    let p = app.post("/v1/machines", ADMIN, azure_2022("web-1")).await;
    assert!(p.problem(409, "conflict")["detail"].as_str().unwrap().contains("web-1"));
}

#[tokio::test]
async fn invalid_fields_are_all_listed() {
    let app = TestApp::new().await;
    let spec =
        with(azure_2022(" "), json!({"region": "West Europe", "update_domain": 25, "labels": {"a:b": "c"}}));
    let r = app.post("/v1/machines", ADMIN, spec).await;
    let fields: Vec<&str> = r.problem(422, "validation_failed")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "region", "update_domain", "labels.a:b"]);
}

#[tokio::test]
async fn list_filters_by_region_os_label_and_hotpatch_status() {
    let app = TestApp::new().await;
    app.machine(azure_2022("a")).await;
    app.machine(with(azure_2022("b"), json!({"region": "northeurope", "labels": {"env": "test"}}))).await;
    app.machine(azure_2025("c")).await;
    app.machine(with(azure_2022("d"), json!({"hotpatch_enabled": false}))).await;
    let names = |q: &'static str| {
        let app = &app;
        async move {
            let r = app.get(&format!("/v1/machines{q}"), ADMIN).await;
            r.ok(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("").await, ["a", "b", "c", "d"]);
    assert_eq!(names("?region=northeurope").await, ["b"]);
    assert_eq!(names("?os=windows_server_2025").await, ["c"]);
    assert_eq!(names("?label=env:prod").await, ["a", "d"]);
    assert_eq!(names("?label=env:prod&label=team:web&region=westeurope").await, ["a", "d"]);
    assert_eq!(names("?label=env:staging").await, Vec::<String>::new());
    assert_eq!(names("?hotpatch_status=disabled").await, ["d"]);
    assert_eq!(names("?hotpatch_status=enabled&os=windows_server_2022").await, ["a", "b"]);
}

#[tokio::test]
async fn list_pages_with_a_cursor_until_next_cursor_is_null() {
    let app = TestApp::new().await;
    for i in 0..7 {
        app.machine(azure_2022(&format!("m-{i}"))).await;
    }
    let mut seen = Vec::new();
    let mut url = "/v1/machines?limit=3".to_owned();
    loop {
        let r = app.get(&url, ADMIN).await;
        let body = r.ok(200).clone();
        seen.extend(body["items"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/machines?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).map(|i| format!("m-{i}")).collect::<Vec<_>>());
    let full = app.get("/v1/machines", ADMIN).await;
    assert!(full.ok(200)["next_cursor"].is_null());
}

#[tokio::test]
async fn patch_changes_fields_and_rechecks_the_rules() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2025("ws25")).await;
    let url = format!("/v1/machines/{}", m["id"].as_str().unwrap());

    let moved = app.patch(&url, ADMIN, json!({"region": "westeurope"})).await;
    moved.problem(400, "region_not_supported");

    let off = app.patch(&url, ADMIN, json!({"region": "westeurope", "hotpatch_enabled": false})).await;
    let off = off.ok(200);
    assert_eq!(off["hotpatch_status"], "not_eligible");
    assert_eq!(off["region"], "westeurope");

    let renamed = app
        .patch(
            &url,
            ADMIN,
            json!({"name": "ws25-renamed", "labels": {"tier": "db"}, "availability_zone": "2"}),
        )
        .await;
    let renamed = renamed.ok(200);
    assert_eq!(renamed["name"], "ws25-renamed");
    assert_eq!(renamed["labels"], json!({"tier": "db"}));
    assert_eq!(renamed["availability_zone"], "2");
    let cleared = app.patch(&url, ADMIN, json!({"availability_zone": null})).await;
    assert!(cleared.ok(200)["availability_zone"].is_null());
    app.patch(&url, ADMIN, json!({"timezone": "Nowhere/Land"})).await.problem(422, "validation_failed");
}

#[tokio::test]
async fn patch_to_a_taken_name_is_a_conflict() {
    let app = TestApp::new().await;
    app.machine(azure_2022("a")).await;
    let b = app.machine(azure_2022("b")).await;
    let r =
        app.patch(&format!("/v1/machines/{}", b["id"].as_str().unwrap()), ADMIN, json!({"name": "a"})).await;
    r.problem(409, "conflict");
}

#[tokio::test]
async fn arc_enrollment_follows_the_operators_switch() {
    let app = TestApp::new().await;
    let m = app.machine(arc_2025("arc")).await;
    let url = format!("/v1/machines/{}", m["id"].as_str().unwrap());
    let off = app.patch(&url, ADMIN, json!({"hotpatch_enabled": false})).await;
    assert_eq!(off.ok(200)["enrollment"], "canceled");
    let on = app.patch(&url, ADMIN, json!({"hotpatch_enabled": true})).await;
    assert_eq!(on.ok(200)["enrollment"], "pending");
}

#[tokio::test]
async fn deleted_machines_are_gone() {
    let app = TestApp::new().await;
    let m = app.machine(azure_2022("gone")).await;
    let url = format!("/v1/machines/{}", m["id"].as_str().unwrap());
    assert_eq!(app.delete(&url, ADMIN).await.status, 204);
    app.get(&url, ADMIN).await.problem(404, "not_found");
    app.delete(&url, ADMIN).await.problem(404, "not_found");
    app.patch(&url, ADMIN, json!({"name": "x"})).await.problem(404, "not_found");
}

#[tokio::test]
async fn machines_are_found_by_exact_name_or_by_a_name_prefix_ending_in_a_star() {
    let app = TestApp::new().await;
    for name in ["web-01", "web-02", "web_x", "db-01"] {
        app.machine(azure_2022(name)).await;
    }
    let names = |page: &serde_json::Value| -> Vec<String> {
        let mut n: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect();
        n.sort();
        n
    };
    let r = app.get("/v1/machines?name=web-01", ADMIN).await;
    assert_eq!(names(r.ok(200)), ["web-01"]);
    let r = app.get("/v1/machines?name=web-*", ADMIN).await;
    assert_eq!(names(r.ok(200)), ["web-01", "web-02"]);
    // `_` and `%` are plain characters, not wildcards.
    let r = app.get("/v1/machines?name=web_*", ADMIN).await;
    assert_eq!(names(r.ok(200)), ["web_x"]);
    let r = app.get("/v1/machines?name=web", ADMIN).await;
    assert!(names(r.ok(200)).is_empty(), "exact unless it ends in *");
    let r = app.get("/v1/machines?name=*&region=westeurope", ADMIN).await;
    assert_eq!(names(r.ok(200)).len(), 4);
}
