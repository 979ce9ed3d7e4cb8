//! Replay, report and restart behaviour against real databases.

use jiff::Timestamp;

use concierge::config::Config;
use concierge::core::report::{CheckRow, ConversationRow, FollowUpRow, ReportData, Week, compute};
use concierge::core::router::{Action, Author, Conversation, Input, Message, Role, Router, Status, SurveyStatus};
use concierge::engine::Engine;
use concierge::replay::{self, Event};
use concierge::store::{OutboxStatus, Store};
use concierge::{demo, format};

use crate::helpers::{TestDb, databases};

pub fn demo_config(url: &str) -> Config {
    let mut c = Config::parse(demo::CONFIG, "demo", None).unwrap();
    c.database_url = url.to_string();
    c
}

pub fn demo_events() -> Vec<Event> {
    let config = demo_config("sqlite::memory:");
    replay::parse(&demo::events(&config.policy.hours), "demo", &config.policy).unwrap()
}

pub fn as_of() -> Timestamp {
    demo::AS_OF.parse().unwrap()
}

/// What the outbox holds, comparable across runs: (key, at, kind, to, body).
async fn outbox(store: &Store) -> Vec<(String, Timestamp, String, String, String)> {
    store
        .outbox(&[], i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.at, i.kind.as_str().to_string(), i.recipient.encode(), i.body))
        .collect()
}

/// Events per transaction in these tests.
const TEST_BATCH: usize = 1000;

pub async fn replay_into(db: &TestDb, events: Vec<Event>, until: Option<Timestamp>) -> (Engine, replay::Summary) {
    let mut engine = Engine::start(demo_config(&db.url), false, replay::start_of(&events)).await.unwrap();
    // Small batches, so that the histories here span several.
    let summary = replay::run_batched(&mut engine, events, until, None, TEST_BATCH).await.unwrap();
    (engine, summary)
}

/// The same history through a bare router, with no store: the oracle. Its
/// `scores` are every answer, with when it came. Actions, report data,
/// survey answers (instant, score), conversations and every survey as it ended.
type PureReplay =
    (Vec<Action>, ReportData, Vec<(Timestamp, u8)>, Vec<Conversation>, Vec<concierge::core::router::Survey>);

/// Replays `events` through the pure router alone: its actions, the report
/// data it implies, the survey answers, and the conversations as it holds them.
fn pure_replay(events: Vec<Event>, until: Timestamp) -> PureReplay {
    let config = demo_config("unused");
    let mut router = Router::new(config.policy, config.rules, config.templates, b"oracle".to_vec());
    let mut actions = Vec::new();
    let mut data = ReportData::default();
    let mut seen = std::collections::HashSet::new();
    let mut answers = Vec::new();
    let mut resolutions: std::collections::BTreeMap<(String, Timestamp), Option<Timestamp>> = Default::default();
    let mut surveys: std::collections::BTreeMap<String, concierge::core::router::Survey> = Default::default();
    let mut take = |step: concierge::core::router::Step, actions: &mut Vec<Action>, data: &mut ReportData| {
        actions.extend(step.actions);
        if let Some(s) = &step.survey {
            surveys.insert(s.id.clone(), s.clone());
        }
        if let Some(r) = step.resolution {
            resolutions.insert((r.conversation, r.resolved_at), r.reopened_at);
        }
        if let Some(k) = step.check {
            data.checks.push(CheckRow {
                conversation: k.conversation,
                agent: k.agent,
                at: k.at,
                first: k.first,
                rules: k.result.findings.into_iter().map(|f| f.rule).collect(),
            });
        }
        if let Some(s) = step.survey.filter(|s| s.status == SurveyStatus::Answered) {
            answers.push((s.answered_at.unwrap(), s.score.unwrap()));
        }
    };
    for e in events {
        while let Some(due) = router.next_deadline().filter(|d| *d < e.at) {
            for step in router.poll_timers(due) {
                take(step, &mut actions, &mut data);
            }
        }
        if let concierge::core::router::Input::Message(m) = &e.input
            && !seen.insert(format!("{}:{}", m.channel.as_str(), m.id))
        {
            continue;
        }
        let step = router.handle(e.at, e.input);
        take(step, &mut actions, &mut data);
    }
    while let Some(due) = router.next_deadline().filter(|d| *d <= until) {
        for step in router.poll_timers(due) {
            take(step, &mut actions, &mut data);
        }
    }
    // Every detractor's answer opens a follow-up (none are closed in a replay).
    data.followups = surveys
        .values()
        .filter(|s| s.status == SurveyStatus::Answered && s.score.unwrap() <= 6)
        .map(|s| {
            let c = router.conversation(&s.conversation).unwrap();
            FollowUpRow {
                survey: s.id.clone(),
                score: s.score.unwrap(),
                agent: c.first_reply_by.clone().or(c.assigned.clone()),
                answered_at: s.answered_at.unwrap(),
                closed_at: None,
            }
        })
        .collect();
    data.conversations = router
        .conversations()
        .map(|c| ConversationRow {
            id: c.id.clone(),
            opened_at: c.opened_at,
            due_at: c.due_at,
            first_reply_at: c.first_reply_at,
            first_reply_by: c.first_reply_by.clone(),
            resolutions: resolutions
                .iter()
                .filter(|((id, _), _)| *id == c.id)
                .map(|((_, resolved), reopened)| (*resolved, *reopened))
                .collect(),
        })
        .collect();
    let mut conversations: Vec<Conversation> = router.conversations().cloned().collect();
    conversations.sort_by(|a, b| a.id.cmp(&b.id));
    (actions, data, answers, conversations, surveys.into_values().collect())
}

