//! Router behaviour, driven with explicit instants.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;
use crate::core::hours::{BusinessHours, Span};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// UTC, Monday to Friday 09:00-17:00; 1h target, warning at 75%, escalation 1h
/// after the breach; survey 1h after resolve, throttle 30 days.
fn router() -> Router {
    let day = vec![Span::parse("09:00-17:00").unwrap()];
    let week = [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]];
    let hours = BusinessHours::new(TimeZone::UTC, week, BTreeSet::new()).unwrap();
    let policy = Policy { hours, ..Policy::default() };
    Router::new(policy, RuleSet::default_rules(), Templates::builtin(), b"test-secret".to_vec())
}

fn customer(thread: &str, id: &str, text: &str) -> Input {
    Input::Message(Message {
        channel: Channel::Email,
        thread: thread.into(),
        id: id.into(),
        author: Author { role: Role::Customer, id: "ana@example.com".into(), name: Some("Ana Lima".into()) },
        text: text.into(),
    })
}

fn agent(thread: &str, id: &str, text: &str) -> Input {
    Input::Message(Message {
        channel: Channel::Email,
        thread: thread.into(),
        id: id.into(),
        author: Author { role: Role::Agent, id: "sam".into(), name: Some("Sam".into()) },
        text: text.into(),
    })
}

fn resolve(thread: &str) -> Input {
    Input::Resolve { channel: None, thread: thread.into(), by: "sam".into(), survey: true }
}

fn answer(thread: &str, score: u8) -> Input {
    Input::SurveyAnswer { channel: None, thread: thread.into(), score, comment: Some("meh".into()) }
}

const GOOD_REPLY: &str =
    "Hi Ana,\n\nThanks for writing. The invoice is fixed.\n\nLet me know if anything else comes up.\nBest, Sam";

/// The one conversation changed since the last call (or none), as it is now.
fn changed(r: &mut Router) -> Option<Conversation> {
    let mut changed = r.take_changed();
    assert!(changed.len() <= 1, "{changed:?}");
    changed.pop()
}

/// Fires every timer up to `until`, returning (instant, kind, to) of each action.
fn run_until(r: &mut Router, until: &str) -> Vec<(String, ActionKind, String)> {
    r.poll_timers(ts(until))
        .into_iter()
        .flat_map(|s| s.actions)
        .map(|a| (a.at.to_string(), a.kind, a.to.as_str().to_string()))
        .collect()
}

#[test]
fn a_first_customer_message_opens_the_conversation_and_acknowledges_with_the_due_time() {
    let mut r = router();
    let step = r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "My invoice is wrong"));
    let conv = changed(&mut r).unwrap();
    assert_eq!(conv.due_at, Some(ts("2026-11-23T11:00:00Z")));
    assert_eq!(conv.customer_name.as_deref(), Some("Ana Lima"));
    let [ack] = &step.actions[..] else { panic!("{:?}", step.actions) };
    assert_eq!((ack.kind, ack.to.as_str()), (ActionKind::Acknowledgement, "ana@example.com"));
    assert!(ack.body.contains("Hi Ana,") && ack.body.contains("Monday, November 23 at 11:00 AM UTC"), "{}", ack.body);
    assert_eq!(r.next_deadline(), Some(ts("2026-11-23T10:45:00Z")));
}

#[test]
fn an_unanswered_conversation_is_warned_breached_and_escalated_each_once_in_business_hours() {
    let mut r = router();
    // Friday 16:30: 30 minutes left that day, due Monday 09:30.
    r.handle(ts("2026-11-27T16:30:00Z"), customer("t1", "m1", "Help"));
    let actions = run_until(&mut r, "2026-12-05T00:00:00Z");
    assert_eq!(
        actions,
        vec![
            ("2026-11-30T09:15:00Z".to_string(), ActionKind::NudgeWarning, "agents".to_string()),
            ("2026-11-30T09:30:00Z".to_string(), ActionKind::NudgeBreach, "agents".to_string()),
            ("2026-11-30T10:30:00Z".to_string(), ActionKind::Escalation, "managers".to_string()),
        ]
    );
    assert_eq!(r.next_deadline(), None);
    assert!(run_until(&mut r, "2027-01-01T00:00:00Z").is_empty(), "each nudge is sent once");
}

#[test]
fn timers_fire_to_the_second() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    assert!(run_until(&mut r, "2026-11-23T10:44:59Z").is_empty());
    assert_eq!(run_until(&mut r, "2026-11-23T10:45:00Z").len(), 1);
}

