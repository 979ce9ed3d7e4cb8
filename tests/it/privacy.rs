//! Data protection on every backend: `concierge forget --customer` removes
//! a customer's address, name and words from every table while the reports
//! stay exactly as they were, both offline and through a running bot (which
//! must not write them back from memory); `[data] keep_messages` purges old
//! message text, reports unchanged.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row as _;

use concierge::app::App;
use concierge::channels::ChannelAdapter;
use concierge::config::Config;
use concierge::core::router::{Author, Channel, Input, Message, Role};
use concierge::driver::{Clock, Inbound};
use concierge::store::Store;

use crate::app::{Mode, TestChannel};
use crate::helpers::{concierge, databases, temp_file};

/// Every text value in every table, as one string per row.
async fn all_text(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "conversations",
        "messages",
        "surveys",
        "outbox",
        "findings",
        "processed_inputs",
        "commands",
        "discord_tickets",
        "email_message_ids",
    ] {
        let rows = sqlx::query(&format!("SELECT * FROM {table}")).fetch_all(store.pool()).await.unwrap();
        for r in rows {
            let mut line = String::new();
            for i in 0..r.len() {
                if let Ok(Some(s)) = r.try_get::<Option<String>, _>(i) {
                    line.push_str(&s);
                    line.push(' ');
                }
            }
            out.push(format!("{table}: {line}"));
        }
    }
    out
}

