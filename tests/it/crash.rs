//! kill -9 under traffic: `concierge run` killed with SIGKILL at random
//! moments, 50 times, while customers write by mail and on Discord and an
//! agent answers through the real Postfix and Dovecot; restarted each time.
//! Every message is stored once; every acknowledgement, announcement,
//! nudge, escalation, relayed reply and survey is in its recipients'
//! mailboxes exactly once, and every post on Discord is there once. And
//! `concierge replay` killed mid-file, then run again, ends as one
//! uninterrupted replay (both backends).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::fake_discord::{ANA, FakeDiscord, LEE, STAFF, SUPPORT, TOKEN};
use crate::helpers::{Running, sqlite};
use crate::mail_servers::MailServers;

/// Customer mails, one every `GAP`; every third is answered by the agent.
const MAILS: usize = 45;
const GAP: Duration = Duration::from_millis(500);
const KILLS: usize = 50;
/// Customer messages on Discord, one every `CHAT_GAP`.
const CHATS: usize = 20;
const CHAT_GAP: Duration = Duration::from_millis(1200);

/// A small seeded generator: the kill moments are the same on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn customer(n: usize) -> &'static str {
    if n.is_multiple_of(2) { "ana" } else { "bob" }
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines().find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// The bot's acknowledgements in the thread on Discord message `id`.
fn chat_acks(fake: &FakeDiscord, id: u64, first_name: &str) -> usize {
    let hi = format!("Hi {first_name}");
    fake.posted_in(id).iter().filter(|m| m["content"].as_str().is_some_and(|c| c.contains(&hi))).count()
}

/// Message-IDs seen more than once in `user`'s mailbox.
fn duplicates(servers: &MailServers, user: &str) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in servers.delivered(user) {
        *seen.entry(header(&m, "Message-ID").unwrap_or("(none)").to_string()).or_default() += 1;
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(id, n)| format!("{id} ×{n}")).collect()
}

