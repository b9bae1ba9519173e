//! The one error type of `hotpatchctl` and the exit code each kind of error ends the process with.

use std::path::PathBuf;
use std::process::ExitCode;

/// Everything that can make a command fail. Its `Display` is the single line printed after
/// `error: ` on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error (a problem+json document, or at least an error status).
    #[error("{status} {code}: {detail}")]
    Problem {
        /// HTTP status.
        status: u16,
        /// The problem's stable `code` (`http_<status>` when the body had none).
        code: String,
        /// The problem's `detail`, with the first field errors appended.
        detail: String,
    },
    /// The request did not complete: the server could not be reached, or did not answer in time.
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked for.
        url: String,
        /// Why, with the causes.
        reason: String,
    },
    /// A success answer whose body is not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Decode {
        /// The URL asked for.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A bad argument or input file.
    #[error("{0}")]
    Input(String),
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Output could not be written (e.g. a closed pipe).
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
    /// What was asked for ran and did not succeed: an operation failed or was canceled, a rollout
    /// halted or was canceled, or waiting for it timed out. The text is the reason.
    #[error("{0}")]
    Unsuccessful(String),
}

impl CliError {
    /// The process exit code for this error (documented in the crate README):
    /// 1 the operation or rollout did not succeed, 2 bad arguments or input, 3 the server refused
    /// the request or answered in an unexpected way, 4 the server could not be reached.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Unsuccessful(_) => 1,
            CliError::Input(_) | CliError::Read { .. } => 2,
            CliError::Problem { .. } | CliError::Decode { .. } | CliError::Write(_) => 3,
            CliError::Unreachable { .. } => 4,
        })
    }

    /// Whether trying the same request again may succeed: the server was unreachable, or answered
    /// 5xx, 408 or 429.
    pub fn is_transient(&self) -> bool {
        match self {
            CliError::Unreachable { .. } => true,
            CliError::Problem { status, .. } => *status >= 500 || *status == 408 || *status == 429,
            _ => false,
        }
    }
}

/// The parts of a problem+json body that make its one-line rendering.
#[derive(Debug, Default, serde::Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    errors: Option<Vec<serde_json::Value>>,
}

/// Field errors shown after the detail; the rest are counted.
const ERRORS_SHOWN: usize = 3;

/// The error an answer with this (non-success) status and body stands for. Pure, so the
/// rendering is tested without a server. A body that is not problem+json still yields a useful
/// line: its first 200 characters become the detail. Newlines never reach the output.
pub fn problem_from_response(status: u16, body: &[u8]) -> CliError {
    let problem: ProblemBody = serde_json::from_slice(body).unwrap_or_default();
    let mut detail = problem.detail.or(problem.title).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.chars().take(200).collect::<String>().trim().to_owned()
    });
    if detail.is_empty() {
        detail = "(no detail)".to_owned();
    }
    let errors = problem.errors.unwrap_or_default();
    let listed: Vec<String> = errors
        .iter()
        .take(ERRORS_SHOWN)
        .filter_map(field_error)
        .filter(|e| !detail.contains(e.as_str()))
        .collect();
    if !listed.is_empty() {
        detail.push_str(" (");
        detail.push_str(&listed.join("; "));
        if errors.len() > ERRORS_SHOWN {
            detail.push_str(&format!("; and {} more", errors.len() - ERRORS_SHOWN));
        }
        detail.push(')');
    }
    CliError::Problem {
        status,
        code: problem.code.unwrap_or_else(|| format!("http_{status}")),
        detail: one_line(&detail),
    }
}

/// `[item <index>] <field>: <message>` of one entry of a problem's `errors`.
fn field_error(e: &serde_json::Value) -> Option<String> {
    let message = e.get("message")?.as_str()?;
    let field = e.get("field").and_then(|f| f.as_str()).unwrap_or_default();
    let mut text = String::new();
    if let Some(index) = e.get("index").and_then(serde_json::Value::as_u64) {
        text.push_str(&format!("item {index} "));
    }
    if !field.is_empty() {
        text.push_str(field);
        text.push_str(": ");
    }
    text.push_str(message);
    Some(text)
}

/// `text` with every run of whitespace (newlines included) turned into one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its causes, `outer: inner: …` (reqwest's own text leaves out why).
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    one_line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_renders_as_status_code_and_detail_on_one_line() {
        let body = br#"{"type":"urn:hotpatch:problem:not_found","title":"Not found","status":404,
            "detail":"no machine with id 42\nat all","code":"not_found"}"#;
        let e = problem_from_response(404, body);
        assert_eq!(e.to_string(), "404 not_found: no machine with id 42 at all");
        assert_eq!(e.exit_code(), ExitCode::from(3));
    }

    #[test]
    fn field_errors_follow_the_detail_and_the_rest_are_counted() {
        let body = br#"{"status":422,"code":"validation_failed","detail":"2 of 5 machines are invalid",
            "errors":[{"index":0,"field":"timezone","message":"unknown zone"},
                      {"index":1,"field":"name","message":"taken"},
                      {"index":2,"field":"os","message":"bad"},
                      {"index":4,"field":"os","message":"bad"}]}"#;
        let e = problem_from_response(422, body);
        assert_eq!(
            e.to_string(),
            "422 validation_failed: 2 of 5 machines are invalid (item 0 timezone: unknown zone; \
             item 1 name: taken; item 2 os: bad; and 1 more)"
        );
    }

    #[test]
    fn a_body_that_is_not_a_problem_still_gives_a_line() {
        let e = problem_from_response(502, b"<html>\n bad gateway \n</html>");
        assert_eq!(e.to_string(), "502 http_502: <html> bad gateway </html>");
        assert!(e.is_transient());
        assert_eq!(problem_from_response(500, b"").to_string(), "500 http_500: (no detail)");
        // A field error the detail already says is not repeated.
        let body = br#"{"code":"validation_failed","detail":"selector: names no machine",
            "errors":[{"field":"selector","message":"names no machine"}]}"#;
        assert_eq!(
            problem_from_response(422, body).to_string(),
            "422 validation_failed: selector: names no machine"
        );
    }

    #[test]
    fn a_refused_request_is_not_retried_but_an_unreachable_server_is() {
        assert!(!problem_from_response(409, b"{}").is_transient());
        let e = CliError::Unreachable { url: "http://x".into(), reason: "refused".into() };
        assert!(e.is_transient());
        assert_eq!(e.exit_code(), ExitCode::from(4));
    }
}
