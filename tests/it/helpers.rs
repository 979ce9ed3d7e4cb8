//! Test helpers: fresh databases on every backend, and the binary.
//!
//! Every storage test runs on SQLite (a file in a temp dir) and on PostgreSQL
//! (a fresh database per test on the server named by
//! `CONCIERGE_TEST_POSTGRES`, an admin URL such as
//! `postgres://concierge:concierge@127.0.0.1:5432/postgres`; `.ci/run` starts
//! the server and sets it). Without it a test prints a visible skip for
//! PostgreSQL — and fails when `CI=true`, where nothing may be skipped.

use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection as _, Executor as _};

pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh SQLite database file.
pub fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    TestDb { url, backend: "sqlite", _dir: Some(dir) }
}

/// A fresh PostgreSQL database, or `None` (with a visible skip) when no
/// server is configured outside CI.
pub async fn postgres() -> Option<TestDb> {
    let Ok(admin) = std::env::var("CONCIERGE_TEST_POSTGRES") else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CONCIERGE_TEST_POSTGRES is not set, but CI=true: PostgreSQL tests may not be skipped in CI");
        }
        skipped(
            "PostgreSQL",
            "set CONCIERGE_TEST_POSTGRES to an admin URL to run this test's PostgreSQL half (see the README)",
        );
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!(
        "concierge_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    );
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to CONCIERGE_TEST_POSTGRES: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("create test database");
    let base = admin.rsplit_once('/').map(|(b, _)| b).expect("admin URL names a database");
    Some(TestDb { url: format!("{base}/{name}"), backend: "postgres", _dir: None })
}

/// A fresh database on every backend available.
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![sqlite()];
    dbs.extend(postgres().await);
    dbs
}

/// A `concierge` command with no inherited config and a clean environment.
pub fn concierge() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_concierge"));
    cmd.env_remove("CONCIERGE_SECRET").env_remove("CONCIERGE_LOG");
    cmd
}

/// A `concierge run` in the background and everything it has logged so far;
/// killed (SIGCONT, then SIGKILL) when dropped.
pub struct Running {
    pub child: std::process::Child,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    /// `concierge --config CONFIG run` with the test mailbox password and `env`.
    pub fn start(config: &std::path::Path, env: &[(&str, &str)]) -> Running {
        use std::io::BufRead as _;
        let mut child = concierge()
            .arg("--config")
            .arg(config)
            .arg("run")
            .env("CONCIERGE_TEST_SUPPORT_PASSWORD", crate::mail_servers::PASSWORD)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = std::io::BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in err.lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Running { child, log }
    }

    pub fn logged(&self, what: &str) -> bool {
        self.log.lock().unwrap().contains(what)
    }

    /// Waits (up to 60 s) until the log contains `what`.
    pub fn wait_logged(&self, what: &str) {
        self.wait_logged_within(what, 60);
    }

    /// Waits up to `secs` until the log contains `what`.
    pub fn wait_logged_within(&self, what: &str, secs: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.logged(what) {
            assert!(std::time::Instant::now() < until, "never logged {what:?}:\n{}", self.log.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal such as `-KILL` or `-STOP`.
    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = std::process::Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Writes `text` to a file in a new temp dir; returns the dir and the path.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    (dir, path)
}

/// Open around the clock in UTC with a 6 s first-response target, the
/// warning at 50% and one escalation 3 s after the breach: end-to-end tests
/// see every nudge within seconds.
pub const FAST_SLA: &str = r#"[business_hours]
time_zone = "UTC"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
[sla]
first_response = "6s"
warn_at = "50%"
escalate_after = "3s"
[http]
listen = "127.0.0.1:0"
"#;

/// Skips counted per kind, for the line printed when the test binary ends.
static SKIPS: std::sync::Mutex<Vec<(&'static str, &'static str)>> = std::sync::Mutex::new(Vec::new());

/// Says, past libtest's output capture (so it shows in a plain `cargo
/// test`), that a test skipped its part needing `what`, and counts it.
pub fn skipped(what: &'static str, how: &'static str) {
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED ({what}) in {test}: {how}");
    SKIPS.lock().unwrap_or_else(|e| e.into_inner()).push((what, how));
}

/// Runs when the test binary exits: one line per kind of skip.
extern "C" fn skip_summary() {
    use std::io::Write as _;
    let skips = SKIPS.lock().unwrap_or_else(|e| e.into_inner());
    let mut kinds: Vec<(&str, &str)> = skips.clone();
    kinds.sort();
    kinds.dedup();
    for (what, how) in kinds {
        let n = skips.iter().filter(|(w, _)| *w == what).count();
        let _ = writeln!(std::io::stderr(), "\n{n} test(s) SKIPPED their {what} part: {how}");
    }
}

// libtest has no end-of-run hook: a function in `.fini_array` runs at exit.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".fini_array")]
static SKIP_SUMMARY: extern "C" fn() = skip_summary;

/// A loopback port nothing listens on now, never handed out before in this
/// process: tests run in parallel, and a port released here and handed to
/// two servers (two Postfixes; the second fails to bind and the first one's
/// answers mislead its test) made a test's mail server vanish when another
/// test stopped its own.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
