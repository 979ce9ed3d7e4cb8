//! The app in-process on a fast virtual clock, with test channels: timers to
//! the second, delivery through the outbox by a worker per channel, retry
//! after failure, permanent failures, a hanging channel that delays nobody
//! else, restart without loss, and one instance per database.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use concierge::app::App;
use concierge::channels::{BoxFuture, ChannelAdapter, DeliveryError, Intake};
use concierge::config::Config;
use concierge::core::router::{ActionKind, Author, Channel, Input, Message, Recipient, Role};
use concierge::driver::{Clock, Inbound};
use concierge::status::Link;
use concierge::store::{OutboxItem, OutboxStatus, Store};

use crate::helpers::databases;

/// (kind, recipient, the action's instant, when it was delivered, outbox key)
pub type Delivery = (ActionKind, String, Timestamp, Timestamp, String);

/// One call of `deliver`: the key and when a cut-off attempt began.
pub type Call = (String, Option<Timestamp>);

/// How a test channel behaves on delivery.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Works,
    /// Fails (transiently) this many times first.
    FailFirst(usize),
    /// Every delivery is refused for good.
    Refuses,
    /// Every delivery hangs (a server that never answers).
    Hangs,
    /// Cannot tell this many times whether a cut-off attempt went out.
    Unconfirmed(usize),
}

/// A channel for tests: inputs come from the test, deliveries are recorded.
#[derive(Clone)]
pub struct TestChannel {
    channel: Channel,
    pub delivered: Arc<Mutex<Vec<Delivery>>>,
    pub calls: Arc<Mutex<Vec<Call>>>,
    mode: Arc<Mutex<Mode>>,
    clock: Clock,
    inputs: Arc<tokio::sync::Mutex<mpsc::Receiver<Inbound>>>,
    pub send: mpsc::Sender<Inbound>,
}

impl TestChannel {
    pub fn new(channel: Channel, mode: Mode, clock: Clock) -> TestChannel {
        let (send, inputs) = mpsc::channel(16);
        TestChannel {
            channel,
            delivered: Arc::default(),
            calls: Arc::default(),
            mode: Arc::new(Mutex::new(mode)),
            clock,
            inputs: Arc::new(tokio::sync::Mutex::new(inputs)),
            send,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn kinds(&self) -> Vec<(ActionKind, String, Timestamp)> {
        self.delivered.lock().unwrap().iter().map(|d| (d.0, d.1.clone(), d.2)).collect()
    }
}

impl ChannelAdapter for TestChannel {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn carries(&self, _kind: ActionKind, _to: &Recipient) -> bool {
        true
    }

    fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            intake.link(self.channel, Link::Up);
            let mut inputs = self.inputs.lock().await;
            loop {
                tokio::select! {
                    next = inputs.recv() => match next {
                        Some(i) => { let _ = intake.inbox.send(i).await; }
                        None => break,
                    },
                    () = intake.stopped() => break,
                }
            }
        })
    }

    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push((item.key.clone(), item.sending_since));
            let mode = *self.mode.lock().unwrap();
            match mode {
                // Only a cut-off attempt is checked: a nudge falling due
                // meanwhile (the clock runs on) goes out as usual.
                Mode::Unconfirmed(n) if n > 0 && item.sending_since.is_some() => {
                    self.set_mode(Mode::Unconfirmed(n - 1));
                    return Err(DeliveryError::Unconfirmed("the mailbox cannot be searched".into()));
                }
                Mode::Unconfirmed(_) => {}
                Mode::Works => {}
                Mode::FailFirst(n) if n > 0 => {
                    self.set_mode(Mode::FailFirst(n - 1));
                    return Err(DeliveryError::Transient("connection refused".into()));
                }
                Mode::FailFirst(_) => {}
                Mode::Refuses => return Err(DeliveryError::Permanent("550 no such user".into())),
                Mode::Hangs => std::future::pending::<()>().await,
            }
            let now = self.clock.now();
            let to = item.recipient.as_str().to_string();
            self.delivered.lock().unwrap().push((item.kind, to, item.at, now, item.key.clone()));
            Ok(())
        })
    }
}

