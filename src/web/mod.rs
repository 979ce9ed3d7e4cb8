//! The web surface `concierge run` serves on `[http] listen`: survey pages
//! for customers (one click per score), the API for managers' tools
//! (`/api/v1/...`, bearer tokens), and `/healthz` and `/metrics` for
//! operators.
//!
//! A thin shell like a channel: handlers read the store, ask pure code what
//! to do ([`crate::core::survey_link`]) and send inputs into the driver's
//! inbox, waiting until they are committed. Every request has a deadline
//! ([`REQUEST_TIMEOUT`]) and bodies are capped ([`BODY_LIMIT`]); the server
//! stops accepting on shutdown and finishes the requests under way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::config::HttpSettings;
use crate::core::hours::BusinessHours;
use crate::core::router::Input;
use crate::core::template::render;
use crate::core::text::html_escape;
use crate::driver::{Clock, Inbound};
use crate::status::StatusBoard;
use crate::store::Store;

mod api;
mod ops;
mod report_page;
mod survey;

/// The longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest request body accepted (a survey comment form).
pub const BODY_LIMIT: usize = 16 * 1024;

const LAYOUT: &str = include_str!("../../responses/page.html");

/// What the handlers share.
#[derive(Clone)]
pub struct WebState {
    pub store: Store,
    pub inbox: mpsc::Sender<Inbound>,
    pub clock: Clock,
    pub status: StatusBoard,
    /// The survey-signing secret (the router's).
    pub secret: Arc<Vec<u8>>,
    /// Seconds after sending that a survey stops taking answers.
    pub survey_expire: i64,
    pub started: Timestamp,
    /// Business hours: report weeks are local weeks.
    pub hours: BusinessHours,
}

impl WebState {
    /// Applies `input` through the driver like any channel's, once committed.
    async fn submit(&self, input: Input) -> Result<(), Response> {
        let (done, committed) = oneshot::channel();
        let inbound = Inbound { at: self.clock.now(), input, done: Some(done) };
        let failed = || unavailable("your answer could not be recorded just now; please try again in a minute");
        self.inbox.send(inbound).await.map_err(|_| failed())?;
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(failed()),
        }
    }
}

/// A bound listener, ready to serve once the driver's inbox exists.
pub struct Web {
    listener: TcpListener,
}

impl Web {
    /// Binds `[http] listen` now, so a taken port stops `run` at start.
    pub async fn bind(settings: &HttpSettings) -> anyhow::Result<Web> {
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} for the web surface: {e}; set [http] listen to a free address \
                 (port 0 picks one) or [http] enabled = false",
                settings.listen
            )
        })?;
        Ok(Web { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes the requests under way.
    pub async fn serve(self, state: WebState, shutdown: impl Future<Output = ()> + Send + 'static) {
        let addr = self.local_addr();
        tracing::info!("web: listening on http://{addr}");
        if let Err(e) = axum::serve(self.listener, routes(state)).with_graceful_shutdown(shutdown).await {
            tracing::error!("web: the server stopped: {e}");
        }
    }
}

/// Every route, with the deadline and the body limit.
pub fn routes(state: WebState) -> Router {
    Router::new()
        .route("/survey/{token}", get(survey::open))
        .route("/survey/{token}/comment", post(survey::comment))
        .route("/reports/{week}", get(report_page::show))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/conversations", get(api::conversations))
        .route("/api/v1/agents", get(api::agents))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { page_response(StatusCode::NOT_FOUND, "Not found", "<p>There is no page here.</p>") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(deadline))
        .with_state(state)
}

async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => unavailable("the request took too long; please try again"),
    }
}

/// A page in the layout (`responses/page.html`); `body` is HTML already.
fn page_response(status: StatusCode, title: &str, body: &str) -> Response {
    let html = render(LAYOUT, &[("title", &html_escape(title)), ("body", body)]);
    let mut response = (status, Html(html)).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        headers.insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

fn unavailable(why: &str) -> Response {
    page_response(StatusCode::SERVICE_UNAVAILABLE, "Please try again", &format!("<p>{}</p>", html_escape(why)))
}
