//! `concierge standards eval`: how well the active rules agree with a
//! labelled corpus of replies — overall, on the good and the poor halves,
//! and per rule (precision and recall against the rules reviewers cited),
//! with every disagreement listed. Pure: the CLI reads the files.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use serde::Deserialize;

use crate::core::rules::{CheckContext, RuleSet};

/// One labelled reply (a line of the corpus).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    pub text: String,
    #[serde(default)]
    pub customer_name: Option<String>,
    #[serde(default)]
    pub first: bool,
    #[serde(default)]
    pub late: bool,
    /// `email` or `discord`: what kind of reply it is (lengths differ).
    #[serde(default)]
    pub channel: Option<String>,
    /// What the customer wrote (the message this reply answers), if given;
    /// length rules compare against it.
    #[serde(default)]
    pub customer_text: Option<String>,
    /// An earlier agent reply in the conversation already used the name.
    #[serde(default)]
    pub name_used_earlier: bool,
    /// `pass` or `fail`: the reviewer's verdict.
    pub expect: Verdict,
    /// The rule ids a reviewer would cite.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl Labelled {
    /// The context the reply is checked in.
    pub fn context(&self) -> CheckContext<'_> {
        reply_context(
            self.customer_name.as_deref(),
            self.first,
            self.late,
            self.channel.as_deref(),
            self.customer_text.as_deref(),
            self.name_used_earlier,
        )
    }
}

/// A check context from the fields a reply line has (corpus or
/// `check --batch`): a late reply is a first reply; `discord` (or `chat`) is a
/// chat channel; the customer's text gives its word count.
pub fn reply_context<'a>(
    customer_name: Option<&'a str>,
    first: bool,
    late: bool,
    channel: Option<&str>,
    customer_text: Option<&str>,
    name_used_earlier: bool,
) -> CheckContext<'a> {
    CheckContext {
        customer_name,
        first: first || late,
        late,
        chat: channel.is_some_and(|c| c.eq_ignore_ascii_case("discord") || c.eq_ignore_ascii_case("chat")),
        customer_words: customer_text.map_or(0, |t| crate::core::rules::words(t) as usize),
        name_used_earlier,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

/// The corpus built into the binary (`tests/corpus/replies/`).
pub const BUILT_IN_CORPUS: &[(&str, &str)] = &[
    ("replies.jsonl", include_str!("../tests/corpus/replies/replies.jsonl")),
    ("fresh-1.jsonl", include_str!("../tests/corpus/replies/fresh-1.jsonl")),
    ("fresh-2.jsonl", include_str!("../tests/corpus/replies/fresh-2.jsonl")),
    ("fresh-3.jsonl", include_str!("../tests/corpus/replies/fresh-3.jsonl")),
    ("fresh-4.jsonl", include_str!("../tests/corpus/replies/fresh-4.jsonl")),
];

/// Parses a corpus file: every bad line as `FILE:LINE: reason`.
pub fn parse(text: &str, file: &str) -> Result<Vec<(String, Labelled)>, Vec<String>> {
    let (mut items, mut errors) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Labelled>(line) {
            Ok(l) => items.push((format!("{file}:{}", i + 1), l)),
            Err(e) => errors.push(format!("{file}:{}: {e}", i + 1)),
        }
    }
    if errors.is_empty() { Ok(items) } else { Err(errors) }
}

/// Agreement counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub agreed: usize,
    pub total: usize,
}

impl Tally {
    pub fn percent(self) -> Option<f64> {
        (self.total > 0).then(|| self.agreed as f64 * 100.0 / self.total as f64)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.percent() {
            Some(p) => write!(f, "{p:.1}% ({}/{})", self.agreed, self.total),
            None => f.write_str("n/a (0 replies)"),
        }
    }
}

/// Per rule: cited by the checker and by the reviewers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleScore {
    pub both: usize,
    pub checker: usize,
    pub reviewer: usize,
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub good: Tally,
    pub poor: Tally,
    pub rules: BTreeMap<String, RuleScore>,
    /// (place, what disagreed).
    pub disagreements: Vec<(String, String)>,
}

impl Evaluation {
    pub fn overall(&self) -> Tally {
        Tally { agreed: self.good.agreed + self.poor.agreed, total: self.good.total + self.poor.total }
    }
}

