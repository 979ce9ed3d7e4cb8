//! The rows behind a weekly report, read as they stood at an instant.

use jiff::Timestamp;
use sqlx::Row as _;

use super::{Store, opt_ts, ts};
use crate::core::report::{CheckRow, ConversationRow, ReportData};

impl Store {
    /// The rows behind a report: conversations opened in `[from, to)` before
    /// `as_of`, their replies up to `as_of`, and survey scores answered in
    /// `[from, to)` up to `as_of`, and the week's deliveries that failed for good.
    pub async fn report_data(&self, from: Timestamp, to: Timestamp, as_of: Timestamp) -> anyhow::Result<ReportData> {
        let (from, to, as_of) = (from.as_second(), to.as_second(), as_of.as_second());
        let opened_before = to.min(as_of + 1);
        let conversations = sqlx::query(
            "SELECT id, opened_at, due_at, first_reply_at, first_reply_by, resolved_at FROM conversations \
             WHERE opened_at >= $1 AND opened_at < $2 AND customer_id IS NOT NULL ORDER BY opened_at, id",
        )
        .bind(from)
        .bind(opened_before)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| -> anyhow::Result<ConversationRow> {
            Ok(ConversationRow {
                id: r.try_get("id")?,
                opened_at: ts(r.try_get("opened_at")?),
                due_at: opt_ts(r, "due_at")?,
                first_reply_at: opt_ts(r, "first_reply_at")?,
                first_reply_by: r.try_get("first_reply_by")?,
                resolved_at: opt_ts(r, "resolved_at")?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        let findings = sqlx::query(
            "SELECT f.message_id, f.rule FROM findings f JOIN reply_checks k ON k.message_id = f.message_id \
             JOIN conversations c ON c.id = k.conversation \
             WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 ORDER BY f.message_id, f.seq",
        )
        .bind(from)
        .bind(opened_before)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?;
        let mut by_message: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for r in &findings {
            by_message.entry(r.try_get("message_id")?).or_default().push(r.try_get("rule")?);
        }
        let checks = sqlx::query(
            "SELECT k.message_id, k.conversation, k.agent, k.at, k.first_reply FROM reply_checks k \
             JOIN conversations c ON c.id = k.conversation \
             WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 ORDER BY k.at, k.message_id",
        )
        .bind(from)
        .bind(opened_before)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| -> anyhow::Result<CheckRow> {
            let message: String = r.try_get("message_id")?;
            Ok(CheckRow {
                conversation: r.try_get("conversation")?,
                agent: r.try_get("agent")?,
                at: ts(r.try_get("at")?),
                first: r.try_get::<i64, _>("first_reply")? != 0,
                rules: by_message.remove(&message).unwrap_or_default(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
        let scores = sqlx::query(
            "SELECT score FROM surveys WHERE status = 'answered' AND answered_at >= $1 AND answered_at < $2 \
             AND answered_at <= $3 ORDER BY answered_at",
        )
        .bind(from)
        .bind(to)
        .bind(as_of)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>("score").map(|s| s.clamp(0, 10) as u8))
        .collect::<Result<Vec<_>, _>>()?;
        let failed = sqlx::query(
            "SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed' AND at >= $1 AND at < $2 AND at <= $3",
        )
        .bind(from)
        .bind(to)
        .bind(as_of)
        .fetch_one(&self.pool)
        .await?
        .try_get::<i64, _>("n")?;
        Ok(ReportData { conversations, checks, scores, failed_deliveries: u32::try_from(failed).unwrap_or(u32::MAX) })
    }
}
