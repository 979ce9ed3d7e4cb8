//! Business hours and the business-time arithmetic behind every SLA figure.
//!
//! The semantics, exactly (they are a contract, see the README):
//! - open intervals are `[open, close)` on the local wall clock of one IANA time
//!   zone; `24:00` is the end of the local day; weekdays come from the local date;
//! - a holiday closes the whole local day;
//! - a local time that does not exist (spring-forward gap) moves one hour later,
//!   an ambiguous one (fall-back) takes its first occurrence (jiff's
//!   "compatible" disambiguation);
//! - [`BusinessHours::add`] starting outside hours begins counting at the next
//!   opening, and a target used up exactly at a closing time is due at the *next
//!   opening*, so nothing ever falls due outside business hours;
//! - precision is one second.
//!
//! Pure code: no clock is read here, `now` is always an argument.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

/// Seconds since local midnight; `86_400` stands for `24:00`.
pub type DaySeconds = u32;

/// One open interval of a weekday, `[open, close)` in local wall-clock seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub open: DaySeconds,
    pub close: DaySeconds,
}

impl Span {
    /// Parses `"09:00-17:00"`; `24:00` is allowed as a close. Rejects empty or
    /// inverted spans.
    pub fn parse(text: &str) -> Result<Span, String> {
        let (open, close) = text
            .split_once('-')
            .ok_or_else(|| format!("\"{text}\" is not an interval; write it as \"09:00-17:00\""))?;
        let open = parse_clock(open.trim())
            .ok_or_else(|| format!("\"{text}\" has a bad opening time; use 24-hour HH:MM such as \"09:00\""))?;
        let close = parse_clock(close.trim()).ok_or_else(|| {
            format!("\"{text}\" has a bad closing time; use 24-hour HH:MM such as \"17:00\" (\"24:00\" for midnight)")
        })?;
        if open >= 86_400 {
            return Err(format!("\"{text}\" opens at 24:00; an interval opens between 00:00 and 23:59"));
        }
        if close <= open {
            return Err(format!(
                "\"{text}\" closes before it opens; an interval may not cross midnight, split it into \"..-24:00\" and \"00:00-..\" on the next day"
            ));
        }
        Ok(Span { open, close })
    }
}

fn parse_clock(text: &str) -> Option<DaySeconds> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 3600 + m * 60)
}

/// A team's opening hours: a time zone, the open spans of each weekday
/// (Monday first) and whole-day holidays.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    tz: TimeZone,
    /// Index 0 is Monday. Spans are sorted and do not overlap.
    week: [Vec<Span>; 7],
    holidays: BTreeSet<Date>,
}

