//! Inputs and the steps they caused, collected in a [`Batch`] and written
//! by [`Store::flush`] in the caller's transaction — the outbox rows with the
//! state that caused them, so both commit or neither does. A batch is a
//! handful of multi-row statements however many events it holds (no
//! per-event queries on the replay path). Idempotency keys make a second
//! write of the same action a no-op; an input is looked up before it reaches
//! a batch ([`Store::known_inputs`]), so its row is a plain insert.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::{Any, Row as _};

use super::{Backend, Store, Tx, placeholders};
use crate::core::router::{
    Action, Conversation, IdSet, Input, Message, ReplyCheck, Resolution, Role, Status, Step, Survey,
};
use crate::core::rules::Finding;

impl Store {
    /// Which of `keys` (see [`input_key`]) were applied before. A key marked
    /// `true` is a message's, looked up among the stored messages; any other
    /// among the processed inputs (where [`Batch::record_input`] keeps them),
    /// so each key costs one lookup.
    pub async fn known_inputs(&self, tx: &mut Tx, keys: &[(&str, bool)]) -> anyhow::Result<IdSet> {
        let mut known = IdSet::default();
        for (table, column, messages) in [("messages", "id", true), ("processed_inputs", "input_key", false)] {
            let wanted: Vec<&str> = keys.iter().filter(|(_, m)| *m == messages).map(|(k, _)| *k).collect();
            for chunk in wanted.chunks(500) {
                let list = placeholders(self.backend, 1, chunk.len());
                let sql = format!("SELECT {column} FROM {table} WHERE {column} IN ({list})");
                let mut q = sqlx::query(&sql);
                for k in chunk {
                    q = q.bind(*k);
                }
                for row in q.fetch_all(&mut **tx).await? {
                    known.insert(row.try_get::<String, _>(column)?);
                }
            }
        }
        Ok(known)
    }

