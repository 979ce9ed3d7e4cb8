//! `concierge bench`: measures concierge beside its physical reference on
//! the same data in the same run, and prints figures and ratios. Nothing
//! here asserts a time: goals are printed beside the figures, and
//! `BENCHMARKS.md` records a run. The data comes from [`generate`].
//!
//! Each benchmark runs on a fresh database: a SQLite file in a temporary
//! folder, or, with `--postgres ADMIN_URL`, a PostgreSQL database created
//! for the run and dropped after it.

pub mod generate;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sqlx::{Connection as _, Executor as _};

use crate::config::Config;
use crate::core::report::Week;
use crate::core::rules::RuleSet;
use crate::engine::Engine;
use crate::store::{Backend, Batch, Store};

/// One printed figure: what was measured, its value, the reference's and
/// the goal.
#[derive(Debug, Clone)]
pub struct Figure {
    pub what: String,
    pub value: String,
    pub reference: String,
    pub goal: String,
}

impl Figure {
    fn new(
        what: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        goal: impl Into<String>,
    ) -> Figure {
        Figure { what: what.into(), value: value.into(), reference: reference.into(), goal: goal.into() }
    }
}

/// Figures as an aligned table.
pub fn table(figures: &[Figure]) -> String {
    let w = |f: fn(&Figure) -> &str, head: &str| {
        figures.iter().map(|x| f(x).chars().count()).max().unwrap_or(0).max(head.len())
    };
    let (a, b, c) = (w(|f| &f.what, "figure"), w(|f| &f.value, "concierge"), w(|f| &f.reference, "reference"));
    let mut out = format!("{:a$}  {:>b$}  {:>c$}  goal\n", "figure", "concierge", "reference");
    for f in figures {
        let _ = writeln!(out, "{:a$}  {:>b$}  {:>c$}  {}", f.what, f.value, f.reference, f.goal);
    }
    out
}

/// Where a benchmark keeps its data: a fresh database, removed afterwards.
pub struct BenchDb {
    pub url: String,
    drop: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl BenchDb {
    /// A fresh SQLite file, or a fresh database on the PostgreSQL server
    /// `admin` names (the role needs CREATEDB).
    pub async fn fresh(admin: Option<&str>, label: &str) -> anyhow::Result<BenchDb> {
        sqlx::any::install_default_drivers();
        let Some(admin) = admin else {
            let dir = TempDir::new(label)?;
            let url = format!("sqlite://{}", dir.0.join("bench.db").display());
            return Ok(BenchDb { url, drop: None, _dir: Some(dir) });
        };
        let name = format!("concierge_bench_{label}_{}", std::process::id());
        let mut conn = sqlx::AnyConnection::connect(admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str()).await?;
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
        conn.close().await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
        Ok(BenchDb { url: format!("{base}/{name}"), drop: Some((admin.to_string(), name)), _dir: None })
    }

    /// Removes the database (a SQLite folder goes when this is dropped).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let Some((admin, name)) = &self.drop {
            let mut conn = sqlx::AnyConnection::connect(admin).await?;
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await?;
            conn.close().await?;
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        if self.drop.is_some() { "PostgreSQL" } else { "SQLite" }
    }
}

