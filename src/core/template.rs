//! Message templates from `responses/`: plain text with `{name}` placeholders.
//!
//! The defaults are the files in `responses/`, built into the binary; a team
//! points `[responses] dir` at its own copies. Every template is checked when
//! it is loaded: a placeholder it may not use (a typo such as `{nmae}`) is a
//! configuration error naming the file, not a literal `{nmae}` in a
//! customer's mail. Rendering is pure.

use std::collections::BTreeMap;

use super::router::ActionKind;

/// Every message concierge writes on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub acknowledgement: String,
    pub nudge_warning: String,
    pub nudge_breach: String,
    pub escalation: String,
    pub survey: String,
    pub detractor_alert: String,
    pub feedback: String,
    pub held: String,
    /// A reply taken back from a chat thread (enforce mode), for its agent.
    pub held_chat: String,
    pub announcement: String,
    /// The HTML layout of mail: `{body}` (the text as paragraphs), `{ticket}`.
    pub email_html: String,
    /// Mail subjects by action kind (`responses/email_subjects.toml`).
    pub email_subjects: BTreeMap<ActionKind, String>,
}

/// Each text template's file and the placeholders it may use.
const TEXT_FILES: [(&str, &[&str]); 11] = [
    ("acknowledgement.txt", &["customer_name", "due", "ticket", "target"]),
    ("nudge_warning.txt", &["ticket", "customer", "due", "remaining", "waiting_for", "target_name"]),
    ("nudge_breach.txt", &["ticket", "customer", "due", "waiting_for", "target_name"]),
    ("escalation.txt", &["ticket", "customer", "due", "overdue", "level", "waiting_for", "target_name"]),
    ("survey.txt", &["customer_name", "ticket", "token", "score_links"]),
    ("detractor_alert.txt", &["customer", "ticket", "score", "comment", "agent", "followup"]),
    ("feedback.txt", &["ticket", "feedback"]),
    ("held.txt", &["ticket", "feedback"]),
    ("held_chat.txt", &["ticket", "feedback", "original"]),
    ("announcement.txt", &["ticket", "customer", "text", "due"]),
    ("email.html", &["body", "ticket"]),
];

const SUBJECTS_FILE: &str = "email_subjects.toml";

impl Templates {
    /// The names of the template files.
    pub const FILES: [&'static str; 12] = [
        "acknowledgement.txt",
        "nudge_warning.txt",
        "nudge_breach.txt",
        "escalation.txt",
        "survey.txt",
        "detractor_alert.txt",
        "feedback.txt",
        "held.txt",
        "held_chat.txt",
        "announcement.txt",
        "email.html",
        SUBJECTS_FILE,
    ];

    /// The templates shipped in `responses/`.
    pub fn builtin() -> Templates {
        Templates::with_overrides(|_| None).expect("the built-in templates are valid")
    }

