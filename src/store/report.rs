//! The rows behind a weekly report, read as they stood at an instant.

use jiff::Timestamp;
use sqlx::Row as _;

use anyhow::Context as _;

use super::{Backend, Store, opt_ts, ts};
use crate::core::report::{CheckRow, ConversationRow, FollowUpRow, ReportData};

// The two large reads (the week's conversations; their checked replies with
// the rules each missed) come back as one JSON array built by the database:
// the driver's cost per row was most of a report's time (BENCHMARKS.md).
// The dialects differ in the aggregate's spelling and, on PostgreSQL, in
// LATERAL joins that keep its planner on the indexes (otherwise it scans
// every message ever stored to hash-join one week's).
macro_rules! json_rows {
    (sqlite, $columns:expr, $from:expr) => {
        concat!("SELECT json_group_array(json_array(", $columns, ")) AS rows", $from)
    };
    (postgres, $columns:expr, $from:expr) => {
        concat!("SELECT COALESCE(json_agg(json_build_array(", $columns, ")), '[]')::text AS rows", $from)
    };
}
// Every conversation opened in the week, agent-started ones too, once per
// resolution up to the instant ($3), or once with none.
macro_rules! conversation_columns {
    () => {
        "c.id, c.opened_at, c.due_at, c.first_reply_at, c.first_reply_by, r.resolved_at, r.reopened_at"
    };
}
const CONVERSATIONS_SQLITE: &str = json_rows!(
    sqlite,
    conversation_columns!(),
    " FROM conversations c LEFT JOIN resolutions r ON r.conversation = c.id AND r.resolved_at <= $3 \
     WHERE c.opened_at >= $1 AND c.opened_at < $2"
);
const CONVERSATIONS_POSTGRES: &str = json_rows!(
    postgres,
    conversation_columns!(),
    " FROM conversations c LEFT JOIN LATERAL (SELECT r.resolved_at, r.reopened_at FROM resolutions r \
     WHERE r.conversation = c.id AND r.resolved_at <= $3 OFFSET 0) r ON true \
     WHERE c.opened_at >= $1 AND c.opened_at < $2"
);
macro_rules! check_columns {
    () => {
        "k.id, k.conversation, k.author_id, k.at, k.check_first, f.seq, f.rule"
    };
}
const CHECKS_SQLITE: &str = json_rows!(
    sqlite,
    check_columns!(),
    " FROM conversations c JOIN messages k ON k.conversation = c.id \
     LEFT JOIN findings f ON f.message_id = k.id \
     WHERE c.opened_at >= $1 AND c.opened_at < $2 AND k.at <= $3 AND k.check_score IS NOT NULL"
);
const CHECKS_POSTGRES: &str = json_rows!(
    postgres,
    check_columns!(),
    " FROM conversations c \
     CROSS JOIN LATERAL (SELECT k.id, k.conversation, k.author_id, k.at, k.check_first FROM messages k \
     WHERE k.conversation = c.id AND k.at <= $3 AND k.check_score IS NOT NULL OFFSET 0) k \
     LEFT JOIN LATERAL (SELECT f.seq, f.rule FROM findings f WHERE f.message_id = k.id OFFSET 0) f ON true \
     WHERE c.opened_at >= $1 AND c.opened_at < $2"
);
const SCORES: &str = "SELECT score FROM surveys WHERE status = 'answered' AND answered_at >= $1 AND answered_at < $2 \
    AND answered_at <= $3 ORDER BY answered_at";
const FAILED: &str = "SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed' AND at >= $1 AND at < $2 AND at <= $3";
/// The follow-ups still open at `$1`, found by the closure instant kept on
/// the survey (migration 0016): detractors' answers never closed, and those
/// closed after `$1` (two index ranges; as one `OR` the planners read every
/// answered survey). The agent is looked up per follow-up, as a subquery:
/// as a join, PostgreSQL's planner hashes every conversation.
macro_rules! followups_where {
    ($closed:literal) => {
        concat!(
            "SELECT s.id, s.score, s.answered_at, s.followup_closed_at AS closed_at, \
             (SELECT COALESCE(c.first_reply_by, c.assigned) FROM conversations c WHERE c.id = s.conversation) AS agent \
             FROM surveys s WHERE s.status = 'answered' AND s.score <= 6 AND s.answered_at <= $1 AND ",
            $closed
        )
    };
}
const FOLLOWUPS: &str = concat!(
    followups_where!("s.followup_closed_at IS NULL"),
    " UNION ALL ",
    followups_where!("s.followup_closed_at > $1"),
    " ORDER BY 3, 1"
);

