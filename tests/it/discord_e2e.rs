//! End to end through `concierge run` against the fake Discord: threads,
//! acknowledgements, nudges and escalations at their instants, checked
//! replies (coach and enforce), forum posts and DMs, a dropped gateway, a
//! restart while a customer writes, REST failures and bad credentials.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::fake_discord::*;
use crate::helpers::{FAST_SLA, concierge, sqlite};

/// `concierge run` in the background, stopped (SIGTERM) on drop; its log is kept.
struct Bot {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- the bot's log ---\n{}", self.log());
        }
    }
}

impl Bot {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, what: &str) {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while !self.log().contains(what) {
            assert!(std::time::Instant::now() < until, "no \"{what}\" in the log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Business hours around the clock; a 6 s target, warning at 50%, escalation 3 s after.
fn config(fake: &FakeDiscord, db_url: &str, extra: &str) -> String {
    format!(
        r#"
[database]
url = "{db_url}"
{FAST_SLA}{extra}
{}"#,
        fake.concierge_section()
    )
}

fn start_bot(config: &std::path::Path, token: &str) -> Bot {
    let mut child = concierge()
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("CONCIERGE_TEST_DISCORD_TOKEN", token)
        .env("CONCIERGE_LOG", "info,serenity=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (err, sink) = (std::io::BufReader::new(child.stderr.take().unwrap()), log.clone());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    Bot { child, log }
}

/// A config file in a temp dir.
fn setup(fake: &FakeDiscord, extra: &str) -> (tempfile::TempDir, std::path::PathBuf, crate::helpers::TestDb) {
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concierge.toml");
    std::fs::write(&path, config(fake, &db.url, extra)).unwrap();
    (dir, path, db)
}

fn content(m: &Value) -> &str {
    m["content"].as_str().unwrap_or("")
}

/// The bot's messages in `channel` whose text contains `needle`.
fn posts_with(fake: &FakeDiscord, channel: u64, needle: &str) -> Vec<Value> {
    fake.posted_in(channel).into_iter().filter(|m| content(m).contains(needle)).collect()
}

#[test]
fn a_customer_message_opens_a_thread_with_the_acknowledgement_then_nudges_and_escalation_follow() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    fake.wait_for("the gateway session", |f| f.identifies() == 1);
    bot.wait_for_log("discord channel: connected");
    let asked = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "My invoice is wrong, please help");
    // A thread on the customer's message, named after the ticket and the first words.
    fake.wait_for("the thread", |f| f.calls().iter().any(|c| c.path.ends_with(&format!("/messages/{asked}/threads"))));
    let call = fake.calls().into_iter().find(|c| c.path.ends_with("/threads")).unwrap();
    let name = call.body["name"].as_str().unwrap().to_string();
    assert!(name.starts_with('[') && name.ends_with("My invoice is wrong, please help"), "{name}");
    let ticket = name[1..9].to_string();
    // The acknowledgement in that thread (its id is the message's), naming the due time.
    fake.wait_for("the acknowledgement", |f| !posts_with(f, asked, "Hi Ana").is_empty());
    let ack = &posts_with(&fake, asked, "Hi Ana")[0];
    assert!(content(ack).contains(&ticket) && content(ack).contains("will answer by"), "{ack}");
    // No agent yet: warning and breach in the staff channel mentioning the agent role,
    // then the escalation mentioning the manager role, each with a link to the thread.
    fake.wait_for("the escalation", |f| !posts_with(f, STAFF, &format!("<@&{MANAGER_ROLE}>")).is_empty());
    let staff = fake.posted_in(STAFF);
    let texts: Vec<&str> = staff.iter().map(content).collect();
    assert_eq!(texts.len(), 3, "{texts:#?}");
    assert!(texts[..2].iter().all(|t| t.starts_with(&format!("<@&{AGENT_ROLE}>"))), "{texts:#?}");
    assert!(texts[2].starts_with(&format!("<@&{MANAGER_ROLE}>")), "{texts:#?}");
    let link = format!("https://discord.com/channels/{GUILD}/{asked}");
    assert!(texts.iter().all(|t| t.contains(&link) && t.contains(&ticket)), "{texts:#?}");
    // Every post carried an idempotent nonce.
    let posts: Vec<_> =
        fake.calls().into_iter().filter(|c| c.method == "POST" && c.path.ends_with("/messages")).collect();
    assert!(
        posts
            .iter()
            .all(|c| c.body["enforce_nonce"] == true && c.body["nonce"].as_str().is_some_and(|n| n.len() == 25))
    );
    drop(bot);
}

#[test]
fn a_poor_reply_is_coached_privately_in_coach_mode_and_taken_back_in_enforce_mode() {
    let poor = "Hi Ana, as I already said, restart it.";
    for mode in ["coach", "enforce"] {
        let fake = FakeDiscord::start();
        let (_dir, path, _db) = setup(&fake, &format!("[standards]\nmode = \"{mode}\"\n"));
        let bot = start_bot(&path, TOKEN);
        bot.wait_for_log("discord channel: connected");
        let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "The app crashes");
        fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
        let reply = fake.member_writes(thread, (SAM, "Sam"), &[AGENT_ROLE], poor);
        let dm = dm_channel_of(SAM);
        fake.wait_for("the DM to the agent", |f| !f.posted_in(dm).is_empty());
        let text = content(&fake.posted_in(dm)[0]).to_string();
        assert!(text.contains("dismissive"), "{mode}: {text}");
        // The sentence, the rule and a rewrite the agent can use.
        assert!(
            text.contains("no-dismissive") && text.contains("Rewrite: \"Hi Ana, to recap, restart it.\""),
            "{text}"
        );
        // Nothing about the reply reaches the customer's thread.
        assert!(fake.posted_in(thread).iter().all(|m| !content(m).contains("dismissive")), "{mode}");
        let deleted =
            fake.calls().iter().any(|c| c.method == "DELETE" && c.path.ends_with(&format!("/messages/{reply}")));
        let dm_post = fake
            .calls()
            .into_iter()
            .find(|c| c.method == "POST" && c.path.contains(&format!("/channels/{dm}/")))
            .unwrap();
        if mode == "coach" {
            assert!(!deleted, "coach mode keeps the reply");
            assert!(dm_post.body["components"].is_null(), "{dm_post:?}");
        } else {
            assert!(deleted, "enforce mode deletes the reply at once");
            assert!(text.contains(poor), "the agent gets their text back: {text}");
            let button = &dm_post.body["components"][0]["components"][0];
            assert_eq!(button["label"], "Send anyway", "{dm_post:?}");
        }
        drop(bot);
    }
}

#[test]
fn a_forum_post_and_a_dm_each_open_a_conversation() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let post = fake.forum_post(FORUM, (ANA, "Ana Lima"), "How do I export my data?");
    let dm = fake.dm_from((LEE, "Lee"), "Hello, my order never arrived");
    fake.wait_for("both acknowledgements", |f| {
        !posts_with(f, post, "Hi Ana").is_empty() && !posts_with(f, dm, "Hi Lee").is_empty()
    });
    // A forum post already is a thread: none is started.
    assert!(!fake.calls().iter().any(|c| c.path.ends_with("/threads")), "{:#?}", fake.calls());
    drop(bot);
}

