//! `concierge replay`: feeds a JSON-lines history through the real router and
//! store on a simulated clock.
//!
//! The whole file is validated before anything is imported; every bad line is
//! reported as `FILE:LINE: reason`. Then events are applied in time order
//! (events at the same instant in file order, before any timer due at that
//! instant), timers between events fire at their due instants, and after the
//! last event the clock runs to `--until`. Replayed actions are recorded as
//! history (`replayed`), never delivered. Writes are batched into transactions.

use std::io::Write;

use jiff::Timestamp;
use serde::Deserialize;

use crate::core::router::{Action, Author, Channel, Conversation, IdSet, Input, Message, Policy, Role, Wanted};
use crate::engine::Engine;
use crate::store::{Batch, input_key, is_message};

/// Events per transaction. Larger batches write each hot index page to the
/// WAL once per batch instead of once per thousand events, and bring back
/// fewer conversations from the database: 1,000 gave 18k events/s on
/// SQLite, 10,000 55-64k, 25,000 63-75k; on PostgreSQL 10,000 gave 42-45k,
/// 25,000 49-52k (BENCHMARKS.md, ingest). Beyond, nothing moved.
pub const BATCH: usize = 25_000;

/// One line of a replay file, as written.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawEvent {
    Message {
        at: Timestamp,
        channel: Channel,
        thread: String,
        id: String,
        author: Author,
        text: String,
    },
    Resolve {
        at: Timestamp,
        thread: String,
        by: String,
        #[serde(default)]
        channel: Option<Channel>,
        #[serde(default = "yes")]
        survey: bool,
    },
    SurveyAnswer {
        at: Timestamp,
        thread: String,
        score: i64,
        #[serde(default)]
        comment: Option<String>,
        #[serde(default)]
        channel: Option<Channel>,
    },
}

fn yes() -> bool {
    true
}

/// A validated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub line: usize,
    pub at: Timestamp,
    pub input: Input,
}

/// Parses and validates every line against `policy` (a customer message
/// whose due instants the business hours cannot reach before the end of time
/// is refused); returns all problems as `FILE:LINE: reason`.
pub fn parse(text: &str, file: &str, policy: &Policy) -> Result<Vec<Event>, Vec<String>> {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line).and_then(|(at, input)| within_reach(policy, at, &input).map(|()| (at, input))) {
            Ok((at, input)) => events.push(Event { line: n, at, input }),
            Err(reason) => errors.push(format!("{file}:{n}: {reason}")),
        }
    }
    if errors.is_empty() { Ok(events) } else { Err(errors) }
}

/// Parses one event line (the replay format), e.g. a queued command.
pub fn parse_line(line: &str) -> Result<(Timestamp, Input), String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
        let msg = e.to_string();
        match msg.rsplit_once(" at line 1 column ") {
            Some((_, col)) => format!("not a JSON object: the line does not parse as JSON (column {col})"),
            None => format!("not a JSON object: {msg}"),
        }
    })?;
    let Some(object) = value.as_object() else {
        return Err("not a JSON object: each line is one event such as {\"at\": ..., \"kind\": ...}".into());
    };
    match object.get("at") {
        None => return Err("`at` is missing; give the instant, e.g. \"at\": \"2026-11-23T14:00:00Z\"".into()),
        Some(serde_json::Value::String(at)) if at.parse::<Timestamp>().is_err() => {
            let reason = at.parse::<Timestamp>().err().map(|e| e.to_string()).unwrap_or_default();
            return Err(if at.parse::<jiff::civil::DateTime>().is_ok() {
                format!("\"at\": \"{at}\" has no time zone; add Z or an offset, e.g. \"{at}Z\"")
            } else if reason.contains("overflowed") {
                format!("\"at\": \"{at}\" is out of range: instants run from {} to {}", Timestamp::MIN, Timestamp::MAX)
            } else {
                format!(
                    "\"at\": \"{at}\" is not an RFC 3339 instant ({reason}); write it like \"2026-11-23T14:00:00Z\""
                )
            });
        }
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err("`at` must be a string such as \"2026-11-23T14:00:00Z\"".into()),
    }
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line 1 column N": keep the column only.
        match msg.rsplit_once(" at line 1 column ") {
            Some((what, col)) => format!("{what} (column {col})"),
            None => msg,
        }
    })?;
    let nonempty = |field: &str, v: &str| {
        if v.trim().is_empty() { Err(format!("`{field}` is empty; give it a value")) } else { Ok(()) }
    };
    Ok(match raw {
        RawEvent::Message { at, channel, thread, id, author, text } => {
            nonempty("thread", &thread)?;
            nonempty("id", &id)?;
            nonempty("author.id", &author.id)?;
            (at, Input::Message(Message { channel, thread, id, author, text }))
        }
        RawEvent::Resolve { at, thread, by, channel, survey } => {
            nonempty("thread", &thread)?;
            (at, Input::Resolve { channel, thread, by, survey })
        }
        RawEvent::SurveyAnswer { at, thread, score, comment, channel } => {
            nonempty("thread", &thread)?;
            let score = u8::try_from(score)
                .ok()
                .filter(|s| *s <= 10)
                .ok_or_else(|| format!("`score` is {score}; an NPS answer is a whole number from 0 to 10"))?;
            (at, Input::SurveyAnswer { channel, thread, score, comment })
        }
    })
}

