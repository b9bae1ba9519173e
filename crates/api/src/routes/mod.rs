//! One module per resource, each exposing `router()`.

pub mod health;
pub mod import;
pub mod machines;
pub mod regions;
pub mod tokens;