async fn report_json(store: &Store, week: Week) -> serde_json::Value {
    let config = demo_config("unused");
    let text = concierge::reports::weekly(store, &config.policy.hours, None, week, as_of(), format::Format::Json)
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_replayed_history_is_stored_exactly_as_the_pure_router_decides_on_every_backend() {
    stored_exactly_as_decided(demo_events(), as_of()).await;
}

/// A history of many batches, where conversations span batches, come to
/// rest, leave memory and are written to again: replayed with one batch
/// written while the next is stepped, it is stored as the pure router
/// (which never forgets anything) decides.
#[tokio::test]
async fn a_long_history_written_while_the_next_batch_is_stepped_is_stored_exactly_as_decided() {
    let start: Timestamp = "2026-10-05T05:00:00Z".parse().unwrap();
    let mut events = concierge::bench::generate::events(600, 3, start, 7);
    // One customer in five writes again two weeks after the resolve, when
    // the conversation has left memory (three days was too soon: the
    // conversation had not come to rest, and nothing was read back).
    let again: Vec<Event> = events
        .iter()
        .filter_map(|e| match &e.input {
            Input::Resolve { channel: Some(channel), thread, .. } if thread.ends_with('7') || thread.ends_with('0') => {
                let m = Message {
                    channel: *channel,
                    thread: thread.clone(),
                    id: format!("{thread}-again"),
                    author: Author { role: Role::Customer, id: format!("again-{thread}@example.com"), name: None },
                    text: "Hello again, the problem is back.".into(),
                };
                Some(Event {
                    line: 0,
                    at: e.at.checked_add(jiff::SignedDuration::from_hours(24 * 14)).unwrap(),
                    input: Input::Message(m),
                })
            }
            _ => None,
        })
        .collect();
    assert!(again.len() > 100);
    events.extend(again);
    events.sort_by_key(|e| e.at);
    assert!(events.len() > 5 * TEST_BATCH, "several batches: {}", events.len());
    let until = events.iter().map(|e| e.at).max().unwrap();
    stored_exactly_as_decided(events, until).await;
}

async fn stored_exactly_as_decided(events: Vec<Event>, until: Timestamp) {
    let (expected_actions, _, _, expected_conversations, expected_surveys) = pure_replay(events.clone(), until);
    assert!(expected_actions.len() > 100, "the history produces plenty of actions");
    for db in databases().await {
        let (engine, summary) = replay_into(&db, events.clone(), Some(until)).await;
        assert_eq!(summary.actions, expected_actions.len(), "{}", db.backend);
        let stored = outbox(&engine.store).await;
        // Replayed history keeps what was decided, not the text nobody receives.
        let mut expected: Vec<_> = expected_actions
            .iter()
            .map(|a| (a.key.clone(), a.at, a.kind.as_str().to_string(), a.to.encode(), String::new()))
            .collect();
        expected.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        assert_eq!(stored, expected, "{}", db.backend);
        let rows = engine.store.outbox(&[], i64::MAX).await.unwrap();
        assert!(
            rows.iter().all(|i| i.status == OutboxStatus::Replayed),
            "replayed actions are history, never delivered"
        );
        assert_eq!(engine.store.all_conversations().await.unwrap(), expected_conversations, "{}", db.backend);
        // Surveys as they ended, sent and answered in one batch or apart
        // (tokens are signed with each database's own secret).
        let unsigned = |v: Vec<concierge::core::router::Survey>| -> Vec<_> {
            let mut v: Vec<_> = v
                .into_iter()
                .map(|s| concierge::core::router::Survey { token: s.token.map(|_| String::new()), ..s })
                .collect();
            v.sort_by(|a, b| a.id.cmp(&b.id));
            v
        };
        let stored = engine.store.all_surveys().await.unwrap();
        assert!(stored.iter().filter(|s| s.status == SurveyStatus::Answered).count() > 10, "{}", db.backend);
        assert_eq!(unsigned(stored), unsigned(expected_surveys.clone()), "{}", db.backend);
        engine.store.close().await;
    }
}

/// Every field of every conversation (the reply check's context included:
/// the words the customer is owed an answer to, whether the name was used)
/// survives the database on both backends exactly as the router holds it.
#[tokio::test]
async fn conversations_reload_from_the_database_exactly_as_the_pure_router_holds_them_on_every_backend() {
    let (_, _, _, expected, _) = pure_replay(demo_events(), as_of());
    assert!(expected.iter().any(|c| c.name_used) && expected.iter().any(|c| c.asked_words > 0));
    for db in databases().await {
        let (engine, _) = replay_into(&db, demo_events(), Some(as_of())).await;
        let stored = engine.store.all_conversations().await.unwrap();
        assert_eq!(stored, expected, "{}", db.backend);
    }
}

#[tokio::test]
async fn the_report_from_the_database_equals_the_report_from_the_pure_router_on_every_backend() {
    let (_, oracle, answers, _, _) = pure_replay(demo_events(), as_of());
    let config = demo_config("unused");
    for db in databases().await {
        let (engine, _) = replay_into(&db, demo_events(), Some(as_of())).await;
        for week in ["2026-W46", "2026-W47"] {
            let week = Week::parse(week).unwrap();
            let (from, to) = week.bounds(config.policy.hours.time_zone());
            let stored = compute(
                week,
                &config.policy.hours,
                as_of(),
                &ReportData {
                    followups: engine.store.followup_rows(as_of()).await.unwrap(),
                    ..engine.store.report_data(from, to, as_of()).await.unwrap()
                },
            );
            let mut data = oracle.clone();
            // The oracle holds everything: keep the week's answers and replies.
            data.scores =
                answers.iter().filter(|(at, _)| *at >= from && *at < to && *at <= as_of()).map(|(_, s)| *s).collect();
            data.checks.retain(|k| {
                data.conversations.iter().any(|c| c.id == k.conversation && c.opened_at >= from && c.opened_at < to)
            });
            let expected = compute(week, &config.policy.hours, as_of(), &data);
            assert_eq!(stored, expected, "{} {week}", db.backend);
            assert!(stored.conversations.opened > 20 && stored.standards.replies_checked > 20);
        }
    }
}

#[tokio::test]
async fn sqlite_and_postgres_give_identical_reports() {
    let dbs = databases().await;
    let mut reports = Vec::new();
    for db in &dbs {
        let (engine, _) = replay_into(db, demo_events(), Some(as_of())).await;
        reports.push((db.backend, report_json(&engine.store, Week::parse(demo::WEEK).unwrap()).await));
    }
    let (_, first) = &reports[0];
    assert!(first["nps"]["responses"].as_u64().unwrap() > 5);
    for (backend, report) in &reports[1..] {
        assert_eq!(report, first, "{backend} differs from sqlite");
    }
}

#[tokio::test]
async fn replaying_the_same_history_twice_adds_nothing() {
    for db in databases().await {
        let (engine, first) = replay_into(&db, demo_events(), Some(as_of())).await;
        let before = counts(&engine.store).await;
        engine.store.close().await;
        let (engine, second) = replay_into(&db, demo_events(), Some(as_of())).await;
        assert_eq!((second.applied + second.duplicates, second.actions), (first.events, 0), "{}", db.backend);
        // Every input is recognised as applied before, messages by their id
        // and resolves, answers... by their key among the processed inputs.
        assert_eq!(second.duplicates, first.events, "{}", db.backend);
        assert_eq!(counts(&engine.store).await, before, "{}", db.backend);
    }
}

/// A message that comes again batches later in the same file (a mailbox
/// exported twice into one history) is a repeat, on a new database too,
/// where the replay looks up only keys it may have stored itself.
#[tokio::test]
async fn a_message_repeated_batches_later_in_one_file_is_stored_once_on_a_new_database() {
    const BATCH: usize = 40;
    let events = demo_events();
    let end = events.iter().map(|e| e.at).max().unwrap();
    let repeats: Vec<Event> = events
        .iter()
        .take(BATCH)
        .filter(|e| matches!(e.input, Input::Message(_)))
        .map(|e| Event { at: end, ..e.clone() })
        .collect();
    assert!(repeats.len() > 10 && events.len() > 4 * BATCH, "{} repeats of {}", repeats.len(), events.len());
    for db in databases().await {
        let reference = crate::helpers::sqlite();
        let (once, first) = replay_into(&reference, demo_events(), Some(as_of())).await;
        let expected = (counts(&once.store).await, outbox(&once.store).await);
        once.store.close().await;
        let twice: Vec<Event> = events.iter().cloned().chain(repeats.iter().cloned()).collect();
        let mut engine = Engine::start(demo_config(&db.url), false, replay::start_of(&twice)).await.unwrap();
        let summary = replay::run_batched(&mut engine, twice, Some(as_of()), None, BATCH).await.unwrap();
        assert_eq!((summary.applied, summary.duplicates), (first.applied, repeats.len()), "{}", db.backend);
        let strip = |v: Vec<(String, Timestamp, String, String, String)>| -> Vec<_> {
            v.into_iter().map(|(k, at, kind, to, _)| (k, at, kind, to)).collect()
        };
        let stored = (counts(&engine.store).await, outbox(&engine.store).await);
        assert_eq!(stored.0, expected.0, "{}", db.backend);
        assert_eq!(strip(stored.1), strip(expected.1), "{}", db.backend);
        engine.store.close().await;
    }
}

/// A batch whose write fails stops the replay, and no batch after it is
/// committed, though on PostgreSQL the next one was already writing its
/// inputs beside it; the replay run again once the cause is gone ends as an
/// uninterrupted one.
#[tokio::test]
async fn a_batch_that_cannot_be_written_stops_the_replay_and_nothing_after_it_is_kept() {
    const BATCH: usize = 40;
    let events = demo_events();
    let message_ids = |events: &[Event]| -> Vec<String> {
        let mut ids: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.input {
                Input::Message(m) => Some(format!("{}:{}", m.channel.as_str(), m.id)),
                _ => None,
            })
            .collect();
        ids.sort();
        ids
    };
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.at);
    // The first message of the fourth batch cannot be stored.
    let poisoned = message_ids(&sorted[3 * BATCH..4 * BATCH]).into_iter().next().unwrap();
    for db in databases().await {
        let reference = crate::helpers::sqlite();
        let (whole, _) = replay_into(&reference, events.clone(), Some(as_of())).await;
        let expected = counts(&whole.store).await;
        whole.store.close().await;
        let mut engine = Engine::start(demo_config(&db.url), false, replay::start_of(&events)).await.unwrap();
        let refuse = if db.backend == "sqlite" {
            format!(
                "CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.id = '{poisoned}' \
                 BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        } else {
            format!("ALTER TABLE messages ADD CONSTRAINT refuse CHECK (id <> '{poisoned}')")
        };
        sqlx::query(&refuse).execute(engine.store.pool()).await.unwrap();
        let err = replay::run_batched(&mut engine, events.clone(), Some(as_of()), None, BATCH).await.unwrap_err();
        assert!(format!("{err:#}").contains("refuse"), "{}: {err:#}", db.backend);
        let stored: Vec<String> =
            sqlx::query_scalar("SELECT id FROM messages ORDER BY id").fetch_all(engine.store.pool()).await.unwrap();
        assert_eq!(
            stored,
            message_ids(&sorted[..3 * BATCH]),
            "{}: the three batches before, nothing after",
            db.backend
        );
        let drop =
            if db.backend == "sqlite" { "DROP TRIGGER refuse" } else { "ALTER TABLE messages DROP CONSTRAINT refuse" };
        sqlx::query(drop).execute(engine.store.pool()).await.unwrap();
        engine.store.close().await;
        let mut engine = Engine::start(demo_config(&db.url), false, replay::start_of(&events)).await.unwrap();
        replay::run_batched(&mut engine, events.clone(), Some(as_of()), None, BATCH).await.unwrap();
        assert_eq!(counts(&engine.store).await, expected, "{}", db.backend);
        engine.store.close().await;
    }
}

