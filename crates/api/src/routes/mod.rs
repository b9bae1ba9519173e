//! One module per resource, each exposing `router()`.

pub mod calendar;
pub mod health;
pub mod import;
pub mod machines;
pub mod maintenance;
pub mod patch_status;
pub mod regions;
pub mod releases;
pub mod tokens;
pub mod windows;