/// One virtual hour per real second.
pub const SPEED: u32 = 3600;

/// Sleeps for `secs` of virtual time.
pub async fn virtual_sleep(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs) / SPEED).await;
}

const CONFIG: &str = r#"
[business_hours]
time_zone = "UTC"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
[sla]
first_response = "1h"
warn_at = "75%"
escalate_after = "1h"
[http]
listen = "127.0.0.1:0"
"#;

fn config(url: &str) -> Config {
    let mut c = Config::parse(CONFIG, "test", None).unwrap();
    c.database_url = url.into();
    c
}

/// The app running in the background on `url` with these channels.
pub struct Bot {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bot {
    pub async fn start(url: &str, channels: &[&TestChannel], clock: Clock) -> Bot {
        let adapters: Vec<Arc<dyn ChannelAdapter>> =
            channels.iter().map(|c| Arc::new((*c).clone()) as Arc<dyn ChannelAdapter>).collect();
        let app = App::with_channels(config(url), adapters, clock).await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        Bot { stop, task }
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn customer_message(channel: Channel, at: Timestamp, thread: &str) -> Inbound {
    Inbound::new(
        at,
        Input::Message(Message {
            channel,
            thread: thread.into(),
            id: format!("m-{thread}"),
            author: Author { role: Role::Customer, id: "4242".into(), name: Some("Ana".into()) },
            text: "The bot is down".into(),
        }),
    )
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Waits (real time, up to 30 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    eventually(|| std::future::ready(done())).await;
}

/// Polls `check` (real time, up to 30 s) until it holds.
async fn eventually<F: std::future::Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await && std::time::Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_app_acknowledges_at_once_and_nudges_at_the_due_instants() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z"); // Monday 10:00 UTC
        let clock = Clock::virtual_from(start, SPEED);
        let discord = TestChannel::new(Channel::Discord, Mode::Works, clock);
        let bot = Bot::start(&db.url, &[&discord], clock).await;
        discord.send.send(customer_message(Channel::Discord, start, "chan-1")).await.unwrap();
        virtual_sleep(3 * 3600).await;
        bot.stop().await;
        let got = discord.delivered.lock().unwrap().clone();
        for (kind, _, at, delivered, _) in &got {
            let lag = delivered.as_second() - at.as_second();
            // Never early; late only by processing time (a real second is a
            // virtual hour here, so a loaded machine shows minutes).
            assert!((0..3600).contains(&lag), "{kind:?} due {at} delivered {delivered}");
        }
        assert_eq!(
            discord.kinds(),
            vec![
                (ActionKind::Acknowledgement, "4242".into(), start),
                (ActionKind::NudgeWarning, "agents".into(), ts("2026-11-23T10:45:00Z")),
                (ActionKind::NudgeBreach, "agents".into(), ts("2026-11-23T11:00:00Z")),
                (ActionKind::Escalation, "managers".into(), ts("2026-11-23T12:00:00Z")),
            ],
            "{}",
            db.backend
        );
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_a_restart_neither_loses_nor_repeats_it() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z");
        let clock = Clock::virtual_from(start, SPEED);
        let discord = TestChannel::new(Channel::Discord, Mode::FailFirst(1_000), clock);
        let bot = Bot::start(&db.url, &[&discord], clock).await;
        discord.send.send(customer_message(Channel::Discord, start, "chan-1")).await.unwrap();
        virtual_sleep(60).await;
        bot.stop().await;
        assert!(discord.delivered.lock().unwrap().is_empty());

        // Restart with the channel back: the queued acknowledgement goes out
        // once, and the warning still fires at its instant.
        discord.set_mode(Mode::Works);
        let bot = Bot::start(&db.url, &[&discord], clock).await;
        until(|| discord.kinds().iter().any(|d| d.0 == ActionKind::NudgeWarning)).await;
        bot.stop().await;
        let got = discord.delivered.lock().unwrap().clone();
        let of = |kind| got.iter().filter(|d| d.0 == kind).collect::<Vec<_>>();
        assert_eq!(of(ActionKind::Acknowledgement).len(), 1, "{}: {got:?}", db.backend);
        let warning = of(ActionKind::NudgeWarning);
        assert_eq!(warning.len(), 1, "{}: {got:?}", db.backend);
        assert_eq!(warning[0].2, ts("2026-11-23T10:45:00Z"), "{}", db.backend);
        let mut keys: Vec<&str> = got.iter().map(|d| d.4.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), got.len(), "nothing is delivered twice: {got:?}");
    }
}

/// A delivery cut off mid-attempt (the bot stopped while the channel hung,
/// as a crash would) reaches the channel again marked with when the attempt
/// began, so it can check before resending; an attempt whose outcome stays
/// unknown keeps that mark; delivered, the mark is gone. (The clock runs
/// an hour a second: on a busy machine a nudge may fall due before the
/// acknowledgement goes out, so the checks hold for whichever were cut off.)
#[tokio::test]
async fn a_delivery_cut_off_mid_attempt_is_handed_back_marked_until_its_outcome_is_known() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z");
        let clock = Clock::virtual_from(start, SPEED);
        let discord = TestChannel::new(Channel::Discord, Mode::Hangs, clock);
        let bot = Bot::start(&db.url, &[&discord], clock).await;
        discord.send.send(customer_message(Channel::Discord, start, "chan-1")).await.unwrap();
        until(|| !discord.calls.lock().unwrap().is_empty()).await;
        bot.stop().await;
        let first: Vec<_> = discord.calls.lock().unwrap().clone();
        assert!(first.iter().all(|c| c.1.is_none()), "{}: a first attempt is not cut off: {first:?}", db.backend);

