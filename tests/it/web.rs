//! The web surface on a real port (port 0), in-process on a virtual clock,
//! on every backend: one-click survey answers (a double click, a changed
//! score within ten minutes, too late to change, expired, forged, malformed),
//! the comment form (its anti-forgery key, a cross-site post, an oversized
//! body), `/healthz` and `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use concierge::app::App;
use concierge::channels::ChannelAdapter;
use concierge::config::Config;
use concierge::core::router::{ActionKind, Author, Channel, Input, Message, Role};
use concierge::driver::{Clock, Inbound};
use concierge::store::{OutboxStatus, Store};

use crate::app::{Mode, TestChannel};
use crate::helpers::databases;

/// Ten virtual minutes per real second.
const SPEED: u32 = 600;

pub const CONFIG: &str = r#"
[business_hours]
time_zone = "UTC"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
[sla]
first_response = "8h"
[surveys]
delay = "1m"
expire = "1h"
[http]
listen = "127.0.0.1:0"
"#;

fn message(role: Role, thread: &str, id: &str, at: Timestamp) -> Inbound {
    let author = match role {
        Role::Customer => Author { role, id: format!("{thread}@example.test"), name: Some("Ana Lima".into()) },
        Role::Agent => Author { role, id: "sam".into(), name: Some("Sam".into()) },
    };
    let text = if role == Role::Agent { "Hi Ana, fixed. Best, Sam" } else { "It broke" };
    Inbound::new(
        at,
        Input::Message(Message {
            channel: Channel::Email,
            thread: thread.into(),
            id: id.into(),
            author,
            text: text.into(),
        }),
    )
}