#[test]
fn after_a_gateway_drop_the_session_resumes_and_no_message_is_lost() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    fake.drop_gateway();
    // Written while the connection is down: replayed on RESUME.
    let asked = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Are you there?");
    fake.wait_for("the resume", |f| f.resumes() >= 1);
    fake.wait_for("the acknowledgement", |f| !posts_with(f, asked, "Hi Ana").is_empty());
    assert_eq!(fake.identifies(), 1, "resumed, not a new session");
    drop(bot);
}

#[test]
fn a_message_written_while_concierge_was_down_is_fetched_acknowledged_once_and_timed_from_when_it_was_written() {
    let fake = FakeDiscord::start();
    let (_dir, path, db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let first = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "First question");
    fake.wait_for("the first acknowledgement", |f| !f.posted_in(first).is_empty());
    drop(bot);
    let written = jiff::Timestamp::now().as_second();
    let missed = fake.customer_writes_unseen(SUPPORT, (LEE, "Lee"), "Written while you were away");
    let post = fake.forum_post_unseen(FORUM, (LEE, "Lee"), "A forum question meanwhile");
    std::thread::sleep(Duration::from_secs(3));
    let bot = start_bot(&path, TOKEN);
    fake.wait_for("the missed message's acknowledgement", |f| !posts_with(f, missed, "Hi Lee").is_empty());
    fake.wait_for("the missed forum post's acknowledgement", |f| !posts_with(f, post, "Hi Lee").is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(posts_with(&fake, missed, "Hi Lee").len(), 1, "acknowledged once");
    assert_eq!(posts_with(&fake, first, "Hi Ana").len(), 1, "the first is not acknowledged again");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opened: Vec<i64> = rt.block_on(async {
        let store = concierge::store::Store::open(&db.url).await.unwrap();
        let rows = sqlx::query("SELECT opened_at FROM conversations ORDER BY opened_at")
            .fetch_all(store.pool())
            .await
            .unwrap();
        store.close().await;
        rows.iter().map(|r| sqlx::Row::get(r, "opened_at")).collect()
    });
    assert_eq!(opened.len(), 3, "{opened:?}");
    assert!((written - 2..=written).contains(&opened[1]), "opened at {}, written at {written}", opened[1]);
    drop(bot);
}

#[test]
fn killed_before_reading_anything_then_away_for_more_than_a_page_every_message_is_caught_up_once() {
    let fake = FakeDiscord::start();
    let old = fake.customer_writes_unseen(SUPPORT, (LEE, "Lee"), "Written before concierge was installed");
    let (_dir, path, _db) = setup(&fake, "");
    let mut bot = start_bot(&path, TOKEN);
    // Killed before it read a single message: only its starting point is kept.
    bot.wait_for_log("discord channel: caught up");
    let _ = Command::new("kill").args(["-KILL", &bot.child.id().to_string()]).status();
    let _ = bot.child.wait();
    let missed: Vec<u64> = (0..130)
        .map(|n| fake.customer_writes_unseen(SUPPORT, (ANA, "Ana Lima"), &format!("Question {n} while you were away")))
        .collect();
    let bot = start_bot(&path, TOKEN);
    let acked = |f: &FakeDiscord| missed.iter().filter(|m| !posts_with(f, **m, "Hi Ana").is_empty()).count();
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while acked(&fake) < missed.len() {
        assert!(std::time::Instant::now() < until, "{} of {} caught up:\n{}", acked(&fake), missed.len(), bot.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(missed.iter().all(|m| posts_with(&fake, *m, "Hi Ana").len() == 1), "each acknowledged once");
    assert!(fake.posted_in(old).is_empty(), "history from before concierge came is not opened as tickets");
    let pages =
        fake.calls().iter().filter(|c| c.method == "GET" && c.path.contains(&format!("{SUPPORT}/messages"))).count();
    assert!(pages >= 3, "the starting point, then two pages of history: {pages} reads");
    drop(bot);
}

#[test]
fn a_429_and_a_500_from_rest_are_retried_and_the_message_is_posted_once() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    fake.fail("POST", "/threads", 429, Some(1.0), 1);
    fake.fail("POST", "/messages", 429, Some(1.0), 1);
    fake.fail("POST", "/messages", 500, None, 1);
    let asked = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Hello?");
    fake.wait_for("the acknowledgement", |f| !posts_with(f, asked, "Hi Ana").is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(posts_with(&fake, asked, "Hi Ana").len(), 1);
    let attempts =
        fake.calls().iter().filter(|c| c.method == "POST" && c.path.ends_with(&format!("/{asked}/messages"))).count();
    assert!(attempts >= 3, "{attempts} attempts");
    drop(bot);
}

#[test]
fn a_bad_token_and_a_disallowed_intent_each_give_one_line_naming_the_fix() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, "wrong-token");
    bot.wait_for_log("check discord.token_env");
    drop(bot);
    fake.close_on_identify(4014);
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("enable the Message Content intent");
    drop(bot);
}

#[test]
fn garbage_and_unknown_gateway_payloads_are_logged_never_a_panic() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    fake.dispatch_raw("SOMETHING_NEW", serde_json::json!({"what": "ever"}));
    fake.dispatch_raw("MESSAGE_CREATE", serde_json::json!({"id": "not a number"}));
    fake.send_raw_frame("{not json");
    // Still serving afterwards.
    let asked = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Still there?");
    fake.wait_for("the acknowledgement", |f| !posts_with(f, asked, "Hi Ana").is_empty());
    assert!(!bot.log().contains("panicked"), "{}", bot.log());
    drop(bot);
}

