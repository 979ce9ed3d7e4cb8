//! The survey pages: `GET /survey/{token}` (the question, or `?score=N` to
//! answer with one click) and `POST /survey/{token}/comment` (the optional
//! comment, with an anti-forgery key and a same-origin check).

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::{WebState, page_response, unavailable};
use crate::core::router::{SURVEY_CORRECTION_SECS, Survey};
use crate::core::survey_link::{Page, form_key, form_key_ok, on_comment, on_open, verify};
use crate::core::text::html_escape;

/// The longest comment kept, in characters.
const MAX_COMMENT: usize = 2000;

pub async fn open(
    State(s): State<WebState>,
    Path(token): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let now = s.clock.now();
    let found = match lookup(&s, &token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let page = on_open(found.as_ref(), query.get("score").map(String::as_str), now, s.survey_expire);
    let page = match page {
        Page::Thanks { input: Some(input), .. } => {
            if let Err(response) = s.submit(*input).await {
                return response;
            }
            // The driver decides; show what it recorded.
            match lookup(&s, &token).await {
                Ok(after) => on_open(after.as_ref(), None, s.clock.now(), s.survey_expire),
                Err(response) => return response,
            }
        }
        page => page,
    };
    show(&s, &token, found.as_ref(), &page)
}

#[derive(serde::Deserialize)]
pub struct CommentForm {
    #[serde(default)]
    comment: String,
    #[serde(default)]
    key: String,
}

pub async fn comment(
    State(s): State<WebState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    Form(form): Form<CommentForm>,
) -> Response {
    let found = match lookup(&s, &token).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Some(survey) = found.as_ref() else { return show(&s, &token, None, &Page::NotFound) };
    if cross_site(&headers) || !form_key_ok(&s.secret, survey, &form.key) {
        return page_response(
            StatusCode::FORBIDDEN,
            "Not sent",
            "<p>This form was not sent from our survey page. Open the link in your email again to add a comment.</p>",
        );
    }
    if form.comment.chars().count() > MAX_COMMENT {
        return page_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too long",
            &format!("<p>Please keep the comment under {MAX_COMMENT} characters.</p>"),
        );
    }
    if form.comment.trim().is_empty() {
        return show(&s, &token, found.as_ref(), &on_open(found.as_ref(), None, s.clock.now(), s.survey_expire));
    }
    match on_comment(Some(survey), &form.comment, s.clock.now(), s.survey_expire) {
        Ok(input) => match s.submit(input).await {
            Ok(()) => page_response(
                StatusCode::OK,
                "Thank you",
                "<h1>Thank you</h1><p>Your comment has reached the team.</p>",
            ),
            Err(response) => response,
        },
        Err(page) => show(&s, &token, Some(survey), &page),
    }
}

/// The survey a token names, verified against the secret (`None`: unknown or forged).
async fn lookup(s: &WebState, token: &str) -> Result<Option<Survey>, Response> {
    // Tokens are hex; anything else is not worth a query.
    if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    match s.store.survey_by_token(token).await {
        Ok(found) => Ok(verify(found.as_ref(), token, &s.secret).cloned()),
        Err(e) => {
            tracing::error!("web: cannot read a survey: {e:#}");
            Err(unavailable("the survey cannot be opened just now; please try again in a minute"))
        }
    }
}

/// A request made from another site: the browser says so in
/// `Sec-Fetch-Site`, or its `Origin` names another host. (`Origin: null`,
/// sent under strict referrer policies, counts only with `Sec-Fetch-Site:
/// same-origin`.)
fn cross_site(headers: &HeaderMap) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = get("sec-fetch-site");
    if fetch_site.is_some_and(|v| v == "cross-site" || v == "same-site") {
        return true;
    }
    match (get(header::ORIGIN.as_str()), get(header::HOST.as_str())) {
        (Some("null"), _) => fetch_site != Some("same-origin"),
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

fn show(s: &WebState, token: &str, survey: Option<&Survey>, page: &Page) -> Response {
    let token_html = html_escape(token);
    let scores = |chosen: Option<u8>| {
        let mut out = String::from("<div class=\"scores\">");
        for n in 0..=10u8 {
            let class = if chosen == Some(n) { " class=\"chosen\"" } else { "" };
            out.push_str(&format!("<a{class} href=\"/survey/{token_html}?score={n}\">{n}</a>"));
        }
        out.push_str(
            "</div><div class=\"ends\"><span>0 · not at all likely</span><span>10 · extremely likely</span></div>",
        );
        out
    };
    let question = "<p>How likely are you to recommend us to a friend or colleague?</p>";
    match page {
        Page::Ask => page_response(
            StatusCode::OK,
            "How did we do?",
            &format!("<h1>How did we do?</h1>{question}{}", scores(None)),
        ),
        Page::Thanks { score, can_change, .. } => {
            let mut body = format!("<h1>Thank you!</h1><p>You answered <strong>{score}</strong>.</p>");
            if *can_change {
                let minutes = SURVEY_CORRECTION_SECS / 60;
                body.push_str(&format!(
                    "<p>Clicked the wrong one? Choose again within {minutes} minutes:</p>{}",
                    scores(Some(*score))
                ));
            }
            if let Some(survey) = survey.filter(|sv| sv.comment.is_none()) {
                body.push_str(&format!(
                    "<form method=\"post\" action=\"/survey/{token_html}/comment\">\
                     <p><label for=\"comment\">Anything you would like to tell us?</label></p>\
                     <textarea id=\"comment\" name=\"comment\" maxlength=\"{MAX_COMMENT}\"></textarea>\
                     <input type=\"hidden\" name=\"key\" value=\"{}\">\
                     <button type=\"submit\">Send</button></form>",
                    form_key(&s.secret, survey)
                ));
            }
            page_response(StatusCode::OK, "Thank you", &body)
        }
        Page::NotFound => page_response(
            StatusCode::NOT_FOUND,
            "Link not valid",
            "<h1>This link is not valid</h1><p>Please use the link from your email exactly as it is. Nothing was recorded.</p>",
        ),
        Page::Closed => page_response(
            StatusCode::GONE,
            "Survey closed",
            "<h1>This survey is closed</h1><p>It no longer takes answers. Nothing was recorded; thank you all the same.</p>",
        ),
        Page::AlreadyAnswered { score } => page_response(
            StatusCode::CONFLICT,
            "Already answered",
            &format!(
                "<h1>Already answered</h1><p>This survey was answered with <strong>{score}</strong>. Nothing new was recorded.</p>"
            ),
        ),
        Page::BadScore => page_response(
            StatusCode::BAD_REQUEST,
            "Choose a score",
            &format!("<h1>Choose a score from 0 to 10</h1>{question}{}", scores(None)),
        ),
    }
}