/// The report's queries on `backend` by what they read, for `concierge bench
/// reports` to show their plans. `$1`/`$2` are the week's bounds, `$3` the
/// instant (`$1` alone for the follow-ups).
pub fn report_queries(backend: Backend) -> [(&'static str, &'static str); 5] {
    let (conversations, checks) = match backend {
        Backend::Sqlite => (CONVERSATIONS_SQLITE, CHECKS_SQLITE),
        Backend::Postgres => (CONVERSATIONS_POSTGRES, CHECKS_POSTGRES),
    };
    [
        ("conversations", conversations),
        ("checks and findings", checks),
        ("scores", SCORES),
        ("failed", FAILED),
        ("followups", FOLLOWUPS),
    ]
}

impl Store {
    /// The rows behind a report: conversations opened in `[from, to)` before
    /// `as_of`, their replies up to `as_of`, and survey scores answered in
    /// `[from, to)` up to `as_of`, and the week's deliveries that failed for
    /// good. The open follow-ups are not the week's: add
    /// [`Store::followup_rows`] where they are shown.
    pub async fn report_data(&self, from: Timestamp, to: Timestamp, as_of: Timestamp) -> anyhow::Result<ReportData> {
        let [(_, conversations_sql), (_, checks_sql), ..] = report_queries(self.backend);
        let (from, to, as_of) = (from.as_second(), to.as_second(), as_of.as_second());
        let opened_before = to.min(as_of + 1);
        // The two large reads at once, each on a connection of its own.
        let (conversations_json, checks_json): (String, String) = tokio::try_join!(
            sqlx::query_scalar(conversations_sql).bind(from).bind(opened_before).bind(as_of).fetch_one(&self.pool),
            sqlx::query_scalar(checks_sql).bind(from).bind(opened_before).bind(as_of).fetch_one(&self.pool),
        )?;
        // One row per resolution, or one for a conversation never resolved.
        type Conv = (String, i64, Option<i64>, Option<i64>, Option<String>, Option<i64>, Option<i64>);
        let mut rows: Vec<Conv> =
            serde_json::from_str(&conversations_json).context("reading the week's conversations")?;
        rows.sort_by(|a, b| (a.1, &a.0, a.5).cmp(&(b.1, &b.0, b.5)));
        let mut conversations: Vec<ConversationRow> = Vec::new();
        for (id, opened_at, due_at, first_reply_at, first_reply_by, resolved_at, reopened_at) in rows {
            if conversations.last().is_none_or(|c| c.id != id) {
                conversations.push(ConversationRow {
                    id,
                    opened_at: ts(opened_at),
                    due_at: due_at.map(ts),
                    first_reply_at: first_reply_at.map(ts),
                    first_reply_by,
                    resolutions: Vec::new(),
                });
            }
            if let (Some(resolved), Some(c)) = (resolved_at, conversations.last_mut()) {
                c.resolutions.push((ts(resolved), reopened_at.map(ts)));
            }
        }
        // One row per finding, or one for a reply that had none.
        type Check = (String, String, String, i64, i64, Option<i64>, Option<String>);
        let mut rows: Vec<Check> = serde_json::from_str(&checks_json).context("reading the week's reply checks")?;
        rows.sort_by(|a, b| (a.3, &a.0, a.5).cmp(&(b.3, &b.0, b.5)));
        let mut checks: Vec<CheckRow> = Vec::new();
        let mut last: Option<String> = None;
        for (message, conversation, agent, at, first, _, rule) in rows {
            if last.as_ref() != Some(&message) {
                checks.push(CheckRow { conversation, agent, at: ts(at), first: first != 0, rules: Vec::new() });
                last = Some(message);
            }
            if let (Some(rule), Some(check)) = (rule, checks.last_mut()) {
                check.rules.push(rule);
            }
        }
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
                Ok(FollowUpRow {
                    survey: r.try_get("id")?,
                    score: r.try_get::<i64, _>("score")?.clamp(0, 10) as u8,
                    agent: r.try_get("agent")?,
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
        // The closure, and its instant on the survey (what the open
        // follow-ups are found by), in one transaction.
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO followup_closures (survey, closed_at, closed_by, note) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (survey) DO NOTHING",
        )
        .bind(&survey)
        .bind(now.as_second())
        .bind(by)
        .bind(note)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            sqlx::query("UPDATE surveys SET followup_closed_at = $1 WHERE id = $2")
                .bind(now.as_second())
                .bind(&survey)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
