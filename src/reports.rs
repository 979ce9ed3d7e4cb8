//! The weekly reports as the shell serves them: read from the store,
//! computed by the pure [`crate::core::report`], rendered by [`crate::format`].
//! Used by `concierge report`, Discord's `/summary` and the web surface.

use jiff::Timestamp;

use crate::core::hours::BusinessHours;
use crate::core::report::{Report, Week, compute};
use crate::core::rules::RuleSet;
use crate::format::{self, Format};
use crate::store::Store;

/// The report for `week` and the week before it (for the trend), as of `as_of`.
pub async fn pair(
    store: &Store,
    hours: &BusinessHours,
    week: Week,
    as_of: Timestamp,
) -> anyhow::Result<(Report, Report)> {
    let mut reports = Vec::new();
    for w in [week, week.previous()] {
        let (from, to) = w.bounds(hours.time_zone());
        let data = store.report_data(from, to, as_of).await?;
        reports.push(compute(w, hours, as_of, &data));
    }
    let prev = reports.pop().expect("two reports");
    Ok((reports.pop().expect("two reports"), prev))
}

/// The report for `week` with the previous week's for the trend, rendered.
pub async fn weekly(
    store: &Store,
    hours: &BusinessHours,
    rules: Option<&RuleSet>,
    week: Week,
    as_of: Timestamp,
    f: Format,
) -> anyhow::Result<String> {
    let (now, prev) = pair(store, hours, week, as_of).await?;
    Ok(format::render(f, &now, &prev, rules))
}

/// The last week that has ended at `now` in the business time zone.
pub fn last_complete_week(now: Timestamp, hours: &BusinessHours) -> Week {
    Week::containing(now, hours.time_zone()).previous()
}
