//! Who is signed in: the session cookie, the extractors that require a live session
//! ([`SignedIn`]) and a genuine form post of one ([`Posted`]), and the cookies' attributes.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, and `Secure` when the request came over TLS
//! (`hotpatchd` behind a TLS-terminating proxy says so in `X-Forwarded-Proto` or `Forwarded`).
//! A post must carry the session's CSRF secret in its `csrf` field and, when the browser sends
//! `Origin` or `Sec-Fetch-Site`, come from this origin.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hotpatch_app::console::{self, Session};
use hotpatch_domain::Role;
use rand::RngCore as _;
use subtle::ConstantTimeEq as _;

use crate::error::ConsoleError;
use crate::Host;

/// The session cookie.
pub const COOKIE: &str = "hp_session";
/// The sign-in form's own CSRF cookie (double submit: there is no session yet).
pub const SIGNIN_COOKIE: &str = "hp_signin";
/// Largest form body read.
const FORM_LIMIT: usize = 64 * 1024;

/// A live session of the request's browser.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session.
    pub session: Session,
    /// Its CSRF secret as forms carry it.
    pub csrf: String,
}

impl SignedIn {
    /// Whether the session's role includes `role`.
    pub fn may(&self, role: Role) -> bool {
        self.session.role.allows(role)
    }

    /// Refuses unless the session's role includes `role` (the server's check; pages only hide).
    pub fn require(&self, role: Role) -> Result<(), ConsoleError> {
        if self.may(role) {
            return Ok(());
        }
        let have: &'static str = self.session.role.into();
        let need: &'static str = role.into();
        Err(ConsoleError::Forbidden(format!("this needs the {need} role; you are signed in as {have}")))
    }
}

/// 256 random bits, base64url.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request reached the service over TLS (as a proxy in front of it says).
fn over_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Secure` over TLS; `max_age` 0 deletes it.
pub fn set_cookie(headers: &HeaderMap, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}");
    // Names, values and paths here are base64url or literals: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("hp_invalid=; Max-Age=0"))
}

/// Refuses a post another site made the browser send (when the browser says where it comes from).
pub fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    let forged = || ConsoleError::Forbidden("this form was not sent from the console's own pages".to_owned());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(forged());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
        if host.is_empty() || origin_host != host {
            return Err(forged());
        }
    }
    Ok(())
}

/// Whether `given` is `expected`, in constant time.
pub fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

impl<H: Host> FromRequestParts<H> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, host: &H) -> Result<Self, ConsoleError> {
        if let Some(s) = parts.extensions.get::<SignedIn>() {
            return Ok(s.clone());
        }
        let secret = cookie(&parts.headers, COOKIE)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or(ConsoleError::SignIn)?;
        let session = console::find(host.app(), &secret).await?.ok_or(ConsoleError::SignIn)?;
        let csrf = URL_SAFE_NO_PAD.encode(&session.csrf);
        if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
            slot.set(host.app(), session.token_id, session.role);
        }
        let signed = SignedIn { session, csrf };
        parts.extensions.insert(signed.clone());
        Ok(signed)
    }
}

/// A form posted by a signed-in browser from the console's own page: same origin, and the
/// session's CSRF secret in its `csrf` field.
#[derive(Debug)]
pub struct Posted {
    /// Who posted it.
    pub who: SignedIn,
    /// Its fields in order (a name may repeat).
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of field `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim()).filter(|v| !v.is_empty())
    }

    /// Every non-blank value of field `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

/// Reads a form body (urlencoded).
pub async fn form_fields(body: axum::body::Body) -> Result<Vec<(String, String)>, ConsoleError> {
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| ConsoleError::BadRequest("the form is too large or was cut off".to_owned()))?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

impl<H: Host> FromRequest<H> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, host: &H) -> Result<Self, ConsoleError> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers)?;
        let who = SignedIn::from_request_parts(&mut parts, host).await?;
        let fields = form_fields(body).await?;
        let given = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
        if !same_secret(given, &who.csrf) {
            tracing::warn!(token_id = %who.session.token_id, path = %parts.uri.path(), "console form refused: bad CSRF token");
            return Err(ConsoleError::Forbidden(
                "the form's security token is missing or wrong (a forged or stale form): reload the page and try again"
                    .to_owned(),
            ));
        }
        Ok(Posted { who, fields })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; hp_session=abc; b=2"));
        assert_eq!(cookie(&h, COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cookies_are_secure_only_over_tls() {
        let mut h = HeaderMap::new();
        let plain = set_cookie(&h, COOKIE, "x", "/", 60);
        assert!(plain.to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        assert!(!plain.to_str().unwrap().contains("Secure"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie(&h, COOKIE, "x", "/", 60).to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn posts_from_another_origin_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("console.example:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("http://console.example:8080"));
        assert!(same_origin(&h).is_ok());
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(same_origin(&h).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_origin(&h).is_err());
    }

    #[test]
    fn csrf_secrets_compare_whole_and_never_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("", ""));
    }
}