/// A folder under the system's temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(label: &str) -> anyhow::Result<TempDir> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let path = std::env::temp_dir().join(format!("concierge-bench-{label}-{:016x}", u64::from_le_bytes(bytes)));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The configuration the benchmarks run with: the demo's team (New York
/// hours, a 1 h first-response target, warnings, escalations, surveys) on
/// `database_url`.
pub fn config(database_url: &str) -> Config {
    let mut c = Config::parse(crate::demo::CONFIG, "built-in demo config", None).expect("the demo config parses");
    c.database_url = database_url.to_string();
    c.policy.announce.clear();
    c
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// `12,345` style.
pub fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ratio(ours: f64, reference: f64) -> String {
    format!("{:.2}", ours / reference.max(1e-12))
}

/// The reply rules: `n` generated replies through the rule set, one core,
/// beside one `RegexSet` pass of the same patterns over the same texts.
pub fn rules(rules: &RuleSet, n: usize, seed: u64) -> Vec<Figure> {
    let replies = generate::replies(n, seed);
    let bytes: usize = replies.iter().map(|r| r.labelled.text.len()).sum();
    let patterns = rules.patterns();
    let set = regex::RegexSetBuilder::new(&patterns)
        .size_limit(1 << 30)
        .dfa_size_limit(1 << 30)
        .build()
        .expect("the rules' patterns compile");
    // Warm both up (lazy DFA caches) on the first thousand.
    for r in replies.iter().take(1000) {
        std::hint::black_box(rules.check(&r.labelled.text, r.labelled.context()));
        std::hint::black_box(set.matches(&r.labelled.text));
    }
    // Three rounds, alternating, the best of each: a busy machine slows a
    // round, never speeds one up.
    let (mut ours, mut raw) = (Duration::MAX, Duration::MAX);
    let mut failed = 0usize;
    for _ in 0..3 {
        let started = Instant::now();
        failed = 0;
        for r in &replies {
            failed += usize::from(!rules.check(&r.labelled.text, r.labelled.context()).passed);
        }
        ours = ours.min(started.elapsed());
        let started = Instant::now();
        let mut hits = 0usize;
        for r in &replies {
            hits += set.matches(&r.labelled.text).iter().count();
        }
        raw = raw.min(started.elapsed());
        std::hint::black_box(hits);
    }
    let (ours_rate, raw_rate) = (per_second(n, ours), per_second(n, raw));
    let poor = replies.iter().filter(|r| r.poor).count();
    vec![
        Figure::new(
            format!("rules: replies/s ({n} replies, {} KB, {poor} poor; {failed} failed)", bytes / 1000),
            thousands(ours_rate),
            format!("{} (RegexSet, {} patterns)", thousands(raw_rate), patterns.len()),
            "≥ 100,000/s on one core",
        ),
        Figure::new("rules: ratio to the raw pass", ratio(ours_rate, raw_rate), "1.00", "≥ 0.5"),
        Figure::new(
            "rules: MB/s",
            format!("{:.1}", bytes as f64 / 1e6 / ours.as_secs_f64().max(1e-9)),
            format!("{:.1}", bytes as f64 / 1e6 / raw.as_secs_f64().max(1e-9)),
            "",
        ),
    ]
}

/// Ingest: `events` generated events (ten per conversation) through router
/// and store, as `concierge replay` applies them, beside a bulk insert of
/// the same input rows into a fresh database of the same kind; `rounds`
/// rounds, alternating, the best of each (a busy machine slows a round,
/// never speeds one up, and on a shared one the reference's commits varied
/// by half from run to run).
pub async fn ingest(events: usize, seed: u64, rounds: usize, admin: Option<&str>) -> anyhow::Result<Vec<Figure>> {
    let conversations = (events / 10).max(1);
    let weeks = (conversations as i64 / 20_000).max(1);
    let start: Timestamp = "2026-01-05T05:00:00Z".parse().expect("valid instant");
    let history = generate::events(conversations, weeks, start, seed);
    let n = history.len();
    let rows: Vec<InputRow> = history.iter().map(InputRow::of).collect();
    let rounds = rounds.max(1);
    let (mut ours, mut bulk) = (Duration::MAX, Duration::MAX);
    let (mut backend, mut actions, mut stored) = ("", 0, 0);
    for _ in 0..rounds {
        let round = ingest_round(history.clone(), admin).await?;
        (backend, actions, stored) = (round.backend, round.actions, round.stored);
        ours = ours.min(round.took);
        bulk = bulk.min(bulk_insert(&rows, admin).await?);
    }
    let (ours_rate, bulk_rate) = (per_second(n, ours), per_second(n, bulk));
    Ok(vec![
        Figure::new(
            format!(
                "ingest {backend}: events/s ({n} events, {conversations} conversations, {actions} actions, \
                 {stored} messages stored; best of {rounds})"
            ),
            thousands(ours_rate),
            format!("{} (bulk insert)", thousands(bulk_rate)),
            if backend == "SQLite" { "≥ 50,000/s on 2 cores" } else { "" },
        ),
        Figure::new(
            format!("ingest {backend}: ratio to the bulk insert"),
            ratio(ours_rate, bulk_rate),
            "1.00",
            "≥ 0.3",
        ),
    ])
}

/// One round of concierge's side of [`ingest`].
struct Round {
    backend: &'static str,
    took: Duration,
    actions: usize,
    stored: i64,
}

/// Replays `history` into a fresh database, timed.
async fn ingest_round(history: Vec<crate::replay::Event>, admin: Option<&str>) -> anyhow::Result<Round> {
    let db = BenchDb::fresh(admin, "ingest").await?;
    let backend = db.backend();
    let mut engine = Engine::start(config(&db.url), false, crate::replay::start_of(&history)).await?;
    let started = Instant::now();
    let summary = crate::replay::run(&mut engine, history, None, None).await?;
    let took = started.elapsed();
    let stored = engine.store.count("messages").await?;
    engine.store.close().await;
    db.remove().await?;
    Ok(Round { backend, took, actions: summary.actions, stored })
}

/// The reference: `rows` bulk-inserted into a fresh database in
/// transactions of [`crate::replay::BATCH`], timed.
async fn bulk_insert(rows: &[InputRow], admin: Option<&str>) -> anyhow::Result<Duration> {
    let db = BenchDb::fresh(admin, "bulk").await?;
    let store = Store::open(&db.url).await?;
    sqlx::query(
        "CREATE TABLE bench_inputs (input_key TEXT PRIMARY KEY, at BIGINT NOT NULL, kind TEXT NOT NULL, \
         thread TEXT NOT NULL, author TEXT NOT NULL, body TEXT NOT NULL)",
    )
    .execute(store.pool())
    .await?;
    let started = Instant::now();
    for chunk in rows.chunks(crate::replay::BATCH) {
        // In key order, as the store writes its own rows.
        let mut chunk: Vec<&InputRow> = chunk.iter().collect();
        chunk.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let mut tx = store.begin().await?;
        crate::store::insert_many(
            store.backend(),
            &mut tx,
            "INSERT INTO bench_inputs (input_key, at, kind, thread, author, body)",
            6,
            "",
            &chunk,
            |q, r| q.bind(&r.key).bind(r.at).bind(r.kind).bind(&r.thread).bind(&r.author).bind(&r.body),
        )
        .await?;
        tx.commit().await?;
    }
    let took = started.elapsed();
    store.close().await;
    db.remove().await?;
    Ok(took)
}

/// An input as a flat row, for the bulk-insert reference.
struct InputRow {
    key: String,
    at: i64,
    kind: &'static str,
    thread: String,
    author: String,
    body: String,
}

impl InputRow {
    fn of(e: &crate::replay::Event) -> InputRow {
        use crate::core::router::Input;
        let key = crate::store::input_key(e.at, &e.input);
        let (kind, thread, author, body) = match &e.input {
            Input::Message(m) => ("message", m.thread.clone(), m.author.id.clone(), m.text.clone()),
            Input::Resolve { thread, by, .. } => ("resolve", thread.clone(), by.clone(), String::new()),
            Input::SurveyAnswer { thread, score, .. } => {
                ("survey_answer", thread.clone(), String::new(), score.to_string())
            }
            other => ("other", crate::store::input_conversation(other), String::new(), String::new()),
        };
        InputRow { key, at: e.at.as_second(), kind, thread, author, body }
    }
}

/// Writes `total` conversations of history, `open` of them open with their
/// first response due within `due_spread` seconds after `end`, through the
/// store's batch path, with most detractors' follow-ups closed.
pub async fn write_history(
    store: &Store,
    total: usize,
    open: usize,
    end: Timestamp,
    due_spread: i64,
    seed: u64,
) -> anyhow::Result<()> {
    let weeks = (total as i64 / 20_000).max(1);
    let mut steps = generate::history(total, open, weeks, end, due_spread, seed).peekable();
    let mut closures: Vec<(String, i64)> = Vec::new();
    while steps.peek().is_some() {
        let mut batch = Batch::new(false);
        let mut tx = store.begin().await?;
        for (conversation, step) in steps.by_ref().take(5000) {
            if let Some(s) = &step.survey
                && s.score.is_some_and(|score| score <= 6)
                && let Some(answered) = s.answered_at
                && answered.as_second() < end.as_second() - 14 * 86_400
            {
                closures.push((s.id.clone(), answered.as_second() + 86_400));
            }
            batch.record_conversations([conversation]);
            batch.record_step(step);
        }
        store.flush(&mut tx, &batch).await?;
        crate::store::insert_many(
            store.backend(),
            &mut tx,
            "INSERT INTO followup_closures (survey, closed_at, closed_by, note)",
            4,
            "",
            &closures,
            |q, (survey, at)| q.bind(survey).bind(*at).bind("manager").bind(None::<String>),
        )
        .await?;
        closures.clear();
        tx.commit().await?;
    }
    // The closure instants on the surveys, as `followup done` writes them.
    sqlx::query(
        "UPDATE surveys SET followup_closed_at = \
         (SELECT f.closed_at FROM followup_closures f WHERE f.survey = surveys.id) \
         WHERE id IN (SELECT survey FROM followup_closures)",
    )
    .execute(store.pool())
    .await?;
    // Fresh statistics, as a database that grew over months would have.
    sqlx::query("ANALYZE").execute(store.pool()).await?;
    Ok(())
}

/// A database of generated history: `database` as given (history is
/// written into it first if it has none), or a fresh one (returned, to be
/// removed after).
async fn history_db(
    admin: Option<&str>,
    database: Option<&str>,
    label: &str,
    total: usize,
    open: usize,
) -> anyhow::Result<(Option<BenchDb>, Store)> {
    let fresh = match database {
        Some(_) => None,
        None => Some(BenchDb::fresh(admin, label).await?),
    };
    let url = database.map_or_else(|| fresh.as_ref().map(|d| d.url.clone()).unwrap_or_default(), str::to_string);
    let store = Store::open(&url).await?;
    if store.count("conversations").await? == 0 {
        write_history(&store, total, open, Timestamp::now(), 3600, 1).await?;
    }
    Ok((fresh, store))
}

/// Start-up: what a fresh `concierge run` process does before its first
/// timer is armed, on a database of `total` conversations with `open` open,
/// measured in a child process so its memory is its own.
pub async fn startup(
    total: usize,
    open: usize,
    admin: Option<&str>,
    database: Option<&str>,
) -> anyhow::Result<Vec<Figure>> {
    let (fresh, store) = history_db(admin, database, "startup", total, open).await?;
    let url = fresh.as_ref().map_or_else(|| database.unwrap_or_default().to_string(), |d| d.url.clone());
    let backend = if url.starts_with("sqlite:") { "SQLite" } else { "PostgreSQL" };
    let total = store.count("conversations").await?;
    let open: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM conversations WHERE status = 'open'").fetch_one(store.pool()).await?;
    // The physical reference: the same open rows read by a bare query.
    let started = Instant::now();
    let rows = sqlx::query("SELECT * FROM conversations WHERE status = 'open'").fetch_all(store.pool()).await?;
    let bare = started.elapsed();
    let bare_rows = rows.len();
    drop(rows);
    store.close().await;
    let exe = std::env::current_exe()?;
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe).args(["bench", "startup-probe", "--database", &url]).output()
    })
    .await??;
    if let Some(db) = fresh {
        db.remove().await?;
    }
    anyhow::ensure!(out.status.success(), "the start-up probe failed: {}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ms = probe["ms"].as_f64().unwrap_or(f64::NAN);
    let rss = probe["peak_rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0;
    Ok(vec![
        Figure::new(
            format!("start-up {backend}: to the first timer armed ({total} stored, {open} open)"),
            format!("{ms:.0} ms"),
            format!("{:.0} ms (bare read of {bare_rows} open rows)", bare.as_secs_f64() * 1000.0),
            "< 1 s",
        ),
        Figure::new(
            format!("start-up {backend}: peak RSS ({} in memory, {} timers)", probe["in_memory"], probe["timers"]),
            format!("{rss:.0} MB"),
            "",
            "≤ 100 MB",
        ),
    ])
}

/// The child side of [`startup`]: opens the store, restores open work, and
/// prints `{"ms", "in_memory", "timers", "peak_rss_kb"}` as JSON.
pub async fn startup_probe(database_url: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    let engine = Engine::start(config(database_url), true, Timestamp::now()).await?;
    let first = engine.router.next_deadline();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let value = serde_json::json!({
        "ms": ms,
        "in_memory": engine.router.in_memory(),
        "timers": engine.router.timers_pending(),
        "first_deadline": first.map(|t| t.to_string()),
        "peak_rss_kb": peak_rss_kb(),
    });
    engine.store.close().await;
    Ok(value.to_string())
}

/// This process's peak resident set (VmHWM), in KiB; 0 where /proc has none.
pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Reports: one week's report and the previous week's (what the summary
/// computes) out of `total` conversations, beside a full scan of the
/// conversations table; with the query plans.
pub async fn reports(
    total: usize,
    admin: Option<&str>,
    database: Option<&str>,
) -> anyhow::Result<(Vec<Figure>, String)> {
    let (fresh, store) = history_db(admin, database, "reports", total, total / 10).await?;
    let backend = if store.backend() == Backend::Sqlite { "SQLite" } else { "PostgreSQL" };
    let total = store.count("conversations").await?;
    // The newest conversation's instant stands for "now" in that history.
    let end: i64 = sqlx::query_scalar("SELECT MAX(opened_at) FROM conversations").fetch_one(store.pool()).await?;
    let end = Timestamp::from_second(end)?;
    let hours = config("sqlite::memory:").policy.hours;
    let week = Week::containing(end, hours.time_zone()).previous().previous();
    let started = Instant::now();
    let (report, _) = crate::reports::pair(&store, &hours, week, end).await?;
    let ours = started.elapsed();
    let started = Instant::now();
    let scanned: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM conversations WHERE first_reply_by IS NOT NULL OR assigned IS NOT NULL",
    )
    .fetch_one(store.pool())
    .await?;
    let scan = started.elapsed();
    let mut plans = String::new();
    let (from, to) = week.bounds(hours.time_zone());
    for (what, sql) in crate::store::report_queries(store.backend()) {
        let explain = match store.backend() {
            Backend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
            Backend::Postgres => format!("EXPLAIN {sql}"),
        };
        let mut q = sqlx::query(&explain);
        for n in 1..=sql.matches('$').count() {
            q = q.bind(if n == 2 {
                to.as_second()
            } else if n == 1 {
                from.as_second()
            } else {
                end.as_second()
            });
        }
        let _ = writeln!(plans, "{backend}: {what}");
        for row in q.fetch_all(store.pool()).await? {
            use sqlx::Row as _;
            let line: String = match store.backend() {
                Backend::Sqlite => row.try_get("detail")?,
                Backend::Postgres => row.try_get(0)?,
            };
            let _ = writeln!(plans, "    {line}");
        }
    }
    store.close().await;
    if let Some(db) = fresh {
        db.remove().await?;
    }
    std::hint::black_box(scanned);
    Ok((
        vec![Figure::new(
            format!(
                "reports {backend}: week {week} and the week before ({} conversations that week, {total} stored)",
                report.conversations.opened
            ),
            format!("{:.0} ms", ours.as_secs_f64() * 1000.0),
            format!("{:.0} ms (scan of all conversations)", scan.as_secs_f64() * 1000.0),
            "< 500 ms",
        )],
        plans,
    ))
}

/// The team behind `bench timers`: open around the clock, a ten-minute
/// first-response target with its warning at half time.
const TIMERS_CONFIG: &str = r#"
[business_hours]
time_zone = "UTC"
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
[sla]
first_response = "10m"
warn_at = "50%"
"#;

/// This process's resident set now (VmRSS), in KiB.
fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        let after = s.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
    });
    ticks.unwrap_or(0) as f64 / 100.0
}

