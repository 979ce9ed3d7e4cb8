//! Data protection: forgetting a customer (`concierge forget`) and purging
//! old message text (`[data] keep_messages`). Both keep every figure the
//! reports count — conversations, instants, reply checks, scores — and
//! remove what identifies or quotes the customer.

use jiff::Timestamp;
use sqlx::Row as _;

use super::{Store, Tx};

/// What forgetting a customer changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forgotten {
    pub conversations: u64,
    pub messages: u64,
    pub surveys: u64,
    pub outbox: u64,
}

/// The text left where removed text was, in rows still to be delivered.
const REMOVED: &str = "(removed at the customer's request)";

impl Store {
    /// Replaces `customer` (an email address or a Discord user id) with
    /// `pseudonym` everywhere, and removes their name, the text of every
    /// message in their conversations (the agents' replies quote and name
    /// them too), their survey comments, and the text of what was sent about
    /// them. Messages still to be sent to them are cancelled.
    pub async fn forget(&self, tx: &mut Tx, customer: &str, pseudonym: &str) -> anyhow::Result<Forgotten> {
        let conversations =
            sqlx::query("UPDATE conversations SET customer_id = $1, customer_name = NULL WHERE customer_id = $2")
                .bind(pseudonym)
                .bind(customer)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        let mut f = Forgotten { conversations, ..Forgotten::default() };
        let theirs = "conversation IN (SELECT id FROM conversations WHERE customer_id = $1)";
        f.messages = sqlx::query(&format!(
            "UPDATE messages SET body = '', author_name = NULL, \
             author_id = CASE WHEN author_id = $2 THEN $1 ELSE author_id END WHERE {theirs}"
        ))
        .bind(pseudonym)
        .bind(customer)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        f.surveys = sqlx::query("UPDATE surveys SET customer_id = $1, comment = NULL WHERE customer_id = $2")
            .bind(pseudonym)
            .bind(customer)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        let to_them = format!("customer:{customer}");
        f.outbox = sqlx::query(&format!(
            "UPDATE outbox SET body = CASE WHEN status = 'pending' THEN $3 ELSE '' END, html = NULL, \
             last_error = CASE WHEN status = 'pending' AND recipient = $2 THEN 'the customer asked to be forgotten' ELSE last_error END, \
             status = CASE WHEN status = 'pending' AND recipient = $2 THEN 'cancelled' ELSE status END, \
             recipient = CASE WHEN recipient = $2 THEN $4 ELSE recipient END WHERE {theirs}"
        ))
        .bind(pseudonym)
        .bind(&to_them)
        .bind(REMOVED)
        .bind(format!("customer:{pseudonym}"))
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE discord_tickets SET customer_id = $1 WHERE customer_id = $2")
            .bind(pseudonym)
            .bind(customer)
            .execute(&mut **tx)
            .await?;
        Ok(f)
    }

    /// Whether any conversation has `customer`.
    pub async fn knows_customer(&self, customer: &str) -> anyhow::Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM conversations WHERE customer_id = $1")
            .bind(customer)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Removes the text of messages received or sent before `before` (and of
    /// outbox rows done with by then); returns how many rows lost their text.
    pub async fn purge_text(&self, before: Timestamp) -> anyhow::Result<u64> {
        let mut tx = self.begin().await?;
        let messages = sqlx::query("UPDATE messages SET body = '' WHERE at < $1 AND body <> ''")
            .bind(before.as_second())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let outbox = sqlx::query(
            "UPDATE outbox SET body = '', html = NULL WHERE at < $1 AND status <> 'pending' AND body <> ''",
        )
        .bind(before.as_second())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(messages + outbox)
    }
}
