//! Configuration: `concierge.toml` parsed, then validated as a whole.
//!
//! Every problem is collected and reported at once, each with its key and how
//! to fix it (an unknown time zone, `17:00-09:00`, overlapping intervals, a bad
//! duration, an unknown key...). Relative paths are taken from the directory of
//! the config file. Secrets are read from the environment or a file named here,
//! never from the file itself, and never printed; a channel's secrets are
//! read only when the channel is started ([`section::SecretSource`]). Each
//! channel validates its own section (`channels/NAME/settings.rs`) with the
//! helpers in [`section`].

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use toml::{Table, Value};

pub mod section;

pub use section::{Env, Secret, SecretSource, Section, SystemEnv};

use crate::channels::ChannelSettings;
use crate::core::duration::{Human, parse_duration, parse_percent};
use crate::core::hours::{BusinessHours, Span};
use crate::core::router::{Channel, Escalation, Policy, Recipient};
use crate::core::rules::{DEFAULT_PASS_SCORE, RuleSet};
use crate::core::schedule::WeeklyAt;
use crate::core::template::Templates;

/// Default `[database] url`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://concierge.db";

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How reply checks act on a reply (used by channels that relay replies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Send the reply and tell the agent privately what to improve.
    Coach,
    /// Hold a reply with an error finding and return it to the agent.
    Enforce,
}

/// The validated configuration.
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    pub database_url: String,
    pub policy: Policy,
    pub rules: RuleSet,
    pub templates: Templates,
    pub mode: Mode,
    /// The survey-signing secret, when configured; otherwise the store keeps one.
    pub secret: Option<Vec<u8>>,
    /// The channels' sections, as configured.
    pub channels: ChannelSettings,
    /// `[http]`: the web surface (survey pages, report pages, API, health).
    pub http: HttpSettings,
    /// `[reports] weekly_at`: when `run` sends the weekly summary (`None`: "off").
    pub weekly_at: Option<WeeklyAt>,
    /// `[data] keep_messages`: seconds of message text kept (`None`: all).
    pub keep_messages: Option<i64>,
}

/// `[http]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Serve at all (default true).
    pub enabled: bool,
    /// Where to listen; port 0 picks a free port (logged at start).
    pub listen: std::net::SocketAddr,
    /// The address people open (links in mail), without a trailing slash;
    /// default `http://` + the address bound.
    pub public_url: String,
    /// `public_url` was configured (else it follows the bound address).
    pub public_url_set: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 8080));
        HttpSettings { enabled: true, listen, public_url: format!("http://{listen}"), public_url_set: false }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("source", &self.source)
            .field("database_url", &redact_url(&self.database_url))
            .field("mode", &self.mode)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `sla.first_response`; empty for the whole file.
    pub key: String,
    pub message: String,
}

/// All problems found in one configuration source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or "built-in defaults").
    pub origin: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(f, "{}: {n} problem{} in the configuration:", self.origin, if n == 1 { "" } else { "s" })?;
        for p in &self.problems {
            if p.key.is_empty() {
                writeln!(f, "  {}", p.message)?;
            } else {
                writeln!(f, "  {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl Config {
    /// Loads `path`, or `concierge.toml` when present, or the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_with(path, &SystemEnv, false)
    }

    /// [`Config::load`] for `concierge run`: the channels' secrets must be
    /// readable too, and a missing one is reported with every other problem.
    pub fn load_for_run(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        Config::load_with(path, env, true)
    }

    fn load_with(path: Option<&Path>, env: &dyn Env, secrets: bool) -> Result<Config, ConfigError> {
        let default = Path::new("concierge.toml");
        let path = match path {
            Some(p) => p,
            None if default.exists() => default,
            None => return Config::parse_checked("", "built-in defaults", None, env, secrets),
        };
        let source = path.display().to_string();
        let text = crate::input::read_file(path, crate::input::MAX_FILE).map_err(|e| {
            // The problem is shown under the file's name already.
            let why = e.strip_prefix(&format!("{source}: ")).unwrap_or(&e).replacen(
                "cannot read:",
                "cannot read the file:",
                1,
            );
            ConfigError {
                origin: source.clone(),
                problems: vec![Problem { key: String::new(), message: format!("{why}; check --config") }],
            }
        })?;
        Config::parse_checked(&text, &source, path.parent(), env, secrets)
    }

    /// Parses and validates config text. `dir` anchors relative paths.
    pub fn parse(text: &str, source: &str, dir: Option<&Path>) -> Result<Config, ConfigError> {
        Config::parse_with_env(text, source, dir, &SystemEnv)
    }

    /// [`Config::parse`] reading environment variables from `env`.
    pub fn parse_with_env(text: &str, source: &str, dir: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        Config::parse_checked(text, source, dir, env, false)
    }

    /// Parses and validates; with `secrets`, also that every channel secret can be read.
    pub fn parse_checked(
        text: &str,
        source: &str,
        dir: Option<&Path>,
        env: &dyn Env,
        secrets: bool,
    ) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError { origin: source.to_string(), problems };
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            fail(vec![Problem { key: String::new(), message: format!("{at}{}", e.message().trim()) }])
        })?;
        let mut v = Validator { problems: Vec::new(), dir: dir.map(Path::to_path_buf), env, secrets };
        let config = v.config(&table, source);
        match config {
            Some(c) if v.problems.is_empty() => Ok(c),
            _ => Err(fail(v.problems)),
        }
    }
}