#[test]
fn an_answer_cancels_pending_nudges() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let warned = run_until(&mut r, "2026-11-23T10:50:00Z");
    assert_eq!(warned.len(), 1);
    r.handle(ts("2026-11-23T10:50:00Z"), agent("t1", "a1", GOOD_REPLY));
    let conv = changed(&mut r).unwrap();
    assert_eq!((conv.first_reply_at, conv.first_reply_by.as_deref()), (Some(ts("2026-11-23T10:50:00Z")), Some("sam")));
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_reply_at_exactly_the_due_instant_is_on_time() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    run_until(&mut r, "2026-11-23T10:59:59Z");
    // The shell applies inputs before timers due at the same instant.
    let check = r.handle(ts("2026-11-23T11:00:00Z"), agent("t1", "a1", GOOD_REPLY)).check.unwrap();
    assert!(check.first && !check.late);
    assert!(run_until(&mut r, "2026-11-23T11:00:00Z").is_empty(), "no breach after an on-time reply");
}

#[test]
fn a_late_first_reply_is_checked_for_an_apology_and_feedback_goes_to_the_agent() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r.handle(ts("2026-11-23T11:00:01Z"), agent("t1", "a1", GOOD_REPLY));
    let check = step.check.unwrap();
    assert!(check.first && check.late);
    let rules: Vec<_> = check.result.findings.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(rules, ["apology-when-late"]);
    let [feedback] = &step.actions[..] else { panic!("{:?}", step.actions) };
    assert_eq!((feedback.kind, feedback.to.as_str()), (ActionKind::Feedback, "sam"));
    assert!(feedback.body.contains("apologise"), "{}", feedback.body);
}

#[test]
fn a_reply_that_meets_every_standard_gets_no_feedback_message() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    assert!(step.actions.is_empty());
    assert_eq!(step.check.unwrap().result.score, 100);
}

#[test]
fn a_later_reply_is_not_a_first_reply() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    let check = r.handle(ts("2026-11-23T12:00:00Z"), agent("t1", "a2", GOOD_REPLY)).check.unwrap();
    assert!(!check.first && !check.late);
    assert_eq!(r.conversation("email:t1").unwrap().first_reply_at, Some(ts("2026-11-23T10:10:00Z")));
}

#[test]
fn a_resolved_conversation_gets_a_survey_after_the_delay_and_a_detractor_alerts_managers() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    let step = r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    assert_eq!(step.survey.unwrap().due_at, ts("2026-11-23T11:20:00Z"));
    // Surveys use wall-clock time: this one is due in the evening too.
    let steps = r.poll_timers(ts("2026-11-23T11:20:00Z"));
    let sent = steps[0].survey.clone().unwrap();
    assert_eq!(sent.status, SurveyStatus::Sent);
    let token = sent.token.unwrap();
    assert_eq!(token.len(), 58);
    assert_eq!(token, survey_token(b"test-secret", "email:t1#1", ts("2026-11-23T11:20:00Z")));
    assert!(steps[0].actions[0].body.contains(&token));
    let step = r.handle(ts("2026-11-23T12:00:00Z"), answer("t1", 3));
    assert_eq!(step.survey.unwrap().score, Some(3));
    let [alert] = &step.actions[..] else { panic!("{:?}", step.actions) };
    assert_eq!((alert.kind, alert.to.as_str()), (ActionKind::DetractorAlert, "managers"));
    assert!(alert.body.contains("3/10") && alert.body.contains("meh"), "{}", alert.body);
    // An answer is recorded once.
    let again = r.handle(ts("2026-11-23T12:01:00Z"), answer("t1", 10));
    assert!(again.survey.is_none() && again.notice.is_some());
}

#[test]
fn a_promoter_raises_no_alert() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    r.poll_timers(ts("2026-11-23T11:20:00Z"));
    let step = r.handle(ts("2026-11-23T12:00:00Z"), answer("t1", 9));
    assert!(step.actions.is_empty());
    assert_eq!(step.survey.unwrap().status, SurveyStatus::Answered);
}

#[test]
fn a_customer_writing_again_cancels_the_survey_and_reopens_keeping_the_first_response() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    let step = r.handle(ts("2026-11-23T10:30:00Z"), customer("t1", "m2", "Still broken"));
    assert_eq!(step.survey.unwrap().status, SurveyStatus::Cancelled);
    let conv = changed(&mut r).unwrap();
    assert_eq!(conv.status, Status::Open);
    assert_eq!(conv.first_reply_at, Some(ts("2026-11-23T10:10:00Z")));
    assert!(step.actions.is_empty(), "a reopen sends no second acknowledgement");
    assert!(r.poll_timers(ts("2026-12-01T00:00:00Z")).is_empty());
}

