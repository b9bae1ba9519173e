//! Signing in with an API token (exchanged for a session cookie) and signing out.
//!
//! The sign-in form has no session to take a CSRF secret from, so it uses a double submit: a
//! random value in a `SameSite=Strict` cookie scoped to `/signin` and the same value in the form.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hotpatch_app::console;
use maud::{html, DOCTYPE};

use crate::error::{app_status, ConsoleError};
use crate::layout::head;
use crate::session::{self, cookie, random_secret, same_secret, set_cookie, Posted, COOKIE, SIGNIN_COOKIE};
use crate::Host;

/// How long a sign-in form stays usable.
const FORM_SECS: i64 = 3600;

fn form_page(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    let secret = random_secret();
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head { (head("Sign in")) }
            body {
                main id="main" class="signin" {
                    h1 { "Sign in to hotpatch" }
                    @if let Some(e) = error { p.error role="alert" id="signin-error" { (e) } }
                    form.stack method="post" action="/signin" {
                        input type="hidden" name="csrf" value=(secret);
                        label for="token" { "API token" }
                        p.hint id="token-hint" {
                            "An admin, operator, ci or reader token (" code { "hp_…" } "). It is exchanged for a "
                            "session cookie and not kept in the browser."
                        }
                        input id="token" name="token" type="password" autocomplete="off" required
                            aria-describedby="token-hint" autofocus;
                        p { button type="submit" { "Sign in" } }
                    }
                }
            }
        }
    };
    let cookie = set_cookie(headers, SIGNIN_COOKIE, &secret, "/signin", FORM_SECS);
    (
        status,
        [(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body,
    )
        .into_response()
}

/// `GET /signin`.
pub async fn form(headers: HeaderMap) -> Response {
    form_page(&headers, StatusCode::OK, None)
}

/// `POST /signin`: checks the token, opens a session, sets its cookie and goes to the fleet.
pub async fn submit<H: Host>(State(host): State<H>, request: Request) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    session::same_origin(headers)?;
    let fields = session::form_fields(body).await?;
    let field =
        |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).unwrap_or_default();
    if !same_secret(field("csrf"), cookie(headers, SIGNIN_COOKIE).unwrap_or_default()) {
        return Ok(form_page(
            headers,
            StatusCode::FORBIDDEN,
            Some("The form expired or was not sent from this page: try again."),
        ));
    }
    let Some(verified) = host.verify(field("token")).await? else {
        tracing::info!("console sign-in refused: invalid token");
        return Ok(form_page(
            headers,
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid (or it has expired)."),
        ));
    };
    let opened = match console::open(host.app(), verified.token_id, verified.role).await {
        Ok(o) => o,
        Err(e) => {
            let (status, message) = app_status(&e);
            return Ok(form_page(headers, status, Some(&message)));
        }
    };
    if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
        slot.set(host.app(), verified.token_id, verified.role);
    }
    let value = URL_SAFE_NO_PAD.encode(opened.secret);
    let cookies = AppendHeaders([
        (header::SET_COOKIE, set_cookie(headers, COOKIE, &value, "/", console::SESSION_LIFETIME_SECS)),
        (header::SET_COOKIE, set_cookie(headers, SIGNIN_COOKIE, "", "/signin", 0)),
    ]);
    Ok((cookies, super::see_other("/")).into_response())
}

/// `POST /signout`: ends the session and clears its cookie.
pub async fn sign_out<H: Host>(
    State(host): State<H>,
    headers: HeaderMap,
    _posted: Posted,
) -> Result<Response, ConsoleError> {
    if let Some(secret) = cookie(&headers, COOKIE).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok()) {
        console::close(host.app(), &secret).await?;
    }
    let clear = set_cookie(&headers, COOKIE, "", "/", 0);
    Ok(([(header::SET_COOKIE, clear)], super::see_other("/signin")).into_response())
}
