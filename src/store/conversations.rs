//! Conversations and surveys as stored: everything the router needs to
//! resume after a restart, and the lookups a channel needs about them
//! (whether a thread exists, its customer, the customer's latest message).

use anyhow::Context as _;
use jiff::Timestamp;
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{Store, Tx, opt_ts, placeholders, ts};
use crate::core::router::{Channel, Conversation, Status, Survey, SurveyStatus};

impl Store {
    /// What the router needs to resume, which follows open work, not
    /// history: the conversations open or with a survey pending, their
    /// surveys, and the surveys sent since `throttle_from` (the throttle
    /// window: only their customers and send instants matter).
    pub async fn load_state(&self, throttle_from: Timestamp) -> anyhow::Result<(Vec<Conversation>, Vec<Survey>)> {
        let mut convs = self.fetch_conversations("SELECT * FROM conversations WHERE status = 'open'", None).await?;
        let mut surveys = self
            .fetch_surveys(
                "SELECT s.* FROM surveys s JOIN conversations c ON c.id = s.conversation WHERE c.status = 'open'",
                None,
            )
            .await?;
        let pending = self.fetch_surveys("SELECT * FROM surveys WHERE status = 'pending'", None).await?;
        let mut ids: Vec<String> = pending.iter().map(|s| s.conversation.clone()).collect();
        ids.sort();
        ids.dedup();
        let mut tx = self.begin().await?;
        let (resolved, theirs) = self.stored_for(&mut tx, &ids, &[]).await?;
        tx.commit().await?;
        convs.extend(resolved.into_iter().filter(|c| c.status != Status::Open));
        surveys.extend(theirs);
        surveys.extend(
            self.fetch_surveys("SELECT * FROM surveys WHERE sent_at >= $1", Some(throttle_from.as_second())).await?,
        );
        Ok((convs, surveys))
    }

    /// Every stored conversation, by id (checks and exports; the router
    /// never needs them all).
    pub async fn all_conversations(&self) -> anyhow::Result<Vec<Conversation>> {
        self.fetch_conversations("SELECT * FROM conversations ORDER BY id", None).await
    }

    /// Every stored survey, by id (checks and exports).
    pub async fn all_surveys(&self) -> anyhow::Result<Vec<Survey>> {
        self.fetch_surveys("SELECT * FROM surveys ORDER BY id", None).await
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
        let mut convs = Vec::new();
        for (column, keys) in [("id", ids), ("thread", threads)] {
            for chunk in keys.chunks(500) {
                let list = placeholders(self.backend, 1, chunk.len());
                let sql = format!("SELECT * FROM conversations WHERE {column} IN ({list})");
                let mut q = sqlx::query(&sql);
                for k in chunk {
                    q = q.bind(k.as_str());
                }
                let found = q
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(conversation_from_row)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                convs.extend(found);
            }
        }
        // A thread-only lookup wants the newest conversation of the thread.
        if !threads.is_empty() {
            let mut newest: std::collections::HashMap<String, (Timestamp, String)> = std::collections::HashMap::new();
            for c in convs.iter().filter(|c| threads.contains(&c.thread)) {
                let e = newest.entry(c.thread.clone()).or_insert((c.opened_at, c.id.clone()));
                if (c.opened_at, &c.id) > (e.0, &e.1) {
                    *e = (c.opened_at, c.id.clone());
                }
            }
            convs.retain(|c| ids.contains(&c.id) || newest.get(&c.thread).is_some_and(|(_, id)| *id == c.id));
        }
        convs.sort_by(|a, b| a.id.cmp(&b.id));
        convs.dedup_by(|a, b| a.id == b.id);
        let mut surveys = Vec::new();
        let found: Vec<String> = convs.iter().map(|c| c.id.clone()).collect();
        for chunk in found.chunks(500) {
            let list = placeholders(self.backend, 1, chunk.len());
            let sql = format!("SELECT * FROM surveys WHERE conversation IN ({list})");
            let mut q = sqlx::query(&sql);
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for row in q.fetch_all(&mut **tx).await? {
                surveys.push(survey_from_row(&row)?);
            }
        }
        Ok((convs, surveys))
    }

    async fn fetch_conversations(&self, sql: &str, arg: Option<i64>) -> anyhow::Result<Vec<Conversation>> {
        let mut q = sqlx::query(sql);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        q.fetch_all(&self.pool).await?.iter().map(conversation_from_row).collect()
    }

    async fn fetch_surveys(&self, sql: &str, arg: Option<i64>) -> anyhow::Result<Vec<Survey>> {
        let mut q = sqlx::query(sql);
        if let Some(a) = arg {
            q = q.bind(a);
        }
        q.fetch_all(&self.pool).await?.iter().map(survey_from_row).collect()
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
        let row = sqlx::query("SELECT * FROM conversations WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(conversation_from_row).transpose()
    }

    /// The newest survey of a conversation, if any.
    pub async fn latest_survey(&self, conversation: &str) -> anyhow::Result<Option<Survey>> {
        let rows = sqlx::query("SELECT * FROM surveys WHERE conversation = $1")
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
        let base = "SELECT * FROM conversations WHERE customer_id IS NOT NULL AND";
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
        let row = sqlx::query("SELECT * FROM surveys WHERE token = $1").bind(token).fetch_optional(&self.pool).await?;
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

fn conversation_from_row(r: &AnyRow) -> anyhow::Result<Conversation> {
    let channel: String = r.try_get("channel")?;
    let status: String = r.try_get("status")?;
    Ok(Conversation {
        id: r.try_get("id")?,
        channel: Channel::parse(&channel)
            .with_context(|| format!("stored conversation has unknown channel {channel:?}"))?,
        thread: r.try_get("thread")?,
        customer_id: r.try_get("customer_id")?,
        customer_name: r.try_get("customer_name")?,
        opened_at: ts(r.try_get("opened_at")?),
        due_at: opt_ts(r, "due_at")?,
        first_reply_at: opt_ts(r, "first_reply_at")?,
        first_reply_by: r.try_get("first_reply_by")?,
        status: if status == "resolved" { Status::Resolved } else { Status::Open },
        resolved_at: opt_ts(r, "resolved_at")?,
        assigned: r.try_get("assigned")?,
        sla_stage: r.try_get::<i64, _>("sla_stage")?.try_into()?,
        surveys: r.try_get::<i64, _>("surveys")?.try_into()?,
        waiting_since: opt_ts(r, "waiting_since")?,
        reply_due: opt_ts(r, "reply_due")?,
        waits: r.try_get::<i64, _>("waits")?.try_into()?,
        silent_since: opt_ts(r, "silent_since")?,
        asked_words: r.try_get::<i64, _>("asked_words")?.try_into().unwrap_or(u32::MAX),
        name_used: r.try_get::<i64, _>("name_used")? != 0,
    })
}

fn survey_from_row(r: &AnyRow) -> anyhow::Result<Survey> {
    let status: String = r.try_get("status")?;
    Ok(Survey {
        id: r.try_get("id")?,
        conversation: r.try_get("conversation")?,
        customer_id: r.try_get("customer_id")?,
        status: SurveyStatus::parse(&status).with_context(|| format!("stored survey has unknown status {status:?}"))?,
        due_at: ts(r.try_get("due_at")?),
        sent_at: opt_ts(r, "sent_at")?,
        token: r.try_get("token")?,
        score: r.try_get::<Option<i64>, _>("score")?.map(|s| s.clamp(0, 10) as u8),
        comment: r.try_get("comment")?,
        answered_at: opt_ts(r, "answered_at")?,
    })
}
