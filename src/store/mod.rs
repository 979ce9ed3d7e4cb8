//! Storage with sqlx: SQLite (WAL) by default, PostgreSQL as the same
//! schema. One portable schema (`migrations/`, applied by `sqlx::migrate!`)
//! and one set of queries serve both through sqlx's `Any` driver.
//!
//! The store is dumb on purpose: the router decides, the store records. Split
//! by what it stores: [`batch`] (inputs and the steps they caused, written in
//! the caller's transaction with their outbox rows), [`outbox`] (delivery
//! state), [`report`] (the rows behind a weekly report), [`commands`]
//! (commands queued by the command line), [`conversations`] (state to resume
//! and the lookups channels need). Rows are read by column name. Adapters
//! ask through these methods; only a channel's own tables (e.g. `email_*`)
//! are queried by the channel.

pub mod batch;
pub mod commands;
pub mod conversations;
pub mod lease;
pub mod metrics;
pub mod outbox;
pub mod privacy;
pub mod report;
pub mod tokens;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyPool, Connection as _, Executor as _, Row as _, Transaction};

pub use batch::{Batch, input_conversation, input_key, insert_many, is_message};
pub use conversations::Stored;
pub use outbox::{OutboxItem, OutboxStatus};
pub use report::report_queries;

/// How long opening the database may take before it is reported unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A transaction on the store.
pub type Tx = Transaction<'static, Any>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// As configured (for messages and the instance lock).
    url: String,
    newly_migrated: Vec<String>,
    /// Set on the active instance of several (PostgreSQL): its writes are fenced.
    fence: Option<Arc<lease::Fence>>,
}

