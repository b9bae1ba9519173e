//! One module per resource, each exposing `router()`.

pub mod admin;
pub mod agent;
pub mod audit;
pub mod calendar;
pub mod calendar_feeds;
pub mod events;
pub mod fleet;
pub mod health;
pub mod history;
pub mod import;
pub mod install;
pub mod machines;
pub mod maintenance;
pub mod operations;
pub mod patch_status;
pub mod regions;
pub mod releases;
pub mod rollouts;
pub mod tokens;
pub mod webhooks;
pub mod whatif;
pub mod windows;
