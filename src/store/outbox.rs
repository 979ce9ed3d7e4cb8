//! The outbox's delivery state: what is due for a channel, delivered,
//! waiting for a retry, or failed for good (with the reason), and the
//! listing behind `concierge outbox`. Rows are written with the state change
//! that caused them ([`super::Batch`]) or, for the weekly summary, by
//! [`Store::enqueue`].

use anyhow::Context as _;
use jiff::Timestamp;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, Tx, opt_ts, ts};
use crate::core::router::{Action, ActionKind, Channel, Recipient};

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    /// Waiting for delivery (again, after a transient failure).
    Pending,
    Delivered,
    /// Given up: a permanent failure, kept with its reason.
    Failed,
    /// History written by `concierge replay`, never sent.
    Replayed,
    /// Not to be sent after all: its customer asked to be forgotten.
    Cancelled,
}

impl OutboxStatus {
    pub const ALL: [OutboxStatus; 5] = [
        OutboxStatus::Pending,
        OutboxStatus::Delivered,
        OutboxStatus::Failed,
        OutboxStatus::Replayed,
        OutboxStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Failed => "failed",
            OutboxStatus::Replayed => "replayed",
            OutboxStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxStatus> {
        OutboxStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub key: String,
    pub at: Timestamp,
    pub kind: ActionKind,
    /// `channel:thread` of the conversation it is about (empty for a summary).
    pub conversation: String,
    /// The channel that delivers it.
    pub channel: Channel,
    pub thread: String,
    pub recipient: Recipient,
    pub body: String,
    /// An HTML alternative of its own (the summary's charts), if any.
    pub html: Option<String>,
    /// The channel's id of the message the action is about, if any.
    pub about: Option<String>,
    pub attempts: i64,
    pub status: OutboxStatus,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    /// When an attempt whose outcome is unknown began (one cut off by a
    /// crash): the channel checks whether it went out before resending.
    pub sending_since: Option<Timestamp>,
}

impl OutboxItem {
    /// The channel of the conversation it is about (which may differ from
    /// the delivering channel for a notice to the team).
    pub fn conversation_channel(&self) -> Option<Channel> {
        self.conversation.split_once(':').and_then(|(c, _)| Channel::parse(c))
    }
}

impl Store {
    /// Rows of `channel` due for delivery at `now`, oldest first, skipping `busy` keys.
    pub async fn pending_outbox(
        &self,
        channel: Channel,
        now: Timestamp,
        limit: usize,
        busy: &std::collections::HashSet<String>,
    ) -> anyhow::Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE status = 'pending' AND channel = $1 AND next_attempt_at <= $2 \
             ORDER BY next_attempt_at, at, action_key LIMIT $3",
        )
        .bind(channel.as_str())
        .bind(now.as_second())
        .bind((limit + busy.len()) as i64)
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(item_from_row).collect::<anyhow::Result<Vec<_>>>()?;
        Ok(items.into_iter().filter(|i| !busy.contains(&i.key)).take(limit).collect())
    }