/// Timers: `n` open conversations whose warnings fall due over `spread`
/// seconds on the real clock, served by the driver as `concierge run` does
/// (no channels: the outbox rows are the output). Each warning's lateness is
/// from its due instant to the commit of its outbox row; the reference is
/// the due instant itself (0 ms). Then the process's CPU over 10 idle
/// seconds, and its resident memory.
pub async fn timers(n: usize, spread: i64, admin: Option<&str>) -> anyhow::Result<Vec<Figure>> {
    let db = BenchDb::fresh(admin, "timers").await?;
    let backend = db.backend();
    let store = Store::open(&db.url).await?;
    // Due from 30 s after now: time to write them and start.
    let first_due = Timestamp::now().as_second() + 30 + (n as i64 / 20_000);
    let mut steps = generate::awaiting_warnings(n, first_due, spread, 600);
    loop {
        let chunk: Vec<_> = steps.by_ref().take(5000).collect();
        if chunk.is_empty() {
            break;
        }
        let mut batch = Batch::new(true);
        batch.record_conversations(chunk);
        let mut tx = store.begin().await?;
        store.flush(&mut tx, &batch).await?;
        tx.commit().await?;
    }
    store.close().await;
    // Served by a process of its own, so its memory is the bot's, not the
    // generator's.
    let (exe, url) = (std::env::current_exe()?, db.url.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(exe)
            .args(["bench", "timers-probe", "--database", &url])
            .args(["--conversations", &n.to_string(), "--spread", &spread.to_string()])
            .output()
    })
    .await??;
    db.remove().await?;
    anyhow::ensure!(out.status.success(), "the timers probe failed: {}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let ms = |key: &str| format!("{:.0} ms", probe[key].as_f64().unwrap_or(f64::NAN) * 1000.0);
    Ok(vec![
        Figure::new(
            format!("timers {backend}: warnings fired ({} of {n}, due over {spread} s)", probe["fired"]),
            format!("p50 {} p99 {} max {}", ms("p50"), ms("p99"), ms("max")),
            "0 ms (the due instant)",
            "p99 ≤ 50 ms",
        ),
        Figure::new(
            format!("timers {backend}: CPU while nothing is due"),
            format!("{:.1}%", probe["idle_cpu"].as_f64().unwrap_or(f64::NAN) * 100.0),
            "0%",
            "≈ 0",
        ),
        Figure::new(
            format!("timers {backend}: resident memory, {n} open"),
            format!("{:.0} MB", probe["rss_kb"].as_f64().unwrap_or(f64::NAN) / 1024.0),
            "",
            "≤ 100 MB",
        ),
    ])
}

