//! The one error of the clients, and how an error answer (problem+json or not) maps to it.

use serde::Deserialize;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The job's lease is gone (409 `lease_lost`): another attempt owns the job now.
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// 404: no such job or machine (or not this agent's).
    #[error("not found: {0}")]
    NotFound(String),
    /// 401: the token is missing, wrong, expired or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Any other error answer.
    #[error("HTTP {status} {code}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's `code` (`http_<status>` when the body had none).
        code: String,
        /// The problem's `detail` (or the start of the body).
        detail: String,
    },
    /// The request did not complete (connect, timeout, reset).
    #[error("transport: {}", with_causes(.0))]
    Transport(#[from] reqwest::Error),
    /// A success answer whose body is not what the protocol says.
    #[error("unexpected response: {0}")]
    Decode(String),
    /// The client cannot be set up as configured (an unreadable CA file).
    #[error("{0}")]
    Config(String),
}

/// An error and its causes, `outer: inner: …` (reqwest's own text leaves out why).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl ClientError {
    /// Whether trying again later may succeed: transport errors, 5xx, 408, 429 and bad bodies.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Decode(_) => true,
            ClientError::Problem { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            ClientError::LeaseLost(_)
            | ClientError::NotFound(_)
            | ClientError::Unauthorized(_)
            | ClientError::Config(_) => false,
        }
    }

    /// The problem `code`, when the server sent an error answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::LeaseLost(_) => Some("lease_lost"),
            ClientError::NotFound(_) => Some("not_found"),
            ClientError::Unauthorized(_) => Some("unauthorized"),
            ClientError::Problem { code, .. } => Some(code),
            ClientError::Transport(_) | ClientError::Decode(_) | ClientError::Config(_) => None,
        }
    }
}

/// The parts of a problem+json body a client reads.
#[derive(Debug, Default, Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// The error an answer with this (non-success) status and body stands for.
///
/// Pure, so the mapping is tested without a server. A body that is not problem+json still
/// yields a useful error: its first 200 characters become the detail.
pub fn error_from_response(status: u16, body: &[u8]) -> ClientError {
    let problem: ProblemBody = serde_json::from_slice(body).unwrap_or_default();
    let detail = problem.detail.or(problem.title).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect::<String>().trim().to_owned()
    });
    let code = problem.code.unwrap_or_else(|| format!("http_{status}"));
    match (status, code.as_str()) {
        (409, "lease_lost") => ClientError::LeaseLost(detail),
        (401, _) => ClientError::Unauthorized(detail),
        (404, _) => ClientError::NotFound(detail),
        _ => ClientError::Problem { status, code, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, code: &str, detail: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": format!("urn:hotpatch:problem:{code}"), "title": "t", "status": status,
            "detail": detail, "code": code,
        }))
        .unwrap()
    }

    #[test]
    fn a_409_lease_lost_problem_is_a_lost_lease() {
        let e = error_from_response(409, &problem(409, "lease_lost", "the lease expired"));
        assert!(matches!(e, ClientError::LeaseLost(ref d) if d == "the lease expired"), "{e:?}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn a_409_with_another_code_stays_a_problem_with_its_code() {
        let e = error_from_response(409, &problem(409, "conflict", "name taken"));
        assert!(
            matches!(e, ClientError::Problem { status: 409, ref code, .. } if code == "conflict"),
            "{e:?}"
        );
        assert_eq!(e.code(), Some("conflict"));
    }

    #[test]
    fn a_401_is_unauthorized_and_a_404_is_not_found_whatever_the_body() {
        assert!(matches!(error_from_response(401, b""), ClientError::Unauthorized(_)));
        assert!(matches!(
            error_from_response(404, &problem(404, "not_found", "no job")),
            ClientError::NotFound(_)
        ));
    }

    #[test]
    fn a_body_that_is_not_json_becomes_the_detail_of_a_retryable_5xx() {
        let e = error_from_response(502, b"Bad Gateway\n");
        match &e {
            ClientError::Problem { status, code, detail } => {
                assert_eq!((*status, code.as_str(), detail.as_str()), (502, "http_502", "Bad Gateway"));
            }
            other => panic!("{other:?}"),
        }
        assert!(e.is_retryable());
    }

    #[test]
    fn client_errors_other_than_timeouts_and_rate_limits_are_not_retried() {
        assert!(!error_from_response(422, &problem(422, "validation_failed", "bad")).is_retryable());
        assert!(error_from_response(429, &problem(429, "rate_limited", "slow down")).is_retryable());
    }
}
