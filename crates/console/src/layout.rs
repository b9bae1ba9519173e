//! The page shell (navigation, who is signed in, sign-out) and the small pieces pages share:
//! instants, progress bars, the hidden CSRF field, the live region.

use chrono::{DateTime, FixedOffset, Utc};
use maud::{html, Markup, DOCTYPE};

use crate::session::SignedIn;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The fleet at a glance.
    Fleet,
    /// Machines.
    Machines,
    /// Releases and calendar.
    Releases,
    /// Rollouts.
    Rollouts,
    /// Maintenance configurations.
    Maintenance,
    /// Operations and webhooks.
    Operations,
}

const SECTIONS: [(Nav, &str, &str); 6] = [
    (Nav::Fleet, "/", "Fleet"),
    (Nav::Machines, "/machines", "Machines"),
    (Nav::Releases, "/releases", "Releases"),
    (Nav::Rollouts, "/rollouts", "Rollouts"),
    (Nav::Maintenance, "/maintenance", "Maintenance"),
    (Nav::Operations, "/operations", "Operations"),
];

/// The document head every page shares.
pub fn head(title: &str) -> Markup {
    html! {
        meta charset="utf-8";
        meta name="viewport" content="width=device-width, initial-scale=1";
        // htmx's indicator styles would be an inline <style>, which the policy forbids.
        meta name="htmx-config" content=r#"{"includeIndicatorStyles": false, "allowEval": false}"#;
        title { (title) " · hotpatch" }
        link rel="stylesheet" href="/console/assets/console.css";
        script src="/console/assets/htmx.min.js" defer {}
        script src="/console/assets/console.js" defer {}
    }
}

/// A whole page: navigation, the signed-in token and its role, sign-out, then `body`.
pub fn shell(title: &str, who: &SignedIn, nav: Nav, body: Markup) -> Markup {
    let role: &'static str = who.session.role.into();
    html! {
        (DOCTYPE)
        html lang="en" {
            head { (head(title)) }
            body data-live="/console/events" {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "hotpatch" }
                    nav aria-label="Sections" {
                        ul {
                            @for (section, href, label) in SECTIONS {
                                li { a href=(href) aria-current=[(section == nav).then_some("page")] { (label) } }
                            }
                        }
                    }
                    div.who {
                        span { (who.session.token_name) " · " span.role data-role=(role) { (role) } }
                        form method="post" action="/signout" {
                            (csrf(who))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every form of a session carries.
pub fn csrf(who: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf); }
}

/// A region of the page that refreshes itself (from the same URL) when the change feed says
/// something changed, and every `every` seconds regardless.
pub fn live(id: &str, every: u32, content: Markup) -> Markup {
    let trigger = format!("hp-event from:body throttle:1s, every {every}s");
    html! {
        div id=(id) aria-live="polite" hx-get="" hx-select=(format!("#{id}")) hx-target="this"
            hx-swap="outerHTML" hx-trigger=(trigger) {
            (content)
        }
    }
}

/// An instant in UTC, to the minute.
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional instant, or a dash.
pub fn utc_or_dash(t: Option<DateTime<Utc>>) -> String {
    t.map(utc).unwrap_or_else(|| "—".to_owned())
}

/// A local instant with its offset.
pub fn local(t: DateTime<FixedOffset>) -> String {
    t.format("%Y-%m-%d %H:%M (UTC%:z)").to_string()
}

/// A progress bar with its words: `done` of `total`, and what failed.
pub fn progress(label: &str, done: i64, failed: i64, total: i64) -> Markup {
    let words = if failed > 0 {
        format!("{done} of {total} done, {failed} failed")
    } else {
        format!("{done} of {total} done")
    };
    html! {
        div.progress {
            progress value=(done) max=(total.max(1)) aria-label=(format!("{label}: {words}")) { (words) }
            span.progress-words { (words) }
        }
    }
}

/// A state shown as a badge, coloured by what it means (the words carry the meaning too).
pub fn badge(state: &str) -> Markup {
    let tone = match state {
        "succeeded" | "enabled" | "compliant" | "healthy" | "connected" | "published" | "eligible" => "good",
        "failed" | "halted" | "not_eligible" | "non_compliant" | "unhealthy" | "lost" | "overdue" => "bad",
        "running" | "leased" | "queued" | "open" | "needs_baseline" | "pending" | "projected" => "busy",
        _ => "plain",
    };
    html! { span class=(format!("badge {tone}")) { (state.replace('_', " ")) } }
}

/// A message after an action, or an error a form came back with.
pub fn notice(message: Option<&str>, error: bool) -> Markup {
    html! {
        @if let Some(m) = message {
            @if error { p.error role="alert" { (m) } } @else { p.notice role="status" { (m) } }
        }
    }
}

/// `s` encoded for a URL's query.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
