//! The LISTEN/NOTIFY plumbing: the channels the triggers `NOTIFY` on (any replica), what their
//! payloads mean, and the LISTEN connection that hears them all.
//!
//! Notifications are hints, never the truth: what a process does with them (waking waiting
//! claims, dropping kept answers, reading new events) and how it falls back when the connection
//! drops is `hotpatch_app`'s (`wakeups`).

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::StoreError;
use crate::events::EVENT_CHANNEL;

/// Channel of "a job became claimable"; the payload is the machine id.
pub const JOB_CHANNEL: &str = "hotpatch_job";
/// Channel of "a token was revoked or changed"; the payload is the token id.
pub const TOKEN_CHANNEL: &str = "hotpatch_token";
/// Channel of "these machines' status inputs changed" (migration 0009): machine ids,
/// comma-separated, or `*` for every machine.
pub const STATUS_CHANNEL: &str = "hotpatch_status";

/// A notification, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A job became claimable for this machine ([`JOB_CHANNEL`]).
    Job(Uuid),
    /// A token was revoked or changed ([`TOKEN_CHANNEL`]).
    Token,
    /// Events were written ([`EVENT_CHANNEL`]).
    Events,
    /// Status inputs changed ([`STATUS_CHANNEL`]).
    Status(StatusChange),
}

/// Whose status inputs changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// These machines' (ids that do not parse are left out).
    Machines(Vec<Uuid>),
    /// Any machine's: a change of what every answer depends on.
    All,
}

/// The notice a notification on `channel` with `payload` stands for; `None` for a channel this
/// process does not act on, or a job notification whose payload is not a machine id.
pub fn decode(channel: &str, payload: &str) -> Option<Notice> {
    match channel {
        TOKEN_CHANNEL => Some(Notice::Token),
        EVENT_CHANNEL => Some(Notice::Events),
        STATUS_CHANNEL if payload == "*" => Some(Notice::Status(StatusChange::All)),
        STATUS_CHANNEL => {
            let ids = payload.split(',').filter_map(|id| id.parse().ok()).collect();
            Some(Notice::Status(StatusChange::Machines(ids)))
        }
        JOB_CHANNEL => payload.parse().ok().map(Notice::Job),
        _ => None,
    }
}

/// What the LISTEN connection received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A notification this process acts on.
    Notice(Notice),
    /// The connection was lost and sqlx re-established it: notifications may have been missed.
    Reconnected,
}

/// One LISTEN connection on every channel above.
#[derive(Debug)]
pub struct Listener {
    inner: PgListener,
}

impl Listener {
    /// Opens the connection (from `pool`'s options) and listens on every channel.
    pub async fn connect(pool: &PgPool) -> Result<Listener, StoreError> {
        let mut inner = PgListener::connect_with(pool).await?;
        inner.listen_all([JOB_CHANNEL, TOKEN_CHANNEL, EVENT_CHANNEL, STATUS_CHANNEL]).await?;
        Ok(Listener { inner })
    }

    /// The next notification this process acts on (others are skipped), or
    /// [`Received::Reconnected`]. An error means the connection failed: connect again.
    /// Cancel-safe like `PgListener::try_recv`: dropped while waiting, nothing is lost.
    pub async fn recv(&mut self) -> Result<Received, StoreError> {
        loop {
            match self.inner.try_recv().await? {
                Some(n) => {
                    if let Some(notice) = decode(n.channel(), n.payload()) {
                        return Ok(Received::Notice(notice));
                    }
                }
                None => {
                    // The connection was lost: so were idle pooled ones, most likely (a restart,
                    // terminated backends). Check each before use for a while.
                    crate::outage::note_failure();
                    return Ok(Received::Reconnected);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_notification_names_its_machine_and_a_bad_payload_is_skipped() {
        let id = Uuid::now_v7();
        assert_eq!(decode(JOB_CHANNEL, &id.to_string()), Some(Notice::Job(id)));
        assert_eq!(decode(JOB_CHANNEL, "not-a-uuid"), None);
        assert_eq!(decode("some_other_channel", &id.to_string()), None);
    }

    #[test]
    fn a_status_notification_names_machines_or_all_of_them() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(decode(STATUS_CHANNEL, "*"), Some(Notice::Status(StatusChange::All)));
        assert_eq!(
            decode(STATUS_CHANNEL, &format!("{a},junk,{b}")),
            Some(Notice::Status(StatusChange::Machines(vec![a, b])))
        );
    }

    #[test]
    fn token_and_event_notifications_carry_no_payload_that_matters() {
        assert_eq!(decode(TOKEN_CHANNEL, "whatever"), Some(Notice::Token));
        assert_eq!(decode(EVENT_CHANNEL, "42"), Some(Notice::Events));
    }
}
