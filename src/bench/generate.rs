//! The data `concierge bench` measures, generated from a seed so every
//! machine measures the same: agent replies for the rules, event histories
//! for ingest and timers, and stored history (conversations, reply checks,
//! surveys) for start-up and reports. Pure: no I/O, no clock.

use jiff::Timestamp;

use crate::core::router::{
    Author, Channel, Conversation, Input, Message, ReplyCheck, Resolution, Role, Status, Step, Survey, SurveyStatus,
};
use crate::core::rules::{CheckResult, Finding, Severity};
use crate::demo::Rng;
use crate::replay::Event;
use crate::standards::{self, Labelled};

/// Neutral support prose the replies are padded with: explanations and
/// steps that no rule is about, so padding changes a reply's length, not
/// its verdict.
const FILLER: [&str; 24] = [
    "The export runs overnight and the file lands in the shared folder by seven in the morning.",
    "Your plan renews on the first of each month, and the invoice shows every seat separately.",
    "The mobile app keeps a local copy of your drafts, so nothing typed offline goes missing.",
    "Each workspace can hold up to fifty projects, and archived ones do not count towards that.",
    "The sync service retries a failed upload three times before it marks the file for review.",
    "Reports are built from the data as it stood at midnight in your account's time zone.",
    "Two-factor codes are valid for thirty seconds, and the app shows a fresh one when they expire.",
    "The audit log lists every change with the person who made it and the time it happened.",
    "Shipping labels are printed at the warehouse in the order the payments clear.",
    "The calendar integration reads your free and busy times but never the titles of your events.",
    "Refunds go back to the card that paid, and banks usually show them within five working days.",
    "The browser extension needs the clipboard permission only when you paste into a form.",
    "Older invoices stay available under Billing, where each one can be downloaded as a PDF.",
    "The import accepts CSV files with a header row, and the columns can come in any order.",
    "Team members you invite get an email with a link that stays valid for seven days.",
    "The desktop client checks for updates at start-up and installs them when you quit.",
    "Storage counts the latest version of each file, while older versions are kept for thirty days.",
    "The dashboard refreshes every few minutes, so a change can take a moment to show up there.",
    "Custom domains need a CNAME record, and the certificate is issued once the record resolves.",
    "Your data is kept in the region you chose at sign-up, and backups stay in the same region.",
    "The notification settings apply per device, so the phone and the laptop can differ.",
    "Exports include attachments only when the option to bundle them is switched on.",
    "The webhook sends a signed request for each event, and the signature uses your endpoint's secret.",
    "Guest accounts can comment and view files, but they cannot invite anyone else.",
];

/// One generated reply and the context it is checked in.
#[derive(Debug, Clone)]
pub struct Reply {
    pub labelled: Labelled,
    /// Whether the corpus reply it grew from is labelled poor.
    pub poor: bool,
}

/// `n` agent replies of 200 to 3000 characters, mixed good and poor: each
/// is a reply from the labelled corpus padded with neutral paragraphs
/// after its first paragraph (the greeting stays first, the sign-off last).
pub fn replies(n: usize, seed: u64) -> Vec<Reply> {
    let corpus: Vec<Labelled> = standards::BUILT_IN_CORPUS
        .iter()
        .flat_map(|(name, text)| standards::parse(text, name).expect("the built-in corpus parses"))
        .map(|(_, l)| l)
        .collect();
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let mut labelled = rng.pick(&corpus).clone();
            let target = 200 + rng.below(2801) as usize;
            labelled.text = padded(&labelled.text, target, &mut rng);
            let poor = labelled.expect == standards::Verdict::Fail;
            Reply { labelled, poor }
        })
        .collect()
}

