//! The weekly summary, computed from plain rows: volume, first-response median
//! and p90 (wall clock and business time), SLA attainment, per-agent figures,
//! rule findings and NPS.
//!
//! A report covers conversations opened in one ISO week (Monday 00:00 to
//! Monday 00:00 in the business time zone) as things stood at `as_of`; NPS
//! counts the answers received that week. Medians and percentiles are
//! nearest-rank. Pure: the store supplies the rows.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use jiff::civil::{ISOWeekDate, Weekday};
use jiff::tz::TimeZone;
use serde::Serialize;

use super::hours::BusinessHours;
use super::router::followup_id;
use super::stats::{Nps, nearest_rank};

/// An ISO week, `2026-W48`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Week {
    pub year: i16,
    pub week: i8,
}

impl Week {
    pub fn parse(s: &str) -> Result<Week, String> {
        let bad = || format!("\"{s}\" is not an ISO week; write it as YYYY-Www, e.g. 2026-W48");
        let (year, week) = s.split_once("-W").ok_or_else(bad)?;
        if year.len() != 4 || week.len() != 2 {
            return Err(bad());
        }
        let year: i16 = year.parse().map_err(|_| bad())?;
        let week: i8 = week.parse().map_err(|_| bad())?;
        ISOWeekDate::new(year, week, Weekday::Monday).map_err(|_| format!("{year} has no week {week}"))?;
        Ok(Week { year, week })
    }

    /// The week containing `at` in `tz`.
    pub fn containing(at: Timestamp, tz: &TimeZone) -> Week {
        let iso = tz.to_datetime(at).date().iso_week_date();
        Week { year: iso.year(), week: iso.week() }
    }

    fn monday(self) -> jiff::civil::Date {
        ISOWeekDate::new(self.year, self.week, Weekday::Monday).expect("validated in parse").date()
    }

    /// Monday 00:00 of this week and of the next, in `tz`.
    pub fn bounds(self, tz: &TimeZone) -> (Timestamp, Timestamp) {
        let start = self.monday();
        let end = start.checked_add(jiff::Span::new().days(7)).unwrap_or(start);
        let at = |d: jiff::civil::Date| {
            tz.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .unwrap_or(Timestamp::MAX)
        };
        (at(start), at(end))
    }

    pub fn next(self) -> Week {
        let date = self.monday().checked_add(jiff::Span::new().days(7)).unwrap_or(self.monday());
        let iso = date.iso_week_date();
        Week { year: iso.year(), week: iso.week() }
    }

    /// The date of `weekday` in this week.
    pub fn day(self, weekday: Weekday) -> jiff::civil::Date {
        ISOWeekDate::new(self.year, self.week, weekday).expect("validated in parse").date()
    }

    pub fn previous(self) -> Week {
        let date = self.monday().checked_sub(jiff::Span::new().days(7)).unwrap_or(self.monday());
        let iso = date.iso_week_date();
        Week { year: iso.year(), week: iso.week() }
    }
}

impl std::fmt::Display for Week {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

/// A conversation opened in the week.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    pub id: String,
    pub opened_at: Timestamp,
    /// The first-response due instant; `None` when an agent started the
    /// conversation (it has no first-response clock).
    pub due_at: Option<Timestamp>,
    pub first_reply_at: Option<Timestamp>,
    pub first_reply_by: Option<String>,
    /// Its resolution history: each time it was resolved, and when that
    /// resolution was reopened (if it was).
    pub resolutions: Vec<(Timestamp, Option<Timestamp>)>,
}

impl ConversationRow {
    /// Whether it stood resolved at `t`: resolved at or before `t` and not
    /// reopened by then (an event at exactly `t` has happened).
    pub fn resolved_at(&self, t: Timestamp) -> bool {
        self.resolutions.iter().any(|(resolved, reopened)| *resolved <= t && reopened.is_none_or(|r| r > t))
    }

    /// Proactive outreach: an agent wrote first. It counts as opened and
    /// resolved like any other, its replies as replies; it has no
    /// first-response clock, so no first-response or SLA figure includes it.
    pub fn agent_started(&self) -> bool {
        self.due_at.is_none()
    }