impl Store {
    /// Connects (creating a SQLite file if needed) and applies migrations. An
    /// unreachable server is reported within a few seconds, naming the URL.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let configured = url.to_string();
        let (backend, url) = if url.starts_with("sqlite:") {
            (Backend::Sqlite, sqlite_url(url))
        } else {
            (Backend::Postgres, url.to_string())
        };
        let memory = url.contains(":memory:");
        if backend == Backend::Postgres {
            // One direct attempt first: its error says why (refused, unknown
            // host, bad password), where the pool would only time out.
            match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect(&url)).await {
                Ok(Ok(conn)) => {
                    let _ = conn.close().await;
                }
                Ok(Err(e)) => return Err(unreachable(&configured, e)),
                Err(_) => return Err(unreachable(&configured, sqlx::Error::PoolTimedOut)),
            }
        }
        let pool = AnyPoolOptions::new()
            // An in-memory SQLite database lives and dies with its one connection.
            .max_connections(if memory { 1 } else { 4 })
            .acquire_timeout(CONNECT_TIMEOUT)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // A multi-row statement inside a transaction keeps
                        // the pages it changes in a statement journal, to
                        // undo just that statement on an error; in memory,
                        // not a temporary file written for every batch
                        // (BENCHMARKS.md, ingest).
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA temp_store = MEMORY;",
                        )
                        .await?;
                    } else {
                        // concierge's queries are short: compiling them
                        // (PostgreSQL's JIT, on above a cost estimate) took
                        // longer than running them (BENCHMARKS.md, reports).
                        conn.execute("SET jit = off").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| unreachable(&configured, e))?;
        let mut store = Store { pool, backend, url: configured, newly_migrated: Vec::new(), fence: None };
        store.newly_migrated = store.migrate().await?;
        Ok(store)
    }

    /// The migrations this process applied when it opened the store
    /// (`VERSION description`), none when the schema was up to date.
    pub fn newly_migrated(&self) -> &[String] {
        &self.newly_migrated
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations (the files in `migrations/`, built in);
    /// returns those it applied.
    pub async fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let before: Vec<i64> = match sqlx::query("SELECT version FROM _sqlx_migrations").fetch_all(&self.pool).await {
            Ok(rows) => rows.iter().filter_map(|r| r.try_get::<i64, _>("version").ok()).collect(),
            Err(_) => Vec::new(), // a fresh database has no table yet
        };
        let migrator = sqlx::migrate!("./migrations");
        migrator.run(&self.pool).await.context("applying database migrations")?;
        Ok(migrator
            .iter()
            .filter(|m| !before.contains(&m.version))
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect())
    }

    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that read first could not write
    /// after another connection (the dispatch worker) committed, and would
    /// fail with SQLITE_BUSY_SNAPSHOT instead of waiting its turn.
    ///
    /// With a fence (the active one of several instances), the transaction
    /// first takes a shared lock on the lease row and fails unless this
    /// instance still holds it: a takeover waits for it, and once a standby
    /// has taken over, nothing more is written here.
    pub async fn begin(&self) -> anyhow::Result<Tx> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        if let Some(fence) = &self.fence {
            let held = sqlx::query(
                "SELECT 1 AS one FROM instance_lease WHERE name = 'run' AND holder = $1 AND epoch = $2 FOR SHARE",
            )
            .bind(&fence.holder)
            .bind(fence.epoch)
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_none() {
                anyhow::bail!(
                    "this instance ({}) is no longer the active one: another has taken over (epoch {} ended)",
                    fence.holder,
                    fence.epoch
                );
            }
        }
        Ok(tx)
    }

    /// This store with its writes fenced by `fence` (see [`lease`]).
    pub fn with_fence(mut self, fence: Arc<lease::Fence>) -> Store {
        self.fence = Some(fence);
        self
    }

    /// Whether this instance may deliver now: always, unless it is the
    /// active one of several and has gone half a lease without renewing.
    pub fn may_act(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.valid())
    }

    /// The active instance's fence, if this store has one.
    pub fn fence(&self) -> Option<&Arc<lease::Fence>> {
        self.fence.as_ref()
    }

    /// A transaction that only reads (on SQLite a deferred one, so it does
    /// not wait for a writer).
    pub async fn begin_read(&self) -> anyhow::Result<Tx> {
        Ok(self.pool.begin().await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Takes the database for this process, for as long as the returned
    /// lock lives, so two processes never act at once. SQLite: an exclusive
    /// lock on the file `DB.lock` beside the database (the operating system
    /// releases it when the process ends, however it ends). PostgreSQL: the
    /// lease ([`lease`]), given up by [`InstanceLock::release`] or expiring
    /// on its own; `concierge run` renews it ([`crate::instance`]), one-off
    /// holders (`forget`) take it for a moment.
    pub async fn lock_instance(&self) -> anyhow::Result<InstanceLock> {
        self.try_lock_instance().await?.ok_or_else(|| match self.backend {
            Backend::Sqlite => anyhow::anyhow!(
                "another `concierge run` is already using the database {}; stop it first. SQLite serves one \
                 instance; to run several (one active, the others standing by), use PostgreSQL (see the README)",
                crate::config::redact_url(&self.url)
            ),
            Backend::Postgres => anyhow::anyhow!(
                "another `concierge run` is active on the database {}",
                crate::config::redact_url(&self.url)
            ),
        })
    }

    /// The instance lock, or `None` when a running bot holds it. On SQLite a
    /// lock on a file beside the database; on PostgreSQL the lease (see
    /// [`lease`]), taken for as long as the lock is held.
    pub async fn try_lock_instance(&self) -> anyhow::Result<Option<InstanceLock>> {
        match self.backend {
            Backend::Postgres => {
                let me = lease::instance_id();
                Ok(self.try_acquire_lease(&me).await?.map(|epoch| InstanceLock::Lease {
                    store: Box::new(self.clone()),
                    holder: me,
                    epoch,
                }))
            }
            Backend::Sqlite => {
                let Some(path) = sqlite_path(&self.url) else { return Ok(Some(InstanceLock::None)) };
                let lock_path = format!("{path}.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .with_context(|| format!("cannot create the lock file {lock_path}"))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(InstanceLock::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {lock_path}: {e}")),
                }
            }
        }
    }

    /// The survey-signing secret kept in the database, created on first use.
    pub async fn secret(&self) -> anyhow::Result<Vec<u8>> {
        let mut tx = self.begin().await?;
        let read = "SELECT value FROM settings WHERE name = 'survey_secret'";
        let existing: Option<String> =
            sqlx::query(read).fetch_optional(&mut *tx).await?.map(|r| r.try_get("value")).transpose()?;
        let secret = match existing {
            Some(s) => s,
            None => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the survey secret: {e}"))?;
                sqlx::query(
                    "INSERT INTO settings (name, value) VALUES ('survey_secret', $1) ON CONFLICT (name) DO NOTHING",
                )
                .bind(crate::core::text::hex(&bytes))
                .execute(&mut *tx)
                .await?;
                // Another process may have won the race: read what is stored.
                sqlx::query(read).fetch_one(&mut *tx).await?.try_get("value")?
            }
        };
        tx.commit().await?;
        Ok(secret.into_bytes())
    }

    /// A value kept in `settings`, if set.
    pub async fn setting(&self, name: &str) -> anyhow::Result<Option<String>> {
        let row =
            sqlx::query("SELECT value FROM settings WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(match row {
            Some(r) => Some(sqlx::Row::try_get(&r, "value")?),
            None => None,
        })
    }

    /// Sets `name` unless it is set; returns the value it holds now.
    pub async fn setting_or_init(&self, name: &str, value: &str) -> anyhow::Result<String> {
        sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(self.setting(name).await?.unwrap_or_else(|| value.to_string()))
    }

    /// Counts rows of a table, for tests and status output.
    pub async fn count(&self, table: &str) -> anyhow::Result<i64> {
        anyhow::ensure!(
            ["conversations", "messages", "findings", "surveys", "outbox"].contains(&table),
            "unknown table {table}"
        );
        let sql = format!("SELECT COUNT(*) AS n FROM {table}");
        Ok(sqlx::query(&sql).fetch_one(&self.pool).await?.try_get::<i64, _>("n")?)
    }

    /// The pool, for a channel's queries on its own tables.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }
}

