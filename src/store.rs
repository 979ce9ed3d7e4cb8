//! Storage with sqlx: SQLite (WAL) by default, PostgreSQL for teams that run
//! several instances. One portable schema (`migrations/`) and one set of
//! queries serve both through sqlx's `Any` driver.
//!
//! The store is dumb on purpose: the router decides, the store records.
//! Inputs and the [`Step`]s they cause are collected in a [`Batch`] and written
//! by [`Store::flush`] inside the caller's transaction, outbox rows included, so
//! a state change and its side effects commit together or not at all. A batch
//! is a handful of multi-row statements however many events it holds (no
//! per-event queries on the replay path). Idempotency keys make a second write
//! of the same cause a no-op.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;

use anyhow::Context as _;
use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{Any, AnyPool, Executor as _, Row as _, Transaction};

use crate::core::report::{CheckRow, ConversationRow, ReportData};
use crate::core::router::{
    Action, Channel, Conversation, Input, Message, ReplyCheck, Status, Step, Survey, SurveyStatus,
};
use crate::core::rules::Finding;

/// The migrations in `migrations/`, built into the binary.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (2, "email", include_str!("../migrations/0002_email.sql")),
    (3, "overrides", include_str!("../migrations/0003_overrides.sql")),
    (4, "silence", include_str!("../migrations/0004_silence.sql")),
    (5, "commands", include_str!("../migrations/0005_commands.sql")),
    (6, "sent_ids", include_str!("../migrations/0006_sent_ids.sql")),
];

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

    /// The pool, for channel adapters that keep state of their own.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
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
                let s = crate::core::text::hex(&bytes);
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

    /// Which of `keys` (see [`input_key`]) were applied before.
    pub async fn known_inputs(&self, tx: &mut Tx, keys: &[String]) -> anyhow::Result<HashSet<String>> {
        let mut known = HashSet::new();
        for chunk in keys.chunks(500) {
            for (table, column) in [("messages", "id"), ("processed_inputs", "input_key")] {
                let list = placeholders(self.backend, 1, chunk.len());
                let sql = format!("SELECT {column} FROM {table} WHERE {column} IN ({list})");
                let mut q = sqlx::query(&sql);
                for k in chunk {
                    q = q.bind(k.as_str());
                }
                for row in q.fetch_all(&mut **tx).await? {
                    known.insert(row.try_get::<String, _>(0)?);
                }
            }
        }
        Ok(known)
    }

    /// Writes a batch: a few multi-row statements, whatever its size.
    pub async fn flush(&self, tx: &mut Tx, batch: Batch) -> anyhow::Result<()> {
        let backend = self.backend;
        let Batch { messages, processed, conversations, surveys, checks, actions, deliver } = batch;
        insert_many(
            backend,
            tx,
            "INSERT INTO messages (id, conversation, at, role, author_id, author_name, body)",
            7,
            "ON CONFLICT (id) DO NOTHING",
            &messages,
            |q, (at, m)| {
                q.bind(format!("{}:{}", m.channel.as_str(), m.id))
                    .bind(Conversation::key(m.channel, &m.thread))
                    .bind(at.as_second())
                    .bind(m.author.role.as_str())
                    .bind(m.author.id.as_str())
                    .bind(m.author.name.as_deref())
                    .bind(m.text.as_str())
            },
        )
        .await?;
        insert_many(
            backend,
            tx,
            "INSERT INTO processed_inputs (input_key, at)",
            2,
            "ON CONFLICT (input_key) DO NOTHING",
            &processed,
            |q, (key, at)| q.bind(key.as_str()).bind(*at),
        )
        .await?;
        let conversations: Vec<Conversation> = conversations.into_values().collect();
        insert_many(
            backend,
            tx,
            "INSERT INTO conversations (id, channel, thread, customer_id, customer_name, opened_at, due_at, \
             first_reply_at, first_reply_by, status, resolved_at, assigned, waiting_since, reply_due, waits, sla_stage, \
             surveys, silent_since)",
            18,
            "ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, customer_name = excluded.customer_name, \
             due_at = excluded.due_at, first_reply_at = excluded.first_reply_at, first_reply_by = excluded.first_reply_by, \
             status = excluded.status, resolved_at = excluded.resolved_at, assigned = excluded.assigned, \
             waiting_since = excluded.waiting_since, reply_due = excluded.reply_due, waits = excluded.waits, \
             sla_stage = excluded.sla_stage, surveys = excluded.surveys, silent_since = excluded.silent_since",
            &conversations,
            |q, c| {
                q.bind(c.id.as_str())
                    .bind(c.channel.as_str())
                    .bind(c.thread.as_str())
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
                    .bind(c.waiting_since.map(|t| t.as_second()))
                    .bind(c.reply_due.map(|t| t.as_second()))
                    .bind(i64::from(c.waits))
                    .bind(i64::from(c.sla_stage))
                    .bind(i64::from(c.surveys))
                    .bind(c.silent_since.map(|t| t.as_second()))
            },
        )
        .await?;
        let surveys: Vec<Survey> = surveys.into_values().collect();
        insert_many(
            backend,
            tx,
            "INSERT INTO surveys (id, conversation, customer_id, status, due_at, sent_at, token, score, comment, answered_at)",
            10,
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, sent_at = excluded.sent_at, token = excluded.token, \
             score = excluded.score, comment = excluded.comment, answered_at = excluded.answered_at",
            &surveys,
            |q, s| {
                q.bind(s.id.as_str())
                    .bind(s.conversation.as_str())
                    .bind(s.customer_id.as_str())
                    .bind(s.status.as_str())
                    .bind(s.due_at.as_second())
                    .bind(s.sent_at.map(|t| t.as_second()))
                    .bind(s.token.as_deref())
                    .bind(s.score.map(i64::from))
                    .bind(s.comment.as_deref())
                    .bind(s.answered_at.map(|t| t.as_second()))
            },
        )
        .await?;
        let check_ids: Vec<String> = checks.iter().map(check_message_id).collect();
        insert_many(
            backend,
            tx,
            "INSERT INTO reply_checks (message_id, conversation, agent, at, first_reply, late, score, passed, overridden)",
            9,
            "ON CONFLICT (message_id) DO NOTHING",
            &checks,
            |q, k| {
                q.bind(check_message_id(k))
                    .bind(k.conversation.as_str())
                    .bind(k.agent.as_str())
                    .bind(k.at.as_second())
                    .bind(i64::from(k.first))
                    .bind(i64::from(k.late))
                    .bind(i64::from(k.result.score))
                    .bind(i64::from(k.result.passed))
                    .bind(i64::from(k.overridden))
            },
        )
        .await?;
        let findings: Vec<(&str, usize, &Finding)> = check_ids
            .iter()
            .zip(&checks)
            .flat_map(|(id, k)| k.result.findings.iter().enumerate().map(move |(seq, f)| (id.as_str(), seq, f)))
            .collect();
        insert_many(
            backend,
            tx,
            "INSERT INTO findings (message_id, seq, rule, severity, span_start, span_end)",
            6,
            "ON CONFLICT (message_id, seq) DO NOTHING",
            &findings,
            |q, (id, seq, f)| {
                q.bind(*id)
                    .bind(*seq as i64)
                    .bind(f.rule.as_str())
                    .bind(f.severity.as_str())
                    .bind(f.start as i64)
                    .bind(f.end as i64)
            },
        )
        .await?;
        let status = if deliver { "pending" } else { "replayed" };
        insert_many(
            backend,
            tx,
            "INSERT INTO outbox (action_key, at, kind, conversation, channel, thread, recipient, body, status, attempts, \
             next_attempt_at)",
            11,
            "ON CONFLICT (action_key) DO NOTHING",
            &actions,
            |q, a| {
                q.bind(a.key.as_str())
                    .bind(a.at.as_second())
                    .bind(a.kind.as_str())
                    .bind(a.conversation.as_str())
                    .bind(a.channel.as_str())
                    .bind(a.thread.as_str())
                    .bind(a.to.as_str())
                    .bind(a.body.as_str())
                    .bind(status)
                    .bind(0_i64)
                    .bind(a.at.as_second())
            },
        )
        .await?;
        Ok(())
    }

    /// Everything the router needs to resume: all conversations and surveys.
    pub async fn load_state(&self) -> anyhow::Result<(Vec<Conversation>, Vec<Survey>)> {
        let convs = sqlx::query(
            "SELECT id, channel, thread, customer_id, customer_name, opened_at, due_at, first_reply_at, \
             first_reply_by, status, resolved_at, assigned, sla_stage, surveys, waiting_since, reply_due, waits, \
             silent_since FROM conversations",
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
        let sql = format!(
            "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY at, action_key LIMIT $2"
        );
        let rows = sqlx::query(&sql).bind(now.as_second()).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(outbox_item_from_row).collect()
    }

    /// All outbox rows in order, for `replay --print-actions` and tests.
    pub async fn outbox(&self) -> anyhow::Result<Vec<(OutboxItem, String)>> {
        let sql = format!("SELECT {OUTBOX_COLUMNS}, status FROM outbox ORDER BY at, action_key");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((outbox_item_from_row(r)?, r.try_get(9)?))).collect()
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

    /// Queues a command (a replay-format JSON event) for the running bot.
    pub async fn queue_command(&self, key: &str, at: Timestamp, event: &str) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO commands (command_key, at, event, done) VALUES ($1, $2, $3, 0) ON CONFLICT (command_key) DO NOTHING",
        )
        .bind(key)
        .bind(at.as_second())
        .bind(event)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Commands not yet applied, oldest first: (key, event).
    pub async fn pending_commands(&self) -> anyhow::Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT command_key, event FROM commands WHERE done = 0 ORDER BY at, command_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Marks a command applied, in the transaction that applied it.
    pub async fn command_done(tx: &mut Tx, key: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE commands SET done = 1 WHERE command_key = $1").bind(key).execute(&mut **tx).await?;
        Ok(())
    }

    /// The channels on which a conversation with this thread exists.
    pub async fn channels_of(&self, thread: &str) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query("SELECT channel FROM conversations WHERE thread = $1 ORDER BY channel")
            .bind(thread)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
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

