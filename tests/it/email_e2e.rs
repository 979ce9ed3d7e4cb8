//! End to end through `concierge run` against the real Dovecot and Postfix.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::helpers::{FAST_SLA, concierge, sqlite};
use crate::mail_servers::{AUTHSERV_ID, MailServers, PASSWORD, config, slow_config_file};

/// `concierge run` in the background, stopped (SIGTERM) on drop.
/// The running bot, and the address of its web surface.
/// The running bot, its web address and its log so far.
struct Bot(Child, String, std::sync::Arc<std::sync::Mutex<String>>);

impl Bot {
    /// Waits (up to 20 s) until the log holds `n` lines containing `text`.
    fn wait_for_log(&self, text: &str, n: usize) -> String {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let log = self.2.lock().unwrap().clone();
            if log.lines().filter(|l| l.contains(text)).count() >= n {
                return log;
            }
            assert!(std::time::Instant::now() < until, "{n}× {text:?} not logged:\n{log}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn start_bot(config: &std::path::Path) -> Bot {
    let mut child = concierge()
        .arg("--config")
        .arg(config)
        .arg("run")
        .env("CONCIERGE_TEST_SUPPORT_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the email channel and the web surface are up, then let the
    // log drain in the background.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !(seen.contains("email channel") && seen.contains("web: listening on ")) {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "run exited early: {seen}");
        seen.push_str(&line);
    }
    let web = seen.split("web: listening on ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let log = std::sync::Arc::new(std::sync::Mutex::new(seen));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let mut log = kept.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    Bot(child, web, log)
}

/// The ticket token in a mail's subject.
fn ticket_of(mail: &str) -> String {
    header(mail, "Subject").unwrap().split("[#").nth(1).unwrap().trim_end_matches(']').to_string()
}

/// This week's `concierge report --format json`, polled (up to 20 s) until
/// `ready` holds of it, since the bot commits in the background.
fn report_when(config_path: &std::path::Path, ready: impl Fn(&Value) -> bool) -> Value {
    let week = concierge::core::report::Week::containing(jiff::Timestamp::now(), &jiff::tz::TimeZone::UTC).to_string();
    let report = || -> Value {
        let out = concierge()
            .arg("--config")
            .arg(config_path)
            .args(["report", "--week", &week, "--format", "json"])
            .env("CONCIERGE_TEST_SUPPORT_PASSWORD", PASSWORD)
            .output()
            .unwrap();
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut v = report();
    while !ready(&v) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(300));
        v = report();
    }
    v
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn a_customer_mail_is_acknowledged_threaded_nudged_escalated_and_an_agent_cc_reply_is_checked_and_counted() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    std::fs::write(&config_path, config(&servers, &db.url)).unwrap();
    let _bot = start_bot(&config_path);

    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana Lima <ana@example.test>\r\nTo: support@example.test\r\nSubject: Invoice wrong\r\n\
         Message-ID: <c1@example.test>\r\n\r\nHello, the amount on my invoice is wrong.\r\n",
    );
    // The acknowledgement reaches the customer, threaded under her mail.
    let ack = servers.wait_for("ana", |m| m.contains("We have your request"));
    assert_eq!(header(&ack, "In-Reply-To"), Some("<c1@example.test>"), "{ack}");
    assert_eq!(header(&ack, "Auto-Submitted"), Some("auto-replied"));
    assert!(ack.contains("Hi Ana,"), "{ack}");
    let ticket = ticket_of(&ack);

    // No answer: warning and breach reach both agents, the escalation the manager.
    for agent in ["sam", "kim"] {
        servers.wait_for(agent, |m| m.contains(&format!("[#{ticket}] Reply due soon")));
        servers.wait_for(agent, |m| m.contains(&format!("[#{ticket}] Response target missed")));
    }
    servers.wait_for("boss", |m| m.contains(&format!("[#{ticket}] Escalation")));

    // Sam answers from his own client with support in Cc (his domain's
    // DKIM signature checked by the receiving server); the reply is checked
    // after the fact (it is late and has no apology) and counts as the first
    // response.
    let reply = format!(
        "From: Sam <sam@example.test>\r\nTo: ana@example.test\r\nCc: support@example.test\r\n\
         Subject: Re: Invoice wrong [#{ticket}]\r\nMessage-ID: <s1@example.test>\r\nIn-Reply-To: <c1@example.test>\r\n\r\n\
         Hi Ana,\r\n\r\nThanks for writing. The invoice is fixed.\r\n\r\nBest, Sam\r\n\r\n\
         On Mon, Ana Lima <ana@example.test> wrote:\r\n> Hello, the amount on my invoice is wrong.\r\n"
    );
    servers.deliver_verified("support", "s1", "dkim=pass header.d=example.test", &reply);
    let feedback = servers.wait_for("sam", |m| m.contains(&format!("[#{ticket}] Feedback on your reply")));
    assert!(feedback.contains("apologise"), "{feedback}");

    let v = report_when(&config_path, |_| true);
    assert_eq!(v["conversations"]["opened"], 1, "{v}");
    assert_eq!(v["first_response"]["answered"], 1, "{v}");
    assert_eq!(v["sla"]["breached"], 1, "{v}");
    assert_eq!(v["standards"]["findings_by_rule"]["apology-when-late"], 1, "{v}");
    assert_eq!(v["agents"][0]["id"], "sam@example.test");
}

/// [`outbox`] from a synchronous test.
fn outbox_rows(db_url: &str) -> Vec<(String, i64, String)> {
    tokio::runtime::Runtime::new().unwrap().block_on(outbox(db_url))
}

/// The outbox rows of the bot's database: (kind, attempts, status).
async fn outbox(db_url: &str) -> Vec<(String, i64, String)> {
    let store = concierge::store::Store::open(db_url).await.unwrap();
    let rows = store
        .outbox(&[], i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.kind.as_str().to_string(), i.attempts, i.status.as_str().to_string()))
        .collect();
    store.close().await;
    rows
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(std::time::Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn stopping_the_mail_servers_and_restarting_the_bot_loses_nothing_and_sends_once() {
    let Some(mut servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    // A long target: only the acknowledgement is sent in this test.
    std::fs::write(
        &config_path,
        config(&servers, &db.url).replace("first_response = \"6s\"", "first_response = \"8h\""),
    )
    .unwrap();
    let bot = start_bot(&config_path);
    let rt = tokio::runtime::Runtime::new().unwrap();

    // IMAP goes down; a customer mail arrives meanwhile; then SMTP goes down.
    servers.stop_imap();
    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Outage\r\nMessage-ID: <o1@example.test>\r\n\r\nHello?\r\n",
    );
    servers.wait_for("support", |m| m.contains("Subject: Outage"));
    let arrived = jiff::Timestamp::now().as_second();
    servers.stop_smtp();
    // The outage lasts a while longer.
    std::thread::sleep(std::time::Duration::from_secs(3));
    // IMAP comes back: the mail is read, its acknowledgement cannot be sent yet.
    servers.start_imap();
    wait_until("a failed delivery attempt", || {
        rt.block_on(outbox(&db.url))
            .iter()
            .any(|(kind, attempts, status)| kind == "acknowledgement" && *attempts > 0 && status == "pending")
    });
    // The clock started when the mail reached the mailbox (INTERNALDATE),
    // not when concierge could read it after the outage.
    let opened_at: i64 = rt.block_on(async {
        let store = concierge::store::Store::open(&db.url).await.unwrap();
        let row = sqlx::query("SELECT opened_at FROM conversations").fetch_one(store.pool()).await.unwrap();
        store.close().await;
        sqlx::Row::get(&row, "opened_at")
    });
    assert!((arrived - 60..=arrived).contains(&opened_at), "opened at {opened_at}, mail arrived by {arrived}");
    // Restart the bot while the acknowledgement is still queued.
    drop(bot);
    let _bot = start_bot(&config_path);
    servers.start_smtp();
    servers.wait_for("ana", |m| m.contains("We have your request"));
    // Give a duplicate every chance to show up, then count.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let acks = servers.delivered("ana").iter().filter(|m| m.contains("We have your request")).count();
    assert_eq!(acks, 1, "the acknowledgement is sent exactly once");
    let rows = rt.block_on(outbox(&db.url));
    assert_eq!(rows.iter().filter(|(k, _, s)| k == "acknowledgement" && s == "delivered").count(), 1, "{rows:?}");
    let mut kinds: Vec<&str> = rows
        .iter()
        .map(|(k, _, s)| {
            assert_eq!(s, "delivered", "{rows:?}");
            k.as_str()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["acknowledgement", "announcement"], "one conversation, read once: {rows:?}");
    let announcements = servers.delivered("sam").iter().filter(|m| m.contains("New ticket")).count();
    assert_eq!(announcements, 1, "the announcement is sent exactly once");
}

#[test]
fn new_mail_is_picked_up_at_once_with_imap_idle_despite_a_long_poll_interval() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    let text = config(&servers, &db.url).replace("poll_interval = \"1s\"", "poll_interval = \"60s\"");
    std::fs::write(&config_path, text.replace("first_response = \"6s\"", "first_response = \"8h\"")).unwrap();
    let _bot = start_bot(&config_path);
    // Let the first fetch pass, so the bot is waiting when the mail arrives.
    std::thread::sleep(std::time::Duration::from_secs(2));
    servers.send(
        "bob@example.test",
        "support@example.test",
        "From: Bob <bob@example.test>\r\nTo: support@example.test\r\nSubject: Idle\r\nMessage-ID: <i1@example.test>\r\n\r\nHi\r\n",
    );
    // The harness waits at most 10 s: far less than the 60 s poll interval.
    let ack = servers.wait_for("bob", |m| m.contains("We have your request"));
    assert_eq!(header(&ack, "In-Reply-To"), Some("<i1@example.test>"));
}

#[test]
fn the_issue_flow_ack_nudges_poor_reply_held_corrected_reply_relayed_survey_answered_by_mail_in_the_report() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    // A 6 s first-response target (warning at 3 s, breach at 6 s).
    let text = config(&servers, &db.url) + "[standards]\nmode = \"enforce\"\n[surveys]\ndelay = \"1s\"\n";
    std::fs::write(&config_path, text).unwrap();
    let _bot = start_bot(&config_path);

    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana Lima <ana@example.test>\r\nTo: support@example.test\r\nSubject: Wrong plan\r\n\
         Message-ID: <c2@example.test>\r\n\r\nI was moved to the wrong plan.\r\n",
    );
    let ack = servers.wait_for("ana", |m| m.contains("We have your request"));
    let ticket = ticket_of(&ack);
    // The agents are told about the new ticket, with the customer's words.
    let announcement = servers.wait_for("sam", |m| m.contains(&format!("[#{ticket}] New ticket")));
    assert!(announcement.contains("I was moved to the wrong plan."), "{announcement}");
    let announcement_id = header(&announcement, "Message-ID").unwrap().to_string();
    // Replies go to the ticket's tagged address, which proves they are Sam's.
    let reply_to = header(&announcement, "Reply-To").unwrap().to_string();
    assert!(reply_to.starts_with("support+") && reply_to.ends_with("@example.test"), "{announcement}");
    // No agent reply yet: the warning and the breach reach the agents' mailboxes.
    servers.wait_for("sam", |m| m.contains(&format!("[#{ticket}] Reply due soon")));
    servers.wait_for("sam", |m| m.contains(&format!("[#{ticket}] Response target missed")));

