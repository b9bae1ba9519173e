//! `hotpatchd`, the hotpatch control plane service: configuration, logging, startup with the
//! embedded PostgreSQL default, and graceful shutdown.

mod admin_token;
pub mod config;
pub mod dev;
mod files;
mod shutdown;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::{Application, StartupError};
