//! `concierge demo`: two realistic weeks of support traffic (2026-W46 and
//! 2026-W47) for a New York team, generated deterministically as replay
//! events. Three agents answer customers on email and Discord, on time and
//! late, well and poorly; conversations are resolved and surveys answered;
//! a few are never answered and escalate. The second week is the better one,
//! so the report shows a trend.

use jiff::Timestamp;
use serde_json::json;

use crate::core::hours::BusinessHours;

/// The configuration the demo runs with (a realistic small team).
pub const CONFIG: &str = r#"
[business_hours]
time_zone = "America/New_York"
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
holidays = ["2026-11-26"]
[sla]
first_response = "1h"
warn_at = "75%"
escalate_after = ["1h", "4h"]
[surveys]
delay = "1h"
throttle = "30d"
"#;

/// The week the demo reports on, and the instant it reports as of.
pub const WEEK: &str = "2026-W47";
pub const AS_OF: &str = "2026-11-23T17:00:00Z";

/// A small deterministic generator (PCG-style LCG): the demo is the same on
/// every machine.
/// A small deterministic generator (PCG-style LCG): the same data on every machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const CUSTOMERS: [&str; 24] = [
    "Ana Lima",
    "Ben Carter",
    "Chloé Martin",
    "Dev Patel",
    "Emma Novak",
    "Farid Haddad",
    "Grace Kim",
    "Hugo Rossi",
    "Ines Duarte",
    "Jonas Berg",
    "Kira Ivanova",
    "Liam O'Brien",
    "Maya Cohen",
    "Nils Larsen",
    "Olivia Chen",
    "Pablo Ruiz",
    "Quinn Taylor",
    "Rosa Mendes",
    "Sven Olsen",
    "Tara Singh",
    "Uma Reddy",
    "Victor Hugo",
    "Wen Li",
    "Yara Saleh",
];

const AGENTS: [(&str, &str); 3] = [("sam", "Sam"), ("kim", "Kim"), ("lee", "Lee")];

const TOPICS: [(&str, &str); 6] = [
    ("My invoice shows the wrong amount.", "corrected the amount on your invoice; the new PDF is attached"),
    ("I can't log in since this morning.", "reset your two-factor settings, so you can log in again"),
    ("The CSV export never arrives.", "re-run the export and the file is now in your inbox"),
    ("Where is my order? It's been a week.", "found the order and re-sent the tracking link"),
    ("How do I switch to the annual plan?", "moved you to the annual plan with the discount applied"),
    ("The app crashes when I upload a photo.", "shipped a fix for the upload crash in version 4.2.1"),
];

/// Generates the demo's replay events as JSON lines.
/// The generator's seed: the demo is the same on every machine.
const SEED: u64 = 11;

pub fn events(hours: &BusinessHours) -> String {
    let mut rng = Rng(SEED);
    let mut lines: Vec<(Timestamp, String)> = Vec::new();
    let mut customer = 0;
    for (week, week_start) in [(0, "2026-11-09T00:00:00-05:00"), (1, "2026-11-16T00:00:00-05:00")] {
        let start: Timestamp = week_start.parse().expect("valid demo date");
        for day in 0..7 {
            let weekend = day >= 5;
            let count = if weekend { 2 } else { 6 + rng.below(4) };
            for _ in 0..count {
                customer += 1;
                let local_minute = 7 * 60 + rng.below(12 * 60) as i64;
                let opened = plus(start, day * 86_400 + local_minute * 60);
                conversation(&mut rng, hours, opened, customer, week, &mut lines);
            }
        }
    }
    lines.sort_by_key(|(at, _)| *at);
    lines.into_iter().map(|(_, l)| l + "\n").collect()
}

