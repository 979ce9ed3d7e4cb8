//! Conversations and surveys as stored: everything the router needs to
//! resume after a restart, and the lookups a channel needs about them
//! (whether a thread exists, its customer, the customer's latest message).

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use jiff::Timestamp;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Backend, Store, Tx, placeholders, ts};
use crate::core::router::{Channel, Conversation, OpenWork, Status, Survey, SurveyStatus};

/// One item of open work as [`Store::load_state_each`] reads it (handed
/// over one at a time, never held in bulk: the size difference is moot).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Stored {
    /// A customer's latest survey sent within the throttle window.
    Sent(String, Timestamp),
    /// A conversation open or with a survey pending, with its surveys.
    Conversation(Conversation, Vec<Survey>),
}

impl Store {
    /// What the router needs to resume, which follows open work, not
    /// history: the conversations open or with a survey pending, their
    /// surveys, and each customer's latest survey sent since
    /// `throttle_from` (the throttle window). See [`Store::load_state_each`].
    pub async fn load_state(&self, throttle_from: Timestamp) -> anyhow::Result<OpenWork> {
        let mut work = OpenWork::default();
        self.load_state_each(throttle_from, |item| match item {
            Stored::Sent(customer, at) => work.last_sent.push((customer, at)),
            Stored::Conversation(c, surveys) => {
                work.conversations.push(c);
                work.surveys.extend(surveys);
            }
        })
        .await?;
        Ok(work)
    }