#[test]
fn a_customer_surveyed_recently_is_not_surveyed_again_but_cancelled_ones_do_not_count() {
    let mut r = router();
    for (thread, day) in [("t1", "23"), ("t2", "24")] {
        r.handle(ts(&format!("2026-11-{day}T10:00:00Z")), customer(thread, &format!("{thread}m"), "Help"));
        r.handle(ts(&format!("2026-11-{day}T10:20:00Z")), resolve(thread));
        r.poll_timers(ts(&format!("2026-11-{day}T12:00:00Z")));
    }
    assert_eq!(r.surveys["email:t1"].status, SurveyStatus::Sent);
    assert_eq!(r.surveys["email:t2"].status, SurveyStatus::Skipped);
    // A new customer whose first survey was cancelled still gets the next one.
    let mut r = router();
    let bob = |thread: &str, id: &str| {
        Input::Message(Message {
            channel: Channel::Email,
            thread: thread.into(),
            id: id.into(),
            author: Author { role: Role::Customer, id: "bob@example.com".into(), name: None },
            text: "hi".into(),
        })
    };
    r.handle(ts("2026-11-23T10:00:00Z"), bob("b1", "1"));
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("b1"));
    r.handle(ts("2026-11-23T10:30:00Z"), bob("b1", "2"));
    r.handle(ts("2026-11-24T10:00:00Z"), bob("b2", "3"));
    r.handle(ts("2026-11-24T10:20:00Z"), resolve("b2"));
    r.poll_timers(ts("2026-11-24T12:00:00Z"));
    assert_eq!(r.surveys["email:b2"].status, SurveyStatus::Sent);
}

#[test]
fn resolving_without_a_survey_schedules_none() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r.handle(
        ts("2026-11-23T10:20:00Z"),
        Input::Resolve { channel: Some(Channel::Email), thread: "t1".into(), by: "sam".into(), survey: false },
    );
    assert!(step.survey.is_none());
    assert_eq!(r.next_deadline(), None, "resolving cancels nudges too");
}

#[test]
fn inputs_for_unknown_threads_change_nothing_and_say_why() {
    let mut r = router();
    for input in [resolve("nope"), answer("nope", 5)] {
        let step = r.handle(ts("2026-11-23T10:00:00Z"), input);
        assert!(changed(&mut r).is_none() && step.actions.is_empty());
        assert!(step.notice.unwrap().contains("unknown thread"));
    }
}

#[test]
fn a_restored_router_neither_loses_nor_repeats_a_nudge_or_survey() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t2", "m2", "Help"));
    r.handle(ts("2026-11-23T10:05:00Z"), resolve("t2"));
    let warned = r.poll_timers(ts("2026-11-23T10:50:00Z"));
    assert_eq!(warned.len(), 1);
    // Persist what the steps said, as the shell does, then start afresh.
    let convs: Vec<_> = ["email:t1", "email:t2"].iter().map(|id| r.conversation(id).unwrap().clone()).collect();
    let surveys = vec![r.surveys["email:t2"].clone()];
    let mut restarted = router();
    restarted.restore(OpenWork { conversations: convs, surveys, last_sent: vec![] });
    let actions = run_until(&mut restarted, "2026-11-23T13:00:00Z");
    assert_eq!(
        actions,
        vec![
            ("2026-11-23T11:00:00Z".to_string(), ActionKind::NudgeBreach, "agents".to_string()),
            ("2026-11-23T11:05:00Z".to_string(), ActionKind::Survey, "ana@example.com".to_string()),
            ("2026-11-23T12:00:00Z".to_string(), ActionKind::Escalation, "managers".to_string()),
        ]
    );
}

#[test]
fn a_conversation_at_rest_stays_in_memory_until_the_shell_took_its_change_to_write_it() {
    let mut r = router();
    r.handle(ts("2026-11-23T09:00:00Z"), customer("z", "z", "Help"));
    let quiet = Input::Resolve { channel: None, thread: "z".into(), by: "sam".into(), survey: false };
    r.handle(ts("2026-11-23T09:01:00Z"), quiet);
    r.settle(ts("2026-11-23T09:02:00Z"));
    assert_eq!(r.in_memory(), 1, "not written yet: it stays");
    assert_eq!(changed(&mut r).map(|c| c.status), Some(Status::Resolved));
    r.settle(ts("2026-11-23T09:03:00Z"));
    assert_eq!(r.in_memory(), 0, "written: it may go");
}

