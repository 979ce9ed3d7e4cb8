//! API bearer tokens: created by `concierge token new`, kept only as a
//! SHA-256 hash, revoked by name.

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::Store;

/// What a presented token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// Unknown (or malformed).
    Unknown,
    Revoked {
        name: String,
    },
    Active {
        name: String,
    },
}

/// One token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub name: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    crate::core::text::hex(&Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Stores a new token for `name`; `false` when `name` already has an active one.
    pub async fn create_token(&self, name: &str, token: &str, now: Timestamp) -> anyhow::Result<bool> {
        let mut tx = self.begin().await?;
        let active = sqlx::query("SELECT COUNT(*) FROM api_tokens WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)?;
        if active > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO api_tokens (hash, name, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash(token))
            .bind(name)
            .bind(now.as_second())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Revokes `name`'s active token; `false` when it has none.
    pub async fn revoke_token(&self, name: &str, now: Timestamp) -> anyhow::Result<bool> {
        let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL")
            .bind(now.as_second())
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn token_state(&self, token: &str) -> anyhow::Result<TokenState> {
        let row = sqlx::query("SELECT name, revoked_at FROM api_tokens WHERE hash = $1")
            .bind(token_hash(token))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => TokenState::Unknown,
            Some(r) => {
                let name: String = r.try_get("name")?;
                match r.try_get::<Option<i64>, _>("revoked_at")? {
                    Some(_) => TokenState::Revoked { name },
                    None => TokenState::Active { name },
                }
            }
        })
    }

    pub async fn tokens(&self) -> anyhow::Result<Vec<TokenRow>> {
        let rows = sqlx::query("SELECT name, created_at, revoked_at FROM api_tokens ORDER BY created_at, name")
            .fetch_all(&self.pool)
            .await?;
        let ts = |s: i64| Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH);
        rows.iter()
            .map(|r| {
                Ok(TokenRow {
                    name: r.try_get("name")?,
                    created_at: ts(r.try_get("created_at")?),
                    revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(ts),
                })
            })
            .collect()
    }
}
