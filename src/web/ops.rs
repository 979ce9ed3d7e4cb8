//! `/healthz` (process, the instance and whether it is the active one,
//! database, each channel's connection; 503 when any is not well) and
//! `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::WebState;
use crate::core::router::Channel;
use crate::core::stats::Nps;
use crate::status::{ChannelStatus, Link};
use crate::store::metrics::{LATENCY_BUCKETS, Metrics};

pub async fn healthz(State(s): State<WebState>) -> Response {
    let database = match s.store.ping().await {
        Ok(()) => serde_json::json!({"ok": true}),
        Err(e) => serde_json::json!({"ok": false, "error": format!("{e:#}")}),
    };
    let channels = s.status.snapshot();
    // Which instance answers, and that it is the active one: on PostgreSQL
    // the lease holder (standbys serve no HTTP), on SQLite the only one.
    let instance = match s.store.fence() {
        Some(f) => serde_json::json!({"id": f.holder, "role": "active", "epoch": f.epoch, "lease_fresh": f.valid()}),
        None => serde_json::json!({"id": crate::store::lease::instance_id(), "role": "active"}),
    };
    let healthy = database["ok"] == true && channels.values().all(|c| c.link == Link::Up) && s.store.may_act();
    let now = s.clock.now();
    let body = serde_json::json!({
        "status": if healthy { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": now.as_second() - s.started.as_second(),
        "instance": instance,
        "database": database,
        "channels": channels,
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

pub async fn metrics(State(s): State<WebState>) -> Response {
    match s.store.metrics(s.clock.now()).await {
        Ok(m) => {
            let mut response = exposition(&m, &s.status.snapshot()).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            response
        }
        Err(e) => {
            tracing::error!("web: cannot read the metrics: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "the database cannot be read\n").into_response()
        }
    }
}

/// The Prometheus text exposition of `m` and the channels' states.
pub fn exposition(m: &Metrics, channels: &BTreeMap<Channel, ChannelStatus>) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, samples: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: i64| vec![(String::new(), v)];
    gauge("concierge_conversations_open", "Open conversations with a customer.", "gauge", &one(m.open_conversations));
    gauge(
        "concierge_conversations_breached",
        "Open conversations whose owed reply is past due.",
        "gauge",
        &one(m.breached_now),
    );
    let notices: Vec<(String, i64)> = ["nudge_warning", "nudge_breach", "escalation", "detractor_alert"]
        .iter()
        .map(|kind| {
            let n = m.notices_delivered.iter().find(|(k, _)| k == kind).map_or(0, |(_, n)| *n);
            (format!("{{kind=\"{kind}\"}}"), n)
        })
        .collect();
    gauge(
        "concierge_notices_delivered_total",
        "Nudges, escalations and alerts delivered to the team.",
        "counter",
        &notices,
    );
    gauge("concierge_outbox_pending", "Actions waiting to be delivered.", "gauge", &one(m.outbox_pending));
    gauge(
        "concierge_outbox_failed",
        "Actions that failed permanently (see concierge outbox).",
        "gauge",
        &one(m.outbox_failed),
    );
    let links: Vec<(String, i64)> = channels
        .iter()
        .map(|(c, s)| (format!("{{channel=\"{}\"}}", c.as_str()), i64::from(s.link == Link::Up)))
        .collect();
    gauge("concierge_channel_up", "1 when the channel is connected.", "gauge", &links);
    let answers: Vec<(String, i64)> = ["promoter", "passive", "detractor"]
        .iter()
        .zip(m.survey_answers)
        .map(|(class, n)| (format!("{{class=\"{class}\"}}"), n))
        .collect();
    gauge("concierge_survey_answers_total", "Survey answers by NPS class.", "counter", &answers);
    let count = |i: usize| u32::try_from(m.survey_answers[i]).unwrap_or(u32::MAX);
    let nps = Nps {
        responses: count(0).saturating_add(count(1)).saturating_add(count(2)),
        promoters: count(0),
        passives: count(1),
        detractors: count(2),
    };
    if let Some(score) = nps.score() {
        gauge("concierge_nps", "Net Promoter Score over all answers (-100 to 100).", "gauge", &one(score.into()));
    }
    let _ = writeln!(
        out,
        "# HELP concierge_delivery_latency_seconds Seconds from when an action was due to its delivery.\n\
         # TYPE concierge_delivery_latency_seconds histogram"
    );
    for (bound, count) in LATENCY_BUCKETS.iter().zip(&m.latency_buckets) {
        let _ = writeln!(out, "concierge_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "concierge_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}", m.latency_count);
    let _ = writeln!(out, "concierge_delivery_latency_seconds_sum {}", m.latency_sum);
    let _ = writeln!(out, "concierge_delivery_latency_seconds_count {}", m.latency_count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_prometheus_text_with_every_family() {
        let m = Metrics {
            open_conversations: 3,
            breached_now: 1,
            notices_delivered: vec![("escalation".into(), 2)],
            outbox_pending: 4,
            outbox_failed: 1,
            survey_answers: [5, 2, 3],
            latency_buckets: vec![1, 2, 3, 4, 5, 6, 7, 8],
            latency_count: 9,
            latency_sum: 100_000,
        };
        let now = "2026-11-23T10:00:00Z".parse().unwrap();
        let channels =
            [(Channel::Email, ChannelStatus { link: Link::Down("x".into()), since: now })].into_iter().collect();
        let text = exposition(&m, &channels);
        for line in [
            "concierge_conversations_open 3",
            "concierge_conversations_breached 1",
            "concierge_notices_delivered_total{kind=\"escalation\"} 2",
            "concierge_notices_delivered_total{kind=\"nudge_warning\"} 0",
            "concierge_outbox_failed 1",
            "concierge_channel_up{channel=\"email\"} 0",
            "concierge_survey_answers_total{class=\"detractor\"} 3",
            "concierge_nps 20",
            "concierge_delivery_latency_seconds_bucket{le=\"+Inf\"} 9",
            "concierge_delivery_latency_seconds_count 9",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        // Every sample belongs to a family declared with HELP and TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")) || text.contains(&format!("# TYPE {name} ")), "{l}");
        }
    }
}