    /// Whether this database holds any history: an input applied (a message
    /// stored, or another input remembered by its key) or a conversation.
    pub async fn holds_history(&self) -> anyhow::Result<bool> {
        for table in ["messages", "processed_inputs", "conversations"] {
            if sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 1")).fetch_optional(&self.pool).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Writes a batch: a few multi-row statements, whatever its size, run as
    /// one stream (each bound while the one before runs). The batch is only
    /// read: the caller frees it, best on the thread that built it.
    pub async fn flush(&self, tx: &mut Tx, batch: &Batch) -> anyhow::Result<()> {
        self.flush_after(tx, batch, std::future::ready(Ok(()))).await
    }

    /// [`Store::flush`] in two parts: first the inputs (messages, their
    /// checks, the keys of other inputs: rows no other batch writes), then,
    /// once `before` is done, the state they changed (conversations,
    /// resolutions, surveys, outbox: rows a batch before may have written
    /// too). A replay on PostgreSQL writes one batch's inputs while the batch
    /// before commits: `before` waits for that commit, so no two batches
    /// ever wait on each other's rows, and the later one commits after.
    pub async fn flush_after(
        &self,
        tx: &mut Tx,
        batch: &Batch,
        before: impl std::future::Future<Output = anyhow::Result<()>>,
    ) -> anyhow::Result<()> {
        let backend = self.backend;
        let Batch { messages, processed, conversations, surveys, resolutions, checks, actions, deliver } = batch;
        let deliver = *deliver;
        // A reply's check is written on the reply's own row.
        let check_ids: Vec<String> = checks.iter().map(check_message_id).collect();
        let mut checked: HashMap<&str, &ReplyCheck> = check_ids.iter().map(String::as_str).zip(checks).collect();
        let mut rows: Vec<MessageRow> = messages
            .iter()
            .map(|(at, m)| {
                let id = message_key(m);
                let check = checked.remove(id.as_str());
                MessageRow {
                    id,
                    conversation: Conversation::key(m.channel, &m.thread),
                    at: at.as_second(),
                    role: m.author.role.as_str(),
                    author_id: &m.author.id,
                    author_name: m.author.name.as_deref(),
                    body: &m.text,
                    check,
                }
            })
            .collect();
        // A check always comes with its message; should one not, its
        // figures are kept on a row of its own with no text (unless the
        // message is stored already).
        let mut orphans: Vec<MessageRow> = check_ids
            .iter()
            .zip(checks)
            .filter(|(id, _)| checked.contains_key(id.as_str()))
            .map(|(id, k)| MessageRow {
                id: id.clone(),
                conversation: k.conversation.clone(),
                at: k.at.as_second(),
                role: Role::Agent.as_str(),
                author_id: &k.agent,
                author_name: None,
                body: "",
                check: Some(k),
            })
            .collect();
        // Each table's rows in key order: the b-tree pages a batch changes
        // are then changed one after another, not revisited at random
        // (messages were written ~20% faster so).
        rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        orphans.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        // An input reaches a batch only when its key was not applied before
        // (see `known_inputs`), so its row is a plain insert: no conflict to
        // look for first (PostgreSQL wrote messages ~25% faster so). Were one
        // stored meanwhile by someone else, the insert fails and the batch
        // is not written, rather than the input counted twice.
        let insert_messages = Insert::new(backend, MESSAGE_HEAD, 12, "", &rows, bind_message);
        let insert_orphans =
            Insert::new(backend, MESSAGE_HEAD, 12, "ON CONFLICT (id) DO NOTHING", &orphans, bind_message);
        let mut processed: Vec<&(String, i64)> = processed.iter().collect();
        processed.sort_unstable();
        let insert_processed =
            Insert::new(backend, "INSERT INTO processed_inputs (input_key, at)", 2, "", &processed, |q, (key, at)| {
                q.bind(key.as_str()).bind(*at)
            });
        let mut conversations: Vec<&Conversation> = conversations.values().collect();
        conversations.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let insert_conversations = Insert::new(
            backend,
            "INSERT INTO conversations (id, channel, thread, customer_id, customer_name, opened_at, due_at, \
             first_reply_at, first_reply_by, status, resolved_at, assigned, waiting_since, reply_due, waits, sla_stage, \
             surveys, silent_since, asked_words, name_used)",
            20,
            "ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, customer_name = excluded.customer_name, \
             due_at = excluded.due_at, first_reply_at = excluded.first_reply_at, first_reply_by = excluded.first_reply_by, \
             status = excluded.status, resolved_at = excluded.resolved_at, assigned = excluded.assigned, \
             waiting_since = excluded.waiting_since, reply_due = excluded.reply_due, waits = excluded.waits, \
             sla_stage = excluded.sla_stage, surveys = excluded.surveys, silent_since = excluded.silent_since, \
             asked_words = excluded.asked_words, name_used = excluded.name_used",
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
                    .bind(i64::from(c.asked_words))
                    .bind(i64::from(c.name_used))
            },
        );
        let mut resolutions: Vec<&Resolution> = resolutions.values().collect();
        resolutions.sort_unstable_by(|a, b| (&a.conversation, a.resolved_at).cmp(&(&b.conversation, b.resolved_at)));
        let insert_resolutions = Insert::new(
            backend,
            "INSERT INTO resolutions (conversation, resolved_at, reopened_at)",
            3,
            "ON CONFLICT (conversation, resolved_at) DO UPDATE SET reopened_at = excluded.reopened_at",
            &resolutions,
            |q, r| {
                q.bind(r.conversation.as_str())
                    .bind(r.resolved_at.as_second())
                    .bind(r.reopened_at.map(|t| t.as_second()))
            },
        );
        let mut surveys: Vec<&Survey> = surveys.values().collect();
        surveys.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let insert_surveys = Insert::new(
            backend,
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
        );
        let mut findings: Vec<(&str, usize, &Finding)> = check_ids
            .iter()
            .zip(checks)
            .flat_map(|(id, k)| k.result.findings.iter().enumerate().map(move |(seq, f)| (id.as_str(), seq, f)))
            .collect();
        findings.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let insert_findings = Insert::new(
            backend,
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
        );
        let status = if deliver { super::OutboxStatus::Pending } else { super::OutboxStatus::Replayed }.as_str();
        let mut actions: Vec<&Action> = actions.iter().collect();
        actions.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let insert_outbox = Insert::new(
            backend,
            "INSERT INTO outbox (action_key, at, kind, conversation, channel, thread, recipient, body, status, attempts, \
             next_attempt_at, about)",
            12,
            "ON CONFLICT (action_key) DO NOTHING",
            &actions,
            |q, a| {
                q.bind(a.key.as_str())
                    .bind(a.at.as_second())
                    .bind(a.kind.as_str())
                    .bind(a.conversation.as_str())
                    .bind(a.channel.as_str())
                    .bind(a.thread.as_str())
                    .bind(a.to.encode())
                    // Replayed history is never sent: its text is not kept.
                    .bind(if deliver { a.body.as_str() } else { "" })
                    .bind(status)
                    .bind(0_i64)
                    .bind(a.at.as_second())
                    .bind(a.about.as_deref())
            },
        );
        let inputs = insert_messages
            .statements()
            .chain(insert_orphans.statements())
            .chain(insert_findings.statements())
            .chain(insert_processed.statements());
        run_statements(tx, inputs).await?;
        before.await?;
        let state = insert_conversations
            .statements()
            .chain(insert_resolutions.statements())
            .chain(insert_surveys.statements())
            .chain(insert_outbox.statements());
        run_statements(tx, state).await
    }
}

/// Whether `input` is stored as a message (its key is a message's id).
pub fn is_message(input: &Input) -> bool {
    matches!(input, Input::Message(_) | Input::Relay { .. } | Input::Posted(_))
}

/// The idempotency key of an input: a message's `channel:id` (the primary
/// key of `messages`), or for a resolve or survey answer its kind, thread and
/// instant (kept in `processed_inputs`).
pub fn input_key(at: Timestamp, input: &Input) -> String {
    let (kind, channel, thread) = match input {
        Input::Message(m) | Input::Relay { message: m, .. } | Input::Posted(m) => return message_key(m),
        Input::Resolve { channel, thread, .. } => ("resolve", *channel, thread),
        Input::Reopen { channel, thread, .. } => ("reopen", *channel, thread),
        Input::SurveyComment { channel, thread, .. } => ("comment", *channel, thread),
        Input::Assign { channel, thread, .. } => ("assign", *channel, thread),
        Input::SurveyAnswer { channel, thread, .. } => ("answer", *channel, thread),
        Input::SurveyCorrection { channel, thread, .. } => ("correction", *channel, thread),
    };
    let channel = channel.map_or("*", |c| c.as_str());
    crate::core::router::concat(&[kind, ":", channel, ":", thread, "@", &at.as_second().to_string()])
}

/// A message's id as stored (`channel:id`): its key among the inputs too.
fn message_key(m: &Message) -> String {
    crate::core::router::joined(m.channel.as_str(), &m.id)
}

/// The conversation an input is about (`channel:thread`, or `*:thread`
/// when the input names no channel), for log spans.
pub fn input_conversation(input: &Input) -> String {
    match input {
        Input::Message(m) | Input::Relay { message: m, .. } | Input::Posted(m) => {
            Conversation::key(m.channel, &m.thread)
        }
        Input::Resolve { channel, thread, .. }
        | Input::Assign { channel, thread, .. }
        | Input::Reopen { channel, thread, .. }
        | Input::SurveyComment { channel, thread, .. }
        | Input::SurveyAnswer { channel, thread, .. }
        | Input::SurveyCorrection { channel, thread, .. } => {
            format!("{}:{thread}", channel.map_or("*", |c| c.as_str()))
        }
    }
}

/// Writes collected in memory and flushed together by [`Store::flush`]: the
/// inputs applied and the steps they caused. A conversation or survey that
/// changes several times in one batch is written once, as it ended.
#[derive(Debug, Default)]
pub struct Batch {
    messages: Vec<(Timestamp, Message)>,
    processed: Vec<(String, i64)>,
    conversations: hashbrown::HashMap<String, Conversation>,
    surveys: hashbrown::HashMap<String, Survey>,
    /// By conversation and instant resolved: a reopening in the same batch
    /// replaces the resolve it reopens (one row each, as it ended).
    resolutions: hashbrown::HashMap<(String, i64), Resolution>,
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
    pub fn record_input(&mut self, at: Timestamp, key: &str, input: Input) {
        match input {
            Input::Message(m) | Input::Relay { message: m, .. } | Input::Posted(m) => self.messages.push((at, m)),
            _ => self.processed.push((key.to_owned(), at.as_second())),
        }
    }

