//! The web console (`hotpatch_console`) mounted on this service: it reaches the application
//! through the same state, and checks a sign-in token with the API's own bearer check.

use hotpatch_app::{App, AppError};
use hotpatch_console::{Host, Verified};
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

impl Host for AppState {
    fn app(&self) -> &App {
        &self.app
    }

    async fn verify(&self, token: &str) -> Result<Option<Verified>, AppError> {
        match crate::auth::authenticate(self, token.trim()).await {
            Ok(p) => Ok(Some(Verified { token_id: p.token_id, role: p.role })),
            Err(ApiError::Unauthorized(_)) => Ok(None),
            Err(e) => Err(AppError::Unavailable(e.to_string())),
        }
    }

    fn hold_stream(&self, token_id: Uuid) -> Result<Box<dyn std::any::Any + Send + Sync>, String> {
        match self.limits.streams.hold(token_id) {
            Ok(held) => Ok(Box::new(held)),
            Err(e) => Err(e.to_string()),
        }
    }
}
