//! The weekly report as things stood at `--as-of` (issue 13), run as users
//! run it: `concierge replay` of a history, then `concierge report` at
//! instants around each event, on SQLite and PostgreSQL.

use serde_json::Value;

use crate::helpers::{concierge, databases};

const CONFIG: &str = r#"
[business_hours]
time_zone = "UTC"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
[sla]
first_response = "1h"
"#;

fn customer(at: &str, thread: &str, id: &str, text: &str) -> String {
    format!(
        r#"{{"at": "{at}", "kind": "message", "channel": "email", "thread": "{thread}", "id": "{id}", "author": {{"role": "customer", "id": "{thread}@example.com", "name": "Ana Lima"}}, "text": "{text}"}}"#
    )
}

fn agent(at: &str, thread: &str, id: &str, who: &str) -> String {
    format!(
        r#"{{"at": "{at}", "kind": "message", "channel": "email", "thread": "{thread}", "id": "{id}", "author": {{"role": "agent", "id": "{who}"}}, "text": "Hi Ana, thanks for writing. Sorry for the trouble with the invoice: it is fixed now. Best regards, {who}"}}"#
    )
}

fn resolve(at: &str, thread: &str, survey: bool) -> String {
    format!(r#"{{"at": "{at}", "kind": "resolve", "thread": "{thread}", "by": "sam", "survey": {survey}}}"#)
}

fn answer(at: &str, thread: &str, score: u8) -> String {
    format!(r#"{{"at": "{at}", "kind": "survey_answer", "thread": "{thread}", "score": {score}}}"#)
}

/// Week 2026-W47 (Monday 16 November, UTC):
/// - r2: answered in 30 min, resolved Monday 11:00, reopened by the customer
///   Tuesday 10:00, resolved again Tuesday 12:00 (the issue's reproduction 1);
/// - a1: started by agent kim, the customer answers, kim replies (2);
/// - a9: started by kim, nobody answers, resolved (3);
/// - s1: answered in 20 min, resolved with a survey (sent an hour later),
///   answered 9, then "answered" again 3: the first answer stands;
/// - d1: Friday 09:00, due 10:00, never answered.
fn history() -> String {
    [
        customer("2026-11-16T10:00:00Z", "r2", "r2-1", "My invoice is wrong"),
        agent("2026-11-16T10:30:00Z", "r2", "r2-2", "sam"),
        resolve("2026-11-16T11:00:00Z", "r2", false),
        customer("2026-11-17T10:00:00Z", "r2", "r2-3", "It is still wrong"),
        resolve("2026-11-17T12:00:00Z", "r2", false),
        agent("2026-11-18T10:00:00Z", "a1", "a1-1", "kim"),
        customer("2026-11-18T10:30:00Z", "a1", "a1-2", "How do I pay"),
        agent("2026-11-18T10:40:00Z", "a1", "a1-3", "kim"),
        agent("2026-11-18T11:00:00Z", "a9", "a9-1", "kim"),
        resolve("2026-11-18T11:30:00Z", "a9", false),
        customer("2026-11-19T10:00:00Z", "s1", "s1-1", "The export fails"),
        agent("2026-11-19T10:20:00Z", "s1", "s1-2", "sam"),
        resolve("2026-11-19T10:30:00Z", "s1", true),
        answer("2026-11-19T12:00:00Z", "s1", 9),
        answer("2026-11-19T12:05:00Z", "s1", 3),
        customer("2026-11-20T09:00:00Z", "d1", "d1-1", "Nobody answers"),
    ]
    .join("\n")
}

#[tokio::test]
async fn the_report_as_of_any_instant_counts_what_stood_then_agent_started_conversations_included() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("concierge.toml");
        std::fs::write(&config, format!("[database]\nurl = \"{}\"\n{CONFIG}", db.url)).unwrap();
        let events = dir.path().join("history.jsonl");
        std::fs::write(&events, history()).unwrap();
        let out = concierge()
            .arg("--config")
            .arg(&config)
            .args(["replay", "--until", "2026-11-23T00:00:00Z", "--print-actions"])
            .arg(&events)
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{}: {stderr}", db.backend);
        // The second answer changes nothing, and says so.
        let notices: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["kind"] == "notice")
            .collect();
        assert_eq!(notices.len(), 1, "{}: {stdout}", db.backend);
        assert_eq!(notices[0]["at"], "2026-11-19T12:05:00Z");
        assert_eq!(notices[0]["notice"], "thread \"s1\" has no survey awaiting an answer; answer ignored");
        assert!(stderr.contains("1 changed nothing"), "{}: {stderr}", db.backend);

        let report = |as_of: &str| -> Value {
            let out = concierge()
                .arg("--config")
                .arg(&config)
                .args(["report", "--week", "2026-W47", "--format", "json", "--as-of", as_of])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}: {}", db.backend, String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let figures = |as_of: &str| -> (u64, u64) {
            let r = report(as_of);
            (r["conversations"]["opened"].as_u64().unwrap(), r["conversations"]["resolved"].as_u64().unwrap())
        };
        let b = db.backend;
        // Reproduction 1: resolved Monday, reopened Tuesday.
        assert_eq!(figures("2026-11-16T12:00:00Z"), (1, 1), "{b}");
        // An event at exactly --as-of has happened.
        assert_eq!(figures("2026-11-16T10:59:59Z"), (1, 0), "{b}");
        assert_eq!(figures("2026-11-16T11:00:00Z"), (1, 1), "{b}");
        assert_eq!(figures("2026-11-17T10:00:00Z"), (1, 0), "{b}: reopened at that instant");
        assert_eq!(figures("2026-11-17T12:00:00Z"), (1, 1), "{b}");

        // At exactly the due instant an unanswered conversation is pending;
        // a second later it is breached.
        let sla = |as_of: &str| -> (u64, u64) {
            let r = report(as_of);
            (r["sla"]["pending"].as_u64().unwrap(), r["sla"]["breached"].as_u64().unwrap())
        };
        assert_eq!(sla("2026-11-20T10:00:00Z"), (1, 0), "{b}");
        assert_eq!(sla("2026-11-20T10:00:01Z"), (0, 1), "{b}");

        let r = report("2026-11-23T00:00:00Z");
        // Agent-started conversations count as opened and resolved...
        assert_eq!(r["conversations"]["opened"], 5, "{b}: {r}");
        assert_eq!(r["conversations"]["resolved"], 3, "{b}: r2, a9, s1");
        // ...but have no first-response clock (reproduction 2: not 2400 s).
        assert_eq!(r["first_response"]["answered"], 2, "{b}: {r}");
        assert_eq!(r["first_response"]["median_seconds"], 1200, "{b}");
        assert_eq!(r["first_response"]["p90_seconds"], 1800, "{b}");
        assert_eq!((r["sla"]["met"].clone(), r["sla"]["breached"].clone()), (2.into(), 1.into()), "{b}");
        assert_eq!(r["sla"]["met_percent"], 66.7, "{b}");
        // Their agent messages are replies (reproduction 3: the report
        // agrees with itself).
        assert_eq!(r["standards"]["replies_checked"], 5, "{b}: {r}");
        let agents = r["agents"].as_array().unwrap();
        let kim = agents.iter().find(|a| a["id"] == "kim").unwrap();
        assert_eq!((kim["replies"].clone(), kim["first_responses"].clone()), (3.into(), 0.into()), "{b}: {kim}");
        assert_eq!(kim["median_first_response_seconds"], Value::Null, "{b}");
        let sam = agents.iter().find(|a| a["id"] == "sam").unwrap();
        assert_eq!((sam["replies"].clone(), sam["first_responses"].clone()), (2.into(), 2.into()), "{b}: {sam}");
        // The first answer stands.
        assert_eq!((r["nps"]["responses"].clone(), r["nps"]["promoters"].clone()), (1.into(), 1.into()), "{b}");
        assert_eq!(r["nps"]["score"], 100, "{b}");
    }
}