#[test]
fn feedback_for_an_agent_whose_dms_are_closed_goes_to_the_staff_channel_mentioning_them() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    fake.close_dms(SAM);
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "The app crashes");
    fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
    fake.member_writes(thread, (SAM, "Sam"), &[AGENT_ROLE], "Hi Ana, as I already said, restart it.");
    fake.wait_for("the feedback in the staff channel", |f| !posts_with(f, STAFF, &format!("<@{SAM}>")).is_empty());
    let text = content(&posts_with(&fake, STAFF, &format!("<@{SAM}>"))[0]).to_string();
    assert!(text.contains("DMs are closed") && text.contains("dismissive"), "{text}");
    assert!(fake.posted_in(dm_channel_of(SAM)).is_empty());
    drop(bot);
}

/// The ticket of the thread started on `message`.
fn ticket_of_thread(fake: &FakeDiscord, message: u64) -> String {
    let call = fake.calls().into_iter().find(|c| c.path.ends_with(&format!("/messages/{message}/threads"))).unwrap();
    call.body["name"].as_str().unwrap()[1..9].to_string()
}

/// Waits for the bot's answer to an interaction.
fn answer(fake: &FakeDiscord, interaction: u64) -> Value {
    fake.wait_for("the interaction's answer", |f| f.answer_to(interaction).is_some());
    fake.answer_to(interaction).unwrap()
}

