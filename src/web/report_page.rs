//! `GET /reports/{week}`: the managers' report page (tables and SVG charts),
//! opened from the signed link in the summary mail (`?exp=...&sig=...`) or
//! with an API token (`Authorization: Bearer ...`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::{WebState, page_response};
use crate::core::report::Week;
use crate::reports::{page, report_link_ok};

pub async fn show(
    State(s): State<WebState>,
    Path(week): Path<String>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Ok(week) = Week::parse(&week) else {
        return page_response(
            StatusCode::NOT_FOUND,
            "No such week",
            "<p>Report pages are at /reports/YYYY-Www, e.g. /reports/2026-W48.</p>",
        );
    };
    let now = s.clock.now();
    let signed = match (query.get("exp").and_then(|e| e.parse::<i64>().ok()), query.get("sig")) {
        (Some(exp), Some(sig)) => report_link_ok(&s.secret, week, exp, sig, now),
        _ => false,
    };
    if !signed {
        if headers.contains_key(header::AUTHORIZATION) {
            if let Err(r) = super::api::authorize(&s, &headers).await {
                return r;
            }
        } else {
            return page_response(
                StatusCode::UNAUTHORIZED,
                "Link not valid",
                "<h1>This link is not valid or has expired</h1><p>Open the report from the latest summary mail, \
                 or send an API token (<code>concierge token new NAME</code>).</p>",
            );
        }
    }
    match page(&s.store, &s.hours, week, now).await {
        Ok(html) => {
            let mut r = Html(html).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
                ),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
            h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
            r
        }
        Err(e) => {
            tracing::error!("web: cannot build the report page: {e:#}");
            super::unavailable("the report cannot be computed just now; please try again in a minute")
        }
    }
}