async fn counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for t in ["conversations", "messages", "findings", "surveys", "outbox"] {
        out.push(store.count(t).await.unwrap());
    }
    let checked = "SELECT COUNT(*) FROM messages WHERE check_score IS NOT NULL";
    out.push(sqlx::query_scalar(checked).fetch_one(store.pool()).await.unwrap());
    out
}

#[tokio::test]
async fn a_restart_mid_history_neither_loses_nor_repeats_an_action() {
    for db in databases().await {
        let reference = crate::helpers::sqlite();
        let (whole, _) = replay_into(&reference, demo_events(), Some(as_of())).await;
        let expected = outbox(&whole.store).await;
        // Stop half way (timers run up to just before the next event), then
        // start a new engine on the same database for the rest.
        let events = demo_events();
        let (head, tail) = events.split_at(events.len() / 2);
        let pause = Timestamp::from_second(tail[0].at.as_second() - 1).unwrap();
        let (engine, _) = replay_into(&db, head.to_vec(), Some(pause)).await;
        engine.store.close().await;
        let (engine, _) = replay_into(&db, tail.to_vec(), Some(as_of())).await;
        let strip_tokens = |v: Vec<(String, Timestamp, String, String, String)>| -> Vec<_> {
            v.into_iter()
                .map(|(k, at, kind, to, body)| {
                    (k, at, kind.clone(), to, if kind == "survey" { String::new() } else { body })
                })
                .collect()
        };
        assert_eq!(strip_tokens(outbox(&engine.store).await), strip_tokens(expected), "{}", db.backend);
    }
}

