//! Renders a weekly [`Report`] with the previous week's for the trend:
//! text, markdown, json, csv and a self-contained html page with SVG charts.
//! Pure string building.

use std::fmt::Write as _;

use serde_json::Value;

use crate::core::report::{Details, Report};
use crate::core::rules::RuleSet;
use crate::core::text::markdown_cell;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
    Csv,
    Html,
}

/// Renders `now` with the trend against `prev`; `rules` gives each finding's
/// rule its description (the ids alone without it).
pub fn render(format: Format, now: &Report, prev: &Report, rules: Option<&RuleSet>) -> String {
    match format {
        Format::Text => text(now, prev, rules),
        Format::Markdown => markdown(now, prev, rules),
        Format::Json => json(now, prev),
        Format::Csv => csv(now, prev),
        Format::Html => html(now, prev),
    }
}

/// A duration for people: the two largest units, rounded ("1h 14m", "35m",
/// "4d 16h", "45s").
pub fn short(secs: i64) -> String {
    let s = secs.abs();
    let sign = if secs < 0 { "-" } else { "" };
    let minutes = (s + 30) / 60;
    let text = if s < 60 {
        format!("{s}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if minutes < 24 * 60 {
        match (minutes / 60, minutes % 60) {
            (h, 0) => format!("{h}h"),
            (h, m) => format!("{h}h {m}m"),
        }
    } else {
        match ((s + 1800) / 3600 / 24, (s + 1800) / 3600 % 24) {
            (d, 0) => format!("{d}d"),
            (d, h) => format!("{d}d {h}h"),
        }
    };
    format!("{sign}{text}")
}

fn secs(v: Option<i64>) -> String {
    v.map_or_else(|| "no answers yet".into(), short)
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "nothing due yet".into(), |p| format!("{p:.1}%"))
}

fn nps(v: Option<i32>) -> String {
    v.map_or_else(|| "no answers yet".into(), |s| format!("{s:+}"))
}

