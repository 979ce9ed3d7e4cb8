//! What a running bot knows about its own health: each configured channel's
//! connection state, set by the channel's intake and read by `/healthz` and
//! `/metrics`; and [`Condition`], how a part of the bot says in the log that
//! it is degraded (once) and that it recovered (once), however many retries
//! lie between.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;
use serde::Serialize;

use crate::core::router::Channel;

/// A channel's link to its service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum Link {
    /// Not connected yet since the bot started.
    Starting,
    Up,
    /// Lost, with the reason (one line, no secrets); the channel retries.
    Down(String),
}

/// One channel's state and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelStatus {
    #[serde(flatten)]
    pub link: Link,
    pub since: Timestamp,
}

/// Shared by the channels (writers) and the web surface (reader).
#[derive(Debug, Clone, Default)]
pub struct StatusBoard(Arc<RwLock<BTreeMap<Channel, ChannelStatus>>>);

impl StatusBoard {
    /// A board listing `channels` as starting.
    pub fn new(channels: impl IntoIterator<Item = Channel>, now: Timestamp) -> StatusBoard {
        let map = channels.into_iter().map(|c| (c, ChannelStatus { link: Link::Starting, since: now })).collect();
        StatusBoard(Arc::new(RwLock::new(map)))
    }

    /// Records `channel`'s state; `since` moves only when the state changes.
    pub fn set(&self, channel: Channel, link: Link, now: Timestamp) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&channel) {
            Some(s) if s.link == link => {}
            // Only channels the board lists are reported (the configured ones).
            Some(s) => *s = ChannelStatus { link, since: now },
            None => {}
        }
    }

    pub fn snapshot(&self) -> BTreeMap<Channel, ChannelStatus> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A part of the bot that can be degraded (the database, a channel's
/// intake or deliveries). The first failure is logged as a warning with its
/// reason, repeats only at debug level, and the first success after it as
/// one line saying how long it lasted.
#[derive(Debug)]
pub struct Condition {
    what: String,
    /// Since when, and why, it has been failing.
    failing: Option<(std::time::Instant, String)>,
}

impl Condition {
    pub fn new(what: impl Into<String>) -> Condition {
        Condition { what: what.into(), failing: None }
    }

    /// It failed (again); `true` when this starts a degraded state.
    pub fn failed(&mut self, reason: &str) -> bool {
        if self.failing.is_some() {
            tracing::debug!(what = %self.what, %reason, "still failing");
            return false;
        }
        tracing::warn!("{} degraded: {reason}; retrying until it recovers", self.what);
        self.failing = Some((std::time::Instant::now(), reason.to_string()));
        true
    }

    /// It worked; `true` when this ends a degraded state.
    pub fn ok(&mut self) -> bool {
        let Some((since, _)) = self.failing.take() else { return false };
        let secs = since.elapsed().as_secs();
        tracing::info!("{} recovered after {}m{:02}s", self.what, secs / 60, secs % 60);
        true
    }

    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_channels_are_reported_and_since_moves_on_a_change() {
        let t0: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-11-23T10:01:00Z".parse().unwrap();
        let board = StatusBoard::new([Channel::Email], t0);
        board.set(Channel::Discord, Link::Up, t1);
        board.set(Channel::Email, Link::Starting, t1);
        assert_eq!(board.snapshot()[&Channel::Email].since, t0);
        board.set(Channel::Email, Link::Down("IMAP refused the login".into()), t1);
        let snap = board.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(
            snap[&Channel::Email],
            ChannelStatus { link: Link::Down("IMAP refused the login".into()), since: t1 }
        );
    }

    #[test]
    fn a_condition_says_when_it_degrades_and_recovers_once_each() {
        let mut db = Condition::new("the database");
        assert!(!db.ok(), "nothing to recover from");
        assert!(db.failed("connection refused") && db.is_failing());
        assert!(!db.failed("connection refused"), "a repeat is no new state");
        assert!(db.ok() && !db.is_failing());
        assert!(!db.ok());
    }
}