    /// Builds the set from file contents, `lookup(file name)` giving `None`
    /// where the team keeps the built-in text. Every problem comes back as
    /// `file: what is wrong and how to fix it`.
    pub fn with_overrides(mut lookup: impl FnMut(&str) -> Option<String>) -> Result<Templates, Vec<String>> {
        let builtin = [
            include_str!("../../responses/acknowledgement.txt"),
            include_str!("../../responses/nudge_warning.txt"),
            include_str!("../../responses/nudge_breach.txt"),
            include_str!("../../responses/escalation.txt"),
            include_str!("../../responses/survey.txt"),
            include_str!("../../responses/detractor_alert.txt"),
            include_str!("../../responses/feedback.txt"),
            include_str!("../../responses/held.txt"),
            include_str!("../../responses/held_chat.txt"),
            include_str!("../../responses/announcement.txt"),
            include_str!("../../responses/email.html"),
        ];
        let mut problems = Vec::new();
        let mut texts = Vec::with_capacity(builtin.len());
        for ((file, allowed), default) in TEXT_FILES.iter().zip(builtin) {
            let text = lookup(file).unwrap_or_else(|| default.to_string());
            problems.extend(unknown_placeholders(&text, allowed).map(|p| {
                format!(
                    "{file}: unknown placeholder {{{p}}}; the placeholders of this template are {{{}}}",
                    allowed.join("}, {")
                )
            }));
            texts.push(text);
        }
        let subjects =
            lookup(SUBJECTS_FILE).unwrap_or_else(|| include_str!("../../responses/email_subjects.toml").into());
        let email_subjects = parse_subjects(&subjects, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut t = texts.into_iter();
        let mut next = || t.next().expect("one text per file");
        Ok(Templates {
            acknowledgement: next(),
            nudge_warning: next(),
            nudge_breach: next(),
            escalation: next(),
            survey: next(),
            detractor_alert: next(),
            feedback: next(),
            held: next(),
            held_chat: next(),
            announcement: next(),
            email_html: next(),
            email_subjects,
        })
    }

    /// The mail subject of an action of `kind` about `ticket` (the week for a summary).
    pub fn email_subject(&self, kind: ActionKind, ticket: &str) -> String {
        match self.email_subjects.get(&kind) {
            Some(t) => render(t, &[("ticket", ticket), ("week", ticket)]),
            None => format!("[#{ticket}] {}", kind.as_str()),
        }
    }
}

/// `email_subjects.toml`: one string per action kind; unknown kinds and
/// placeholders are problems.
fn parse_subjects(text: &str, problems: &mut Vec<String>) -> BTreeMap<ActionKind, String> {
    let mut out = BTreeMap::new();
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{SUBJECTS_FILE}: {}", e.message().trim()));
            return out;
        }
    };
    for (key, value) in table {
        let Some(kind) = ActionKind::parse(&key) else {
            let kinds: Vec<&str> = ActionKind::ALL.iter().map(|k| k.as_str()).collect();
            problems.push(format!("{SUBJECTS_FILE}: unknown kind `{key}`; the kinds are {}", kinds.join(", ")));
            continue;
        };
        let Some(subject) = value.as_str() else {
            problems.push(format!("{SUBJECTS_FILE}: `{key}` must be a string"));
            continue;
        };
        let allowed: &[&str] = if kind == ActionKind::Summary { &["week"] } else { &["ticket"] };
        for p in unknown_placeholders(subject, allowed) {
            problems
                .push(format!("{SUBJECTS_FILE}: `{key}` has an unknown placeholder {{{p}}}; use {{{}}}", allowed[0]));
        }
        out.insert(kind, subject.to_string());
    }
    out
}

/// The `{name}` placeholders in `text` that are not in `allowed`. A `{`
/// not followed by a name and `}` is plain text.
fn unknown_placeholders<'a>(text: &'a str, allowed: &'a [&str]) -> impl Iterator<Item = &'a str> + 'a {
    text.split('{').skip(1).filter_map(move |after| {
        let name = &after[..after.find('}')?];
        let is_name = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        (is_name && !allowed.contains(&name)).then_some(name)
    })
}

/// Replaces each `{key}` with its value; unknown placeholders stay as written.
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value =
            after.find('}').and_then(|close| vars.iter().find(|(k, _)| *k == &after[..close]).map(|(_, v)| (v, close)));
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_unknown_ones_kept() {
        let out = render("Hi {name}, {unknown} {name}! {", &[("name", "Ana")]);
        assert_eq!(out, "Hi Ana, {unknown} Ana! {");
    }

    #[test]
    fn overrides_replace_only_the_files_given() {
        let t = Templates::with_overrides(|f| (f == "survey.txt").then(|| "custom {token}".to_string())).unwrap();
        assert_eq!(t.survey, "custom {token}");
        assert_eq!(t.acknowledgement, Templates::builtin().acknowledgement);
    }

    #[test]
    fn an_unknown_placeholder_or_subject_kind_names_the_file_and_the_fix() {
        let errors = Templates::with_overrides(|f| match f {
            "acknowledgement.txt" => Some("Hi {custmer_name}, see you {due}. { not a placeholder }".into()),
            "email_subjects.toml" => Some("acknowledgement = \"Got it {tiket}\"\nfax = \"x\"\n".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("acknowledgement.txt: unknown placeholder {custmer_name}"), "{}", errors[0]);
        assert!(errors[0].contains("{customer_name}"), "{}", errors[0]);
        assert!(errors.iter().any(|e| e.contains("{tiket}")) && errors.iter().any(|e| e.contains("`fax`")));
    }

    #[test]
    fn every_kind_has_a_built_in_subject() {
        let t = Templates::builtin();
        for kind in ActionKind::ALL {
            assert!(t.email_subjects.contains_key(&kind), "{kind:?}");
        }
        assert_eq!(t.email_subject(ActionKind::Acknowledgement, "K7Q2"), "We have your request [#K7Q2]");
        assert_eq!(t.email_subject(ActionKind::Summary, "2026-W47"), "Weekly support summary 2026-W47");
    }
}