        discord.set_mode(Mode::Unconfirmed(1));
        let bot = Bot::start(&db.url, &[&discord], clock).await;
        // Until the bot has recorded the deliveries, not just made them: a
        // stop in between leaves a row pending, as a crash would.
        let store = Store::open(&db.url).await.unwrap();
        let delivered = || async {
            let mut all = true;
            for (key, _) in &first {
                let row = store.outbox_item(key).await.ok().flatten();
                all &= row.is_some_and(|r| r.status == OutboxStatus::Delivered);
            }
            all && discord.kinds().iter().any(|d| d.0 == ActionKind::Acknowledgement)
        };
        eventually(delivered).await;
        bot.stop().await;
        let again: Vec<_> = discord.calls.lock().unwrap()[first.len()..].to_vec();
        // Every attempt cut off is handed back marked with when it began,
        // the same instant each time it is handed back.
        let mut marked: std::collections::BTreeMap<&str, Vec<Timestamp>> = std::collections::BTreeMap::new();
        for (key, since) in &again {
            if let Some(began) = since {
                assert!(*began >= start && *began < clock.now(), "{}: {began}", db.backend);
                marked.entry(key.as_str()).or_default().push(*began);
            }
        }
        for (key, _) in &first {
            assert!(marked.contains_key(key.as_str()), "{}: {key} handed back marked: {again:?}", db.backend);
        }
        for (key, began) in &marked {
            assert!(began.iter().all(|b| *b == began[0]), "{}: {key}: {again:?}", db.backend);
            let row = store.outbox_item(key).await.unwrap().unwrap();
            assert_eq!((row.status, row.sending_since), (OutboxStatus::Delivered, None), "{}: {key}", db.backend);
        }
        // One check could not tell: that attempt was handed back once more.
        let handed: usize = marked.values().map(Vec::len).sum();
        assert_eq!(handed, marked.len() + 1, "{}: still unknown after an unconfirmed check: {again:?}", db.backend);
        let mut keys: Vec<String> = discord.delivered.lock().unwrap().iter().map(|d| d.4.clone()).collect();
        let sent = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), sent, "{}: nothing is delivered twice", db.backend);
        store.close().await;
    }
}