    /// [`Store::load_state`] handed to `each` as it is read, so memory
    /// never holds open work twice (as rows and as the router's state):
    /// first each customer's latest survey sent, then each conversation
    /// with its surveys.
    pub async fn load_state_each(&self, throttle_from: Timestamp, mut each: impl FnMut(Stored)) -> anyhow::Result<()> {
        let rows = sqlx::query(
            "SELECT customer_id, MAX(sent_at) AS sent_at FROM surveys WHERE sent_at >= $1 GROUP BY customer_id",
        )
        .bind(throttle_from.as_second())
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            each(Stored::Sent(r.try_get("customer_id")?, ts(r.try_get("sent_at")?)));
        }
        drop(rows);
        // Surveys are few beside conversations: read side by side first.
        let open_surveys = format!(
            "SELECT {} FROM surveys s JOIN conversations c ON c.id = s.conversation WHERE c.status = 'open'",
            prefixed(SURVEY, "s")
        );
        let pending = format!("SELECT {SURVEY} FROM surveys WHERE status = 'pending'");
        let (surveys, pending) = tokio::try_join!(
            self.fetch_all(&open_surveys, survey_from_row),
            self.fetch_all(&pending, survey_from_row)
        )?;
        // A pending survey's conversation is resolved: read it after the open ones.
        let mut resolved: Vec<String> = pending.iter().map(|s| s.conversation.clone()).collect();
        resolved.sort();
        resolved.dedup();
        let mut surveys = crate::core::router::by_conversation(surveys.into_iter().chain(pending).collect());
        let (sql, paged) = self.open_conversations();
        let mut pages = sqlx::query(&sql).fetch(&self.pool);
        while let Some(page) = pages.try_next().await? {
            let rows: Vec<ConversationRow> = if paged {
                serde_json::from_str(&page.try_get::<String, _>(0)?).context("reading a page of open conversations")?
            } else {
                vec![ConversationRow::read(&page)?]
            };
            for row in rows {
                let c = row.into_conversation()?;
                let of = surveys.remove(&c.id).unwrap_or_default();
                each(Stored::Conversation(c, of));
            }
        }
        drop(pages);
        let mut tx = self.begin_read().await?;
        let resolved = self.conversations_in(&mut tx, "id", &resolved).await?;
        tx.rollback().await?;
        for c in resolved.into_iter().filter(|c| c.status != Status::Open) {
            let of = surveys.remove(&c.id).unwrap_or_default();
            each(Stored::Conversation(c, of));
        }
        Ok(())
    }

    /// The query for the open conversations, and whether it reads them in
    /// pages. On SQLite, pages of 250 rows, each page one JSON array of
    /// [`CONVERSATION`] arrays: sqlx's SQLite driver copies every value and
    /// hands every row from its worker thread, which made reading 100,000
    /// open conversations row by row three times as long. PostgreSQL's
    /// driver streams rows faster than the server builds such pages.
    fn open_conversations(&self) -> (String, bool) {
        match self.backend {
            Backend::Sqlite => (
                format!(
                    "SELECT json_group_array(json_array({CONVERSATION})) AS page FROM \
                     (SELECT {CONVERSATION}, (row_number() OVER ()) / 250 AS page_no \
                     FROM conversations WHERE status = 'open') GROUP BY page_no"
                ),
                true,
            ),
            Backend::Postgres => (format!("SELECT {CONVERSATION} FROM conversations WHERE status = 'open'"), false),
        }
    }

    /// Every stored conversation, by id (checks and exports; the router
    /// never needs them all).
    pub async fn all_conversations(&self) -> anyhow::Result<Vec<Conversation>> {
        self.fetch_all(&format!("SELECT {CONVERSATION} FROM conversations ORDER BY id"), conversation_from_row).await
    }

    /// Every stored survey, by id (checks and exports).
    pub async fn all_surveys(&self) -> anyhow::Result<Vec<Survey>> {
        self.fetch_all(&format!("SELECT {SURVEY} FROM surveys ORDER BY id"), survey_from_row).await
    }

    /// Stored conversations by id, and the newest of each thread in
    /// `threads`, with all their surveys: what the router hydrates before an
    /// input on a thread it no longer holds in memory.
    pub async fn stored_for(
        &self,
        tx: &mut Tx,
        ids: &[String],
        threads: &[String],
    ) -> anyhow::Result<(Vec<Conversation>, Vec<Survey>)> {
        let mut convs = self.conversations_in(tx, "id", ids).await?;
        let mut by_thread = self.conversations_in(tx, "thread", threads).await?;
        // A thread-only lookup wants the newest conversation of the thread.
        by_thread.sort_by(|a, b| (&a.thread, b.opened_at, &b.id).cmp(&(&b.thread, a.opened_at, &a.id)));
        by_thread.dedup_by(|a, b| a.thread == b.thread);
        convs.extend(by_thread);
        convs.sort_by(|a, b| a.id.cmp(&b.id));
        convs.dedup_by(|a, b| a.id == b.id);
        let found: Vec<String> = convs.iter().map(|c| c.id.clone()).collect();
        let sql = format!("SELECT {SURVEY} FROM surveys WHERE conversation IN");
        let surveys = self.fetch_in(tx, &sql, &found, survey_from_row).await?;
        Ok((convs, surveys))
    }

    /// Conversations whose `column` is one of `keys`.
    async fn conversations_in(&self, tx: &mut Tx, column: &str, keys: &[String]) -> anyhow::Result<Vec<Conversation>> {
        let sql = format!("SELECT {CONVERSATION} FROM conversations WHERE {column} IN");
        self.fetch_in(tx, &sql, keys, conversation_from_row).await
    }

    /// `head (keys...)` in chunks of 500 keys, each row read by `from_row`.
    async fn fetch_in<T>(
        &self,
        tx: &mut Tx,
        head: &str,
        keys: &[String],
        from_row: fn(&AnyRow) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let sql = format!("{head} ({})", placeholders(self.backend, 1, chunk.len()));
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for row in q.fetch_all(&mut **tx).await? {
                out.push(from_row(&row)?);
            }
        }
        Ok(out)
    }

    /// Every row of `sql`, streamed (one row at a time, never all of them
    /// as rows at once) and read by `from_row`.
    async fn fetch_all<T>(&self, sql: &str, from_row: fn(&AnyRow) -> anyhow::Result<T>) -> anyhow::Result<Vec<T>> {
        let mut rows = sqlx::query(sql).fetch(&self.pool);
        let mut out = Vec::new();
        while let Some(row) = rows.try_next().await? {
            out.push(from_row(&row)?);
        }
        Ok(out)
    }

    /// Whether a conversation exists on `channel` with this thread.
    pub async fn conversation_exists(&self, channel: Channel, thread: &str) -> anyhow::Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM conversations WHERE id = $1")
            .bind(Conversation::key(channel, thread))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The customer's id in the conversation on `channel` with this thread, if known.
    pub async fn customer_of(&self, channel: Channel, thread: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query("SELECT customer_id FROM conversations WHERE id = $1")
            .bind(Conversation::key(channel, thread))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("customer_id")?,
            None => None,
        })
    }

    /// The channel's own id of the customer's latest message in a conversation.
    pub async fn latest_customer_message(&self, conversation: &str) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT id FROM messages WHERE conversation = $1 AND role = 'customer' ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(conversation)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        // Stored as `channel:id`.
        Ok(Some(id.split_once(':').map_or(id.clone(), |(_, own)| own.to_string())))
    }

    /// One conversation as stored, by id (`channel:thread`).
    pub async fn conversation(&self, id: &str) -> anyhow::Result<Option<Conversation>> {
        let row = sqlx::query(&format!("SELECT {CONVERSATION} FROM conversations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    /// The newest survey of a conversation, if any.
    pub async fn latest_survey(&self, conversation: &str) -> anyhow::Result<Option<Survey>> {
        let rows = sqlx::query(&format!("SELECT {SURVEY} FROM surveys WHERE conversation = $1"))
            .bind(conversation)
            .fetch_all(&self.pool)
            .await?;
        let mut surveys = rows.iter().map(survey_from_row).collect::<anyhow::Result<Vec<_>>>()?;
        surveys.sort_by_key(|s| s.id.rsplit_once('#').and_then(|(_, n)| n.parse::<u32>().ok()).unwrap_or(0));
        Ok(surveys.pop())
    }

    /// Conversations with a customer for the API, newest first: `open`,
    /// `breached` (open with the owed reply past due at `now`) or `resolved`.
    pub async fn conversations_by_status(
        &self,
        status: &str,
        now: Timestamp,
        limit: i64,
    ) -> anyhow::Result<Vec<Conversation>> {
        let base = format!("SELECT {CONVERSATION} FROM conversations WHERE customer_id IS NOT NULL AND");
        let order = "ORDER BY opened_at DESC, id";
        let rows = match status {
            "open" | "resolved" => {
                sqlx::query(&format!("{base} status = $1 {order} LIMIT $2"))
                    .bind(status)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            "breached" => {
                sqlx::query(&format!(
                    "{base} status = 'open' AND reply_due IS NOT NULL AND reply_due < $1 {order} LIMIT $2"
                ))
                .bind(now.as_second())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            other => anyhow::bail!("unknown status {other:?}"),
        };
        rows.iter().map(conversation_from_row).collect()
    }

    /// The survey whose link carries `token`, if any.
    pub async fn survey_by_token(&self, token: &str) -> anyhow::Result<Option<Survey>> {
        let row = sqlx::query(&format!("SELECT {SURVEY} FROM surveys WHERE token = $1"))
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(survey_from_row).transpose()
    }

    /// A stored message's author id and text, by its channel and the channel's own id.
    pub async fn message(&self, channel: Channel, id: &str) -> anyhow::Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT author_id, body FROM messages WHERE id = $1")
            .bind(format!("{}:{id}", channel.as_str()))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("author_id")?, r.try_get("body")?)),
            None => None,
        })
    }

    /// The channels on which a conversation with this thread exists.
    pub async fn channels_of(&self, thread: &str) -> anyhow::Result<Vec<Channel>> {
        let rows = sqlx::query("SELECT channel FROM conversations WHERE thread = $1 ORDER BY channel")
            .bind(thread)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let name: String = r.try_get("channel")?;
                Channel::parse(&name).with_context(|| format!("stored conversation has unknown channel {name:?}"))
            })
            .collect()
    }
}