/// The replay line of an input ([`parse_line`] reads it back); `None` for
/// inputs the format has no kind for (relays, reopens, assignments...).
pub fn to_line(at: Timestamp, input: &Input) -> Option<String> {
    let value = match input {
        Input::Message(m) => serde_json::json!({
            "at": at, "kind": "message", "channel": m.channel, "thread": m.thread, "id": m.id,
            "author": m.author, "text": m.text,
        }),
        Input::Resolve { channel, thread, by, survey } => serde_json::json!({
            "at": at, "kind": "resolve", "channel": channel, "thread": thread, "by": by, "survey": survey,
        }),
        Input::SurveyAnswer { channel, thread, score, comment } => serde_json::json!({
            "at": at, "kind": "survey_answer", "channel": channel, "thread": thread, "score": score,
            "comment": comment,
        }),
        _ => return None,
    };
    Some(value.to_string())
}

/// Whether the clock a customer message starts at `at` (its target and every
/// escalation level) ends before the end of time.
fn within_reach(policy: &Policy, at: Timestamp, input: &Input) -> Result<(), String> {
    let Input::Message(m) = input else { return Ok(()) };
    if m.author.role != Role::Customer {
        return Ok(());
    }
    let target = policy.first_response.max(policy.next_response.unwrap_or(0));
    let escalation = policy.escalations.iter().map(|e| e.after).max().unwrap_or(0);
    match policy.hours.add(at, target.saturating_add(escalation)) {
        Some(_) => Ok(()),
        None => Err(format!(
            "`at` {at} starts a first-response clock that the business hours cannot finish before the year 9999; \
             give an earlier instant"
        )),
    }
}

/// A batch being written while the next is stepped.
struct InFlight {
    write: tokio::task::JoinHandle<anyhow::Result<Batch>>,
    touched: IdSet,
    keys: IdSet,
    last: Timestamp,
}

impl InFlight {
    /// Waits for the write, then lets the router drop what it left at rest
    /// but what `later` (a batch still being written) changed too. Returns
    /// the batch written, for the thread that built it to free (a batch is
    /// millions of small allocations: freed from the writer's thread, each
    /// contended with this thread's allocations, they took as long as
    /// writing them).
    async fn finish(self, engine: &mut Engine, later: Option<&InFlight>) -> anyhow::Result<Batch> {
        let batch = self.write.await.map_err(|e| anyhow::anyhow!("writing a batch stopped: {e}"))??;
        let mut committed = self.touched;
        if let Some(later) = later {
            committed.retain(|id| !later.touched.contains(id));
        }
        engine.router.settle_ids(committed, self.last);
        Ok(batch)
    }
}

/// What a replay stored, by 64-bit fingerprints, for a replay into a
/// database that held no history when it began: the keys of the inputs it
/// applied, and the ids and threads of the conversations it wrote. A key
/// whose fingerprint is not here was never stored, so it needs no lookup;
/// nor does a conversation. Importing a history into a new database then
/// looks up only what could be a repeat or a conversation it let go of (a
/// fingerprint shared by chance costs one lookup, nothing more). Like the
/// router's memory, this assumes no other process writes to the database
/// while the replay runs. 8 bytes a key, against the hundreds each parsed
/// event takes.
struct Stored {
    /// `None`: the database held history already, and everything is looked up.
    prints: Option<hashbrown::HashSet<u64>>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl Stored {
    /// `before`: whether the database holds history already.
    fn new(before: bool) -> Stored {
        Stored { prints: (!before).then(hashbrown::HashSet::new), hasher: Default::default() }
    }

    /// An input key's fingerprint.
    fn print(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, ("input", key))
    }