    /// Its first response as known at `as_of`, when it has a first-response
    /// clock: the instant and who gave it.
    fn first_response(&self, as_of: Timestamp) -> Option<(Timestamp, Option<&str>)> {
        if self.agent_started() {
            return None;
        }
        self.first_reply_at.filter(|t| *t <= as_of).map(|t| (t, self.first_reply_by.as_deref()))
    }
}

/// A checked agent reply in one of those conversations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRow {
    pub conversation: String,
    pub agent: String,
    pub at: Timestamp,
    pub first: bool,
    /// The ids of the rules it did not meet.
    pub rules: Vec<String>,
}

/// Rows for one week, from the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportData {
    pub conversations: Vec<ConversationRow>,
    pub checks: Vec<CheckRow>,
    /// NPS scores answered in the week.
    pub scores: Vec<u8>,
    /// Messages of the week that could not be delivered (failed for good).
    pub failed_deliveries: u32,
    /// Detractors' answers up to `as_of`, of any week: the follow-ups they opened.
    pub followups: Vec<FollowUpRow>,
}

/// A survey answered 0-6, and whether its follow-up was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpRow {
    /// The survey's id (`channel:thread#n`).
    pub survey: String,
    pub score: u8,
    /// The agent who gave the first response (or was assigned), if any.
    pub agent: Option<String>,
    pub answered_at: Timestamp,
    pub closed_at: Option<Timestamp>,
}