/// Waits (up to `secs`) until `ready` holds, polling every 200 ms.
fn eventually(secs: u64, what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !ready() {
        assert!(Instant::now() < until, "{what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn killed_fifty_times_under_traffic_every_mail_is_stored_once_and_every_action_delivered_once() {
    let Some(servers) = MailServers::start() else { return };
    let fake = FakeDiscord::start();
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    std::fs::write(
        &config_path,
        crate::mail_servers::config(&servers, &db.url)
            + "[surveys]\ndelay = \"1s\"\nthrottle = \"0s\"\n"
            + &fake.concierge_section(),
    )
    .unwrap();
    let answered: Vec<usize> = (0..MAILS).step_by(3).collect();
    let env = [("CONCIERGE_TEST_DISCORD_TOKEN", TOKEN)];
    // Installed first: one run until caught up (a support channel is read
    // from the point concierge first records for it, once connected), then
    // the traffic.
    let first = Running::start(&config_path, &env);
    first.wait_logged("discord channel: caught up");
    first.signal("-KILL");
    drop(first);
    let started = Instant::now();
    let chats = std::sync::Mutex::new(Vec::new());
    let bot = std::thread::scope(|s| {
        // Customers write on Discord too: live when the bot is connected,
        // fetched from the channel's history when it comes back.
        s.spawn(|| {
            for n in 0..CHATS {
                let who = if n % 2 == 0 { (ANA, "Ana Lima") } else { (LEE, "Lee") };
                let id = fake.customer_writes(SUPPORT, who, &format!("Chat question {n}: where is my refund?"));
                chats.lock().unwrap().push((id, who.1.split(' ').next().unwrap()));
                std::thread::sleep(CHAT_GAP);
            }
        });
        // Customers write, one mail every GAP.
        s.spawn(|| {
            for n in 0..MAILS {
                let who = customer(n);
                let raw = format!(
                    "From: {who} <{who}@example.test>\r\nTo: support@example.test\r\nSubject: Order {n}\r\n\
                     Message-ID: <crash-{n}@example.test>\r\n\r\nWhere is order {n}?\r\n"
                );
                servers.send(&format!("{who}@example.test"), "support@example.test", &raw);
                std::thread::sleep(GAP);
            }
        });
        // The agent answers every third ticket, resolving it, by replying
        // to its announcement (the tagged Reply-To).
        s.spawn(|| {
            for &n in &answered {
                let mut announcement = String::new();
                eventually(300, &format!("order {n} never announced"), || {
                    match servers.delivered("sam").into_iter().find(|m| m.contains(&format!("Where is order {n}?"))) {
                        Some(m) => {
                            announcement = m;
                            true
                        }
                        None => false,
                    }
                });
                let reply_to = header(&announcement, "Reply-To").unwrap();
                let subject = header(&announcement, "Subject").unwrap();
                let id = header(&announcement, "Message-ID").unwrap();
                let raw = format!(
                    "From: Sam <sam@example.test>\r\nTo: {reply_to}\r\nSubject: Re: {subject}\r\n\
                     Message-ID: <crash-reply-{n}@example.test>\r\nIn-Reply-To: {id}\r\n\r\n#resolve\r\n\r\n\
                     Hi {who},\r\n\r\nThanks for your patience. Order {n} ships today.\r\n\r\nBest, Sam\r\n",
                    who = customer(n)
                );
                servers.send("sam@example.test", reply_to, &raw);
            }
        });
        // Killed at random moments, restarted at once.
        let mut rng = Lcg(0x5eed);
        let mut logs = Vec::new();
        for _ in 0..KILLS {
            let bot = Running::start(&config_path, &env);
            std::thread::sleep(Duration::from_millis(150 + rng.below(750)));
            bot.signal("-KILL");
            logs.push(bot.log.clone());
        }
        let said = |what: &str| logs.iter().map(|l| l.lock().unwrap().matches(what).count()).sum::<usize>();
        eprintln!(
            "crash: {KILLS} kills in {:.0} s; {} mails delivered before the kills; {} interrupted sends found already out",
            started.elapsed().as_secs_f64(),
            said("dispatch: delivered"),
            said("an interrupted send had gone out")
        );
        // One last run, left alone until everything is out.
        Running::start(&config_path, &env)
    });
    let chats = chats.into_inner().unwrap();
    let replied = |n: usize| format!("Order {n} ships today.");
    let counts = || {
        let (ana, bob, sam, boss) =
            (servers.delivered("ana"), servers.delivered("bob"), servers.delivered("sam"), servers.delivered("boss"));
        let customers: Vec<&String> = ana.iter().chain(&bob).collect();
        let acks = customers.iter().filter(|m| m.contains("We have your request")).count();
        let replies = answered.iter().filter(|n| customers.iter().any(|m| m.contains(&replied(**n)))).count();
        let surveys = customers.iter().filter(|m| m.contains("How did we do?")).count();
        let announced = sam.iter().filter(|m| m.contains("] New ticket")).count();
        // Unanswered tickets breach (6 s) and escalate (3 s later).
        let escalations = boss.iter().filter(|m| m.contains("] Escalation")).count();
        let chat_acks = chats.iter().filter(|(id, who)| chat_acks(&fake, *id, who) > 0).count();
        (acks, announced, replies, surveys, escalations, chat_acks)
    };
    let until = Instant::now() + Duration::from_secs(180);
    loop {
        let (acks, announced, replies, surveys, escalations, chatted) = counts();
        let n = answered.len();
        if acks == MAILS
            && announced == MAILS
            && replies == n
            && surveys == n
            && escalations >= MAILS - n
            && chatted == CHATS
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "not everything arrived: acks {acks}/{MAILS}, announced {announced}/{MAILS}, replies {replies}/{n}, \
             surveys {surveys}/{n}, escalations {escalations}/{}, Discord acks {chatted}/{CHATS} \
             (missing: {:?} of {:?})\nlog of the last run:\n{}",
            MAILS - n,
            chats.iter().filter(|(id, who)| chat_acks(&fake, *id, who) == 0).collect::<Vec<_>>(),
            chats,
            bot.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A while longer for anything sent twice to arrive.
    std::thread::sleep(Duration::from_secs(5));
    drop(bot);
    for user in ["ana", "bob", "sam", "kim", "boss"] {
        let twice = duplicates(&servers, user);
        assert!(twice.is_empty(), "{user} got mail twice: {twice:?}");
    }
    for &(id, who) in &chats {
        assert_eq!(chat_acks(&fake, id, who), 1, "Discord message {id}: one acknowledgement in its thread");
    }
    // Nothing the bot posted on Discord is there twice: each ticket's
    // thread, and the staff channel's nudges and escalations.
    for channel in chats.iter().map(|(id, _)| *id).chain([STAFF]) {
        let mut seen = HashMap::new();
        for m in fake.posted_in(channel) {
            *seen.entry(m["content"].as_str().unwrap_or("").to_string()).or_insert(0) += 1;
        }
        let twice: Vec<_> = seen.into_iter().filter(|(_, n)| *n > 1).collect();
        assert!(twice.is_empty(), "posted twice in {channel}: {twice:?}");
    }
    assert!(!fake.posted_in(STAFF).is_empty(), "unanswered chats were nudged in the staff channel");
    for n in 0..MAILS {
        let mine = servers.delivered(customer(n));
        let thread = format!("<crash-{n}@example.test>");
        let acks = mine.iter().filter(|m| m.contains("We have your request") && m.contains(&thread)).count();
        assert_eq!(acks, 1, "order {n}: one acknowledgement");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (conversations, customer_messages, relayed) = rt.block_on(async {
        let store = concierge::store::Store::open(&db.url).await.unwrap();
        let one = |sql: &'static str| {
            let pool = store.pool().clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        let c = one("SELECT COUNT(*) FROM conversations").await;
        let m = one("SELECT COUNT(*) FROM messages WHERE role = 'customer'").await;
        let r = one("SELECT COUNT(*) FROM outbox WHERE kind = 'reply' AND status = 'delivered'").await;
        store.close().await;
        (c, m, r)
    });
    assert_eq!(conversations, (MAILS + CHATS) as i64, "every mail and chat opened one conversation");
    assert_eq!(customer_messages, (MAILS + CHATS) as i64, "every customer mail and chat stored once");
    assert_eq!(relayed, answered.len() as i64, "every agent reply relayed once");
}

/// A file name per database URL.
fn name_for(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Every row that matters, as text, in key order: what a replay wrote.
async fn snapshot(url: &str) -> Vec<Vec<String>> {
    let store = concierge::store::Store::open(url).await.unwrap();
    let mut out = Vec::new();
    for sql in [
        "SELECT id || '|' || status FROM conversations ORDER BY id",
        "SELECT id || '|' || conversation || '|' || role || '|' || CAST(at AS TEXT) FROM messages ORDER BY id",
        "SELECT action_key || '|' || status || '|' || kind || '|' || CAST(at AS TEXT) || '|' || body FROM outbox ORDER BY action_key",
        "SELECT id || '|' || status FROM surveys ORDER BY id",
        "SELECT id || '|' || CAST(check_score AS TEXT) || '|' || CAST(check_overridden AS TEXT) FROM messages WHERE check_score IS NOT NULL ORDER BY id",
        "SELECT message_id || '|' || rule FROM findings ORDER BY message_id, seq",
        "SELECT input_key FROM processed_inputs ORDER BY input_key",
    ] {
        out.push(sqlx::query_scalar::<_, String>(sql).fetch_all(store.pool()).await.unwrap());
    }
    store.close().await;
    out
}

/// `concierge replay` killed with SIGKILL at three moments in the middle of
/// a 100k-event file, then run again on the same database to the end,
/// leaves exactly what one uninterrupted replay leaves (every batch is one
/// transaction; every input has an idempotency key).
#[test]
fn replay_killed_mid_file_and_run_again_ends_exactly_as_an_uninterrupted_replay() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start: jiff::Timestamp = "2026-10-05T08:00:00Z".parse().unwrap();
    let lines: Vec<String> = concierge::bench::generate::events(10_000, 4, start, 11)
        .into_iter()
        .map(|e| concierge::replay::to_line(e.at, &e.input).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let secret = [("CONCIERGE_SECRET", "the same survey secret for both databases")];
    let replay = |db: &str| {
        let config = dir.path().join(format!("{:x}.toml", name_for(db)));
        std::fs::write(&config, format!("[database]\nurl = \"{db}\"\n")).unwrap();
        let mut cmd = crate::helpers::concierge();
        cmd.arg("--config").arg(&config).arg("replay").arg(&file).envs(secret).stdout(std::process::Stdio::null());
        cmd
    };
    let (reference, crashed) = (rt.block_on(crate::helpers::databases()), rt.block_on(crate::helpers::databases()));
    for (reference, crashed) in reference.iter().zip(&crashed) {
        let out = replay(&reference.url).stderr(std::process::Stdio::null()).status().unwrap();
        assert!(out.success(), "{}: the uninterrupted replay", reference.backend);
        let full = rt.block_on(snapshot(&reference.url));
        let mut cut = 0;
        for after in [700, 1500, 2500] {
            let mut child = replay(&crashed.url).stderr(std::process::Stdio::null()).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(after));
            let finished = child.try_wait().unwrap().is_some();
            let _ = child.kill();
            let _ = child.wait();
            if !finished && rt.block_on(snapshot(&crashed.url)) != full {
                cut += 1;
            }
        }
        assert!(cut > 0, "{}: no kill came mid-file (the machine is too fast for these moments)", crashed.backend);
        let again = replay(&crashed.url).output().unwrap();
        assert!(again.status.success(), "{}: {}", crashed.backend, String::from_utf8_lossy(&again.stderr));
        assert!(
            rt.block_on(snapshot(&crashed.url)) == full,
            "{}: differs from the uninterrupted replay",
            crashed.backend
        );
        eprintln!("replay: {} of 3 kills came mid-file on {}", cut, crashed.backend);
    }
}
