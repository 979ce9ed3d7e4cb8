//! The live driver on a fast virtual clock: timers to the second, delivery
//! through the outbox, retry after failure and restart without loss.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;

use concierge::config::Config;
use concierge::core::router::{Author, Channel, Input, Message, Role};
use concierge::driver::{self, Clock, Inbound, Outbound};
use concierge::engine::Engine;
use concierge::store::OutboxItem;

use crate::helpers::databases;

/// (kind, recipient, the action's instant, when it was delivered, outbox key)
type Delivery = (String, String, Timestamp, Timestamp, String);

/// Records deliveries; fails the first `fail_first` attempts.
#[derive(Clone, Default)]
struct Recorder {
    delivered: Arc<Mutex<Vec<Delivery>>>,
    fail_first: Arc<Mutex<usize>>,
    clock: Arc<Mutex<Option<Clock>>>,
}

impl Outbound for Recorder {
    async fn deliver(&self, item: &OutboxItem) -> Result<(), String> {
        let mut fail = self.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err("connection refused".into());
        }
        let now = self.clock.lock().unwrap().expect("clock set").now();
        self.delivered.lock().unwrap().push((
            item.kind.clone(),
            item.recipient.clone(),
            item.at,
            now,
            item.key.clone(),
        ));
        Ok(())
    }
}

/// One virtual hour per real second.
const SPEED: u32 = 3600;

/// Sleeps for `secs` of virtual time.
async fn virtual_sleep(secs: u64) {
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
"#;

fn config(url: &str) -> Config {
    let mut c = Config::parse(CONFIG, "test", None).unwrap();
    c.database_url = url.into();
    c
}

/// A driver running in the background on `url`.
struct Bot {
    inbox: mpsc::Sender<Inbound>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bot {
    async fn start(url: &str, rec: &Recorder, clock: Clock) -> Bot {
        let engine = Engine::start(config(url), true).await.unwrap();
        let (inbox, rx) = mpsc::channel(8);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(driver::run(engine, rec.clone(), rx, clock, async {
            let _ = stopped.await;
        }));
        Bot { inbox, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn customer_message(at: Timestamp) -> Inbound {
    Inbound::new(at, customer_input())
}

fn customer_input() -> Input {
    Input::Message(Message {
        channel: Channel::Discord,
        thread: "chan-1".into(),
        id: "m1".into(),
        author: Author { role: Role::Customer, id: "4242".into(), name: Some("Ana".into()) },
        text: "The bot is down".into(),
    })
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_driver_acknowledges_at_once_and_nudges_at_the_due_instants() {
    for db in databases().await {
        let start = ts("2026-11-23T10:00:00Z"); // Monday 10:00 UTC
        let clock = Clock::virtual_from(start, SPEED);
        let rec = Recorder::default();
        *rec.clock.lock().unwrap() = Some(clock);
        let bot = Bot::start(&db.url, &rec, clock).await;
        bot.inbox.send(customer_message(start)).await.unwrap();
        virtual_sleep(3 * 3600).await;
        bot.stop().await;
        let got = rec.delivered.lock().unwrap().clone();
        for (kind, _, at, delivered, _) in &got {
            let lag = delivered.as_second() - at.as_second();
            // Never early; late only by processing time (a real second is a
            // virtual hour here, so a loaded machine shows minutes).
            assert!((0..3600).contains(&lag), "{kind} due {at} delivered {delivered}");
        }
        let kinds: Vec<(&str, &str, Timestamp)> =
            got.iter().map(|(k, to, at, _, _)| (k.as_str(), to.as_str(), *at)).collect();
        assert_eq!(
            kinds,
            vec![
                ("acknowledgement", "4242", start),
                ("nudge_warning", "agents", ts("2026-11-23T10:45:00Z")),
                ("nudge_breach", "agents", ts("2026-11-23T11:00:00Z")),
                ("escalation", "managers", ts("2026-11-23T12:00:00Z")),
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
        let rec = Recorder::default();
        *rec.clock.lock().unwrap() = Some(clock);
        *rec.fail_first.lock().unwrap() = 1_000; // the channel is down for now
        let bot = Bot::start(&db.url, &rec, clock).await;
        bot.inbox.send(customer_message(start)).await.unwrap();
        virtual_sleep(60).await;
        bot.stop().await;
        assert!(rec.delivered.lock().unwrap().is_empty());

        // Restart with the channel back: the queued acknowledgement goes out
        // once, and the warning still fires at its instant.
        *rec.fail_first.lock().unwrap() = 0;
        let bot = Bot::start(&db.url, &rec, clock).await;
        let warned = |rec: &Recorder| rec.delivered.lock().unwrap().iter().any(|d| d.0 == "nudge_warning");
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while !warned(&rec) && std::time::Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bot.stop().await;
        let got = rec.delivered.lock().unwrap().clone();
        let of = |kind: &str| got.iter().filter(|d| d.0 == kind).collect::<Vec<_>>();
        assert_eq!(of("acknowledgement").len(), 1, "{}: {got:?}", db.backend);
        let warning = of("nudge_warning");
        assert_eq!(warning.len(), 1, "{}: {got:?}", db.backend);
        assert_eq!(warning[0].2, ts("2026-11-23T10:45:00Z"), "{}", db.backend);
        let mut keys: Vec<&str> = got.iter().map(|d| d.4.as_str()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), got.len(), "nothing is delivered twice: {got:?}");
    }
}