struct Validator<'e> {
    problems: Vec<Problem>,
    dir: Option<PathBuf>,
    env: &'e dyn Env,
    /// Check that the channels' secrets can be read now.
    secrets: bool,
}

impl Validator<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { key: key.into(), message: message.into() });
    }

    /// The sub-table `name`, reporting keys not in `known`.
    fn section<'a>(&mut self, root: &'a Table, name: &str, known: &[&str]) -> Option<&'a Table> {
        section::table(root, name, known, &mut self.problems)
    }

    fn string<'a>(&mut self, t: Option<&'a Table>, section: &str, key: &str) -> Option<&'a str> {
        match t?.get(key)? {
            Value::String(s) => Some(s),
            other => {
                self.problem(format!("{section}.{key}"), format!("must be a string, not {}", other.type_str()));
                None
            }
        }
    }

    fn duration(&mut self, t: Option<&Table>, section: &str, key: &str, default: i64) -> i64 {
        let full = format!("{section}.{key}");
        match self.string(t, section, key).map(parse_duration) {
            None => default,
            Some(Ok(secs)) => secs,
            Some(Err(e)) => {
                self.problem(full, e.0);
                default
            }
        }
    }

    fn config(&mut self, root: &Table, source: &str) -> Option<Config> {
        const CORE: [&str; 9] =
            ["database", "business_hours", "sla", "standards", "surveys", "responses", "http", "reports", "data"];
        let sections: Vec<&str> = CORE.iter().chain(ChannelSettings::SECTIONS).copied().collect();
        for key in root.keys().filter(|k| !sections.contains(&k.as_str())) {
            self.problem(key.as_str(), format!("unknown section or key; the sections are: {}", sections.join(", ")));
        }
        let database = self.section(root, "database", &["url"]);
        let database_url = self.string(database, "database", "url").unwrap_or(DEFAULT_DATABASE_URL).to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            self.problem("database.url", "must start with sqlite:// (e.g. \"sqlite://concierge.db\") or postgres://");
        }
        let env = self.env;
        let secrets = self.secrets.then_some(env);
        let channels = ChannelSettings::parse(root, &mut self.problems, self.dir.as_deref(), secrets);
        let hours = self.business_hours(root);
        let mut policy = self.sla(root, channels.email.is_some());
        self.surveys(root, &mut policy);
        let http = self.http(root);
        let weekly_at = self.reports(root);
        let data = self.section(root, "data", &["keep_messages"]);
        let keep_messages = match self.string(data, "data", "keep_messages") {
            None => None,
            Some(_) => Some(self.duration(data, "data", "keep_messages", 0)).filter(|s| *s > 0),
        };
        if http.enabled {
            policy.survey_url = Some(format!("{}/survey/", http.public_url));
        }
        let secret = self.secret(root);
        let (rules, mode) = self.standards(root);
        let templates = self.templates(root);
        if let Some(hours) = &hours {
            self.reachable(hours, &policy);
        }
        let hours = hours?;
        let rules = rules?;
        let templates = templates?;
        let connected = channels.connected();
        Some(Config {
            source: source.to_string(),
            database_url,
            policy: Policy {
                hours,
                enforce: mode == Mode::Enforce,
                resolve_after_silence: channels.resolve_after_silence(),
                staff_route: staff_route(&connected),
                announce: channels.announce(),
                ..policy
            },
            rules,
            templates,
            mode,
            secret,
            channels,
            http,
            weekly_at,
            keep_messages,
        })
    }

    /// `[reports] weekly_at = "mon 09:00"` (default) or `"off"`.
    fn reports(&mut self, root: &Table) -> Option<WeeklyAt> {
        let t = self.section(root, "reports", &["weekly_at"]);
        match self.string(t, "reports", "weekly_at") {
            None => Some(WeeklyAt::default()),
            Some("off") => None,
            Some(s) => match WeeklyAt::parse(s) {
                Ok(at) => Some(at),
                Err(e) => {
                    self.problem("reports.weekly_at", format!("{e} (local business time), or \"off\""));
                    None
                }
            },
        }
    }

    /// `[http]`: where the web surface listens and the address people reach it at.
    fn http(&mut self, root: &Table) -> HttpSettings {
        let t = self.section(root, "http", &["enabled", "listen", "public_url"]);
        let mut http = HttpSettings::default();
        match t.and_then(|t| t.get("enabled")) {
            None => {}
            Some(Value::Boolean(b)) => http.enabled = *b,
            Some(_) => self.problem("http.enabled", "must be true or false"),
        }
        if let Some(listen) = self.string(t, "http", "listen") {
            match listen.parse::<std::net::SocketAddr>() {
                Ok(addr) => http.listen = addr,
                Err(_) => self.problem(
                    "http.listen",
                    format!("\"{listen}\" is not an address and port; write e.g. \"127.0.0.1:8080\" or \"0.0.0.0:80\""),
                ),
            }
        }
        http.public_url_set = t.is_some_and(|t| t.contains_key("public_url"));
        http.public_url = match self.string(t, "http", "public_url") {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                url.trim_end_matches('/').to_string()
            }
            Some(url) => {
                self.problem(
                    "http.public_url",
                    format!("\"{url}\" must start with https:// or http:// (the address customers and managers open)"),
                );
                String::new()
            }
            None => format!("http://{}", http.listen),
        };
        http
    }

    fn business_hours(&mut self, root: &Table) -> Option<BusinessHours> {
        let mut known = vec!["time_zone", "holidays"];
        known.extend(WEEKDAYS);
        let section = self.section(root, "business_hours", &known);
        let Some(t) = section else {
            // Built-in default: Monday to Friday 09:00-17:00 UTC.
            let day = vec![Span { open: 9 * 3600, close: 17 * 3600 }];
            let week = [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]];
            return BusinessHours::new(TimeZone::UTC, week, BTreeSet::new()).ok();
        };
        let tz = match self.string(section, "business_hours", "time_zone") {
            // Like every key, optional: UTC unless said otherwise.
            None => Some(TimeZone::UTC),
            Some(name) => {
                match TimeZone::get(name) {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        self.problem(
                        "business_hours.time_zone",
                        format!("\"{name}\" is not a known IANA time zone; use a name such as \"Europe/Berlin\" or \"UTC\""),
                    );
                        None
                    }
                }
            }
        };
        let mut week: [Vec<Span>; 7] = Default::default();
        let mut spans_ok = true;
        for (i, day) in WEEKDAYS.iter().enumerate() {
            let key = format!("business_hours.{day}");
            match t.get(*day) {
                None => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        match item.as_str().map(Span::parse) {
                            Some(Ok(span)) => week[i].push(span),
                            Some(Err(e)) => {
                                self.problem(&key, e);
                                spans_ok = false;
                            }
                            None => {
                                self.problem(&key, "intervals must be strings such as \"09:00-17:00\"");
                                spans_ok = false;
                            }
                        }
                    }
                }
                Some(_) => {
                    self.problem(&key, "must be a list of intervals, e.g. [\"09:00-12:00\", \"13:00-17:00\"]");
                    spans_ok = false;
                }
            }
        }
        let mut holidays = BTreeSet::new();
        match t.get("holidays") {
            None => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str().map(str::parse::<Date>) {
                        Some(Ok(d)) => {
                            holidays.insert(d);
                        }
                        _ => self.problem(
                            "business_hours.holidays",
                            format!(
                                "{} is not a date; write dates as \"YYYY-MM-DD\" strings",
                                item.as_str().map_or_else(|| item.type_str().to_string(), |s| format!("\"{s}\""))
                            ),
                        ),
                    }
                }
            }
            Some(_) => self.problem("business_hours.holidays", "must be a list of dates, e.g. [\"2026-12-25\"]"),
        }
        // Every day's overlaps are reported, whatever else is wrong.
        let mut overlapping = false;
        for (day, spans) in WEEKDAYS.iter().zip(&mut week) {
            spans.sort_by_key(|s| s.open);
            if spans.windows(2).any(|w| w[1].open < w[0].close) {
                self.problem(format!("business_hours.{day}"), "has overlapping intervals; merge them into one");
                overlapping = true;
            }
        }
        let tz = tz?;
        if !spans_ok || overlapping {
            return None;
        }
        match BusinessHours::new(tz, week, holidays) {
            Ok(h) => Some(h),
            Err(e) => {
                self.problem("business_hours", e);
                None
            }
        }
    }

    fn sla(&mut self, root: &Table, has_email: bool) -> Policy {
        let t =
            self.section(root, "sla", &["first_response", "next_response", "warn_at", "escalate_after", "escalate_to"]);
        let defaults = Policy::default();
        let first_response = self.duration(t, "sla", "first_response", defaults.first_response);
        if first_response == 0 {
            self.problem("sla.first_response", "must be longer than 0s, e.g. \"1h\"");
        }
        let next_response = match self.string(t, "sla", "next_response").map(parse_duration) {
            None => None,
            Some(Ok(0)) => {
                self.problem("sla.next_response", "must be longer than 0s, e.g. \"4h\" (remove the key for no clock)");
                None
            }
            Some(Ok(secs)) => Some(secs),
            Some(Err(e)) => {
                self.problem("sla.next_response", e.0);
                None
            }
        };
        let warn_at_percent = match self.string(t, "sla", "warn_at").map(parse_percent) {
            None => defaults.warn_at_percent,
            Some(Ok(p)) if (1..=99).contains(&p) => p,
            Some(Ok(_)) => {
                self.problem("sla.warn_at", "must be between 1% and 99% of the target, e.g. \"75%\"");
                defaults.warn_at_percent
            }
            Some(Err(e)) => {
                self.problem("sla.warn_at", e.0);
                defaults.warn_at_percent
            }
        };
        let afters: Vec<i64> = match t.and_then(|t| t.get("escalate_after")) {
            None => vec![3600],
            Some(Value::String(s)) => match parse_duration(s) {
                Ok(d) => vec![d],
                Err(e) => {
                    self.problem("sla.escalate_after", e.0);
                    vec![]
                }
            },
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    match item.as_str().map(parse_duration) {
                        Some(Ok(d)) => out.push(d),
                        Some(Err(e)) => self.problem("sla.escalate_after", e.0),
                        None => {
                            self.problem("sla.escalate_after", "levels must be duration strings, e.g. [\"1h\", \"4h\"]")
                        }
                    }
                }
                if out.windows(2).any(|w| w[1] <= w[0]) {
                    self.problem("sla.escalate_after", "levels must grow, e.g. [\"1h\", \"4h\"]");
                }
                out
            }
            Some(_) => {
                self.problem(
                    "sla.escalate_after",
                    "must be a duration such as \"1h\" or a list such as [\"1h\", \"4h\"]",
                );
                vec![]
            }
        };
        let to: Vec<Recipient> = match t.and_then(|t| t.get("escalate_to")) {
            None => vec![],
            Some(Value::Array(items)) if items.iter().all(Value::is_str) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|name| match name.trim() {
                    "managers" => Some(Recipient::Managers),
                    "agents" => Some(Recipient::Agents),
                    a if a.contains('@') && has_email => Some(Recipient::Agent(a.to_ascii_lowercase())),
                    other => {
                        self.problem(
                            "sla.escalate_to",
                            format!(
                                "\"{other}\" is not a recipient; use \"managers\", \"agents\"{}",
                                if has_email { " or an email address" } else { " (or an email address, with [email])" }
                            ),
                        );
                        None
                    }
                })
                .collect(),
            Some(_) => {
                self.problem(
                    "sla.escalate_to",
                    "must be a list of recipients, one per escalation level, e.g. [\"managers\"]",
                );
                vec![]
            }
        };
        if to.len() > afters.len() {
            self.problem("sla.escalate_to", "names more recipients than `escalate_after` has levels");
        }
        let escalations = afters
            .iter()
            .enumerate()
            .map(|(i, &after)| Escalation { after, to: to.get(i).cloned().unwrap_or(Recipient::Managers) })
            .collect();
        Policy { first_response, next_response, warn_at_percent, escalations, ..defaults }
    }

    /// Refuses targets these hours could only meet after centuries (or never:
    /// `9:00-9:01` once a week and `3650d`), which would put every due
    /// instant past the end of time.
    fn reachable(&mut self, hours: &BusinessHours, policy: &Policy) {
        const MAX_YEARS: i64 = 10;
        let per_year = hours.open_per_week() * 52;
        let longest_escalation = policy.escalations.iter().map(|e| e.after).max().unwrap_or(0);
        let targets =
            [("sla.first_response", Some(policy.first_response)), ("sla.next_response", policy.next_response)];
        for (key, target) in targets {
            let Some(target) = target else { continue };
            let total = target + longest_escalation;
            if total > per_year * MAX_YEARS {
                self.problem(
                    key,
                    format!(
                        "{} (plus escalations) of business time would take about {} years with these business hours ({} open a week); \
                         use a target under {MAX_YEARS} years of business time or open more hours",
                        Human(target),
                        total / per_year.max(1),
                        Human(hours.open_per_week())
                    ),
                );
            }
        }
    }

    fn surveys(&mut self, root: &Table, policy: &mut Policy) {
        let t = self.section(root, "surveys", &["delay", "throttle", "enabled", "expire", "secret_env", "secret_file"]);
        policy.survey_delay = self.duration(t, "surveys", "delay", policy.survey_delay);
        policy.survey_expire = self.duration(t, "surveys", "expire", policy.survey_expire);
        policy.survey_throttle = self.duration(t, "surveys", "throttle", policy.survey_throttle);
        match t.and_then(|t| t.get("enabled")) {
            None => {}
            Some(Value::Boolean(b)) => policy.surveys_enabled = *b,
            Some(_) => self.problem("surveys.enabled", "must be true or false"),
        }
    }

    /// The survey secret from `surveys.secret_env` (default `CONCIERGE_SECRET`)
    /// or `surveys.secret_file`.
    fn secret(&mut self, root: &Table) -> Option<Vec<u8>> {
        let t = root.get("surveys").and_then(Value::as_table);
        if let Some(file) = self.string(t, "surveys", "secret_file") {
            let path = self.resolve(file);
            return match std::fs::read(&path) {
                Ok(bytes) if bytes.trim_ascii().len() >= 16 => Some(bytes.trim_ascii().to_vec()),
                Ok(_) => {
                    self.problem(
                        "surveys.secret_file",
                        format!("{} holds fewer than 16 bytes; write a long random secret into it", path.display()),
                    );
                    None
                }
                Err(e) => {
                    self.problem("surveys.secret_file", format!("cannot read {}: {e}", path.display()));
                    None
                }
            };
        }
        let var = self.string(t, "surveys", "secret_env").unwrap_or("CONCIERGE_SECRET").to_string();
        match self.env.var(&var) {
            Some(s) if s.len() >= 16 => Some(s.into_bytes()),
            Some(_) => {
                self.problem(
                    "surveys.secret_env",
                    format!("${var} is shorter than 16 characters; use a long random secret"),
                );
                None
            }
            None => None,
        }
    }

    fn standards(&mut self, root: &Table) -> (Option<RuleSet>, Mode) {
        let t = self.section(root, "standards", &["rules", "pass_score", "mode"]);
        let pass_score = match t.and_then(|t| t.get("pass_score")) {
            None => DEFAULT_PASS_SCORE,
            Some(Value::Integer(n)) if (0..=100).contains(n) => *n as u32,
            Some(_) => {
                self.problem("standards.pass_score", "must be a whole number from 0 to 100, e.g. 70");
                DEFAULT_PASS_SCORE
            }
        };
        let mode = match self.string(t, "standards", "mode") {
            None | Some("coach") => Mode::Coach,
            Some("enforce") => Mode::Enforce,
            Some(other) => {
                self.problem("standards.mode", format!("\"{other}\" is not a mode; use \"coach\" or \"enforce\""));
                Mode::Coach
            }
        };
        let (text, file) = match self.string(t, "standards", "rules") {
            None => {
                (Some(crate::core::rules::DEFAULT_RULES.to_string()), "responses/rules.toml (built in)".to_string())
            }
            Some(file) => {
                let path = self.resolve(file);
                match crate::input::read_file(&path, crate::input::MAX_FILE) {
                    Err(e) => {
                        self.problem(
                            "standards.rules",
                            format!("{e}; fix the path or remove the key to use the built-in rules"),
                        );
                        (None, String::new())
                    }
                    Ok(text) => (Some(text), path.display().to_string()),
                }
            }
        };
        let rules = text.and_then(|text| match RuleSet::parse(&text, &file, pass_score) {
            Ok(r) => Some(r),
            Err(errors) => {
                for e in errors {
                    self.problem("standards.rules", e.to_string());
                }
                None
            }
        });
        (rules, mode)
    }

    fn templates(&mut self, root: &Table) -> Option<Templates> {
        let t = self.section(root, "responses", &["dir"]);
        let (dir, templates) = match self.string(t, "responses", "dir") {
            None => (None, Templates::with_overrides(|_| None)),
            Some(dir) => {
                let dir = self.resolve(dir);
                if !dir.is_dir() {
                    self.problem(
                        "responses.dir",
                        format!(
                            "{} is not a directory; point it at a folder of templates like responses/",
                            dir.display()
                        ),
                    );
                    return None;
                }
                let templates = Templates::with_overrides(|file| std::fs::read_to_string(dir.join(file)).ok());
                (Some(dir), templates)
            }
        };
        match templates {
            Ok(t) => Some(t),
            Err(problems) => {
                for p in problems {
                    let place =
                        dir.as_ref().map_or_else(|| "responses/ (built in)".to_string(), |d| d.display().to_string());
                    self.problem("responses.dir", format!("{place}/{p}"));
                }
                None
            }
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        match &self.dir {
            Some(dir) if Path::new(path).is_relative() => dir.join(path),
            _ => PathBuf::from(path),
        }
    }
}

