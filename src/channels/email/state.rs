//! The email channel's own tables (`email_*`): mailbox read positions, the
//! Message-ID → ticket map, the ids of mail concierge sent, and unparseable
//! mail kept whole. What it needs of conversations it asks the store.

use sqlx::Row as _;

use crate::store::Store;

/// Where a mailbox was read up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub uidvalidity: u32,
    pub last_uid: u32,
}

pub async fn position(store: &Store, mailbox: &str) -> anyhow::Result<Option<Position>> {
    let row = sqlx::query("SELECT uidvalidity, last_uid FROM email_mailboxes WHERE mailbox = $1")
        .bind(mailbox)
        .fetch_optional(store.pool())
        .await?;
    Ok(match row {
        Some(r) => Some(Position {
            uidvalidity: r.try_get::<i64, _>("uidvalidity")?.try_into()?,
            last_uid: r.try_get::<i64, _>("last_uid")?.try_into()?,
        }),
        None => None,
    })
}

/// Records that `mailbox` was read up to `pos` (call after the mail is stored).
pub async fn set_position(store: &Store, mailbox: &str, pos: Position) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO email_mailboxes (mailbox, uidvalidity, last_uid) VALUES ($1, $2, $3) \
         ON CONFLICT (mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid",
    )
    .bind(mailbox)
    .bind(i64::from(pos.uidvalidity))
    .bind(i64::from(pos.last_uid))
    .execute(store.pool())
    .await?;
    Ok(())
}

/// The ticket of the first of `ids` (nearest first) that belongs to one.
pub async fn ticket_of(store: &Store, ids: &[&str]) -> anyhow::Result<Option<String>> {
    for id in ids {
        let row = sqlx::query("SELECT ticket FROM email_message_ids WHERE message_id = $1")
            .bind(*id)
            .fetch_optional(store.pool())
            .await?;
        if let Some(r) = row {
            return Ok(Some(r.try_get("ticket")?));
        }
    }
    Ok(None)
}

/// Records a Message-ID concierge sent.
pub async fn record_sent(store: &Store, message_id: &str) -> anyhow::Result<()> {
    sqlx::query("INSERT INTO email_sent_ids (message_id) VALUES ($1) ON CONFLICT (message_id) DO NOTHING")
        .bind(message_id)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// Whether concierge sent the mail with this Message-ID.
pub async fn is_sent_by_us(store: &Store, message_id: &str) -> anyhow::Result<bool> {
    let row = sqlx::query("SELECT 1 FROM email_sent_ids WHERE message_id = $1")
        .bind(message_id)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.is_some())
}

/// Maps `message_id` to `ticket` (first mapping wins).
pub async fn map_message_id(store: &Store, message_id: &str, ticket: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO email_message_ids (message_id, ticket) VALUES ($1, $2) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(message_id)
    .bind(ticket)
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Keeps a mail that could not be parsed, whole, with the reason.
pub async fn keep_unparsed(
    store: &Store,
    mailbox: &str,
    uidvalidity: u32,
    uid: u32,
    reason: &str,
    raw: &[u8],
    at: jiff::Timestamp,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO email_unparsed (mailbox, uidvalidity, uid, reason, raw_base64, at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING",
    )
    .bind(mailbox)
    .bind(i64::from(uidvalidity))
    .bind(i64::from(uid))
    .bind(reason)
    .bind(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw))
    .bind(at.as_second())
    .execute(store.pool())
    .await?;
    Ok(())
}
