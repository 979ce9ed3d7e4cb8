//! Outages under a running `concierge run`, with the real servers: IMAP down
//! two minutes and SMTP down two minutes (overlapping), PostgreSQL restarted
//! and then stopped for longer than the lease, SQLite on a full disk (a
//! small tmpfs). Nothing is lost, everything is delivered once after
//! recovery, and the log says once that a part is degraded and once that it
//! recovered.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{Running, sqlite};
use crate::mail_servers::MailServers;
use crate::mail_servers::slow_config_file;

fn mail(n: usize) -> String {
    format!(
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: Outage {n}\r\n\
         Message-ID: <outage-{n}@example.test>\r\n\r\nIs order {n} lost?\r\n"
    )
}

/// Waits (up to `secs`) until Ana has the acknowledgement of each of `mails`.
fn acknowledged(servers: &MailServers, mails: std::ops::Range<usize>, secs: u64, bot: &Running) {
    let until = Instant::now() + Duration::from_secs(secs);
    for n in mails {
        let thread = format!("<outage-{n}@example.test>");
        while !servers.delivered("ana").iter().any(|m| m.contains("We have your request") && m.contains(&thread)) {
            assert!(Instant::now() < until, "mail {n} never acknowledged; log:\n{}", bot.log.lock().unwrap());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// Every mail in these mailboxes arrived once (by Message-ID).
fn each_once(servers: &MailServers, users: &[&str]) {
    for user in users {
        let mut ids: Vec<String> = servers
            .delivered(user)
            .iter()
            .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("Message-ID: ")).map(str::to_string))
            .collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all, "{user} got a mail twice");
    }
}

/// Shows what the bot said about its health (in the test's output).
fn show_health(bot: &Running) {
    for line in bot.log.lock().unwrap().lines() {
        if ["degraded", "recovered", "lease", "standing by", "active"].iter().any(|w| line.contains(w)) {
            eprintln!("  {line}");
        }
    }
}

/// How many log lines contain `text`.
fn lines(bot: &Running, text: &str) -> usize {
    bot.log.lock().unwrap().lines().filter(|l| l.contains(text)).count()
}

#[test]
fn imap_and_smtp_each_down_two_minutes_lose_nothing_send_once_and_say_so_once() {
    let Some(mut servers) = MailServers::start() else { return };
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    let bot = Running::start(&slow_config_file(&servers, &db.url, dir.path(), ""), &[]);
    bot.wait_logged("email channel");
    servers.send("ana@example.test", "support@example.test", &mail(0));
    acknowledged(&servers, 0..1, 30, &bot);

    // IMAP goes down for two minutes; a minute in, SMTP goes down for two.
    servers.stop_imap();
    servers.send("ana@example.test", "support@example.test", &mail(1));
    std::thread::sleep(Duration::from_secs(60));
    servers.stop_smtp();
    let smtp_down = std::time::Instant::now();
    // Mail still reaches the mailbox (delivered by another server).
    servers.drop_raw("support", "outage-2", mail(2).as_bytes());
    std::thread::sleep(Duration::from_secs(60));
    servers.start_imap();
    // The bot sees IMAP again within its reconnect backoff (at most 75 s),
    // reads the mail and tries its acknowledgements while SMTP is still down.
    bot.wait_logged_within("email intake recovered", 120);
    servers.drop_raw("support", "outage-3", mail(3).as_bytes());
    bot.wait_logged("email deliveries degraded");
    std::thread::sleep(Duration::from_secs(120).saturating_sub(smtp_down.elapsed()));
    servers.start_smtp();
    acknowledged(&servers, 0..4, 180, &bot);
    std::thread::sleep(Duration::from_secs(3));
    each_once(&servers, &["ana", "sam", "kim"]);
    let announced = servers.delivered("sam").iter().filter(|m| m.contains("] New ticket")).count();
    assert_eq!(announced, 4, "each ticket announced once");
    show_health(&bot);
    let log = bot.log.lock().unwrap().clone();
    for (what, n) in [
        ("email intake degraded", 1),
        ("email intake recovered", 1),
        ("email deliveries degraded", 1),
        ("email deliveries recovered", 1),
    ] {
        assert_eq!(lines(&bot, what), n, "{what:?} logged {n}×:\n{log}");
    }
}

/// A PostgreSQL server of the test's own (it is restarted and stopped, so
/// it cannot be the shared one), on a free port, run by the `postgres` user.
struct OwnPostgres {
    dir: tempfile::TempDir,
    port: u16,
}

/// Debian's PostgreSQL programs (initdb, pg_ctl).
fn pg_bin() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql").ok()?.filter_map(Result::ok).map(|e| e.path().join("bin")).next()
}

