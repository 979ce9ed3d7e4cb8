//! Storage with sqlx: SQLite (WAL) by default, PostgreSQL for teams that run
//! several instances. One portable schema (`migrations/`) and one set of
//! queries serve both through sqlx's `Any` driver.
//!
//! The store is dumb on purpose: the router decides, the store records. A
//! [`Step`] is written with [`Store::apply`] inside the caller's transaction,
//! outbox rows included, so a state change and its side effects commit together
//! or not at all. Idempotency keys make a second write of the same cause a
//! no-op.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use anyhow::Context as _;
use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor as _, Row as _, Transaction};

use crate::core::report::{CheckRow, ConversationRow, ReportData};
use crate::core::router::{Action, Channel, Conversation, Message, ReplyCheck, Status, Step, Survey, SurveyStatus};

/// The migrations in `migrations/`, built into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[(1, "init", include_str!("../migrations/0001_init.sql"))];

#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, name, sql)| {
                    Migration::new(version, Cow::Borrowed(name), MigrationType::Simple, Cow::Borrowed(sql), false)
                })
                .collect())
        })
    }
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub key: String,
    pub at: Timestamp,
    pub kind: String,
    pub conversation: String,
    pub channel: String,
    pub thread: String,
    pub recipient: String,
    pub body: String,
    pub attempts: i64,
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies migrations.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else {
            (Backend::Postgres, url.to_string())
        };
        let memory = url.contains(":memory:");
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database lives and dies with its one connection.
            .max_connections(if memory { 1 } else { 4 })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| format!("cannot open the database {}", crate::config::redact_url(&url)))?;
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = Migrator::new(Embedded).await.context("loading the built-in migrations")?;
        migrator.run(&self.pool).await.context("applying database migrations")?;
        Ok(())
    }

    pub async fn begin(&self) -> anyhow::Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The survey-signing secret kept in the database, created on first use.
    pub async fn secret(&self) -> anyhow::Result<Vec<u8>> {
        let mut tx = self.begin().await?;
        let existing: Option<String> = sqlx::query("SELECT value FROM settings WHERE name = 'survey_secret'")
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.get(0));
        let secret = match existing {
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the survey secret: {e}"))?;
                let s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ('survey_secret', $1) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&s)
                .execute(&mut *tx)
                .await?;
                // Another instance may have won the race: read what is stored.
                sqlx::query("SELECT value FROM settings WHERE name = 'survey_secret'").fetch_one(&mut *tx).await?.get(0)
            }
        };
        tx.commit().await?;
        Ok(secret.into_bytes())
    }

    /// Records an inbound message; false when its id was already stored (then
    /// the caller must not route it again).
    pub async fn insert_message(tx: &mut Tx, at: Timestamp, m: &Message) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO messages (id, conversation, at, role, author_id, author_name, body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
        )
        .bind(format!("{}:{}", m.channel.as_str(), m.id))
        .bind(Conversation::key(m.channel, &m.thread))
        .bind(at.as_second())
        .bind(m.author.role.as_str())
        .bind(&m.author.id)
        .bind(m.author.name.as_deref())
        .bind(&m.text)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that a non-message input was applied; false when it already was.
    pub async fn mark_processed(tx: &mut Tx, at: Timestamp, key: &str) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO processed_inputs (input_key, at) VALUES ($1, $2) ON CONFLICT (input_key) DO NOTHING",
        )
        .bind(key)
        .bind(at.as_second())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes what a step changed and queues its actions: `deliver: false`
    /// records them as `replayed` history that the dispatcher never sends.
    pub async fn apply(tx: &mut Tx, step: &Step, deliver: bool) -> anyhow::Result<()> {
        if let Some(c) = &step.conversation {
            upsert_conversation(tx, c).await?;
        }
        if let Some(s) = &step.survey {
            upsert_survey(tx, s).await?;
        }
        if let Some(check) = &step.check {
            insert_check(tx, check).await?;
        }
        for a in &step.actions {
            enqueue(tx, a, deliver).await?;
        }
        Ok(())
    }

    /// Everything the router needs to resume: all conversations and surveys.
    pub async fn load_state(&self) -> anyhow::Result<(Vec<Conversation>, Vec<Survey>)> {
        let convs = sqlx::query(
            "SELECT id, channel, thread, customer_id, customer_name, opened_at, due_at, first_reply_at, \
             first_reply_by, status, resolved_at, assigned, sla_stage, surveys FROM conversations",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(conversation_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
        let surveys = sqlx::query(
            "SELECT id, conversation, customer_id, status, due_at, sent_at, token, score, comment, answered_at FROM surveys",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(survey_from_row)
        .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((convs, surveys))
    }

    /// The rows behind a report: conversations opened in `[from, to)` before
    /// `as_of`, their replies up to `as_of`, and survey scores answered in
    /// `[from, to)` up to `as_of`.
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
                id: r.try_get(0)?,
                opened_at: ts(r.try_get(1)?),
                due_at: r.try_get::<Option<i64>, _>(2)?.map(ts),
                first_reply_at: r.try_get::<Option<i64>, _>(3)?.map(ts),
                first_reply_by: r.try_get(4)?,
                resolved_at: r.try_get::<Option<i64>, _>(5)?.map(ts),
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
            by_message.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
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
            let message: String = r.try_get(0)?;
            Ok(CheckRow {
                conversation: r.try_get(1)?,
                agent: r.try_get(2)?,
                at: ts(r.try_get(3)?),
                first: r.try_get::<i64, _>(4)? != 0,
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
        .map(|r| r.try_get::<i64, _>(0).map(|s| s.clamp(0, 10) as u8))
        .collect::<Result<Vec<_>, _>>()?;
        Ok(ReportData { conversations, checks, scores })
    }

    /// Actions due for delivery at `now`, oldest first.
    pub async fn pending_outbox(&self, now: Timestamp, limit: i64) -> anyhow::Result<Vec<OutboxItem>> {
        let rows = sqlx::query(
            "SELECT action_key, at, kind, conversation, channel, thread, recipient, body, attempts FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY at, action_key LIMIT $2",
        )
        .bind(now.as_second())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxItem {
                    key: r.try_get(0)?,
                    at: ts(r.try_get(1)?),
                    kind: r.try_get(2)?,
                    conversation: r.try_get(3)?,
                    channel: r.try_get(4)?,
                    thread: r.try_get(5)?,
                    recipient: r.try_get(6)?,
                    body: r.try_get(7)?,
                    attempts: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// All outbox rows in order, for `replay --print-actions` and tests.
    pub async fn outbox(&self) -> anyhow::Result<Vec<(OutboxItem, String)>> {
        let rows = sqlx::query(
            "SELECT action_key, at, kind, conversation, channel, thread, recipient, body, attempts, status FROM outbox \
             ORDER BY at, action_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    OutboxItem {
                        key: r.try_get(0)?,
                        at: ts(r.try_get(1)?),
                        kind: r.try_get(2)?,
                        conversation: r.try_get(3)?,
                        channel: r.try_get(4)?,
                        thread: r.try_get(5)?,
                        recipient: r.try_get(6)?,
                        body: r.try_get(7)?,
                        attempts: r.try_get(8)?,
                    },
                    r.try_get(9)?,
                ))
            })
            .collect()
    }

    pub async fn mark_delivered(&self, key: &str, at: Timestamp) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'delivered', delivered_at = $1, attempts = attempts + 1 \
             WHERE action_key = $2 AND status = 'pending'",
        )
        .bind(at.as_second())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_failed(&self, key: &str, error: &str, retry_at: Timestamp) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE action_key = $3 AND status = 'pending'",
        )
        .bind(error)
        .bind(retry_at.as_second())
        .bind(key)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Counts rows of a table, for tests and `status` output.
    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        anyhow::ensure!(
            ["conversations", "messages", "reply_checks", "findings", "surveys", "outbox"].contains(&table),
            "unknown table {table}"
        );
        Ok(sqlx::query(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await?.try_get::<i64, _>(0)?)
    }
}