    // A reply breaking an error rule is held and returned with the findings.
    servers.send(
        "sam@example.test",
        &reply_to,
        &format!(
            "From: Sam <sam@example.test>\r\nTo: {reply_to}\r\nSubject: Re: [#{ticket}] New ticket\r\n\
             Message-ID: <r1@example.test>\r\nIn-Reply-To: {announcement_id}\r\n\r\n\
             Hi Ana, as I already said, the plan is fixed. Best, Sam\r\n"
        ),
    );
    let held = servers.wait_for("sam", |m| m.contains(&format!("[#{ticket}] Your reply was held")));
    assert!(held.contains("dismissive"), "{held}");
    assert!(held.contains("Rewrite: \"Hi Ana, to recap, the plan is fixed.\""), "the rewrite is shown: {held}");
    let held_id = header(&held, "Message-ID").unwrap().to_string();
    assert_eq!(header(&held, "Reply-To"), Some(reply_to.as_str()), "one tag per ticket");
    assert_eq!(servers.delivered("ana").len(), 1, "nothing but the acknowledgement reached the customer");

    // The corrected reply, carrying #resolve, reaches the customer threaded,
    // with the command stripped and not marked automatic.
    servers.send(
        "sam@example.test",
        &reply_to,
        &format!(
            "From: Sam <sam@example.test>\r\nTo: {reply_to}\r\nSubject: Re: [#{ticket}] Your reply was held\r\n\
             Message-ID: <r2@example.test>\r\nIn-Reply-To: {held_id}\r\n\r\n#resolve\r\n\r\nHi Ana,\r\n\r\n\
             Thanks for letting us know. The plan is fixed now.\r\n\r\nLet me know if anything else comes up.\r\nBest, Sam\r\n"
        ),
    );
    let reply = servers.wait_for("ana", |m| m.contains("The plan is fixed now."));
    assert_eq!(header(&reply, "In-Reply-To"), Some("<c2@example.test>"), "{reply}");
    assert!(header(&reply, "Subject").unwrap().contains(&format!("[#{ticket}]")));
    assert!(!reply.contains("#resolve") && header(&reply, "Auto-Submitted").is_none(), "{reply}");

