//! The figures `/metrics` exports, read from the database in one go, so
//! every instance on a shared database reports the same.

use jiff::Timestamp;
use sqlx::Row;

use super::Store;
use crate::core::stats::{NpsClass, classify};

/// Upper bounds (seconds) of the delivery-latency histogram buckets.
pub const LATENCY_BUCKETS: [i64; 8] = [1, 5, 15, 60, 300, 900, 3600, 86_400];

/// A snapshot of the figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    pub open_conversations: i64,
    /// Open conversations whose owed reply is past due now.
    pub breached_now: i64,
    /// Delivered team notices by kind (`nudge_warning`, `nudge_breach`, `escalation`, ...).
    pub notices_delivered: Vec<(String, i64)>,
    pub outbox_pending: i64,
    pub outbox_failed: i64,
    /// Survey answers by class: promoters, passives, detractors.
    pub survey_answers: [i64; 3],
    /// Cumulative counts of deliveries at most each bucket's seconds after
    /// they were due, then the total count and the sum of seconds.
    pub latency_buckets: Vec<i64>,
    pub latency_count: i64,
    pub latency_sum: i64,
}

impl Store {
    pub async fn metrics(&self, now: Timestamp) -> anyhow::Result<Metrics> {
        let one = |sql: &'static str| async move {
            let row = sqlx::query(sql).fetch_one(&self.pool).await?;
            anyhow::Ok(row.try_get::<i64, _>(0)?)
        };
        let mut m = Metrics {
            open_conversations: one(
                "SELECT COUNT(*) FROM conversations WHERE status = 'open' AND customer_id IS NOT NULL",
            )
            .await?,
            outbox_pending: one("SELECT COUNT(*) FROM outbox WHERE status = 'pending'").await?,
            outbox_failed: one("SELECT COUNT(*) FROM outbox WHERE status = 'failed'").await?,
            ..Metrics::default()
        };
        let row = sqlx::query(
            "SELECT COUNT(*) FROM conversations WHERE status = 'open' AND reply_due IS NOT NULL AND reply_due < $1",
        )
        .bind(now.as_second())
        .fetch_one(&self.pool)
        .await?;
        m.breached_now = row.try_get(0)?;
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM outbox WHERE status = 'delivered' \
             AND kind IN ('nudge_warning', 'nudge_breach', 'escalation', 'detractor_alert') GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            m.notices_delivered.push((r.try_get("kind")?, r.try_get("n")?));
        }
        let rows = sqlx::query("SELECT score FROM surveys WHERE status = 'answered' AND score IS NOT NULL")
            .fetch_all(&self.pool)
            .await?;
        for r in rows {
            let score: i64 = r.try_get("score")?;
            m.survey_answers[match classify(u8::try_from(score.clamp(0, 10)).unwrap_or(0)) {
                NpsClass::Promoter => 0,
                NpsClass::Passive => 1,
                NpsClass::Detractor => 2,
            }] += 1;
        }
        let mut select =
            String::from("SELECT COUNT(*) AS n, CAST(COALESCE(SUM(delivered_at - at), 0) AS BIGINT) AS total");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            select.push_str(&format!(
                ", CAST(COALESCE(SUM(CASE WHEN delivered_at - at <= {b} THEN 1 ELSE 0 END), 0) AS BIGINT) AS b{i}"
            ));
        }
        select.push_str(" FROM outbox WHERE status = 'delivered' AND delivered_at IS NOT NULL");
        let row = sqlx::query(&select).fetch_one(&self.pool).await?;
        m.latency_count = row.try_get("n")?;
        m.latency_sum = row.try_get("total")?;
        for i in 0..LATENCY_BUCKETS.len() {
            m.latency_buckets.push(row.try_get(format!("b{i}").as_str())?);
        }
        Ok(m)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }
}