/// `sqlite://file.db` opens or creates `file.db` (sqlx does not create by default).
fn sqlite_url(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

async fn upsert_conversation(tx: &mut Tx, c: &Conversation) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO conversations (id, channel, thread, customer_id, customer_name, opened_at, due_at, first_reply_at, \
         first_reply_by, status, resolved_at, assigned, sla_stage, surveys) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, customer_name = excluded.customer_name, \
         due_at = excluded.due_at, first_reply_at = excluded.first_reply_at, first_reply_by = excluded.first_reply_by, \
         status = excluded.status, resolved_at = excluded.resolved_at, assigned = excluded.assigned, \
         sla_stage = excluded.sla_stage, surveys = excluded.surveys",
    )
    .bind(&c.id)
    .bind(c.channel.as_str())
    .bind(&c.thread)
    .bind(c.customer_id.as_deref())
    .bind(c.customer_name.as_deref())
    .bind(c.opened_at.as_second())
    .bind(c.due_at.map(|t| t.as_second()))
    .bind(c.first_reply_at.map(|t| t.as_second()))
    .bind(c.first_reply_by.as_deref())
    .bind(match c.status {
        Status::Open => "open",
        Status::Resolved => "resolved",
    })
    .bind(c.resolved_at.map(|t| t.as_second()))
    .bind(c.assigned.as_deref())
    .bind(i64::from(c.sla_stage))
    .bind(i64::from(c.surveys))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_survey(tx: &mut Tx, s: &Survey) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO surveys (id, conversation, customer_id, status, due_at, sent_at, token, score, comment, answered_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (id) DO UPDATE SET status = excluded.status, sent_at = excluded.sent_at, token = excluded.token, \
         score = excluded.score, comment = excluded.comment, answered_at = excluded.answered_at",
    )
    .bind(&s.id)
    .bind(&s.conversation)
    .bind(&s.customer_id)
    .bind(s.status.as_str())
    .bind(s.due_at.as_second())
    .bind(s.sent_at.map(|t| t.as_second()))
    .bind(s.token.as_deref())
    .bind(s.score.map(i64::from))
    .bind(s.comment.as_deref())
    .bind(s.answered_at.map(|t| t.as_second()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_check(tx: &mut Tx, k: &ReplyCheck) -> anyhow::Result<()> {
    let channel = k.conversation.split_once(':').map_or("", |(c, _)| c);
    let message_id = format!("{channel}:{}", k.message_id);
    let done = sqlx::query(
        "INSERT INTO reply_checks (message_id, conversation, agent, at, first_reply, late, score, passed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(&message_id)
    .bind(&k.conversation)
    .bind(&k.agent)
    .bind(k.at.as_second())
    .bind(i64::from(k.first))
    .bind(i64::from(k.late))
    .bind(i64::from(k.result.score))
    .bind(i64::from(k.result.passed))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(());
    }
    for (seq, f) in k.result.findings.iter().enumerate() {
        sqlx::query(
            "INSERT INTO findings (message_id, seq, rule, severity, span_start, span_end) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&message_id)
        .bind(seq as i64)
        .bind(&f.rule)
        .bind(f.severity.as_str())
        .bind(f.start as i64)
        .bind(f.end as i64)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn enqueue(tx: &mut Tx, a: &Action, deliver: bool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO outbox (action_key, at, kind, conversation, channel, thread, recipient, body, status, attempts, \
         next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $2) ON CONFLICT (action_key) DO NOTHING",
    )
    .bind(&a.key)
    .bind(a.at.as_second())
    .bind(a.kind.as_str())
    .bind(&a.conversation)
    .bind(a.channel.as_str())
    .bind(&a.thread)
    .bind(&a.to)
    .bind(&a.body)
    .bind(if deliver { "pending" } else { "replayed" })
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::MAX)
}

fn conversation_from_row(r: &AnyRow) -> anyhow::Result<Conversation> {
    let channel: String = r.try_get(1)?;
    let status: String = r.try_get(9)?;
    Ok(Conversation {
        id: r.try_get(0)?,
        channel: Channel::parse(&channel)
            .with_context(|| format!("stored conversation has unknown channel {channel:?}"))?,
        thread: r.try_get(2)?,
        customer_id: r.try_get(3)?,
        customer_name: r.try_get(4)?,
        opened_at: ts(r.try_get(5)?),
        due_at: r.try_get::<Option<i64>, _>(6)?.map(ts),
        first_reply_at: r.try_get::<Option<i64>, _>(7)?.map(ts),
        first_reply_by: r.try_get(8)?,
        status: if status == "resolved" { Status::Resolved } else { Status::Open },
        resolved_at: r.try_get::<Option<i64>, _>(10)?.map(ts),
        assigned: r.try_get(11)?,
        sla_stage: r.try_get::<i64, _>(12)?.try_into()?,
        surveys: r.try_get::<i64, _>(13)?.try_into()?,
    })
}

fn survey_from_row(r: &AnyRow) -> anyhow::Result<Survey> {
    let status: String = r.try_get(3)?;
    Ok(Survey {
        id: r.try_get(0)?,
        conversation: r.try_get(1)?,
        customer_id: r.try_get(2)?,
        status: SurveyStatus::parse(&status).with_context(|| format!("stored survey has unknown status {status:?}"))?,
        due_at: ts(r.try_get(4)?),
        sent_at: r.try_get::<Option<i64>, _>(5)?.map(ts),
        token: r.try_get(6)?,
        score: r.try_get::<Option<i64>, _>(7)?.map(|s| s.clamp(0, 10) as u8),
        comment: r.try_get(8)?,
        answered_at: r.try_get::<Option<i64>, _>(9)?.map(ts),
    })
}