#[tokio::test]
async fn a_channel_that_hangs_on_delivery_delays_neither_the_other_channels_acknowledgement_nor_its_nudges() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z");
        let clock = Clock::virtual_from(start, SPEED);
        let email = TestChannel::new(Channel::Email, Mode::Hangs, clock);
        let discord = TestChannel::new(Channel::Discord, Mode::Works, clock);
        let bot = Bot::start(&db.url, &[&email, &discord], clock).await;
        // Email is stuck on its first acknowledgement...
        email.send.send(customer_message(Channel::Email, start, "mail-1")).await.unwrap();
        virtual_sleep(60).await;
        // ...while a Discord customer writes and is acknowledged and nudged on time.
        let later = clock.now();
        discord.send.send(customer_message(Channel::Discord, later, "chan-1")).await.unwrap();
        virtual_sleep(2 * 3600).await;
        bot.stop().await;
        assert!(email.delivered.lock().unwrap().is_empty(), "{}", db.backend);
        let got = discord.delivered.lock().unwrap().clone();
        let kinds: Vec<ActionKind> = got.iter().map(|d| d.0).collect();
        assert_eq!(
            kinds[..3],
            [ActionKind::Acknowledgement, ActionKind::NudgeWarning, ActionKind::NudgeBreach],
            "{}: {got:?}",
            db.backend
        );
        for (kind, _, at, delivered, _) in &got {
            assert!((0..3600).contains(&(delivered.as_second() - at.as_second())), "{kind:?} due {at} at {delivered}");
        }
    }
}

