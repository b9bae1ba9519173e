//! The error answers every operation shares, declared once.
//!
//! A handler's `#[utoipa::path]` lists the refusals of its own use case (404, 409, the 422 of a
//! rule); the refusals of the layers in front of it (authentication, roles, extractors, body
//! limits, rate limits, an unavailable database) are the same for every route, so they are added
//! here from what the operation declares (parameters, a body), and every error answer is declared
//! as `application/problem+json` with the [`Problem`](crate::error::Problem) schema, as
//! `IntoResponse for ApiError` sends it.

use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{Content, Header, OpenApi as Document, Ref, RefOr, Response};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Adds the shared error answers to every operation and declares every error body as
/// `application/problem+json`.
pub fn complete(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in operations(item) {
            add_shared(path, op);
            for (status, response) in op.responses.responses.iter_mut() {
                if let RefOr::T(response) = response {
                    if is_error(status) {
                        as_problem(response);
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn is_error(status: &str) -> bool {
    status.starts_with('4') || status.starts_with('5')
}

/// The error answers of the layers `op` goes through, each added unless the route describes it.
fn add_shared(path: &str, op: &mut Operation) {
    // Calendar feeds carry their credential in the URL: no token, so no 401 or 403.
    let authenticated = path.starts_with("/v1/") && !path.starts_with("/v1/feeds/");
    let has_params = op.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query | ParameterIn::Header))
    });
    let has_body = op.request_body.is_some();
    let mut shared: Vec<(&str, Response)> = Vec::new();
    if has_params || has_body {
        shared.push(("400", problem("Malformed parameter, header or JSON body (`validation_failed`)")));
    }
    if authenticated {
        let mut unauthorized = problem("No token, or an unknown, revoked or expired one (`unauthorized`)");
        unauthorized
            .headers
            .insert("WWW-Authenticate".to_owned(), header("`Bearer`: the scheme the API expects"));
        shared.push(("401", unauthorized));
        shared.push(("403", problem("The token's role may not do this (`forbidden`)")));
    }
    if has_body {
        shared.push(("413", problem("Body over the endpoint's limit (`payload_too_large`)")));
        shared.push(("415", problem("Body not declared as JSON (`unsupported_media_type`)")));
        shared.push(("422", problem("Body of the wrong shape or with invalid fields (`validation_failed`)")));
    }
    // The address's rate applies to every /v1/ path, a feed's too.
    if path.starts_with("/v1/") {
        let mut limited = problem(
            "Over the token's or the address's request rate, or too many event streams or long polls held open (`rate_limited`)",
        );
        limited.headers.insert("Retry-After".to_owned(), header("Seconds to wait before trying again"));
        shared.push(("429", limited));
    }
    shared.push(("500", problem("The server failed; the cause is logged, not sent (`internal`)")));
    let mut unavailable = problem("The database is unreachable or the replica is draining (`unavailable`)");
    unavailable.headers.insert("Retry-After".to_owned(), header("Seconds to wait before trying again"));
    shared.push(("503", unavailable));
    for (status, response) in shared {
        op.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(response));
    }
}

/// An error answer with a problem document.
fn problem(description: &str) -> Response {
    let mut response = Response::new(description);
    as_problem(&mut response);
    response
}

/// Declares `response`'s body as a problem document: error answers are never `application/json`.
fn as_problem(response: &mut Response) {
    response.content.shift_remove("application/json");
    response.content.insert(PROBLEM_JSON.to_owned(), Content::new(Some(Ref::from_schema_name("Problem"))));
}

fn header(description: &str) -> Header {
    let mut header = Header::new(Object::with_type(Type::String));
    header.description = Some(description.to_owned());
    header
}