    // The survey follows; Ana answers by replying with a number.
    let survey = servers.wait_for("ana", |m| m.contains("How did we do?"));
    let survey_id = header(&survey, "Message-ID").unwrap().to_string();
    servers.send(
        "ana@example.test",
        "support@example.test",
        &format!(
            "From: Ana Lima <ana@example.test>\r\nTo: support@example.test\r\nSubject: Re: How did we do? [#{ticket}]\r\n\
             Message-ID: <c3@example.test>\r\nIn-Reply-To: {survey_id}\r\n\r\n9 - quick once it got going\r\n"
        ),
    );
    let v = report_when(&config_path, |v| v["nps"]["responses"] == 1);
    assert_eq!((v["nps"]["responses"].as_u64(), v["nps"]["promoters"].as_u64()), (Some(1), Some(1)), "{v}");
    assert_eq!(v["conversations"]["resolved"], 1, "{v}");
    assert_eq!(v["first_response"]["answered"], 1, "the held reply did not count: {v}");
    assert_eq!(v["standards"]["replies_checked"], 1, "{v}");
}

#[test]
fn the_tricky_corpus_goes_through_the_running_bot_without_a_panic_or_a_mail_loop() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    std::fs::write(
        &config_path,
        config(&servers, &db.url).replace("first_response = \"6s\"", "first_response = \"8h\""),
    )
    .unwrap();
    let mut bot = start_bot(&config_path);
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/email");
    let mut files: Vec<_> = std::fs::read_dir(&corpus).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for file in &files {
        let raw = String::from_utf8_lossy(&std::fs::read(file).unwrap()).into_owned();
        // Every message goes to support, whatever its headers say; the
        // envelope sender is ana (bounces arrive with a null sender, but the
        // bot must judge by the headers anyway).
        servers.send("ana@example.test", "support@example.test", &raw);
    }
    // Bytes that are no mail at all, straight into the mailbox.
    servers.drop_raw("support", "garbage", b"\x00\x01\x02 not a message \xff\xfe");
    servers.drop_raw("support", "empty", b"");
    let attachment = "QUJDRA==".repeat(250_000); // 2 MB
    servers.send(
        "bob@example.test",
        "support@example.test",
        &format!(
            "From: Bob <bob@example.test>\r\nTo: support@example.test\r\nSubject: logs\r\nMessage-ID: <big@example.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\n\
             Logs attached.\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             {attachment}\r\n--x--\r\n"
        ),
    );
    // Bob is a person: he is acknowledged, which also shows the bot got past
    // everything sent before him.
    servers.wait_for("bob", |m| m.contains("We have your request"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (kinds, unparsed) = rt.block_on(async {
        let store = concierge::store::Store::open(&db.url).await.unwrap();
        let kinds: Vec<(String, String)> = store
            .outbox(&[], i64::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|i| (i.kind.as_str().to_string(), i.recipient.as_str().to_string()))
            .collect();
        let unparsed: i64 = sqlx::Row::get(
            &sqlx::query("SELECT COUNT(*) FROM email_unparsed").fetch_one(store.pool()).await.unwrap(),
            0,
        );
        store.close().await;
        (kinds, unparsed)
    });
    let mut acked: Vec<&str> =
        kinds.iter().filter(|(k, _)| k == "acknowledgement").map(|(_, to)| to.as_str()).collect();
    acked.sort();
    // People only: never the auto-reply, the bounce, the list or support
    // itself. (Postfix gives the headerless message a From from the envelope,
    // ana@example.test; sam@support.example.test is no agent in this config.)
    assert_eq!(
        acked,
        [
            "aegir@example.is",
            "ana@example.com",
            "ana@example.test",
            "bob@example.test",
            "broken@example.com",
            "grace@example.com",
            "hugo@example.com",
            "jose@example.com",
            "sam@support.example.test",
            "yamada@example.jp",
        ],
        "{kinds:?}"
    );
    assert!(kinds.iter().all(|(_, to)| to != "support@example.test"), "no mail to ourselves: {kinds:?}");
    assert_eq!(unparsed, 2, "the garbage and the empty message are kept whole");
    // Still alive and serving after all of it.
    assert!(bot.0.try_wait().unwrap().is_none(), "the bot is still running");
}

/// Anyone can put an agent's address in `From`. Through the real Postfix
/// (which drops Authentication-Results claiming our server's name, as a
/// border server must): a forged verdict and a made-up tag are not proof;
/// the mail is the customer's, logged, and nothing is relayed or resolved.
#[test]
fn a_forged_agent_mail_is_treated_as_a_customers_and_logged() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = slow_config_file(&servers, &db.url, dir.path(), "");
    let bot = start_bot(&config_path);
    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Refund\r\nMessage-ID: <f1@example.test>\r\n\r\nWhere is my refund?\r\n",
    );
    let ack = servers.wait_for("ana", |m| m.contains("We have your request"));
    let ticket = ticket_of(&ack);
    let forged = |id: &str, to: &str, extra: &str| {
        format!(
            "From: Sam <sam@example.test>\r\nTo: {to}\r\nSubject: Re: Refund [#{ticket}]\r\nMessage-ID: <{id}@evil.test>\r\n{extra}\r\n\
             #resolve\r\n\r\nHi Ana, to get your refund send your card number to refunds@evil.test. Best, Sam\r\n"
        )
    };
    let verdict = format!("Authentication-Results: {AUTHSERV_ID}; dkim=pass header.d=example.test; dmarc=pass\r\n");
    servers.send("mallory@evil.test", "support@example.test", &forged("x1", "support@example.test", &verdict));
    servers.send(
        "mallory@evil.test",
        "support+0123456789abcdef0123@example.test",
        &forged("x2", "support+0123456789abcdef0123@example.test", ""),
    );
    let log = bot.wait_for_log("not authenticated", 2);
    assert!(
        log.contains("treated as a customer's") && !log.contains("sam@example.test"),
        "logged, address redacted: {log}"
    );
    let v = report_when(&config_path, |_| true);
    assert_eq!(v["conversations"]["resolved"], 0, "not resolved: {v}");
    assert_eq!(v["first_response"]["answered"], 0, "no agent answered: {v}");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let to_ana = servers.delivered("ana");
    assert!(to_ana.iter().all(|m| !m.contains("card number")), "nothing relayed to the customer: {to_ana:#?}");
}