fn reports(config: &std::path::Path) -> Vec<Value> {
    ["2026-W46", "2026-W47"]
        .iter()
        .map(|w| {
            let o = concierge()
                .arg("--config")
                .arg(config)
                .args(["report", "--week", w, "--format", "json", "--as-of", "2026-11-23T17:00:00Z"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            serde_json::from_slice(&o.stdout).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn forgetting_a_customer_leaves_no_trace_of_them_and_the_reports_unchanged() {
    for db in databases().await {
        let o = concierge().args(["demo", "--database", &db.url]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let printed = concierge().args(["demo", "--print-config"]).output().unwrap();
        let text = String::from_utf8_lossy(&printed.stdout).replace("sqlite://demo.db", &db.url);
        let (_dir, config) = temp_file("c.toml", &text);
        let store = Store::open(&db.url).await.unwrap();
        // A customer with a detractor's comment, and one on Discord.
        let row = sqlx::query(
            "SELECT c.customer_id, c.customer_name FROM surveys s JOIN conversations c ON c.id = s.conversation \
             WHERE s.comment IS NOT NULL AND c.channel = 'email' ORDER BY s.id LIMIT 1",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        let (customer, name): (String, String) = (row.get(0), row.get(1));
        let discord: String =
            sqlx::query("SELECT customer_id FROM conversations WHERE channel = 'discord' ORDER BY id LIMIT 1")
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get(0);
        let before = reports(&config);
        assert!(all_text(&store).await.iter().any(|l| l.contains(&customer)));

        for who in [customer.as_str(), discord.as_str()] {
            let o = concierge().arg("--config").arg(&config).args(["forget", "--customer", who]).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() && err.contains("the figures stay"), "{err}");
            assert!(!err.contains(&customer), "the address is not printed: {err}");
        }
        let left: Vec<String> =
            all_text(&store).await.into_iter().filter(|l| l.contains(&customer) || l.contains(&discord)).collect();
        assert!(left.is_empty(), "{}: {left:#?}", db.backend);
        // (The demo reuses names, so "Ines Duarte" may be another customer:
        // what is checked is that the forgotten ones have no name.)
        let named: i64 = sqlx::query(
            "SELECT COUNT(*) FROM conversations WHERE customer_id LIKE 'forgotten-%' AND customer_name IS NOT NULL",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
        assert_eq!(named, 0, "{}: {name} is gone", db.backend);
        // Nothing they wrote, nor anything written to them, is left.
        let texts: i64 = sqlx::query(
            "SELECT COUNT(*) FROM messages m JOIN conversations c ON c.id = m.conversation \
             WHERE c.customer_id LIKE 'forgotten-%' AND m.body <> ''",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get(0);
        assert_eq!(texts, 0, "{}", db.backend);
        assert_eq!(reports(&config), before, "{}: the figures stay", db.backend);
        // Forgetting someone unknown changes nothing and says so.
        let o = concierge()
            .arg("--config")
            .arg(&config)
            .args(["forget", "--customer", "nobody@example.test"])
            .output()
            .unwrap();
        assert!(o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nothing is stored"));

        // keep_messages: old text goes, the figures stay.
        assert!(store.purge_text("2026-11-24T00:00:00Z".parse().unwrap()).await.unwrap() > 0);
        let bodies: i64 =
            sqlx::query("SELECT COUNT(*) FROM messages WHERE body <> ''").fetch_one(store.pool()).await.unwrap().get(0);
        assert_eq!(bodies, 0, "{}", db.backend);
        assert_eq!(reports(&config), before, "{}: purged text changes no figure", db.backend);
        store.close().await;
    }
}

fn message(role: Role, thread: &str, id: &str, at: jiff::Timestamp) -> Inbound {
    let author = match role {
        Role::Customer => Author { role, id: "ana@example.test".into(), name: Some("Ana Lima".into()) },
        Role::Agent => Author { role, id: "sam".into(), name: Some("Sam".into()) },
    };
    Inbound::new(
        at,
        Input::Message(Message {
            channel: Channel::Email,
            thread: thread.into(),
            id: id.into(),
            author,
            text: if role == Role::Agent { "Fixed now. Best, Sam" } else { "Hi, my invoice is wrong" }.into(),
        }),
    )
}

#[tokio::test]
async fn a_running_bot_forgets_a_customer_and_does_not_write_them_back_from_memory() {
    for db in databases().await {
        let start: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let clock = Clock::virtual_from(start, 60);
        let email = TestChannel::new(Channel::Email, Mode::Works, clock);
        let text = "[http]\nenabled = false\n[data]\nkeep_messages = \"400d\"\n";
        let mut config = Config::parse(text, "test", None).unwrap();
        config.database_url = db.url.clone();
        let adapters: Vec<Arc<dyn ChannelAdapter>> = vec![Arc::new(email.clone())];
        let app = App::with_channels(config, adapters, clock).await.unwrap();
        let store = app.store().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        email.send.send(message(Role::Customer, "t1", "m1", clock.now())).await.unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        while !store.knows_customer("ana@example.test").await.unwrap() {
            assert!(std::time::Instant::now() < give_up);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_dir, config) = temp_file("c.toml", &format!("[database]\nurl = \"{}\"\n", db.url));
        // The command waits for the bot: run it off this test's runtime thread.
        let path = config.clone();
        let o = tokio::task::spawn_blocking(move || {
            concierge().arg("--config").arg(&path).args(["forget", "--customer", "ana@example.test"]).output().unwrap()
        })
        .await
        .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains("applied by the running bot"), "{}: {err}", db.backend);
        // The bot changes the conversation again: the customer stays forgotten.
        email.send.send(message(Role::Agent, "t1", "m2", clock.now())).await.unwrap();
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let first: Option<String> = sqlx::query("SELECT first_reply_by FROM conversations WHERE id = 'email:t1'")
                .fetch_one(store.pool())
                .await
                .unwrap()
                .get(0);
            if first.is_some() {
                break;
            }
            assert!(std::time::Instant::now() < give_up);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<String> = all_text(&store)
            .await
            .into_iter()
            .filter(|l| l.contains("ana@example.test") || l.contains("Ana"))
            .collect();
        assert!(left.is_empty(), "{}: {left:#?}", db.backend);
        stop.send(()).unwrap();
        bot.await.unwrap().unwrap();
    }
}
