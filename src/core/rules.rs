//! The reply-standards checker: rules are data (`responses/rules.toml`),
//! compiled once into a [`RuleSet`] whose [`RuleSet::check`] is pure.
//!
//! A check returns findings with character spans, a score from 0 to 100
//! (100 minus the weights of the rules not met) and `passed`, which is false
//! when any error-severity rule fails or the score is below the pass score.

use std::fmt::Write as _;

mod one_pass;

use std::sync::Arc;

use memchr::memchr3_iter;
use one_pass::OnePass;
use regex::Regex;
use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

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
    /// Never: the rule is switched off (handy in `in_chat`).
    Never,
}

impl Applies {
    fn judged(self, ctx: &CheckContext<'_>) -> bool {
        match self {
            Applies::Every => true,
            Applies::First => ctx.first,
            Applies::Late => ctx.first && ctx.late,
            Applies::Never => false,
        }
    }
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
    /// The reply is a chat message (Discord), where a conversation is a run
    /// of short messages: rules with `in_chat` are judged by that instead.
    pub chat: bool,
    /// How many words the customer wrote in the message(s) this reply
    /// answers; 0 when unknown (length rules that depend on it are skipped).
    pub customer_words: usize,
    /// An earlier agent reply in this conversation already used the
    /// customer's name (it then satisfies `require_name`).
    pub name_used_earlier: bool,
}

/// One rule not met, with the span (in characters) it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub message: String,
    pub suggestion: String,
    /// Character offsets of the offending span (`start == end` when the
    /// finding is about something missing).
    pub start: usize,
    pub end: usize,
    /// The sentence holding the span, as written; empty for a finding
    /// about something missing.
    pub sentence: String,
    /// That sentence rewritten by the rule's `rewrite` pairs, when the rule
    /// has them and they changed it; empty means "drop the sentence".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
}

/// The verdict on one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub score: u32,
    pub passed: bool,
    pub findings: Vec<Finding>,
}

impl CheckResult {
    /// Concrete feedback for the agent: the verdict, then per finding its
    /// severity and rule, the sentence it concerns (quoted), what is wrong,
    /// what to do, and the sentence rewritten when the rule can rewrite it.
    pub fn feedback(&self, text: &str) -> String {
        let mut out = String::new();
        let verdict = if self.passed { "passed" } else { "did not pass" };
        let _ = writeln!(out, "Reply score {}/100: {verdict}.", self.score);
        for f in &self.findings {
            let phrase: String = text.chars().skip(f.start).take(f.end.saturating_sub(f.start)).collect();
            let phrase = clip(phrase.trim(), 60);
            let quoted = if phrase.is_empty() { String::new() } else { format!(" (\"{phrase}\")") };
            let _ = writeln!(out, "- [{}] {}{quoted}: {} {}", f.severity.as_str(), f.rule, f.message, f.suggestion);
            let sentence = f.sentence.trim();
            if !sentence.is_empty() && sentence != phrase {
                let _ = writeln!(out, "  In: \"{}\"", clip(sentence, 200));
            }
            match f.rewrite.as_deref() {
                Some("") => {
                    let _ = writeln!(out, "  Rewrite: leave this sentence out.");
                }
                Some(r) => {
                    let _ = writeln!(out, "  Rewrite: \"{}\"", clip(r, 200));
                }
                None => {}
            }
        }
        out
    }
}

/// `s` cut to `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() > max { format!("{}…", s.chars().take(max - 1).collect::<String>()) } else { s.to_string() }
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
    in_chat: Option<Applies>,
    severity: Option<Severity>,
    weight: Option<u32>,
    message: Option<String>,
    suggestion: Option<String>,
    require: Option<String>,
    forbid: Option<String>,
    unless: Option<String>,
    exempt: Option<String>,
    require_name: Option<bool>,
    max_caps_percent: Option<u32>,
    min_letters: Option<usize>,
    min_words: Option<usize>,
    when_customer_words: Option<usize>,
    max_paragraph_words: Option<usize>,
    #[serde(default)]
    rewrite: Vec<(String, String)>,
}

/// A compiled pattern and its slot in the rule set's one-pass prefilter
/// (`None`: searched on its own when needed).
#[derive(Debug, Clone)]
struct Pat {
    re: Regex,
    slot: Option<usize>,
}

/// A `require` pattern as it is searched. Its top-level alternatives
/// anchored at the start (`\A`) or the end (`\z`) of the reply are searched
/// on their own: the regex engine then reads only that end of the reply
/// (from the end, backwards, for `\z`), where in the one-pass set they would
/// be carried through every byte (the greeting's `\A` and the sign-off's
/// last lines were a third of the set's time). The other alternatives are
/// one pattern in the set.
#[derive(Debug, Clone)]
struct Require {
    /// The pattern as written (ASCII word classes), for `patterns()`.
    whole: Regex,
    /// Alternatives anchored at either end, searched alone.
    ends: Vec<Regex>,
    /// The other alternatives, if any.
    rest: Option<Pat>,
}

impl Require {
    /// Splits `whole`; `slot` puts the rest in the one pass.
    fn new(whole: Regex, slot: impl FnOnce(Regex) -> Pat) -> Require {
        let (ends, rest) = split_anchored(whole.as_str());
        // Each part compiles: it is a piece of a pattern that did. Searched
        // backwards, counted repetitions of `[^\n]` visit more states than
        // 8 MB keep, and the engine then gives up and scans the whole reply
        // forwards.
        let build = |p: &str| regex::RegexBuilder::new(p).dfa_size_limit(64 << 20).build().ok();
        match ends.iter().map(|e| build(e)).collect::<Option<Vec<Regex>>>() {
            Some(ends) if !ends.is_empty() => Require { whole, ends, rest: rest.and_then(|r| build(&r)).map(slot) },
            _ => Require { rest: Some(slot(whole.clone())), whole, ends: Vec::new() },
        }
    }

    fn met(&self, text: &str, matches: impl Fn(&Pat) -> bool) -> bool {
        self.rest.as_ref().is_some_and(matches) || self.ends.iter().any(|e| e.is_match(text))
    }
}

