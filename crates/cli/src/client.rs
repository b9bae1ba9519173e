//! The HTTP client of the REST API: base URL, bearer token, timeouts, and the mapping of every
//! failure (problem+json answers, unreachable server, unexpected bodies) into [`CliError`].

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use crate::error::{problem_from_response, with_causes, CliError};

/// How long an ordinary request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Added to a long-poll's `wait` for its request timeout.
const LONG_POLL_GRACE: Duration = Duration::from_secs(15);
/// Tries of a request that is safe to repeat (GETs, POSTs carrying an `Idempotency-Key`) when
/// the server is unreachable or answers 5xx/408/429.
const ATTEMPTS: u32 = 3;

/// Query parameters: repeated keys are allowed (`label=a:b&label=c:d`).
pub type Query = Vec<(&'static str, String)>;

/// A client of one `hotpatchd` (or of the load balancer in front of its replicas).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A client of the API at `base` (e.g. `https://hotpatch.example.com`, a path prefix is kept)
    /// that authenticates with `token`.
    pub fn new(base: &str, token: &str) -> Result<Client, CliError> {
        let url = reqwest::Url::parse(base)
            .map_err(|e| CliError::Input(format!("--url / HOTPATCH_URL '{base}' is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CliError::Input(format!(
                "--url / HOTPATCH_URL '{base}' must be http:// or https://"
            )));
        }
        if token.trim().is_empty() {
            return Err(CliError::Input("--token / HOTPATCH_TOKEN is empty".to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hotpatchctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Input(format!("cannot build the HTTP client: {}", with_causes(&e))))?;
        Ok(Client { http, base: base.trim_end_matches('/').to_owned(), token: token.trim().to_owned() })
    }

    /// The absolute URL of an API path (`/v1/…`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn request(&self, method: Method, path: &str, query: &Query) -> RequestBuilder {
        let mut req =
            self.http.request(method, self.url(path)).bearer_auth(&self.token).timeout(REQUEST_TIMEOUT);
        if !query.is_empty() {
            req = req.query(query);
        }
        req
    }

    /// `GET path?query` → the JSON body. Retried when the server is briefly unavailable.
    pub async fn get(&self, path: &str, query: &Query) -> Result<Value, CliError> {
        self.retrying(|| self.request(Method::GET, path, query)).await
    }

    /// A long-poll `GET` whose `wait` query parameter asks the server to hold the answer up to
    /// `wait`; the request timeout allows for it. Not retried: the caller polls again.
    pub async fn long_poll(&self, path: &str, query: &Query, wait: Duration) -> Result<Value, CliError> {
        send_json(self.request(Method::GET, path, query).timeout(wait + LONG_POLL_GRACE)).await
    }

    /// `GET path?query` → the body as text (e.g. `text/calendar`).
    pub async fn get_text(&self, path: &str, query: &Query) -> Result<String, CliError> {
        let req = self.request(Method::GET, path, query);
        let url = self.url(path);
        let response = req.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
        if !status.is_success() {
            return Err(problem_from_response(status.as_u16(), &bytes));
        }
        String::from_utf8(bytes.to_vec())
            .map_err(|_| CliError::Decode { url, reason: "the body is not UTF-8 text".to_owned() })
    }

    /// `POST path` with a JSON body (none when `body` is `None`) → the JSON answer. Only sent
    /// once: use [`Client::post_idempotent`] for requests that start something.
    pub async fn post(&self, path: &str, query: &Query, body: Option<&Value>) -> Result<Value, CliError> {
        let mut req = self.request(Method::POST, path, query);
        if let Some(body) = body {
            req = req.json(body);
        }
        send_json(req).await
    }

    /// `POST path` with an `Idempotency-Key`: the server answers a repeat with what the first
    /// request made, so the request is retried when the server was briefly unreachable.
    pub async fn post_idempotent(
        &self,
        path: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Result<Value, CliError> {
        self.retrying(|| {
            let req = self.request(Method::POST, path, &Query::new()).header("Idempotency-Key", key);
            match body {
                Some(body) => req.json(body),
                None => req,
            }
        })
        .await
    }

    /// `PUT path` with a JSON body (none when `body` is `None`) → the JSON answer. Retried when
    /// the server is briefly unavailable: a PUT states the result, so repeating it is harmless.
    pub async fn put(&self, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        self.retrying(|| {
            let req = self.request(Method::PUT, path, &Query::new());
            match body {
                Some(body) => req.json(body),
                None => req,
            }
        })
        .await
    }

    /// `PATCH path` with a JSON body → the JSON answer. Only sent once.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        send_json(self.request(Method::PATCH, path, &Query::new()).json(body)).await
    }

    /// `GET path?query` of a stream that does not end (Server-Sent Events): the open response,
    /// to be read chunk by chunk, with no overall timeout (only the connect timeout). Extra
    /// headers (e.g. `Last-Event-ID`) are sent as given.
    pub async fn open_stream(
        &self,
        path: &str,
        query: &Query,
        headers: &[(&str, String)],
    ) -> Result<reqwest::Response, CliError> {
        let mut req =
            self.http.get(self.url(path)).bearer_auth(&self.token).header("Accept", "text/event-stream");
        if !query.is_empty() {
            req = req.query(query);
        }
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let url = self.url(path);
        let response = req.send().await.map_err(|e| unreachable(&url, &e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
            return Err(problem_from_response(status.as_u16(), &bytes));
        }
        Ok(response)
    }

    /// The error of a stream that broke off while being read.
    pub fn stream_error(&self, path: &str, e: &reqwest::Error) -> CliError {
        unreachable(&self.url(path), e)
    }

    /// `DELETE path` → the JSON answer (`null` for 204).
    pub async fn delete(&self, path: &str) -> Result<Value, CliError> {
        send_json(self.request(Method::DELETE, path, &Query::new())).await
    }

    /// Sends the request `build` makes, again after a short pause while the failure is transient.
    async fn retrying(&self, build: impl Fn() -> RequestBuilder) -> Result<Value, CliError> {
        let mut attempt = 1;
        loop {
            match send_json(build()).await {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(500) * 2u32.pow(attempt - 1)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

/// Sends a request and reads its JSON answer (`null` for an empty one).
async fn send_json(req: RequestBuilder) -> Result<Value, CliError> {
    let (client, request) = req.build_split();
    let request = request.map_err(|e| CliError::Input(format!("bad request: {}", with_causes(&e))))?;
    let url = request.url().to_string();
    let response = client.execute(request).await.map_err(|e| unreachable(&url, &e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| unreachable(&url, &e))?;
    if !status.is_success() {
        return Err(problem_from_response(status.as_u16(), &bytes));
    }
    if status == StatusCode::NO_CONTENT || bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::Decode { url, reason: format!("the body is not JSON: {e}") })
}

fn unreachable(url: &str, e: &reqwest::Error) -> CliError {
    let reason = if e.is_timeout() { "no answer in time".to_owned() } else { causes(e) };
    CliError::Unreachable { url: url.to_owned(), reason }
}

/// Why a request failed, without reqwest's own wrapping text (which repeats the URL):
/// `tcp connect error: Connection refused (os error 111)`.
fn causes(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.starts_with("client error (") && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        with_causes(e)
    } else {
        crate::error::one_line(&parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_joined_to_the_base_with_its_prefix_and_without_double_slashes() {
        let c = Client::new("https://hp.example.com/prefix/", "t").unwrap();
        assert_eq!(c.url("/v1/machines"), "https://hp.example.com/prefix/v1/machines");
        let c = Client::new("http://127.0.0.1:8080", "t").unwrap();
        assert_eq!(c.url("/v1/machines"), "http://127.0.0.1:8080/v1/machines");
    }

    #[test]
    fn a_base_that_is_not_an_http_url_or_an_empty_token_is_an_input_error() {
        assert!(matches!(Client::new("127.0.0.1:8080", "t"), Err(CliError::Input(_))));
        assert!(matches!(Client::new("ftp://x", "t"), Err(CliError::Input(_))));
        assert!(matches!(Client::new("http://x", " "), Err(CliError::Input(_))));
    }
}
