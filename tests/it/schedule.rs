//! The weekly summary on schedule inside `run`, on a fast virtual clock and
//! every backend: sent once at the local time across a DST change, to every
//! channel that reaches the managers, not again after a restart, and on
//! start when the bot was down at the time.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use concierge::app::App;
use concierge::channels::ChannelAdapter;
use concierge::config::Config;
use concierge::core::router::{ActionKind, Channel};
use concierge::driver::Clock;
use concierge::store::Store;

use crate::app::{Mode, TestChannel};
use crate::helpers::databases;

/// Ten virtual hours per real second.
const SPEED: u32 = 36_000;

const CONFIG: &str = r#"
[business_hours]
time_zone = "America/New_York"
mon = ["09:00-17:00"]
[reports]
weekly_at = "mon 09:00"
[http]
enabled = false
"#;

/// Runs the app from `start` until `done` holds of the summaries queued
/// (their outbox key and due instant), then stops it and returns them.
async fn run_from(
    url: &str,
    start: &str,
    done: impl Fn(&[(String, Timestamp)]) -> bool,
) -> (Vec<(String, Timestamp)>, Vec<ActionKind>) {
    let clock = Clock::virtual_from(start.parse().unwrap(), SPEED);
    let email = TestChannel::new(Channel::Email, Mode::Works, clock);
    let discord = TestChannel::new(Channel::Discord, Mode::Works, clock);
    let mut config = Config::parse(CONFIG, "test", None).unwrap();
    config.database_url = url.to_string();
    let adapters: Vec<Arc<dyn ChannelAdapter>> = vec![Arc::new(email.clone()), Arc::new(discord.clone())];
    let app = App::with_channels(config, adapters, clock).await.unwrap();
    let store = app.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let bot = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    let mut summaries = summaries(&store).await;
    while !done(&summaries) {
        assert!(std::time::Instant::now() < give_up, "gave up waiting: {summaries:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        summaries = summaries_of(&store).await;
    }
    // A moment more: nothing else may follow.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let summaries = summaries_of(&store).await;
    stop.send(()).unwrap();
    bot.await.unwrap().unwrap();
    let kinds = email.kinds().into_iter().chain(discord.kinds()).map(|k| k.0).collect();
    (summaries, kinds)
}

async fn summaries(store: &Store) -> Vec<(String, Timestamp)> {
    summaries_of(store).await
}

async fn summaries_of(store: &Store) -> Vec<(String, Timestamp)> {
    let mut rows: Vec<(String, Timestamp)> = store
        .outbox(&[], 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == ActionKind::Summary)
        .map(|i| (i.key, i.at))
        .collect();
    rows.sort();
    rows
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_summary_goes_out_once_a_week_at_local_time_across_dst_restarts_and_downtime() {
    for db in databases().await {
        // Saturday 31 October 2026, EDT; clocks go back on Sunday. The first
        // start sends nothing for the weeks before it.
        let (rows, kinds) = run_from(&db.url, "2026-10-31T12:00:00Z", |r| r.len() == 2).await;
        // Monday 2 November 09:00 EST is 14:00 UTC (it was 13:00 the week before).
        let w44 = ts("2026-11-02T14:00:00Z");
        assert_eq!(
            rows,
            vec![("summary/2026-W44".to_string(), w44), ("summary/2026-W44/discord".to_string(), w44)],
            "{}",
            db.backend
        );
        assert_eq!(kinds.iter().filter(|k| **k == ActionKind::Summary).count(), 2, "delivered on both channels");

        // A restart the same day sends nothing again.
        let (again, _) = run_from(&db.url, "2026-11-02T15:00:00Z", |_| true).await;
        assert_eq!(again, rows, "{}", db.backend);

        // Down over Monday 9 November 09:00: sent on start, for that week.
        let (after, _) = run_from(&db.url, "2026-11-10T12:00:00Z", |r| r.len() == 4).await;
        let w45 = ts("2026-11-09T14:00:00Z");
        assert_eq!(
            after[2..],
            [("summary/2026-W45".to_string(), w45), ("summary/2026-W45/discord".to_string(), w45)],
            "{}",
            db.backend
        );
    }
}