/// The idempotency key of an input: a message's `channel:id` (the primary
/// key of `messages`), or for a resolve or survey answer its kind, thread and
/// instant (kept in `processed_inputs`).
pub fn input_key(at: Timestamp, input: &Input) -> String {
    let (kind, channel, thread) = match input {
        Input::Message(m) | Input::Relay { message: m, .. } => return format!("{}:{}", m.channel.as_str(), m.id),
        Input::Resolve { channel, thread, .. } => ("resolve", *channel, thread),
        Input::Assign { channel, thread, .. } => ("assign", *channel, thread),
        Input::SurveyAnswer { channel, thread, .. } => ("answer", *channel, thread),
    };
    let channel = channel.map_or("*", |c| c.as_str());
    format!("{kind}:{channel}:{thread}@{}", at.as_second())
}

/// Writes collected in memory and flushed together by [`Store::flush`]: the
/// inputs applied and the steps they caused. A conversation or survey that
/// changes several times in one batch is written once, as it ended.
#[derive(Debug, Default)]
pub struct Batch {
    messages: Vec<(Timestamp, Message)>,
    processed: Vec<(String, i64)>,
    conversations: HashMap<String, Conversation>,
    surveys: HashMap<String, Survey>,
    checks: Vec<ReplyCheck>,
    actions: Vec<Action>,
    /// Queue actions for delivery (`false`: record them as replayed history).
    deliver: bool,
}