/// A resolved conversation per thread, whose survey has gone out; returns
/// each survey's one-click link for score 9, as mailed.
pub async fn surveys_sent(email: &TestChannel, store: &Store, clock: Clock, threads: &[&str]) -> Vec<String> {
    for t in threads {
        let now = clock.now();
        email.send.send(message(Role::Customer, t, &format!("{t}-1"), now)).await.unwrap();
        email.send.send(message(Role::Agent, t, &format!("{t}-2"), now)).await.unwrap();
        let resolve =
            Input::Resolve { channel: Some(Channel::Email), thread: t.to_string(), by: "sam".into(), survey: true };
        email.send.send(Inbound::new(now, resolve)).await.unwrap();
    }
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = store.outbox(&[OutboxStatus::Delivered], 1000).await.unwrap();
        let links: Vec<String> = threads
            .iter()
            .filter_map(|t| {
                let row = rows.iter().find(|r| r.kind == ActionKind::Survey && r.thread == *t)?;
                row.body.lines().find(|l| l.trim_start().starts_with("9 ")).map(|l| l.trim()[1..].trim().to_string())
            })
            .collect();
        if links.len() == threads.len() {
            return links;
        }
        assert!(std::time::Instant::now() < give_up, "the surveys did not go out: {rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn survey_row(store: &Store, thread: &str) -> concierge::core::router::Survey {
    store.latest_survey(&format!("email:{thread}")).await.unwrap().expect("a survey")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let r = client().get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The comment form's hidden anti-forgery key on a thank-you page.
fn form_key(page: &str) -> String {
    let at = page.find("name=\"key\" value=\"").expect("the comment form") + "name=\"key\" value=\"".len();
    page[at..].split('"').next().unwrap().to_string()
}

/// The app in the background with an email test channel: its web address,
/// store, channel and clock, and how to stop it.
pub struct Running {
    pub base: String,
    pub store: Store,
    pub email: TestChannel,
    pub clock: Clock,
    stop: tokio::sync::oneshot::Sender<()>,
    bot: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(url: &str, config: &str) -> Running {
        let start: Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = Clock::virtual_from(start, SPEED);
        let email = TestChannel::new(Channel::Email, Mode::Works, clock);
        let mut config = Config::parse(config, "test", None).unwrap();
        config.database_url = url.to_string();
        let adapters: Vec<Arc<dyn ChannelAdapter>> = vec![Arc::new(email.clone())];
        let app = App::with_channels(config, adapters, clock).await.unwrap();
        let base = format!("http://{}", app.web_addr().expect("the web surface is on"));
        let store = app.store().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Running { base, store, email, clock, stop, bot }
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.bot.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_customer_answers_with_one_click_and_comments_and_bad_links_record_nothing() {
    for db in databases().await {
        let running = Running::start(&db.url, CONFIG).await;
        let (base, store, email, clock) = (running.base.clone(), running.store.clone(), &running.email, running.clock);

        let links = surveys_sent(email, &store, clock, &["t1", "t2"]).await;
        let link = &links[0];
        assert!(link.starts_with(&format!("{base}/survey/")) && link.ends_with("?score=9"), "{link}");
        let page_url = link.trim_end_matches("?score=9");

        // The question with eleven buttons.
        let (code, page) = get(page_url).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page.matches("?score=").count(), 11, "{page}");

        // One click records the score; a double click changes nothing.
        let (code, page) = get(link).await;
        assert_eq!(code, 200, "{}: {page}", db.backend);
        assert!(page.contains("You answered <strong>9</strong>"), "{page}");
        let answered = survey_row(&store, "t1").await;
        assert_eq!((answered.score, answered.answered_at.is_some()), (Some(9), true), "{}", db.backend);
        let (code, _) = get(link).await;
        assert_eq!(code, 200);
        assert_eq!(survey_row(&store, "t1").await, answered, "a double click records nothing new");

        // A misclick is corrected within ten minutes.
        let (code, page) = get(&format!("{page_url}?score=3")).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(survey_row(&store, "t1").await.score, Some(3), "{}", db.backend);

        // Malformed queries and forged tokens: a clear page, nothing recorded.
        for bad in ["?score=11", "?score=nine", "?score=-1"] {
            let (code, page) = get(&format!("{page_url}{bad}")).await;
            assert_eq!(code, 400, "{bad}: {page}");
        }
        let (code, _) = get(&format!("{page_url}?score=%zz")).await;
        assert_eq!(code, 400);
        let token = page_url.rsplit('/').next().unwrap();
        let forged: String =
            token.chars().enumerate().map(|(i, c)| if i == 0 { if c == 'a' { 'b' } else { 'a' } } else { c }).collect();
        let (code, page) = get(&format!("{base}/survey/{forged}?score=0")).await;
        assert_eq!(code, 404, "{page}");
        assert!(page.contains("not valid"));
        let (code, _) = get(&format!("{base}/survey/not-hex%3Cscript%3E?score=0")).await;
        assert_eq!(code, 404);
        assert_eq!(survey_row(&store, "t1").await.score, Some(3));

        // The comment form: refused without its key or from another site,
        // and when too large; accepted from the page.
        let key = form_key(&page_after_answer(page_url).await);
        let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
            let mut r = client().post(format!("{page_url}/comment")).form(&form);
            if let Some(o) = origin {
                r = r.header("origin", o);
            }
            async move {
                let r = r.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        };
        let (code, _) = post(vec![("comment", "forged".into())], None).await;
        assert_eq!(code, 403, "no key");
        let (code, _) =
            post(vec![("comment", "forged".into()), ("key", key.clone())], Some("https://evil.example")).await;
        assert_eq!(code, 403, "another site");
        let (code, _) = post(vec![("comment", "x".repeat(20_000)), ("key", key.clone())], None).await;
        assert_eq!(code, 413, "oversized body");
        assert_eq!(survey_row(&store, "t1").await.comment, None, "{}", db.backend);
        let (code, page) = post(vec![("comment", "Quick & kind <3".into()), ("key", key.clone())], None).await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(survey_row(&store, "t1").await.comment.as_deref(), Some("Quick & kind <3"));

        // Past ten minutes the score stays; past `surveys.expire` an unanswered
        // survey is closed.
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        let (code, page) = get(&format!("{page_url}?score=10")).await;
        assert_eq!(code, 409, "{page}");
        assert!(page.contains("answered with <strong>3</strong>"), "{page}");
        let (code, page) = get(&links[1]).await;
        assert_eq!(code, 410, "{}: {page}", db.backend);
        assert_eq!(survey_row(&store, "t2").await.score, None);

        // Operators: healthz and metrics.
        let (code, health) = get(&format!("{base}/healthz")).await;
        assert_eq!(code, 200, "{health}");
        let health: serde_json::Value = serde_json::from_str(&health).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["channels"]["email"]["state"], "up", "{health}");
        let r = client().get(format!("{base}/metrics")).send().await.unwrap();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let metrics = r.text().await.unwrap();
        for line in [
            "concierge_survey_answers_total{class=\"detractor\"} 1",
            "concierge_nps -100",
            "concierge_conversations_open 0",
            "concierge_channel_up{channel=\"email\"} 1",
        ] {
            assert!(metrics.lines().any(|l| l == line), "{line}:\n{metrics}");
        }
        let (code, _) = get(&format!("{base}/nothing-here")).await;
        assert_eq!(code, 404);

        running.stop().await;
    }
}

const API_CONFIG: &str = r#"
[business_hours]
time_zone = "UTC"
mon = ["00:00-24:00"]
[sla]
first_response = "30m"
[http]
listen = "127.0.0.1:0"
"#;

async fn api(base: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = client().get(format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r.headers().get("www-authenticate").is_some();
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).expect("JSON");
    assert_eq!(challenge, status == 401, "a 401 names the scheme");
    (status, body)
}

#[tokio::test]
async fn the_api_answers_with_a_token_and_refuses_without_one_or_with_a_revoked_one() {
    for db in databases().await {
        let running = Running::start(&db.url, API_CONFIG).await;
        let base = running.base.clone();
        let (_dir, config) = crate::helpers::temp_file("c.toml", &format!("[database]\nurl = \"{}\"\n", db.url));
        let token_cmd = |args: &[&str]| {
            let out =
                crate::helpers::concierge().arg("--config").arg(&config).arg("token").args(args).output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                String::from_utf8_lossy(&out.stderr).to_string(),
            )
        };
        let (code, token, err) = token_cmd(&["new", "grafana"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(token.starts_with("cct_") && token.len() > 40, "{token}");
        let (code, _, err) = token_cmd(&["new", "grafana"]);
        assert_eq!(code, Some(2), "one active token per name: {err}");

        let now = running.clock.now();
        running.email.send.send(message(Role::Customer, "t1", "t1-1", now)).await.unwrap();

        // Without a token, with an unknown one: 401.
        assert_eq!(api(&base, "/api/v1/summary", None).await.0, 401);
        assert_eq!(api(&base, "/api/v1/summary", Some("cct_nope")).await.0, 401);
        // The summary is `concierge report --format json` for the week.
        let (code, v) = api(&base, "/api/v1/summary?week=2026-W48", Some(&token)).await;
        assert_eq!(code, 200, "{v}");
        assert_eq!((v["week"].as_str(), v["previous"]["week"].as_str()), (Some("2026-W48"), Some("2026-W47")));
        assert!(v["sla"].is_object() && v["nps"].is_object() && v["agents"].is_array(), "{v}");
        let (code, v) = api(&base, "/api/v1/summary?week=last-week", Some(&token)).await;
        assert_eq!(code, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with("week:"), "{v}");
        let (code, v) = api(&base, "/api/v1/agents?week=2026-W48", Some(&token)).await;
        assert_eq!((code, v["week"].as_str()), (200, Some("2026-W48")), "{v}");

        // Conversations by status; a breach shows once the target passes.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (code, v) = api(&base, "/api/v1/conversations?status=open", Some(&token)).await;
            assert_eq!(code, 200, "{v}");
            if v["conversations"].as_array().unwrap().len() == 1 {
                assert_eq!(v["conversations"][0]["ticket"], "t1");
                break;
            }
            assert!(std::time::Instant::now() < give_up, "{v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, v) = api(&base, "/api/v1/conversations?status=resolved", Some(&token)).await;
        assert_eq!(v["conversations"], serde_json::json!([]));
        tokio::time::sleep(Duration::from_millis(3_500)).await;
        let (code, v) = api(&base, "/api/v1/conversations?status=breached", Some(&token)).await;
        assert_eq!(code, 200);
        assert_eq!(v["conversations"][0]["breached"], true, "{}: {v}", db.backend);
        for bad in ["?status=late", "?status=open&limit=0", "?status=open&limit=many"] {
            let (code, v) = api(&base, &format!("/api/v1/conversations{bad}"), Some(&token)).await;
            assert_eq!(code, 400, "{bad}: {v}");
        }

        // Revoked: 403, even after a new token is made for the name.
        let (code, _, err) = token_cmd(&["revoke", "grafana"]);
        assert_eq!(code, Some(0), "{err}");
        let (code, v) = api(&base, "/api/v1/summary", Some(&token)).await;
        assert_eq!(code, 403, "{v}");
        let (code, fresh, _) = token_cmd(&["new", "grafana"]);
        assert_eq!(code, Some(0));
        assert_eq!(api(&base, "/api/v1/conversations", Some(&fresh)).await.0, 200);
        assert_eq!(api(&base, "/api/v1/conversations", Some(&token)).await.0, 403);
        let (_, list, _) = token_cmd(&["list"]);
        assert_eq!(list.lines().filter(|l| l.starts_with("grafana")).count(), 2, "{list}");
        assert!(!list.contains(&token) && !list.contains(&fresh), "tokens are never shown again");
        running.stop().await;
    }
}

/// The thank-you page of an answered survey (opening its link again).
async fn page_after_answer(page_url: &str) -> String {
    let (code, page) = get(page_url).await;
    assert_eq!(code, 200, "{page}");
    page
}

/// The texts shown at the end of each bar in a chart section.
fn bar_values(page: &str, chart: &str) -> Vec<String> {
    let start = page.find(&format!("data-chart=\"{chart}\"")).unwrap_or_else(|| panic!("no {chart} chart"));
    let section = &page[start..page[start..].find("</section>").map_or(page.len(), |e| start + e)];
    let re = regex::Regex::new(r#"<rect [^>]*/><text [^>]*>([^<]*)</text>"#).unwrap();
    re.captures_iter(section).map(|c| c[1].to_string()).collect()
}

#[tokio::test]
async fn the_report_page_opens_from_the_signed_link_or_with_a_token_and_charts_the_weeks_figures() {
    use concierge::core::report::Week;
    for db in databases().await {
        let as_of = crate::replay::as_of();
        let (engine, _) = crate::replay::replay_into(&db, crate::replay::demo_events(), Some(as_of)).await;
        let secret = engine.store.secret().await.unwrap();
        engine.store.close().await;
        drop(engine);
        let mut config = crate::replay::demo_config(&db.url);
        config.http.listen = "127.0.0.1:0".parse().unwrap();
        let clock = Clock::virtual_from(as_of, 1);
        let app = App::with_channels(config, vec![], clock).await.unwrap();
        let base = format!("http://{}", app.web_addr().unwrap());
        let store = app.store().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let week = Week::parse("2026-W47").unwrap();
        let hours = crate::replay::demo_config("sqlite::memory:").policy.hours;
        let (report, _) = concierge::reports::pair(&store, &hours, week, as_of).await.unwrap();

        let link = concierge::reports::report_link(&base, &secret, week, clock.now());
        let (code, page) = get(&link).await;
        assert_eq!(code, 200, "{}: {page}", db.backend);
        assert!(page.contains("Support summary 2026-W47"), "{page}");
        // The distribution counts every first response once.
        let answered: u32 =
            bar_values(&page, "first-response-distribution").iter().map(|v| v.parse::<u32>().unwrap()).sum();
        assert_eq!(answered, report.first_response.answered);
        // SLA by day adds up to the week's met and breached.
        let days = bar_values(&page, "sla-by-day");
        assert_eq!(days.len(), 7, "{days:?}");
        let (met, total) = days.iter().filter_map(|d| d.split_once('(')).fold((0, 0), |(m, t), (_, rest)| {
            let (a, b) = rest.trim_end_matches(')').split_once('/').unwrap();
            (m + a.parse::<u32>().unwrap(), t + b.parse::<u32>().unwrap())
        });
        assert_eq!((met, total), (report.sla.met, report.sla.met + report.sla.breached));
        // Findings by agent, and the NPS trend ending with this week's score.
        let by_agent: Vec<u32> = bar_values(&page, "findings-by-agent").iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(by_agent, report.agents.iter().map(|a| a.findings).collect::<Vec<_>>());
        let nps = report.nps.score.expect("the demo week has answers");
        assert!(page.contains(&format!("data-week=\"2026-W47\" data-nps=\"{nps}\"")), "{page}");
        assert_eq!(page.matches("data-week=\"2026-W").count(), 2, "the demo has answers in two weeks of the twelve");

        // Without a valid signature: 401; with an API token instead: 200.
        let (code, _) = get(&format!("{base}/reports/2026-W47")).await;
        assert_eq!(code, 401);
        let (code, _) = get(&link.replace("sig=", "sig=0")).await;
        assert_eq!(code, 401);
        let old = concierge::reports::report_link(
            &base,
            &secret,
            week,
            clock.now() - jiff::SignedDuration::from_hours(24 * 91),
        );
        let (code, _) = get(&old).await;
        assert_eq!(code, 401, "expired");
        let other_week = link.replace("2026-W47", "2026-W46");
        assert_eq!(get(&other_week).await.0, 401, "a link signs one week");
        store.create_token("ops", "cct_test_token_of_some_length", clock.now()).await.unwrap();
        let r = client()
            .get(format!("{base}/reports/2026-W47"))
            .bearer_auth("cct_test_token_of_some_length")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(get(&format!("{base}/reports/2026-W99")).await.0, 404);
        stop.send(()).unwrap();
        bot.await.unwrap().unwrap();
    }
}