#[test]
fn timers_due_at_one_instant_fire_in_conversation_order_whatever_order_memory_was_built_in() {
    // Two conversations of one customer resolved at the same second: their
    // surveys fall due together and the throttle lets one through. Which
    // one must not depend on the order memory holds them in (slots).
    let mut r = router();
    for t in ["b", "a", "c"] {
        r.handle(ts("2026-11-23T10:00:00Z"), customer(t, t, "Help"));
    }
    for t in ["c", "a", "b"] {
        r.handle(ts("2026-11-23T10:05:00Z"), resolve(t));
    }
    let stored: Vec<_> =
        ["email:a", "email:b", "email:c"].iter().map(|id| r.conversation(id).unwrap().clone()).collect();
    let surveys: Vec<_> = ["email:a", "email:b", "email:c"].iter().map(|id| r.surveys[*id].clone()).collect();
    let fired = |r: &mut Router| -> Vec<(String, SurveyStatus)> {
        r.poll_timers(ts("2026-11-23T12:00:00Z"))
            .into_iter()
            .filter_map(|s| s.survey)
            .map(|s| (s.conversation, s.status))
            .collect()
    };
    let expected = vec![
        ("email:a".to_string(), SurveyStatus::Sent),
        ("email:b".to_string(), SurveyStatus::Skipped),
        ("email:c".to_string(), SurveyStatus::Skipped),
    ];
    assert_eq!(fired(&mut r), expected);
    for order in [[2, 0, 1], [1, 2, 0], [0, 1, 2]] {
        let mut restarted = router();
        // An emptied slot first, so slots differ from the first router's.
        restarted.handle(ts("2026-11-23T09:00:00Z"), customer("z", "z", "Help"));
        let quiet = Input::Resolve { channel: None, thread: "z".into(), by: "sam".into(), survey: false };
        restarted.handle(ts("2026-11-23T09:01:00Z"), quiet);
        // Written (as the shell does before settling), so it may go.
        assert_eq!(changed(&mut restarted).map(|c| c.id), Some("email:z".to_string()));
        let work = OpenWork {
            conversations: order.iter().map(|&i| stored[i].clone()).collect(),
            surveys: order.iter().map(|&i| surveys[i].clone()).collect(),
            last_sent: vec![],
        };
        restarted.settle(ts("2026-11-23T09:02:00Z"));
        assert_eq!(restarted.in_memory(), 0);
        restarted.restore(work);
        assert_eq!(fired(&mut restarted), expected, "restored in order {order:?}");
    }
}

#[test]
fn several_escalation_levels_go_to_their_own_recipients() {
    let mut r = router();
    r.policy.escalations = vec![
        Escalation { after: 3600, to: Recipient::Agent("lead@example.com".into()) },
        Escalation { after: 4 * 3600, to: Recipient::Managers },
    ];
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let actions = run_until(&mut r, "2026-11-24T00:00:00Z");
    let tail: Vec<_> = actions[2..].iter().map(|(at, _, to)| (at.as_str(), to.as_str())).collect();
    assert_eq!(tail, [("2026-11-23T12:00:00Z", "lead@example.com"), ("2026-11-23T15:00:00Z", "managers")]);
}

#[test]
fn an_agent_started_conversation_has_no_clock_and_no_first_response() {
    let mut r = router();
    let step = r.handle(ts("2026-11-23T10:00:00Z"), agent("new", "a1", GOOD_REPLY));
    let conv = changed(&mut r).unwrap();
    assert_eq!((conv.due_at, conv.first_reply_at), (None, None));
    assert!(!step.check.unwrap().first);
    assert_eq!(r.next_deadline(), None);
}

fn router_with_next_response() -> Router {
    let mut r = router();
    r.policy.next_response = Some(2 * 3600);
    r
}

#[test]
fn with_next_response_a_customer_message_after_a_reply_starts_a_new_clock_with_its_own_nudges() {
    let mut r = router_with_next_response();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T11:00:00Z"), customer("t1", "m2", "Still broken"));
    let conv = changed(&mut r).unwrap();
    assert_eq!((conv.waits, conv.reply_due), (2, Some(ts("2026-11-23T13:00:00Z"))));
    assert_eq!(conv.due_at, Some(ts("2026-11-23T11:00:00Z")), "the first-response due instant is kept for reports");
    // A further customer message does not restart the running clock.
    r.handle(ts("2026-11-23T11:30:00Z"), customer("t1", "m3", "Hello?"));
    let steps = r.poll_timers(ts("2026-11-23T23:00:00Z"));
    let fired: Vec<_> = steps
        .iter()
        .flat_map(|s| &s.actions)
        .map(|a| (a.at.to_string(), a.kind, a.to.as_str(), a.key.as_str()))
        .collect();
    assert_eq!(
        fired,
        vec![
            ("2026-11-23T12:30:00Z".to_string(), ActionKind::NudgeWarning, "sam", "email:t1/wait2/sla/0"),
            ("2026-11-23T13:00:00Z".to_string(), ActionKind::NudgeBreach, "sam", "email:t1/wait2/sla/1"),
            ("2026-11-23T14:00:00Z".to_string(), ActionKind::Escalation, "managers", "email:t1/wait2/sla/2"),
        ]
    );
    assert!(steps[0].actions[0].body.contains("waiting for a reply"), "{}", steps[0].actions[0].body);
    assert!(steps[1].actions[0].body.contains("next-response target"), "{}", steps[1].actions[0].body);
}