#[tokio::test]
async fn a_crash_before_commit_leaves_nothing_half_written_and_the_retry_completes() {
    for db in databases().await {
        let mut engine = Engine::start(demo_config(&db.url), false, as_of()).await.unwrap();
        let mut tx = engine.store.begin().await.unwrap();
        for e in demo_events().into_iter().take(40) {
            engine.apply(&mut tx, e.at, e.input).await.unwrap();
        }
        drop(tx); // the process dies before COMMIT
        engine.store.close().await;
        let engine = Engine::start(demo_config(&db.url), false, as_of()).await.unwrap();
        assert_eq!(counts(&engine.store).await, vec![0; 6], "{}", db.backend);
        engine.store.close().await;
        let (engine, summary) = replay_into(&db, demo_events(), Some(as_of())).await;
        assert_eq!(summary.duplicates, 0, "{}", db.backend);
        assert!(engine.store.count("outbox").await.unwrap() > 100);
    }
}

#[tokio::test]
async fn memory_holds_open_work_only_and_an_old_thread_comes_back_when_written_to_on_every_backend() {
    for db in databases().await {
        let (engine, _) = replay_into(&db, demo_events(), Some(as_of())).await;
        engine.store.close().await;
        // A restart reads open conversations and pending surveys, not history.
        let mut engine = Engine::start(demo_config(&db.url), true, as_of()).await.unwrap();
        let stored = engine.store.all_conversations().await.unwrap();
        let surveys = engine.store.all_surveys().await.unwrap();
        let pending = |id: &str| surveys.iter().any(|s| s.conversation == id && s.status == SurveyStatus::Pending);
        let open_work = stored.iter().filter(|c| c.status == Status::Open || pending(&c.id)).count();
        assert!(open_work > 0 && open_work < stored.len() / 2, "{open_work} of {}", stored.len());
        assert_eq!(engine.router.in_memory(), open_work, "{}", db.backend);

        // The customer of a resolved conversation whose survey went out writes again.
        let old = stored
            .iter()
            .find(|c| {
                c.status == Status::Resolved
                    && surveys.iter().any(|s| s.conversation == c.id && s.status == SurveyStatus::Sent)
            })
            .expect("the demo resolves conversations and sends surveys");
        assert!(engine.router.conversation(&old.id).is_none(), "history stays in the database");
        let at = as_of();
        let message = Message {
            channel: old.channel,
            thread: old.thread.clone(),
            id: "written-again".into(),
            author: Author { role: Role::Customer, id: old.customer_id.clone().unwrap(), name: None },
            text: "Sorry, one more question about this.".into(),
        };
        let mut tx = engine.store.begin().await.unwrap();
        engine.apply(&mut tx, at, Input::Message(message)).await.unwrap();
        tx.commit().await.unwrap();
        engine.settle(at);
        let reopened = engine.store.conversation(&old.id).await.unwrap().unwrap();
        assert_eq!(reopened.status, Status::Open, "{}", db.backend);
        assert_eq!(reopened.opened_at, old.opened_at, "the same conversation, not a new one");
        assert_eq!(engine.router.conversation(&old.id), Some(&reopened), "and it is open work again");
        assert_eq!(engine.router.in_memory(), open_work + 1);
        // Resolved again, it goes back to rest once its survey has gone out.
        let resolve = Input::Resolve { channel: None, thread: old.thread.clone(), by: "sam".into(), survey: false };
        let mut tx = engine.store.begin().await.unwrap();
        engine.apply(&mut tx, at, resolve).await.unwrap();
        tx.commit().await.unwrap();
        engine.settle(at);
        assert_eq!(engine.router.in_memory(), open_work, "{}", db.backend);
        engine.store.close().await;
    }
}