/// Hostile mail straight into the mailbox (past Postfix's size limit): 25 MB
/// of text, 10,000 recipients, MIME nested 5,000 deep. Each is read once,
/// acknowledged once, stored with bounded text; the bot keeps running.
#[test]
fn huge_wide_and_deeply_nested_mail_is_read_acknowledged_and_stored_bounded() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let mut bot = start_bot(&slow_config_file(&servers, &db.url, dir.path(), ""));
    let line = "The export still fails, here is everything I tried, once more from the start.\r\n";
    let huge = format!(
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Huge\r\nMessage-ID: <h1@example.test>\r\n\r\n{}",
        line.repeat(25 * 1024 * 1024 / line.len())
    );
    servers.drop_raw("support", "huge", huge.as_bytes());
    let to: Vec<String> = (0..10_000).map(|i| format!("user{i}@example.org")).collect();
    let wide = format!(
        "From: Bob <bob@example.test>\r\nTo: support@example.test, {}\r\nSubject: Wide\r\nMessage-ID: <w1@example.test>\r\n\r\nHello all\r\n",
        to.join(", ")
    );
    servers.drop_raw("support", "wide", wide.as_bytes());
    let mut nested =
        String::from("From: Ana <ana@example.test>\r\nSubject: Nested\r\nMessage-ID: <n1@example.test>\r\n");
    for i in 0..5000 {
        nested.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
    }
    nested.push_str("Content-Type: text/plain\r\n\r\ndeep text\r\n");
    servers.drop_raw("support", "nested", nested.as_bytes());
    for (user, id) in [("ana", "<h1@example.test>"), ("bob", "<w1@example.test>"), ("ana", "<n1@example.test>")] {
        servers.wait_for(user, |m| m.contains("We have your request") && m.contains(id));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let acks = |user: &str| servers.delivered(user).iter().filter(|m| m.contains("We have your request")).count();
    assert_eq!((acks("ana"), acks("bob")), (2, 1), "each acknowledged once, to its sender only");
    let longest: i64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = concierge::store::Store::open(&db.url).await.unwrap();
        let n = sqlx::query_scalar::<_, i64>("SELECT MAX(LENGTH(body)) FROM messages").fetch_one(store.pool()).await;
        store.close().await;
        n.unwrap()
    });
    let max = concierge::channels::email::message::MAX_TEXT as i64;
    assert!(longest > 1000 && longest < max + 200, "stored text is bounded: {longest}");
    assert!(bot.0.try_wait().unwrap().is_none(), "the bot is still running");
}