fn say(a: &Value) -> String {
    assert_eq!(a["type"], 4, "{a}");
    assert_eq!(a["data"]["flags"], 64, "ephemeral: {a}");
    a["data"]["content"].as_str().unwrap().to_string()
}

fn db_rows(db_url: &str, sql: &str) -> Vec<sqlx::any::AnyRow> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = concierge::store::Store::open(db_url).await.unwrap();
        let rows = sqlx::query(sql).fetch_all(store.pool()).await.unwrap();
        store.close().await;
        rows
    })
}

#[test]
fn check_standards_and_summary_answer_whoever_may_ask_and_refuse_the_others() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let registered = fake.calls().into_iter().find(|c| c.method == "PUT" && c.path.ends_with("/commands")).unwrap();
    let names: Vec<&str> = registered.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resolve", "reopen", "assign", "check", "standards", "summary"]);
    let draft = serde_json::json!([{"name": "text", "type": 3, "value": "as I already said, restart it"}]);
    let check = fake.slash((SAM, "Sam"), &[AGENT_ROLE], STAFF, "check", draft);
    assert!(say(&answer(&fake, check)).contains("dismissive"));
    let standards = fake.slash((SAM, "Sam"), &[AGENT_ROLE], STAFF, "standards", serde_json::json!([]));
    assert!(say(&answer(&fake, standards)).contains("no-dismissive"));
    let customer_check = fake.slash(
        (ANA, "Ana"),
        &[],
        SUPPORT,
        "check",
        serde_json::json!([{"name": "text", "type": 3, "value": "hi"}]),
    );
    assert!(say(&answer(&fake, customer_check)).contains("Only agents"));
    let refused = fake.slash((SAM, "Sam"), &[AGENT_ROLE], STAFF, "summary", serde_json::json!([]));
    assert!(say(&answer(&fake, refused)).contains("Only managers"));
    let week = serde_json::json!([{"name": "week", "type": 3, "value": "2026-W47"}]);
    let summary = fake.slash((LEE, "Lee"), &[MANAGER_ROLE], STAFF, "summary", week);
    let deferred = answer(&fake, summary);
    assert_eq!((deferred["type"].as_u64(), deferred["data"]["flags"].as_u64()), (Some(5), Some(64)), "{deferred}");
    fake.wait_for("the summary", |f| !f.follow_ups(summary).is_empty());
    let body = &fake.follow_ups(summary)[0];
    assert!(body.contains("Support summary 2026-W47") && body.contains("summary-2026-W47.html"), "{body}");
    assert!(body.contains("<svg") && body.contains("text/html"), "the HTML report is attached");
    drop(bot);
}

