//! Several `concierge run` on one PostgreSQL database: one active, the
//! others standing by; the active one killed (SIGKILL) or paused (SIGSTOP)
//! under mail traffic through the real Dovecot and Postfix. A standby takes
//! over; every mail is stored once and acknowledged once; a paused old
//! leader, resumed, neither writes nor sends.

use std::time::{Duration, Instant};

use crate::helpers::{Running as Instance, postgres};
use crate::mail_servers::MailServers;

fn customer_mail(servers: &MailServers, n: usize) {
    let raw = format!(
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Order {n} is late\r\n\
         Message-ID: <failover-{n}@example.test>\r\n\r\nWhere is order {n}?\r\n"
    );
    servers.send("ana@example.test", "support@example.test", &raw);
}

/// Waits until each of `orders` has been acknowledged to Ana (the reply
/// threads to her mail's Message-ID), then a while longer for any
/// duplicate, and checks there is exactly one each.
fn acknowledged_once(servers: &MailServers, orders: std::ops::Range<usize>, instances: &[&Instance]) {
    for n in orders.clone() {
        let subject = format!("<failover-{n}@example.test>");
        let until = Instant::now() + Duration::from_secs(60);
        while !servers.delivered("ana").iter().any(|m| m.contains(&subject)) {
            if Instant::now() > until {
                let logs: Vec<String> = instances.iter().map(|i| i.log.lock().unwrap().clone()).collect();
                panic!("order {n} never acknowledged; logs:\n{}", logs.join("\n-----\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    let delivered = servers.delivered("ana");
    for n in orders {
        let subject = format!("<failover-{n}@example.test>");
        let acks = delivered.iter().filter(|m| m.contains(&subject)).count();
        assert_eq!(acks, 1, "order {n} acknowledged exactly once");
    }
}

fn stored_once(db_url: &str, orders: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (conversations, messages, acks): (i64, i64, i64) = rt.block_on(async {
        let store = concierge::store::Store::open(db_url).await.unwrap();
        let one = |sql: &'static str| {
            let pool = store.pool().clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
        };
        let c = one("SELECT COUNT(*) FROM conversations").await;
        let m = one("SELECT COUNT(*) FROM messages").await;
        let a = one("SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement' AND status = 'delivered'").await;
        store.close().await;
        (c, m, a)
    });
    assert_eq!((conversations, messages, acks), (orders as i64, orders as i64, orders as i64));
}

/// A PostgreSQL database, the mail servers, and a configuration for both
/// (a long first-response target: only acknowledgements are sent).
fn setup() -> Option<(crate::helpers::TestDb, MailServers, tempfile::TempDir, std::path::PathBuf)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(postgres())?;
    let servers = MailServers::start()?;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("concierge.toml");
    let config =
        crate::mail_servers::config(&servers, &db.url).replace("first_response = \"6s\"", "first_response = \"8h\"");
    std::fs::write(&config_path, config).unwrap();
    Some((db, servers, dir, config_path))
}

#[test]
fn the_standby_takes_over_when_the_active_instance_is_killed_and_nothing_is_lost_or_doubled() {
    let Some((db, servers, _dir, config_path)) = setup() else { return };

    let a = Instance::start(&config_path, &[]);
    a.wait_logged("active: this instance holds the lease");
    let b = Instance::start(&config_path, &[]);
    b.wait_logged("standing by: another instance is active");
    assert!(!b.logged("email channel"), "a standby reads no mail");

    for n in 0..5 {
        customer_mail(&servers, n);
    }
    acknowledged_once(&servers, 0..5, &[&a, &b]);
    assert!(!b.logged("active: this instance holds the lease"));

    // The active one dies; mail keeps coming.
    a.signal("-KILL");
    let killed = Instant::now();
    for n in 5..10 {
        customer_mail(&servers, n);
    }
    b.wait_logged("active: this instance holds the lease");
    eprintln!("failover: the standby took over {:.1} s after the kill", killed.elapsed().as_secs_f64());
    acknowledged_once(&servers, 0..10, &[&a, &b]);
    stored_once(&db.url, 10);
}

#[test]
fn a_paused_leader_that_lost_its_lease_neither_writes_nor_sends_when_it_resumes() {
    let Some((db, servers, _dir, config_path)) = setup() else { return };

    let a = Instance::start(&config_path, &[]);
    a.wait_logged("active: this instance holds the lease");
    a.wait_logged("email channel");
    let b = Instance::start(&config_path, &[]);
    b.wait_logged("standing by: another instance is active");
    customer_mail(&servers, 0);
    acknowledged_once(&servers, 0..1, &[&a, &b]);

    // A stops (a long pause, a frozen VM); B takes over; mail arrives.
    a.signal("-STOP");
    b.wait_logged("active: this instance holds the lease");
    for n in 1..4 {
        customer_mail(&servers, n);
    }
    acknowledged_once(&servers, 0..4, &[&a, &b]);
    // A wakes up, finds its lease taken, and stands by without acting.
    a.signal("-CONT");
    a.wait_logged("no longer active: standing by");
    for n in 4..6 {
        customer_mail(&servers, n);
    }
    acknowledged_once(&servers, 0..6, &[&a, &b]);
    stored_once(&db.url, 6);
    assert!(!b.logged("no longer active"), "B stays active");
}