/// Held by `concierge run` for its whole life; see [`Store::lock_instance`].
pub enum InstanceLock {
    /// The lease on PostgreSQL.
    Lease {
        store: Box<Store>,
        holder: String,
        epoch: i64,
    },
    File(std::fs::File),
    /// An in-memory database cannot be shared.
    None,
}

impl InstanceLock {
    /// Gives the database up now (dropping the lock does too, a moment later).
    pub async fn release(self) {
        match self {
            InstanceLock::Lease { store, holder, epoch } => {
                if let Err(e) = store.release_lease(&holder, epoch).await {
                    tracing::warn!(error = %format!("{e:#}"), "could not give the lease up; it expires on its own");
                }
            }
            InstanceLock::File(file) => {
                let _ = file.unlock();
            }
            InstanceLock::None => {}
        }
    }
}

fn unreachable(url: &str, e: sqlx::Error) -> anyhow::Error {
    let url = crate::config::redact_url(url);
    match e {
        sqlx::Error::PoolTimedOut => anyhow::anyhow!(
            "cannot open the database {url}: no connection within {} s; check that the server is running \
             and reachable, and database.url",
            CONNECT_TIMEOUT.as_secs()
        ),
        other => {
            let cause = other.to_string();
            let cause = cause.strip_prefix("error communicating with database: ").unwrap_or(&cause);
            anyhow::anyhow!(
                "cannot open the database {url}: {cause}; check database.url and that the server is running"
            )
        }
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

/// The file of a SQLite URL; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<String> {
    if url.contains(":memory:") {
        return None;
    }
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| path.to_string())
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

/// An instant stored as unix seconds.
fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap_or(Timestamp::MAX)
}

/// An optional instant column, by name.
fn opt_ts(r: &sqlx::any::AnyRow, column: &str) -> Result<Option<Timestamp>, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(column)?.map(ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_a_sqlite_database() {
        assert_eq!(sqlite_path("sqlite://data/c.db?mode=rwc").as_deref(), Some("data/c.db"));
        assert_eq!(sqlite_path("sqlite:c.db").as_deref(), Some("c.db"));
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }
}