/// The columns [`conversation_from_row`] reads, in its order.
const CONVERSATION: &str = "id, channel, thread, customer_id, customer_name, opened_at, due_at, first_reply_at, \
     first_reply_by, status, resolved_at, assigned, waiting_since, reply_due, waits, sla_stage, surveys, silent_since, \
     asked_words, name_used";

/// The columns [`survey_from_row`] reads, in its order.
const SURVEY: &str = "id, conversation, customer_id, status, due_at, sent_at, token, score, comment, answered_at";

/// `columns` each prefixed with `alias.` (for joins).
fn prefixed(columns: &str, alias: &str) -> String {
    columns.split(',').map(|c| format!("{alias}.{}", c.trim())).collect::<Vec<_>>().join(", ")
}

/// A conversation from a row of [`CONVERSATION`] columns, read by position
/// (start-up reads 100k of them: a lookup by name costs more than the row).
fn conversation_from_row(r: &AnyRow) -> anyhow::Result<Conversation> {
    ConversationRow::read(r)?.into_conversation()
}

/// A conversation's columns as stored, in [`CONVERSATION`] order: read from
/// a row, or from a JSON array of the same columns (see [`Store::open_pages`]).
#[derive(serde::Deserialize)]
struct ConversationRow {
    id: String,
    channel: String,
    thread: String,
    customer_id: Option<String>,
    customer_name: Option<String>,
    opened_at: i64,
    due_at: Option<i64>,
    first_reply_at: Option<i64>,
    first_reply_by: Option<String>,
    status: String,
    resolved_at: Option<i64>,
    assigned: Option<String>,
    waiting_since: Option<i64>,
    reply_due: Option<i64>,
    waits: i64,
    sla_stage: i64,
    surveys: i64,
    silent_since: Option<i64>,
    asked_words: i64,
    name_used: i64,
}

