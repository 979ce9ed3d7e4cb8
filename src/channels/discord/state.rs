//! The Discord channel's own tables: each conversation's ticket and the
//! Discord channel it lives in (with the newest message read there), and
//! the newest message read in each support channel, so a restart catches up
//! on what was written while concierge was down.

use sqlx::Row as _;

use super::intake::Kind;
use crate::store::Store;

/// A conversation's place on Discord.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub ticket: String,
    pub channel_id: u64,
    pub kind: String,
    pub customer_id: u64,
    pub last_message_id: u64,
}

fn ticket_from_row(r: &sqlx::any::AnyRow) -> anyhow::Result<Ticket> {
    let num = |c: &str| -> anyhow::Result<u64> { Ok(r.try_get::<String, _>(c)?.parse()?) };
    Ok(Ticket {
        ticket: r.try_get("ticket")?,
        channel_id: num("channel_id")?,
        kind: r.try_get("kind")?,
        customer_id: num("customer_id")?,
        last_message_id: num("last_message_id")?,
    })
}

pub async fn by_channel(store: &Store, channel_id: u64) -> anyhow::Result<Option<Ticket>> {
    let row = sqlx::query("SELECT * FROM discord_tickets WHERE channel_id = $1")
        .bind(channel_id.to_string())
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

pub async fn by_ticket(store: &Store, ticket: &str) -> anyhow::Result<Option<Ticket>> {
    let row = sqlx::query("SELECT * FROM discord_tickets WHERE ticket = $1")
        .bind(ticket)
        .fetch_optional(store.pool())
        .await?;
    row.as_ref().map(ticket_from_row).transpose()
}

/// Every conversation's channel, to catch up on after a restart.
pub async fn all(store: &Store) -> anyhow::Result<Vec<Ticket>> {
    let rows = sqlx::query("SELECT * FROM discord_tickets ORDER BY ticket").fetch_all(store.pool()).await?;
    rows.iter().map(ticket_from_row).collect()
}

/// Records a new conversation's channel (the first record wins).
pub async fn open(store: &Store, ticket: &str, channel_id: u64, kind: Kind, customer: u64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO discord_tickets (ticket, channel_id, kind, customer_id, last_message_id) \
         VALUES ($1, $2, $3, $4, '0') ON CONFLICT (ticket) DO NOTHING",
    )
    .bind(ticket)
    .bind(channel_id.to_string())
    .bind(kind.as_str())
    .bind(customer.to_string())
    .execute(store.pool())
    .await?;
    Ok(())
}

/// Records that `channel_id` was read up to `message_id` (a conversation's
/// channel or a support channel); never moves backwards.
pub async fn read_up_to(store: &Store, channel_id: u64, message_id: u64) -> anyhow::Result<()> {
    // Snowflakes grow with time; compared as numbers, stored as text.
    let current = last_read(store, channel_id).await?;
    if current.is_some_and(|c| c >= message_id) {
        return Ok(());
    }
    let (id, msg) = (channel_id.to_string(), message_id.to_string());
    let updated = sqlx::query("UPDATE discord_tickets SET last_message_id = $1 WHERE channel_id = $2")
        .bind(&msg)
        .bind(&id)
        .execute(store.pool())
        .await?;
    if updated.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO discord_channels (channel_id, last_message_id) VALUES ($1, $2) \
             ON CONFLICT (channel_id) DO UPDATE SET last_message_id = excluded.last_message_id",
        )
        .bind(&id)
        .bind(&msg)
        .execute(store.pool())
        .await?;
    }
    Ok(())
}

/// The newest message read in a channel, if any.
pub async fn last_read(store: &Store, channel_id: u64) -> anyhow::Result<Option<u64>> {
    let id = channel_id.to_string();
    for sql in [
        "SELECT last_message_id FROM discord_tickets WHERE channel_id = $1",
        "SELECT last_message_id FROM discord_channels WHERE channel_id = $1",
    ] {
        if let Some(r) = sqlx::query(sql).bind(&id).fetch_optional(store.pool()).await? {
            return Ok(Some(r.try_get::<String, _>("last_message_id")?.parse()?));
        }
    }
    Ok(None)
}