#[tokio::test]
async fn a_permanent_failure_is_marked_failed_with_its_reason_never_retried_listed_and_counted() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z");
        let clock = Clock::virtual_from(start, SPEED);
        let email = TestChannel::new(Channel::Email, Mode::Refuses, clock);
        let bot = Bot::start(&db.url, &[&email], clock).await;
        email.send.send(customer_message(Channel::Email, start, "mail-1")).await.unwrap();
        let store = Store::open(&db.url).await.unwrap();
        let failed = || async { store.outbox(&[OutboxStatus::Failed], 10).await.unwrap() };
        eventually(|| async { !failed().await.is_empty() }).await;
        // Hours of virtual time: a retried row would be attempted again and again.
        virtual_sleep(2 * 3600).await;
        bot.stop().await;
        let rows = failed().await;
        let ack = rows.iter().find(|r| r.kind == ActionKind::Acknowledgement).expect("the acknowledgement failed");
        assert_eq!((ack.attempts, ack.last_error.as_deref()), (1, Some("550 no such user")), "{}", db.backend);
        assert!(store.outbox(&[OutboxStatus::Pending], 10).await.unwrap().is_empty(), "{}", db.backend);
        store.close().await;
        // `concierge outbox` lists them with the reason; the report counts them.
        let (_dir, config) =
            crate::helpers::temp_file("c.toml", &format!("[database]\nurl = \"{}\"\n{CONFIG}", db.url));
        let out = crate::helpers::concierge()
            .arg("--config")
            .arg(&config)
            .args(["outbox", "--status", "failed", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<serde_json::Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(!rows.is_empty(), "{}", db.backend);
        assert!(rows.iter().all(|r| r["status"] == "failed" && r["error"] == "550 no such user"), "{rows:?}");
        assert!(rows.iter().any(|r| r["kind"] == "acknowledgement" && r["to"] == "4242"), "{rows:?}");
        let text = crate::helpers::concierge().arg("--config").arg(&config).arg("outbox").output().unwrap();
        assert!(String::from_utf8_lossy(&text.stdout).contains("550 no such user"));
        let report = crate::helpers::concierge()
            .arg("--config")
            .arg(&config)
            .args(["report", "--week", "2026-W48", "--as-of", "2026-11-24T00:00:00Z", "--format", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
        assert_eq!(v["deliveries"]["failed"].as_u64(), Some(rows.len() as u64), "{}: {v}", db.backend);
    }
}

#[tokio::test]
async fn a_second_instance_cannot_take_the_database_until_the_first_has_stopped() {
    for db in databases().await {
        let clock = Clock::virtual_from(ts("2026-11-23T10:00:00Z"), SPEED);
        let first = App::with_channels(config(&db.url), vec![], clock).await.unwrap();
        let second = App::with_channels(config(&db.url), vec![], clock).await;
        let err = second.err().expect("the second instance must not start").to_string();
        let expected = match db.backend {
            "sqlite" => "another `concierge run` is already using the database",
            _ => "another `concierge run` is active on the database",
        };
        assert!(err.contains(expected), "{}: {err}", db.backend);
        // Once the first has stopped (giving up its lock or lease), a new instance starts.
        first.run_until_stopped(async {}).await.unwrap();
        let again = App::with_channels(config(&db.url), vec![], clock).await;
        assert!(again.is_ok(), "{}: {:?}", db.backend, again.err());
    }
}

#[tokio::test]
async fn a_queued_command_that_no_longer_parses_is_marked_failed_with_the_reason() {
    for db in databases().await {
        let clock = Clock::virtual_from(ts("2026-11-23T10:00:00Z"), SPEED);
        let store = Store::open(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO commands (command_key, at, event, done) VALUES ('old-1', 0, '{\"kind\":\"teleport\"}', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        let bot = Bot::start(&db.url, &[], clock).await;
        eventually(|| async { store.command_outcome("old-1").await.unwrap().is_some() }).await;
        bot.stop().await;
        let outcome = store.command_outcome("old-1").await.unwrap();
        let reason = outcome.flatten().expect("marked failed with a reason");
        assert!(reason.contains("does not parse") && reason.contains("teleport"), "{}: {reason}", db.backend);
        assert!(store.pending_commands().await.unwrap().is_empty(), "never retried");
        store.close().await;
    }
}

#[tokio::test]
async fn the_announcement_is_written_in_the_same_transaction_as_the_conversation_it_announces() {
    for db in databases().await {
        let mut config = config(&db.url);
        config.policy.announce.insert(Channel::Email);
        let mut engine = concierge::engine::Engine::start(config, true, ts("2026-11-23T10:00:00Z")).await.unwrap();
        let at = ts("2026-11-23T10:00:00Z");
        let input = customer_message(Channel::Email, at, "mail-1").input;
        // Rolled back: neither the conversation nor its messages exist.
        let mut tx = engine.store.begin().await.unwrap();
        engine.apply(&mut tx, at, input.clone()).await.unwrap();
        tx.rollback().await.unwrap();
        engine.reload(at).await.unwrap();
        assert_eq!(engine.store.count("outbox").await.unwrap(), 0, "{}", db.backend);
        assert_eq!(engine.store.count("conversations").await.unwrap(), 0, "{}", db.backend);
        // Committed: both, together.
        let mut tx = engine.store.begin().await.unwrap();
        engine.apply(&mut tx, at, input).await.unwrap();
        tx.commit().await.unwrap();
        let rows = engine.store.outbox(&[], 10).await.unwrap();
        let kinds: Vec<(ActionKind, Recipient)> = rows.iter().map(|r| (r.kind, r.recipient.clone())).collect();
        assert_eq!(
            kinds,
            [
                (ActionKind::Acknowledgement, Recipient::Customer("4242".into())),
                (ActionKind::Announcement, Recipient::Agents)
            ],
            "{}",
            db.backend
        );
        assert!(rows[1].body.contains("The bot is down"), "{}", rows[1].body);
        engine.store.close().await;
    }
}
