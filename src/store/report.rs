//! The rows behind a weekly report, read as they stood at an instant.

use jiff::Timestamp;
use sqlx::Row as _;

use super::{Store, opt_ts, ts};
use crate::core::report::{CheckRow, ConversationRow, FollowUpRow, ReportData};

const CONVERSATIONS: &str = "SELECT id, opened_at, due_at, first_reply_at, first_reply_by, resolved_at FROM conversations \
    WHERE opened_at >= $1 AND opened_at < $2 AND customer_id IS NOT NULL ORDER BY opened_at, id";
const FINDINGS: &str = "SELECT f.message_id, f.rule FROM findings f JOIN reply_checks k ON k.message_id = f.message_id \
    JOIN conversations c ON c.id = k.conversation \
    WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 ORDER BY f.message_id, f.seq";
const CHECKS: &str = "SELECT k.message_id, k.conversation, k.agent, k.at, k.first_reply FROM reply_checks k \
    JOIN conversations c ON c.id = k.conversation \
    WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 ORDER BY k.at, k.message_id";
const SCORES: &str = "SELECT score FROM surveys WHERE status = 'answered' AND answered_at >= $1 AND answered_at < $2 \
    AND answered_at <= $3 ORDER BY answered_at";
const FAILED: &str = "SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed' AND at >= $1 AND at < $2 AND at <= $3";
/// The follow-ups still open at `$1`: the detractors' answers are matched to
/// their closures first, and only the open ones are joined to their
/// conversation (most follow-ups are closed; joining every detractor's
/// conversation first was most of a report's time on a long history).
const FOLLOWUPS: &str = "SELECT o.id, o.score, o.answered_at, c.first_reply_by, c.assigned, o.closed_at FROM \
    (SELECT s.id, s.score, s.answered_at, s.conversation, f.closed_at FROM surveys s \
    LEFT JOIN followup_closures f ON f.survey = s.id \
    WHERE s.status = 'answered' AND s.score <= 6 AND s.answered_at <= $1 \
    AND (f.closed_at IS NULL OR f.closed_at > $1)) AS o \
    JOIN conversations c ON c.id = o.conversation ORDER BY o.answered_at, o.id";

/// The report's queries by what they read, for `concierge bench reports`
/// to show their plans. `$1`/`$2` are the week's bounds, `$3` the instant.
pub const REPORT_QUERIES: [(&str, &str); 6] = [
    ("conversations", CONVERSATIONS),
    ("findings", FINDINGS),
    ("checks", CHECKS),
    ("scores", SCORES),
    ("failed", FAILED),
    ("followups", FOLLOWUPS),
];

impl Store {
    /// The rows behind a report: conversations opened in `[from, to)` before
    /// `as_of`, their replies up to `as_of`, and survey scores answered in
    /// `[from, to)` up to `as_of`, and the week's deliveries that failed for
    /// good. The open follow-ups are not the week's: add
    /// [`Store::followup_rows`] where they are shown.
    pub async fn report_data(&self, from: Timestamp, to: Timestamp, as_of: Timestamp) -> anyhow::Result<ReportData> {
        let (from, to, as_of) = (from.as_second(), to.as_second(), as_of.as_second());
        let opened_before = to.min(as_of + 1);
        let conversations = sqlx::query(CONVERSATIONS)
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
        let findings = sqlx::query(FINDINGS).bind(from).bind(opened_before).bind(as_of).fetch_all(&self.pool).await?;
        let mut by_message: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for r in &findings {
            by_message.entry(r.try_get("message_id")?).or_default().push(r.try_get("rule")?);
        }
        let checks = sqlx::query(CHECKS)
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
        let scores = sqlx::query(SCORES)
            .bind(from)
            .bind(to)
            .bind(as_of)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get::<i64, _>("score").map(|s| s.clamp(0, 10) as u8))
            .collect::<Result<Vec<_>, _>>()?;
        let failed =
            sqlx::query(FAILED).bind(from).bind(to).bind(as_of).fetch_one(&self.pool).await?.try_get::<i64, _>("n")?;
        Ok(ReportData {
            conversations,
            checks,
            scores,
            failed_deliveries: u32::try_from(failed).unwrap_or(u32::MAX),
            // Not the week's: read once by the caller that shows them.
            followups: Vec::new(),
        })
    }

    /// Every survey answered 0-6 up to `as_of` whose follow-up was still open
    /// then (closed after `as_of`, or not at all).
    pub async fn followup_rows(&self, as_of: Timestamp) -> anyhow::Result<Vec<FollowUpRow>> {
        sqlx::query(FOLLOWUPS)
            .bind(as_of.as_second())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| -> anyhow::Result<FollowUpRow> {
                let first: Option<String> = r.try_get("first_reply_by")?;
                Ok(FollowUpRow {
                    survey: r.try_get("id")?,
                    score: r.try_get::<i64, _>("score")?.clamp(0, 10) as u8,
                    agent: first.or(r.try_get("assigned")?),
                    answered_at: ts(r.try_get("answered_at")?),
                    closed_at: opt_ts(r, "closed_at")?,
                })
            })
            .collect()
    }

    /// Closes follow-up `id` (`TICKET-N`). Returns what happened.
    pub async fn close_followup(
        &self,
        id: &str,
        by: &str,
        note: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<Closed> {
        let Some((ticket, n)) = id.rsplit_once('-') else { return Ok(Closed::Unknown) };
        let rows = sqlx::query(
            "SELECT s.id, s.score, s.status, f.closed_at, f.closed_by FROM surveys s \
             JOIN conversations c ON c.id = s.conversation LEFT JOIN followup_closures f ON f.survey = s.id \
             WHERE c.thread = $1",
        )
        .bind(ticket)
        .fetch_all(&self.pool)
        .await?;
        let suffix = format!("#{n}");
        let Some(r) = rows.iter().find(|r| r.try_get::<String, _>("id").is_ok_and(|i| i.ends_with(&suffix))) else {
            return Ok(Closed::Unknown);
        };
        let (survey, score, status): (String, Option<i64>, String) =
            (r.try_get("id")?, r.try_get("score")?, r.try_get("status")?);
        if status != "answered" || score.is_none_or(|s| s > 6) {
            return Ok(Closed::NotADetractor);
        }
        if let Some(at) = r.try_get::<Option<i64>, _>("closed_at")? {
            return Ok(Closed::Already { at: ts(at), by: r.try_get("closed_by")? });
        }
        sqlx::query(
            "INSERT INTO followup_closures (survey, closed_at, closed_by, note) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (survey) DO NOTHING",
        )
        .bind(&survey)
        .bind(now.as_second())
        .bind(by)
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(Closed::Now)
    }
}

/// What `close_followup` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    Now,
    Already {
        at: Timestamp,
        by: String,
    },
    /// No survey answered 0-6 has this id.
    NotADetractor,
    Unknown,
}
