//! JSON input parsed into typed values, naming the offending field on failure
//! (`serde_path_to_error`'s path) so that a client sees which field is wrong.

use hotpatch_domain::{FieldError, ObjectOnly};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// Deserializes JSON, naming the offending field on failure.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
    let value = T::deserialize(ObjectOnly(tracked)).map_err(|inner| {
        let path = track.path().to_string();
        if inner.is_data() {
            let error = field_error(&path, &inner);
            AppError::Unprocessable {
                detail: format!("{}: {}", error.field, error.message),
                errors: vec![error],
            }
        } else {
            AppError::BadRequest {
                detail: format!("the request body is not valid JSON: {inner}"),
                errors: vec![],
            }
        }
    })?;
    de.end().map_err(|e| AppError::BadRequest {
        detail: format!("the request body is not valid JSON: {e}"),
        errors: vec![],
    })?;
    Ok(value)
}

/// A field error from a serde data error at `path` (serde_path_to_error's notation).
pub fn field_error(path: &str, e: &serde_json::Error) -> FieldError {
    let full = e.to_string();
    // serde_json appends the position; the field path says more to a client.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    let mut field = if path == "." { String::new() } else { path.to_owned() };
    // A missing field is reported at its parent; name the field itself.
    if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
        field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
    }
    if field.is_empty() {
        field = "body".to_owned();
    }
    FieldError::new(field, message)
}
