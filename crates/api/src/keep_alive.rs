//! `Connection: close` on an answer given before the request's body was read.
//!
//! A request refused early (401 without a token, 403, 404 of an unknown route, 415) is answered
//! without reading its body, and the server then cannot reuse the connection: the unread body is
//! still on it. hyper closes such a connection after the answer; saying so in the answer lets the
//! client know at once, instead of finding out when its next request on the connection fails.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// Middleware: marks the answer `Connection: close` when the request had a body that the
/// handler (or an extractor refusing the request) did not read to its end.
pub(crate) async fn close_if_body_unread(req: Request, next: Next) -> Response {
    let empty =
        req.body().is_end_stream() || req.headers().get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0");
    if empty {
        return next.run(req).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let tracked = read.clone();
    let req = req.map(|inner| Body::new(Tracked { inner, read: tracked }));
    let mut res = next.run(req).await;
    if !read.load(Ordering::Acquire) {
        res.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// A request body that records when it was read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
