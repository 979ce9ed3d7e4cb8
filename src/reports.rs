//! The weekly reports as the shell serves them: read from the store,
//! computed by the pure [`crate::core::report`], rendered by [`crate::format`].
//! Used by `concierge report`, Discord's `/summary` and the web surface; and
//! the schedule that sends the summary to the managers from `concierge run`
//! (`[reports] weekly_at`, timed by the pure [`crate::core::schedule`]).

use jiff::Timestamp;
use tokio::sync::watch;

use crate::core::hours::BusinessHours;
use crate::core::report::{Report, Week, compute};
use crate::core::router::{Action, ActionKind, Channel, Recipient};
use crate::core::rules::RuleSet;
use crate::core::schedule::WeeklyAt;
use crate::driver::{Clock, Wakers};
use crate::format::{self, Format};
use crate::store::Store;

/// The report for `week` and the week before it (for the trend), as of `as_of`.
pub async fn pair(
    store: &Store,
    hours: &BusinessHours,
    week: Week,
    as_of: Timestamp,
) -> anyhow::Result<(Report, Report)> {
    // Read at once, each on a connection of its own (the database's two
    // cores, not one): every read is as of `as_of`, so they agree.
    let previous = week.previous();
    let ((from, to), (prev_from, prev_to)) = (week.bounds(hours.time_zone()), previous.bounds(hours.time_zone()));
    let (mut data, prev_data, followups) = tokio::try_join!(
        store.report_data(from, to, as_of),
        store.report_data(prev_from, prev_to, as_of),
        store.followup_rows(as_of),
    )?;
    data.followups = followups;
    Ok((compute(week, hours, as_of, &data), compute(previous, hours, as_of, &prev_data)))
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

/// Queues the summary of `week` for the managers on each of `channels`, due
/// `at`: the text with the HTML charts as its alternative. The outbox key is
/// per week (`summary/WEEK` on email, as `concierge report --send` queues
/// it, `summary/WEEK/CHANNEL` elsewhere), so however often this runs, from
/// however many places, each channel gets it once. Returns the channels on
/// which it was newly queued.
pub async fn queue_summary(
    store: &Store,
    hours: &BusinessHours,
    rules: Option<&RuleSet>,
    week: Week,
    at: Timestamp,
    channels: &[Channel],
    link: Option<&str>,
) -> anyhow::Result<Vec<Channel>> {
    let (now, prev) = pair(store, hours, week, at).await?;
    let mut plain = format::render(Format::Text, &now, &prev, rules);
    let mut html = format::render(Format::Html, &now, &prev, rules);
    if let Some(link) = link {
        plain.push_str(&format!("\nThe report page, with charts: {link}\n"));
        let a = format!(
            "<p><a href=\"{}\">Open the report page</a> (charts, agents, the NPS trend).</p></body>",
            crate::core::text::html_escape(link)
        );
        html = html.replacen("</body>", &a, 1);
    }
    let mut tx = store.begin().await?;
    let mut queued = Vec::new();
    for &channel in channels {
        let summary = Action {
            key: summary_key(week, channel),
            at,
            kind: ActionKind::Summary,
            conversation: String::new(),
            channel,
            thread: week.to_string(),
            to: Recipient::Managers,
            body: plain.clone(),
            about: None,
        };
        if store.enqueue(&mut tx, &summary, Some(&html)).await? {
            queued.push(channel);
        }
    }
    tx.commit().await?;
    Ok(queued)
}

/// The outbox key of `week`'s summary on `channel`.
pub fn summary_key(week: Week, channel: Channel) -> String {
    match channel {
        Channel::Email => format!("summary/{week}"),
        other => format!("summary/{week}/{}", other.as_str()),
    }
}

/// `settings` row: the first instant the schedule ran on this database.
const SCHEDULE_SINCE: &str = "weekly_summary_since";

/// Sends the weekly summary on schedule until `stopped`: at start, the one
/// due most recently if it was missed (the bot was down at the time), then
/// each at its instant. Weeks due before the schedule first ran on this
/// database are not sent (a new install does not mail last week's summary).
#[allow(clippy::too_many_arguments, reason = "the shell's parts, each used once")]
pub async fn run_schedule(
    store: Store,
    hours: BusinessHours,
    rules: RuleSet,
    at: WeeklyAt,
    channels: Vec<Channel>,
    links: Option<(String, std::sync::Arc<Vec<u8>>)>,
    clock: Clock,
    wakers: Wakers,
    mut stopped: watch::Receiver<bool>,
) {
    if channels.is_empty() {
        tracing::info!("weekly summary: no channel reaches the managers; set email.managers or [discord]");
        return;
    }
    let tz = hours.time_zone().clone();
    let since = loop {
        match store.setting_or_init(SCHEDULE_SINCE, &clock.now().as_second().to_string()).await {
            Ok(v) => break v.parse::<i64>().unwrap_or(0),
            Err(e) => {
                tracing::warn!("weekly summary: cannot read the schedule: {e:#}; will retry");
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
                    _ = stopped.wait_for(|s| *s) => return,
                }
            }
        }
    };
    loop {
        let now = clock.now();
        let (due, week) = at.latest(now, &tz);
        let mut retry = false;
        if due.as_second() >= since {
            let link = links.as_ref().map(|(url, secret)| report_link(url, secret, week, clock.now()));
            match queue_summary(&store, &hours, Some(&rules), week, due, &channels, link.as_deref()).await {
                Ok(queued) if !queued.is_empty() => {
                    let names: Vec<&str> = queued.iter().map(|c| c.as_str()).collect();
                    tracing::info!(week = %week, channels = ?names, "weekly summary queued for the managers");
                    wakers.wake();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("weekly summary for {week}: {e:#}; will retry in a minute");
                    retry = true;
                }
            }
        }
        let wake = if retry {
            tokio::time::Instant::now() + std::time::Duration::from_secs(60)
        } else {
            clock.instant_of(at.next(now, &tz))
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// How long a report link in a summary mail stays valid.
pub const REPORT_LINK_SECS: i64 = 90 * 86_400;

/// A signed link to `week`'s report page, valid until `now` + [`REPORT_LINK_SECS`].
pub fn report_link(public_url: &str, secret: &[u8], week: Week, now: Timestamp) -> String {
    let exp = now.as_second() + REPORT_LINK_SECS;
    format!("{public_url}/reports/{week}?exp={exp}&sig={}", report_signature(secret, week, exp))
}

fn report_signature(secret: &[u8], week: Week, exp: i64) -> String {
    crate::core::router::sign(secret, &format!("report:{week}:{exp}"))
}

/// Whether `sig` signs `week` until `exp`, and `exp` is not past.
pub fn report_link_ok(secret: &[u8], week: Week, exp: i64, sig: &str, now: Timestamp) -> bool {
    now.as_second() <= exp && crate::core::text::constant_eq(&report_signature(secret, week, exp), sig)
}

/// How many weeks the page's NPS trend covers.
pub const TREND_WEEKS: usize = 12;

/// The managers' report page for `week`, as of `as_of`.
pub async fn page(store: &Store, hours: &BusinessHours, week: Week, as_of: Timestamp) -> anyhow::Result<String> {
    // Each of the trend's weeks is read once; the last two are the summary's.
    let mut weeks = vec![week];
    while weeks.len() < TREND_WEEKS {
        let oldest = *weeks.last().expect("not empty");
        weeks.push(oldest.previous());
    }
    weeks.reverse();
    let mut reports = Vec::new();
    let mut details = None;
    for &w in &weeks {
        let (from, to) = w.bounds(hours.time_zone());
        let mut data = store.report_data(from, to, as_of).await?;
        if w == week {
            data.followups = store.followup_rows(as_of).await?;
            details = Some(crate::core::report::details(week, hours, as_of, &data));
        }
        reports.push(compute(w, hours, as_of, &data));
    }
    let trend: Vec<(String, Option<i32>)> = reports.iter().map(|r| (r.week.clone(), r.nps.score)).collect();
    let (now, prev) = (&reports[reports.len() - 1], &reports[reports.len() - 2]);
    Ok(format::report_page(now, prev, &details.expect("the week is in the trend"), &trend))
}