#[test]
fn concierge_resolve_hands_the_ticket_to_the_running_bot_which_sends_the_survey() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    let text = config(&servers, &db.url).replace("first_response = \"6s\"", "first_response = \"8h\"")
        + "[surveys]\ndelay = \"1s\"\n";
    std::fs::write(&config_path, text).unwrap();
    let bot = start_bot(&config_path);
    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Done?\r\nMessage-ID: <d1@example.test>\r\n\r\nHi\r\n",
    );
    let ack = servers.wait_for("ana", |m| m.contains("We have your request"));
    let ticket = ticket_of(&ack);
    let resolve = |ticket: &str| {
        concierge()
            .arg("--config")
            .arg(&config_path)
            .args(["resolve", ticket, "--by", "boss"])
            .env("CONCIERGE_TEST_SUPPORT_PASSWORD", PASSWORD)
            .output()
            .unwrap()
    };
    let out = resolve(&ticket);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("email ticket {ticket}")));
    let survey = servers.wait_for("ana", |m| m.contains(&format!("How did we do? [#{ticket}]")));
    let out = resolve("NOSUCHTK");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no conversation has ticket \"NOSUCHTK\""));

    // Ana answers with one click on the mail's link for 9 (its HTML part
    // shows the scores as buttons).
    let parsed = mail_parser::MessageParser::default().parse(survey.as_bytes()).expect("a mail");
    let text = parsed.body_text(0).expect("a text part").to_string();
    let link = text.lines().find_map(|l| l.trim().strip_prefix("9  ")).expect("a link per score").trim().to_string();
    let html = parsed.body_html(0).expect("an HTML part").to_string();
    assert!(html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))) && html.contains(">10</a>"), "{html}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // An operator sees the email channel connected.
    let (health, metrics) = rt.block_on(async {
        let h = reqwest::get(format!("{}/healthz", bot.1)).await.unwrap();
        let code = h.status().as_u16();
        let h: Value = serde_json::from_str(&h.text().await.unwrap()).unwrap();
        let m = reqwest::get(format!("{}/metrics", bot.1)).await.unwrap().text().await.unwrap();
        ((code, h), m)
    });
    assert_eq!(health.0, 200, "{}", health.1);
    assert_eq!(
        (health.1["status"].as_str(), health.1["channels"]["email"]["state"].as_str()),
        (Some("ok"), Some("up"))
    );
    assert!(metrics.lines().any(|l| l == "concierge_channel_up{channel=\"email\"} 1"), "{metrics}");
    let (code, page) = rt.block_on(async {
        let r = reqwest::get(&link).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("You answered <strong>9</strong>"), "{page}");
    let v = report_when(&config_path, |v| v["nps"]["responses"] == 1);
    assert_eq!(v["nps"]["promoters"], 1, "{v}");
}

