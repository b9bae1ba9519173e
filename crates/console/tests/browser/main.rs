//! The console in a real browser: Debian's Chromium driven through chromedriver (WebDriver, with
//! fantoccini) against the real `hotpatchd` with a movable clock and a simulated fleet of six
//! machines. One server, one fleet and one browser for the whole binary; the steps run in order
//! as one person would use the console:
//! 1. an admin signs in and sees the fleet;
//! 2. finds a machine by name, assesses it and sees the operation finish;
//! 3. previews a rollout, starts it, pauses and resumes it, and sees its first batch complete
//!    live (the page is not reloaded; the test moves the service clock into the windows);
//! 4. a forged form post (no CSRF secret) is refused;
//! 5. a reader sees no action button, and its posts are refused by the server.
//!
//! Each page is photographed (`HOTPATCH_SCREENSHOTS=<dir>` keeps the PNGs there; the committed
//! ones in `docs/console/` come from `HOTPATCH_SCREENSHOTS=docs/console`). Without Chromium
//! and chromedriver (`.ci/run` installs them) the test says so and passes without running.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod browser;
mod fleet;

use std::time::Duration;

use browser::Browser;
use fleet::Fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some(driver) = browser::find_driver() else {
        println!(
            "SKIPPED: the browser tests need Debian's chromium and chromium-driver \
             (/usr/bin/chromium, /usr/bin/chromedriver; `apt-get install chromium chromium-driver`, as .ci/run does)"
        );
        return;
    };
    let fleet = Fleet::start().await;
    let b = Browser::start(&driver, &fleet.base).await;

    // 1. Sign in; the fleet page.
    b.sign_in(&fleet.token).await;
    b.wait_text("h1", "Fleet").await;
    b.wait_text(".cards", "machines").await;
    b.shot("fleet").await;

    // 2. Find a machine by name; assess it and see the operation finish.
    b.goto("/machines").await;
    b.shot("machines").await;
    let name = format!("{}-00003", fleet::PREFIX);
    b.type_into("input[name=name]", &name).await;
    // The list narrows as one types (htmx), to the one machine.
    b.wait_until("the search finds one machine", |html| {
        html.matches("href=\"/machines/").count() == 1 && html.contains(&name)
    })
    .await;
    b.click("a[href^='/machines/']").await;
    b.wait_text("h1", &name).await;
    let machine_url = b.url().await;
    b.shot("machine").await;
    b.click_confirmed("#assess").await;
    b.wait_text("h1", "Operation").await;
    b.wait_text("#operation-status", "succeeded").await;
    b.wait_text("#operation-live table", &name).await;
    b.shot("operation").await;

    // 3. A rollout: preview, start, pause, resume, and a batch completing live.
    let release = fleet.publish_baseline().await;
    b.goto("/rollouts/new").await;
    b.select("#release_id", &release).await;
    b.type_into("#labels", &format!("sim={}", fleet::PREFIX)).await;
    b.type_into("#max_batch_percent", "100").await;
    b.click("#preview").await;
    b.wait_text("h1", "Rollout preview").await;
    b.wait_text("#plan-planned", "6").await;
    b.shot("rollout-preview").await;
    b.click_confirmed("#start").await;
    b.wait_text("#rollout-state", "running").await;
    let rollout_url = b.url().await;
    let rollout_id = rollout_url.rsplit('/').next().unwrap().to_owned();
    b.click_confirmed("#pause").await;
    b.wait_text("#rollout-state", "paused").await;
    b.click_confirmed("#resume").await;
    b.wait_text("#rollout-state", "running").await;
    // From here the page is only watched: the live region must show the batch completing.
    fleet.drive_until_a_batch_succeeds(&rollout_id, Duration::from_secs(120)).await;
    b.wait_for("tr[data-batch-state='succeeded']").await;
    b.shot("rollout").await;

    // 4. A forged post (no CSRF secret, as another site's form would send) is refused.
    let status = b.post_from_page(&format!("/rollouts/{rollout_id}/cancel"), "csrf=forged").await;
    assert_eq!(status, 403, "a post without the session's CSRF secret is refused");
    assert_ne!(fleet.rollout_state(&rollout_id).await, "canceled", "the forged post changed nothing");

    // The other pages, photographed.
    b.goto("/rollouts").await;
    b.wait_for("#rollouts-live table").await;
    b.shot("rollouts").await;
    b.goto("/releases").await;
    b.wait_text("h1", "Releases").await;
    b.shot("releases").await;
    b.goto("/maintenance/new").await;
    // Sundays 02:30 in Berlin: the spring change skips that hour, and the form says so as one types.
    b.type_into("#name", "prod-sunday").await;
    b.click("input[name=days_of_week][value=saturday]").await;
    b.click("input[name=days_of_week][value=sunday]").await;
    b.type_into("#start_time", "02:30").await;
    b.type_into("#timezone", "Europe/Berlin").await;
    b.wait_text("#check", "Daylight saving time").await;
    b.shot("maintenance").await;
    b.goto("/operations").await;
    b.wait_text("#operations-live", "assess").await;
    b.shot("operations").await;
    b.phone().await;
    b.goto("/").await;
    b.wait_text(".cards", "machines").await;
    b.shot("fleet-phone").await;
    b.desktop().await;

    // 5. A reader: no action button; its posts are refused all the same.
    b.click("header form button").await;
    b.wait_text("h1", "Sign in").await;
    let reader = fleet.token("reader").await;
    b.sign_in(&reader).await;
    b.wait_text("h1", "Fleet").await;
    b.wait_text(".role", "reader").await;
    b.goto_url(&machine_url).await;
    b.wait_text("h1", &name).await;
    for button in ["#assess", "#install", "#rollback"] {
        assert!(!b.exists(button).await, "a reader is offered {button}");
    }
    b.goto_url(&rollout_url).await;
    b.wait_for("#rollout-state").await;
    for button in ["#pause", "#resume", "#cancel"] {
        assert!(!b.exists(button).await, "a reader is offered {button}");
    }
    b.goto("/rollouts").await;
    assert!(!b.exists("#new-rollout").await, "a reader is offered a new rollout");
    b.goto_url(&rollout_url).await;
    let csrf = b.csrf().await;
    let status = b.post_from_page(&format!("/rollouts/{rollout_id}/pause"), &format!("csrf={csrf}")).await;
    assert_eq!(status, 403, "the server refuses a reader's pause, with a genuine form");
    let machine_path =
        machine_url.split_once("/machines/").map(|(_, id)| format!("/machines/{id}/assess")).unwrap();
    let status = b.post_from_page(&machine_path, &format!("csrf={csrf}")).await;
    assert_eq!(status, 403, "the server refuses a reader's assess");

    b.close().await;
    fleet.stop().await;
}