/// The follow-ups still open at `as_of`, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowUps {
    pub open: u32,
    pub items: Vec<OpenFollowUp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenFollowUp {
    /// For `concierge followup done ID`: the ticket and the survey's number.
    pub id: String,
    pub ticket: String,
    pub score: u8,
    pub agent: Option<String>,
    pub opened_at: Timestamp,
    pub waiting_seconds: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversations {
    pub opened: u32,
    pub resolved: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FirstResponse {
    pub answered: u32,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    pub business_median_seconds: Option<i64>,
    pub business_p90_seconds: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sla {
    pub met: u32,
    pub breached: u32,
    /// Not answered and not yet due at `as_of`.
    pub pending: u32,
    /// met / (met + breached), in percent with one decimal.
    pub met_percent: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Standards {
    pub replies_checked: u32,
    pub replies_passed_clean: u32,
    pub findings_by_rule: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NpsFigures {
    pub responses: u32,
    pub promoters: u32,
    pub passives: u32,
    pub detractors: u32,
    pub score: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agent {
    pub id: String,
    pub replies: u32,
    pub first_responses: u32,
    pub median_first_response_seconds: Option<i64>,
    pub findings: u32,
}

/// One week's figures. Serialises to the JSON contract of `concierge report`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub week: String,
    /// The business time zone the week is counted in (IANA name).
    pub time_zone: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub as_of: Timestamp,
    pub conversations: Conversations,
    pub first_response: FirstResponse,
    pub sla: Sla,
    pub standards: Standards,
    pub nps: NpsFigures,
    pub agents: Vec<Agent>,
    pub deliveries: Deliveries,
    /// Detractor follow-ups open at `as_of` (of any week).
    pub followups: FollowUps,
}

/// Delivery health: messages concierge gave up on (see `concierge outbox`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deliveries {
    pub failed: u32,
}

/// Computes the report for `week` from its rows.
pub fn compute(week: Week, hours: &BusinessHours, as_of: Timestamp, data: &ReportData) -> Report {
    let (from, to) = week.bounds(hours.time_zone());
    let convs: Vec<&ConversationRow> =
        data.conversations.iter().filter(|c| c.opened_at >= from && c.opened_at < to && c.opened_at <= as_of).collect();
    let mut wall = Vec::new();
    let mut business = Vec::new();
    let mut per_agent_first: HashMap<&str, Vec<i64>> = HashMap::new();
    let (mut met, mut breached, mut pending, mut resolved) = (0, 0, 0, 0);
    for c in &convs {
        if c.resolved_at(as_of) {
            resolved += 1;
        }
        if let Some((reply, by)) = c.first_response(as_of) {
            let secs = reply.as_second() - c.opened_at.as_second();
            wall.push(secs);
            business.push(hours.elapsed(c.opened_at, reply));
            if let Some(agent) = by {
                per_agent_first.entry(agent).or_default().push(secs);
            }
        }
        match outcome(c, as_of) {
            Some(Outcome::Met) => met += 1,
            Some(Outcome::Breached) => breached += 1,
            Some(Outcome::Pending) => pending += 1,
            None => {}
        }
    }
    wall.sort_unstable();
    business.sort_unstable();

    let mut findings_by_rule = BTreeMap::new();
    let mut agents: BTreeMap<&str, Agent> = BTreeMap::new();
    let mut checked = 0;
    let mut clean = 0;
    for k in data.checks.iter().filter(|k| k.at <= as_of) {
        checked += 1;
        clean += u32::from(k.rules.is_empty());
        for rule in &k.rules {
            *findings_by_rule.entry(rule.clone()).or_insert(0) += 1;
        }
        let a = agents.entry(&k.agent).or_insert_with(|| empty_agent(&k.agent));
        a.replies += 1;
        a.findings += k.rules.len() as u32;
    }
    for (agent, mut secs) in per_agent_first {
        secs.sort_unstable();
        let a = agents.entry(agent).or_insert_with(|| empty_agent(agent));
        a.first_responses = secs.len() as u32;
        a.median_first_response_seconds = nearest_rank(&secs, 50);
    }
    let nps = Nps::from_scores(data.scores.iter().copied());
    Report {
        week: week.to_string(),
        time_zone: hours.time_zone().iana_name().unwrap_or("UTC").to_string(),
        from,
        to,
        as_of,
        conversations: Conversations { opened: convs.len() as u32, resolved },
        first_response: FirstResponse {
            answered: wall.len() as u32,
            median_seconds: nearest_rank(&wall, 50),
            p90_seconds: nearest_rank(&wall, 90),
            business_median_seconds: nearest_rank(&business, 50),
            business_p90_seconds: nearest_rank(&business, 90),
        },
        sla: Sla {
            met,
            breached,
            pending,
            met_percent: (met + breached > 0)
                .then(|| super::stats::round_half_away(i64::from(met) * 1000, i64::from(met + breached)) as f64 / 10.0),
        },
        standards: Standards { replies_checked: checked, replies_passed_clean: clean, findings_by_rule },
        nps: NpsFigures {
            responses: nps.responses,
            promoters: nps.promoters,
            passives: nps.passives,
            detractors: nps.detractors,
            score: nps.score(),
        },
        agents: agents.into_values().collect(),
        deliveries: Deliveries { failed: data.failed_deliveries },
        followups: open_followups(as_of, &data.followups),
    }
}

/// The follow-ups of `rows` still open at `as_of`, oldest first.
pub fn open_followups(as_of: Timestamp, rows: &[FollowUpRow]) -> FollowUps {
    let mut items: Vec<OpenFollowUp> = rows
        .iter()
        .filter(|f| f.score <= 6 && f.answered_at <= as_of && f.closed_at.is_none_or(|c| c > as_of))
        .map(|f| {
            let ticket = f.survey.split_once(':').map_or(f.survey.as_str(), |(_, r)| r);
            OpenFollowUp {
                id: followup_id(&f.survey),
                ticket: ticket.rsplit_once('#').map_or(ticket, |(t, _)| t).to_string(),
                score: f.score,
                agent: f.agent.clone(),
                opened_at: f.answered_at,
                waiting_seconds: as_of.as_second() - f.answered_at.as_second(),
            }
        })
        .collect();
    items.sort_by(|a, b| (a.opened_at, &a.id).cmp(&(b.opened_at, &b.id)));
    FollowUps { open: items.len() as u32, items }
}

/// How a conversation fared against its first-response target at `as_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Met,
    Breached,
    /// Not answered and not yet due.
    Pending,
}

/// `None` when it has no target (an agent started it).
fn outcome(c: &ConversationRow, as_of: Timestamp) -> Option<Outcome> {
    let reply = c.first_reply_at.filter(|t| *t <= as_of);
    match (reply, c.due_at?) {
        (Some(reply), due) if reply <= due => Some(Outcome::Met),
        (Some(_), _) => Some(Outcome::Breached),
        (None, due) if as_of > due => Some(Outcome::Breached),
        (None, _) => Some(Outcome::Pending),
    }
}

/// Upper bounds (seconds, wall clock) of the first-response distribution's
/// buckets on the report page, with their labels; the last is open-ended.
pub const RESPONSE_BUCKETS: [(i64, &str); 6] = [
    (15 * 60, "≤ 15m"),
    (3600, "15m–1h"),
    (4 * 3600, "1h–4h"),
    (8 * 3600, "4h–8h"),
    (86_400, "8h–1d"),
    (i64::MAX, "> 1d"),
];

/// What the report page charts besides the summary's own figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Details {
    /// First responses by time taken: one count per [`RESPONSE_BUCKETS`] entry.
    pub response_buckets: Vec<(String, u32)>,
    /// Per day of the week (by the local day the conversation opened):
    /// the day ("Mon 16 Nov"), met and breached.
    pub sla_by_day: Vec<(String, u32, u32)>,
}

/// The page's extra figures for `week`, counted as [`compute`] counts.
pub fn details(week: Week, hours: &BusinessHours, as_of: Timestamp, data: &ReportData) -> Details {
    let tz = hours.time_zone();
    let (from, to) = week.bounds(tz);
    let mut buckets = vec![0u32; RESPONSE_BUCKETS.len()];
    let days: Vec<jiff::civil::Date> =
        (0..7).filter_map(|d| week.day(Weekday::Monday).checked_add(jiff::Span::new().days(d)).ok()).collect();
    let mut by_day = vec![(0u32, 0u32); days.len()];
    for c in data.conversations.iter().filter(|c| c.opened_at >= from && c.opened_at < to && c.opened_at <= as_of) {
        if let Some((reply, _)) = c.first_response(as_of) {
            let secs = reply.as_second() - c.opened_at.as_second();
            let i = RESPONSE_BUCKETS.iter().position(|(max, _)| secs <= *max).unwrap_or(RESPONSE_BUCKETS.len() - 1);
            buckets[i] += 1;
        }
        let day = tz.to_datetime(c.opened_at).date();
        if let Some(i) = days.iter().position(|d| *d == day) {
            match outcome(c, as_of) {
                Some(Outcome::Met) => by_day[i].0 += 1,
                Some(Outcome::Breached) => by_day[i].1 += 1,
                _ => {}
            }
        }
    }
    Details {
        response_buckets: RESPONSE_BUCKETS.iter().zip(buckets).map(|((_, label), n)| (label.to_string(), n)).collect(),
        sla_by_day: days
            .iter()
            .zip(by_day)
            .map(|(d, (met, breached))| (d.strftime("%a %-d %b").to_string(), met, breached))
            .collect(),
    }
}

fn empty_agent(id: &str) -> Agent {
    Agent { id: id.to_string(), replies: 0, first_responses: 0, median_first_response_seconds: None, findings: 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn conv(id: &str, opened: &str, due: &str, reply: Option<(&str, &str)>) -> ConversationRow {
        ConversationRow {
            id: id.into(),
            opened_at: ts(opened),
            due_at: Some(ts(due)),
            first_reply_at: reply.map(|(at, _)| ts(at)),
            first_reply_by: reply.map(|(_, by)| by.to_string()),
            resolutions: vec![],
        }
    }

    #[test]
    fn weeks_parse_and_span_monday_to_monday_in_the_business_zone() {
        let w = Week::parse("2026-W48").unwrap();
        let (from, to) = w.bounds(&TimeZone::get("America/New_York").unwrap());
        assert_eq!((from, to), (ts("2026-11-23T05:00:00Z"), ts("2026-11-30T05:00:00Z")));
        assert_eq!(w.previous().to_string(), "2026-W47");
        assert_eq!(Week::parse("2027-W01").unwrap().previous().to_string(), "2026-W53");
        assert_eq!(
            Week::containing(ts("2026-11-23T04:59:59Z"), &TimeZone::get("America/New_York").unwrap()).to_string(),
            "2026-W47"
        );
        for bad in ["2026-48", "2026-W4", "2025-W53", "W48"] {
            assert!(Week::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sla_counts_met_breached_and_pending_as_of_the_report_instant() {
        let hours = BusinessHours::always_open();
        let data = ReportData {
            conversations: vec![
                // Answered at exactly the due instant: met.
                conv("a", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T11:00:00Z", "sam"))),
                // Answered one second late: breached.
                conv("b", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T11:00:01Z", "kim"))),
                // Not answered and past due at as_of: breached.
                conv("c", "2026-11-24T10:00:00Z", "2026-11-24T11:00:00Z", None),
                // Answered only after as_of and not yet due then: pending.
                conv("d", "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z", Some(("2026-11-25T10:30:00Z", "sam"))),
            ],
            checks: vec![],
            scores: vec![10, 9, 3],
            failed_deliveries: 0,
            followups: vec![],
        };
        let r = compute(Week::parse("2026-W48").unwrap(), &hours, ts("2026-11-25T10:10:00Z"), &data);
        assert_eq!((r.sla.met, r.sla.breached, r.sla.pending), (1, 2, 1));
        assert_eq!(r.sla.met_percent, Some(33.3));
        assert_eq!(r.first_response.answered, 2);
        assert_eq!((r.first_response.median_seconds, r.first_response.p90_seconds), (Some(3600), Some(3601)));
        assert_eq!((r.nps.responses, r.nps.score), (3, Some(33)));
        assert_eq!(r.conversations.opened, 4);
    }

    #[test]
    fn agents_get_replies_first_responses_and_findings() {
        let hours = BusinessHours::always_open();
        let check = |conv: &str, agent: &str, at: &str, rules: &[&str]| CheckRow {
            conversation: conv.into(),
            agent: agent.into(),
            at: ts(at),
            first: false,
            rules: rules.iter().map(|r| r.to_string()).collect(),
        };
        let data = ReportData {
            conversations: vec![
                conv("a", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T10:10:00Z", "sam"))),
                conv("b", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T10:30:00Z", "sam"))),
                conv("c", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T10:20:00Z", "kim"))),
            ],
            checks: vec![
                check("a", "sam", "2026-11-23T10:10:00Z", &["greeting"]),
                check("b", "sam", "2026-11-23T10:30:00Z", &["greeting", "no-blame"]),
                check("c", "kim", "2026-11-23T10:20:00Z", &[]),
            ],
            scores: vec![],
            failed_deliveries: 0,
            followups: vec![],
        };
        let r = compute(Week::parse("2026-W48").unwrap(), &hours, ts("2026-12-01T00:00:00Z"), &data);
        assert_eq!(r.standards.replies_checked, 3);
        assert_eq!(r.standards.findings_by_rule, BTreeMap::from([("greeting".into(), 2), ("no-blame".into(), 1)]));
        let sam = &r.agents[1];
        assert_eq!((sam.id.as_str(), sam.replies, sam.first_responses, sam.findings), ("sam", 2, 2, 3));
        assert_eq!(sam.median_first_response_seconds, Some(600));
        assert_eq!(r.nps.score, None);
    }

    #[test]
    fn a_conversation_counts_as_resolved_when_one_of_its_resolutions_holds_at_the_instant() {
        let row = ConversationRow {
            resolutions: vec![
                (ts("2026-11-23T11:00:00Z"), Some(ts("2026-11-24T10:00:00Z"))),
                (ts("2026-11-24T12:00:00Z"), None),
            ],
            ..conv("r", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", None)
        };
        // (instant, resolved then)
        for (at, resolved) in [
            ("2026-11-23T10:59:59Z", false),
            // An event at exactly the instant has happened.
            ("2026-11-23T11:00:00Z", true),
            ("2026-11-24T09:59:59Z", true),
            ("2026-11-24T10:00:00Z", false),
            ("2026-11-24T11:59:59Z", false),
            ("2026-11-24T12:00:00Z", true),
            ("2027-01-01T00:00:00Z", true),
        ] {
            assert_eq!(row.resolved_at(ts(at)), resolved, "{at}");
        }
        // Resolved and reopened within the same second: open from then on.
        let row = ConversationRow {
            resolutions: vec![(ts("2026-11-23T11:00:00Z"), Some(ts("2026-11-23T11:00:00Z")))],
            ..row
        };
        assert!(!row.resolved_at(ts("2026-11-23T11:00:00Z")));
        let hours = BusinessHours::always_open();
        let week = Week::parse("2026-W48").unwrap();
        let data = ReportData { conversations: vec![row], ..ReportData::default() };
        assert_eq!(compute(week, &hours, ts("2026-11-30T00:00:00Z"), &data).conversations.resolved, 0);
    }

    #[test]
    fn agent_started_conversations_are_opened_resolved_and_replied_but_never_timed() {
        let hours = BusinessHours::always_open();
        let agent_started = |id: &str, reply: Option<(&str, &str)>, resolved: Option<&str>| ConversationRow {
            due_at: None,
            resolutions: resolved.map(|at| (ts(at), None)).into_iter().collect(),
            ..conv(id, "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", reply)
        };
        let check = |conv: &str, agent: &str, at: &str| CheckRow {
            conversation: conv.into(),
            agent: agent.into(),
            at: ts(at),
            first: false,
            rules: vec![],
        };
        let data = ReportData {
            conversations: vec![
                // The customer answered the agent's message at 10:30 and kim
                // replied at 10:40: not a first response of 40 minutes.
                agent_started("a1", Some(("2026-11-23T10:40:00Z", "kim")), None),
                // Nobody answered; resolved.
                agent_started("a9", None, Some("2026-11-23T12:00:00Z")),
                conv("c1", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", Some(("2026-11-23T10:20:00Z", "sam"))),
            ],
            checks: vec![
                check("a1", "kim", "2026-11-23T10:00:00Z"),
                check("a1", "kim", "2026-11-23T10:40:00Z"),
                check("a9", "kim", "2026-11-23T10:00:00Z"),
                check("c1", "sam", "2026-11-23T10:20:00Z"),
            ],
            ..ReportData::default()
        };
        let week = Week::parse("2026-W48").unwrap();
        let as_of = ts("2026-11-30T00:00:00Z");
        let r = compute(week, &hours, as_of, &data);
        assert_eq!((r.conversations.opened, r.conversations.resolved), (3, 1));
        assert_eq!((r.first_response.answered, r.first_response.median_seconds), (1, Some(1200)));
        assert_eq!((r.sla.met, r.sla.breached, r.sla.pending), (1, 0, 0));
        assert_eq!(r.standards.replies_checked, 4);
        let kim = r.agents.iter().find(|a| a.id == "kim").unwrap();
        assert_eq!((kim.replies, kim.first_responses, kim.median_first_response_seconds), (3, 0, None));
        let d = details(week, &hours, as_of, &data);
        assert_eq!(d.response_buckets.iter().map(|(_, n)| n).sum::<u32>(), 1, "only c1 is charted");
    }

    #[test]
    fn pending_until_past_the_due_instant_and_percentages_round_half_away_from_zero() {
        let hours = BusinessHours::always_open();
        let week = Week::parse("2026-W48").unwrap();
        let unanswered = conv("u", "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", None);
        let data = ReportData { conversations: vec![unanswered], ..ReportData::default() };
        let sla = |at: &str| {
            let r = compute(week, &hours, ts(at), &data);
            (r.sla.pending, r.sla.breached)
        };
        assert_eq!(sla("2026-11-23T11:00:00Z"), (1, 0));
        assert_eq!(sla("2026-11-23T11:00:01Z"), (0, 1));
        // (met, breached, met_percent): 1 of 16 is 6.25 %, 3 of 16 18.75 %.
        for (met, breached, percent) in [(1, 15, 6.3), (3, 13, 18.8), (1, 7, 12.5), (2, 1, 66.7), (1, 2, 33.3)] {
            let on_time = |i: u32| {
                conv(
                    &format!("m{i}"),
                    "2026-11-23T10:00:00Z",
                    "2026-11-23T11:00:00Z",
                    Some(("2026-11-23T10:30:00Z", "sam")),
                )
            };
            let late = |i: u32| {
                conv(
                    &format!("b{i}"),
                    "2026-11-23T10:00:00Z",
                    "2026-11-23T11:00:00Z",
                    Some(("2026-11-23T12:00:00Z", "sam")),
                )
            };
            let conversations = (0..met).map(on_time).chain((0..breached).map(late)).collect();
            let data = ReportData { conversations, ..ReportData::default() };
            let r = compute(week, &hours, ts("2026-11-30T00:00:00Z"), &data);
            assert_eq!(r.sla.met_percent, Some(percent), "{met} of {}", met + breached);
        }
    }
}