    /// Records conversations as they now are (see [`Router::take_changed`]):
    /// one written per id, the last recorded.
    ///
    /// [`Router::take_changed`]: crate::core::router::Router::take_changed
    pub fn record_conversations(&mut self, conversations: impl IntoIterator<Item = Conversation>) {
        for c in conversations {
            self.conversations.insert(c.id.clone(), c);
        }
    }

    /// Records what a step changed (but its conversation: see
    /// [`Batch::record_conversations`]) and the actions it queued.
    pub fn record_step(&mut self, step: Step) {
        if let Some(s) = step.survey {
            self.surveys.insert(s.id.clone(), s);
        }
        if let Some(r) = step.resolution {
            self.resolutions.insert((r.conversation.clone(), r.resolved_at.as_second()), r);
        }
        self.checks.extend(step.check);
        self.actions.extend(step.actions);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.processed.is_empty()
            && self.conversations.is_empty()
            && self.surveys.is_empty()
            && self.resolutions.is_empty()
            && self.checks.is_empty()
            && self.actions.is_empty()
    }
}

/// A message as written: its row, and its check when it is an agent reply.
struct MessageRow<'a> {
    id: String,
    conversation: String,
    at: i64,
    role: &'static str,
    author_id: &'a str,
    author_name: Option<&'a str>,
    body: &'a str,
    check: Option<&'a ReplyCheck>,
}

