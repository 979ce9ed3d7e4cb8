//! `/api/v1/...`: the weekly summary (the same JSON as `concierge report
//! --format json`), conversations by status and per-agent figures, for
//! managers' dashboards. Every request carries `Authorization: Bearer
//! TOKEN` (`concierge token new NAME`): 401 without a known token, 403 with a
//! revoked one.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::WebState;
use crate::core::report::Week;
use crate::format::{Format, json_value};
use crate::reports::{last_complete_week, pair};
use crate::store::tokens::TokenState;

/// Most conversations one request lists.
const MAX_LIMIT: i64 = 1000;

/// Who asks, when the token is good; the response to send otherwise.
pub async fn authorize(s: &WebState, headers: &HeaderMap) -> Result<String, Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 256);
    let Some(token) = presented else {
        return Err(problem(
            StatusCode::UNAUTHORIZED,
            "send the header `Authorization: Bearer TOKEN`; `concierge token new NAME` makes a token",
        ));
    };
    match s.store.token_state(token).await {
        Ok(TokenState::Active { name }) => Ok(name),
        Ok(TokenState::Revoked { name }) => {
            Err(problem(StatusCode::FORBIDDEN, &format!("the token of {name} was revoked; ask for a new one")))
        }
        Ok(TokenState::Unknown) => Err(problem(StatusCode::UNAUTHORIZED, "the token is not known")),
        Err(e) => {
            tracing::error!("web: cannot check a token: {e:#}");
            Err(problem(StatusCode::SERVICE_UNAVAILABLE, "the database cannot be read just now"))
        }
    }
}

/// A JSON error body with a status.
fn problem(status: StatusCode, message: &str) -> Response {
    let mut r = (status, Json(json!({"error": message}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"concierge\""));
    }
    r
}

/// `?week=YYYY-Www`, default the last week that has ended.
#[allow(clippy::result_large_err, reason = "the error is the response to send, as axum handlers return it")]
fn week_of(s: &WebState, query: &HashMap<String, String>) -> Result<Week, Response> {
    match query.get("week") {
        None => Ok(last_complete_week(s.clock.now(), &s.hours)),
        Some(w) => Week::parse(w).map_err(|e| problem(StatusCode::BAD_REQUEST, &format!("week: {e}"))),
    }
}

/// The asker's token checked, then `?week=`.
async fn authorized_week(s: &WebState, headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Week, Response> {
    authorize(s, headers).await?;
    week_of(s, query)
}

async fn report_json(s: &WebState, week: Week) -> Result<Value, Response> {
    match pair(&s.store, &s.hours, week, s.clock.now()).await {
        Ok((now, prev)) => Ok(json_value(&now, &prev)),
        Err(e) => {
            tracing::error!("web: cannot compute the report: {e:#}");
            Err(problem(StatusCode::SERVICE_UNAVAILABLE, "the report cannot be computed just now"))
        }
    }
}

pub async fn summary(
    State(s): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let week = match authorized_week(&s, &headers, &query).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    // Exactly what `concierge report --format json` prints.
    match crate::reports::weekly(&s.store, &s.hours, None, week, s.clock.now(), Format::Json).await {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!("web: cannot compute the report: {e:#}");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the report cannot be computed just now")
        }
    }
}

pub async fn agents(
    State(s): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let week = match authorized_week(&s, &headers, &query).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match report_json(&s, week).await {
        Ok(v) => Json(json!({"week": v["week"], "agents": v["agents"]})).into_response(),
        Err(r) => r,
    }
}

pub async fn conversations(
    State(s): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(r) = authorize(&s, &headers).await {
        return r;
    }
    let status = query.get("status").map_or("open", String::as_str);
    if !["open", "breached", "resolved"].contains(&status) {
        return problem(StatusCode::BAD_REQUEST, "status: use open, breached or resolved");
    }
    let limit = match query.get("limit").map(|l| l.parse::<i64>()) {
        None => 100,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return problem(StatusCode::BAD_REQUEST, &format!("limit: a number from 1 to {MAX_LIMIT}")),
    };
    let now = s.clock.now();
    match s.store.conversations_by_status(status, now, limit).await {
        Ok(list) => {
            let items: Vec<Value> = list
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "channel": c.channel,
                        "ticket": c.thread,
                        "customer": c.customer_id,
                        "customer_name": c.customer_name,
                        "status": c.status,
                        "opened_at": c.opened_at,
                        "due_at": c.due_at,
                        "first_reply_at": c.first_reply_at,
                        "first_reply_by": c.first_reply_by,
                        "assigned": c.assigned,
                        "reply_due": c.reply_due,
                        "breached": c.reply_due.is_some_and(|d| d < now),
                        "resolved_at": c.resolved_at,
                    })
                })
                .collect();
            Json(json!({"status": status, "conversations": items})).into_response()
        }
        Err(e) => {
            tracing::error!("web: cannot list conversations: {e:#}");
            problem(StatusCode::SERVICE_UNAVAILABLE, "the database cannot be read just now")
        }
    }
}
