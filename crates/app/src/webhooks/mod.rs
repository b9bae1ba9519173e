//! Webhooks: subscriptions of a URL to event types of the change feed, and their signed,
//! retried delivery ([`delivery`]) through a client that refuses internal addresses
//! ([`client`]).

pub mod changes;
pub mod client;
pub mod delivery;
pub mod subscriptions;

pub use client::WebhookClient;
