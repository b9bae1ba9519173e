//! One module per page (or group of pages) of the console.

pub mod fleet;
pub mod machine;
pub mod machines;
pub mod maintenance;
pub mod operations;
pub mod releases;
pub mod rollout;
pub mod rollouts;
pub mod signin;

use axum::response::{IntoResponse, Redirect, Response};

/// After a post, to the page that shows its result (303: the browser then GETs it).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
