//! The command line. Names, flags, JSON fields and exit codes here are a
//! contract (see the README): extend them, never rename them.
//!
//! Exit codes: 0 success (for `check`: the reply passed), 1 `check` found the
//! reply not passed or a runtime failure (database unreachable...), 2 a usage,
//! configuration or input error.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;

use crate::app::BuildError;
use crate::config::Config;
use crate::config::SystemEnv;
use crate::core::duration::parse_duration;
use crate::core::report::Week;
use crate::core::router::Channel;
use crate::engine::Engine;
use crate::format::Format;
use crate::store::commands::QueuedCommand;
use crate::store::{OutboxStatus, Store};
use crate::{demo, driver, replay};

#[derive(Debug, Parser)]
#[command(name = "concierge", version, about = "Keeps a support team's service standards on chat and email.")]
pub struct Cli {
    /// Configuration file [default: concierge.toml if present, else built-in defaults]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a reply read from stdin against the reply standards.
    Check(CheckArgs),
    /// Business-hours SLA arithmetic.
    #[command(subcommand)]
    Sla(SlaCommand),
    /// The reply standards: measure the rules against a labelled corpus.
    #[command(subcommand)]
    Standards(StandardsCommand),
    /// Feed a JSON-lines history through the router and store on a simulated clock.
    Replay(ReplayArgs),
    /// Print the weekly summary for an ISO week.
    Report(ReportArgs),
    /// Replay two built-in weeks of support traffic into a fresh database and print the second week's report.
    Demo(DemoArgs),
    /// Resolve a conversation (the running bot applies it within seconds).
    Resolve(ResolveArgs),
    /// List the outbox: messages waiting, delivered, or failed for good.
    Outbox(OutboxArgs),
    /// Bearer tokens for the HTTP API (`/api/v1/...`, report pages).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Detractor follow-ups: list the open ones, close one once handled.
    #[command(subcommand)]
    Followup(FollowupCommand),
    /// Forget a customer: remove their messages, name and address (the figures stay).
    Forget(ForgetArgs),
    /// Measure concierge beside its physical reference (figures and ratios; see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the bot.
    Run,
    /// Apply database migrations and exit.
    Migrate,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The customer's name, for the name rule.
    #[arg(long, value_name = "NAME")]
    customer_name: Option<String>,
    /// The reply is the first reply of its conversation.
    #[arg(long)]
    first: bool,
    /// The reply is a first reply sent after the target (implies --first).
    #[arg(long)]
    late: bool,
    /// Where the reply is posted: `email`, or `discord` (chat: greeting,
    /// name and sign-off are expected on the first message only).
    #[arg(long, value_name = "CHANNEL", default_value = "email", value_parser = ["email", "discord", "chat"])]
    channel: String,
    /// What the customer wrote (length rules compare the reply with it).
    #[arg(long, value_name = "TEXT")]
    customer_text: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: CheckFormat,
    /// Check many replies: one JSON object per line (`text`, `customer_name`,
    /// `first`, `late`) from FILE (`-`: standard input); one result per line.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["customer_name", "first", "late", "customer_text"])]
    batch: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CheckFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The customer's email address or Discord user id.
    #[arg(long, value_name = "ADDRESS|DISCORD_ID")]
    customer: String,
}

