//! When the weekly summary goes out: `[reports] weekly_at = "mon 09:00"`, a
//! weekday and a time on the business time zone's wall clock. Pure: the
//! shell asks for the latest instant at or before now (what is due) and the
//! next one (when to wake).
//!
//! A summary sent in week W covers week W-1. A local time that does not
//! exist that day (spring forward) is taken one hour later, one that occurs
//! twice (fall back) at its first occurrence, so the summary goes out once.

use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;

use super::report::Week;

/// A weekly instant on the local wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyAt {
    pub weekday: Weekday,
    pub time: Time,
}

impl Default for WeeklyAt {
    /// Monday 09:00.
    fn default() -> Self {
        WeeklyAt { weekday: Weekday::Monday, time: Time::constant(9, 0, 0, 0) }
    }
}

impl WeeklyAt {
    /// `"mon 09:00"`: a weekday (three letters or the full English name) and HH:MM.
    pub fn parse(s: &str) -> Result<WeeklyAt, String> {
        let bad = || format!("\"{s}\" is not a weekly time; write a weekday and a time, e.g. \"mon 09:00\"");
        let (day, time) = s.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
        let weekday = match day.to_ascii_lowercase().as_str() {
            "mon" | "monday" => Weekday::Monday,
            "tue" | "tuesday" => Weekday::Tuesday,
            "wed" | "wednesday" => Weekday::Wednesday,
            "thu" | "thursday" => Weekday::Thursday,
            "fri" | "friday" => Weekday::Friday,
            "sat" | "saturday" => Weekday::Saturday,
            "sun" | "sunday" => Weekday::Sunday,
            _ => return Err(bad()),
        };
        let (h, m) = time.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if (0..24).contains(&h) && (0..60).contains(&m) && time.trim().len() >= 4 {
            Ok(WeeklyAt { weekday, time: Time::new(h, m, 0, 0).map_err(|_| bad())? })
        } else {
            Err(bad())
        }
    }

    /// The instant it falls on in `week`.
    pub fn in_week(&self, week: Week, tz: &TimeZone) -> Timestamp {
        let local = week.day(self.weekday).to_datetime(self.time);
        tz.to_ambiguous_timestamp(local).compatible().unwrap_or(Timestamp::MAX)
    }

    /// The latest instant at or before `now`, and the week whose summary it sends.
    pub fn latest(&self, now: Timestamp, tz: &TimeZone) -> (Timestamp, Week) {
        let week = Week::containing(now, tz);
        let this = self.in_week(week, tz);
        if this <= now {
            (this, week.previous())
        } else {
            (self.in_week(week.previous(), tz), week.previous().previous())
        }
    }

    /// The first instant after `now`.
    pub fn next(&self, now: Timestamp, tz: &TimeZone) -> Timestamp {
        let week = Week::containing(now, tz);
        let this = self.in_week(week, tz);
        if this > now { this } else { self.in_week(week.next(), tz) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn parses_weekdays_and_times_and_says_what_it_wants() {
        assert_eq!(WeeklyAt::parse("mon 09:00").unwrap(), WeeklyAt::default());
        assert_eq!(WeeklyAt::parse(" Friday 17:30 ").unwrap().weekday, Weekday::Friday);
        for bad in ["monday", "mon 9", "mon 24:00", "mon 09:60", "funday 09:00", ""] {
            assert!(WeeklyAt::parse(bad).unwrap_err().contains("e.g. \"mon 09:00\""), "{bad}");
        }
    }

    #[test]
    fn the_latest_instant_sends_the_week_before_it() {
        let at = WeeklyAt::default();
        let utc = TimeZone::UTC;
        // Monday 2026-11-23 09:00 UTC: the summary of 2026-W47.
        let (when, week) = at.latest(ts("2026-11-23T09:00:00Z"), &utc);
        assert_eq!((when, week.to_string()), (ts("2026-11-23T09:00:00Z"), "2026-W47".into()));
        // A second before: last Monday's, for 2026-W46.
        let (when, week) = at.latest(ts("2026-11-23T08:59:59Z"), &utc);
        assert_eq!((when, week.to_string()), (ts("2026-11-16T09:00:00Z"), "2026-W46".into()));
        assert_eq!(at.next(ts("2026-11-23T08:59:59Z"), &utc), ts("2026-11-23T09:00:00Z"));
        assert_eq!(at.next(ts("2026-11-23T09:00:00Z"), &utc), ts("2026-11-30T09:00:00Z"));
    }

    #[test]
    fn local_time_holds_across_a_dst_change() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let at = WeeklyAt::default();
        // EDT (UTC-4) before 1 November 2026, EST (UTC-5) after.
        assert_eq!(at.next(ts("2026-10-26T14:00:00Z"), &ny), ts("2026-11-02T14:00:00Z"));
        assert_eq!(at.next(ts("2026-10-19T14:00:00Z"), &ny), ts("2026-10-26T13:00:00Z"));
        // Sunday 01:30 happens twice on 1 November: the first one counts.
        let sun = WeeklyAt::parse("sun 01:30").unwrap();
        assert_eq!(sun.next(ts("2026-10-31T12:00:00Z"), &ny), ts("2026-11-01T05:30:00Z"));
        assert_eq!(sun.next(ts("2026-11-01T05:30:00Z"), &ny), ts("2026-11-08T06:30:00Z"));
        // Sunday 02:30 does not exist on 8 March 2026: an hour later.
        let spring = WeeklyAt::parse("sun 02:30").unwrap();
        assert_eq!(spring.next(ts("2026-03-07T12:00:00Z"), &ny), ts("2026-03-08T07:30:00Z"));
    }
}
