//! Message templates from `responses/`: plain text with `{name}` placeholders.
//!
//! The defaults are the files in `responses/`, built into the binary; a team
//! points `[responses] dir` at its own copies. Rendering is pure.

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
    /// The HTML layout of mail: `{body}` (the text as paragraphs), `{ticket}`.
    pub email_html: String,
}

impl Templates {
    /// The names of the template files, in field order.
    pub const FILES: [&'static str; 9] = [
        "acknowledgement.txt",
        "nudge_warning.txt",
        "nudge_breach.txt",
        "escalation.txt",
        "survey.txt",
        "detractor_alert.txt",
        "feedback.txt",
        "held.txt",
        "email.html",
    ];

    /// The templates shipped in `responses/`.
    pub fn builtin() -> Templates {
        Templates {
            acknowledgement: include_str!("../../responses/acknowledgement.txt").into(),
            nudge_warning: include_str!("../../responses/nudge_warning.txt").into(),
            nudge_breach: include_str!("../../responses/nudge_breach.txt").into(),
            escalation: include_str!("../../responses/escalation.txt").into(),
            survey: include_str!("../../responses/survey.txt").into(),
            detractor_alert: include_str!("../../responses/detractor_alert.txt").into(),
            feedback: include_str!("../../responses/feedback.txt").into(),
            held: include_str!("../../responses/held.txt").into(),
            email_html: include_str!("../../responses/email.html").into(),
        }
    }

    /// Builds the set from file contents, `lookup(file name)` giving `None`
    /// where the team keeps the built-in text.
    pub fn with_overrides(mut lookup: impl FnMut(&str) -> Option<String>) -> Templates {
        let mut t = Templates::builtin();
        let fields = [
            &mut t.acknowledgement,
            &mut t.nudge_warning,
            &mut t.nudge_breach,
            &mut t.escalation,
            &mut t.survey,
            &mut t.detractor_alert,
            &mut t.feedback,
            &mut t.held,
            &mut t.email_html,
        ];
        for (field, file) in fields.into_iter().zip(Templates::FILES) {
            if let Some(text) = lookup(file) {
                *field = text;
            }
        }
        t
    }
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
        let t = Templates::with_overrides(|f| (f == "survey.txt").then(|| "custom".to_string()));
        assert_eq!(t.survey, "custom");
        assert_eq!(t.acknowledgement, Templates::builtin().acknowledgement);
    }
}