impl ConversationRow {
    fn read(r: &AnyRow) -> Result<ConversationRow, sqlx::Error> {
        Ok(ConversationRow {
            id: r.try_get(0)?,
            channel: r.try_get(1)?,
            thread: r.try_get(2)?,
            customer_id: r.try_get(3)?,
            customer_name: r.try_get(4)?,
            opened_at: r.try_get(5)?,
            due_at: r.try_get(6)?,
            first_reply_at: r.try_get(7)?,
            first_reply_by: r.try_get(8)?,
            status: r.try_get(9)?,
            resolved_at: r.try_get(10)?,
            assigned: r.try_get(11)?,
            waiting_since: r.try_get(12)?,
            reply_due: r.try_get(13)?,
            waits: r.try_get(14)?,
            sla_stage: r.try_get(15)?,
            surveys: r.try_get(16)?,
            silent_since: r.try_get(17)?,
            asked_words: r.try_get(18)?,
            name_used: r.try_get(19)?,
        })
    }

    fn into_conversation(self) -> anyhow::Result<Conversation> {
        let channel = self.channel;
        Ok(Conversation {
            id: self.id,
            channel: Channel::parse(&channel)
                .with_context(|| format!("stored conversation has unknown channel {channel:?}"))?,
            thread: self.thread,
            customer_id: self.customer_id,
            customer_name: self.customer_name,
            opened_at: ts(self.opened_at),
            due_at: self.due_at.map(ts),
            first_reply_at: self.first_reply_at.map(ts),
            first_reply_by: self.first_reply_by,
            status: if self.status == "resolved" { Status::Resolved } else { Status::Open },
            resolved_at: self.resolved_at.map(ts),
            assigned: self.assigned,
            waiting_since: self.waiting_since.map(ts),
            reply_due: self.reply_due.map(ts),
            waits: self.waits.try_into()?,
            sla_stage: self.sla_stage.try_into()?,
            surveys: self.surveys.try_into()?,
            silent_since: self.silent_since.map(ts),
            asked_words: self.asked_words.try_into().unwrap_or(u32::MAX),
            name_used: self.name_used != 0,
        })
    }
}

/// A survey from a row of [`SURVEY`] columns, read by position.
fn survey_from_row(r: &AnyRow) -> anyhow::Result<Survey> {
    let at = |i: usize| -> Result<Option<Timestamp>, sqlx::Error> { Ok(r.try_get::<Option<i64>, _>(i)?.map(ts)) };
    let status: String = r.try_get(3)?;
    Ok(Survey {
        id: r.try_get(0)?,
        conversation: r.try_get(1)?,
        customer_id: r.try_get(2)?,
        status: SurveyStatus::parse(&status).with_context(|| format!("stored survey has unknown status {status:?}"))?,
        due_at: ts(r.try_get(4)?),
        sent_at: at(5)?,
        token: r.try_get(6)?,
        score: r.try_get::<Option<i64>, _>(7)?.map(|s| s.clamp(0, 10) as u8),
        comment: r.try_get(8)?,
        answered_at: at(9)?,
    })
}
