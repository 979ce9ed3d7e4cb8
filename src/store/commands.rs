//! Commands queued by the command line (`concierge resolve`) for the running
//! bot, which applies each in the transaction that marks it done. A command
//! is a closed, typed enum stored as tagged JSON; one that no longer parses
//! (written by another version) is marked failed with the reason.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::{Store, Tx};
use crate::core::router::{Channel, Input};

/// What the command line can ask the running bot to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case", deny_unknown_fields)]
pub enum QueuedCommand {
    Resolve {
        channel: Channel,
        thread: String,
        by: String,
        survey: bool,
    },
    /// Forget a customer (`concierge forget` while the bot runs): replace
    /// their id with `pseudonym` and remove their text.
    Forget {
        customer: String,
        pseudonym: String,
    },
}

impl QueuedCommand {
    /// The router input it stands for, if it is one.
    pub fn input(&self) -> Option<Input> {
        match self {
            QueuedCommand::Resolve { channel, thread, by, survey } => Some(Input::Resolve {
                channel: Some(*channel),
                thread: thread.clone(),
                by: by.clone(),
                survey: *survey,
            }),
            QueuedCommand::Forget { .. } => None,
        }
    }
}

/// A queued command as stored: it parses, or says why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub key: String,
    pub at: Timestamp,
    pub command: Result<QueuedCommand, String>,
}

impl Store {
    /// Queues `command` for the running bot under `key` (a second call with the key adds nothing).
    pub async fn queue_command(&self, key: &str, at: Timestamp, command: &QueuedCommand) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO commands (command_key, at, event, done) VALUES ($1, $2, $3, 0) ON CONFLICT (command_key) DO NOTHING",
        )
        .bind(key)
        .bind(at.as_second())
        .bind(serde_json::to_string(command)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Commands not yet applied, oldest first.
    pub async fn pending_commands(&self) -> anyhow::Result<Vec<Queued>> {
        let rows = sqlx::query("SELECT command_key, at, event FROM commands WHERE done = 0 ORDER BY at, command_key")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let event: String = r.try_get("event")?;
                Ok(Queued {
                    key: r.try_get("command_key")?,
                    at: super::ts(r.try_get("at")?),
                    command: serde_json::from_str(&event).map_err(|e| format!("it does not parse ({e}): {event}")),
                })
            })
            .collect()
    }

    /// Whether the command under `key` has been applied, and its error if it failed.
    pub async fn command_state(&self, key: &str) -> anyhow::Result<Option<Option<String>>> {
        let row = sqlx::query("SELECT done, error FROM commands WHERE command_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) if r.try_get::<i64, _>("done")? != 0 => Some(r.try_get("error")?),
            _ => None,
        })
    }

    /// Replaces the stored text of a command (to drop what it named).
    pub async fn rewrite_command(tx: &mut Tx, key: &str, command: &QueuedCommand) -> anyhow::Result<()> {
        sqlx::query("UPDATE commands SET event = $1 WHERE command_key = $2")
            .bind(serde_json::to_string(command)?)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Marks a command applied (`error: None`) or failed with the reason, in
    /// the transaction that applied it.
    pub async fn command_done(tx: &mut Tx, key: &str, error: Option<&str>) -> anyhow::Result<()> {
        sqlx::query("UPDATE commands SET done = 1, error = $1 WHERE command_key = $2")
            .bind(error)
            .bind(key)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Why a command failed (`Some(None)`: applied; `None`: pending or unknown).
    pub async fn command_outcome(&self, key: &str) -> anyhow::Result<Option<Option<String>>> {
        let row = sqlx::query("SELECT done, error FROM commands WHERE command_key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) if r.try_get::<i64, _>("done")? != 0 => Some(r.try_get("error")?),
            _ => None,
        })
    }
}