    /// When the next pending row of `channel` falls due after `now`, if any.
    pub async fn next_outbox_attempt(&self, channel: Channel, now: Timestamp) -> anyhow::Result<Option<Timestamp>> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_at) AS next FROM outbox WHERE status = 'pending' AND channel = $1 \
             AND next_attempt_at > $2",
        )
        .bind(channel.as_str())
        .bind(now.as_second())
        .fetch_one(&self.pool)
        .await?;
        Ok(opt_ts(&row, "next")?)
    }

    /// Outbox rows with one of `statuses` (all when empty), oldest first, at most `limit`.
    pub async fn outbox(&self, statuses: &[OutboxStatus], limit: i64) -> anyhow::Result<Vec<OutboxItem>> {
        let filter = if statuses.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = statuses.iter().map(|s| format!("'{}'", s.as_str())).collect();
            format!("WHERE status IN ({})", list.join(", "))
        };
        let sql = format!("SELECT * FROM outbox {filter} ORDER BY at, action_key LIMIT $1");
        let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Queues one action outside a router step (the weekly summary), with
    /// its own HTML alternative. `false` when a row with its key exists.
    pub async fn enqueue(&self, tx: &mut Tx, action: &Action, html: Option<&str>) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO outbox (action_key, at, kind, conversation, channel, thread, recipient, body, status, attempts, \
             next_attempt_at, html, about) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $10, $11) \
             ON CONFLICT (action_key) DO NOTHING",
        )
        .bind(action.key.as_str())
        .bind(action.at.as_second())
        .bind(action.kind.as_str())
        .bind(action.conversation.as_str())
        .bind(action.channel.as_str())
        .bind(action.thread.as_str())
        .bind(action.to.encode())
        .bind(action.body.as_str())
        .bind(action.at.as_second())
        .bind(html)
        .bind(action.about.as_deref())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The row with this key, if any.
    pub async fn outbox_item(&self, key: &str) -> anyhow::Result<Option<OutboxItem>> {
        let row =
            sqlx::query("SELECT * FROM outbox WHERE action_key = $1").bind(key).fetch_optional(&self.pool).await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// An attempt begins; kept from an earlier attempt whose outcome is
    /// still unknown, so the channel's check counts from the first.
    pub async fn mark_sending(&self, key: &str, at: Timestamp) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET sending_since = COALESCE(sending_since, $1) WHERE action_key = $2 AND status = 'pending'",
        )
        .bind(at.as_second())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_delivered(&self, key: &str, at: Timestamp) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'delivered', delivered_at = $1, attempts = attempts + 1, sending_since = NULL \
             WHERE action_key = $2 AND status = 'pending'",
        )
        .bind(at.as_second())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A transient failure: try again at `retry_at`. `unknown`: whether the
    /// attempt went out is still unknown (its start is kept).
    pub async fn mark_retry(&self, key: &str, error: &str, retry_at: Timestamp, unknown: bool) -> anyhow::Result<()> {
        let sending = if unknown { "sending_since" } else { "NULL" };
        sqlx::query(&format!(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2, sending_since = {sending} \
             WHERE action_key = $3 AND status = 'pending'"
        ))
        .bind(error)
        .bind(retry_at.as_second())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Rows of `channel` waiting on a retry are due now (its deliveries work
    /// again after an outage: nobody waits out a long backoff).
    pub async fn retry_now(&self, channel: Channel, now: Timestamp) -> anyhow::Result<u64> {
        let done = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE status = 'pending' AND channel = $2 AND next_attempt_at > $1",
        )
        .bind(now.as_second())
        .bind(channel.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// A permanent failure: never retried; the reason is kept for `concierge outbox`.
    pub async fn mark_failed(&self, key: &str, error: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $1, sending_since = NULL \
             WHERE action_key = $2 AND status = 'pending'",
        )
        .bind(error)
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn item_from_row(r: &AnyRow) -> anyhow::Result<OutboxItem> {
    let (kind, channel, recipient, status): (String, String, String, String) =
        (r.try_get("kind")?, r.try_get("channel")?, r.try_get("recipient")?, r.try_get("status")?);
    Ok(OutboxItem {
        key: r.try_get("action_key")?,
        at: ts(r.try_get("at")?),
        kind: ActionKind::parse(&kind).with_context(|| format!("outbox row has unknown kind {kind:?}"))?,
        conversation: r.try_get("conversation")?,
        channel: Channel::parse(&channel).with_context(|| format!("outbox row has unknown channel {channel:?}"))?,
        thread: r.try_get("thread")?,
        recipient: Recipient::decode(&recipient)
            .with_context(|| format!("outbox row has unknown recipient {recipient:?}"))?,
        body: r.try_get("body")?,
        html: r.try_get("html")?,
        about: r.try_get("about")?,
        attempts: r.try_get("attempts")?,
        status: OutboxStatus::parse(&status).with_context(|| format!("outbox row has unknown status {status:?}"))?,
        last_error: r.try_get("last_error")?,
        delivered_at: opt_ts(r, "delivered_at")?,
        sending_since: opt_ts(r, "sending_since")?,
    })
}
