//! The active instance's lease on PostgreSQL: several `concierge run`
//! processes may share one database; exactly one holds the lease and acts,
//! the others stand by and take it over once it expires.
//!
//! Times are the database's clock (`clock_timestamp()`), so machines with
//! skewed clocks agree on expiry. Each takeover raises the `epoch`, and
//! every write transaction of the holder first checks, with a shared row
//! lock, that its epoch is still the lease's ([`Store::begin`]): once a
//! standby has taken over, the old holder cannot write another row. A
//! delivery (a mail, a Discord message) cannot be fenced by the database,
//! so the holder stops delivering as soon as it has gone [`LEASE_TTL`]/2
//! without a successful renewal, well before a standby may take over
//! (after a full [`LEASE_TTL`] by the database's clock).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Row as _;

use super::Store;

/// How long a lease lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(6);
/// How often the holder renews it.
pub const RENEW_EVERY: Duration = Duration::from_millis(1500);
/// How often a standby tries to take it.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

/// The database clock in milliseconds, as SQL.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// This instance's claim: who it is, the epoch it won, and until when (by
/// its own monotonic clock) it may still act without a renewal.
#[derive(Debug)]
pub struct Fence {
    pub holder: String,
    pub epoch: i64,
    valid_until: Mutex<Instant>,
}

impl Fence {
    pub fn new(holder: String, epoch: i64, renewed_at: Instant) -> Fence {
        Fence { holder, epoch, valid_until: Mutex::new(renewed_at + LEASE_TTL / 2) }
    }

    /// Whether this instance may still deliver: renewed within the last
    /// half lease.
    pub fn valid(&self) -> bool {
        Instant::now() < *self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A renewal that started at `started` succeeded.
    pub fn renewed(&self, started: Instant) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) = started + LEASE_TTL / 2;
    }
}

/// Who holds the lease, as a standby sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub holder: String,
    pub epoch: i64,
    /// Milliseconds until it expires (negative: expired).
    pub expires_in_ms: i64,
}

impl Store {
    /// Takes the lease for `me` if nobody holds a live one; returns the new
    /// epoch. A live lease is never taken, not even by its own holder.
    pub async fn try_acquire_lease(&self, me: &str) -> anyhow::Result<Option<i64>> {
        let ttl = LEASE_TTL.as_millis() as i64;
        let row = sqlx::query(&format!(
            "INSERT INTO instance_lease (name, holder, epoch, expires_at) VALUES ('run', $1, 1, {DB_NOW_MS} + $2) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = instance_lease.epoch + 1, \
             expires_at = excluded.expires_at \
             WHERE instance_lease.expires_at < {DB_NOW_MS} \
             RETURNING epoch"
        ))
        .bind(me)
        .bind(ttl)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("epoch")?),
            None => None,
        })
    }

    /// Extends `me`'s lease; `false` when it is no longer `me`'s (taken over).
    pub async fn renew_lease(&self, me: &str, epoch: i64) -> anyhow::Result<bool> {
        let ttl = LEASE_TTL.as_millis() as i64;
        let done = sqlx::query(&format!(
            "UPDATE instance_lease SET expires_at = {DB_NOW_MS} + $1 WHERE name = 'run' AND holder = $2 AND epoch = $3"
        ))
        .bind(ttl)
        .bind(me)
        .bind(epoch)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up at once (a clean stop), so a standby need not wait.
    /// On a connection of its own: at a stop the pool is closed already.
    pub async fn release_lease(&self, me: &str, epoch: i64) -> anyhow::Result<()> {
        use sqlx::Connection as _;
        let mut conn = sqlx::AnyConnection::connect(&self.url).await?;
        sqlx::query("UPDATE instance_lease SET expires_at = 0 WHERE name = 'run' AND holder = $1 AND epoch = $2")
            .bind(me)
            .bind(epoch)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(())
    }

    /// The lease as it stands, if anyone ever held it.
    pub async fn lease_holder(&self) -> anyhow::Result<Option<Holder>> {
        let row = sqlx::query(&format!(
            "SELECT holder, epoch, expires_at - {DB_NOW_MS} AS left_ms FROM instance_lease WHERE name = 'run'"
        ))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => Some(Holder {
                holder: r.try_get("holder")?,
                epoch: r.try_get("epoch")?,
                expires_in_ms: r.try_get("left_ms")?,
            }),
            None => None,
        })
    }
}

/// This process's name among instances: `HOST:PID`.
pub fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
