//! Calendar feeds: read-only, revocable URLs of a machine's or a maintenance configuration's
//! windows as iCalendar, for calendar apps, which cannot send a bearer token.
//!
//! The URL carries a 256-bit random secret (64 hex digits); only its SHA-256 is stored, so the
//! URL is shown once, when the feed is made. A feed lends what its maker could read: it stops
//! with that token (revoked: the row goes with it; expired: it no longer resolves), and with
//! its machine or configuration. Anyone with a reader token may make one; each sees and revokes
//! their own, an admin every one.

use chrono::{DateTime, Utc};
use hotpatch_store::calendar_feeds::{self, Feed, NewFeed};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::secrets::{hash, random};
use crate::App;

/// Bytes of a feed's secret.
const SECRET_LEN: usize = 32;

/// What a feed serves: one of the two.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFeed {
    /// A machine: its windows, from the configuration that governs it or its off-peak default.
    pub machine_id: Option<Uuid>,
    /// A maintenance configuration: its windows.
    pub maintenance_configuration_id: Option<Uuid>,
}

/// A feed as listed (its URL is not kept: it was shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FeedView {
    /// Its id (to revoke it).
    pub id: Uuid,
    /// The token that made it.
    pub token_id: Uuid,
    /// The machine it serves, or
    pub machine_id: Option<Uuid>,
    /// the maintenance configuration it serves.
    pub maintenance_configuration_id: Option<Uuid>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<Feed> for FeedView {
    fn from(f: Feed) -> Self {
        FeedView {
            id: f.id,
            token_id: f.token_id,
            machine_id: f.machine_id,
            maintenance_configuration_id: f.configuration_id,
            created_at: f.created_at,
        }
    }
}

/// A feed just made, with its URL (shown once).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedFeed {
    /// The feed.
    #[serde(flatten)]
    pub feed: FeedView,
    /// Its URL, relative to the API's base: `/v1/feeds/<secret>.ics`. Anyone holding it reads
    /// the calendar without a token, until the feed is revoked.
    pub url: String,
}

/// What a feed's URL resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedTarget {
    /// A machine's windows.
    Machine(Uuid),
    /// A configuration's windows.
    Configuration(Uuid),
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The secret of a URL (64 hex digits, either case), or `None` when it cannot be one.
fn unhex(s: &str) -> Option<[u8; SECRET_LEN]> {
    // Digits only: `from_str_radix` alone would take a sign ("+1").
    if s.len() != SECRET_LEN * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; SECRET_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn not_found(id: Uuid) -> String {
    format!("no calendar feed with id {id}")
}

/// Makes a feed for `owner` (the token asking) of what `req` names.
pub async fn create(app: &App, owner: Uuid, req: CreateFeed) -> Result<CreatedFeed, AppError> {
    let (field, what) = match (req.machine_id, req.maintenance_configuration_id) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(AppError::field(
                "machine_id",
                "give exactly one of machine_id and maintenance_configuration_id",
            ))
        }
        (Some(id), None) => ("machine_id", format!("no machine with id {id}")),
        (None, Some(id)) => {
            ("maintenance_configuration_id", format!("no maintenance configuration with id {id}"))
        }
    };
    let secret: [u8; SECRET_LEN] = random();
    let new = NewFeed {
        id: Uuid::now_v7(),
        secret_hash: &hash(&secret),
        token_id: owner,
        machine_id: req.machine_id,
        configuration_id: req.maintenance_configuration_id,
    };
    // The row's foreign keys are the check that the machine or configuration exists (no
    // check-then-insert race with a delete).
    let feed = calendar_feeds::insert(&app.pool, &new).await.map_err(|e| match e {
        hotpatch_store::StoreError::NotFound => AppError::field(field, what),
        e => e.into(),
    })?;
    tracing::info!(feed_id = %feed.id, token_id = %owner, "calendar feed created");
    Ok(CreatedFeed { feed: feed.into(), url: format!("/v1/feeds/{}.ics", hex(&secret)) })
}

/// A page of feeds in id order: `owner`'s, or every one when `owner` is `None` (admins).
pub async fn list(
    app: &App,
    owner: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<FeedView>, AppError> {
    Ok(calendar_feeds::list(&app.pool, owner, after, limit).await?.into_iter().map(FeedView::from).collect())
}

/// Revokes feed `id` if `owner` made it (any feed when `owner` is `None`): its URL answers 404
/// from now on.
pub async fn revoke(app: &App, id: Uuid, owner: Option<Uuid>) -> Result<(), AppError> {
    calendar_feeds::delete(&app.pool, id, owner).await.or_not_found(|| not_found(id))?;
    tracing::info!(feed_id = %id, "calendar feed revoked");
    Ok(())
}

/// What the feed with this URL secret serves; `NotFound` for a secret no live feed has (never
/// made, revoked, or its maker's token expired on the service clock).
pub async fn resolve(app: &App, secret: &str) -> Result<FeedTarget, AppError> {
    let gone = || AppError::NotFound("no such calendar feed".to_owned());
    let secret = unhex(secret).ok_or_else(gone)?;
    let subject = calendar_feeds::subject(&app.pool, &hash(&secret)).await?.ok_or_else(gone)?;
    if subject.token_expires_at.is_some_and(|t| t <= app.clock.now()) {
        return Err(gone());
    }
    match (subject.machine_id, subject.configuration_id) {
        (Some(m), _) => Ok(FeedTarget::Machine(m)),
        (None, Some(c)) => Ok(FeedTarget::Configuration(c)),
        (None, None) => Err(AppError::internal("a calendar feed without a subject")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_secret_reads_back_as_the_bytes_it_was_made_from() {
        let secret: [u8; SECRET_LEN] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(unhex(&hex(&secret)), Some(secret));
        assert_eq!(unhex(&hex(&secret).to_uppercase()), Some(secret));
    }

    #[test]
    fn what_cannot_be_a_secret_is_refused_before_any_lookup() {
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
        assert_eq!(unhex(&"+1".repeat(32)), None);
    }
}