/// `1 answer`, `2 answers`.
fn count(n: u32, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// "(+5)" or "(no change)" against last week.
fn delta_int(now: i64, prev: i64) -> String {
    match now - prev {
        0 => "(no change)".into(),
        d => format!("({d:+})"),
    }
}

/// "(22m faster)", "(2m slower)" or "(no change)"; empty when either side is missing.
fn delta_secs(now: Option<i64>, prev: Option<i64>) -> String {
    match (now, prev) {
        (Some(a), Some(b)) if short(a) == short(b) => "(no change)".into(),
        (Some(a), Some(b)) if a > b => format!("({} slower)", short(a - b)),
        (Some(a), Some(b)) => format!("({} faster)", short(b - a)),
        _ => String::new(),
    }
}

fn delta_pts(now: Option<f64>, prev: Option<f64>) -> String {
    match (now, prev) {
        (Some(a), Some(b)) if (a - b).abs() < 0.05 => "(no change)".into(),
        (Some(a), Some(b)) => format!("({:+.1} pts)", a - b),
        _ => String::new(),
    }
}

fn delta_nps(now: Option<i32>, prev: Option<i32>) -> String {
    match (now, prev) {
        (Some(a), Some(b)) if a == b => "(no change)".into(),
        (Some(a), Some(b)) => format!("({:+})", a - b),
        _ => String::new(),
    }
}

/// "Mon 16 Nov – Sun 22 Nov 2026 (America/New_York)".
fn week_dates(r: &Report) -> String {
    let tz = jiff::tz::TimeZone::get(&r.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let first = r.from.to_zoned(tz.clone()).date();
    let last = r.to.to_zoned(tz).date().yesterday().unwrap_or(first);
    let year = if first.year() == last.year() { String::new() } else { format!(" {}", first.year()) };
    format!("{}{year} – {} {} ({})", first.strftime("%a %-d %b"), last.strftime("%a %-d %b"), last.year(), r.time_zone)
}

/// An instant on the business clock, to the second: "Mon 23 Nov 2026 12:00:00 EST".
fn local(r: &Report, t: jiff::Timestamp) -> String {
    let tz = jiff::tz::TimeZone::get(&r.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    t.to_zoned(tz).strftime("%a %-d %b %Y %H:%M:%S %Z").to_string()
}

/// Every rule with findings this week or last, with both counts.
fn rule_rows(r: &Report, p: &Report) -> Vec<(String, u32, u32)> {
    let mut ids: Vec<&String> =
        r.standards.findings_by_rule.keys().chain(p.standards.findings_by_rule.keys()).collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|id| {
            let now = r.standards.findings_by_rule.get(id).copied().unwrap_or(0);
            (id.clone(), now, p.standards.findings_by_rule.get(id).copied().unwrap_or(0))
        })
        .collect()
}

fn text(r: &Report, p: &Report, rules: Option<&RuleSet>) -> String {
    let mut lines: Vec<String> = Vec::new();
    lines.push(format!("Weekly support summary {}", r.week));
    lines.push(format!("{}, as of {}", week_dates(r), local(r, r.as_of)));
    lines.push(format!("In brackets: the change since {}.", p.week));
    lines.push(String::new());
    lines.push(format!(
        "Conversations    {} opened {}, {} resolved {}",
        r.conversations.opened,
        delta_int(r.conversations.opened.into(), p.conversations.opened.into()),
        r.conversations.resolved,
        delta_int(r.conversations.resolved.into(), p.conversations.resolved.into()),
    ));
    let f = &r.first_response;
    let pf = &p.first_response;
    if f.answered == 0 {
        lines.push("First response   no answers yet".into());
    } else {
        lines.push(format!(
            "First response   {} answered; median {} {}, p90 {} {}",
            f.answered,
            secs(f.median_seconds),
            delta_secs(f.median_seconds, pf.median_seconds),
            secs(f.p90_seconds),
            delta_secs(f.p90_seconds, pf.p90_seconds),
        ));
        lines.push(format!(
            "                 in business hours: median {} {}",
            secs(f.business_median_seconds),
            delta_secs(f.business_median_seconds, pf.business_median_seconds),
        ));
    }
    lines.push(format!(
        "SLA              {} met {}: {} met, {} breached, {} pending",
        pct(r.sla.met_percent),
        delta_pts(r.sla.met_percent, p.sla.met_percent),
        r.sla.met,
        r.sla.breached,
        r.sla.pending
    ));
    lines.push(format!(
        "Reply standards  {} checked, {} without findings",
        count(r.standards.replies_checked, "reply", "replies"),
        r.standards.replies_passed_clean
    ));
    let rows = rule_rows(r, p);
    let width = rows.iter().map(|(id, _, _)| id.chars().count()).max().unwrap_or(0);
    for (id, now, before) in rows {
        let trend = delta_int(now.into(), before.into());
        let what = rules.and_then(|rs| rs.message_of(&id)).map(|m| format!("  {m}")).unwrap_or_default();
        lines.push(format!("  {id:<width$} {now:>4} {trend:<13}{what}"));
    }
    if r.nps.responses == 0 {
        lines.push(format!("NPS              no answers yet (last week: {})", nps(p.nps.score)));
    } else {
        lines.push(format!(
            "NPS              {} {} from {}: {}, {}, {}",
            nps(r.nps.score),
            delta_nps(r.nps.score, p.nps.score),
            count(r.nps.responses, "answer", "answers"),
            count(r.nps.promoters, "promoter", "promoters"),
            count(r.nps.passives, "passive", "passives"),
            count(r.nps.detractors, "detractor", "detractors"),
        ));
    }
    lines.extend(followup_lines(r));
    if r.deliveries.failed > 0 {
        lines.push(format!(
            "Deliveries       {} could not be delivered; see `concierge outbox --status failed`",
            count(r.deliveries.failed, "message", "messages")
        ));
    }
    if !r.agents.is_empty() {
        lines.push(String::new());
        let width = r.agents.iter().map(|a| a.id.chars().count()).max().unwrap_or(5).max(5);
        lines.push(format!(
            "{:<width$}  {:>7}  {:>15}  {:>21}  {:>8}  {}",
            "Agent", "replies", "first responses", "median first response", "findings", "median vs last week"
        ));
        for a in &r.agents {
            let before = p.agents.iter().find(|b| b.id == a.id).and_then(|b| b.median_first_response_seconds);
            let trend = match (a.median_first_response_seconds, before) {
                (Some(_), Some(_)) => {
                    delta_secs(a.median_first_response_seconds, before).trim_matches(['(', ')']).to_string()
                }
                (Some(_), None) => "new this week".into(),
                (None, _) => String::new(),
            };
            lines.push(format!(
                "{:<width$}  {:>7}  {:>15}  {:>21}  {:>8}  {}",
                a.id,
                a.replies,
                a.first_responses,
                a.median_first_response_seconds.map_or_else(|| "none".into(), short),
                a.findings,
                trend
            ));
        }
    }
    let mut o = String::new();
    for line in lines {
        let _ = writeln!(o, "{}", line.trim_end());
    }
    o
}

/// How many open follow-ups the text and markdown list one by one.
const FOLLOWUPS_LISTED: usize = 10;

/// The open detractor follow-ups, for people: a heading line, then one line
/// each (id, score, agent, how long it has waited).
fn followup_lines(r: &Report) -> Vec<String> {
    let f = &r.followups;
    if f.open == 0 {
        return vec!["Follow-ups       none open".to_string()];
    }
    let mut lines = vec![format!(
        "Follow-ups       {} open (detractors to contact; close with `concierge followup done ID`)",
        f.open
    )];
    let width = f.items.iter().map(|i| i.id.chars().count()).max().unwrap_or(0);
    for i in f.items.iter().take(FOLLOWUPS_LISTED) {
        lines.push(format!(
            "  {:<width$}  score {:>2}  {:<12} waiting {}",
            i.id,
            i.score,
            i.agent.as_deref().unwrap_or("-"),
            short(i.waiting_seconds)
        ));
    }
    if f.items.len() > FOLLOWUPS_LISTED {
        lines.push(format!("  ... and {} more (concierge followup list)", f.items.len() - FOLLOWUPS_LISTED));
    }
    lines
}

fn markdown(r: &Report, p: &Report, rules: Option<&RuleSet>) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Weekly support summary {}\n", r.week);
    let _ = writeln!(o, "{}, as of {}. Trend against {}.\n", week_dates(r), local(r, r.as_of), p.week);
    let _ = writeln!(o, "| Measure | This week | {} |\n|---|---:|---:|", p.week);
    let rows: Vec<(&str, String, String)> = vec![
        ("Conversations opened", r.conversations.opened.to_string(), p.conversations.opened.to_string()),
        ("Conversations resolved", r.conversations.resolved.to_string(), p.conversations.resolved.to_string()),
        ("First responses", r.first_response.answered.to_string(), p.first_response.answered.to_string()),
        ("First response median", secs(r.first_response.median_seconds), secs(p.first_response.median_seconds)),
        ("First response p90", secs(r.first_response.p90_seconds), secs(p.first_response.p90_seconds)),
        (
            "Business-time median",
            secs(r.first_response.business_median_seconds),
            secs(p.first_response.business_median_seconds),
        ),
        ("SLA met", pct(r.sla.met_percent), pct(p.sla.met_percent)),
        ("SLA breached", r.sla.breached.to_string(), p.sla.breached.to_string()),
        ("Replies checked", r.standards.replies_checked.to_string(), p.standards.replies_checked.to_string()),
        ("NPS", nps(r.nps.score), nps(p.nps.score)),
        ("NPS answers", r.nps.responses.to_string(), p.nps.responses.to_string()),
        ("Deliveries failed", r.deliveries.failed.to_string(), p.deliveries.failed.to_string()),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(o, "| {name} | {a} | {b} |");
    }
    let rule_rows = rule_rows(r, p);
    if !rule_rows.is_empty() {
        let _ = writeln!(
            o,
            "\n## Reply standards findings\n\n| Rule | What it asks | Findings | {} |\n|---|---|---:|---:|",
            p.week
        );
        for (rule, n, before) in rule_rows {
            let what = rules.and_then(|rs| rs.message_of(&rule)).unwrap_or("");
            let _ = writeln!(o, "| {} | {} | {n} | {before} |", markdown_cell(&rule), markdown_cell(what));
        }
    }
    if !r.agents.is_empty() {
        let _ = writeln!(
            o,
            "\n## Agents\n\n| Agent | Replies | First responses | Median first response | Findings |\n|---|---:|---:|---:|---:|"
        );
        for a in &r.agents {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                markdown_cell(&a.id),
                a.replies,
                a.first_responses,
                a.median_first_response_seconds.map_or_else(|| "none".into(), short),
                a.findings
            );
        }
    }
    if !r.followups.items.is_empty() {
        let _ = writeln!(
            o,
            "\n## Open follow-ups\n\nDetractors to contact; close with `concierge followup done ID`.\n\n| Follow-up | Score | Agent | Waiting |\n|---|---:|---|---:|"
        );
        for i in r.followups.items.iter().take(FOLLOWUPS_LISTED) {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                markdown_cell(&i.id),
                i.score,
                markdown_cell(i.agent.as_deref().unwrap_or("-")),
                short(i.waiting_seconds)
            );
        }
    }
    o
}