#[derive(Debug, Subcommand)]
pub enum FollowupCommand {
    /// Close follow-up ID (as listed: the ticket and the survey's number, e.g. AB12CD34-1).
    Done {
        id: String,
        /// Who handled it.
        #[arg(long, default_value = "cli")]
        by: String,
        /// What was done, kept with the closure.
        #[arg(long)]
        note: Option<String>,
    },
    /// The open follow-ups, oldest first.
    List {
        #[arg(long, value_enum, default_value = "text")]
        format: CheckFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The reply rules (the configured ones) on generated replies vs one RegexSet pass of their patterns.
    Rules {
        #[arg(long, default_value_t = 100_000)]
        replies: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Events through router and store (as `replay`) vs a bulk insert of the same rows.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Rounds of both sides, alternating; each figure is the best round
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Run on a throwaway database on this PostgreSQL server (an admin URL; the role needs CREATEDB) [default: SQLite]
        #[arg(long, value_name = "ADMIN_URL")]
        postgres: Option<String>,
    },
    /// Start-up of `run` on a database of stored history: time to the first timer armed, peak memory.
    Startup {
        #[arg(long, default_value_t = 1_000_000)]
        conversations: usize,
        #[arg(long, default_value_t = 100_000)]
        open: usize,
        #[arg(long, value_name = "ADMIN_URL")]
        postgres: Option<String>,
        /// Measure this database instead (history is generated into it first if it has none)
        #[arg(long, value_name = "URL", conflicts_with = "postgres")]
        database: Option<String>,
    },
    /// One week's report out of a large history, with the query plans.
    Reports {
        #[arg(long, default_value_t = 1_000_000)]
        conversations: usize,
        #[arg(long, value_name = "ADMIN_URL")]
        postgres: Option<String>,
        /// Measure this database instead (history is generated into it first if it has none)
        #[arg(long, value_name = "URL", conflicts_with = "postgres")]
        database: Option<String>,
        /// Print the query plans too.
        #[arg(long)]
        plans: bool,
    },
    /// Open conversations whose nudges fall due over a few minutes on the real clock: lateness, idle CPU, memory.
    Timers {
        #[arg(long, default_value_t = 100_000)]
        conversations: usize,
        /// Seconds over which the nudges fall due.
        #[arg(long, default_value_t = 120)]
        spread: i64,
        #[arg(long, value_name = "ADMIN_URL")]
        postgres: Option<String>,
    },
    /// The child process of `bench startup` (prints JSON).
    #[command(hide = true)]
    StartupProbe {
        #[arg(long)]
        database: String,
    },
    /// The child process of `bench timers` (prints JSON).
    #[command(hide = true)]
    TimersProbe {
        #[arg(long)]
        database: String,
        #[arg(long)]
        conversations: usize,
        #[arg(long)]
        spread: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for NAME and print it once (only its hash is kept).
    New { name: String },
    /// Revoke NAME's token: requests with it get 403 from then on.
    Revoke { name: String },
    /// List the tokens' names, when they were made and whether revoked.
    List,
}

#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// Print the due instant (RFC3339, UTC) of a target started at --from.
    Due {
        #[arg(long, value_name = "RFC3339")]
        from: String,
        /// Business time to add [default: sla.first_response]
        #[arg(long, value_name = "DURATION")]
        within: Option<String>,
    },
    /// Print the business seconds between --from and --to.
    Elapsed {
        #[arg(long, value_name = "RFC3339")]
        from: String,
        #[arg(long, value_name = "RFC3339")]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum StandardsCommand {
    /// Agreement of the active rules with labelled replies (JSON lines:
    /// text, customer_name, first, late, expect pass|fail, rules).
    Eval {
        /// A corpus file, or a directory of `.jsonl` files [default: the built-in corpus]
        corpus: Option<PathBuf>,
        /// Exit 1 when agreement on the good or on the poor replies is below this percentage.
        #[arg(long, value_name = "PERCENT")]
        min: Option<f64>,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The events, one JSON object per line (`-` reads standard input).
    file: PathBuf,
    /// Run the clock on to this instant after the last event.
    #[arg(long, value_name = "RFC3339")]
    until: Option<String>,
    /// Print one JSON line per action produced.
    #[arg(long)]
    print_actions: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// ISO week, e.g. 2026-W48.
    #[arg(long, value_name = "YYYY-Www")]
    week: String,
    /// Report things as they stood at this instant [default: now].
    #[arg(long, value_name = "RFC3339")]
    as_of: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also send the summary (text with the HTML charts) to the managers:
    /// queued in the outbox, once per week, for the running bot to deliver.
    #[arg(long)]
    send: bool,
}

#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Which rows: pending, failed, delivered, replayed, or all [default: pending and failed]
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    /// At most this many rows, oldest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(long, value_enum, default_value = "text")]
    format: CheckFormat,
}

#[derive(Debug, Args)]
pub struct ResolveArgs {
    /// The ticket (thread) to resolve, e.g. K7Q2M9PX.
    ticket: String,
    /// The conversation's channel, when the ticket exists on several.
    #[arg(long, value_name = "email|discord")]
    channel: Option<String>,
    /// Resolve without sending the survey.
    #[arg(long)]
    no_survey: bool,
    /// Who resolves it, for the record.
    #[arg(long, value_name = "NAME", default_value = "cli")]
    by: String,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo data in this database instead of a throwaway one.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Print the demo's replay events (JSON lines) instead of the report.
    #[arg(long)]
    events: bool,
    /// Print the demo's configuration (with `[database] url` for --database sqlite://demo.db).
    #[arg(long)]
    print_config: bool,
    /// With --database: replay into a database that already holds data.
    #[arg(long)]
    force: bool,
}

/// A failure and its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Usage, configuration or input error: exit 2.
    Input(String),
    /// Anything else: exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Runtime(e.into())
    }
}

fn input(msg: impl Into<String>) -> Failure {
    Failure::Input(msg.into())
}