#[derive(Debug, Clone)]
enum Check {
    Require(Require),
    Forbid { pattern: Pat, unless: Option<Pat>, exempt: Option<Pat> },
    RequireName,
    MaxCaps { percent: u32, min_letters: usize },
    MinWords { min: usize, when_customer: usize },
    MaxParagraphWords(usize),
}

#[derive(Debug, Clone)]
struct Rule {
    id: String,
    applies: Applies,
    in_chat: Applies,
    severity: Severity,
    weight: u32,
    message: String,
    suggestion: String,
    check: Check,
    rewrite: Vec<(Regex, String)>,
}

/// A compiled rule set. Build it once; `check` allocates only for findings.
///
/// Speed (measured by `concierge bench rules`, see BENCHMARKS.md): the
/// `require` and `forbid` patterns are searched in one pass
/// (`core/rules/one_pass.rs`) that says which match anywhere and where the forbidden
/// ones end, so a forbidden phrase is located by reading back over it, not
/// by searching the reply again; `unless` and `exempt` are searched only
/// once their `forbid` matched. A `require` alternative anchored at either
/// end of the reply (the greeting, the sign-off's last lines) is searched
/// on its own from that end. `\b`, `\w`, `\d` and their negations are
/// compiled as ASCII classes (`(?-u:\b)`...): a Unicode word boundary makes
/// the regex engine fall back to its slow NFA simulation on any text that
/// is not pure ASCII (curly quotes, accented names), which made checking
/// ~50x slower, and a Unicode `\w` repeated (`[\w ]{1,25}`) compiled into
/// ~30 ms and megabytes per pattern. The cost: a non-ASCII letter is not a
/// word character to a pattern ("café" is "caf" + "é" to `\b`); the phrases
/// the rules look for are English, and a rule that needs more spells it
/// out (`responses/rules.toml` says so). Letters, capitals and word counts
/// are counted a vector of bytes at a time, and words segmented only when
/// cheap bounds leave a count open. Cloning shares the compiled patterns.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    pass_score: u32,
    /// All `require` and `forbid` patterns in one pass; `None` if they are
    /// too large to build (then each pattern is searched on its own).
    one_pass: Option<Arc<OnePass>>,
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
            let when = |a: Applies| match a {
                Applies::Every => "every reply",
                Applies::First => "first reply",
                Applies::Late => "late first reply",
                Applies::Never => "never",
            };
            let chat = if r.in_chat == r.applies { String::new() } else { format!("; in chat: {}", when(r.in_chat)) };
            let _ = writeln!(out, "- [{}] {} ({}{chat}): {}", r.severity.as_str(), r.id, when(r.applies), r.message);
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
        let mut seen = std::collections::HashSet::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut forbidden: Vec<bool> = Vec::new();
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
            let kinds = [
                r.require.is_some(),
                r.forbid.is_some(),
                r.require_name == Some(true),
                r.max_caps_percent.is_some(),
                r.min_words.is_some(),
                r.max_paragraph_words.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                problem(
                    "needs exactly one of `require`, `forbid`, `require_name = true`, `max_caps_percent`, \
                     `min_words` or `max_paragraph_words`",
                );
                continue;
            }
            if (r.unless.is_some() || r.exempt.is_some()) && r.forbid.is_none() {
                problem("has `unless` or `exempt` without `forbid`; they only soften a `forbid`");
            }
            if r.when_customer_words.is_some() && r.min_words.is_none() {
                problem("has `when_customer_words` without `min_words`");
            }
            let mut compile = |field: &str, pattern: &str| match regex::RegexBuilder::new(&ascii_classes(pattern))
                .dfa_size_limit(8 << 20)
                .build()
            {
                Ok(re) => Some(re),
                Err(_) => {
                    // Reported against the pattern as written.
                    let e = Regex::new(pattern).err().map_or_else(|| "unsupported pattern".into(), |e| e.to_string());
                    errors.push(err(location.clone(), format!("`{field}` is not a valid regex: {e}")));
                    None
                }
            };
            // The one pass holds the `require` and `forbid` patterns as
            // they are, so its answer is the answer; `unless` and `exempt`,
            // only needed once their `forbid` matched, are searched on their
            // own.
            let mut slot = |re: Regex, forbid: bool| {
                patterns.push(re.as_str().to_string());
                forbidden.push(forbid);
                Pat { re, slot: Some(patterns.len() - 1) }
            };
            let alone = |re: Regex| Pat { re, slot: None };
            let check = if let Some(p) = &r.require {
                compile("require", p).map(|whole| Check::Require(Require::new(whole, |re| slot(re, false))))
            } else if let Some(p) = &r.forbid {
                let pattern = compile("forbid", p);
                let unless = r.unless.as_deref().and_then(|u| compile("unless", u));
                let exempt = r.exempt.as_deref().and_then(|u| compile("exempt", u));
                pattern.map(|pattern| Check::Forbid {
                    pattern: slot(pattern, true),
                    unless: unless.map(alone),
                    exempt: exempt.map(alone),
                })
            } else if let Some(percent) = r.max_caps_percent {
                Some(Check::MaxCaps { percent, min_letters: r.min_letters.unwrap_or(12) })
            } else if let Some(min) = r.min_words {
                Some(Check::MinWords { min, when_customer: r.when_customer_words.unwrap_or(0) })
            } else if let Some(max) = r.max_paragraph_words {
                Some(Check::MaxParagraphWords(max))
            } else {
                Some(Check::RequireName)
            };
            let rewrite: Vec<(Regex, String)> = r
                .rewrite
                .iter()
                .filter_map(|(pattern, with)| compile("rewrite", pattern).map(|re| (re, with.clone())))
                .collect();
            if r.max_caps_percent.is_some_and(|p| p > 100) {
                errors.push(err(location.clone(), "`max_caps_percent` must be between 0 and 100".into()));
            }
            let Some(check) = check else { continue };
            let applies = r.applies.unwrap_or(Applies::Every);
            rules.push(Rule {
                id,
                applies,
                in_chat: r.in_chat.unwrap_or(applies),
                severity,
                weight: r.weight.unwrap_or(match severity {
                    Severity::Error => 30,
                    Severity::Warning => 10,
                }),
                message: r.message.unwrap_or_else(|| "The reply does not meet this standard.".into()),
                suggestion: r.suggestion.unwrap_or_default(),
                check,
                rewrite,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let one_pass = OnePass::new(&patterns, &forbidden).map(Arc::new);
        Ok(RuleSet { rules, pass_score, one_pass })
    }

    pub fn pass_score(&self) -> u32 {
        self.pass_score
    }

    /// The ids of all rules, in file order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Every pattern the rules match with (`pattern`, `unless`, `exempt`),
    /// in file order: what one `RegexSet` pass would run (benchmarks).
    pub fn patterns(&self) -> Vec<String> {
        let mut out: Vec<&Regex> = Vec::new();
        for rule in &self.rules {
            match &rule.check {
                Check::Require(r) => out.push(&r.whole),
                Check::Forbid { pattern, unless, exempt } => {
                    out.push(&pattern.re);
                    out.extend([unless, exempt].into_iter().flatten().map(|p| &p.re));
                }
                _ => {}
            }
        }
        out.into_iter().map(|re| re.as_str().to_string()).collect()
    }

    /// Checks one reply.
    pub fn check(&self, text: &str, ctx: CheckContext<'_>) -> CheckResult {
        let Some(one_pass) = self.one_pass.as_deref() else { return self.judge(text, ctx, None) };
        let mut scratch = one_pass.take();
        let result = if one_pass.search(text, &mut scratch) {
            let found = std::mem::take(&mut scratch.found);
            let result = self.judge(text, ctx, Some((one_pass, &mut scratch, &found)));
            scratch.found = found;
            result
        } else {
            self.judge(text, ctx, None)
        };
        one_pass.put(scratch);
        result
    }

    /// The verdict on `text`, with what the one pass found in it (`None`:
    /// each pattern is searched on its own).
    fn judge(
        &self,
        text: &str,
        ctx: CheckContext<'_>,
        mut pass: Option<(&OnePass, &mut one_pass::Scratch, &one_pass::Found)>,
    ) -> CheckResult {
        let first_name = ctx.customer_name.and_then(first_name);
        let found = pass.as_ref().map(|(_, _, found)| *found);
        let matches = |p: &Pat| match (found, p.slot) {
            (Some(found), Some(slot)) => found.matched[slot],
            _ => p.re.is_match(text),
        };
        // Only a forbidden phrase that matched needs to know what is quoted.
        let quoted = std::cell::OnceCell::new();
        let mut findings = Vec::new();
        let mut score: u32 = 100;
        let mut error = false;
        for rule in &self.rules {
            let applies = if ctx.chat { rule.in_chat } else { rule.applies };
            if !applies.judged(&ctx) {
                continue;
            }
            let miss: Option<(usize, usize)> = match &rule.check {
                Check::Require(r) => (!r.met(text, matches)).then_some((0, 0)),
                Check::Forbid { pattern, .. } if !matches(pattern) => None,
                Check::Forbid { pattern, unless, exempt } => {
                    let exempt = exempt.as_ref().filter(|e| matches(e)).map(|e| &e.re);
                    let held = |&(s, e): &(usize, usize)| {
                        !inside(quoted.get_or_init(|| quoted_spans(text)), s, e) && !exempted(exempt, text, s, e)
                    };
                    // From where the pass saw matches end; without it, or
                    // past the ends it kept, the reply is searched.
                    let located = match (&mut pass, pattern.slot) {
                        (Some((one_pass, scratch, found)), Some(slot)) => {
                            one_pass.locate(scratch, &found.ends[slot], slot, &pattern.re, text, held)
                        }
                        _ => None,
                    };
                    let hit =
                        located.unwrap_or_else(|| pattern.re.find_iter(text).map(|m| (m.start(), m.end())).find(&held));
                    hit.filter(|_| !unless.as_ref().is_some_and(&matches))
                }
                Check::RequireName => match first_name {
                    Some(name) if !ctx.name_used_earlier && !contains_word(text, name) => Some((0, 0)),
                    _ => None,
                },
                Check::MaxCaps { percent, min_letters } => {
                    let (letters, upper) = letters_and_capitals(text);
                    (letters >= *min_letters && upper * 100 > letters * *percent as usize).then_some((0, text.len()))
                }
                Check::MinWords { min, when_customer } => {
                    let judged = *when_customer == 0 || ctx.customer_words >= *when_customer;
                    (judged && !at_least_words(text, *min)).then_some((0, text.len()))
                }
                Check::MaxParagraphWords(max) => paragraphs(text).find(|&(s, e)| at_least_words(&text[s..e], max + 1)),
            };
            if let Some((start, end)) = miss {
                score = score.saturating_sub(rule.weight);
                error |= rule.severity == Severity::Error;
                let name = first_name.unwrap_or("there");
                let (sentence, rewrite) = if start == end || (start, end) == (0, text.len()) {
                    (String::new(), None)
                } else {
                    let (s, e) = sentence_around(text, start, end);
                    let sentence = &text[s..e];
                    (sentence.trim().to_string(), rewrite(&rule.rewrite, sentence, name))
                };
                findings.push(Finding {
                    rule: rule.id.clone(),
                    severity: rule.severity,
                    message: rule.message.replace("{name}", name),
                    suggestion: rule.suggestion.replace("{name}", name),
                    start: char_offset(text, start),
                    end: char_offset(text, end),
                    sentence,
                    rewrite,
                });
            }
        }
        CheckResult { score, passed: !error && score >= self.pass_score, findings }
    }
}

