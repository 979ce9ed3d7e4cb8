//! The reply-standards checker: rules are data (`responses/rules.toml`),
//! compiled once into a [`RuleSet`] whose [`RuleSet::check`] is pure.
//!
//! A check returns findings with character spans, a score from 0 to 100
//! (100 minus the weights of the rules not met) and `passed`, which is false
//! when any error-severity rule fails or the score is below the pass score.

use std::fmt::Write as _;

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

/// The rule set shipped in `responses/rules.toml`, used when none is configured.
pub const DEFAULT_RULES: &str = include_str!("../../responses/rules.toml");

/// Default `[standards] pass_score`.
pub const DEFAULT_PASS_SCORE: u32 = 70;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// When a rule is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Applies {
    /// Every agent reply.
    Every,
    /// Only the first agent reply of a conversation.
    First,
    /// Only a first reply sent after the first-response target.
    Late,
}

/// What the checker knows about a reply besides its text.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckContext<'a> {
    /// The customer's display name, if known; its first word is the first name.
    pub customer_name: Option<&'a str>,
    /// The reply is the first agent reply in its conversation.
    pub first: bool,
    /// The reply is a first reply sent after the due instant.
    pub late: bool,
}

/// One rule not met, with the span (in characters) it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub suggestion: String,
    pub start: usize,
    pub end: usize,
}

/// The verdict on one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub score: u32,
    pub passed: bool,
    pub findings: Vec<Finding>,
}

impl CheckResult {
    /// Concrete feedback for the agent on `text` (the reply checked): one
    /// line per finding with its severity, rule id, the phrase it concerns
    /// (quoted) and what to do instead.
    pub fn feedback(&self, text: &str) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "passed" } else { "did not pass" };
        let _ = writeln!(out, "Reply score {}/100: {verdict}.", self.score);
        for f in &self.findings {
            let phrase: String = text.chars().skip(f.start).take(f.end.saturating_sub(f.start)).collect();
            let phrase = phrase.trim();
            let quoted = match phrase.chars().count() {
                0 => String::new(),
                n if n > 60 => format!(" (\"{}…\")", phrase.chars().take(59).collect::<String>()),
                _ => format!(" (\"{phrase}\")"),
            };
            let _ = writeln!(out, "- [{}] {}{quoted}: {} {}", f.severity.as_str(), f.rule, f.message, f.suggestion);
        }
        out
    }
}

/// A problem in a rules file, naming the file and rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}: {problem}")]
pub struct RuleError {
    pub file: String,
    /// `rule "greeting"` or `rule #3` or `line 4, column 2`.
    pub location: String,
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: Option<String>,
    applies: Option<Applies>,
    severity: Option<Severity>,
    weight: Option<u32>,
    message: Option<String>,
    suggestion: Option<String>,
    require: Option<String>,
    forbid: Option<String>,
    unless: Option<String>,
    require_name: Option<bool>,
    max_caps_percent: Option<u32>,
    min_letters: Option<usize>,
}

#[derive(Debug, Clone)]
enum Check {
    /// Index into the shared `RegexSet` and `patterns`.
    Require(usize),
    Forbid {
        pattern: usize,
        unless: Option<Regex>,
    },
    RequireName,
    MaxCaps {
        percent: u32,
        min_letters: usize,
    },
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    applies: Applies,
    severity: Severity,
    weight: u32,
    message: String,
    suggestion: String,
    check: Check,
}

/// A compiled rule set. Build it once; `check` allocates only for findings.
/// Cloning shares the compiled regexes.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    set: RegexSet,
    patterns: Vec<Regex>,
    pass_score: u32,
}

impl RuleSet {
    /// The built-in rules with the default pass score.
    pub fn default_rules() -> RuleSet {
        RuleSet::parse(DEFAULT_RULES, "responses/rules.toml (built in)", DEFAULT_PASS_SCORE)
            .expect("the built-in rule set compiles (guarded by a test)")
    }

    /// What rule `id` asks for (its message), if the set has it.
    pub fn message_of(&self, id: &str) -> Option<&str> {
        self.rules.iter().find(|r| r.id == id).map(|r| r.message.as_str())
    }