#[test]
fn with_next_response_the_next_agent_reply_answers_the_wait_and_is_not_a_first_reply() {
    let mut r = router_with_next_response();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T11:00:00Z"), customer("t1", "m2", "Still broken"));
    let step = r.handle(ts("2026-11-23T12:00:00Z"), agent("t1", "a2", GOOD_REPLY));
    let check = step.check.unwrap();
    assert!(!check.first && !check.late);
    assert_eq!(changed(&mut r).unwrap().reply_due, None);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn with_next_response_a_reopened_conversation_waits_again_and_survives_a_restart() {
    let mut r = router_with_next_response();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    r.handle(ts("2026-11-23T10:30:00Z"), customer("t1", "m2", "It broke again"));
    let warned = r.poll_timers(ts("2026-11-23T12:00:00Z"));
    assert_eq!(warned.len(), 1);
    let conv = r.conversation("email:t1").unwrap().clone();
    assert_eq!((conv.status, conv.waits, conv.sla_stage), (Status::Open, 2, 1));
    let mut restarted = router_with_next_response();
    restarted.restore(OpenWork { conversations: vec![conv], ..OpenWork::default() });
    let fired: Vec<_> = restarted.poll_timers(ts("2026-11-23T12:30:00Z")).into_iter().flat_map(|s| s.actions).collect();
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].kind, fired[0].at), (ActionKind::NudgeBreach, ts("2026-11-23T12:30:00Z")));
}

#[test]
fn without_next_response_later_customer_messages_run_no_clock() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T11:00:00Z"), customer("t1", "m2", "Still broken"));
    let conv = changed(&mut r).unwrap();
    assert_eq!((conv.waits, conv.reply_due), (1, None));
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn a_reply_starting_with_a_score_answers_the_survey_awaiting_one() {
    for (text, expected) in [
        ("9", Some((9, None))),
        ("10 - great service", Some((10, Some("great service".to_string())))),
        ("7/10, a bit slow", Some((7, Some("a bit slow".to_string())))),
        ("  0\nterrible", Some((0, Some("terrible".to_string())))),
        ("11", None),
        ("9.5", None),
        ("It still crashes", None),
        ("100 times I tried", None),
    ] {
        assert_eq!(score_reply(text), expected, "{text:?}");
    }
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    // Before any survey is sent, "3 more problems" is an ordinary message.
    let step = r.handle(ts("2026-11-23T10:05:00Z"), customer("t1", "m2", "3 more problems"));
    assert!(step.survey.is_none());
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    r.poll_timers(ts("2026-11-23T11:20:00Z"));
    let step = r.handle(ts("2026-11-23T12:00:00Z"), customer("t1", "m3", "4 - took a while"));
    let survey = step.survey.unwrap();
    assert_eq!(
        (survey.status, survey.score, survey.comment.as_deref()),
        (SurveyStatus::Answered, Some(4), Some("took a while"))
    );
    assert_eq!(step.actions[0].kind, ActionKind::DetractorAlert);
    assert_eq!(r.conversation("email:t1").unwrap().status, Status::Resolved, "an answer does not reopen");
}

fn relay(thread: &str, id: &str, text: &str, send_anyway: bool) -> Input {
    let Input::Message(message) = agent(thread, id, text) else { unreachable!() };
    Input::Relay { message, send_anyway }
}

const POOR_REPLY: &str = "Hi Ana, as I already said, the invoice is fixed. Best, Sam";

#[test]
fn a_relayed_reply_goes_to_the_customer_and_counts_as_the_response() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r.handle(ts("2026-11-23T10:10:00Z"), relay("t1", "a1", GOOD_REPLY, false));
    let [reply] = &step.actions[..] else { panic!("{:?}", step.actions) };
    assert_eq!(
        (reply.kind, reply.to.as_str(), reply.body.as_str()),
        (ActionKind::Reply, "ana@example.com", GOOD_REPLY)
    );
    assert_eq!(changed(&mut r).unwrap().first_reply_at, Some(ts("2026-11-23T10:10:00Z")));
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn in_coach_mode_a_poor_relayed_reply_is_sent_and_feedback_follows() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r.handle(ts("2026-11-23T10:10:00Z"), relay("t1", "a1", POOR_REPLY, false));
    let kinds: Vec<_> = step.actions.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [ActionKind::Reply, ActionKind::Feedback]);
    assert!(!step.check.unwrap().overridden);
}

#[test]
fn in_enforce_mode_a_reply_breaking_an_error_rule_is_held_until_corrected_or_sent_anyway() {
    let mut r = router();
    r.policy.enforce = true;
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    changed(&mut r);
    let held = r.handle(ts("2026-11-23T10:10:00Z"), relay("t1", "a1", POOR_REPLY, false));
    let [action] = &held.actions[..] else { panic!("{:?}", held.actions) };
    assert_eq!((action.kind, action.to.as_str()), (ActionKind::Held, "sam"));
    assert!(action.body.contains("NOT sent") && action.body.contains("dismissive"), "{}", action.body);
    assert!(held.check.is_none() && changed(&mut r).is_none(), "nothing recorded as a reply");
    assert_eq!(r.next_deadline(), Some(ts("2026-11-23T10:45:00Z")), "the clock keeps running");
    // A warning-only reply is not held in enforce mode.
    let fixed =
        r.handle(ts("2026-11-23T10:20:00Z"), relay("t1", "a2", "Hi Ana, the invoice is fixed. Best, Sam", false));
    assert_eq!(fixed.actions[0].kind, ActionKind::Reply);
    // #send-anyway sends a breaking reply and records the override.
    let mut r2 = router();
    r2.policy.enforce = true;
    r2.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let step = r2.handle(ts("2026-11-23T10:10:00Z"), relay("t1", "a1", POOR_REPLY, true));
    assert_eq!(step.actions[0].kind, ActionKind::Reply);
    assert!(step.check.unwrap().overridden);
}

