//! The rows behind a weekly report, read as they stood at an instant.

use jiff::Timestamp;
use sqlx::Row as _;

use anyhow::Context as _;

use super::{Backend, Store, opt_ts, ts};
use crate::core::report::{CheckRow, ConversationRow, FollowUpRow, ReportData};

// Each of the two large reads is written once and read two ways: as rows
// (PostgreSQL), or on SQLite as one JSON array built by SQLite (its
// driver's cost per row was most of a report's time; see BENCHMARKS.md).
macro_rules! conversation_columns {
    () => {
        "id, opened_at, due_at, first_reply_at, first_reply_by, resolved_at"
    };
}
macro_rules! conversations_of_week {
    () => {
        " FROM conversations WHERE opened_at >= $1 AND opened_at < $2 AND customer_id IS NOT NULL"
    };
}
macro_rules! check_columns {
    () => {
        "k.message_id, k.conversation, k.agent, k.at, k.first_reply"
    };
}
macro_rules! checks_of_week {
    () => {
        " FROM reply_checks k JOIN conversations c ON c.id = k.conversation \
         WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3"
    };
}
const CONVERSATIONS: &str =
    concat!("SELECT ", conversation_columns!(), conversations_of_week!(), " ORDER BY opened_at, id");
const CONVERSATIONS_JSON: &str =
    concat!("SELECT json_group_array(json_array(", conversation_columns!(), ")) AS rows", conversations_of_week!());
const FINDINGS: &str = "SELECT f.message_id, f.rule FROM findings f JOIN reply_checks k ON k.message_id = f.message_id \
    JOIN conversations c ON c.id = k.conversation \
    WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 ORDER BY f.message_id, f.seq";
const CHECKS: &str = concat!("SELECT ", check_columns!(), checks_of_week!(), " ORDER BY k.at, k.message_id");
const CHECKS_JSON: &str =
    concat!("SELECT json_group_array(json_array(", check_columns!(), ")) AS rows", checks_of_week!());
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
        type Conv = (String, i64, Option<i64>, Option<i64>, Option<String>, Option<i64>);
        let conversations: Vec<Conv> = if self.backend == Backend::Sqlite {
            let text: String =
                sqlx::query_scalar(CONVERSATIONS_JSON).bind(from).bind(opened_before).fetch_one(&self.pool).await?;
            let mut rows: Vec<Conv> = serde_json::from_str(&text).context("reading the week's conversations")?;
            rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
            rows
        } else {
            sqlx::query(CONVERSATIONS)
                .bind(from)
                .bind(opened_before)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?, r.try_get(5)?)))
                .collect::<Result<_, sqlx::Error>>()?
        };
        let conversations = conversations
            .into_iter()
            .map(|(id, opened_at, due_at, first_reply_at, first_reply_by, resolved_at)| ConversationRow {
                id,
                opened_at: ts(opened_at),
                due_at: due_at.map(ts),
                first_reply_at: first_reply_at.map(ts),
                first_reply_by,
                resolved_at: resolved_at.map(ts),
            })
            .collect();
        let findings = sqlx::query(FINDINGS).bind(from).bind(opened_before).bind(as_of).fetch_all(&self.pool).await?;
        let mut by_message: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        for r in &findings {
            by_message.entry(r.try_get("message_id")?).or_default().push(r.try_get("rule")?);
        }
        type Check = (String, String, String, i64, i64);
        let checks: Vec<Check> = if self.backend == Backend::Sqlite {
            let text: String = sqlx::query_scalar(CHECKS_JSON)
                .bind(from)
                .bind(opened_before)
                .bind(as_of)
                .fetch_one(&self.pool)
                .await?;
            let mut rows: Vec<Check> = serde_json::from_str(&text).context("reading the week's reply checks")?;
            rows.sort_by(|a, b| (a.3, &a.0).cmp(&(b.3, &b.0)));
            rows
        } else {
            sqlx::query(CHECKS)
                .bind(from)
                .bind(opened_before)
                .bind(as_of)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?)))
                .collect::<Result<_, sqlx::Error>>()?
        };
        let checks = checks
            .into_iter()
            .map(|(message, conversation, agent, at, first)| CheckRow {
                conversation,
                agent,
                at: ts(at),
                first: first != 0,
                rules: by_message.remove(&message).unwrap_or_default(),
            })
            .collect();
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