impl Batch {
    pub fn new(deliver: bool) -> Batch {
        Batch { deliver, ..Batch::default() }
    }

    /// Records an input as applied (a message is stored, others remembered by key).
    pub fn record_input(&mut self, at: Timestamp, key: String, input: &Input) {
        match input {
            Input::Message(m) | Input::Relay { message: m, .. } => self.messages.push((at, m.clone())),
            _ => self.processed.push((key, at.as_second())),
        }
    }

    /// Records what a step changed and the actions it queued.
    pub fn record_step(&mut self, step: Step) {
        if let Some(c) = step.conversation {
            self.conversations.insert(c.id.clone(), c);
        }
        if let Some(s) = step.survey {
            self.surveys.insert(s.id.clone(), s);
        }
        self.checks.extend(step.check);
        self.actions.extend(step.actions);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.processed.is_empty()
            && self.conversations.is_empty()
            && self.surveys.is_empty()
            && self.checks.is_empty()
            && self.actions.is_empty()
    }
}

fn check_message_id(k: &ReplyCheck) -> String {
    let channel = k.conversation.split_once(':').map_or("", |(c, _)| c);
    format!("{channel}:{}", k.message_id)
}

/// `n` bind placeholders: `?` for SQLite (sqlx looks numbered ones up by
/// name, which is quadratic in a statement's parameters), `$first, ...` for
/// PostgreSQL.
fn placeholders(backend: Backend, first: usize, n: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; n].join(", "),
        Backend::Postgres => (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", "),
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Runs `head VALUES (...), (...) tail` over `rows`, binding each row's `cols`
/// values with `bind`, in statements of at most ~30,000 parameters (SQLite's
/// and PostgreSQL's limits are above that).
async fn insert_many<'r, T>(
    backend: Backend,
    tx: &mut Tx,
    head: &str,
    cols: usize,
    tail: &str,
    rows: &'r [T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> anyhow::Result<()> {
    let per_statement = (30_000 / cols).max(1);
    for chunk in rows.chunks(per_statement) {
        let values: Vec<String> =
            (0..chunk.len()).map(|r| format!("({})", placeholders(backend, r * cols + 1, cols))).collect();
        let sql = format!("{head} VALUES {} {tail}", values.join(", "));
        let mut q = sqlx::query(&sql);
        for row in chunk {
            q = bind(q, row);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::MAX)
}

const OUTBOX_COLUMNS: &str = "action_key, at, kind, conversation, channel, thread, recipient, body, attempts";

/// An outbox row whose first nine columns are [`OUTBOX_COLUMNS`].
fn outbox_item_from_row(r: &AnyRow) -> anyhow::Result<OutboxItem> {
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
        waiting_since: r.try_get::<Option<i64>, _>(14)?.map(ts),
        reply_due: r.try_get::<Option<i64>, _>(15)?.map(ts),
        waits: r.try_get::<i64, _>(16)?.try_into()?,
        silent_since: r.try_get::<Option<i64>, _>(17)?.map(ts),
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