fn router_with_silence() -> Router {
    let mut r = router();
    r.policy.resolve_after_silence.insert(Channel::Email, 3 * 86_400);
    r
}

#[test]
fn a_conversation_is_resolved_after_the_customer_stays_silent_after_a_reply_and_gets_a_survey() {
    let mut r = router_with_silence();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    assert!(r.poll_timers(ts("2026-11-26T10:09:59Z")).is_empty());
    let steps = r.poll_timers(ts("2026-11-26T10:10:00Z"));
    assert_eq!(steps.len(), 1);
    let conv = changed(&mut r).unwrap();
    assert_eq!((conv.status, conv.resolved_at), (Status::Resolved, Some(ts("2026-11-26T10:10:00Z"))));
    assert_eq!(steps[0].survey.clone().unwrap().due_at, ts("2026-11-26T11:10:00Z"));
}

#[test]
fn a_customer_message_breaks_the_silence_and_a_later_reply_starts_it_again() {
    let mut r = router_with_silence();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-24T09:00:00Z"), customer("t1", "m2", "Still broken"));
    assert!(r.poll_timers(ts("2026-11-27T00:00:00Z")).is_empty(), "the customer answered: no auto-resolve");
    r.handle(ts("2026-11-24T10:00:00Z"), agent("t1", "a2", GOOD_REPLY));
    // Restart in between: the timer is rebuilt from the stored state.
    let conv = r.conversation("email:t1").unwrap().clone();
    let mut restarted = router_with_silence();
    restarted.restore(OpenWork { conversations: vec![conv], ..OpenWork::default() });
    let steps = restarted.poll_timers(ts("2026-11-27T10:00:00Z"));
    assert_eq!(steps.len(), 1);
    assert_eq!(changed(&mut restarted).unwrap().resolved_at, Some(ts("2026-11-27T10:00:00Z")));
}

#[test]
fn without_the_setting_or_on_other_channels_nothing_is_resolved_by_silence() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    assert_eq!(r.next_deadline(), None);
    let mut r = router();
    r.policy.resolve_after_silence.insert(Channel::Discord, 60);
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    assert_eq!(r.next_deadline(), None, "t1 is an email conversation");
}

#[test]
fn an_assigned_conversation_is_nudged_to_its_agent() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(
        ts("2026-11-23T10:05:00Z"),
        Input::Assign { channel: None, thread: "t1".into(), agent: "kim@example.com".into() },
    );
    assert_eq!(changed(&mut r).unwrap().assigned.as_deref(), Some("kim@example.com"));
    let warned: Vec<_> = r.poll_timers(ts("2026-11-23T10:45:00Z")).into_iter().flat_map(|s| s.actions).collect();
    assert_eq!((warned[0].kind, warned[0].to.as_str()), (ActionKind::NudgeWarning, "kim@example.com"));
    let unknown =
        r.handle(ts("2026-11-23T10:50:00Z"), Input::Assign { channel: None, thread: "zz".into(), agent: "kim".into() });
    assert!(unknown.notice.is_some());
}

fn posted(thread: &str, id: &str, text: &str) -> Input {
    let Input::Message(message) = agent(thread, id, text) else { unreachable!() };
    Input::Posted(message)
}

#[test]
fn a_posted_reply_breaking_an_error_rule_is_taken_back_in_enforce_mode_and_kept_in_coach_mode() {
    let mut r = router();
    r.policy.enforce = true;
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    changed(&mut r);
    let held = r.handle(ts("2026-11-23T10:10:00Z"), posted("t1", "a1", POOR_REPLY));
    let [action] = &held.actions[..] else { panic!("{:?}", held.actions) };
    assert_eq!((action.kind, action.to.as_str(), action.about.as_deref()), (ActionKind::Held, "sam", Some("a1")));
    assert!(action.body.contains("taken back") && action.body.contains(POOR_REPLY), "{}", action.body);
    assert!(held.check.is_none() && changed(&mut r).is_none(), "not a response");
    // A passing reply is an ordinary agent reply: no action sends it again.
    let ok = r.handle(ts("2026-11-23T10:12:00Z"), posted("t1", "a2", GOOD_REPLY));
    assert!(ok.actions.is_empty(), "{:?}", ok.actions);
    assert_eq!(changed(&mut r).unwrap().first_reply_at, Some(ts("2026-11-23T10:12:00Z")));
    // Coach mode keeps it and coaches.
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    let kept = r.handle(ts("2026-11-23T10:10:00Z"), posted("t1", "a1", POOR_REPLY));
    let kinds: Vec<_> = kept.actions.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [ActionKind::Feedback]);
    assert!(changed(&mut r).unwrap().first_reply_at.is_some());
}

