//! The web console (`hotpatch_console`) mounted on this service: it reaches the application
//! through the same state, and checks a sign-in token with the API's own bearer check.

use hotpatch_app::{App, AppError};
use hotpatch_console::{Host, Verified};

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
}