#[test]
fn the_weekly_summary_is_posted_to_the_staff_channel_for_the_managers_with_its_page_attached() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    // `report --send` queues it on every channel that reaches the managers
    // (the schedule inside `run` queues the same row, once a week).
    let out = concierge().arg("--config").arg(&path).args(["report", "--week", "2026-W47", "--send"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("queued on discord"), "{err}");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    fake.wait_for("the summary post", |f| {
        f.calls().iter().any(|c| {
            c.method == "POST"
                && c.path.ends_with(&format!("/channels/{STAFF}/messages"))
                && c.raw.contains("summary-2026-W47.html")
        })
    });
    let call = fake.calls().into_iter().find(|c| c.raw.contains("summary-2026-W47.html")).unwrap();
    let text = content(&call.body);
    assert!(text.starts_with(&format!("<@&{MANAGER_ROLE}> Weekly support summary 2026-W47")), "{text}");
    assert!(text.contains("SLA") && text.chars().count() <= 2000, "{text}");
    assert!(call.raw.contains("<svg") && call.raw.contains("text/html"), "the HTML report is attached");
    drop(bot);
}

#[test]
fn resolve_sends_survey_buttons_a_customers_click_records_once_a_detractor_alerts_and_a_comment_follows() {
    let fake = FakeDiscord::start();
    let (_dir, path, db) = setup(&fake, "[surveys]\ndelay = \"2s\"\n");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Where is my refund?");
    fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
    let ticket = ticket_of_thread(&fake, thread);
    fake.member_writes(
        thread,
        (SAM, "Sam"),
        &[AGENT_ROLE],
        "Hi Ana, thanks for asking. The refund is on its way. Let me know if anything else comes up. Best, Sam",
    );
    let by_customer = fake.slash((ANA, "Ana Lima"), &[], thread, "resolve", serde_json::json!([]));
    assert!(say(&answer(&fake, by_customer)).contains("Only agents"));
    let resolve = fake.slash((SAM, "Sam"), &[AGENT_ROLE], thread, "resolve", serde_json::json!([]));
    assert!(say(&answer(&fake, resolve)).contains("resolved"));
    fake.wait_for("the survey", |f| f.posted_in(thread).iter().any(|m| m["components"].is_array()));
    let survey = fake.posted_in(thread).into_iter().find(|m| m["components"].is_array()).unwrap();
    let buttons: Vec<&str> = survey["components"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row["components"].as_array().unwrap())
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    assert_eq!(buttons, ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    let survey_id: u64 = survey["id"].as_str().unwrap().parse().unwrap();
    let someone_else = fake.click((LEE, "Lee"), &[], thread, survey_id, &format!("nps:{ticket}:10"));
    assert!(say(&answer(&fake, someone_else)).contains("Only the customer"));
    let click = fake.click((ANA, "Ana Lima"), &[], thread, survey_id, &format!("nps:{ticket}:3"));
    let thanks = answer(&fake, click);
    assert!(say(&thanks).contains("3/10"), "{thanks}");
    assert_eq!(thanks["data"]["components"][0]["components"][0]["label"], "Add a comment");
    let again = fake.click((ANA, "Ana Lima"), &[], thread, survey_id, &format!("nps:{ticket}:10"));
    assert!(say(&answer(&fake, again)).contains("already recorded"));
    let by_another = fake.click((LEE, "Lee"), &[], thread, survey_id, &format!("nps:{ticket}:10"));
    assert!(say(&answer(&fake, by_another)).contains("already recorded"));
    fake.wait_for("the detractor alert", |f| !posts_with(f, STAFF, "Detractor alert").is_empty());
    let alert = content(&posts_with(&fake, STAFF, "Detractor alert")[0]).to_string();
    assert!(alert.starts_with(&format!("<@&{MANAGER_ROLE}>")), "{alert}");
    // It names the agent and the follow-up to close.
    assert!(alert.contains("Agent: ") && alert.contains("concierge followup done "), "{alert}");
    let comment = fake.click((ANA, "Ana Lima"), &[], thread, survey_id, &format!("nps-comment:{ticket}"));
    let form = answer(&fake, comment);
    assert_eq!(form["type"], 9, "{form}");
    let submitted = fake.submit_form(
        (ANA, "Ana Lima"),
        thread,
        form["data"]["custom_id"].as_str().unwrap(),
        "comment",
        "Took too long",
    );
    assert!(say(&answer(&fake, submitted)).contains("Thank you for the comment"));
    let rows = db_rows(&db.url, "SELECT score, comment FROM surveys WHERE status = 'answered'");
    assert_eq!(rows.len(), 1);
    assert_eq!(sqlx::Row::get::<i64, _>(&rows[0], "score"), 3, "the second click changed nothing");
    assert_eq!(sqlx::Row::get::<Option<String>, _>(&rows[0], "comment").as_deref(), Some("Took too long"));
    drop(bot);
}

#[test]
fn send_anyway_posts_the_reply_taken_back_and_records_the_override() {
    let fake = FakeDiscord::start();
    let (_dir, path, db) = setup(&fake, "[standards]\nmode = \"enforce\"\n");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "The app crashes");
    fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
    let poor = "Hi Ana, as I already said, restart it.";
    fake.member_writes(thread, (SAM, "Sam"), &[AGENT_ROLE], poor);
    let dm = dm_channel_of(SAM);
    fake.wait_for("the held reply", |f| !f.posted_in(dm).is_empty());
    let held = &fake.posted_in(dm)[0];
    let button = held["components"][0]["components"][0]["custom_id"].as_str().unwrap().to_string();
    let held_id: u64 = held["id"].as_str().unwrap().parse().unwrap();
    let not_author = fake.click((LEE, "Lee"), &[AGENT_ROLE], dm, held_id, &button);
    assert!(say(&answer(&fake, not_author)).contains("Only the agent who wrote"));
    let click = fake.click((SAM, "Sam"), &[AGENT_ROLE], dm, held_id, &button);
    assert!(say(&answer(&fake, click)).contains("override is recorded"));
    fake.wait_for("the reply in the thread", |f| !posts_with(f, thread, poor).is_empty());
    let rows = db_rows(&db.url, "SELECT check_overridden AS overridden FROM messages WHERE check_score IS NOT NULL");
    assert_eq!(rows.iter().map(|r| sqlx::Row::get::<i64, _>(r, "overridden")).collect::<Vec<_>>(), [1]);
    drop(bot);
}

