//! The command-line contract, run through the real binary as a user would.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::helpers::{concierge, databases, temp_file};

fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    // The command may exit (e.g. on a usage error) before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const GOOD: &str =
    "Hi Ana,\n\nThanks for writing. The invoice is fixed.\n\nLet me know if anything else comes up.\nBest, Sam";

#[test]
fn check_prints_the_json_contract_and_exits_0_for_a_passing_reply() {
    let o = run(concierge().args(["check", "--customer-name", "Ana Lima", "--first", "--format", "json"]), GOOD);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v, serde_json::json!({"score": 100, "passed": true, "findings": []}));
}

#[test]
fn check_exits_1_with_findings_and_spans_for_a_poor_reply() {
    let reply = "Hi Ana, as I already said, restart it. Thanks";
    let o = run(concierge().args(["check", "--customer-name", "Ana", "--format", "json"]), reply);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["passed"], false);
    let f = &v["findings"][0];
    assert_eq!((f["rule"].as_str(), f["severity"].as_str()), (Some("no-dismissive"), Some("error")));
    let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["end", "message", "rewrite", "rule", "sentence", "severity", "start", "suggestion"]);
    let (start, end) = (f["start"].as_u64().unwrap() as usize, f["end"].as_u64().unwrap() as usize);
    assert_eq!(&reply[start..end], "as I already said");
    assert_eq!(f["sentence"], "Hi Ana, as I already said, restart it.");
    assert_eq!(f["rewrite"], "Hi Ana, to recap, restart it.");
}

#[test]
fn check_applies_the_late_rule_only_when_asked_and_prints_text_feedback() {
    let o = run(concierge().args(["check", "--customer-name", "Ana", "--first", "--late"]), GOOD);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("apologise"), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("Reply score 80/100: passed."), "{}", stdout(&o));
}

#[test]
fn check_refuses_an_empty_reply_late_implies_first_and_text_names_the_rule_and_phrase() {
    for empty in ["", "  \n\t "] {
        let o = run(concierge().arg("check"), empty);
        assert_eq!(o.status.code(), Some(2), "{empty:?}");
        assert!(stderr(&o).contains("the reply is empty"), "{}", stderr(&o));
    }
    // --late alone checks a late first reply: the apology rule applies.
    let o = run(concierge().args(["check", "--customer-name", "Ana", "--late"]), GOOD);
    assert!(stdout(&o).contains("apolog"), "{}", stdout(&o));
    let o = run(concierge().args(["check", "--customer-name", "Ana"]), "Hi Ana, as I already said, restart it. Thanks");
    assert!(stdout(&o).contains("[error] no-dismissive (\"as I already said\")"), "{}", stdout(&o));
    // Mistyped commands and flags get a suggestion.
    let o = run(concierge().arg("chekc"), "");
    assert!(stderr(&o).contains("similar subcommand") && stderr(&o).contains("check"), "{}", stderr(&o));
    let o = run(concierge().args(["check", "--frist"]), "x");
    assert!(stderr(&o).contains("--first"), "{}", stderr(&o));
}

#[test]
fn usage_and_config_errors_exit_2_and_name_every_problem() {
    let o = run(concierge().args(["check", "--no-such-flag"]), "");
    assert_eq!(o.status.code(), Some(2));
    let (_dir, config) = temp_file(
        "bad.toml",
        "[sla]\nfirst_response = \"soon\"\n[business_hours]\ntime_zone = \"Nowhere/Land\"\nmon = [\"17:00-09:00\"]\n[colour]\n",
    );
    let o = run(concierge().arg("--config").arg(&config).args(["check"]), GOOD);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    for needle in
        ["bad.toml: 4 problems", "colour", "business_hours.time_zone", "business_hours.mon", "sla.first_response"]
    {
        assert!(err.contains(needle), "missing {needle:?} in {err}");
    }
    let o = run(concierge().args(["--config", "/nonexistent/concierge.toml", "check"]), GOOD);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read the file"), "{}", stderr(&o));
}

#[test]
fn a_bad_rules_file_names_the_file_and_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.toml"), "[[rule]]\nid = \"polite\"\nrequire = \"(please\"\n").unwrap();
    std::fs::write(dir.path().join("c.toml"), "[standards]\nrules = \"rules.toml\"\n").unwrap();
    let o = run(concierge().arg("--config").arg(dir.path().join("c.toml")).arg("check"), GOOD);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rules.toml: rule \"polite\": `require` is not a valid regex"), "{}", stderr(&o));
}

const HOURS: &str = "[business_hours]\ntime_zone = \"America/New_York\"\nmon = [\"09:00-17:00\"]\ntue = [\"09:00-17:00\"]\n\
                     [sla]\nfirst_response = \"2h\"\n";