    /// Whether the input key (by its fingerprint) may have been stored before.
    fn may_hold(&self, print: u64) -> bool {
        self.prints.as_ref().is_none_or(|p| p.contains(&print))
    }

    fn note(&mut self, prints: impl IntoIterator<Item = u64>) {
        if let Some(p) = &mut self.prints {
            p.extend(prints);
        }
    }

    fn conversation_print(&self, by: &str, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, (by, key))
    }

    /// Whether the conversation `wanted` names may be stored.
    fn may_hold_conversation(&self, wanted: &Wanted) -> bool {
        let print = match wanted {
            Wanted::Id(id) => self.conversation_print("id", id),
            Wanted::Thread(thread) => self.conversation_print("thread", thread),
        };
        self.may_hold(print)
    }

    /// Notes conversations as written.
    fn note_conversations(&mut self, written: &[Conversation]) {
        if self.prints.is_some() {
            let prints: Vec<u64> = written
                .iter()
                .flat_map(|c| [self.conversation_print("id", &c.id), self.conversation_print("thread", &c.thread)])
                .collect();
            self.note(prints);
        }
    }
}

/// The instant a replay starts at: its earliest event (now for none). The
/// engine restores open work as of then.
pub fn start_of(events: &[Event]) -> Timestamp {
    events.iter().map(|e| e.at).min().unwrap_or_else(Timestamp::now)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub events: usize,
    pub applied: usize,
    pub duplicates: usize,
    pub actions: usize,
    /// Applied inputs that changed nothing (each says why; see [`crate::core::router::Step::notice`]).
    pub unchanged: usize,
}

/// Applies validated events in batches of [`BATCH`] (one transaction and a
/// handful of statements each); writes each new action as a JSON line to
/// `out` when given.
pub async fn run(
    engine: &mut Engine,
    events: Vec<Event>,
    until: Option<Timestamp>,
    out: Option<&mut dyn Write>,
) -> anyhow::Result<Summary> {
    run_batched(engine, events, until, out, BATCH).await
}