#[test]
fn report_send_mails_the_weekly_summary_with_its_charts_to_the_managers() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    std::fs::write(&config_path, config(&servers, &db.url)).unwrap();
    let report = |extra: &[&str]| {
        concierge()
            .arg("--config")
            .arg(&config_path)
            .args(["report", "--week", "2026-W48", "--as-of", "2026-12-01T00:00:00Z"])
            .args(extra)
            .output()
            .unwrap()
    };
    // No mail password needed: the summary is queued in the outbox, once a week.
    let out = report(&["--send"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Weekly support summary 2026-W48"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is queued"), "{}", String::from_utf8_lossy(&out.stderr));
    let again = report(&["--send"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing new queued"));
    // The running bot delivers it.
    let _bot = start_bot(&config_path);
    let mail = servers.wait_for("boss", |m| m.contains("Subject: Weekly support summary 2026-W48"));
    assert!(mail.contains("text/plain") && mail.contains("text/html") && mail.contains("svg"), "{mail}");
    // It carries the signed link to the week's report page.
    let parsed = mail_parser::MessageParser::default().parse(mail.as_bytes()).expect("a mail");
    let text = parsed.body_text(0).expect("a text part").to_string();
    assert!(text.contains("The report page, with charts: http") && text.contains("/reports/2026-W48?exp="), "{text}");
    assert!(mail.contains("Auto-Submitted: auto-generated"));
    let rows = outbox_rows(&db.url);
    assert_eq!(rows.iter().filter(|r| r.0 == "summary").count(), 1, "{rows:?}");
    // Without [email], --send is a usage error.
    let bare = dir.path().join("bare.toml");
    std::fs::write(&bare, format!("[database]\nurl = \"{}\"\n", db.url)).unwrap();
    let out = concierge().arg("--config").arg(&bare).args(["report", "--week", "2026-W48", "--send"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--send sends the summary through [email]"));
}

#[test]
fn a_reply_sent_from_the_shared_account_is_seen_in_the_sent_folder_and_our_own_copies_are_not() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    let text = config(&servers, &db.url).replace("first_response = \"6s\"", "first_response = \"8h\"")
        + "sent_mailbox = \"Sent\"\n";
    std::fs::write(&config_path, text).unwrap();
    // The folder exists before the bot starts, as in a real mailbox.
    servers.drop_raw_in("support", "Sent", "seed", b"From: support@example.test\r\nSubject: old\r\n\r\nold\r\n");
    let _bot = start_bot(&config_path);
    servers.send(
        "ana@example.test",
        "support@example.test",
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Sent folder\r\nMessage-ID: <sf1@example.test>\r\n\r\nHi\r\n",
    );
    let ack = servers.wait_for("ana", |m| m.contains("We have your request"));
    let ticket = ticket_of(&ack);
    // A copy of concierge's own acknowledgement lands in Sent (Gmail does
    // that): it must not count as an agent's reply.
    servers.drop_raw_in("support", "Sent", "ack-copy", ack.as_bytes());
    // An agent answers from the shared account.
    let reply = format!(
        "From: Support <support@example.test>\r\nTo: ana@example.test\r\nSubject: Re: Sent folder [#{ticket}]\r\n\
         Message-ID: <shared1@example.test>\r\nIn-Reply-To: <sf1@example.test>\r\n\r\n\
         Hi Ana,\r\n\r\nThanks for writing. It is sorted.\r\n\r\nLet me know if anything else comes up.\r\nBest, Sam\r\n"
    );
    servers.drop_raw_in("support", "Sent", "shared-reply", reply.as_bytes());
    let v = report_when(&config_path, |v| v["first_response"]["answered"] == 1);
    assert_eq!(v["first_response"]["answered"], 1, "{v}");
    assert_eq!(v["standards"]["replies_checked"], 1, "only the agent's reply, not our own copy: {v}");
    assert_eq!(v["agents"][0]["id"], "support@example.test", "{v}");
}

#[test]
fn with_the_mail_server_unreachable_healthz_says_degraded_and_why() {
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    // A port nothing listens on.
    let port = crate::helpers::free_port();
    let text = format!(
        "[database]\nurl = \"{}\"\n{FAST_SLA}[email]\nimap_host = \"127.0.0.1\"\nimap_port = {port}\nsmtp_host = \"127.0.0.1\"\n\
         smtp_port = {port}\ntls = \"none\"\nusername = \"support\"\npassword_env = \"CONCIERGE_TEST_SUPPORT_PASSWORD\"\n\
         address = \"support@example.test\"\nagents = [\"sam@example.test\"]\npoll_interval = \"1s\"\n",
        db.url
    );
    std::fs::write(&config_path, text).unwrap();
    let bot = start_bot(&config_path);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (code, health) = loop {
        let (code, health) = rt.block_on(async {
            let r = reqwest::get(format!("{}/healthz", bot.1)).await.unwrap();
            (r.status().as_u16(), serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap())
        });
        if health["channels"]["email"]["state"] == "down" || std::time::Instant::now() > give_up {
            break (code, health);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!((code, health["status"].as_str()), (503, Some("degraded")), "{health}");
    assert_eq!(health["database"]["ok"], true);
    let reason = health["channels"]["email"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains(&port.to_string()) || reason.to_lowercase().contains("imap"), "{health}");
}