fn padded(text: &str, target: usize, rng: &mut Rng) -> String {
    let (head, tail) = match text.split_once("\n\n") {
        Some((h, t)) => (h.to_string(), t.to_string()),
        None => (String::new(), text.to_string()),
    };
    let mut middle = String::new();
    while head.len() + middle.len() + tail.len() < target {
        let sentences = 1 + rng.below(3);
        for i in 0..sentences {
            middle.push_str(if i == 0 { "" } else { " " });
            let sentence: &&str = rng.pick(&FILLER[..]);
            middle.push_str(sentence);
        }
        middle.push_str("\n\n");
    }
    let mut out = if head.is_empty() { middle } else { format!("{head}\n\n{middle}") };
    out.push_str(&tail);
    // Never past the upper bound: cut at a character boundary.
    if out.len() > 3000 {
        let mut cut = 3000;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

const FIRST_NAMES: [&str; 12] =
    ["Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jon", "Kai", "Lena"];
const AGENTS: [&str; 6] = ["sam", "kim", "alex", "noor", "lee", "ravi"];
const PROBLEMS: [&str; 6] = [
    "My invoice shows the wrong amount this month.",
    "I cannot log in since the last update.",
    "The export has been stuck at 90% for an hour.",
    "Where is my order? It was due yesterday.",
    "How do I add a second admin to our workspace?",
    "The app crashes when I upload a photo.",
];
const FOLLOW_UPS: [&str; 4] = [
    "Thanks, that helped. One more thing: can I change the billing email too?",
    "It worked on the laptop but not on my phone.",
    "Could you also check the previous month?",
    "Great, and is there a way to do this for the whole team?",
];

/// An agent reply the default rules pass: greeting with the name, the
/// problem acknowledged, what was done, a sign-off.
fn good_reply(first: &str, agent: &str, late: bool) -> String {
    let sorry =
        if late { "Sorry for the wait, and thanks for your patience. " } else { "Thanks for getting in touch. " };
    format!(
        "Hi {first},\n\n{sorry}I've looked into this and fixed the setting on your account, so it works again now.\n\n\
         Let me know if anything else comes up.\nBest,\n{agent}"
    )
}

/// A history of `conversations` conversations and about ten events each
/// (a customer's first message, three to five exchanges, a resolve, a
/// survey answer), opened evenly over `weeks` weeks from `start` and
/// interleaved in time as a busy team's are. Sorted by instant.
pub fn events(conversations: usize, weeks: i64, start: Timestamp, seed: u64) -> Vec<Event> {
    let mut rng = Rng(seed);
    let span = weeks.max(1) * 7 * 86_400;
    let mut out = Vec::with_capacity(conversations * 10);
    for n in 0..conversations {
        let opened = start.as_second() + (n as i64 * span) / conversations.max(1) as i64;
        let channel = if rng.chance(30) { Channel::Discord } else { Channel::Email };
        let thread = format!("bench-{n:07}");
        let first = *rng.pick(&FIRST_NAMES[..]);
        let customer = Author {
            role: Role::Customer,
            id: if channel == Channel::Email { format!("c{n}@example.com") } else { format!("{}", 10_000_000 + n) },
            name: Some(format!("{first} Example")),
        };
        let agent_id = *rng.pick(&AGENTS[..]);
        let agent = Author { role: Role::Agent, id: agent_id.to_string(), name: Some(agent_id.to_string()) };
        let mut at = opened;
        let mut seq = 0;
        let mut message = |at: i64, author: &Author, text: String, out: &mut Vec<Event>| {
            seq += 1;
            let m = Message {
                channel,
                thread: thread.clone(),
                id: format!("{thread}-{seq}"),
                author: author.clone(),
                text,
            };
            out.push(Event { line: 0, at: instant(at), input: Input::Message(m) });
        };
        message(at, &customer, rng.pick(&PROBLEMS[..]).to_string(), &mut out);
        let exchanges = 3 + rng.below(3);
        for i in 0..exchanges {
            at += 60 + rng.below(4 * 3600) as i64;
            message(at, &agent, good_reply(first, agent_id, rng.chance(10)), &mut out);
            if i + 1 < exchanges {
                at += 60 + rng.below(3600) as i64;
                message(at, &customer, rng.pick(&FOLLOW_UPS[..]).to_string(), &mut out);
            }
        }
        at += 600;
        let resolve =
            Input::Resolve { channel: Some(channel), thread: thread.clone(), by: agent_id.into(), survey: true };
        out.push(Event { line: 0, at: instant(at), input: resolve });
        // Surveys go out an hour after the resolve; answers come later.
        at += 3600 + 60 + rng.below(86_400) as i64;
        let score = rng.below(11) as u8;
        let answer = Input::SurveyAnswer { channel: Some(channel), thread: thread.clone(), score, comment: None };
        out.push(Event { line: 0, at: instant(at), input: answer });
    }
    out.sort_by_key(|e| e.at);
    for (i, e) in out.iter_mut().enumerate() {
        e.line = i + 1;
    }
    out
}

fn instant(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).expect("generated instants are in range")
}

/// Stored history as the router would have written it: `total`
/// conversations opened evenly over the `weeks` weeks before `end`, `open`
/// of them (one in every total/open) still open instead (opened in the hour
/// before `end`) with
/// a first response owed within `due_spread` seconds after `end`, so their
/// timers are pending; the rest answered, resolved and, for most,
/// surveyed. Each conversation comes with one [`Step`] (its survey and
/// first reply's check), written through the store's own batch path.
pub fn history(
    total: usize,
    open: usize,
    weeks: i64,
    end: Timestamp,
    due_spread: i64,
    seed: u64,
) -> impl Iterator<Item = (Conversation, Step)> {
    let mut rng = Rng(seed);
    let span = weeks.max(1) * 7 * 86_400;
    let start = end.as_second() - span;
    (0..total).map(move |n| {
        let opened = start + (n as i64 * span) / total.max(1) as i64;
        let channel = if rng.chance(30) { Channel::Discord } else { Channel::Email };
        let thread = format!("hist-{n:07}");
        let id = Conversation::key(channel, &thread);
        let customer = format!("c{}@example.com", rng.below(total as u64 / 2 + 1));
        let agent = rng.pick(&AGENTS[..]).to_string();
        // Every (total/open)-th is open, so history fills every week.
        let still_open = open > 0 && n % (total / open).max(1) == 0 && n / (total / open).max(1) < open;
        let mut conv = Conversation {
            id: id.clone(),
            channel,
            thread,
            customer_id: Some(customer.clone()),
            customer_name: Some(format!("{} Example", rng.pick(&FIRST_NAMES[..]))),
            opened_at: instant(opened),
            due_at: Some(instant(opened + 3600)),
            first_reply_at: None,
            first_reply_by: None,
            status: Status::Open,
            resolved_at: None,
            assigned: None,
            waiting_since: Some(instant(opened)),
            reply_due: Some(instant(opened + 3600)),
            waits: 1,
            sla_stage: 0,
            surveys: 0,
            silent_since: None,
            asked_words: 9,
            name_used: false,
        };
        if still_open {
            // Opened in the hour before `end`, its reply due soon after.
            let due = end.as_second() + 1 + rng.below(due_spread.max(1) as u64) as i64;
            conv.opened_at = instant(end.as_second() - rng.below(3600) as i64);
            conv.waiting_since = Some(conv.opened_at);
            conv.due_at = Some(instant(due));
            conv.reply_due = Some(instant(due));
            return (conv, Step::default());
        }
        let replied = opened + 60 + rng.below(3 * 3600) as i64;
        let late = replied > opened + 3600;
        let resolved = replied + 600 + rng.below(86_400) as i64;
        conv.first_reply_at = Some(instant(replied));
        conv.first_reply_by = Some(agent.clone());
        conv.assigned = Some(agent.clone());
        conv.status = Status::Resolved;
        conv.resolved_at = Some(instant(resolved));
        conv.waiting_since = None;
        conv.reply_due = None;
        conv.sla_stage = if late { 2 } else { 0 };
        conv.asked_words = 0;
        conv.name_used = true;
        let findings = if rng.chance(20) {
            vec![Finding {
                rule: "sign-off".into(),
                severity: Severity::Warning,
                message: "End with a sign-off.".into(),
                suggestion: String::new(),
                start: 0,
                end: 0,
                sentence: String::new(),
                rewrite: None,
            }]
        } else {
            Vec::new()
        };
        let check = ReplyCheck {
            message_id: format!("{}-1", conv.thread),
            conversation: id.clone(),
            agent,
            at: instant(replied),
            first: true,
            late,
            overridden: false,
            result: CheckResult { score: if findings.is_empty() { 100 } else { 90 }, passed: true, findings },
        };
        let survey = rng.chance(70).then(|| {
            conv.surveys = 1;
            let sent = resolved + 3600;
            let answered = rng.chance(40);
            Survey {
                id: format!("{id}#1"),
                conversation: id.clone(),
                customer_id: customer,
                status: if answered { SurveyStatus::Answered } else { SurveyStatus::Sent },
                due_at: instant(sent),
                sent_at: Some(instant(sent)),
                token: Some(format!("bench-token-{n}")),
                score: answered.then(|| rng.below(11) as u8),
                comment: None,
                answered_at: answered.then(|| instant(sent + 600)),
            }
        });
        let resolution = Resolution { conversation: id.clone(), resolved_at: instant(resolved), reopened_at: None };
        (conv, Step { survey, check: Some(check), resolution: Some(resolution), ..Step::default() })
    })
}

/// `n` open conversations on email, each owed a first response with a
/// `target` of `target` seconds (the team open around the clock), opened so
/// that their half-time warnings fall due evenly over the `spread` seconds
/// from `first_due` (unix seconds): what `bench timers` serves.
pub fn awaiting_warnings(n: usize, first_due: i64, spread: i64, target: i64) -> impl Iterator<Item = Conversation> {
    (0..n).map(move |i| {
        let warn_at = first_due + (i as i64 * spread.max(1)) / n.max(1) as i64;
        let opened = instant(warn_at - target / 2);
        let due = instant(warn_at - target / 2 + target);
        let thread = format!("t{i:07}");
        Conversation {
            id: Conversation::key(Channel::Email, &thread),
            channel: Channel::Email,
            thread,
            customer_id: Some(format!("c{i}@example.com")),
            customer_name: Some("Ana Example".into()),
            opened_at: opened,
            due_at: Some(due),
            first_reply_at: None,
            first_reply_by: None,
            status: Status::Open,
            resolved_at: None,
            assigned: None,
            waiting_since: Some(opened),
            reply_due: Some(due),
            waits: 1,
            sla_stage: 0,
            surveys: 0,
            silent_since: None,
            asked_words: 5,
            name_used: false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_200_to_3000_characters_mixed_good_and_poor_and_the_same_for_a_seed() {
        let a = replies(500, 7);
        assert!(a.iter().all(|r| (200..=3000).contains(&r.labelled.text.len())), "lengths in range");
        let poor = a.iter().filter(|r| r.poor).count();
        assert!(poor > 100 && poor < 400, "mixed: {poor} poor of 500");
        let b = replies(500, 7);
        assert!(a.iter().zip(&b).all(|(x, y)| x.labelled.text == y.labelled.text), "deterministic");
    }

    #[test]
    fn events_average_about_ten_per_conversation_and_come_in_time_order() {
        let start: Timestamp = "2026-01-05T00:00:00Z".parse().unwrap();
        let events = events(1000, 4, start, 1);
        assert!((9_000..=11_000).contains(&events.len()), "{}", events.len());
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn history_leaves_the_newest_conversations_open_with_a_response_due_after_the_end() {
        let end: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let stored: Vec<(Conversation, Step)> = history(1000, 100, 10, end, 300, 3).collect();
        let open: Vec<&Conversation> = stored.iter().map(|(c, _)| c).filter(|c| c.status == Status::Open).collect();
        assert_eq!(open.len(), 100);
        assert!(open.iter().all(|c| c.reply_due.is_some_and(|d| d > end && d.as_second() <= end.as_second() + 300)));
        assert!(open.iter().all(|c| c.opened_at <= end && c.opened_at.as_second() > end.as_second() - 3600));
    }
}