/// Where the team's notices about each channel's conversations go: on the
/// channel itself when it is connected, else on the first connected channel
/// (a replayed Discord conversation's nudges reach a team on email only).
fn staff_route(connected: &[Channel]) -> std::collections::HashMap<Channel, Channel> {
    let Some(first) = connected.first() else { return Default::default() };
    Channel::ALL.into_iter().filter(|c| !connected.contains(c)).map(|c| (c, *first)).collect()
}

/// A database URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        Config::parse(text, "test.toml", None)
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = Config::parse("", "x", None).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
        assert_eq!((c.policy.first_response, c.policy.warn_at_percent), (3600, 75));
        assert_eq!(c.policy.escalations, vec![Escalation { after: 3600, to: Recipient::Managers }]);
        assert_eq!((c.policy.survey_delay, c.policy.survey_throttle), (3600, 30 * 86_400));
        assert_eq!((c.rules.pass_score(), c.mode), (70, Mode::Coach));
    }

    #[test]
    fn the_issue_example_parses() {
        let c = Config::parse(
            r#"
[database]
url = "sqlite://concierge.db"
[business_hours]
time_zone = "America/New_York"
mon = ["09:00-17:00"]
tue = ["09:00-12:00", "13:00-17:00"]
sat = ["00:00-24:00"]
holidays = ["2026-12-25"]
[sla]
first_response = "1h 30m"
next_response = "4h"
warn_at = "80%"
escalate_after = ["1h", "4h"]
escalate_to = ["agents", "managers"]
[standards]
pass_score = 80
mode = "enforce"
[surveys]
delay = "2h"
throttle = "30d"
"#,
            "x",
            None,
        )
        .unwrap();
        assert_eq!(
            (c.policy.first_response, c.policy.next_response, c.policy.warn_at_percent),
            (5400, Some(4 * 3600), 80)
        );
        assert_eq!(c.policy.escalations[1], Escalation { after: 4 * 3600, to: Recipient::Managers });
        assert_eq!((c.rules.pass_score(), c.mode), (80, Mode::Enforce));
        assert_eq!(c.policy.hours.time_zone().iana_name(), Some("America/New_York"));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key() {
        let found = problems(
            r#"
[business_hours]
time_zone = "Mars/Olympus"
mon = ["17:00-09:00"]
tue = ["09:00-12:00", "11:00-17:00"]
holidays = ["Christmas"]
colour = "blue"
[sla]
first_response = "an hour"
warn_at = "150"
[surveys]
delay = "5x"
[standards]
mode = "strict"
[extra]
"#,
        );
        let keys: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "extra",
                "business_hours.colour",
                "business_hours.time_zone",
                "business_hours.mon",
                "business_hours.holidays",
                "business_hours.tue",
                "sla.first_response",
                "sla.warn_at",
                "surveys.delay",
                "standards.mode",
            ],
            "{found:#?}"
        );
        assert!(found[2].contains("not a known IANA time zone"), "{}", found[2]);
        assert!(found[3].contains("cross midnight"), "{}", found[3]);
    }

    #[test]
    fn overlapping_intervals_name_the_day() {
        let found = problems("[business_hours]\ntime_zone = \"UTC\"\ntue = [\"09:00-12:00\", \"11:00-17:00\"]\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("business_hours.tue: ") && found[0].contains("overlap"), "{}", found[0]);
    }

    #[test]
    fn business_hours_without_a_time_zone_are_in_utc() {
        let c = Config::parse("[business_hours]\nmon = [\"09:00-17:00\"]\n", "x", None).unwrap();
        assert_eq!(c.policy.hours.time_zone(), &TimeZone::UTC);
    }

    #[test]
    fn a_bad_time_zone_does_not_hide_overlapping_intervals() {
        // Regression (issue 6): the overlap on tue went unreported.
        let found = problems(
            "[business_hours]\ntime_zone = \"Mars/Olympus\"\ntue = [\"09:00-12:00\", \"11:00-17:00\"]\nwed = [\"09:00-12:00\", \"10:00-11:00\"]\n",
        );
        let keys: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap()).collect();
        assert_eq!(keys, ["business_hours.time_zone", "business_hours.tue", "business_hours.wed"], "{found:#?}");
    }

    #[test]
    fn a_target_the_hours_cannot_supply_is_refused_by_key() {
        // Regression (issue 6): `sla due` looped forever with this config.
        let found = problems(
            "[business_hours]\ntime_zone = \"UTC\"\nmon = [\"09:00-09:01\"]\n[sla]\nfirst_response = \"3650d\"\n",
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("sla.first_response: ") && found[0].contains("years"), "{}", found[0]);
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let found = problems("[sla]\nfirst_response = \"1h\"\nwarn_at = \n");
        assert!(found[0].contains("line 3"), "{found:?}");
    }

    #[test]
    fn a_rules_file_with_a_bad_regex_names_the_file_and_rule() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rules.toml"), "[[rule]]\nid = \"x\"\nforbid = \"(\"\n").unwrap();
        let err = Config::parse("[standards]\nrules = \"rules.toml\"\n", "c.toml", Some(dir.path())).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.key, "standards.rules");
        assert!(p.message.contains("rules.toml: rule \"x\": `forbid` is not a valid regex"), "{}", p.message);
    }

    #[test]
    fn an_email_section_is_validated_and_the_password_read_only_when_the_channel_starts() {
        let text = r#"
[email]
imap_host = "imap.example.com"
smtp_host = "smtp.example.com"
username = "support@example.com"
password_env = "CONCIERGE_TEST_MAIL_PW"
address = "Support@Example.com"
tls = "starttls"
agents = ["*@example.com", "lead@partner.example"]
managers = ["boss@example.com"]
resolve_after_silence = "3d"
authserv_id = "MX.Example.com"
"#;
        // Validating needs no password: `report` and `resolve` run without it.
        let c = Config::parse_with_env(text, "x", None, &std::collections::HashMap::new()).unwrap();
        let e = c.channels.email.unwrap();
        assert_eq!((e.imap_port, e.smtp_port, e.tls), (143, 587, crate::channels::email::settings::Tls::StartTls));
        assert_eq!(e.address, "support@example.com");
        assert_eq!((e.mailboxes.clone(), e.resolve_after_silence), (vec!["INBOX".to_string()], Some(3 * 86_400)));
        assert!(e.is_agent("kim@example.com") && e.is_agent("LEAD@partner.example") && !e.is_agent("ana@gmail.com"));
        assert_eq!((e.authserv_ids.clone(), e.agent_reply_tags), (vec!["mx.example.com".to_string()], true));
        assert_eq!(c.policy.announce, [Channel::Email].into(), "email tickets are announced to the agents");
        assert_eq!(c.policy.staff_channel(Channel::Discord), Channel::Email);
        let env: std::collections::HashMap<String, String> =
            [("CONCIERGE_TEST_MAIL_PW".to_string(), "s3cret".to_string())].into();
        let e = e.with_password(&env).unwrap();
        assert_eq!(e.password.0, "s3cret");
        assert!(!format!("{e:?}").contains("s3cret"));
    }

    #[test]
    fn a_broken_email_section_names_every_key_to_fix() {
        let found = problems(
            "[email]\nimap_host = \"imap.example.com\"\nimap_port = 99999\ntls = \"ssl\"\nagents = [\"sam\"]\nfolder = \"x\"\nsmtp_auth = \"no\"\nauthserv_id = [\"mx.example.com\", \"mx example; x\"]\nagent_reply_tags = \"yes\"\n",
        );
        let keys: Vec<&str> = found.iter().map(|p| p.split(": ").next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "email.folder",
                "email.tls",
                "email.smtp_host",
                "email.username",
                "email.address",
                "email.imap_port",
                "email.smtp_auth",
                "email.password_env",
                "email.agents",
                "email.authserv_id",
                "email.agent_reply_tags",
            ],
            "{found:#?}"
        );
        assert!(found[9].contains("\"mx example; x\" is not a server name"), "{}", found[9]);
        assert!(found[7].contains("is missing; name the environment variable"), "{}", found[7]);
    }

    #[test]
    fn an_unknown_escalation_recipient_is_a_problem_not_a_silent_fallback() {
        let found = problems("[sla]\nescalate_after = [\"1h\", \"2h\"]\nescalate_to = [\"managers\", \"team-lead\"]\n");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("sla.escalate_to: \"team-lead\" is not a recipient"), "{}", found[0]);
    }

    #[test]
    fn a_responses_dir_overrides_only_the_templates_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("brand")).unwrap();
        std::fs::write(dir.path().join("brand/email.html"), "<b>{body}</b>").unwrap();
        let c = Config::parse("[responses]\ndir = \"brand\"\n", "c.toml", Some(dir.path())).unwrap();
        assert_eq!(c.templates.email_html, "<b>{body}</b>");
        assert_eq!(c.templates.acknowledgement, Templates::builtin().acknowledgement);
        let err = Config::parse("[responses]\ndir = \"missing\"\n", "c.toml", Some(dir.path())).unwrap_err();
        assert_eq!(err.problems[0].key, "responses.dir");
    }

    #[test]
    fn a_holiday_list_as_long_as_a_config_file_may_be_is_read_and_clocks_still_finish() {
        // ~60,000 consecutive holidays (about 900 KB, under the 1 MB file limit).
        let first = jiff::civil::date(2026, 11, 23);
        let days: Vec<String> =
            (0..60_000).map(|i| format!("\"{}\"", first.checked_add(jiff::Span::new().days(i)).unwrap())).collect();
        let text = format!(
            "[business_hours]\ntime_zone = \"UTC\"\nmon = [\"09:00-17:00\"]\nholidays = [{}]\n",
            days.join(",")
        );
        let c = Config::parse(&text, "x", None).unwrap();
        let from: jiff::Timestamp = "2026-11-23T10:00:00Z".parse().unwrap();
        let due = c.policy.hours.add(from, 3600).expect("open again after the holidays");
        assert!(due > "2190-01-01T00:00:00Z".parse().unwrap(), "{due}");
    }

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(redact_url("postgres://bob:hunter2@db/x"), "postgres://bob:***@db/x");
        assert_eq!(redact_url("sqlite://concierge.db"), "sqlite://concierge.db");
    }
}