/// [`run`] in transactions of `batch` events.
pub async fn run_batched(
    engine: &mut Engine,
    mut events: Vec<Event>,
    until: Option<Timestamp>,
    mut out: Option<&mut dyn Write>,
    batch: usize,
) -> anyhow::Result<Summary> {
    events.sort_by_key(|e| e.at); // stable: same instant keeps file order
    let mut summary = Summary { events: events.len(), ..Summary::default() };
    let end = until.or(events.last().map(|e| e.at));
    // Each new action is a line; so is an input that changed nothing (an
    // answer with no survey awaiting it, a resolve of an unknown thread...),
    // with what its notice says.
    let mut emit =
        |actions: &[Action], notice: Option<(Timestamp, &str)>, summary: &mut Summary| -> anyhow::Result<()> {
            summary.actions += actions.len();
            summary.unchanged += usize::from(notice.is_some());
            if let Some(out) = out.as_deref_mut() {
                for a in actions {
                    let line = serde_json::json!({"at": a.at, "kind": a.kind, "thread": a.thread, "to": a.to.as_str()});
                    writeln!(out, "{line}")?;
                }
                if let Some((at, notice)) = notice {
                    writeln!(out, "{}", serde_json::json!({"at": at, "kind": "notice", "notice": notice}))?;
                }
            }
            Ok(())
        };
    // Two cores: while a batch is written (flush and commit in a task of its
    // own), the next is read and stepped. Its reads see every batch before
    // those in flight; what those in flight changed is still in memory (it
    // settles only once committed), and their input keys are carried over
    // so a repeat across them is still a repeat. On PostgreSQL two batches
    // are written at once, on two connections: the later one writes its
    // inputs while the earlier one commits, then its state, then commits
    // (see `Store::flush_after`); SQLite has one writer at a time.
    let depth = match engine.store.backend() {
        crate::store::Backend::Postgres => 2,
        crate::store::Backend::Sqlite => 1,
    };
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    // The commit of the batch spawned last, for the next one to wait for.
    let mut last_commit: Option<tokio::sync::oneshot::Receiver<()>> = None;
    let mut stored = Stored::new(engine.store.holds_history().await?);
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<Event> = events.by_ref().take(batch.max(1)).collect();
        let keys: Vec<String> = chunk.iter().map(|e| input_key(e.at, &e.input)).collect();
        let prints: Vec<u64> = keys.iter().map(|k| stored.print(k)).collect();
        let mut read = engine.store.begin_read().await?;
        let lookups: Vec<(&str, bool)> = chunk
            .iter()
            .zip(&keys)
            .zip(&prints)
            .filter(|(_, print)| stored.may_hold(**print))
            .map(|((e, k), _)| (k.as_str(), is_message(&e.input)))
            .collect();
        let mut known = engine.store.known_inputs(&mut read, &lookups).await?;
        stored.note(prints);
        for f in &in_flight {
            known.extend(keys.iter().filter(|k| f.keys.contains(*k)).cloned());
        }
        let fresh = chunk.iter().zip(&keys).filter(|(_, k)| !known.contains(*k)).map(|(e, _)| &e.input);
        engine.hydrate_where(&mut read, fresh, |w| stored.may_hold_conversation(w)).await?;
        read.rollback().await?;
        let last = chunk.last().map_or(Timestamp::MIN, |e| e.at);
        let mut batch = engine.batch();
        for (event, key) in chunk.into_iter().zip(keys) {
            // Timers strictly before this event fire first, each at its own instant.
            while let Some(due) = engine.router.next_deadline().filter(|d| *d < event.at) {
                engine.fire_each(&mut batch, due, |actions| emit(actions, None, &mut summary))?;
            }
            match engine.route(&mut batch, &mut known, event.at, key, event.input) {
                Some(step) => {
                    summary.applied += 1;
                    emit(&step.actions, step.notice.as_deref().map(|n| (event.at, n)), &mut summary)?;
                    batch.record_step(step);
                }
                None => summary.duplicates += 1,
            }
        }
        let changed = engine.router.take_changed();
        stored.note_conversations(&changed);
        batch.record_conversations(changed);
        // Settled while this batch's conversations are still marked touched,
        // so none of them is dropped before this batch is written.
        let written = match in_flight.len() >= depth {
            true => {
                let oldest = in_flight.pop_front().expect("depth is at least 1");
                Some(oldest.finish(engine, in_flight.front()).await?)
            }
            false => None,
        };
        let touched = engine.router.take_touched();
        let store = engine.store.clone();
        let before = last_commit.take();
        let (committed, commit) = tokio::sync::oneshot::channel();
        last_commit = Some(commit);
        let write = tokio::spawn(async move {
            let mut tx = store.begin().await?;
            let earlier_committed = async {
                match before {
                    Some(before) => before.await.map_err(|_| anyhow::anyhow!("the batch before was not written")),
                    None => Ok(()),
                }
            };
            store.flush_after(&mut tx, &batch, earlier_committed).await?;
            tx.commit().await?;
            let _ = committed.send(());
            anyhow::Ok(batch)
        });
        // Freed here, while the batches after it are written.
        drop(written);
        // Every input of this batch is in `known` now (with some applied
        // before it, which are repeats all the same).
        in_flight.push_back(InFlight { write, touched, keys: known, last });
    }
    while let Some(oldest) = in_flight.pop_front() {
        oldest.finish(engine, in_flight.front()).await?;
    }
    if let Some(end) = end {
        let mut tx = engine.store.begin().await?;
        let mut batch = engine.batch();
        while let Some(due) = engine.router.next_deadline().filter(|d| *d <= end) {
            engine.fire_each(&mut batch, due, |actions| emit(actions, None, &mut summary))?;
        }
        batch.record_conversations(engine.router.take_changed());
        engine.store.flush(&mut tx, &batch).await?;
        tx.commit().await?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_line_is_reported_with_its_number_and_reason() {
        let text = [
            r#"{"at":"2026-11-23T10:00:00Z","kind":"message","channel":"email","thread":"t1","id":"m1","author":{"role":"customer","id":"ana"},"text":"hi"}"#,
            r#"{"at":"2026-11-23T10:00:00Z","kind":"message","channel":"fax","thread":"t1","id":"m1","author":{"role":"customer","id":"ana"},"text":"hi"}"#,
            "not json",
            "",
            r#"{"at":"yesterday","kind":"resolve","thread":"t1","by":"sam"}"#,
            r#"{"at":"2026-11-23T10:00:00Z","kind":"survey_answer","thread":"t1","score":11}"#,
            r#"{"at":"2026-11-23T10:00:00Z","kind":"teleport","thread":"t1"}"#,
            r#"{"at":"2026-11-23T10:00:00Z","kind":"resolve","thread":"t1","by":"sam","colour":"red"}"#,
            r#"{"at":"2026-11-23T10:00:00Z","kind":"message","channel":"email","thread":"","id":"m1","author":{"role":"customer","id":"ana"},"text":"hi"}"#,
        ]
        .join("\n");
        let errors = parse(&text, "week.jsonl", &Policy::default()).unwrap_err();
        let lines: Vec<&str> = errors.iter().map(|e| e.split(": ").next().unwrap()).collect();
        assert_eq!(
            lines,
            [
                "week.jsonl:2",
                "week.jsonl:3",
                "week.jsonl:5",
                "week.jsonl:6",
                "week.jsonl:7",
                "week.jsonl:8",
                "week.jsonl:9"
            ]
        );
        assert!(errors[0].contains("fax"), "{}", errors[0]);
        assert!(errors[3].contains("from 0 to 10"), "{}", errors[3]);
        assert!(errors[4].contains("teleport"), "{}", errors[4]);
        assert!(errors[5].contains("colour"), "{}", errors[5]);
        assert!(errors[6].contains("`thread` is empty"), "{}", errors[6]);
    }

    #[test]
    fn a_message_whose_clock_would_end_after_the_year_9999_is_refused_by_line() {
        let text = [
            r#"{"at":"2026-11-23T10:00:00Z","kind":"message","channel":"email","thread":"t1","id":"m1","author":{"role":"customer","id":"ana"},"text":"hi"}"#,
            r#"{"at":"9999-12-30T21:30:00Z","kind":"message","channel":"email","thread":"t2","id":"m2","author":{"role":"customer","id":"ana"},"text":"hi"}"#,
        ]
        .join("\n");
        let errors = parse(&text, "late.jsonl", &Policy::default()).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("late.jsonl:2: ") && errors[0].contains("9999"), "{}", errors[0]);
    }

    #[test]
    fn a_bad_instant_or_a_line_that_is_no_object_says_what_to_write() {
        let policy = Policy::default();
        let err = |line: &str| parse(line, "bad.jsonl", &policy).unwrap_err().remove(0);
        let local = err(r#"{"at":"2026-11-23T14:00:00","kind":"resolve","thread":"t1","by":"sam"}"#);
        assert_eq!(
            local,
            r#"bad.jsonl:1: "at": "2026-11-23T14:00:00" has no time zone; add Z or an offset, e.g. "2026-11-23T14:00:00Z""#
        );
        assert!(err(r#"{"at":"soon","kind":"resolve","thread":"t1","by":"sam"}"#).contains("not an RFC 3339 instant"));
        assert!(err("[1, 2]").contains("not a JSON object"));
        assert!(err("hello").contains("not a JSON object"));
        assert!(err(r#"{"kind":"resolve","thread":"t1","by":"sam"}"#).contains("`at` is missing"));
    }

    #[test]
    fn good_lines_become_inputs() {
        let text = r#"{"at":"2026-11-23T10:00:00+01:00","kind":"resolve","thread":"t1","by":"sam"}"#;
        let events = parse(text, "f", &Policy::default()).unwrap();
        assert_eq!(events[0].at, "2026-11-23T09:00:00Z".parse().unwrap());
        assert_eq!(
            events[0].input,
            Input::Resolve { channel: None, thread: "t1".into(), by: "sam".into(), survey: true }
        );
    }

    #[test]
    fn every_generated_event_is_written_as_a_line_that_reads_back_the_same() {
        let start = "2026-11-02T09:00:00Z".parse().unwrap();
        for e in crate::bench::generate::events(30, 1, start, 7) {
            let line = to_line(e.at, &e.input).expect("messages, resolves and answers have a line");
            assert_eq!(parse_line(&line), Ok((e.at, e.input)), "{line}");
        }
        let relay = Input::Reopen { channel: None, thread: "t".into(), by: "sam".into() };
        assert_eq!(to_line(start, &relay), None);
    }
}