fn instant(flag: &str, value: &str) -> Result<Timestamp, Failure> {
    let bad = || {
        input(format!(
            "{flag} \"{value}\" is not an RFC3339 instant; write it like 2026-11-23T09:00:00Z or 2026-11-23T09:00:00-05:00"
        ))
    };
    // RFC 3339 offsets run to ±23:59 (jiff would take up to ±25:59).
    let tail = value.trim().rsplit(['+', '-']).next().unwrap_or("");
    let has_offset = value.trim().len() > 19 && value.trim()[19..].contains(['+', '-']);
    if has_offset && tail.split(':').next().and_then(|h| h.parse::<u32>().ok()).is_some_and(|h| h > 23) {
        return Err(input(format!(
            "{flag} \"{value}\" has an offset beyond ±23:59; real offsets run from -12:00 to +14:00"
        )));
    }
    value.parse().map_err(|_| bad())
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    Config::load(cli.config.as_deref()).map_err(|e| input(e.to_string().trim_end()))
}

/// Parses arguments, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The database driver's own notes (a dropped idle connection, a
    // migration table that exists) are not news: concierge says what matters.
    let base = if matches!(cli.command, Command::Run) { "info,sqlx=warn,sqlx_core=warn" } else { "warn" };
    let filter = log_filter(std::env::var("CONCIERGE_LOG").ok().as_deref(), base);
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| base.into());
    // No colour codes in log files and pipes, nor when NO_COLOR is set.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !no_color;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    match run(cli) {
        Ok(code) => code,
        Err(Failure::Input(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        // The reader of our output went away (`concierge report | head`):
        // nothing is wrong, stop quietly.
        Err(Failure::Runtime(e))
            if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The log filter for `CONCIERGE_LOG`: a bare level (`debug`) is
/// concierge's own level over `base` for everything else, so the database
/// driver's every query stays out; anything else (`sqlx=debug`,
/// `info,concierge=trace`) is a full filter, used as given.
pub fn log_filter(value: Option<&str>, base: &str) -> String {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    match value.map(str::trim) {
        None | Some("") => base.to_string(),
        Some(level) if LEVELS.contains(&level.to_ascii_lowercase().as_str()) => {
            format!("{base},concierge={}", level.to_ascii_lowercase())
        }
        Some(filter) => filter.to_string(),
    }
}

/// Runs one parsed command.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match &cli.command {
        Command::Check(args) => check(&cli, args),
        Command::Sla(cmd) => sla(&cli, cmd),
        Command::Standards(StandardsCommand::Eval { corpus, min }) => standards_eval(&cli, corpus.as_deref(), *min),
        Command::Replay(args) => block_on(replay_cmd(&cli, args)),
        Command::Report(args) => block_on(report_cmd(&cli, args)),
        Command::Demo(args) => {
            if cli.config.is_some() {
                return Err(input(
                    "demo runs with its own configuration (see concierge demo --print-config); drop --config",
                ));
            }
            block_on(demo_cmd(args))
        }
        Command::Bench(cmd) => bench_cmd(&cli, cmd),
        Command::Run => block_on(run_cmd(&cli)),
        Command::Resolve(args) => block_on(resolve_cmd(&cli, args)),
        Command::Outbox(args) => block_on(outbox_cmd(&cli, args)),
        Command::Token(cmd) => block_on(token_cmd(&cli, cmd)),
        Command::Followup(cmd) => block_on(followup_cmd(&cli, cmd)),
        Command::Forget(args) => block_on(forget_cmd(&cli, args)),
        Command::Migrate => block_on(async {
            let config = load_config(&cli)?;
            let store = Store::open(&config.database_url).await?;
            let url = crate::config::redact_url(&config.database_url);
            match store.newly_migrated() {
                [] => writeln!(std::io::stdout(), "database {url} is up to date")?,
                applied => {
                    writeln!(std::io::stdout(), "database {url}: applied {} migration(s):", applied.len())?;
                    for m in applied {
                        writeln!(std::io::stdout(), "  {m}")?;
                    }
                    writeln!(std::io::stdout(), "database {url} is up to date")?;
                }
            }
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn block_on<F: std::future::Future<Output = Result<ExitCode, Failure>>>(f: F) -> Result<ExitCode, Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let out = rt.block_on(f);
    // A blocking IMAP call (IDLE) may still be waiting on the network: the
    // work is committed by now, so do not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(100));
    out
}

fn bench_cmd(cli: &Cli, cmd: &BenchCommand) -> Result<ExitCode, Failure> {
    use crate::bench;
    let print = |figures: &[bench::Figure]| -> Result<ExitCode, Failure> {
        write!(std::io::stdout(), "{}", bench::table(figures))?;
        Ok(ExitCode::SUCCESS)
    };
    match cmd {
        BenchCommand::Rules { replies, seed } => {
            let config = load_config(cli)?;
            print(&bench::rules(&config.rules, *replies, *seed))
        }
        BenchCommand::Ingest { events, seed, rounds, postgres } => {
            block_on(async { print(&bench::ingest(*events, *seed, *rounds, postgres.as_deref()).await?) })
        }
        BenchCommand::Startup { conversations, open, postgres, database } => block_on(async {
            let open = (*open).min(*conversations);
            print(&bench::startup(*conversations, open, postgres.as_deref(), database.as_deref()).await?)
        }),
        BenchCommand::Reports { conversations, postgres, database, plans } => block_on(async {
            let (figures, text) = bench::reports(*conversations, postgres.as_deref(), database.as_deref()).await?;
            if *plans {
                write!(std::io::stdout(), "{text}")?;
            }
            print(&figures)
        }),
        BenchCommand::Timers { conversations, spread, postgres } => {
            block_on(async { print(&bench::timers(*conversations, *spread, postgres.as_deref()).await?) })
        }
        BenchCommand::StartupProbe { database } => block_on(async {
            writeln!(std::io::stdout(), "{}", bench::startup_probe(database).await?)?;
            Ok(ExitCode::SUCCESS)
        }),
        BenchCommand::TimersProbe { database, conversations, spread } => block_on(async {
            writeln!(std::io::stdout(), "{}", bench::timers_probe(database, *conversations, *spread).await?)?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

fn check(cli: &Cli, args: &CheckArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    if let Some(file) = &args.batch {
        return check_batch(&config, file);
    }
    let text = crate::input::read_all(std::io::stdin(), "the reply on stdin", crate::input::MAX_FILE).map_err(input)?;
    if text.trim().is_empty() {
        return Err(input("the reply is empty: pipe the reply's text into concierge check"));
    }
    let ctx = crate::standards::reply_context(
        args.customer_name.as_deref(),
        args.first,
        args.late,
        Some(&args.channel),
        args.customer_text.as_deref(),
        false,
    );
    let result = config.rules.check(&text, ctx);
    let mut out = std::io::stdout().lock();
    match args.format {
        CheckFormat::Json => writeln!(out, "{}", serde_json::to_string(&result).expect("json"))?,
        CheckFormat::Text => write!(out, "{}", result.feedback(&text))?,
    }
    Ok(if result.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A JSON-lines file, each line bounded ([`crate::input::MAX_LINE`]).
fn jsonl_file(path: &std::path::Path) -> Result<String, Failure> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| input(format!("{name}: cannot read: {e}")))?;
    crate::input::read_lines(file, &name, crate::input::MAX_LINE).map_err(input)
}

/// A JSON-lines file, or standard input for `-`: its name and text.
fn jsonl_input(path: &std::path::Path) -> Result<(String, String), Failure> {
    if path.as_os_str() == "-" {
        let text = crate::input::read_lines(std::io::stdin(), "stdin", crate::input::MAX_LINE).map_err(input)?;
        Ok(("stdin".to_string(), text))
    } else {
        Ok((path.display().to_string(), jsonl_file(path)?))
    }
}

fn standards_eval(cli: &Cli, corpus: Option<&std::path::Path>, min: Option<f64>) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let mut files: Vec<(String, String)> = Vec::new();
    match corpus {
        None => files
            .extend(crate::standards::BUILT_IN_CORPUS.iter().map(|(n, t)| (format!("built-in {n}"), t.to_string()))),
        Some(path) if path.is_dir() => {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| input(format!("{}: cannot read: {e}", path.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect();
            entries.sort();
            if entries.is_empty() {
                return Err(input(format!("{} has no .jsonl files", path.display())));
            }
            for p in entries {
                files.push((p.display().to_string(), jsonl_file(&p)?));
            }
        }
        Some(path) => {
            files.push((path.display().to_string(), jsonl_file(path)?));
        }
    }
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (name, text) in &files {
        match crate::standards::parse(text, name) {
            Ok(mut found) => items.append(&mut found),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(input(format!("{}\n{} bad line(s)", errors.join("\n"), errors.len())));
    }
    let evaluation = crate::standards::evaluate(&config.rules, &items);
    write!(std::io::stdout(), "{evaluation}")?;
    let below = |t: crate::standards::Tally| min.is_some_and(|m| t.percent().is_some_and(|p| p < m));
    Ok(if below(evaluation.good) || below(evaluation.poor) { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// One line of `check --batch`. Fields it does not know (a corpus line's
/// `expect`, a team's own `agent`) are ignored, so exports and corpora can be
/// checked as they are.
#[derive(Debug, serde::Deserialize)]
struct BatchReply {
    text: String,
    #[serde(default)]
    customer_name: Option<String>,
    #[serde(default)]
    first: bool,
    #[serde(default)]
    late: bool,
    /// `email` (default) or `discord`.
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    customer_text: Option<String>,
    #[serde(default)]
    name_used_earlier: bool,
    /// Free for the team's own use (a ticket, an agent); echoed back.
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// `check --batch FILE`: every reply checked; a bad line is reported as
/// `FILE:LINE: reason` (stderr) and the rest still checked. Exit 1 when any
/// reply failed; otherwise 2 when a line could not be read, else 0.
fn check_batch(config: &Config, file: &std::path::Path) -> Result<ExitCode, Failure> {
    let (name, text) = jsonl_input(file)?;
    let (mut bad, mut failed) = (0, 0);
    let mut out = std::io::stdout().lock();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) if v.is_object() => serde_json::from_value::<BatchReply>(v).map_err(|e| e.to_string()),
            _ => Err("not a JSON object".to_string()),
        };
        let reply = match parsed {
            Ok(r) => r,
            Err(reason) => {
                eprintln!(
                    "{name}:{n}: {reason}; each line is an object such as {{\"text\": \"Hi Ana, ...\", \"customer_name\": \"Ana\", \"first\": true}}"
                );
                bad += 1;
                continue;
            }
        };
        if reply.text.trim().is_empty() {
            eprintln!("{name}:{n}: `text` is empty");
            bad += 1;
            continue;
        }
        let ctx = crate::standards::reply_context(
            reply.customer_name.as_deref(),
            reply.first,
            reply.late,
            reply.channel.as_deref(),
            reply.customer_text.as_deref(),
            reply.name_used_earlier,
        );
        let result = config.rules.check(&reply.text, ctx);
        failed += usize::from(!result.passed);
        let mut v = serde_json::to_value(&result).expect("json");
        v["line"] = serde_json::json!(n);
        if let Some(id) = reply.id {
            v["id"] = id;
        }
        writeln!(out, "{v}")?;
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn sla(cli: &Cli, cmd: &SlaCommand) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let hours = &config.policy.hours;
    match cmd {
        SlaCommand::Due { from, within } => {
            let from = instant("--from", from)?;
            let within = match within {
                None => config.policy.first_response,
                Some(w) => parse_duration(w).map_err(|e| input(format!("--within: {e}")))?,
            };
            let due = hours.add(from, within).ok_or_else(|| {
                input(format!(
                    "no due instant: {} of business time from {from} ends after the year 9999 with these business hours; \
                     give an earlier --from or a shorter --within",
                    crate::core::duration::Human(within)
                ))
            })?;
            writeln!(std::io::stdout(), "{due}")?;
        }
        SlaCommand::Elapsed { from, to } => {
            let (from, to) = (instant("--from", from)?, instant("--to", to)?);
            if to < from {
                return Err(input("--to is before --from; give the earlier instant as --from"));
            }
            writeln!(std::io::stdout(), "{}", hours.elapsed(from, to))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn replay_cmd(cli: &Cli, args: &ReplayArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let until = args.until.as_deref().map(|u| instant("--until", u)).transpose()?;
    let (name, text) = jsonl_input(&args.file)?;
    let events = replay::parse(&text, &name, &config.policy).map_err(|errors| {
        input(format!("{}\n{} bad line(s); nothing was imported", errors.join("\n"), errors.len()))
    })?;
    let mut config = config;
    // Replayed history is not announced to anyone.
    config.policy.announce.clear();
    let mut engine = Engine::start(config, false, replay::start_of(&events)).await?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let out: Option<&mut dyn std::io::Write> = if args.print_actions { Some(&mut lock) } else { None };
    let summary = replay::run(&mut engine, events, until, out).await?;
    engine.store.close().await;
    let unchanged = match summary.unchanged {
        0 => String::new(),
        n => format!("; {n} changed nothing (--print-actions says why)"),
    };
    eprintln!(
        "replayed {} events: {} applied, {} already stored; {} actions{unchanged}",
        summary.events, summary.applied, summary.duplicates, summary.actions
    );
    Ok(ExitCode::SUCCESS)
}

async fn report_cmd(cli: &Cli, args: &ReportArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let week = Week::parse(&args.week).map_err(|e| input(format!("--week: {e}")))?;
    let as_of = match &args.as_of {
        Some(t) => instant("--as-of", t)?,
        None => Timestamp::now(),
    };
    let store = Store::open(&config.database_url).await?;
    let text =
        crate::reports::weekly(&store, &config.policy.hours, Some(&config.rules), week, as_of, args.format).await?;
    if args.send {
        let channels = summary_channels(&config)?;
        let link = if config.http.enabled {
            let secret = match &config.secret {
                Some(s) => s.clone(),
                None => store.secret().await?,
            };
            Some(crate::reports::report_link(&config.http.public_url, &secret, week, Timestamp::now()))
        } else {
            None
        };
        let queued = crate::reports::queue_summary(
            &store,
            &config.policy.hours,
            Some(&config.rules),
            week,
            Timestamp::now(),
            &channels,
            link.as_deref(),
        )
        .await?;
        for channel in channels {
            let key = crate::reports::summary_key(week, channel);
            let on = channel.as_str();
            if queued.contains(&channel) {
                eprintln!(
                    "the summary for {week} is queued on {on}: the running bot (concierge run) sends it to the managers"
                );
            } else {
                let sent = store.outbox_item(&key).await?.map(|i| match i.status {
                    OutboxStatus::Delivered => {
                        format!("sent at {}", i.delivered_at.map(|t| t.to_string()).unwrap_or_default())
                    }
                    other => format!("{} since {}", other.as_str(), i.at),
                });
                eprintln!(
                    "the summary for {week} was queued on {on} before ({}); nothing new queued",
                    sent.unwrap_or_default()
                );
            }
        }
    }
    store.close().await;
    write!(std::io::stdout(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

/// The channels that carry the weekly summary to the managers: email with
/// `email.managers`, and Discord's staff channel when Discord is configured.
fn summary_channels(config: &Config) -> Result<Vec<Channel>, Failure> {
    let mut channels = Vec::new();
    match &config.channels.email {
        Some(e) if e.managers.is_empty() && config.channels.discord.is_none() => {
            return Err(input("--send needs email.managers: add the managers' addresses"));
        }
        Some(e) if !e.managers.is_empty() => channels.push(Channel::Email),
        _ => {}
    }
    if config.channels.discord.is_some() {
        channels.push(Channel::Discord);
    }
    if channels.is_empty() {
        return Err(input(
            "--send sends the summary through [email] (with email.managers) or [discord]; configure one of them",
        ));
    }
    Ok(channels)
}

async fn demo_cmd(args: &DemoArgs) -> Result<ExitCode, Failure> {
    let mut config = Config::parse(demo::CONFIG, "built-in demo config", None).map_err(|e| input(e.to_string()))?;
    let events_text = demo::events(&config.policy.hours);
    if args.events {
        write!(std::io::stdout(), "{events_text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.print_config {
        write!(
            std::io::stdout(),
            "# The demo's configuration. With `concierge demo --database sqlite://demo.db`, run\n\
             # `concierge --config demo.toml report --week {} --as-of {}` for the same figures.\n\
             [database]\nurl = \"sqlite://demo.db\"\n{}",
            demo::WEEK,
            demo::AS_OF,
            demo::CONFIG.trim_start()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(url) = &args.database
        && !args.force
    {
        let store = Store::open(url).await?;
        let held = store.count("conversations").await?;
        store.close().await;
        if held > 0 {
            return Err(input(format!(
                "{} already holds {held} conversation(s): give the demo a new database, or add --force to replay into it",
                crate::config::redact_url(url)
            )));
        }
    }
    config.database_url = args.database.clone().unwrap_or_else(|| "sqlite::memory:".into());
    config.policy.announce.clear();
    let events = replay::parse(&events_text, "demo", &config.policy)
        .map_err(|e| Failure::Runtime(anyhow::anyhow!(e.join("\n"))))?;
    let as_of: Timestamp = demo::AS_OF.parse().expect("valid demo instant");
    let week = Week::parse(demo::WEEK).expect("valid demo week");
    let report_config = Config::parse(demo::CONFIG, "built-in demo config", None).map_err(|e| input(e.to_string()))?;
    let mut engine = Engine::start(config, false, replay::start_of(&events)).await?;
    let summary = replay::run(&mut engine, events, Some(as_of), None).await?;
    eprintln!(
        "demo: replayed {} events of two weeks for a New York team ({} actions); the report for {} follows",
        summary.events,
        summary.actions,
        demo::WEEK
    );
    let text = crate::reports::weekly(
        &engine.store,
        &report_config.policy.hours,
        Some(&report_config.rules),
        week,
        as_of,
        args.format,
    )
    .await?;
    engine.store.close().await;
    write!(std::io::stdout(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}

async fn resolve_cmd(cli: &Cli, args: &ResolveArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    if let Some(c) = &args.channel
        && crate::core::router::Channel::parse(c).is_none()
    {
        return Err(input(format!("--channel \"{c}\" is not a channel; use email or discord")));
    }
    let store = Store::open(&config.database_url).await?;
    let channels = store.channels_of(&args.ticket).await?;
    let wanted = args.channel.as_deref().and_then(Channel::parse);
    let channel = match (wanted, channels.as_slice()) {
        (_, []) => return Err(input(format!("no conversation has ticket \"{}\"", args.ticket))),
        (Some(c), found) if found.contains(&c) => c,
        (Some(c), _) => {
            return Err(input(format!("ticket \"{}\" has no {} conversation", args.ticket, c.as_str())));
        }
        (None, [only]) => *only,
        (None, _) => {
            let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
            return Err(input(format!(
                "ticket \"{}\" exists on {}; choose one with --channel",
                args.ticket,
                names.join(" and ")
            )));
        }
    };
    let conversation = crate::core::router::Conversation::key(channel, &args.ticket);
    if let Some(c) = store.conversation(&conversation).await?
        && c.status == crate::core::router::Status::Resolved
    {
        let when = c.resolved_at.map(|t| format!(" since {t}")).unwrap_or_default();
        writeln!(
            std::io::stdout(),
            "{} ticket {} is already resolved{when}; nothing to do",
            channel.as_str(),
            args.ticket
        )?;
        store.close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let at = Timestamp::now();
    let command =
        QueuedCommand::Resolve { channel, thread: args.ticket.clone(), by: args.by.clone(), survey: !args.no_survey };
    let key = format!("resolve:{}:{}@{}", channel.as_str(), args.ticket, at.as_nanosecond());
    store.queue_command(&key, at, &command).await?;
    store.close().await;
    writeln!(
        std::io::stdout(),
        "queued: the running bot resolves {} ticket {} within seconds",
        channel.as_str(),
        args.ticket
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `forget --customer`: applied at once when no bot runs on the database;
/// otherwise queued for the running bot (which also holds the customer in
/// memory) and waited for, up to 30 seconds.
async fn forget_cmd(cli: &Cli, args: &ForgetArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let customer = args.customer.trim();
    if customer.is_empty() || customer.starts_with("forgotten-") {
        return Err(input("--customer needs the email address or Discord user id the customer wrote from"));
    }
    let shown = crate::channels::log::redact(customer);
    let store = Store::open(&config.database_url).await?;
    if !store.knows_customer(customer).await? {
        store.close().await;
        eprintln!("no conversation has customer {shown}: nothing is stored about them");
        return Ok(ExitCode::SUCCESS);
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the pseudonym: {e}"))?;
    let pseudonym = format!("forgotten-{}", crate::core::text::hex(&bytes));
    let result = match store.try_lock_instance().await? {
        Some(lock) => {
            let mut tx = store.begin().await?;
            let f = store.forget(&mut tx, customer, &pseudonym).await?;
            tx.commit().await.map_err(anyhow::Error::from)?;
            lock.release().await;
            eprintln!(
                "forgot {shown}: {} conversation(s), {} message(s), {} survey(s) and {} outgoing message(s) no longer name or quote them; the figures stay",
                f.conversations, f.messages, f.surveys, f.outbox
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let key = format!("forget/{pseudonym}");
            let command = QueuedCommand::Forget { customer: customer.to_string(), pseudonym };
            store.queue_command(&key, Timestamp::now(), &command).await?;
            let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                match store.command_state(&key).await? {
                    Some(None) => {
                        eprintln!("forgot {shown} (applied by the running bot); the figures stay");
                        break Ok(ExitCode::SUCCESS);
                    }
                    Some(Some(error)) => {
                        break Err(Failure::from(anyhow::anyhow!("the running bot could not forget {shown}: {error}")));
                    }
                    None if std::time::Instant::now() > give_up => {
                        eprintln!("queued: the running bot forgets {shown} as soon as it reads its commands");
                        break Ok(ExitCode::SUCCESS);
                    }
                    None => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
        }
    };
    store.close().await;
    result
}

async fn followup_cmd(cli: &Cli, cmd: &FollowupCommand) -> Result<ExitCode, Failure> {
    use crate::store::report::Closed;
    let config = load_config(cli)?;
    let store = Store::open(&config.database_url).await?;
    let now = Timestamp::now();
    let result = match cmd {
        FollowupCommand::Done { id, by, note } => match store.close_followup(id, by, note.as_deref(), now).await? {
            Closed::Now => {
                eprintln!("follow-up {id} closed by {by}");
                Ok(ExitCode::SUCCESS)
            }
            Closed::Already { at, by } => {
                eprintln!("follow-up {id} was closed already, at {at} by {by}; nothing changed");
                Ok(ExitCode::SUCCESS)
            }
            Closed::NotADetractor => Err(input(format!(
                "{id} names a survey that was not answered 0-6, so it has no follow-up (concierge followup list shows the open ones)"
            ))),
            Closed::Unknown => {
                Err(input(format!("no follow-up has id {id}; concierge followup list shows the open ones")))
            }
        },
        FollowupCommand::List { format } => {
            let open = crate::core::report::open_followups(now, &store.followup_rows(now).await?);
            let mut out = std::io::stdout().lock();
            for i in &open.items {
                match format {
                    CheckFormat::Json => writeln!(out, "{}", serde_json::to_string(i).expect("json"))?,
                    CheckFormat::Text => writeln!(
                        out,
                        "{}  score {:>2}  {:<12} opened {}  waiting {}",
                        i.id,
                        i.score,
                        i.agent.as_deref().unwrap_or("-"),
                        i.opened_at,
                        crate::format::short(i.waiting_seconds)
                    )?,
                }
            }
            if open.items.is_empty() && matches!(format, CheckFormat::Text) {
                eprintln!("no follow-up is open");
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    store.close().await;
    result
}

async fn token_cmd(cli: &Cli, cmd: &TokenCommand) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let valid = |name: &str| {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
        if ok {
            Ok(())
        } else {
            Err(input(format!(
                "\"{name}\" is not a token name: use up to 64 letters, digits and - _ . @ (e.g. grafana or ana@example.com)"
            )))
        }
    };
    let store = Store::open(&config.database_url).await?;
    let now = Timestamp::now();
    let result = match cmd {
        TokenCommand::New { name } => {
            valid(name)?;
            let mut bytes = [0u8; 20];
            getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for the token: {e}"))?;
            let token = format!("cct_{}", crate::core::text::hex(&bytes));
            if store.create_token(name, &token, now).await? {
                writeln!(std::io::stdout(), "{token}")?;
                eprintln!(
                    "Token for {name} created. It is shown only this once: store it now (e.g. in your secrets manager)."
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Err(input(format!("{name} already has a token: revoke it first (concierge token revoke {name})")))
            }
        }
        TokenCommand::Revoke { name } => {
            if store.revoke_token(name, now).await? {
                eprintln!("Token for {name} revoked: requests with it now get 403.");
                Ok(ExitCode::SUCCESS)
            } else {
                Err(input(format!("{name} has no active token (concierge token list shows them)")))
            }
        }
        TokenCommand::List => {
            for t in store.tokens().await? {
                let state = t.revoked_at.map_or("active".to_string(), |r| format!("revoked {r}"));
                writeln!(std::io::stdout(), "{:<24} created {}  {state}", t.name, t.created_at)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    };
    store.close().await;
    result
}

async fn outbox_cmd(cli: &Cli, args: &OutboxArgs) -> Result<ExitCode, Failure> {
    let config = load_config(cli)?;
    let statuses = match args.status.as_deref() {
        None => vec![OutboxStatus::Pending, OutboxStatus::Failed],
        Some("all") => vec![],
        Some(s) => vec![OutboxStatus::parse(s).ok_or_else(|| {
            input(format!(
                "--status \"{s}\" is not a status; use pending, failed, delivered, replayed, cancelled or all"
            ))
        })?],
    };
    let store = Store::open(&config.database_url).await?;
    let items = store.outbox(&statuses, args.limit.max(1)).await?;
    store.close().await;
    let mut out = std::io::stdout().lock();
    for i in &items {
        match args.format {
            CheckFormat::Json => {
                let line = serde_json::json!({
                    "key": i.key, "at": i.at, "status": i.status, "kind": i.kind, "channel": i.channel,
                    "thread": i.thread, "to": i.recipient.as_str(), "attempts": i.attempts, "error": i.last_error,
                    "delivered_at": i.delivered_at,
                });
                writeln!(out, "{line}")?;
            }
            CheckFormat::Text => writeln!(
                out,
                "{}  {:<9}  {:<8} {:<16} {:<12} to {}  ({} attempt{}){}",
                i.at,
                i.status.as_str(),
                i.channel.as_str(),
                i.kind.as_str(),
                i.thread,
                i.recipient.as_str(),
                i.attempts,
                if i.attempts == 1 { "" } else { "s" },
                i.last_error.as_deref().map(|e| format!("\n    {e}")).unwrap_or_default()
            )?,
        }
    }
    if items.is_empty() && matches!(args.format, CheckFormat::Text) {
        writeln!(out, "the outbox has no such rows")?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_cmd(cli: &Cli) -> Result<ExitCode, Failure> {
    let config =
        Config::load_for_run(cli.config.as_deref(), &SystemEnv).map_err(|e| input(e.to_string().trim_end()))?;
    let shutdown = shutdown_signal()?;
    tracing::info!(config = %config.source, database = %crate::config::redact_url(&config.database_url), "starting");
    let path = cli.config.clone();
    let load = move || Config::load_for_run(path.as_deref(), &SystemEnv).map_err(BuildError::Config);
    crate::instance::run(config, load, &SystemEnv, driver::Clock::System, shutdown).await.map_err(|e| match e {
        BuildError::Config(e) => input(e.to_string().trim_end()),
        BuildError::Runtime(e) => Failure::Runtime(e),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled, so a signal that arrives
/// while the bot is still starting is not lost.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_log_level_is_concierges_own_and_a_filter_is_used_as_given() {
        assert_eq!(log_filter(None, "info"), "info");
        assert_eq!(log_filter(Some("debug"), "info"), "info,concierge=debug");
        assert_eq!(log_filter(Some("DEBUG"), "warn"), "warn,concierge=debug");
        assert_eq!(log_filter(Some("sqlx=debug"), "info"), "sqlx=debug");
    }
}