#[test]
fn sla_due_and_elapsed_use_the_configured_business_hours() {
    let (_dir, config) = temp_file("c.toml", HOURS);
    // Monday 16:00 New York + 2h business: 1h Monday, 1h Tuesday -> 10:00 EST = 15:00Z.
    let o = run(concierge().arg("--config").arg(&config).args(["sla", "due", "--from", "2026-11-23T21:00:00Z"]), "");
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "2026-11-24T15:00:00Z\n"), "{}", stderr(&o));
    let o = run(
        concierge().arg("--config").arg(&config).args([
            "sla",
            "due",
            "--from",
            "2026-11-23T16:00:00-05:00",
            "--within",
            "1h",
        ]),
        "",
    );
    // Used up exactly at closing: due at the next opening.
    assert_eq!(stdout(&o), "2026-11-24T14:00:00Z\n");
    let o = run(
        concierge().arg("--config").arg(&config).args([
            "sla",
            "elapsed",
            "--from",
            "2026-11-23T00:00:00Z",
            "--to",
            "2026-11-25T00:00:00Z",
        ]),
        "",
    );
    assert_eq!(stdout(&o), "57600\n");
}

#[test]
fn a_span_moved_out_of_a_skipped_dst_hour_adds_to_the_days_other_spans() {
    // Issue 12's reproductions, run as users run them.
    let sla = |config: &std::path::Path, args: &[&str]| {
        let o = run(concierge().arg("--config").arg(config).arg("sla").args(args), "");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let (_dir, berlin) = temp_file(
        "berlin.toml",
        "[business_hours]\ntime_zone = \"Europe/Berlin\"\nmon = [\"09:00-17:00\"]\nsun = [\"02:15-02:45\", \"03:00-12:00\"]\n",
    );
    assert_eq!(sla(&berlin, &["due", "--from", "2026-03-28T23:00:00Z", "--within", "1m"]), "2026-03-29T01:01:00Z\n");
    assert_eq!(sla(&berlin, &["due", "--from", "2026-03-28T23:00:00Z", "--within", "9h"]), "2026-03-30T07:00:00Z\n");
    assert_eq!(sla(&berlin, &["elapsed", "--from", "2026-03-28T23:00:00Z", "--to", "2026-03-29T12:00:00Z"]), "32400\n");
    let (_dir, london) = temp_file(
        "london.toml",
        "[business_hours]\ntime_zone = \"Europe/London\"\nsun = [\"01:30-01:59\", \"02:00-02:59\"]\n",
    );
    assert_eq!(sla(&london, &["elapsed", "--from", "2019-03-31T01:00:00Z", "--to", "2019-03-31T01:30:00Z"]), "1800\n");
}

#[test]
fn sla_rejects_bad_instants_durations_and_reversed_ranges_with_exit_2() {
    for args in [
        &["sla", "due", "--from", "tomorrow"][..],
        &["sla", "due", "--from", "2026-11-23T21:00:00Z", "--within", "a while"],
        &["sla", "elapsed", "--from", "2026-11-24T00:00:00Z", "--to", "2026-11-23T00:00:00Z"],
        &["sla", "due"],
    ] {
        let o = run(concierge().args(args), "");
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!stderr(&o).is_empty());
    }
    let o = run(concierge().args(["sla", "due", "--from", "tomorrow"]), "");
    assert!(stderr(&o).contains("--from \"tomorrow\" is not an RFC3339 instant"), "{}", stderr(&o));
    let o = run(concierge().args(["sla", "due", "--from", "2026-11-23T10:00:00Z", "--within", "1.5h"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("decimals are not supported; write \"1h 30m\""), "{}", stderr(&o));
    let o = run(concierge().args(["sla", "due", "--from", "2026-11-23T10:00:00+25:00"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("offset"), "{}", stderr(&o));
}

#[test]
fn sla_due_with_no_opening_before_the_end_of_time_ends_at_once_with_exit_2() {
    // Regression (issue 6): this looped forever at 100% CPU.
    let o = run(concierge().args(["sla", "due", "--from", "9999-12-30T16:30:00Z"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("after the year 9999"), "{}", stderr(&o));
    let (_dir, path) = temp_file(
        "c.toml",
        "[business_hours]\ntime_zone = \"UTC\"\nmon = [\"09:00-09:01\"]\n[sla]\nfirst_response = \"3650d\"\n",
    );
    let o = run(concierge().arg("--config").arg(&path).args(["sla", "due", "--from", "2026-11-23T00:00:00Z"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("sla.first_response"), "{}", stderr(&o));
}

/// A config file for `db` in a temp dir.
fn db_config(url: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    temp_file(
        "concierge.toml",
        &format!("[database]\nurl = \"{url}\"\n{HOURS}[surveys]\ndelay = \"1h\"\n[http]\nlisten = \"127.0.0.1:0\"\n"),
    )
}

const HISTORY: &str = r#"{"at":"2026-11-23T14:00:00Z","kind":"message","channel":"email","thread":"t1","id":"m1","author":{"role":"customer","id":"ana@example.com","name":"Ana Lima"},"text":"My invoice is wrong"}
{"at":"2026-11-23T14:00:00Z","kind":"message","channel":"discord","thread":"c9","id":"d1","author":{"role":"customer","id":"4242","name":"Bo"},"text":"Bot down"}
{"at":"2026-11-23T16:00:00Z","kind":"message","channel":"email","thread":"t1","id":"m2","author":{"role":"agent","id":"sam","name":"Sam"},"text":"Hi Ana,\n\nThanks for writing. The invoice is fixed.\n\nLet me know if anything else comes up.\nBest, Sam"}
{"at":"2026-11-23T16:30:00Z","kind":"resolve","thread":"t1","by":"sam"}
{"at":"2026-11-23T19:00:00Z","kind":"survey_answer","thread":"t1","score":4,"comment":"ok I guess"}
"#;

#[tokio::test]
async fn replay_prints_actions_as_json_lines_and_a_second_replay_adds_nothing_on_every_backend() {
    for db in databases().await {
        let (dir, config) = db_config(&db.url);
        let history = dir.path().join("history.jsonl");
        std::fs::write(&history, HISTORY).unwrap();
        let replay = || {
            run(
                concierge().arg("--config").arg(&config).arg("replay").arg(&history).args([
                    "--until",
                    "2026-11-24T00:00:00Z",
                    "--print-actions",
                ]),
                "",
            )
        };
        let o = replay();
        assert_eq!(o.status.code(), Some(0), "{}: {}", db.backend, stderr(&o));
        let actions: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let summary: Vec<(String, String, String, String)> = actions
            .iter()
            .map(|a| {
                let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(keys, ["at", "kind", "thread", "to"]);
                let s = |k: &str| a[k].as_str().unwrap().to_string();
                (s("at"), s("kind"), s("thread"), s("to"))
            })
            .collect();
        let expected: Vec<(String, String, String, String)> = [
            ("2026-11-23T14:00:00Z", "acknowledgement", "t1", "ana@example.com"),
            ("2026-11-23T14:00:00Z", "acknowledgement", "c9", "4242"),
            ("2026-11-23T15:30:00Z", "nudge_warning", "t1", "agents"),
            ("2026-11-23T15:30:00Z", "nudge_warning", "c9", "agents"),
            // The reply to t1 at exactly its due instant is on time: no breach.
            ("2026-11-23T16:00:00Z", "nudge_breach", "c9", "agents"),
            ("2026-11-23T17:30:00Z", "survey", "t1", "ana@example.com"),
            ("2026-11-23T19:00:00Z", "detractor_alert", "t1", "managers"),
            // Escalation: 1h of business time past the due instant.
            ("2026-11-23T17:00:00Z", "escalation", "c9", "managers"),
        ]
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
        let mut sorted_expected = expected.clone();
        sorted_expected.sort();
        let mut sorted = summary.clone();
        sorted.sort();
        assert_eq!(sorted, sorted_expected, "{}", db.backend);
        let again = replay();
        assert_eq!((again.status.code(), stdout(&again).as_str()), (Some(0), ""), "{}", db.backend);
        assert!(stderr(&again).contains("5 already stored"), "{}", stderr(&again));
    }
}

#[test]
fn replay_reads_standard_input_for_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let (_cdir, config) = db_config(&format!("sqlite://{}", dir.path().join("c.db").display()));
    let events = stdout(&run(concierge().args(["demo", "--events"]), ""));
    let o = run(concierge().arg("--config").arg(&config).args(["replay", "-"]), &events);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("replayed") && stderr(&o).contains("applied"), "{}", stderr(&o));
    let o = run(concierge().arg("--config").arg(&config).args(["replay", "-"]), "{\"at\": \"2026-11-23T14:00:00\"}\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("stdin:1: \"at\": \"2026-11-23T14:00:00\" has no time zone"), "{}", stderr(&o));
}

#[tokio::test]
async fn a_file_with_bad_lines_lists_every_one_exits_2_and_imports_nothing() {
    for db in databases().await {
        let (dir, config) = db_config(&db.url);
        let history = dir.path().join("bad.jsonl");
        let mut text = HISTORY.to_string();
        text.push_str("{\"at\":\"2026-11-23T19:00:00Z\",\"kind\":\"survey_answer\",\"thread\":\"t1\",\"score\":12}\n");
        text.push_str("{oops\n");
        std::fs::write(&history, text).unwrap();
        let o = run(concierge().arg("--config").arg(&config).arg("replay").arg(&history), "");
        assert_eq!(o.status.code(), Some(2), "{}", db.backend);
        let err = stderr(&o);
        let name = history.display().to_string();
        assert!(err.contains(&format!("{name}:6: `score` is 12")), "{err}");
        assert!(err.contains(&format!("{name}:7: ")), "{err}");
        assert!(err.contains("nothing was imported"), "{err}");
        // Nothing was imported: the week's report is empty.
        let o = run(
            concierge().arg("--config").arg(&config).args([
                "report",
                "--week",
                "2026-W48",
                "--as-of",
                "2026-11-30T00:00:00Z",
                "--format",
                "json",
            ]),
            "",
        );
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["conversations"]["opened"], 0, "{}", db.backend);
    }
}

#[tokio::test]
async fn report_gives_the_json_contract_and_every_format_on_every_backend() {
    for db in databases().await {
        let (dir, config) = db_config(&db.url);
        let history = dir.path().join("history.jsonl");
        std::fs::write(&history, HISTORY).unwrap();
        let o = run(
            concierge()
                .arg("--config")
                .arg(&config)
                .arg("replay")
                .arg(&history)
                .args(["--until", "2026-11-24T00:00:00Z"]),
            "",
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let report = |format: &str, as_of: &str| {
            run(
                concierge()
                    .arg("--config")
                    .arg(&config)
                    .args(["report", "--week", "2026-W48", "--as-of", as_of, "--format", format]),
                "",
            )
        };
        let o = report("json", "2026-11-24T00:00:00Z");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        let got = |path: &str| path.split('.').fold(&v, |v, k| &v[k]).clone();
        for (path, expected) in [
            ("week", serde_json::json!("2026-W48")),
            ("conversations.opened", 2.into()),
            ("conversations.resolved", 1.into()),
            ("first_response.answered", 1.into()),
            ("first_response.median_seconds", 7200.into()),
            ("first_response.p90_seconds", 7200.into()),
            ("first_response.business_median_seconds", 7200.into()),
            ("sla.met", 1.into()),
            ("sla.breached", 1.into()),
            ("sla.met_percent", 50.0.into()),
            ("standards.replies_checked", 1.into()),
            ("standards.findings_by_rule", serde_json::json!({})),
            ("nps.responses", 1.into()),
            ("nps.promoters", 0.into()),
            ("nps.passives", 0.into()),
            ("nps.detractors", 1.into()),
            ("nps.score", (-100).into()),
        ] {
            assert_eq!(got(path), expected, "{path} on {}", db.backend);
        }
        assert_eq!(
            v["agents"],
            serde_json::json!([{"id": "sam", "replies": 1, "first_responses": 1, "median_first_response_seconds": 7200, "findings": 0}])
        );
        // As of before the reply, t1 was pending and c9 not yet due.
        let early: Value = serde_json::from_str(&stdout(&report("json", "2026-11-23T15:00:00Z"))).unwrap();
        assert_eq!((early["sla"]["met"].as_u64(), early["sla"]["pending"].as_u64()), (Some(0), Some(2)));
        assert_eq!(early["sla"]["met_percent"], Value::Null);
        for (format, needle) in [
            ("text", "Weekly support summary 2026-W48"),
            ("markdown", "| Conversations opened | 2 | 0 |"),
            ("csv", "sla.met_percent,50.0,"),
            ("html", "<svg"),
        ] {
            let o = report(format, "2026-11-24T00:00:00Z");
            assert_eq!(o.status.code(), Some(0));
            assert!(stdout(&o).contains(needle), "{format}: {}", stdout(&o));
        }
    }
}

#[test]
fn report_rejects_a_bad_week_or_instant_with_exit_2() {
    for args in [&["report", "--week", "2026-48"][..], &["report", "--week", "2026-W48", "--as-of", "now"], &["report"]]
    {
        let o = run(concierge().args(args).env("HOME", "/nonexistent"), "");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn demo_replays_the_built_in_weeks_and_prints_the_report() {
    let o = run(concierge().arg("demo"), "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["Weekly support summary 2026-W47", "First response", "SLA", "NPS", "sam", "kim", "lee"] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    let o = run(concierge().args(["demo", "--format", "json"]), "");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["conversations"]["opened"].as_u64().unwrap() > 30);
    assert!(v["sla"]["breached"].as_u64().unwrap() > 0, "the demo has late replies");
    assert!(v["nps"]["detractors"].as_u64().unwrap() > 0 && v["nps"]["promoters"].as_u64().unwrap() > 0);
    assert!(!v["standards"]["findings_by_rule"].as_object().unwrap().is_empty());
    assert_eq!(v["previous"]["week"], "2026-W46");
}

#[test]
fn the_demo_database_and_its_printed_config_give_the_same_report_and_the_demo_guards_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let o = run(concierge().args(["demo", "--database", &url]), "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let demo_report = stdout(&o);
    // A database that already holds data is refused, unless --force.
    let o = run(concierge().args(["demo", "--database", &url]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already holds") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(run(concierge().args(["demo", "--database", &url, "--force"]), "").status.code(), Some(0));
    // --print-config, pointed at that database, reproduces the report.
    let config = stdout(&run(concierge().args(["demo", "--print-config"]), "")).replace("sqlite://demo.db", &url);
    let path = dir.path().join("demo.toml");
    std::fs::write(&path, config).unwrap();
    let o = run(
        concierge().arg("--config").arg(&path).args([
            "report",
            "--week",
            "2026-W47",
            "--as-of",
            "2026-11-23T17:00:00Z",
        ]),
        "",
    );
    assert_eq!(stdout(&o), demo_report);
    // The demo has its own configuration: --config is refused, not ignored.
    let o = run(concierge().arg("--config").arg(&path).arg("demo"), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--print-config"), "{}", stderr(&o));
}

#[tokio::test]
async fn migrate_prepares_the_database_one_run_at_a_time_which_stops_cleanly_on_sigterm() {
    for db in databases().await {
        let (_dir, config) = db_config(&db.url);
        let o = run(concierge().arg("--config").arg(&config).arg("migrate"), "");
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("applied") && stdout(&o).contains("0001 init"), "{}", stdout(&o));
        let o = run(concierge().arg("--config").arg(&config).arg("migrate"), "");
        assert_eq!(stdout(&o).lines().count(), 1, "nothing new the second time: {}", stdout(&o));
        assert!(stdout(&o).contains("is up to date"));
        let mut child = concierge()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it says it is serving, then ask it to stop.
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("no channels are configured") {
            let mut line = String::new();
            assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0, "run exited early: {seen}");
            seen.push_str(&line);
        }
        if db.backend == "sqlite" {
            // A second instance on a SQLite database refuses to start.
            let second = run(concierge().arg("--config").arg(&config).arg("run"), "");
            assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
            assert!(
                stderr(&second).contains("another `concierge run` is already using the database")
                    && stderr(&second).contains("use PostgreSQL"),
                "{}",
                stderr(&second)
            );
        } else {
            // On PostgreSQL it stands by (and stops cleanly on SIGTERM too).
            let mut second =
                concierge().arg("--config").arg(&config).arg("run").stderr(Stdio::piped()).spawn().unwrap();
            let mut err2 = std::io::BufReader::new(second.stderr.take().unwrap());
            let mut said = String::new();
            while !said.contains("standing by: another instance is active") {
                let mut line = String::new();
                assert!(std::io::BufRead::read_line(&mut err2, &mut line).unwrap() > 0, "second exited: {said}");
                said.push_str(&line);
            }
            assert!(!said.contains("no channels are configured"), "a standby serves nothing: {said}");
            Command::new("kill").args(["-TERM", &second.id().to_string()]).status().unwrap();
            assert_eq!(second.wait().unwrap().code(), Some(0));
        }
        let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}: {seen}", db.backend);
    }
}

#[test]
fn replay_of_a_missing_file_or_with_a_bad_until_exits_2_and_says_why() {
    let db = crate::helpers::sqlite();
    let (dir, config) = db_config(&db.url);
    let o = run(concierge().arg("--config").arg(&config).args(["replay", "/nonexistent/history.jsonl"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/history.jsonl: cannot read"), "{}", stderr(&o));
    let history = dir.path().join("h.jsonl");
    std::fs::write(&history, HISTORY).unwrap();
    let o = run(concierge().arg("--config").arg(&config).arg("replay").arg(&history).args(["--until", "soon"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--until \"soon\" is not an RFC3339 instant"), "{}", stderr(&o));
}

#[test]
fn report_and_resolve_need_no_channel_secret_but_run_names_the_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"sqlite://{}\"\n[email]\nimap_host = \"127.0.0.1\"\nsmtp_host = \"127.0.0.1\"\nusername = \"support\"\npassword_env = \"CONCIERGE_TEST_NEVER_SET\"\naddress = \"support@example.test\"\nagents = [\"sam@example.test\"]\n",
            dir.path().join("c.db").display()
        ),
    )
    .unwrap();
    let o = run(concierge().arg("--config").arg(&config).args(["report", "--week", "2026-W48"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(concierge().arg("--config").arg(&config).args(["resolve", "NOPE0000"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no conversation has ticket"), "{}", stderr(&o));
    let o = run(concierge().arg("--config").arg(&config).arg("run"), "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("email.password_env: $CONCIERGE_TEST_NEVER_SET is not set"), "{}", stderr(&o));
}

#[test]
fn run_reports_a_missing_token_variable_with_every_other_problem_at_once() {
    let (_dir, config) = temp_file(
        "c.toml",
        "[discord]\ntoken_env = \"CONCIERGE_TEST_NO_SUCH_TOKEN\"\nguild_id = \"my server\"\nsupport_channels = []\nstaff_channel = \"800000000000000202\"\nagent_role = \"Agents\"\nmanager_role = \"Managers\"\n",
    );
    let o = run(concierge().arg("--config").arg(&config).arg("run"), "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    for key in ["discord.guild_id: \"my server\" is not a Discord id", "discord.support_channels: is empty"] {
        assert!(err.contains(key), "{key}: {err}");
    }
    assert!(err.contains("discord.token_env: $CONCIERGE_TEST_NO_SUCH_TOKEN is not set"), "{err}");
}

#[test]
fn an_unreachable_database_fails_at_once_with_the_cause() {
    let (_dir, config) = temp_file("c.toml", "[database]\nurl = \"postgres://concierge:secret@127.0.0.1:1/nothing\"\n");
    let o = run(concierge().arg("--config").arg(&config).arg("migrate"), "");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("Connection refused") && err.contains("check database.url"), "{err}");
    assert!(!err.contains("secret") && !err.contains("mode=rwc"), "{err}");
}

#[test]
fn the_readme_shows_the_demo_report_exactly_as_concierge_demo_prints_it() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = readme.split("```text\n").nth(1).and_then(|rest| rest.split("```").next()).expect("a text block");
    let o = run(concierge().arg("demo"), "");
    assert_eq!(stdout(&o), shown, "update the README's demo report");
}

#[test]
fn check_batch_writes_one_result_per_line_reports_bad_lines_and_keeps_going() {
    let lines = [
        r#"{"text": "Hi Ana,\n\nThanks for writing. The invoice is fixed.\n\nLet me know if anything else comes up.\nBest, Sam", "customer_name": "Ana Lima", "first": true}"#,
        "not json",
        r#"{"text": "Hi Ana, as I already said, restart it. Thanks", "customer_name": "Ana", "id": "T-9"}"#,
        r#"{"txt": "typo"}"#,
    ]
    .join("\n");
    let (_dir, file) = temp_file("replies.jsonl", &lines);
    let o = run(concierge().arg("check").arg("--batch").arg(&file), "");
    assert_eq!(o.status.code(), Some(1), "a reply failed: {}", stderr(&o));
    let results: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 2);
    assert_eq!((results[0]["line"].as_u64(), results[0]["passed"].as_bool()), (Some(1), Some(true)));
    assert_eq!((results[1]["line"].as_u64(), results[1]["passed"].as_bool()), (Some(3), Some(false)));
    assert_eq!(results[1]["id"], "T-9");
    assert_eq!(results[1]["findings"][0]["rule"], "no-dismissive");
    let err = stderr(&o);
    assert!(
        err.contains("replies.jsonl:2: not a JSON object") && err.contains("replies.jsonl:4: missing field `text`"),
        "{err}"
    );
    // Bad lines but every reply passed: 2; all good: 0.
    let good_and_bad = [lines.lines().next().unwrap(), "not json"].join("\n");
    let o = run(concierge().args(["check", "--batch", "-"]), &good_and_bad);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin:2: not a JSON object"), "{}", stderr(&o));
    let o = run(concierge().args(["check", "--batch", "-"]), lines.lines().next().unwrap());
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn check_batch_reads_corpus_lines_with_their_channel_and_the_customers_words() {
    // A corpus line as it is (its `expect` and `rules` are ignored): a chat
    // follow-up needs no greeting; a curt answer to a long message is noted.
    let long = "word ".repeat(80);
    let lines = [
        r#"{"text": "On it, checking the logs now.", "customer_name": "Ana", "channel": "discord", "expect": "pass", "rules": []}"#.to_string(),
        format!(r#"{{"text": "Hi Ana, refunded. Best, Sam", "customer_name": "Ana", "customer_text": "{long}"}}"#),
    ]
    .join("\n");
    let o = run(concierge().args(["check", "--batch", "-"]), &lines);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let results: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results[0]["findings"], serde_json::json!([]));
    assert_eq!(results[1]["findings"][0]["rule"], "curt");
}

#[test]
fn the_readme_shows_the_standards_eval_exactly_as_it_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let shown = readme
        .split("$ concierge standards eval\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the eval block");
    let o = run(concierge().args(["standards", "eval"]), "");
    assert_eq!(stdout(&o), shown, "update the README's standards eval output");
}

/// The acceptance bar of the shipped rules: at least 95% agreement on each
/// half of the built-in corpus (tests/corpus/replies/).
#[test]
fn the_shipped_rules_agree_with_the_built_in_corpus() {
    let o = run(concierge().args(["standards", "eval", "--min", "95"]), "");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let replies: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("Agreement with the labels: "))
        .and_then(|l| l.split('/').nth(1))
        .and_then(|n| n.trim_end_matches(')').parse().ok())
        .expect("a total");
    assert!(replies >= 300, "{out}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus/replies");
    let o = run(concierge().args(["standards", "eval", "--min", "95"]).arg(dir), "");
    assert_eq!(o.status.code(), Some(0), "the files on disk agree too: {}", stdout(&o));
    assert_eq!(stdout(&o).lines().next(), out.lines().next());
}

#[test]
fn standards_eval_measures_agreement_on_a_team_corpus_and_fails_below_min() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"text": "Hi Ana, it's fixed. Let me know if anything else comes up. Best, Sam", "customer_name": "Ana", "expect": "pass", "rules": []}"#;
    let poor = r#"{"text": "Hi Ana, as I already said, restart it. Best, Sam", "customer_name": "Ana", "expect": "fail", "rules": ["no-dismissive"]}"#;
    let missed = r#"{"text": "Hi Ana, I've reset it, but honestly your questions bore me. Best, Sam", "customer_name": "Ana", "expect": "fail", "rules": ["condescension"]}"#;
    std::fs::write(dir.path().join("a.jsonl"), format!("{good}\n{poor}\n")).unwrap();
    let o = run(concierge().args(["standards", "eval"]).arg(dir.path()).args(["--min", "95"]), "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Agreement with the labels: 100.0% (2/2)"), "{}", stdout(&o));
    std::fs::write(dir.path().join("b.jsonl"), format!("{missed}\n")).unwrap();
    let o = run(concierge().args(["standards", "eval"]).arg(dir.path()).args(["--min", "95"]), "");
    assert_eq!(o.status.code(), Some(1), "the poor half is at 50%");
    assert!(stdout(&o).contains("poor replies (expected to fail): 50.0% (1/2)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("b.jsonl:1: expected fail"), "{}", stdout(&o));
    std::fs::write(dir.path().join("c.jsonl"), "{\"text\": \"x\"}\n").unwrap();
    let o = run(concierge().args(["standards", "eval"]).arg(dir.path()), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("c.jsonl:1: missing field `expect`"), "{}", stderr(&o));
}

#[tokio::test]
async fn detractor_follow_ups_are_listed_closed_once_and_counted_as_of_an_instant_on_every_backend() {
    for db in crate::helpers::databases().await {
        detractor_follow_ups(&db.url);
    }
}

fn detractor_follow_ups(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let url = url.to_string();
    assert_eq!(run(concierge().args(["demo", "--database", &url]), "").status.code(), Some(0));
    let config = dir.path().join("c.toml");
    let demo_config = run(concierge().args(["demo", "--print-config"]), "");
    std::fs::write(&config, stdout(&demo_config).replace("sqlite://demo.db", &url)).unwrap();
    let cmd = |args: &[&str]| run(concierge().arg("--config").arg(&config).args(args), "");
    let listed = |o: &std::process::Output| -> Vec<Value> {
        stdout(o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let before = listed(&cmd(&["followup", "list", "--format", "json"]));
    assert!(before.len() >= 4, "{before:?}");
    assert!(before.iter().all(|f| f["score"].as_u64().unwrap() <= 6 && f["waiting_seconds"].as_i64().unwrap() > 0));
    let id = before[0]["id"].as_str().unwrap().to_string();

    let o = cmd(&["followup", "done", &id, "--by", "boss", "--note", "called her back"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let after = listed(&cmd(&["followup", "list", "--format", "json"]));
    assert_eq!(after.len(), before.len() - 1);
    assert!(after.iter().all(|f| f["id"] != id.as_str()));
    let o = cmd(&["followup", "done", &id]);
    assert!(
        o.status.success() && stderr(&o).contains("closed already") && stderr(&o).contains("by boss"),
        "{}",
        stderr(&o)
    );
    let o = cmd(&["followup", "done", "NOPE-1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no follow-up has id NOPE-1"), "{}", stderr(&o));

    // The report as of an instant before the closure still shows it open; as
    // of now it is gone.
    let report = |as_of: &str| -> Value {
        let o = cmd(&["report", "--week", "2026-W47", "--format", "json", "--as-of", as_of]);
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    let then = report("2026-11-21T12:00:00Z");
    assert!(then["followups"]["items"].as_array().unwrap().iter().any(|f| f["id"] == id.as_str()), "{then}");
    let now = report(&jiff::Timestamp::now().to_string());
    assert!(now["followups"]["items"].as_array().unwrap().iter().all(|f| f["id"] != id.as_str()));
    assert_eq!(now["followups"]["open"].as_u64(), Some(after.len() as u64));
}

#[test]
fn endless_or_oversized_input_is_refused_at_once_with_the_file_and_the_limit() {
    // /dev/zero or /dev/stdin as the rules or the config: refused at once
    // (a device could block or never end); as a history or a batch: each
    // stops at its limit instead of filling memory. A file too large says so.
    for device in ["/dev/zero", "/dev/stdin"] {
        let (_dir, config) = temp_file("c.toml", &format!("[standards]\nrules = \"{device}\"\n"));
        let o = run(concierge().arg("--config").arg(&config).arg("check"), "Hi Ana. Best, Sam");
        assert_eq!(o.status.code(), Some(2));
        let expected = format!("standards.rules: {device}: not a regular file");
        assert!(stderr(&o).contains(&expected), "{}", stderr(&o));
    }
    let o = run(concierge().args(["--config", "/dev/zero", "check"]), "Hi Ana. Best, Sam");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("/dev/zero: 1 problem") && err.contains("not a regular file"), "{err}");
    let (_big_dir, big) = temp_file("big.toml", &format!("# {}\n", "x".repeat(1 << 20)));
    let o = run(concierge().arg("--config").arg(&big).arg("check"), "Hi Ana. Best, Sam");
    assert!(stderr(&o).contains("larger than 1 MiB; is it the right file?"), "{}", stderr(&o));
    let db = crate::helpers::sqlite();
    let (_d, config) = db_config(&db.url);
    let o = run(concierge().arg("--config").arg(&config).args(["replay", "/dev/zero"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/dev/zero:1: the line is longer than 1 MiB"), "{}", stderr(&o));
    let o = run(concierge().args(["check", "--batch", "/dev/zero"]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/dev/zero:1: the line is longer than 1 MiB"), "{}", stderr(&o));
    // A long line in the middle is named by its number.
    let long = format!("{{\"text\": \"Hi\"}}\n{{\"text\": \"{}\"}}\n", "x".repeat(2 << 20));
    let o = run(concierge().args(["check", "--batch", "-"]), &long);
    assert!(stderr(&o).contains("stdin:2: the line is longer than 1 MiB"), "{}", stderr(&o));
}

#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    // `concierge demo | head -1`: the pipe closes before the report is out.
    let mut child = concierge().arg("demo").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
}

/// Instants at the ends of time: year 1 replays like any other; past the
/// last instant concierge can hold, or with a clock that could not finish,
/// the line is refused with the reason and nothing is imported.
#[test]
fn replay_takes_year_one_and_refuses_instants_past_the_end_of_time_with_the_reason() {
    let db = crate::helpers::sqlite();
    let (dir, config) = db_config(&db.url);
    let line = |at: &str, thread: &str| {
        format!(
            r#"{{"at":"{at}","kind":"message","channel":"email","thread":"{thread}","id":"{thread}-1","author":{{"role":"customer","id":"a@x.test"}},"text":"hi"}}"#
        )
    };
    let file = dir.path().join("ends.jsonl");
    std::fs::write(
        &file,
        format!("{}\n{}\n", line("9999-12-31T10:00:00Z", "late"), line("9999-12-30T20:00:00Z", "edge")),
    )
    .unwrap();
    let o = run(concierge().arg("--config").arg(&config).arg("replay").arg(&file), "");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("ends.jsonl:1: \"at\": \"9999-12-31T10:00:00Z\" is out of range"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ends.jsonl:2: `at` 9999-12-30T20:00:00Z starts a first-response clock"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("nothing was imported"));
    std::fs::write(&file, format!("{}\n", line("0001-01-01T10:00:00Z", "ancient"))).unwrap();
    let o = run(concierge().arg("--config").arg(&config).arg("replay").arg(&file), "");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(
        concierge().arg("--config").arg(&config).args([
            "report",
            "--week",
            "0001-W01",
            "--as-of",
            "0001-01-05T00:00:00Z",
        ]),
        "",
    );
    assert!(stdout(&o).contains("1 opened"), "{}", stdout(&o));
}
