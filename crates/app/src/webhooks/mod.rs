//! Webhooks: subscriptions of a URL to event types of the change feed, and their signed,
//! retried delivery ([`delivery`]).

pub mod delivery;
pub mod subscriptions;