const MESSAGE_HEAD: &str = "INSERT INTO messages (id, conversation, at, role, author_id, author_name, body, \
     check_first, check_late, check_score, check_passed, check_overridden)";

fn bind_message<'q>(q: AnyQuery<'q>, m: &'q MessageRow<'_>) -> AnyQuery<'q> {
    let k = m.check;
    q.bind(m.id.as_str())
        .bind(m.conversation.as_str())
        .bind(m.at)
        .bind(m.role)
        .bind(m.author_id)
        .bind(m.author_name)
        .bind(m.body)
        .bind(k.map(|k| i64::from(k.first)))
        .bind(k.map(|k| i64::from(k.late)))
        .bind(k.map(|k| i64::from(k.result.score)))
        .bind(k.map(|k| i64::from(k.result.passed)))
        .bind(k.map(|k| i64::from(k.overridden)))
}

fn check_message_id(k: &ReplyCheck) -> String {
    let channel = k.conversation.split_once(':').map_or("", |(c, _)| c);
    format!("{channel}:{}", k.message_id)
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// Rows per multi-row statement: every full statement of a table has the
/// same text, so each connection prepares it once and keeps it (sqlx's
/// statement cache); a batch's remainder is one more statement.
const ROWS_PER_STATEMENT: usize = 512;

/// One table's rows as multi-row `head VALUES (...), (...) tail`
/// statements, each binding its rows' `cols` values with `bind`:
/// `ROWS_PER_STATEMENT` (512) rows at a time (fewer when that would pass ~30,000
/// parameters; SQLite's and PostgreSQL's limits are above), the remainder one
/// more statement. Built one at a time by [`Insert::statements`], for
/// [`run_statements`].
pub struct Insert<'r, T, B> {
    full: String,
    partial: String,
    per_statement: usize,
    rows: &'r [T],
    bind: B,
}

impl<'r, T, B> Insert<'r, T, B>
where
    B: for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
{
    pub fn new(backend: Backend, head: &str, cols: usize, tail: &str, rows: &'r [T], bind: B) -> Self {
        let per_statement = (30_000 / cols).clamp(1, ROWS_PER_STATEMENT);
        let sql = |n: usize| {
            let values: Vec<String> =
                (0..n).map(|r| format!("({})", placeholders(backend, r * cols + 1, cols))).collect();
            format!("{head} VALUES {} {tail}", values.join(", "))
        };
        let full = if rows.len() >= per_statement { sql(per_statement) } else { String::new() };
        let partial = match rows.len() % per_statement {
            0 => String::new(),
            n => sql(n),
        };
        Insert { full, partial, per_statement, rows, bind }
    }

    /// The statements, each bound when asked for.
    pub fn statements(&self) -> impl Iterator<Item = AnyQuery<'_>> + '_ {
        self.rows.chunks(self.per_statement).map(|chunk| {
            // A full statement is kept prepared; the remainder's text differs
            // from batch to batch and would only push others out of the cache.
            let q = if chunk.len() == self.per_statement {
                sqlx::query(&self.full)
            } else {
                sqlx::query(&self.partial).persistent(false)
            };
            chunk.iter().fold(q, &self.bind)
        })
    }
}

/// Runs `statements` in order in `tx`, each bound while the one before runs
/// (on SQLite, in the connection's own thread), so the database never waits
/// for the next, from one table's to the next table's. Stops at the first
/// error.
pub async fn run_statements<'q>(tx: &mut Tx, mut statements: impl Iterator<Item = AnyQuery<'q>>) -> anyhow::Result<()> {
    let Some(mut running) = statements.next() else { return Ok(()) };
    loop {
        let (done, next) = futures_util::future::join(running.execute(&mut **tx), async { statements.next() }).await;
        done?;
        match next {
            Some(next) => running = next,
            None => return Ok(()),
        }
    }
}

/// Inserts `rows` into one table (see [`Insert`]).
pub async fn insert_many<T>(
    backend: Backend,
    tx: &mut Tx,
    head: &str,
    cols: usize,
    tail: &str,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> anyhow::Result<()> {
    run_statements(tx, Insert::new(backend, head, cols, tail, rows, bind).statements()).await
}