fn conversation(
    rng: &mut Rng,
    hours: &BusinessHours,
    opened: Timestamp,
    n: usize,
    week: usize,
    out: &mut Vec<(Timestamp, String)>,
) {
    let name = CUSTOMERS[n % CUSTOMERS.len()];
    let first = name.split(' ').next().unwrap_or(name);
    let discord = rng.chance(30);
    let (channel, customer_id) = if discord {
        ("discord", format!("{}", 400_000_000_000_000_000u64 + n as u64))
    } else {
        ("email", format!("{}.{}@example.com", first.to_lowercase(), n))
    };
    let thread = format!("{channel}-{n:04}");
    let (problem, fix) = *rng.pick(&TOPICS);
    let mut push = |at: Timestamp, v: serde_json::Value| out.push((at, v.to_string()));
    push(
        opened,
        json!({"at": opened, "kind": "message", "channel": channel, "thread": thread, "id": format!("{thread}-c1"),
        "author": {"role": "customer", "id": customer_id, "name": name}, "text": format!("Hello, {problem}")}),
    );
    // About one in twenty is never answered before the report: it escalates.
    if rng.chance(5) {
        return;
    }
    let (agent, agent_name) = *rng.pick(&AGENTS);
    // How often each agent is on time and polite, by week: Lee improves a
    // lot, Kim slips, Sam stays steady.
    let quality = match (agent, week) {
        ("lee", 0) => 35,
        ("lee", _) => 90,
        ("kim", 0) => 85,
        ("kim", _) => 50,
        (_, 0) => 55,
        _ => 85,
    };
    let late = !rng.chance(quality.min(90));
    let business_delay = if late { 3700 + rng.below(3 * 3600) as i64 } else { 300 + rng.below(2400) as i64 };
    let replied = plus(hours.add(opened, business_delay).expect("demo instants are in 2026"), rng.below(60) as i64);
    let good = rng.chance(quality);
    let text = reply_text(rng, first, fix, agent_name, good, late);
    push(
        replied,
        json!({"at": replied, "kind": "message", "channel": channel, "thread": thread, "id": format!("{thread}-a1"),
        "author": {"role": "agent", "id": agent, "name": agent_name}, "text": text}),
    );
    // A third of the customers ask a follow-up question, which gets a reply too.
    let mut last = replied;
    if rng.chance(35) {
        let asked = plus(replied, 900 + rng.below(2 * 3600) as i64);
        push(
            asked,
            json!({"at": asked, "kind": "message", "channel": channel, "thread": thread, "id": format!("{thread}-c1b"),
            "author": {"role": "customer", "id": customer_id, "name": name}, "text": "Thanks! One more question: will this happen again?"}),
        );
        let answered = plus(asked, 600 + rng.below(3 * 3600) as i64);
        let text = format!(
            "Hi {first},\n\nGood question. It should not: we have made sure of it.\n\nLet me know if anything else comes up.\nBest,\n{agent_name}"
        );
        push(
            answered,
            json!({"at": answered, "kind": "message", "channel": channel, "thread": thread, "id": format!("{thread}-a2"),
            "author": {"role": "agent", "id": agent, "name": agent_name}, "text": text}),
        );
        last = answered;
    }
    if !rng.chance(85) {
        return;
    }
    let resolved = plus(last, 1800 + rng.below(3 * 3600) as i64);
    push(resolved, json!({"at": resolved, "kind": "resolve", "channel": channel, "thread": thread, "by": agent}));
    // Some customers write back a thank-you first, which cancels the survey.
    if rng.chance(10) {
        let at = plus(resolved, 600);
        push(
            at,
            json!({"at": at, "kind": "message", "channel": channel, "thread": thread, "id": format!("{thread}-c2"),
            "author": {"role": "customer", "id": customer_id, "name": name}, "text": "Thanks, all good now!"}),
        );
        return;
    }
    if rng.chance(55) {
        let at = plus(resolved, 2 * 3600 + rng.below(20 * 3600) as i64);
        let score = match (good, late) {
            (true, false) => 8 + rng.below(3),
            (true, true) => 6 + rng.below(4),
            (false, _) => rng.below(8),
        };
        let comment = match score {
            9.. => Some("Quick and friendly, thank you."),
            7..=8 => None,
            _ => Some(if late { "It took too long to hear back." } else { "The answer felt curt." }),
        };
        push(
            at,
            json!({"at": at, "kind": "survey_answer", "channel": channel, "thread": thread, "score": score, "comment": comment}),
        );
    }
}

fn reply_text(rng: &mut Rng, first: &str, fix: &str, agent: &str, good: bool, late: bool) -> String {
    if good {
        let opening = if late && rng.chance(70) {
            "Sorry for the wait, and thank you for your patience."
        } else {
            *rng.pick(&[
                "Thanks for reaching out.",
                "Thanks for letting us know.",
                "I understand how annoying that is.",
            ])
        };
        let close =
            *rng.pick(&["Let me know if anything else comes up.", "Happy to help if you have any other questions."]);
        return format!("Hi {first},\n\n{opening} I've {fix}.\n\n{close}\nBest,\n{agent}");
    }
    match rng.below(5) {
        0 => format!("I've {fix}."),
        1 => format!("Hi {first}, as I already said, I've {fix}. Thanks"),
        2 => format!("Hi {first}, that's not our problem really, but I've {fix}. Regards, {agent}"),
        3 => format!("HI {}, I'VE {}!!! THANKS", first.to_uppercase(), fix.to_uppercase()),
        _ => format!("Hi {first}, thanks for the report. I'll get back to you. Best, {agent}"),
    }
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(t.as_second() + secs).unwrap_or(t)
}