#[test]
fn reopen_cancels_the_pending_survey_and_a_comment_completes_an_answer() {
    let mut r = router();
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    r.handle(ts("2026-11-23T10:20:00Z"), resolve("t1"));
    let step =
        r.handle(ts("2026-11-23T10:30:00Z"), Input::Reopen { channel: None, thread: "t1".into(), by: "sam".into() });
    assert_eq!(changed(&mut r).unwrap().status, Status::Open);
    assert_eq!(step.survey.unwrap().status, SurveyStatus::Cancelled);
    assert!(r.poll_timers(ts("2026-11-23T12:00:00Z")).is_empty(), "no survey goes out");
    let again =
        r.handle(ts("2026-11-23T10:31:00Z"), Input::Reopen { channel: None, thread: "t1".into(), by: "sam".into() });
    assert!(again.notice.is_some(), "already open");
    r.handle(ts("2026-11-23T13:00:00Z"), resolve("t1"));
    r.poll_timers(ts("2026-11-23T14:00:00Z"));
    let comment = |text: &str| Input::SurveyComment { channel: None, thread: "t1".into(), comment: text.into() };
    assert!(r.handle(ts("2026-11-23T14:01:00Z"), comment("early")).notice.is_some(), "no answer yet");
    r.handle(
        ts("2026-11-23T14:02:00Z"),
        Input::SurveyAnswer { channel: None, thread: "t1".into(), score: 9, comment: None },
    );
    let step = r.handle(ts("2026-11-23T14:03:00Z"), comment("  quick and kind "));
    assert_eq!(step.survey.unwrap().comment.as_deref(), Some("quick and kind"));
}