/// Byte ranges of text the agent is quoting rather than saying: between
/// straight or curly double quotes, and email lines starting with `>`.
fn quoted_spans(text: &str) -> Vec<(usize, usize)> {
    const OPEN: &str = "\u{201C}";
    const CLOSE: &str = "\u{201D}";
    let mut spans = Vec::new();
    let bytes = text.as_bytes();
    // Only the bytes that can matter are visited: `"`, the lead byte of
    // curly quotes, and line breaks (a quotation does not run across a
    // blank line).
    let mut open: Option<(usize, &str)> = None;
    for i in memchr3_iter(b'"', 0xE2, b'\n', bytes) {
        let at = &text[i..];
        match open {
            None if bytes[i] == b'"' => open = Some((i, "\"")),
            None if at.starts_with(OPEN) => open = Some((i, CLOSE)),
            Some((s, close)) if at.starts_with(close) => {
                spans.push((s, i + close.len()));
                open = None;
            }
            Some(_) if at.starts_with("\n\n") => open = None,
            _ => {}
        }
    }
    if memchr::memchr(b'>', bytes).is_some() {
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            if line.trim_start().starts_with('>') {
                spans.push((at, at + line.len()));
            }
            at += line.len();
        }
    }
    spans
}

/// `pattern` with the word classes made ASCII: `\b` and `\B` become
/// `(?-u:\b)` and `(?-u:\B)`, `\w` and `\d` become `(?-u:\w)` and
/// `(?-u:\d)`, their negations `\W` and `\D` any character but those, and
/// inside a class `[:word:]`, `[:digit:]` and their negations. See
/// [`RuleSet`] for why (a Unicode `\W` in the greeting's `\A\W*` alone
/// cost a fifth of the one-pass set's time).
fn ascii_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut class_depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                // `\b{start}`, `\b{end}`, `\b{start-half}`, `\b{end-half}`.
                Some('b') if class_depth == 0 && chars.peek() == Some(&'{') => {
                    let mut special = String::from("\\b");
                    for c in chars.by_ref() {
                        special.push(c);
                        if c == '}' {
                            break;
                        }
                    }
                    out.push_str(&format!("(?-u:{special})"));
                }
                Some('b') if class_depth == 0 => out.push_str("(?-u:\\b)"),
                Some(c @ ('<' | '>')) if class_depth == 0 => out.push_str(&format!("(?-u:\\{c})")),
                Some('B') if class_depth == 0 => out.push_str("(?-u:\\B)"),
                Some('w') if class_depth == 0 => out.push_str("(?-u:\\w)"),
                Some('d') if class_depth == 0 => out.push_str("(?-u:\\d)"),
                // Any character but an ASCII word character or digit (a
                // byte class here could match half a UTF-8 sequence).
                Some('W') if class_depth == 0 => out.push_str("(?-i:[^0-9A-Za-z_])"),
                Some('D') if class_depth == 0 => out.push_str("(?-i:[^0-9])"),
                Some('w') => out.push_str("[:word:]"),
                Some('d') => out.push_str("[:digit:]"),
                Some('W') => out.push_str("[:^word:]"),
                Some('D') => out.push_str("[:^digit:]"),
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push('\\'),
            },
            '[' => {
                class_depth += 1;
                out.push(c);
                // A `]` first in a class (after any `^`) is a literal.
                if let Some(&'^') = chars.peek() {
                    out.push(chars.next().expect("peeked"));
                }
                if let Some(&']') = chars.peek() {
                    out.push(chars.next().expect("peeked"));
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A pattern's top-level alternatives anchored at the start or the end of
/// the text, and the others joined into one pattern (`None` when there are
/// none). A pattern that does not parse is all "others" (it is reported
/// when compiled).
fn split_anchored(pattern: &str) -> (Vec<String>, Option<String>) {
    use regex_syntax::hir::{HirKind, Look};
    let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(pattern) else {
        return (Vec::new(), Some(pattern.to_string()));
    };
    let mut top = &hir;
    while let HirKind::Capture(group) = top.kind() {
        top = &group.sub;
    }
    let alternatives = match top.kind() {
        HirKind::Alternation(alternatives) => alternatives.as_slice(),
        _ => std::slice::from_ref(top),
    };
    let (mut ends, mut rest) = (Vec::new(), Vec::new());
    for alternative in alternatives {
        let p = alternative.properties();
        if p.look_set_prefix().contains(Look::Start) || p.look_set_suffix().contains(Look::End) {
            ends.push(alternative.to_string());
        } else {
            rest.push(format!("(?:{alternative})"));
        }
    }
    (ends, (!rest.is_empty()).then(|| rest.join("|")))
}

fn inside(spans: &[(usize, usize)], start: usize, end: usize) -> bool {
    spans.iter().any(|&(s, e)| s <= start && end <= e)
}

/// Whether an `exempt` match overlaps the forbidden match at `start..end`
/// ("not your fault" exempts "your fault").
fn exempted(exempt: Option<&Regex>, text: &str, start: usize, end: usize) -> bool {
    exempt.is_some_and(|re| re.find_iter(text).any(|m| m.start() < end && start < m.end()))
}

/// Words in `text`, saturating at `u32::MAX`.
pub fn words(text: &str) -> u32 {
    text.unicode_words().count().try_into().unwrap_or(u32::MAX)
}

/// Whether `text` has at least `n` words (as [`words`] counts them),
/// segmenting only when cheap bounds leave it open. Bounds, from one
/// vectorised look at the bytes: every word holds a letter or digit and
/// never spans white space, so the ASCII letters and digits that follow
/// white space (or start the text) start that many different words; and
/// two words are never both made of ASCII letters and digits with nothing
/// between them, so the runs of those, plus one per non-ASCII character,
/// are at least the words.
fn at_least_words(text: &str, n: usize) -> bool {
    let (at_least, at_most) = word_bounds(text.as_bytes());
    if at_most < n {
        return false;
    }
    if at_least >= n {
        return true;
    }
    text.unicode_words().take(n).count() >= n
}

/// Lower and upper bounds on the words in `bytes` (see [`at_least_words`]).
fn word_bounds(bytes: &[u8]) -> (usize, usize) {
    let alnum = |b: u8| (b | 0x20).wrapping_sub(b'a') < 26 || b.wrapping_sub(b'0') < 10;
    let space = |b: u8| b == b' ' || b.wrapping_sub(b'\t') < 5; // \t \n \x0B \x0C \r
    let Some(&first) = bytes.first() else { return (0, 0) };
    let (mut lower, mut upper) = (usize::from(alnum(first)), usize::from(alnum(first) || first >= 0xC0));
    // Counted in bytes, 255 pairs at a time, so the loop vectorises.
    for (before, after) in bytes[..bytes.len() - 1].chunks(255).zip(bytes[1..].chunks(255)) {
        let (mut l, mut u) = (0u8, 0u8);
        for (&p, &b) in before.iter().zip(after) {
            l += u8::from(alnum(b) & space(p));
            u += u8::from((alnum(b) & !alnum(p)) | (b >= 0xC0));
        }
        lower += usize::from(l);
        upper += usize::from(u);
    }
    (lower, upper)
}

/// Byte ranges of the paragraphs of `text` (split at line breaks).
fn paragraphs(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    text.split('\n').map(move |line| {
        let range = (at, at + line.len());
        at += line.len() + 1;
        range
    })
}

/// The byte range of the sentence(s) holding `start..end`. A sentence never
/// runs across a line break (UAX #29 breaks after every one), so only the
/// lines holding the span are segmented.
fn sentence_around(text: &str, start: usize, end: usize) -> (usize, usize) {
    let from = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let to = text[end..].find('\n').map_or(text.len(), |i| end + i);
    if (from, to) == (start, end) {
        // Whole lines (a paragraph too long): their sentences cover them.
        return (start, end);
    }
    let mut range = (start, end);
    for (s, sentence) in text[from..to].split_sentence_bound_indices() {
        let (s, e) = (from + s, from + s + sentence.len());
        if s > end {
            break;
        }
        if s <= start && start < e {
            range.0 = s;
        }
        if s < end && end <= e {
            range.1 = e;
        }
    }
    range
}

/// Applies a rule's `rewrite` pairs to `sentence`; `None` when they do not
/// change it. The result is tidied: spaces collapsed, a capital first letter.
fn rewrite(pairs: &[(Regex, String)], sentence: &str, name: &str) -> Option<String> {
    if pairs.is_empty() {
        return None;
    }
    let sentence = sentence.trim();
    let mut out = sentence.to_string();
    for (re, with) in pairs {
        let with = with.replace("{name}", name);
        let current = out.clone();
        out = re
            .replace_all(&current, |caps: &regex::Captures<'_>| {
                let mut r = String::new();
                caps.expand(&with, &mut r);
                // Mid-sentence, a replacement starts in lower case ("Hi Ana,
                // to recap, ..."); at the start the whole is capitalised below.
                let at = caps.get(0).map_or(0, |m| m.start());
                let mid_sentence = current[..at].trim_end().chars().last().is_some_and(|c| !".!?".contains(c));
                if mid_sentence && !r.starts_with("I ") && !r.starts_with("I'") {
                    let mut chars = r.chars();
                    if let Some(first) = chars.next() {
                        r = first.to_lowercase().chain(chars).collect();
                    }
                }
                r
            })
            .into_owned();
    }
    if out == sentence {
        return None;
    }
    let out = out.split_whitespace().collect::<Vec<_>>().join(" ");
    let out =
        out.trim_matches(|c: char| c == ',' || c == ';' || c.is_whitespace()).replace(" ,", ",").replace(" .", ".");
    if !out.chars().any(char::is_alphanumeric) {
        return Some(String::new());
    }
    let mut chars = out.chars();
    let first = chars.next().expect("not empty");
    Some(first.to_uppercase().chain(chars).collect())
}

/// The first word of a display name, without punctuation: "Dr. Ana López" is
/// taken as written, "Alice Smith" gives "Alice".
pub fn first_name(name: &str) -> Option<&str> {
    name.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .find(|w| !w.is_empty() && !matches!(w.to_lowercase().as_str(), "mr" | "mrs" | "ms" | "dr" | "prof"))
}

/// Whether `needle` occurs in `hay` as a whole word, ignoring case.
pub fn contains_word(hay: &str, needle: &str) -> bool {
    let Some(first) = needle.chars().next() else { return false };
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let whole = |at: usize, len: usize| !word(hay[..at].chars().next_back()) && !word(hay[at + len..].chars().next());
    if needle.is_ascii() {
        // Candidates are found with memchr on the first letter's two cases;
        // the neighbours may be any character.
        let (hay_bytes, needle) = (hay.as_bytes(), needle.as_bytes());
        let (lower, upper) = (needle[0].to_ascii_lowercase(), needle[0].to_ascii_uppercase());
        return memchr::memchr2_iter(lower, upper, hay_bytes).any(|at| {
            hay_bytes.get(at..at + needle.len()).is_some_and(|h| h.eq_ignore_ascii_case(needle))
                && whole(at, needle.len())
        });
    }
    let target: Vec<char> = needle.chars().flat_map(char::to_lowercase).collect();
    let first: Vec<char> = first.to_lowercase().collect();
    let needle_chars = needle.chars().count();
    hay.char_indices().any(|(at, c)| {
        if !c.to_lowercase().eq(first.iter().copied()) {
            return false;
        }
        let len: usize = hay[at..].chars().take(needle_chars).map(char::len_utf8).sum();
        hay[at..at + len].chars().count() == needle_chars
            && hay[at..at + len].chars().flat_map(char::to_lowercase).eq(target.iter().copied())
            && whole(at, len)
    })
}

/// Letters and capital letters in `text` (bytes on ASCII text).
fn letters_and_capitals(text: &str) -> (usize, usize) {
    let (mut letters, mut upper) = (0usize, 0usize);
    // ASCII letters, counted 255 bytes at a time so the loop vectorises
    // (bytes of non-ASCII characters are never counted here).
    for chunk in text.as_bytes().chunks(255) {
        let (mut l, mut u) = (0u8, 0u8);
        for &b in chunk {
            l += u8::from((b | 0x20).wrapping_sub(b'a') < 26);
            u += u8::from(b.wrapping_sub(b'A') < 26);
        }
        letters += usize::from(l);
        upper += usize::from(u);
    }
    if !text.is_ascii() {
        let mut rest = text;
        while let Some(at) = rest.bytes().position(|b| b >= 0x80) {
            let c = rest[at..].chars().next().expect("a character starts at a non-ASCII lead byte");
            if c.is_alphabetic() {
                letters += 1;
                upper += usize::from(c.is_uppercase());
            }
            rest = &rest[at + c.len_utf8()..];
        }
    }
    (letters, upper)
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
        CheckContext { customer_name: name, first, late, ..CheckContext::default() }
    }

    fn rule_ids(result: &CheckResult) -> Vec<&str> {
        result.findings.iter().map(|f| f.rule.as_str()).collect()
    }

    const GOOD: &str = "Hi Alice,\n\nThanks for reaching out about the invoice. I've corrected the amount and \
                        you'll see the new total within the hour.\n\nLet me know if anything else comes up.\nBest,\nSam";

    #[test]
    fn whole_words_are_found_ignoring_case_in_ascii_and_beyond() {
        assert!(contains_word("Hi ANA, thanks", "ana"));
        assert!(!contains_word("Hi Anabel", "Ana"));
        assert!(!contains_word("Banana", "ana"));
        assert!(contains_word("ana", "Ana") && !contains_word("an", "Ana") && !contains_word("x", ""));
        assert!(contains_word("Hola ZOË, ¿qué tal?", "Zoë"));
        assert!(!contains_word("Zoëlla", "Zoë"));
        assert!(contains_word("Привет, Анна!", "анна"));
        assert_eq!(letters_and_capitals("ABc d!"), (4, 2));
        assert_eq!(letters_and_capitals("ÉCOLE é"), (6, 5));
    }

    #[test]
    fn counting_words_up_to_a_bound_agrees_with_counting_them_all() {
        for text in [
            "",
            "one",
            "don't stop",
            "a-b c_d 3.5 e.g. x",
            "  Zoë’s café, naïve  ",
            "日本語のテキスト",
            "¡Hola! ¿Qué tal?",
        ] {
            let all = words(text) as usize;
            for n in 0..all + 3 {
                assert_eq!(at_least_words(text, n), all >= n, "{text:?} n={n}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn word_bounds_hold_the_word_count(text in "[a-zA-Z0-9 '._:,;\n\t\u{00e9}\u{00c9}\u{2019}\u{65e5}\u{672c}\u{00a0}!?-]{0,40}") {
            let (lower, upper) = word_bounds(text.as_bytes());
            let all = words(&text) as usize;
            proptest::prop_assert!(lower <= all && all <= upper, "{text:?}: {lower} <= {all} <= {upper}");
            for n in 0..all + 2 {
                proptest::prop_assert_eq!(at_least_words(&text, n), all >= n);
            }
        }

        #[test]
        fn letters_and_capitals_count_every_character(text in "[a-zA-Z0-9 !\u{00e9}\u{00c9}\u{0416}\u{0436}\u{65e5}\u{2019}]{0,300}") {
            let letters = text.chars().filter(|c| c.is_alphabetic()).count();
            let upper = text.chars().filter(|c| c.is_alphabetic() && c.is_uppercase()).count();
            proptest::prop_assert_eq!(letters_and_capitals(&text), (letters, upper));
        }
    }

    #[test]
    fn the_one_pass_gives_the_verdicts_and_spans_of_searching_each_pattern() {
        // Every labelled reply and a few thousand generated ones, in their
        // contexts: the one pass (what matched, where forbidden phrases end,
        // read back to their starts) against each pattern searched alone.
        let r = rules();
        let corpus = crate::bench::generate::replies(3000, 5);
        let mut compared = 0;
        for reply in &corpus {
            let (text, ctx) = (&reply.labelled.text, reply.labelled.context());
            let result = r.check(text, ctx);
            compared += usize::from(!result.findings.is_empty());
            assert_eq!(result, r.judge(text, ctx, None), "{text:?}");
        }
        assert!(compared > 1000, "only {compared} replies had findings");
    }

    #[test]
    fn a_reply_the_one_pass_cannot_finish_is_searched_pattern_by_pattern() {
        let toml = "[[rule]]\nid = \"x\"\nseverity = \"warning\"\nrequire = '(?i)thanks'\nmessage = \"m\"\n";
        let mut r = RuleSet::parse(toml, "r.toml", 70).unwrap();
        // A Unicode word boundary (the loader leaves none): the lazy DFA
        // stops at the first non-ASCII byte and the pass gives up.
        let pass = OnePass::new(&[r"(?i)\bthanks\b".to_string()], &[false]).unwrap();
        let mut scratch = pass.take();
        let (met, unmet) = ("Hi Zoë, thanks for writing. Best, Sam", "Hi Zoë, got it. Best, Sam");
        assert!(!pass.search(met, &mut scratch));
        assert!(pass.search("Hi Sam, thanks. Best, Ana", &mut scratch));
        pass.put(scratch);
        r.one_pass = Some(Arc::new(pass));
        for (text, ids) in [(met, vec![]), (unmet, vec!["x"])] {
            let result = r.check(text, ctx(Some("Zoë"), true, false));
            assert_eq!(rule_ids(&result), ids, "{text}");
            assert_eq!(result, r.judge(text, ctx(Some("Zoë"), true, false), None));
        }
    }

    #[test]
    fn forbidden_phrases_past_the_kept_ends_are_still_found() {
        // More quoted matches than the pass keeps the ends of, then one said.
        let quoted = "\"Calm down!!\" ".repeat(one_pass::ENDS_KEPT + 5);
        let text = format!("Hi Ana,\n\nYou wrote {quoted}and I hear you. Wow!! Calm down.\n\nBest,\nSam");
        let r = rules();
        let result = r.check(&text, ctx(Some("Ana"), false, false));
        assert_eq!(result, r.judge(&text, ctx(Some("Ana"), false, false), None));
        let found = |id: &str| result.findings.iter().find(|f| f.rule == id).map(|f| f.sentence.clone());
        assert_eq!(found("no-dismissive").as_deref(), Some("Calm down."));
        assert_eq!(found("no-exclamation-strings").as_deref(), Some("Wow!!"));
    }

    #[test]
    fn require_patterns_split_at_alternatives_anchored_at_either_end() {
        // Anchored alternatives are searched alone; the rest stay one pattern.
        let (ends, rest) = split_anchored(r"\Ahi|bye\z|(thanks|cheers)");
        assert_eq!(ends, [r"(?:\A(?:hi))", r"(?:(?:bye)\z)"]);
        assert_eq!(rest.as_deref(), Some("(?:((?:(?:thanks)|(?:cheers))))"));
        // A whole pattern anchored at the start; none anchored (an inner `\z`
        // does not anchor the pattern).
        assert_eq!(split_anchored(r"(?i)\A(?-i:[^0-9A-Za-z_])*(hi|hello)").0.len(), 1);
        assert_eq!(split_anchored(r"(a|b)(c\z|d)").0.len(), 0);
        // Each part means what its alternative meant.
        for (pattern, text, expected) in [
            (r"\Ahi|bye\z|(thanks|cheers)", "oh hi, bye", true),
            (r"\Ahi|bye\z|(thanks|cheers)", "oh hi, bye!", false),
            (r"\Ahi|bye\z|(thanks|cheers)", "hi!", true),
            (r"\Ahi|bye\z|(thanks|cheers)", "cheers!", true),
        ] {
            let (ends, rest) = split_anchored(pattern);
            let found = ends.iter().chain(&rest).any(|p| Regex::new(p).expect("a part compiles").is_match(text));
            assert_eq!(found, expected, "{pattern} on {text:?}");
        }
    }

    #[test]
    fn word_classes_become_ascii() {
        assert_eq!(ascii_classes(r"(?i)\bsorry\b"), r"(?i)(?-u:\b)sorry(?-u:\b)");
        assert_eq!(
            ascii_classes(r"\w+ [\w -]\d[^\d]\W"),
            r"(?-u:\w)+ [[:word:] -](?-u:\d)[^[:digit:]](?-i:[^0-9A-Za-z_])"
        );
        assert_eq!(ascii_classes(r"\D[\W\D]"), r"(?-i:[^0-9])[[:^word:][:^digit:]]");
        assert_eq!(ascii_classes(r"[\]\b]\b\\b"), r"[\]\b](?-u:\b)\\b");
        assert_eq!(ascii_classes(r"[]b]\b[^]x]\B"), r"[]b](?-u:\b)[^]x](?-u:\B)");
        // Word starts and ends, in either spelling.
        assert_eq!(
            ascii_classes(r"\b{start}no\b{end-half} \<way\>"),
            r"(?-u:\b{start})no(?-u:\b{end-half}) (?-u:\<)way(?-u:\>)"
        );
        // An unclosed one is a pattern error naming the rule, not a panic.
        let errors = RuleSet::parse("[[rule]]\nid = \"x\"\nforbid = 'no\\b{start'\nmessage = \"m\"\n", "r.toml", 70)
            .unwrap_err();
        assert!(
            errors.iter().any(|e| e.to_string().contains("rule \"x\": `forbid` is not a valid regex")),
            "{errors:?}"
        );
        let text = "Hi Zoë, it’s no way to treat a café owner. Best, Sam";
        for forbid in [r"\b{start}no way\b{end}", r"\<no way\>"] {
            let toml = format!("[[rule]]\nid = \"x\"\nseverity = \"warning\"\nforbid = '{forbid}'\nmessage = \"m\"\n");
            let r = RuleSet::parse(&toml, "r.toml", 70).unwrap_or_else(|e| panic!("{forbid}: {e:?}"));
            let result = r.check(text, ctx(Some("Zoë"), true, false));
            assert_eq!(rule_ids(&result), ["x"], "{forbid}");
            assert_eq!(result, r.judge(text, ctx(Some("Zoë"), true, false), None), "{forbid}");
        }
        // The same verdicts with non-ASCII text around the phrases.
        let r = rules();
        let text = "Hi Zoë,\n\nThat’s user error — café prices aside.\n\nBest,\nSam";
        assert!(rule_ids(&r.check(text, ctx(Some("Zoë Ng"), true, false))).contains(&"no-blame"));
    }

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
            // A problem recognised and left there.
            (
                "Hi Bob, we are aware of the crashes on Android. Best, Sam",
                Some("Bob"),
                false,
                false,
                &["next-step"],
                false,
            ),
            (
                "Hi Bob, we are aware of the crashes; I'll update you by 3 pm. Best, Sam",
                Some("Bob"),
                false,
                false,
                &[],
                true,
            ),
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
            // Late first reply without an apology: one miss passes.
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

    fn verdict(text: &str, c: CheckContext<'_>) -> (bool, Vec<String>) {
        let r = rules().check(text, c);
        (r.passed, r.findings.into_iter().map(|f| f.rule).collect())
    }

    /// The calibration promised in the header of `responses/rules.toml`.
    #[test]
    fn the_default_weights_keep_their_promises() {
        let bob = Some("Bob Stone");
        // Deflection, blame and condescension each fail a reply that is
        // otherwise perfect.
        for phrase in [
            "That isn't my area, you'll have to take that up with another team.",
            "It's your own fault the import failed.",
            "Obviously the import needs a CSV file.",
        ] {
            let text = format!("Hi Bob,\n\nThanks for writing. {phrase} I've attached the guide.\n\nBest,\nSam");
            let (passed, ids) = verdict(&text, ctx(bob, true, false));
            assert!(!passed && ids.len() == 1, "{text}: {ids:?}");
        }
        // Greeting, name and sign-off missing together fail; any two pass.
        let (passed, ids) = verdict("I've re-run the export and it is in your inbox.", ctx(bob, false, false));
        assert!(!passed && ids == ["greeting", "customer-name", "sign-off"], "{ids:?}");
        let (passed, _) = verdict("Bob, I've re-run the export and it is in your inbox.", ctx(bob, false, false));
        assert!(passed);
        // A late first reply with neither apology nor acknowledgement fails.
        let late = "Hi Bob,\n\nI've re-run the export and it is in your inbox.\n\nBest,\nSam";
        let (passed, ids) = verdict(late, ctx(bob, true, true));
        assert!(!passed && ids == ["acknowledge", "apology-when-late"], "{ids:?}");
        let (passed, _) = verdict(&late.replace("I've", "Sorry for the wait. I've"), ctx(bob, true, true));
        assert!(passed);
        // A good reply with one small miss passes.
        let (passed, ids) = verdict(
            "Hi Bob,\n\nThanks for asking. I'll look into the export and get back to you.\n\nBest,\nSam",
            ctx(bob, true, false),
        );
        assert!(passed && ids == ["follow-up-needs-time"], "{ids:?}");
    }

    /// Every phrasing the issue names, inside an otherwise good reply.
    #[test]
    fn the_named_behaviours_are_caught() {
        let table: &[(&str, &str)] = &[
            ("It isn't my area.", "deflection"),
            ("You'll have to take that up with another team.", "deflection"),
            ("Someone will get round to it.", "deflection"),
            ("Go and ask elsewhere.", "deflection"),
            ("You should have updated first.", "no-blame"),
            ("You clearly missed the setting.", "condescension"),
            ("As explained several times, the limit is ten.", "no-dismissive"),
            ("It's all in the manual.", "condescension"),
            ("Obviously the limit is ten.", "condescension"),
            ("Simply restart it.", "condescension"),
            ("Look it up yourself.", "condescension"),
            ("Don't write to us again.", "condescension"),
            ("Per my earlier message, the limit is ten.", "no-dismissive"),
            ("We can't do that.", "dead-end"),
            ("That's impossible.", "dead-end"),
            ("There's nothing we can do.", "dead-end"),
            ("I'm sorry you feel that way.", "condescension"),
            ("Good luck with that.", "sarcasm"),
        ];
        for (phrase, rule) in table {
            let text = format!("Hi Ana,\n\n{phrase}\n\nBest,\nSam");
            let (passed, ids) = verdict(&text, ctx(Some("Ana"), false, false));
            assert!(!passed && ids.iter().any(|id| id == rule), "{phrase}: {ids:?}");
        }
    }

    #[test]
    fn negations_quotes_and_alternatives_are_not_held_against_the_agent() {
        for text in [
            "Hi Ana, this is not your fault: the link had expired. Here is a new one. Best, Sam",
            "Hi Ana, you wrote \"obviously nobody reads these\"; I read it, and the booking is fixed. Best, Sam",
            "Hi Ana,\n> you should have warned me\nYou're right, and I've added a warning. Best, Sam",
            "Hi Ana, we can't refund the plan, but I can move you to monthly billing today. Best, Sam",
            "Hi Ana, billing is handled by finance, so I've passed this to Marta, who will reply by 3 pm. Best, Sam",
        ] {
            let (passed, ids) = verdict(text, ctx(Some("Ana"), false, false));
            assert!(passed && ids.is_empty(), "{text}: {ids:?}");
        }
    }

    #[test]
    fn chat_messages_after_the_first_need_no_greeting_name_or_sign_off() {
        let chat = |first| CheckContext { customer_name: Some("Ana"), first, chat: true, ..CheckContext::default() };
        assert_eq!(verdict("On it, checking the logs now.", chat(false)), (true, vec![]));
        let (passed, ids) = verdict("Checking the logs now.", chat(true));
        assert!(!passed && ids.contains(&"greeting".to_string()), "{ids:?}");
        // The name used earlier in the thread counts on email too.
        let earlier = CheckContext { customer_name: Some("Ana"), name_used_earlier: true, ..CheckContext::default() };
        assert_eq!(verdict("Hello again, it is fixed. Best, Sam", earlier), (true, vec![]));
    }

    #[test]
    fn length_rules_judge_curt_answers_and_walls_of_text() {
        let long_ask = CheckContext { customer_name: Some("Ana"), customer_words: 80, ..CheckContext::default() };
        let (passed, ids) = verdict("Hi Ana, refunded. Best, Sam", long_ask);
        assert!(passed && ids == ["curt"], "{ids:?}");
        let short_ask = CheckContext { customer_words: 10, ..long_ask };
        assert_eq!(verdict("Hi Ana, refunded. Best, Sam", short_ask), (true, vec![]));
        let wall = format!("Hi Ana,\n\n{}\n\nBest,\nSam", "I've checked the account and the logs and ".repeat(20));
        let r = rules().check(&wall, ctx(Some("Ana"), false, false));
        let f = r.findings.iter().find(|f| f.rule == "wall-of-text").expect("wall-of-text");
        assert!(r.passed && f.start == 9 && f.end > 300, "{f:?}");
    }

    #[test]
    fn findings_show_the_sentence_and_a_mechanical_rewrite() {
        let text = "Hi Ana,\n\nAs I already said, restart it. It works after that.\n\nBest,\nSam";
        let r = rules().check(text, ctx(Some("Ana"), false, false));
        let f = &r.findings[0];
        assert_eq!((f.rule.as_str(), f.sentence.as_str()), ("no-dismissive", "As I already said, restart it."));
        assert_eq!(f.rewrite.as_deref(), Some("To recap, restart it."));
        let feedback = r.feedback(text);
        assert!(feedback.contains("In: \"As I already said, restart it.\""), "{feedback}");
        assert!(feedback.contains("Rewrite: \"To recap, restart it.\""), "{feedback}");
        let r = rules().check("Hi Ana, fixed. Whatever. Best, Sam", ctx(Some("Ana"), false, false));
        assert_eq!(r.findings[0].rewrite.as_deref(), Some(""));
        assert!(r.feedback("Hi Ana, fixed. Whatever. Best, Sam").contains("leave this sentence out"));
        let r = rules().check("Hi Ana, done!!! Best, Sam", ctx(Some("Ana"), false, false));
        assert_eq!(r.findings[0].rewrite.as_deref(), Some("Hi Ana, done!"));
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