/// Checks every labelled reply with `rules` and compares.
pub fn evaluate(rules: &RuleSet, corpus: &[(String, Labelled)]) -> Evaluation {
    let mut e = Evaluation::default();
    for (place, l) in corpus {
        let ctx = l.context();
        let result = rules.check(&l.text, ctx);
        let got = if result.passed { Verdict::Pass } else { Verdict::Fail };
        let tally = if l.expect == Verdict::Pass { &mut e.good } else { &mut e.poor };
        tally.total += 1;
        let cited: Vec<&str> = result.findings.iter().map(|f| f.rule.as_str()).collect();
        for id in &cited {
            let s = e.rules.entry(id.to_string()).or_default();
            s.checker += 1;
            s.both += usize::from(l.rules.iter().any(|r| r == id));
        }
        for id in &l.rules {
            e.rules.entry(id.clone()).or_default().reviewer += 1;
        }
        if got == l.expect {
            tally.agreed += 1;
        } else {
            let snippet: String = l.text.chars().take(70).collect::<String>().replace('\n', " ");
            let expected = if l.expect == Verdict::Pass { "pass" } else { "fail" };
            let got_text = if got == Verdict::Pass { "pass" } else { "fail" };
            e.disagreements.push((
                place.clone(),
                format!(
                    "expected {expected} {:?}, got {got_text} (score {}) {:?}: \"{snippet}\"",
                    l.rules, result.score, cited
                ),
            ));
        }
    }
    e
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let overall = self.overall();
        writeln!(f, "Agreement with the labels: {overall}")?;
        writeln!(f, "  good replies (expected to pass): {}", self.good)?;
        writeln!(f, "  poor replies (expected to fail): {}", self.poor)?;
        writeln!(f, "Per rule (precision: cited rightly; recall: reviewers' citations found):")?;
        let width = self.rules.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        for (id, s) in &self.rules {
            let ratio = |a: usize, b: usize| {
                if b == 0 { "n/a".to_string() } else { format!("{:.0}% ({a}/{b})", a as f64 * 100.0 / b as f64) }
            };
            writeln!(
                f,
                "  {id:<width$}  precision {:<14} recall {}",
                ratio(s.both, s.checker),
                ratio(s.both, s.reviewer)
            )?;
        }
        if self.disagreements.is_empty() {
            writeln!(f, "No disagreements.")?;
        } else {
            let mut list = String::new();
            for (place, what) in &self.disagreements {
                let _ = writeln!(list, "  {place}: {what}");
            }
            write!(f, "Disagreements ({}):\n{list}", self.disagreements.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORPUS: &str = include_str!("../tests/corpus/replies/replies.jsonl");

    #[test]
    fn the_corpus_parses_and_a_bad_line_is_named() {
        let items = parse(CORPUS, "replies.jsonl").unwrap();
        assert!(
            items.iter().any(|(_, l)| l.expect == Verdict::Pass)
                && items.iter().any(|(_, l)| l.expect == Verdict::Fail)
        );
        let errors = parse("{\"text\": \"x\"}\n\n{\"text\": \"y\", \"expect\": \"maybe\"}", "c.jsonl").unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("c.jsonl:1: ") && errors[1].starts_with("c.jsonl:3: "), "{errors:?}");
    }

    #[test]
    fn agreement_precision_and_recall_are_counted_per_half_and_rule() {
        let line = |text: &str, expect: &str, rules: &str| {
            format!(r#"{{"text": {text:?}, "customer_name": "Ana", "expect": "{expect}", "rules": {rules}}}"#)
        };
        let corpus = [
            line("Hi Ana, fixed. Let me know if anything else comes up. Best, Sam", "pass", "[]"),
            line("Hi Ana, as I already said, restart it. Best, Sam", "fail", r#"["no-dismissive"]"#),
            // A reviewer would fail this; the checker does not know the phrase.
            line("Hi Ana, go and ask elsewhere. Best, Sam", "fail", r#"["no-blame"]"#),
        ]
        .join("\n");
        let items = parse(&corpus, "c").unwrap();
        // A small rule set of its own, so the test does not follow the shipped rules.
        let rules = RuleSet::parse(
            "[[rule]]\nid = \"no-dismissive\"\nseverity = \"error\"\nforbid = '(?i)as i already said'\n",
            "test.toml",
            70,
        )
        .unwrap();
        let e = evaluate(&rules, &items);
        assert_eq!((e.good, e.poor), (Tally { agreed: 1, total: 1 }, Tally { agreed: 1, total: 2 }));
        assert_eq!(e.rules["no-dismissive"], RuleScore { both: 1, checker: 1, reviewer: 1 });
        assert_eq!(e.rules["no-blame"], RuleScore { both: 0, checker: 0, reviewer: 1 });
        assert_eq!(e.disagreements.len(), 1);
        assert!(e.disagreements[0].0 == "c:3" && e.to_string().contains("recall 0% (0/1)"), "{e}");
    }
}