#[test]
fn concierge_resolve_with_channel_discord_resolves_a_discord_ticket() {
    let fake = FakeDiscord::start();
    let (_dir, path, db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Please close my account");
    fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
    let ticket = ticket_of_thread(&fake, thread);
    let out = concierge()
        .arg("--config")
        .arg(&path)
        .args(["resolve", &ticket, "--channel", "discord", "--no-survey"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let until = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let rows = db_rows(&db.url, "SELECT status FROM conversations");
        if sqlx::Row::get::<String, _>(&rows[0], "status") == "resolved" {
            break;
        }
        assert!(std::time::Instant::now() < until, "not resolved");
        std::thread::sleep(Duration::from_millis(200));
    }
    let again = concierge().arg("--config").arg(&path).args(["resolve", &ticket]).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("already resolved"), "{:?}", again);
    drop(bot);
}

#[test]
fn email_and_discord_run_side_by_side_in_one_process_and_one_report() {
    let Some(servers) = crate::mail_servers::MailServers::start() else { return };
    let fake = FakeDiscord::start();
    let (dir, path, db) = setup(&fake, "");
    let p = servers.ports;
    let email = format!(
        "\n[email]\nimap_host = \"127.0.0.1\"\nimap_port = {}\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\nusername = \"support\"\npassword_env = \"CONCIERGE_TEST_SUPPORT_PASSWORD\"\naddress = \"support@example.test\"\nagents = [\"sam@example.test\"]\nmanagers = [\"boss@example.test\"]\npoll_interval = \"1s\"\n",
        p.imap, p.smtp_auth
    );
    std::fs::write(&path, config(&fake, &db.url, "") + &email).unwrap();
    let mut child = concierge()
        .arg("--config")
        .arg(&path)
        .arg("run")
        .env("CONCIERGE_TEST_DISCORD_TOKEN", TOKEN)
        .env("CONCIERGE_TEST_SUPPORT_PASSWORD", crate::mail_servers::PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: By mail\r\nMessage-ID: <side1@example.test>\r\n\r\nHello by mail\r\n",
    );
    fake.wait_for("the gateway session", |f| f.identifies() == 1);
    let thread = fake.customer_writes(SUPPORT, (LEE, "Lee"), "Hello on Discord");
    servers.wait_for("ana", |m| m.contains("We have your request"));
    fake.wait_for("the Discord acknowledgement", |f| !posts_with(f, thread, "Hi Lee").is_empty());
    let week = concierge::core::report::Week::containing(jiff::Timestamp::now(), &jiff::tz::TimeZone::UTC).to_string();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let report = loop {
        let out = concierge()
            .arg("--config")
            .arg(&path)
            .args(["report", "--week", &week, "--format", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["conversations"]["opened"] == 2 || std::time::Instant::now() > until {
            break v;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    assert_eq!(report["conversations"]["opened"], 2, "both channels are counted: {report}");
    drop(dir);
}

#[test]
fn with_survey_in_dm_the_survey_goes_to_the_customers_dms_and_is_answered_there() {
    let fake = FakeDiscord::start();
    let (_dir, path, db) = setup(&fake, "[surveys]\ndelay = \"1s\"\n");
    let text = std::fs::read_to_string(&path).unwrap() + "survey_in = \"dm\"\n";
    std::fs::write(&path, text).unwrap();
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    let thread = fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Thanks for the help earlier");
    fake.wait_for("the acknowledgement", |f| !f.posted_in(thread).is_empty());
    let ticket = ticket_of_thread(&fake, thread);
    let resolve = fake.slash((SAM, "Sam"), &[AGENT_ROLE], thread, "resolve", serde_json::json!([]));
    answer(&fake, resolve);
    let dm = dm_channel_of(ANA);
    fake.wait_for("the survey by DM", |f| f.posted_in(dm).iter().any(|m| m["components"].is_array()));
    assert!(fake.posted_in(thread).iter().all(|m| !m["components"].is_array()), "not in the thread");
    let survey: u64 = fake.posted_in(dm)[0]["id"].as_str().unwrap().parse().unwrap();
    let click = fake.click((ANA, "Ana Lima"), &[], dm, survey, &format!("nps:{ticket}:10"));
    assert!(say(&answer(&fake, click)).contains("10/10"));
    let rows = db_rows(&db.url, "SELECT score FROM surveys WHERE status = 'answered'");
    assert_eq!(rows.len(), 1);
    drop(bot);
}

#[test]
fn without_permission_to_start_threads_the_conversation_is_answered_in_the_channel_and_the_log_says_why() {
    let fake = FakeDiscord::start();
    let (_dir, path, _db) = setup(&fake, "");
    let bot = start_bot(&path, TOKEN);
    bot.wait_for_log("discord channel: connected");
    fake.fail("POST", "/threads", 403, None, 1);
    fake.customer_writes(SUPPORT, (ANA, "Ana Lima"), "Can you help?");
    fake.wait_for("the acknowledgement in the channel", |f| !posts_with(f, SUPPORT, "Hi Ana").is_empty());
    bot.wait_for_log("cannot start a thread for a customer's message");
    drop(bot);
}