impl OwnPostgres {
    fn start() -> Option<OwnPostgres> {
        let bin = pg_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let port = crate::helpers::free_port();
        Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
        let data = dir.path().join("data");
        let ok = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "initdb failed");
        let pg = OwnPostgres { dir, port };
        pg.ctl("start");
        Some(pg)
    }

    fn ctl(&self, action: &str) {
        let bin = pg_bin().unwrap();
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let ok = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &opts, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "-m", "fast", action])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctl {action} failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if let Some(bin) = pg_bin() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn postgresql_restarted_and_then_down_past_the_lease_loses_nothing_and_sends_once() {
    let Some(servers) = MailServers::start() else { return };
    let Some(pg) = OwnPostgres::start() else {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "PostgreSQL is not installed (/usr/lib/postgresql)");
        eprintln!("SKIPPED: PostgreSQL outage (PostgreSQL is not installed)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut bot = Running::start(&slow_config_file(&servers, &pg.url(), dir.path(), ""), &[]);
    bot.wait_logged("email channel");
    servers.send("ana@example.test", "support@example.test", &mail(0));
    acknowledged(&servers, 0..1, 30, &bot);

    // A quick restart: connections drop, the lease survives.
    pg.ctl("restart");
    servers.send("ana@example.test", "support@example.test", &mail(1));
    acknowledged(&servers, 0..2, 120, &bot);

    // Down for longer than the lease: this instance stops acting, stands by
    // until the database is back, then takes the lease again.
    pg.ctl("stop");
    servers.send("ana@example.test", "support@example.test", &mail(2));
    std::thread::sleep(Duration::from_secs(15));
    pg.ctl("start");
    servers.send("ana@example.test", "support@example.test", &mail(3));
    acknowledged(&servers, 0..4, 120, &bot);
    std::thread::sleep(Duration::from_secs(3));
    each_once(&servers, &["ana", "sam", "kim"]);
    assert!(bot.is_running(), "the bot is still running");
    show_health(&bot);
    let log = bot.log.lock().unwrap().clone();
    // The lease lapses once, and the instance is active again once.
    for (what, n) in [
        ("the lease lapsed: this instance stops acting", 1),
        ("no longer active: standing by", 1),
        ("active: this instance holds the lease", 2),
    ] {
        assert_eq!(lines(&bot, what), n, "{what:?} logged {n}×:\n{log}");
    }
    // Each part that noticed says so once, not once per retry.
    for what in ["the database degraded", "email intake degraded", "standing by: cannot reach the database"] {
        assert!(lines(&bot, what) <= 1, "{what:?} logged more than once:\n{log}");
    }
    assert_eq!(lines(&bot, "ping on idle connection"), 0, "the driver's own notes stay out of the log:\n{log}");
}

/// Unmounts a tmpfs when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn sqlite_on_a_full_disk_loses_nothing_and_goes_on_once_there_is_room() {
    let Some(servers) = MailServers::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"]).arg(&disk).status();
    if !mounted.is_ok_and(|s| s.success()) {
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "mounting a tmpfs needs root (CI runs as root)");
        eprintln!("SKIPPED: SQLite on a full disk (mounting a tmpfs needs root)");
        return;
    }
    let _unmount = Tmpfs(disk.clone());
    let url = format!("sqlite://{}", disk.join("concierge.db").display());
    let bot = Running::start(&slow_config_file(&servers, &url, dir.path(), ""), &[]);
    bot.wait_logged("email channel");
    servers.send("ana@example.test", "support@example.test", &mail(0));
    acknowledged(&servers, 0..1, 30, &bot);

    // Fill the disk to the last byte.
    let filler = disk.join("filler");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.write_all(&[0u8; 1]).ok();
        let _ = f.sync_all();
    }
    for n in 1..4 {
        servers.send("ana@example.test", "support@example.test", &mail(n));
    }
    let until = Instant::now() + Duration::from_secs(60);
    while lines(&bot, "degraded") == 0 {
        assert!(Instant::now() < until, "the full disk was never noticed:\n{}", bot.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    // Room again.
    std::fs::remove_file(&filler).unwrap();
    acknowledged(&servers, 0..4, 120, &bot);
    std::thread::sleep(Duration::from_secs(3));
    each_once(&servers, &["ana", "sam", "kim"]);
    show_health(&bot);
    let log = bot.log.lock().unwrap().clone();
    assert!(log.contains("full"), "the log names the cause:\n{log}");
    let degraded = lines(&bot, "degraded");
    assert_eq!(degraded, lines(&bot, "recovered"), "every degraded part recovered:\n{log}");
    assert!(degraded <= 3, "one line per degraded part, not per retry:\n{log}");
}