/// The JSON contract: the report's fields plus `previous`, the previous
/// week's figures without agents.
pub fn json_value(r: &Report, p: &Report) -> Value {
    let mut v = serde_json::to_value(r).expect("reports serialise");
    let mut prev = serde_json::to_value(p).expect("reports serialise");
    if let Value::Object(m) = &mut prev {
        m.remove("agents");
    }
    v["previous"] = prev;
    v
}

fn json(r: &Report, p: &Report) -> String {
    let mut s = serde_json::to_string_pretty(&json_value(r, p)).expect("json");
    s.push('\n');
    s
}

fn csv(r: &Report, p: &Report) -> String {
    let mut o = String::from("metric,value,previous\n");
    let flat_now = flatten(&json_value(r, p));
    let flat_prev = flatten(&serde_json::to_value(p).expect("json"));
    for (key, value) in &flat_now {
        if key.starts_with("previous.") || key.starts_with("agents.") {
            continue;
        }
        let before = flat_prev.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or("");
        let _ = writeln!(o, "{},{},{}", csv_field(key), csv_field(value), csv_field(before));
    }
    for a in &r.agents {
        for (k, v) in [
            ("replies", a.replies.to_string()),
            ("first_responses", a.first_responses.to_string()),
            (
                "median_first_response_seconds",
                a.median_first_response_seconds.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("findings", a.findings.to_string()),
        ] {
            let _ = writeln!(o, "{},{},", csv_field(&format!("agents.{}.{k}", a.id)), v);
        }
    }
    o
}

fn flatten(v: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            Value::Array(_) => {}
            Value::Null => out.push((prefix.into(), String::new())),
            Value::String(s) => out.push((prefix.into(), s.clone())),
            other => out.push((prefix.into(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", v, &mut out);
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

use crate::core::text::html_escape as esc;

/// A horizontal bar chart: one labelled bar per row, scaled to the largest.
fn bars(title: &str, rows: &[(String, f64, String)], colour: &str) -> String {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1e-9);
    let height = 30 + rows.len() * 26;
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 640 {height}\" width=\"640\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, (label, value, shown)) in rows.iter().enumerate() {
        let y = 10 + i * 26;
        let w = (value / max * 380.0).max(if *value > 0.0 { 2.0 } else { 0.0 });
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"13\">{}</text><rect x=\"190\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"{colour}\" rx=\"3\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"13\">{}</text>",
            y + 14,
            esc(label),
            196.0 + w,
            y + 14,
            esc(shown)
        );
    }
    s.push_str("</svg></figure>");
    s
}

fn html(r: &Report, p: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Support summary {week}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:720px;margin:2em auto;color:#222}}\
         .cards{{display:flex;flex-wrap:wrap;gap:12px}}.card{{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:140px}}\
         .big{{font-size:1.6em;font-weight:600}}.trend{{color:#666;font-size:.9em}}figure{{margin:1.5em 0}}\
         figcaption{{font-weight:600;margin-bottom:6px}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}}\
         td:first-child,th:first-child{{text-align:left}}</style></head><body>\
         <h1>Support summary {week}</h1><p>{dates}, as of {as_of}. Trend against {prev}.</p><div class=\"cards\">",
        week = esc(&r.week),
        dates = esc(&week_dates(r)),
        as_of = esc(&local(r, r.as_of)),
        prev = esc(&p.week),
    );
    let cards = [
        (
            "Conversations",
            r.conversations.opened.to_string(),
            delta_int(r.conversations.opened.into(), p.conversations.opened.into()),
        ),
        (
            "First response median",
            secs(r.first_response.median_seconds),
            delta_secs(r.first_response.median_seconds, p.first_response.median_seconds),
        ),
        ("SLA met", pct(r.sla.met_percent), delta_pts(r.sla.met_percent, p.sla.met_percent)),
        ("NPS", nps(r.nps.score), delta_nps(r.nps.score, p.nps.score)),
    ];
    for (label, value, trend) in cards {
        let _ = write!(
            o,
            "<div class=\"card\"><div>{label}</div><div class=\"big\">{}</div><div class=\"trend\">{}</div></div>",
            esc(&value),
            esc(&trend)
        );
    }
    o.push_str("</div>");
    if r.deliveries.failed > 0 {
        let _ = write!(
            o,
            "<p><strong>{} message(s) could not be delivered</strong>: see <code>concierge outbox --status failed</code>.</p>",
            r.deliveries.failed
        );
    }
    let week_rows = |f: &dyn Fn(&Report) -> (f64, String)| -> Vec<(String, f64, String)> {
        [(p.week.clone(), f(p)), (r.week.clone(), f(r))].into_iter().map(|(w, (v, s))| (w, v, s)).collect()
    };
    let median = |x: &Report| {
        let m = x.first_response.median_seconds;
        (m.unwrap_or(0) as f64, secs(m))
    };
    o.push_str(&bars("First-response median, this week and last", &week_rows(&median), "#4a7bd0"));
    let sla = [
        ("met".to_string(), f64::from(r.sla.met), r.sla.met.to_string()),
        ("breached".to_string(), f64::from(r.sla.breached), r.sla.breached.to_string()),
        ("pending".to_string(), f64::from(r.sla.pending), r.sla.pending.to_string()),
    ];
    o.push_str(&bars("First-response SLA", &sla, "#3a9d5d"));
    let nps_rows = [
        ("promoters (9-10)".to_string(), f64::from(r.nps.promoters), r.nps.promoters.to_string()),
        ("passives (7-8)".to_string(), f64::from(r.nps.passives), r.nps.passives.to_string()),
        ("detractors (0-6)".to_string(), f64::from(r.nps.detractors), r.nps.detractors.to_string()),
    ];
    o.push_str(&bars("Survey answers", &nps_rows, "#c98a1b"));
    if !r.standards.findings_by_rule.is_empty() {
        let rows: Vec<_> =
            r.standards.findings_by_rule.iter().map(|(k, v)| (k.clone(), f64::from(*v), v.to_string())).collect();
        o.push_str(&bars("Reply-standard findings by rule", &rows, "#c0504d"));
    }
    if !r.agents.is_empty() {
        o.push_str("<h2>Agents</h2><table><tr><th>Agent</th><th>Replies</th><th>First responses</th><th>Median first response</th><th>Findings</th></tr>");
        for a in &r.agents {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.id),
                a.replies,
                a.first_responses,
                secs(a.median_first_response_seconds),
                a.findings
            );
        }
        o.push_str("</table>");
    }
    if !r.followups.items.is_empty() {
        o.push_str("<h2>Open follow-ups</h2><p>Detractors to contact; close with <code>concierge followup done ID</code>.</p><table><tr><th>Follow-up</th><th>Score</th><th>Agent</th><th>Waiting</th></tr>");
        for i in &r.followups.items {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&i.id),
                i.score,
                esc(i.agent.as_deref().unwrap_or("-")),
                esc(&short(i.waiting_seconds))
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</body></html>\n");
    o
}

/// The managers' report page (`/reports/WEEK`): the summary page plus the
/// first-response distribution, SLA attainment by day, findings by agent and
/// the NPS trend over `trend` (oldest first: week, score). Each chart is a
/// `<section data-chart="...">` whose SVG labels carry the numbers.
pub fn report_page(r: &Report, p: &Report, d: &Details, trend: &[(String, Option<i32>)]) -> String {
    let mut extra = String::from("<h2>This week in detail</h2>");
    let chart = |name: &str, body: String| format!("<section data-chart=\"{name}\">{body}</section>");
    let rows: Vec<_> = d.response_buckets.iter().map(|(l, n)| (l.clone(), f64::from(*n), n.to_string())).collect();
    extra.push_str(&chart("first-response-distribution", bars("First responses by time taken", &rows, "#4a7bd0")));
    let rows: Vec<_> = d
        .sla_by_day
        .iter()
        .map(|(day, met, breached)| {
            let total = met + breached;
            let share = if total == 0 { 0.0 } else { f64::from(*met) * 100.0 / f64::from(total) };
            let shown = if total == 0 { "no target due".to_string() } else { format!("{share:.0}% ({met}/{total})") };
            (day.clone(), share, shown)
        })
        .collect();
    extra.push_str(&chart("sla-by-day", bars("First-response SLA met, by day opened", &rows, "#3a9d5d")));
    let rows: Vec<_> =
        r.standards.findings_by_rule.iter().map(|(k, v)| (k.clone(), f64::from(*v), v.to_string())).collect();
    extra.push_str(&chart("findings-by-rule", bars("Findings by rule", &rows, "#c0504d")));
    let rows: Vec<_> = r.agents.iter().map(|a| (a.id.clone(), f64::from(a.findings), a.findings.to_string())).collect();
    extra.push_str(&chart("findings-by-agent", bars("Findings by agent", &rows, "#c0504d")));
    extra.push_str(&chart("nps-trend", line("NPS, last weeks", trend)));
    html(r, p).replace("</body></html>", &format!("{extra}</body></html>"))
}

/// A line chart of NPS (-100 to 100) by week; weeks without answers are gaps.
fn line(title: &str, points: &[(String, Option<i32>)]) -> String {
    let (w, h, left, top) = (640.0, 220.0, 40.0, 20.0);
    let step = if points.len() > 1 { (w - left - 20.0) / (points.len() - 1) as f64 } else { 0.0 };
    let y = |v: i32| top + (100.0 - f64::from(v)) / 200.0 * (h - top - 40.0);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for v in [100, 0, -100] {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"0\" y=\"{:.1}\" font-size=\"11\">{v}</text>",
            w - 10.0,
            y(v) + 4.0,
            y = y(v)
        );
    }
    let mut path = String::new();
    for (i, (week, score)) in points.iter().enumerate() {
        let x = left + step * i as f64;
        let _ = write!(
            s,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
            h - 8.0,
            esc(week.rsplit('-').next().unwrap_or(week))
        );
        if let Some(v) = score {
            path.push_str(&format!(
                "{}{x:.1},{:.1} ",
                if path.is_empty() || points[i - 1].1.is_none() { "M" } else { "L" },
                y(*v)
            ));
            let _ = write!(
                s,
                "<circle cx=\"{x:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#c98a1b\" data-week=\"{}\" data-nps=\"{v}\"/><text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{v}</text>",
                y(*v),
                esc(week),
                y(*v) - 8.0
            );
        }
    }
    if !path.is_empty() {
        let _ = write!(s, "<path d=\"{}\" fill=\"none\" stroke=\"#c98a1b\" stroke-width=\"2\"/>", path.trim_end());
    }
    s.push_str("</svg></figure>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::hours::BusinessHours;
    use crate::core::report::{ConversationRow, ReportData, Week, compute};

    fn sample() -> (Report, Report) {
        let ts = |s: &str| s.parse().unwrap();
        let data = ReportData {
            conversations: vec![ConversationRow {
                id: "email:t1".into(),
                opened_at: ts("2026-11-23T10:00:00Z"),
                due_at: Some(ts("2026-11-23T11:00:00Z")),
                first_reply_at: Some(ts("2026-11-23T10:30:00Z")),
                first_reply_by: Some("sam, \"the fixer\"".into()),
                resolutions: vec![],
            }],
            checks: vec![],
            scores: vec![10, 2],
            failed_deliveries: 1,
            followups: vec![],
        };
        let hours = BusinessHours::always_open();
        let now = compute(Week::parse("2026-W48").unwrap(), &hours, ts("2026-12-01T00:00:00Z"), &data);
        let prev =
            compute(Week::parse("2026-W47").unwrap(), &hours, ts("2026-12-01T00:00:00Z"), &ReportData::default());
        (now, prev)
    }

    #[test]
    fn json_carries_the_contract_fields_and_the_previous_week() {
        let (r, p) = sample();
        let v: Value = serde_json::from_str(&render(Format::Json, &r, &p, None)).unwrap();
        assert_eq!(v["week"], "2026-W48");
        assert_eq!(v["first_response"]["median_seconds"], 1800);
        assert_eq!(v["sla"]["met_percent"], 100.0);
        assert_eq!(v["nps"]["score"], 0);
        assert_eq!(v["previous"]["week"], "2026-W47");
        assert!(v["previous"].get("agents").is_none());
        assert_eq!(v["agents"][0]["first_responses"], 1);
    }

    #[test]
    fn csv_quotes_fields_and_html_escapes_names() {
        let (r, p) = sample();
        let csv = render(Format::Csv, &r, &p, None);
        assert!(csv.starts_with("metric,value,previous\n"));
        assert!(csv.contains("conversations.opened,1,0\n"), "{csv}");
        assert!(csv.contains("\"agents.sam, \"\"the fixer\"\".replies\",0,"), "{csv}");
        let html = render(Format::Html, &r, &p, None);
        assert!(html.contains("<svg") && html.contains("sam, &quot;the fixer&quot;"));
        assert!(!html.contains("\"the fixer\""));
    }

    #[test]
    fn text_and_markdown_show_the_trend() {
        let (r, p) = sample();
        let text = render(Format::Text, &r, &p, None);
        assert!(text.contains("1 opened (+1)"), "{text}");
        assert!(text.contains("1 message could not be delivered"), "{text}");
        assert!(text.contains("Mon 23 Nov – Sun 29 Nov 2026 (UTC), as of Tue 1 Dec 2026 00:00:00 UTC"), "{text}");
        assert!(text.contains("from 2 answers: 1 promoter, 0 passives, 1 detractor"), "{text}");
        assert!(text.lines().all(|l| l == l.trim_end()), "no trailing spaces: {text:?}");
        let md = render(Format::Markdown, &r, &p, None);
        assert!(md.contains("| Conversations opened | 1 | 0 |"), "{md}");
    }

    #[test]
    fn durations_are_rounded_for_people() {
        let cases = [(45, "45s"), (59, "59s"), (89, "1m"), (2130, "36m"), (3599, "1h"), (4457, "1h 14m"), (7200, "2h")];
        for (secs, text) in cases {
            assert_eq!(short(secs), text, "{secs}");
        }
        assert_eq!(short(4 * 86_400 + 16 * 3600 + 20 * 60), "4d 16h");
        assert_eq!(short(86_400), "1d");
        assert_eq!(delta_secs(Some(3600), Some(3610)), "(no change)");
        assert_eq!(delta_secs(Some(3000), Some(4320)), "(22m faster)");
        assert_eq!(secs(None), "no answers yet");
    }

    #[test]
    fn a_rule_that_dropped_to_zero_still_shows_with_its_trend_and_description() {
        let (mut r, mut p) = sample();
        r.standards.findings_by_rule.clear();
        p.standards.findings_by_rule.insert("no-shouting".into(), 3);
        let rules = RuleSet::default_rules();
        let text = render(Format::Text, &r, &p, Some(&rules));
        let line = text.lines().find(|l| l.trim_start().starts_with("no-shouting")).expect("the rule's line");
        assert!(line.contains(" 0 (-3)") && line.contains("capital letters"), "{line}");
        let md = render(Format::Markdown, &r, &p, Some(&rules));
        assert!(md.contains("| no-shouting | The reply is mostly in capital letters"), "{md}");
    }

    #[test]
    fn markdown_escapes_agent_ids_so_the_table_holds_and_no_markup_passes() {
        let (mut r, p) = sample();
        r.agents[0].id = "kim|<img src=x onerror=alert(1)>\nsam".into();
        let md = render(Format::Markdown, &r, &p, None);
        let row = md.lines().find(|l| l.starts_with("| kim")).expect("the agent's row");
        assert_eq!(row.matches(" | ").count(), 4, "{row}");
        assert!(row.contains("kim\\|&lt;img") && !md.contains("<img"), "{md}");
    }
}