    /// The active rules, one line each: `[severity] id (when): what it asks`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for r in &self.rules {
            let when = match r.applies {
                Applies::Every => "every reply",
                Applies::First => "first reply",
                Applies::Late => "late first reply",
            };
            let _ = writeln!(out, "- [{}] {} ({when}): {}", r.severity.as_str(), r.id, r.message);
        }
        let _ = write!(out, "A reply passes with no error finding and a score of at least {}.", self.pass_score);
        out
    }

    /// Compiles a rules file. Reports every problem at once, each naming the
    /// file and the rule.
    pub fn parse(text: &str, file: &str, pass_score: u32) -> Result<RuleSet, Vec<RuleError>> {
        let err = |location: String, problem: String| RuleError { file: file.to_string(), location, problem };
        let raw: RulesFile = toml::from_str(text).map_err(|e| {
            let location = match e.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!("line {line}")
                }
                None => "file".into(),
            };
            vec![err(location, e.message().trim().to_string())]
        })?;
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut sources = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, r) in raw.rule.into_iter().enumerate() {
            let location = match &r.id {
                Some(id) => format!("rule \"{id}\""),
                None => format!("rule #{}", index + 1),
            };
            let mut problem = |p: &str| errors.push(err(location.clone(), p.to_string()));
            let Some(id) = r.id.clone().filter(|id| !id.trim().is_empty()) else {
                problem("has no `id`; add `id = \"some-name\"`");
                continue;
            };
            if !seen.insert(id.clone()) {
                problem("uses an `id` that an earlier rule already has; give each rule its own id");
            }
            let severity = r.severity.unwrap_or(Severity::Warning);
            let kinds =
                [r.require.is_some(), r.forbid.is_some(), r.require_name == Some(true), r.max_caps_percent.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                problem("needs exactly one of `require`, `forbid`, `require_name = true` or `max_caps_percent`");
                continue;
            }
            if r.unless.is_some() && r.forbid.is_none() {
                problem("has `unless` without `forbid`; `unless` only softens a `forbid`");
            }
            let mut compile = |field: &str, pattern: &str| match Regex::new(pattern) {
                Ok(re) => Some(re),
                Err(e) => {
                    errors.push(err(location.clone(), format!("`{field}` is not a valid regex: {e}")));
                    None
                }
            };
            let check = if let Some(p) = &r.require {
                compile("require", p).map(|_| {
                    sources.push(p.clone());
                    Check::Require(sources.len() - 1)
                })
            } else if let Some(p) = &r.forbid {
                let unless = r.unless.as_deref().and_then(|u| compile("unless", u));
                compile("forbid", p).map(|_| {
                    sources.push(p.clone());
                    Check::Forbid { pattern: sources.len() - 1, unless }
                })
            } else if let Some(percent) = r.max_caps_percent {
                if percent > 100 {
                    errors.push(err(location.clone(), "`max_caps_percent` must be between 0 and 100".into()));
                }
                Some(Check::MaxCaps { percent, min_letters: r.min_letters.unwrap_or(12) })
            } else {
                Some(Check::RequireName)
            };
            let Some(check) = check else { continue };
            rules.push(Rule {
                id,
                applies: r.applies.unwrap_or(Applies::Every),
                severity,
                weight: r.weight.unwrap_or(match severity {
                    Severity::Error => 30,
                    Severity::Warning => 10,
                }),
                message: r.message.unwrap_or_else(|| "The reply does not meet this standard.".into()),
                suggestion: r.suggestion.unwrap_or_default(),
                check,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Each pattern compiled on its own above, so the set compiles too.
        let set = RegexSet::new(&sources).map_err(|e| vec![err("file".into(), e.to_string())])?;
        let patterns = sources.iter().map(|s| Regex::new(s).expect("compiled above")).collect();
        Ok(RuleSet { rules, set, patterns, pass_score })
    }

    pub fn pass_score(&self) -> u32 {
        self.pass_score
    }

    /// The ids of all rules, in file order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Checks one reply.
    pub fn check(&self, text: &str, ctx: CheckContext<'_>) -> CheckResult {
        let matched = self.set.matches(text);
        let first_name = ctx.customer_name.and_then(first_name);
        let mut findings = Vec::new();
        let mut score: u32 = 100;
        let mut error = false;
        for rule in &self.rules {
            let applies = match rule.applies {
                Applies::Every => true,
                Applies::First => ctx.first,
                Applies::Late => ctx.first && ctx.late,
            };
            if !applies {
                continue;
            }
            let miss: Option<(usize, usize)> = match &rule.check {
                Check::Require(i) => (!matched.matched(*i)).then_some((0, 0)),
                Check::Forbid { pattern, unless } => {
                    if !matched.matched(*pattern) || unless.as_ref().is_some_and(|u| u.is_match(text)) {
                        None
                    } else {
                        self.patterns[*pattern].find(text).map(|m| (m.start(), m.end()))
                    }
                }
                Check::RequireName => match first_name {
                    Some(name) if !contains_word(text, name) => Some((0, 0)),
                    _ => None,
                },
                Check::MaxCaps { percent, min_letters } => {
                    let (letters, upper) = text
                        .chars()
                        .filter(|c| c.is_alphabetic())
                        .fold((0usize, 0usize), |(l, u), c| (l + 1, u + usize::from(c.is_uppercase())));
                    (letters >= *min_letters && upper * 100 > letters * *percent as usize).then_some((0, text.len()))
                }
            };
            if let Some((start, end)) = miss {
                score = score.saturating_sub(rule.weight);
                error |= rule.severity == Severity::Error;
                let name = first_name.unwrap_or("there");
                findings.push(Finding {
                    rule: rule.id.clone(),
                    severity: rule.severity,
                    message: rule.message.replace("{name}", name),
                    suggestion: rule.suggestion.replace("{name}", name),
                    start: char_offset(text, start),
                    end: char_offset(text, end),
                });
            }
        }
        CheckResult { score, passed: !error && score >= self.pass_score, findings }
    }
}

/// The first word of a display name, without punctuation: "Dr. Ana López" is
/// taken as written, "Alice Smith" gives "Alice".
pub fn first_name(name: &str) -> Option<&str> {
    name.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .find(|w| !w.is_empty() && !matches!(w.to_lowercase().as_str(), "mr" | "mrs" | "ms" | "dr" | "prof"))
}

/// Whether `needle` occurs in `hay` as a whole word, ignoring case.
fn contains_word(hay: &str, needle: &str) -> bool {
    let needle_len = needle.chars().count();
    let chars: Vec<char> = hay.chars().collect();
    let target: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    if needle_len == 0 || chars.len() < needle_len {
        return false;
    }
    (0..=chars.len() - needle_len).any(|i| {
        let before_ok = i == 0 || !chars[i - 1].is_alphanumeric();
        let after_ok = i + needle_len == chars.len() || !chars[i + needle_len].is_alphanumeric();
        before_ok
            && after_ok
            && chars[i..i + needle_len].iter().flat_map(|c| c.to_lowercase()).eq(target.iter().copied())
    })
}

fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        RuleSet::default_rules()
    }

    fn ctx(name: Option<&str>, first: bool, late: bool) -> CheckContext<'_> {
        CheckContext { customer_name: name, first, late }
    }

    fn rule_ids(result: &CheckResult) -> Vec<&str> {
        result.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    const GOOD: &str = "Hi Alice,\n\nThanks for reaching out about the invoice. I've corrected the amount and \
                        you'll see the new total within the hour.\n\nLet me know if anything else comes up.\nBest,\nSam";

    #[test]
    fn the_built_in_rules_compile() {
        let ids: Vec<_> = rules().rule_ids().map(String::from).collect();
        assert!(ids.contains(&"no-blame".to_string()) && ids.len() >= 9, "{ids:?}");
    }

    #[test]
    fn a_good_first_reply_passes_with_full_marks() {
        let r = rules().check(GOOD, ctx(Some("Alice Smith"), true, false));
        assert_eq!(rule_ids(&r), Vec::<&str>::new());
        assert_eq!((r.score, r.passed), (100, true));
    }

    /// (reply, customer, first, late, rules expected to fire, passed).
    type Case<'a> = (&'a str, Option<&'a str>, bool, bool, &'a [&'a str], bool);

    #[test]
    fn poor_replies_are_caught_by_the_right_rules() {
        let table: &[Case] = &[
            (
                "Hi Bob, as I already said, restart the router. Thanks, Sam",
                Some("Bob"),
                false,
                false,
                &["no-dismissive"],
                false,
            ),
            (
                "Hi Bob, that's not our problem, talk to your bank. Best, Sam",
                Some("Bob"),
                false,
                false,
                &["no-blame"],
                false,
            ),
            ("Hi Bob, you should have read the manual. Cheers", Some("Bob"), false, false, &["no-blame"], false),
            (
                "Hi Bob, per my last email the fix is live. Regards",
                Some("Bob"),
                false,
                false,
                &["no-dismissive"],
                false,
            ),
            ("Hi Bob, please calm down, we're on it. Thanks", Some("Bob"), false, false, &["no-dismissive"], false),
            (
                "HI BOB, THE SERVER IS DOWN AND WE ARE FIXING IT. THANKS",
                Some("Bob"),
                false,
                false,
                &["no-shouting"],
                false,
            ),
            ("Hi Bob, it works now!!! Thanks", Some("Bob"), false, false, &["no-exclamation-strings"], true),
            ("Hi Bob, I'll get back to you. Thanks", Some("Bob"), false, false, &["follow-up-needs-time"], true),
            ("Hi Bob, I'll get back to you by 3 pm today. Thanks", Some("Bob"), false, false, &[], true),
            ("Hello, fixed now. Thanks", Some("Bob"), false, false, &["customer-name"], true),
            ("Hello, fixed now. Thanks", None, false, false, &[], true),
            // Several warnings at once fail the reply even with no error.
            (
                "restart the router",
                Some("Bob"),
                true,
                false,
                &["greeting", "customer-name", "acknowledge", "sign-off"],
                false,
            ),
            // Late first reply without an apology.
            (
                "Hi Bob, thanks for the details, it is fixed. Best, Sam",
                Some("Bob"),
                true,
                true,
                &["apology-when-late"],
                true,
            ),
            (
                "Hi Bob, sorry for the wait and thanks for the details, it is fixed. Best, Sam",
                Some("Bob"),
                true,
                true,
                &[],
                true,
            ),
            // Lateness only matters for the first reply.
            ("Hi Bob, it is fixed. Best, Sam", Some("Bob"), false, true, &[], true),
        ];
        for (text, name, first, late, expected, passed) in table {
            let r = rules().check(text, ctx(*name, *first, *late));
            assert_eq!(rule_ids(&r), *expected, "{text}");
            assert_eq!(r.passed, *passed, "{text}: score {}", r.score);
        }
    }

    #[test]
    fn forbidden_phrases_are_reported_with_their_character_span() {
        let text = "Hé Bob, as I already said, no. Thanks";
        let r = rules().check(text, ctx(Some("Bob"), false, false));
        let f = r.findings.iter().find(|f| f.rule == "no-dismissive").unwrap();
        let span: String = text.chars().skip(f.start).take(f.end - f.start).collect();
        assert_eq!(span, "as I already said");
        assert_eq!(f.severity, Severity::Error);
    }

    #[test]
    fn messages_name_the_customer() {
        let r = rules().check("fixed", ctx(Some("Dr. Ana López"), false, false));
        let f = r.findings.iter().find(|f| f.rule == "greeting").unwrap();
        assert!(f.suggestion.contains("Hi Ana,"), "{}", f.suggestion);
        assert!(contains_word("hola ANA, ok", "Ana"));
        assert!(!contains_word("Banana", "Ana"));
    }

    #[test]
    fn bad_rule_files_name_the_file_the_rule_and_every_problem() {
        let text = r#"
[[rule]]
id = "broken"
forbid = "(unclosed"

[[rule]]
id = "two-kinds"
require = "a"
forbid = "b"

[[rule]]
require = "x"
"#;
        let errors = RuleSet::parse(text, "team-rules.toml", 70).unwrap_err();
        let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("team-rules.toml: rule \"broken\": `forbid` is not a valid regex"),
            "{}",
            shown[0]
        );
        assert!(shown[1].contains("rule \"two-kinds\"") && shown[1].contains("exactly one"));
        assert!(shown[2].contains("rule #3") && shown[2].contains("no `id`"));
    }

    #[test]
    fn toml_syntax_errors_give_the_line() {
        let errors =
            RuleSet::parse("[[rule]]\nid = \"a\"\nseverity = \"fatal\"\nrequire = \"x\"\n", "r.toml", 70).unwrap_err();
        assert_eq!(errors[0].location, "line 3", "{}", errors[0]);
        assert!(errors[0].problem.contains("fatal") || errors[0].problem.contains("variant"), "{}", errors[0]);
    }
}
