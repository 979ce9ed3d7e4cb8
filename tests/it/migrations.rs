//! Upgrades of a database written by an earlier version: what it held is
//! still there, in the new shape, on both backends (and written in that
//! shape from then on).

use std::borrow::Cow;

use concierge::store::Store;
use sqlx::Row as _;

use crate::helpers::databases;

/// Applies the migrations up to `version` only, as an older concierge did.
async fn migrated_up_to(url: &str, version: i64) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = if url.starts_with("sqlite:") { format!("{url}?mode=rwc") } else { url.to_string() };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.migrations = Cow::Owned(migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect());
    migrator.run(&pool).await.unwrap();
    pool
}

#[tokio::test]
async fn reply_checks_move_onto_their_messages_and_none_is_lost() {
    for db in databases().await {
        let pool = migrated_up_to(&db.url, 18).await;
        for sql in [
            "INSERT INTO messages (id, conversation, at, role, author_id, author_name, body) VALUES \
             ('email:m1', 'email:T1', 100, 'customer', 'ana@example.com', 'Ana', 'help'), \
             ('email:m2', 'email:T1', 200, 'agent', 'sam', 'Sam', 'Hi Ana, fixed. Sam'), \
             ('email:m3', 'email:T1', 300, 'agent', 'lee', 'Lee', 'done')",
            "INSERT INTO reply_checks (message_id, conversation, agent, at, first_reply, late, score, passed, overridden) \
             VALUES ('email:m2', 'email:T1', 'sam', 200, 1, 0, 100, 1, 0), \
             ('email:m3', 'email:T1', 'lee', 300, 0, 1, 40, 0, 1), \
             ('email:gone', 'email:T2', 'kim', 400, 1, 1, 70, 1, 0)",
        ] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;

        let store = Store::open(&db.url).await.unwrap();
        assert!(store.newly_migrated().iter().any(|m| m.contains("checks on messages")), "{}", db.backend);
        let rows = sqlx::query(
            "SELECT id, conversation, at, role, author_id, body, check_first, check_late, check_score, check_passed, \
             check_overridden FROM messages ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let got: Vec<String> = rows
            .iter()
            .map(|r| {
                let n = |c: &str| r.get::<Option<i64>, _>(c).map_or("-".to_string(), |v| v.to_string());
                format!(
                    "{} {} {} {} {} {:?} {} {} {} {} {}",
                    r.get::<String, _>("id"),
                    r.get::<String, _>("conversation"),
                    r.get::<i64, _>("at"),
                    r.get::<String, _>("role"),
                    r.get::<String, _>("author_id"),
                    r.get::<String, _>("body"),
                    n("check_first"),
                    n("check_late"),
                    n("check_score"),
                    n("check_passed"),
                    n("check_overridden"),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                // A check whose message was never stored keeps its figures.
                r#"email:gone email:T2 400 agent kim "" 1 1 70 1 0"#,
                r#"email:m1 email:T1 100 customer ana@example.com "help" - - - - -"#,
                r#"email:m2 email:T1 200 agent sam "Hi Ana, fixed. Sam" 1 0 100 1 0"#,
                r#"email:m3 email:T1 300 agent lee "done" 0 1 40 0 1"#,
            ],
            "{}",
            db.backend
        );
        let old = sqlx::query("SELECT COUNT(*) FROM reply_checks").fetch_one(store.pool()).await;
        assert!(old.is_err(), "the table is gone on {}", db.backend);
        store.close().await;
    }
}

/// The same guarantee when writing: a reply check whose message is not in
/// its batch (never the router's way, but the store does not rely on it)
/// keeps its figures on a message row with no text, beside a checked reply
/// written with its message.
#[tokio::test]
async fn a_check_written_without_its_message_keeps_its_figures() {
    use concierge::core::router::{Author, Channel, Input, Message, ReplyCheck, Role, Step};
    use concierge::core::rules::CheckResult;
    use concierge::store::Batch;

    for db in databases().await {
        let store = Store::open(&db.url).await.unwrap();
        let at: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let check = |id: &str, score: u32| ReplyCheck {
            message_id: id.into(),
            conversation: "email:T1".into(),
            agent: "sam".into(),
            at,
            first: true,
            late: false,
            overridden: false,
            result: CheckResult { score, passed: true, findings: Vec::new() },
        };
        let reply = Input::Message(Message {
            channel: Channel::Email,
            thread: "T1".into(),
            id: "m1".into(),
            author: Author { role: Role::Agent, id: "sam".into(), name: Some("Sam".into()) },
            text: "Hi Ana, fixed. Sam".into(),
        });
        let mut batch = Batch::new(false);
        batch.record_input(at, "email:m1", reply);
        batch.record_step(Step { check: Some(check("m1", 90)), ..Step::default() });
        batch.record_step(Step { check: Some(check("lost", 60)), ..Step::default() });
        let mut tx = store.begin().await.unwrap();
        store.flush(&mut tx, &batch).await.unwrap();
        tx.commit().await.unwrap();
        let rows = sqlx::query("SELECT id, author_id, body, check_score FROM messages ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        let got: Vec<(String, String, String, Option<i64>)> =
            rows.iter().map(|r| (r.get("id"), r.get("author_id"), r.get("body"), r.get("check_score"))).collect();
        assert_eq!(
            got,
            [
                ("email:lost".into(), "sam".into(), String::new(), Some(60)),
                ("email:m1".into(), "sam".into(), "Hi Ana, fixed. Sam".into(), Some(90)),
            ],
            "{}",
            db.backend
        );
        store.close().await;
    }
}