/// A router that settles after every input and timer, hydrating from a map
/// of the snapshots its steps returned (a database in miniature), must act
/// exactly like one that keeps everything in memory.
#[test]
fn memory_that_follows_open_work_acts_exactly_like_memory_that_keeps_everything() {
    let hours = router().policy.hours.clone();
    let demo = crate::demo::events(&hours);
    let mut events: Vec<(Timestamp, Input)> =
        demo.lines().map(|l| crate::replay::parse_line(l).expect("demo line parses")).collect();
    // Old threads written to again: replies, answers by reply and by link,
    // corrections, comments, reopen and resolve by thread, a second survey
    // inside the throttle window, an agent-started thread.
    let tail = [
        ("2026-11-24T10:00:00Z", customer("old-1", "o1", "My invoice is wrong")),
        ("2026-11-24T10:20:00Z", agent("old-1", "o2", GOOD_REPLY)),
        ("2026-11-24T10:30:00Z", resolve("old-1")),
        ("2026-11-24T12:00:00Z", customer("old-1", "o3", "9 thanks")),
        ("2026-11-24T12:05:00Z", Input::SurveyCorrection { channel: None, thread: "old-1".into(), score: 4 }),
        (
            "2026-11-24T12:30:00Z",
            Input::SurveyComment { channel: None, thread: "old-1".into(), comment: "slow".into() },
        ),
        ("2026-11-25T09:00:00Z", customer("old-1", "o4", "It is wrong again")),
        ("2026-11-25T09:10:00Z", agent("old-1", "o5", GOOD_REPLY)),
        ("2026-11-25T09:20:00Z", resolve("old-1")),
        ("2026-11-25T09:30:00Z", Input::Reopen { channel: None, thread: "old-1".into(), by: "sam".into() }),
        ("2026-11-25T09:40:00Z", resolve("old-1")),
        ("2026-11-25T10:00:00Z", customer("old-2", "p1", "Where is my parcel")),
        ("2026-11-25T10:10:00Z", agent("old-2", "p2", GOOD_REPLY)),
        ("2026-11-25T10:20:00Z", resolve("old-2")),
        ("2026-11-25T13:00:00Z", answer("old-2", 10)),
        ("2026-11-25T14:00:00Z", agent("agent-started", "q1", "Hi team, a note for later.")),
        ("2026-11-25T14:10:00Z", resolve("agent-started")),
        ("2026-11-25T14:20:00Z", Input::Assign { channel: None, thread: "agent-started".into(), agent: "kim".into() }),
    ];
    events.extend(tail.into_iter().map(|(at, input)| (ts(at), input)));
    let end = ts("2026-12-01T00:00:00Z");

    #[derive(Default)]
    struct Db {
        convs: HashMap<String, Conversation>,
        surveys: HashMap<String, Survey>,
        seen: Vec<(Timestamp, String, String, String)>,
    }
    impl Db {
        fn keep(&mut self, steps: Vec<Step>, changed: Vec<Conversation>, now: Timestamp) {
            for c in changed {
                self.convs.insert(c.id.clone(), c);
            }
            for step in steps {
                self.seen
                    .extend(step.actions.iter().map(|a| (a.at, a.key.clone(), a.to.as_str().into(), a.body.clone())));
                self.seen.extend(step.notice.iter().map(|n| (now, "notice".into(), String::new(), n.clone())));
                if let Some(s) = step.survey {
                    self.surveys.insert(s.id.clone(), s);
                }
            }
        }
        fn hydrate(&self, r: &mut Router, wanted: Wanted) {
            let found = self
                .convs
                .values()
                .filter(|c| match &wanted {
                    Wanted::Id(id) => &c.id == id,
                    Wanted::Thread(t) => &c.thread == t,
                })
                .max_by_key(|c| (c.opened_at, c.id.clone()));
            if let Some(c) = found {
                let surveys = self.surveys.values().filter(|s| s.conversation == c.id).cloned().collect();
                r.hydrate(c.clone(), surveys);
            }
        }
    }
    let run = |settling: bool| {
        let mut r = router();
        let mut db = Db::default();
        let mut peak = 0;
        for (at, input) in events.clone() {
            db.keep(r.poll_timers(at), r.take_changed(), at);
            if settling {
                r.settle(at);
            }
            if let Some(wanted) = r.wants(&input) {
                db.hydrate(&mut r, wanted);
            }
            db.keep(vec![r.handle(at, input)], r.take_changed(), at);
            peak = peak.max(r.in_memory());
            if settling {
                r.settle(at);
            }
        }
        db.keep(r.poll_timers(end), r.take_changed(), end);
        if settling {
            r.settle(end);
        }
        let open_work = db
            .convs
            .values()
            .filter(|c| {
                c.status == Status::Open
                    || db.surveys.values().any(|s| s.conversation == c.id && s.status == SurveyStatus::Pending)
            })
            .count();
        (db.seen, db.convs.len(), r.in_memory(), peak, open_work)
    };
    let (all_in_memory, stored, held, _, _) = run(false);
    let (settling, _, held_settling, peak, open_work) = run(true);
    assert!(all_in_memory.len() > 200, "the history exercises the router: {}", all_in_memory.len());
    assert_eq!(settling, all_in_memory, "same actions and notices, in the same order");
    assert_eq!(held, stored, "without settling, memory keeps every conversation");
    assert_eq!(held_settling, open_work, "settled memory holds open work only ({stored} stored)");
    assert!(open_work < stored / 2, "the history leaves most conversations at rest: {open_work} of {stored}");
    assert!(peak < stored, "and never everything at once: peak {peak} of {stored}");
}

#[test]
fn resolves_and_reopenings_are_each_a_step_of_the_resolution_history() {
    let mut r = router();
    let history = |step: Step| step.resolution.map(|x| (x.conversation, x.resolved_at, x.reopened_at));
    r.handle(ts("2026-11-23T10:00:00Z"), customer("t1", "m1", "Help"));
    r.handle(ts("2026-11-23T10:10:00Z"), agent("t1", "a1", GOOD_REPLY));
    let resolved = ts("2026-11-23T10:20:00Z");
    assert_eq!(history(r.handle(resolved, resolve("t1"))), Some(("email:t1".into(), resolved, None)));
    // Resolving again changes nothing, and writes no history.
    assert_eq!(history(r.handle(ts("2026-11-23T10:21:00Z"), resolve("t1"))), None);
    // The customer writing back reopens that resolution.
    let back = ts("2026-11-24T09:00:00Z");
    let step = r.handle(back, customer("t1", "m2", "Still broken"));
    assert_eq!(history(step), Some(("email:t1".into(), resolved, Some(back))));
    let again = ts("2026-11-24T10:00:00Z");
    assert_eq!(history(r.handle(again, resolve("t1"))), Some(("email:t1".into(), again, None)));
    // So does a reopen by an agent; reopening an open one writes nothing.
    let reopened = ts("2026-11-25T09:00:00Z");
    let reopen = || Input::Reopen { channel: None, thread: "t1".into(), by: "sam".into() };
    assert_eq!(history(r.handle(reopened, reopen())), Some(("email:t1".into(), again, Some(reopened))));
    assert_eq!(history(r.handle(ts("2026-11-25T09:01:00Z"), reopen())), None);
    // Other inputs are not part of it.
    assert_eq!(history(r.handle(ts("2026-11-25T09:02:00Z"), agent("t1", "a2", GOOD_REPLY))), None);
}