/// The child side of [`timers`]: serves the stored open conversations with
/// the driver exactly as `concierge run` does (no channels: the outbox rows
/// are the output) until `n` warnings fired, then idles 10 s; prints
/// `{"fired", "p50", "p99", "max" (seconds late), "idle_cpu", "rss_kb"}`.
pub async fn timers_probe(database_url: &str, n: usize, spread: i64) -> anyhow::Result<String> {
    let mut config = Config::parse(TIMERS_CONFIG, "bench timers", None).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.database_url = database_url.to_string();
    let engine = Engine::start(config, true, Timestamp::now()).await?;
    let store = engine.store.clone();
    let lateness: crate::driver::Lateness = Default::default();
    let (keep, inbox) = tokio::sync::mpsc::channel(1);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(crate::driver::run_observed(
        engine,
        inbox,
        crate::driver::Clock::System,
        crate::driver::Wakers::default(),
        async {
            let _ = stopped.await;
        },
        Some(lateness.clone()),
    ));
    let give_up = Instant::now() + Duration::from_secs((spread.max(1) as u64) + 120);
    while lateness.lock().map(|l| l.len()).unwrap_or(0) < n && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle_cpu = (cpu_seconds() - cpu) / 10.0;
    let rss = rss_kb();
    let _ = stop.send(());
    driver.await??;
    drop(keep);
    store.close().await;
    let mut late = lateness.lock().map(|l| l.clone()).unwrap_or_default();
    late.sort_by(f64::total_cmp);
    let pick = |q: f64| late.get(((late.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    let value = serde_json::json!({
        "fired": late.len(),
        "p50": pick(0.5),
        "p99": pick(0.99),
        "max": pick(1.0),
        "idle_cpu": idle_cpu,
        "rss_kb": rss,
    });
    Ok(value.to_string())
}
