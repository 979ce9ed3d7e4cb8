//! End-to-end latency (BENCHMARKS.md): from a customer's mail landing in the
//! support mailbox to concierge's acknowledgement landing in the customer's
//! mailbox, under steady traffic (200 mails a minute for 2 minutes by
//! default), through the real Postfix and Dovecot the tests start on
//! loopback. Beside it, the physical reference: the mail system's own hop
//! for the same mails (SMTP submission to the support mailbox), which the
//! acknowledgement makes once more on its way out.
//!
//! `cargo bench --bench latency` as root with Dovecot and Postfix installed
//! (`.ci/run` installs them). `LATENCY_RATE` (mails a minute) and
//! `LATENCY_MINUTES` change the load. Instants are the mail files' own
//! modification times (written once by Postfix's delivery), so the figures
//! do not include this program's polling.

#[path = "../tests/it/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "../tests/it/mail_servers.rs"]
#[allow(dead_code)]
mod mail_servers;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use helpers::Running;
use mail_servers::MailServers;

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    let head = mail.split("\r\n\r\n").next().unwrap_or(mail);
    head.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(": ")).map(str::trim)
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
fn ms(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// p50, p99 and max of `v` (sorted here).
fn percentiles(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99), v[v.len() - 1])
}

fn main() {
    let rate = env_or("LATENCY_RATE", 200.0);
    let minutes = env_or("LATENCY_MINUTES", 2.0);
    let mails = (rate * minutes).round() as usize;
    let gap = Duration::from_secs_f64(60.0 / rate);
    let Some(servers) = MailServers::start() else {
        eprintln!("latency: needs root, Dovecot and Postfix (see .ci/run)");
        std::process::exit(2);
    };
    let db = helpers::sqlite();
    let dir = tempfile::tempdir().unwrap();
    // An 8-hour target: acknowledgements and announcements, no nudges.
    let config = mail_servers::slow_config_file(&servers, &db.url, dir.path(), "");
    let bot = Running::start(&config, &[("CONCIERGE_LOG", "warn")]);
    let customer = |n: usize| if n.is_multiple_of(2) { "ana" } else { "bob" };
    let id = |n: usize| format!("<latency-{n}@example.test>");
    let acked = |user: &str| -> HashMap<String, SystemTime> {
        servers
            .delivered_at(user)
            .into_iter()
            .filter_map(|(at, m)| Some((header(&m, "In-Reply-To")?.to_string(), at)))
            .collect()
    };
    let send = |n: usize| {
        let who = customer(n);
        let raw = format!(
            "From: {who} <{who}@example.test>\r\nTo: support@example.test\r\nSubject: Order {n}\r\n\
             Message-ID: {}\r\n\r\nWhere is order {n}? It was due last week.\r\n",
            id(n)
        );
        servers.send(&format!("{who}@example.test"), "support@example.test", &raw);
    };
    // Warm-up: one mail through, so the bot is connected and idling.
    send(mails);
    let until = Instant::now() + Duration::from_secs(60);
    while !acked("bob").contains_key(&id(mails)) && !acked("ana").contains_key(&id(mails)) {
        assert!(Instant::now() < until, "no acknowledgement within a minute:\n{}", bot.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("latency: {mails} mails at {rate} a minute ({:.0} ms apart)", gap.as_secs_f64() * 1000.0);
    let started = Instant::now();
    let mut submitted = Vec::with_capacity(mails);
    for n in 0..mails {
        let next = started + gap * n as u32;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        submitted.push(SystemTime::now());
        send(n);
    }
    // Every acknowledgement, or two minutes after the last mail.
    let until = Instant::now() + Duration::from_secs(120);
    let mut arrived = HashMap::new();
    let acks = loop {
        let mut acks = acked("ana");
        acks.extend(acked("bob"));
        let done = (0..mails).all(|n| acks.contains_key(&id(n)));
        if done || Instant::now() > until {
            break acks;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for (at, m) in servers.delivered_at("support") {
        if let Some(mid) = header(&m, "Message-ID") {
            arrived.entry(mid.to_string()).or_insert(at);
        }
    }
    let (mut ours, mut hop) = (Vec::new(), Vec::new());
    for (n, &sent) in submitted.iter().enumerate() {
        let (Some(&arrival), Some(&ack)) = (arrived.get(&id(n)), acks.get(&id(n))) else { continue };
        ours.push(ms(arrival, ack));
        hop.push(ms(sent, arrival));
    }
    let missing = mails - ours.len();
    drop(bot);
    assert!(!ours.is_empty(), "no mail was acknowledged");
    let (p50, p99, max) = percentiles(&mut ours);
    let (r50, r99, rmax) = percentiles(&mut hop);
    println!(
        "figure                                              concierge               reference (one SMTP hop)  goal"
    );
    println!(
        "latency: mailbox -> acknowledgement p50/p99/max    {p50:.0} / {p99:.0} / {max:.0} ms    {r50:.0} / {r99:.0} / {rmax:.0} ms    (p50/p99 reported)"
    );
    println!("latency: mails acknowledged                         {} of {mails}", ours.len());
    if missing > 0 {
        eprintln!("latency: {missing} mails unacknowledged after two minutes");
        std::process::exit(1);
    }
}