impl BusinessHours {
    /// Builds the schedule. Returns an error when spans overlap or the week has
    /// no open time at all (then nothing could ever fall due).
    pub fn new(tz: TimeZone, mut week: [Vec<Span>; 7], holidays: BTreeSet<Date>) -> Result<Self, String> {
        for day in &mut week {
            day.sort_by_key(|s| s.open);
            if let Some(pair) = day.windows(2).find(|w| w[1].open < w[0].close) {
                return Err(format!(
                    "intervals {} and {} overlap; merge them into one",
                    fmt_span(pair[0]),
                    fmt_span(pair[1])
                ));
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("the week has no open hours; give at least one day an interval such as \"09:00-17:00\"".into());
        }
        Ok(BusinessHours { tz, week, holidays })
    }

    /// Open around the clock, every day, in UTC: the schedule when none is configured.
    pub fn always_open() -> Self {
        let all = vec![Span { open: 0, close: 86_400 }];
        BusinessHours { tz: TimeZone::UTC, week: std::array::from_fn(|_| all.clone()), holidays: BTreeSet::new() }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The instant at which `seconds` of business time have passed since `start`.
    ///
    /// Starting outside hours counts from the next opening; a total used up
    /// exactly at a closing time is due at the next opening. `None` when that
    /// instant would lie beyond the end of time (the year 9999): the schedule
    /// cannot supply that much business time, which callers report as an
    /// error. The work is bounded: such a case is recognised without walking
    /// the calendar to its end.
    pub fn add(&self, start: Timestamp, seconds: i64) -> Option<Timestamp> {
        let mut remaining = seconds.max(0);
        let mut cursor = start.as_second();
        // At most this much business time is left before the end of time
        // (an hour of slack a span for DST shifts).
        let weeks_left = (Timestamp::MAX.as_second() - cursor) / (7 * 86_400) + 1;
        let slack: i64 = self.week.iter().map(|d| d.len() as i64 * 3600).sum();
        if remaining > weeks_left.saturating_mul(self.open_per_week() + slack) {
            return None;
        }
        loop {
            let (open, close) = self.next_interval(cursor)?;
            let begin = open.max(cursor);
            if remaining == 0 {
                return Timestamp::from_second(begin).ok();
            }
            let available = close - begin;
            if remaining < available {
                return Timestamp::from_second(begin + remaining).ok();
            }
            remaining -= available;
            cursor = close;
        }
    }

    /// Open seconds in a week without holidays or DST shifts.
    pub fn open_per_week(&self) -> i64 {
        self.week.iter().flatten().map(|s| i64::from(s.close - s.open)).sum()
    }

    /// Business seconds in `[from, to)`; zero when `to` is not after `from`.
    pub fn elapsed(&self, from: Timestamp, to: Timestamp) -> i64 {
        let (from, to) = (from.as_second(), to.as_second());
        let mut total = 0;
        let mut cursor = from;
        while cursor < to {
            let Some((open, close)) = self.next_interval(cursor) else { break };
            if open >= to {
                break;
            }
            total += close.min(to) - open.max(cursor);
            cursor = close;
        }
        total
    }

    /// Whether `at` falls inside an open interval.
    pub fn is_open(&self, at: Timestamp) -> bool {
        self.next_interval(at.as_second()).is_some_and(|(open, _)| open <= at.as_second())
    }

    /// The first open interval (unix seconds) whose close is after `after`;
    /// `None` past the end of time.
    ///
    /// A day's open time is the union, in real time, of its spans: a span
    /// that lies in the hour skipped by a DST change moves an hour later
    /// and may then overlap another span of the day, which must not lose
    /// the overlap (nor the other span). Time an earlier day already
    /// opened is not counted again.
    fn next_interval(&self, after: i64) -> Option<(i64, i64)> {
        let after_ts = Timestamp::from_second(after).ok()?;
        let local = self.tz.to_datetime(after_ts).date();
        // Start a day early: a DST shift can push yesterday's 24:00 past local midnight.
        let mut date = local.yesterday().unwrap_or(local);
        let mut counted_until = i64::MIN;
        let mut day: Vec<(i64, i64)> = Vec::new();
        // `new` guarantees an open span every week. Within 7 × (h + 2) days each
        // weekday occurs h + 2 times, so h holidays and one DST-emptied span
        // cannot close them all.
        for _ in 0..(7 * (self.holidays.len() + 2) + 1) {
            if !self.holidays.contains(&date) {
                day.clear();
                day.extend(
                    self.week[weekday_index(date)]
                        .iter()
                        .map(|span| (self.local_instant(date, span.open), self.local_instant(date, span.close)))
                        .filter(|(open, close)| close > open),
                );
                day.sort_unstable();
                for (open, close) in union(&day) {
                    let open = open.max(counted_until);
                    if close <= open {
                        continue;
                    }
                    counted_until = close;
                    if close > after {
                        return (open < END).then_some((open, close.min(END)));
                    }
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        // Only at the end of time: `new` guarantees open time every week.
        None
    }

    /// The instant of local wall-clock `seconds` after midnight on `date`.
    fn local_instant(&self, date: Date, seconds: DaySeconds) -> i64 {
        let (date, seconds) =
            if seconds >= 86_400 { (date.tomorrow().unwrap_or(date), seconds - 86_400) } else { (date, seconds) };
        let time = Time::new((seconds / 3600) as i8, (seconds / 60 % 60) as i8, (seconds % 60) as i8, 0)
            .unwrap_or(Time::midnight());
        self.tz
            .to_ambiguous_timestamp(DateTime::from_parts(date, time))
            .compatible()
            .map(|t| t.as_second())
            .unwrap_or(END)
    }
}

/// Sorted intervals merged where they overlap or touch.
fn union(sorted: &[(i64, i64)]) -> impl Iterator<Item = (i64, i64)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let (open, mut close) = *sorted.get(i)?;
        i += 1;
        while let Some(&(_, next_close)) = sorted.get(i).filter(|n| n.0 <= close) {
            close = close.max(next_close);
            i += 1;
        }
        Some((open, close))
    })
}

fn weekday_index(date: Date) -> usize {
    date.weekday().to_monday_zero_offset() as usize
}

/// Stands for a local instant that jiff cannot represent (past the year 9999).
const END: i64 = i64::MAX / 2;

fn fmt_span(s: Span) -> String {
    let f = |v: u32| format!("{:02}:{:02}", v / 3600, v / 60 % 60);
    format!("\"{}-{}\"", f(s.open), f(s.close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// New York, Monday to Friday 09:00-17:00, with Christmas 2026 off.
    fn new_york_office() -> BusinessHours {
        let day = vec![Span::parse("09:00-17:00").unwrap()];
        let week = [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]];
        let holidays = [Date::new(2026, 12, 25).unwrap()].into_iter().collect();
        BusinessHours::new(TimeZone::get("America/New_York").unwrap(), week, holidays).unwrap()
    }

    fn check_add(hours: &BusinessHours, cases: &[(&str, i64, &str)]) {
        for &(start, secs, due) in cases {
            assert_eq!(hours.add(ts(start), secs), Some(ts(due)), "add({start}, {secs}s)");
        }
    }

    #[test]
    fn spans_parse_and_reject_bad_input() {
        assert_eq!(Span::parse("09:00-17:00"), Ok(Span { open: 32_400, close: 61_200 }));
        assert_eq!(Span::parse("00:00-24:00"), Ok(Span { open: 0, close: 86_400 }));
        for bad in
            ["17:00-09:00", "09:00", "9-17", "25:00-26:00", "09:60-10:00", "24:00-24:00", "10:00-10:00", "24:30-01:00"]
        {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert!(Span::parse("17:00-09:00").unwrap_err().contains("cross midnight"));
    }

    #[test]
    fn overlapping_spans_and_empty_weeks_are_rejected() {
        let day = vec![Span::parse("09:00-12:00").unwrap(), Span::parse("11:00-17:00").unwrap()];
        let week = [day, vec![], vec![], vec![], vec![], vec![], vec![]];
        let err = BusinessHours::new(TimeZone::UTC, week, BTreeSet::new()).unwrap_err();
        assert!(err.contains("overlap"), "{err}");
        let err = BusinessHours::new(TimeZone::UTC, Default::default(), BTreeSet::new()).unwrap_err();
        assert!(err.contains("no open hours"), "{err}");
    }

    #[test]
    fn a_start_inside_hours_counts_straight_away() {
        // 2026-11-23 is a Monday; New York is UTC-5 in November.
        check_add(
            &new_york_office(),
            &[
                ("2026-11-23T15:00:00Z", 3600, "2026-11-23T16:00:00Z"),
                ("2026-11-23T15:00:00Z", 0, "2026-11-23T15:00:00Z"),
                ("2026-11-23T15:00:01Z", 1, "2026-11-23T15:00:02Z"),
            ],
        );
    }

    #[test]
    fn a_start_outside_hours_counts_from_the_next_opening() {
        check_add(
            &new_york_office(),
            &[
                // 03:00 local Monday -> opens 09:00 local (14:00Z).
                ("2026-11-23T08:00:00Z", 3600, "2026-11-23T15:00:00Z"),
                // Friday 18:00 local -> Monday 09:00 local.
                ("2026-11-27T23:00:00Z", 3600, "2026-11-30T15:00:00Z"),
                // Saturday, zero target: due at the next opening.
                ("2026-11-28T12:00:00Z", 0, "2026-11-30T14:00:00Z"),
            ],
        );
    }

    #[test]
    fn a_target_used_up_at_closing_is_due_at_the_next_opening() {
        check_add(
            &new_york_office(),
            &[
                // 16:00 local + 1h ends exactly at 17:00 close -> next day 09:00.
                ("2026-11-23T21:00:00Z", 3600, "2026-11-24T14:00:00Z"),
                // One second less is due at 16:59:59 the same day.
                ("2026-11-23T21:00:00Z", 3599, "2026-11-23T21:59:59Z"),
                // One second more is due one second after the next opening.
                ("2026-11-23T21:00:00Z", 3601, "2026-11-24T14:00:01Z"),
            ],
        );
    }

    #[test]
    fn a_holiday_closes_the_whole_local_day() {
        // Thursday 2026-12-24 16:30 local + 1h: Friday 25th is a holiday, the
        // weekend is closed, so 30 minutes remain for Monday 28th 09:00.
        check_add(&new_york_office(), &[("2026-12-24T21:30:00Z", 3600, "2026-12-28T14:30:00Z")]);
        assert!(!new_york_office().is_open(ts("2026-12-25T16:00:00Z")));
    }

    #[test]
    fn split_days_skip_the_lunch_break() {
        let day = vec![Span::parse("09:00-12:00").unwrap(), Span::parse("13:00-17:00").unwrap()];
        let week = std::array::from_fn(|_| day.clone());
        let hours = BusinessHours::new(TimeZone::UTC, week, BTreeSet::new()).unwrap();
        check_add(
            &hours,
            &[
                ("2026-11-23T11:30:00Z", 3600, "2026-11-23T13:30:00Z"),
                // Used up exactly at 12:00 -> due when the afternoon opens.
                ("2026-11-23T11:00:00Z", 3600, "2026-11-23T13:00:00Z"),
                ("2026-11-23T12:30:00Z", 60, "2026-11-23T13:01:00Z"),
            ],
        );
        assert_eq!(hours.elapsed(ts("2026-11-23T11:00:00Z"), ts("2026-11-23T14:00:00Z")), 7200);
    }

    #[test]
    fn twenty_four_hundred_runs_to_the_end_of_the_local_day() {
        let late = vec![Span::parse("20:00-24:00").unwrap()];
        let early = vec![Span::parse("00:00-02:00").unwrap()];
        let week = [late, early, vec![], vec![], vec![], vec![], vec![]];
        let hours = BusinessHours::new(TimeZone::get("Europe/Berlin").unwrap(), week, BTreeSet::new()).unwrap();
        // Monday 23:00 Berlin (22:00Z) + 2h runs across midnight without a gap:
        // Monday's 24:00 and Tuesday's 00:00 are the same instant.
        check_add(&hours, &[("2026-11-23T22:00:00Z", 7200, "2026-11-24T00:00:00Z")]);
        assert_eq!(hours.elapsed(ts("2026-11-23T19:00:00Z"), ts("2026-11-24T01:00:00Z")), 6 * 3600);
        let all_day = std::array::from_fn(|_| vec![Span::parse("00:00-24:00").unwrap()]);
        let hours = BusinessHours::new(TimeZone::UTC, all_day, BTreeSet::new()).unwrap();
        check_add(&hours, &[("2026-11-23T23:30:00Z", 3 * 86_400, "2026-11-26T23:30:00Z")]);
    }

    #[test]
    fn spring_forward_moves_a_missing_local_time_one_hour_later() {
        // 2026-03-08 is a Sunday; New York jumps 02:00 -> 03:00.
        let sunday = vec![Span::parse("02:30-05:00").unwrap()];
        let week = [vec![], vec![], vec![], vec![], vec![], vec![], sunday];
        let hours = BusinessHours::new(TimeZone::get("America/New_York").unwrap(), week, BTreeSet::new()).unwrap();
        // 02:30 does not exist: the interval opens at 03:30 EDT (07:30Z) and
        // closes at 05:00 EDT (09:00Z): 90 minutes of business time that day.
        check_add(&hours, &[("2026-03-08T00:00:00Z", 0, "2026-03-08T07:30:00Z")]);
        assert_eq!(hours.elapsed(ts("2026-03-08T00:00:00Z"), ts("2026-03-09T00:00:00Z")), 5400);
    }

    fn sunday_only(zone: &str, spans: &[&str]) -> BusinessHours {
        let sunday = spans.iter().map(|s| Span::parse(s).unwrap()).collect();
        let week = [vec![], vec![], vec![], vec![], vec![], vec![], sunday];
        BusinessHours::new(TimeZone::get(zone).unwrap(), week, BTreeSet::new()).unwrap()
    }

    #[test]
    fn a_span_moved_out_of_a_skipped_hour_adds_to_the_days_other_spans() {
        // Regression (issue 12). 2026-03-29, Berlin skips 02:00-03:00:
        // "02:15-02:45" moves to 03:15-03:45 CEST (01:15-01:45Z), inside
        // "03:00-12:00" CEST (01:00-10:00Z); together 9 hours.
        let day = vec![Span::parse("09:00-17:00").unwrap()];
        let sunday = ["02:15-02:45", "03:00-12:00"].map(|s| Span::parse(s).unwrap()).to_vec();
        let week = [day, vec![], vec![], vec![], vec![], vec![], sunday];
        let hours = BusinessHours::new(TimeZone::get("Europe/Berlin").unwrap(), week, BTreeSet::new()).unwrap();
        check_add(
            &hours,
            &[
                ("2026-03-28T23:00:00Z", 60, "2026-03-29T01:01:00Z"),
                ("2026-03-28T23:00:00Z", 9 * 3600, "2026-03-30T07:00:00Z"),
            ],
        );
        assert_eq!(hours.elapsed(ts("2026-03-28T23:00:00Z"), ts("2026-03-29T12:00:00Z")), 32_400);
        // 2019-03-31, London skips 01:00-02:00: "01:30-01:59" moves to
        // 01:30-01:59Z, inside "02:00-02:59" BST (01:00-01:59Z).
        let hours = sunday_only("Europe/London", &["01:30-01:59", "02:00-02:59"]);
        assert_eq!(hours.elapsed(ts("2019-03-31T01:00:00Z"), ts("2019-03-31T01:30:00Z")), 1800);
        assert_eq!(hours.elapsed(ts("2019-03-31T00:00:00Z"), ts("2019-04-01T00:00:00Z")), 59 * 60);
    }

    #[test]
    fn fall_back_takes_the_first_occurrence_and_counts_real_seconds() {
        // 2026-11-01 is a Sunday; New York repeats 01:00-02:00.
        let sunday = vec![Span::parse("01:30-03:00").unwrap()];
        let week = [vec![], vec![], vec![], vec![], vec![], vec![], sunday];
        let hours = BusinessHours::new(TimeZone::get("America/New_York").unwrap(), week, BTreeSet::new()).unwrap();
        // Opens at the first 01:30 (EDT, 05:30Z), closes at 03:00 EST (08:00Z):
        // two and a half real hours.
        check_add(&hours, &[("2026-11-01T00:00:00Z", 0, "2026-11-01T05:30:00Z")]);
        assert_eq!(hours.elapsed(ts("2026-11-01T00:00:00Z"), ts("2026-11-02T00:00:00Z")), 9000);
    }

    #[test]
    fn a_full_working_day_is_eight_hours_across_both_dst_changes() {
        let hours = new_york_office();
        // Monday after spring-forward and Monday after fall-back.
        assert_eq!(hours.elapsed(ts("2026-03-09T00:00:00Z"), ts("2026-03-10T00:00:00Z")), 8 * 3600);
        assert_eq!(hours.elapsed(ts("2026-11-02T00:00:00Z"), ts("2026-11-03T00:00:00Z")), 8 * 3600);
        // Weekend and reversed ranges count nothing.
        assert_eq!(hours.elapsed(ts("2026-11-28T00:00:00Z"), ts("2026-11-30T00:00:00Z")), 0);
        assert_eq!(hours.elapsed(ts("2026-11-24T00:00:00Z"), ts("2026-11-23T00:00:00Z")), 0);
    }

    #[test]
    fn holidays_on_every_open_day_for_a_year_push_the_due_instant_past_them() {
        // Open only on Mondays; every Monday of 2027 is a holiday.
        let week = [vec![Span::parse("09:00-17:00").unwrap()], vec![], vec![], vec![], vec![], vec![], vec![]];
        let mut monday = Date::new(2027, 1, 4).unwrap();
        let mut holidays = BTreeSet::new();
        while monday.year() == 2027 {
            holidays.insert(monday);
            monday = monday.checked_add(jiff::Span::new().days(7)).unwrap();
        }
        let hours = BusinessHours::new(TimeZone::UTC, week, holidays).unwrap();
        check_add(&hours, &[("2027-01-01T00:00:00Z", 60, "2028-01-03T09:01:00Z")]);
    }

    #[test]
    fn no_opening_before_the_end_of_time_gives_none_promptly() {
        // Regression (issue 6): these looped forever at 100% CPU.
        // jiff's last instant is 9999-12-30T22:00:00Z: no opening follows 17:00 UTC that day.
        let day = vec![Span::parse("09:00-17:00").unwrap()];
        let week = [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]];
        let hours = BusinessHours::new(TimeZone::UTC, week, BTreeSet::new()).unwrap();
        assert_eq!(hours.add(ts("9999-12-30T16:30:00Z"), 3600), None);
        assert_eq!(hours.add(ts("9999-12-30T16:30:00Z"), 1799), Some(ts("9999-12-30T16:59:59Z")));
        assert_eq!(hours.elapsed(ts("9999-12-30T16:30:00Z"), Timestamp::MAX), 1800);
        let minute = [vec![Span::parse("09:00-09:01").unwrap()], vec![], vec![], vec![], vec![], vec![], vec![]];
        let hours = BusinessHours::new(TimeZone::UTC, minute, BTreeSet::new()).unwrap();
        assert_eq!(hours.add(ts("2026-11-23T00:00:00Z"), 3650 * 86_400), None);
        assert_eq!(hours.add(ts("2026-11-23T00:00:00Z"), 90), Some(ts("2026-11-30T09:00:30Z")));
    }

    /// DST switch days (Sundays) in zones east and west, north and south,
    /// one switching at midnight, with the local minute of the switch.
    const SWITCHES: [(&str, (i16, i8, i8), i32); 9] = [
        ("Europe/Berlin", (2026, 3, 29), 120),
        ("Europe/Berlin", (2026, 10, 25), 180),
        ("Europe/London", (2019, 3, 31), 60),
        ("America/New_York", (2026, 3, 8), 120),
        ("America/New_York", (2026, 11, 1), 120),
        ("Australia/Sydney", (2026, 4, 5), 180),
        ("Australia/Sydney", (2026, 10, 4), 120),
        ("America/Santiago", (2026, 4, 5), 0),
        ("America/Santiago", (2026, 9, 6), 0),
    ];

    /// Spans from (start minute relative to the switch, length in minutes),
    /// clipped to the day: most of them open or close near the switch.
    fn spans(switch: i32, raw: &[(i32, u32)]) -> Vec<Span> {
        raw.iter()
            .map(|&(from_switch, len)| {
                let start = (switch + from_switch).clamp(0, 1439) as u32;
                Span { open: start * 60, close: (start + len).min(1440) * 60 }
            })
            .collect()
    }

    /// The day's open seconds in real time, counted minute by minute: each
    /// span runs from where its local open to where its local close fall
    /// (a missing local time an hour later), overlaps counted once.
    fn union_by_minutes(zone: &TimeZone, date: Date, spans: &[Span]) -> i64 {
        let at = |secs: u32| {
            let (d, secs) = if secs >= 86_400 { (date.tomorrow().unwrap(), secs - 86_400) } else { (date, secs) };
            let t = Time::new((secs / 3600) as i8, (secs / 60 % 60) as i8, 0, 0).unwrap();
            zone.to_ambiguous_timestamp(DateTime::from_parts(d, t)).compatible().unwrap().as_second()
        };
        let mut minutes = std::collections::HashSet::new();
        for s in spans {
            minutes.extend((at(s.open)..at(s.close)).step_by(60));
        }
        minutes.len() as i64 * 60
    }

    /// Business seconds over the whole local day (with three hours' margin).
    fn day_elapsed(zone: &str, date: Date, spans: Vec<Span>) -> Option<(i64, TimeZone)> {
        let tz = TimeZone::get(zone).unwrap();
        let week = [vec![], vec![], vec![], vec![], vec![], vec![], spans];
        let hours = BusinessHours::new(tz.clone(), week, BTreeSet::new()).ok()?;
        let midnight = |d: Date| tz.to_ambiguous_timestamp(d.to_datetime(Time::midnight())).compatible().unwrap();
        let from = midnight(date).checked_sub(jiff::SignedDuration::from_hours(3)).unwrap();
        let to = midnight(date.tomorrow().unwrap()).checked_add(jiff::SignedDuration::from_hours(3)).unwrap();
        Some((hours.elapsed(from, to), tz))
    }

    proptest! {
        // Many cases: the interesting ones (a span inside the skipped hour
        // and another it then overlaps) are a few in a hundred.
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn around_dst_switches_a_days_business_time_is_the_union_of_its_spans_in_real_time(
            which in 0..SWITCHES.len(),
            raw in proptest::collection::vec((-150i32..150, 1u32..120), 1..4),
        ) {
            let (zone, (y, m, d), switch) = SWITCHES[which];
            let date = Date::new(y, m, d).unwrap();
            let spans = spans(switch, &raw);
            // Spans that overlap on the clock are refused by `new`: not a schedule.
            let Some((elapsed, tz)) = day_elapsed(zone, date, spans.clone()) else { return Ok(()) };
            prop_assert_eq!(elapsed, union_by_minutes(&tz, date, &spans), "{} {} {:?}", zone, date, spans);
        }

        #[test]
        fn around_dst_switches_adding_a_span_never_lowers_a_days_business_time(
            which in 0..SWITCHES.len(),
            raw in proptest::collection::vec((-150i32..150, 1u32..120), 1..4),
            extra in (-150i32..150, 1u32..120),
        ) {
            let (zone, (y, m, d), switch) = SWITCHES[which];
            let date = Date::new(y, m, d).unwrap();
            let before = spans(switch, &raw);
            let mut after = before.clone();
            after.extend(spans(switch, &[extra]));
            let (Some((less, _)), Some((more, _))) = (day_elapsed(zone, date, before), day_elapsed(zone, date, after))
            else {
                return Ok(());
            };
            prop_assert!(more >= less, "{} {}: adding {:?} took {} to {}", zone, date, extra, less, more);
        }
    }

    proptest! {
        #[test]
        fn elapsed_inverts_add(start in 1_700_000_000i64..1_900_000_000, secs in 0i64..400_000) {
            let hours = new_york_office();
            let start = Timestamp::from_second(start).unwrap();
            let due = hours.add(start, secs).unwrap();
            prop_assert_eq!(hours.elapsed(start, due), secs);
            prop_assert!(hours.is_open(due), "due {} is outside hours", due);
        }

        #[test]
        fn add_is_monotonic(start in 1_700_000_000i64..1_900_000_000, a in 0i64..200_000, b in 0i64..200_000) {
            let hours = new_york_office();
            let start = Timestamp::from_second(start).unwrap();
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(hours.add(start, lo) <= hours.add(start, hi));
        }
    }
}
