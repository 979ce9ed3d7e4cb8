//! Outbound mail: an outbox action turned into a message. Pure.
//!
//! Every message comes from the support address, carries the ticket token in
//! its subject (`[#1042]`) so a reply threads back even without headers, is
//! marked `Auto-Submitted` (`auto-replied` for acknowledgements,
//! `auto-generated` otherwise) so well-behaved systems never answer it, and has
//! a Message-ID derived from the outbox key: sending the same action again
//! after a crash yields the same Message-ID, which receivers deduplicate.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use sha2::{Digest, Sha256};

use crate::channels::email::settings::{AddressPattern, EmailSettings};
use crate::core::router::{ActionKind, Recipient};
use crate::core::template::Templates;
use crate::store::OutboxItem;

/// Why an action cannot be mailed; each names the setting to fix. Permanent:
/// the same row would fail the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("no address to send \"{kind}\" for ticket {thread} to \"{to}\": {fix}")]
    NoRecipient { kind: &'static str, thread: String, to: String, fix: &'static str },
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// The addresses an outbox recipient stands for.
pub fn recipients(item: &OutboxItem, s: &EmailSettings) -> Result<Vec<String>, ComposeError> {
    let none = |fix| ComposeError::NoRecipient {
        kind: item.kind.as_str(),
        thread: item.thread.clone(),
        to: item.recipient.as_str().to_string(),
        fix,
    };
    let list: Vec<String> = match &item.recipient {
        Recipient::Agents => s
            .agents
            .iter()
            .filter_map(|p| match p {
                AddressPattern::Exact(a) => Some(a.clone()),
                AddressPattern::Domain(_) => None,
            })
            .collect(),
        Recipient::Managers => s.managers.clone(),
        Recipient::Customer(id) | Recipient::Agent(id) => {
            if !id.contains('@') {
                return Err(none("it is not an email address (a conversation of another channel?)"));
            }
            vec![id.to_ascii_lowercase()]
        }
    };
    if list.is_empty() {
        return Err(none(if item.recipient == Recipient::Agents {
            "list at least one agent address (not only *@domain) in email.agents"
        } else {
            "add addresses to email.managers"
        }));
    }
    Ok(list)
}

/// `<32 hex digits@support-domain>` for an outbox key.
pub fn message_id(key: &str, support_address: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex = crate::core::text::hex(&digest[..16]);
    let domain = support_address.rsplit_once('@').map_or("concierge.invalid", |(_, d)| d);
    format!("<{hex}@{domain}>")
}

/// A plain-text body as HTML in the layout (`responses/email.html`): one
/// paragraph per blank-line-separated block, web addresses as links, and
/// lines of the form `N  URL` (a survey's one-click scores) as a row of
/// buttons.
pub fn html(layout: &str, text: &str, ticket: &str) -> String {
    let esc = crate::core::text::html_escape;
    let mut blocks = Vec::new();
    for block in text.split("\n\n") {
        let (mut lines, mut buttons) = (Vec::new(), Vec::new());
        for line in block.trim().lines() {
            match score_link(line) {
                Some((n, url)) => buttons.push(format!(
                    "<a href=\"{}\" style=\"display:inline-block;min-width:28px;margin:2px;padding:8px 4px;\
                     border:1px solid #c7ccd1;border-radius:6px;text-align:center;color:#222;\
                     text-decoration:none;font-weight:600\">{n}</a>",
                    esc(url)
                )),
                None => lines.push(linkify(&esc(line))),
            }
        }
        if !lines.is_empty() {
            blocks.push(format!("<p>{}</p>", lines.join("<br>")));
        }
        if !buttons.is_empty() {
            blocks.push(format!("<p>{}</p>", buttons.concat()));
        }
    }
    crate::core::template::render(layout, &[("body", &blocks.join("\n")), ("ticket", &esc(ticket))])
}

/// `N  URL` with N a score from 0 to 10.
fn score_link(line: &str) -> Option<(u8, &str)> {
    let (n, url) = line.trim().split_once(char::is_whitespace)?;
    let n: u8 = n.parse().ok().filter(|n| *n <= 10)?;
    let url = url.trim();
    (url.starts_with("https://") || url.starts_with("http://")).then_some((n, url)).filter(|_| !url.contains(' '))
}

/// Web addresses in already-escaped text as links.
fn linkify(escaped: &str) -> String {
    let mut out = String::new();
    for (i, word) in escaped.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let trimmed = word.trim_end_matches(['.', ',', ')', ';', ':']);
        if trimmed.starts_with("https://") || trimmed.starts_with("http://") {
            out.push_str(&format!("<a href=\"{trimmed}\">{trimmed}</a>{}", &word[trimmed.len()..]));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// Builds the message for `item`; `in_reply_to` threads it under a message of
/// the conversation when known; `reply_to` (agents' mail) is where replies go. Subjects and the HTML layout come from the
/// templates; an item with HTML of its own (the weekly summary) uses that.
pub fn compose(
    item: &OutboxItem,
    s: &EmailSettings,
    templates: &Templates,
    in_reply_to: Option<&str>,
    reply_to: Option<&str>,
) -> Result<Message, ComposeError> {
    let build = |e: &dyn std::fmt::Display| ComposeError::Build(e.to_string());
    let from: Mailbox = format!("Support <{}>", s.address).parse().map_err(|e| build(&e))?;
    let mut b = Message::builder()
        .from(from)
        .subject(templates.email_subject(item.kind, &item.thread))
        .message_id(Some(message_id(&item.key, &s.address)));
    // An agent's relayed reply is a person's answer, not automatic mail.
    if item.kind != ActionKind::Reply {
        b = b.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            if item.kind == ActionKind::Acknowledgement { "auto-replied" } else { "auto-generated" }.into(),
        ));
    }
    for to in recipients(item, s)? {
        b = b.to(to.parse().map_err(|e| build(&e))?);
    }
    if let Some(address) = reply_to {
        b = b.reply_to(address.parse().map_err(|e| build(&e))?);
    }
    if let Some(id) = in_reply_to {
        let id = format!("<{}>", id.trim_matches(['<', '>']));
        b = b.in_reply_to(id.clone()).references(id);
    }
    let html = match &item.html {
        Some(own) => own.clone(),
        None => html(&templates.email_html, &item.body, &item.thread),
    };
    b.multipart(MultiPart::alternative_plain_html(item.body.clone(), html)).map_err(|e| build(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::router::Channel;
    use crate::store::OutboxStatus;

    fn settings() -> EmailSettings {
        crate::channels::email::settings::test_settings()
    }

    const LAYOUT: &str = include_str!("../../../responses/email.html");

    fn item(kind: ActionKind, to: Recipient) -> OutboxItem {
        OutboxItem {
            key: format!("email:1042/{}", kind.as_str()),
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
            kind,
            conversation: "email:1042".into(),
            channel: Channel::Email,
            thread: "1042".into(),
            recipient: to,
            body: "Hi Ana,\n\nWe have it <b>.".into(),
            html: None,
            about: None,
            attempts: 0,
            status: OutboxStatus::Pending,
            last_error: None,
            delivered_at: None,
            sending_since: None,
        }
    }

    #[test]
    fn survey_score_lines_become_buttons_and_addresses_links() {
        let text = "Hi Ana,\n\nHow likely...? See https://example.test/faq.\n\nOr click your score:\n 0  https://x.test/survey/ab?score=0\n10  https://x.test/survey/ab?score=10\n\nSurvey reference: ab";
        let out = html(LAYOUT, text, "T1");
        assert!(out.contains("<a href=\"https://example.test/faq\">https://example.test/faq</a>."), "{out}");
        assert!(out.contains("<a href=\"https://x.test/survey/ab?score=0\" style="), "{out}");
        assert!(out.contains(">10</a>") && !out.contains("10  https"), "{out}");
        assert!(out.contains("<p>Or click your score:</p>"), "{out}");
    }

    #[test]
    fn the_html_part_is_the_text_escaped_into_paragraphs_inside_the_layout() {
        let out = html(LAYOUT, "Hi <Ana>,\n\nline one\nline two", "T1");
        assert!(out.contains("<p>Hi &lt;Ana&gt;,</p>") && out.contains("<p>line one<br>line two</p>"), "{out}");
        assert!(out.contains("Ticket T1") && out.starts_with("<!doctype html>"), "{out}");
        let custom = html("<main>{body}</main><footer>{ticket}</footer>", "x", "T&1");
        assert_eq!(custom, "<main><p>x</p></main><footer>T&amp;1</footer>");
    }

    #[test]
    fn recipients_resolve_to_addresses_or_name_the_setting_to_fix() {
        let s = settings();
        assert_eq!(recipients(&item(ActionKind::NudgeWarning, Recipient::Agents), &s).unwrap(), ["sam@example.test"]);
        assert_eq!(recipients(&item(ActionKind::Escalation, Recipient::Managers), &s).unwrap(), ["boss@example.test"]);
        let ana = Recipient::Customer("Ana@Example.test".into());
        assert_eq!(recipients(&item(ActionKind::Survey, ana), &s).unwrap(), ["ana@example.test"]);
        let discord_user = Recipient::Customer("800000000000000301".into());
        assert!(recipients(&item(ActionKind::Survey, discord_user), &s).is_err());
        let mut s = settings();
        s.managers.clear();
        let err = recipients(&item(ActionKind::DetractorAlert, Recipient::Managers), &s).unwrap_err();
        assert!(err.to_string().contains("email.managers"), "{err}");
    }

    #[test]
    fn a_composed_message_is_threaded_marked_automatic_and_idempotent() {
        let s = settings();
        let raw = String::from_utf8(
            compose(
                &item(ActionKind::Acknowledgement, Recipient::Customer("ana@example.test".into())),
                &s,
                &Templates::builtin(),
                Some("m1@example.com"),
                None,
            )
            .unwrap()
            .formatted(),
        )
        .unwrap();
        assert!(raw.contains("Subject: We have your request [#1042]"), "{raw}");
        assert!(raw.contains("Auto-Submitted: auto-replied"), "{raw}");
        assert!(raw.contains("In-Reply-To: <m1@example.com>") && raw.contains("References: <m1@example.com>"), "{raw}");
        assert!(raw.contains(&format!("Message-ID: {}", message_id("email:1042/acknowledgement", &s.address))));
        assert!(raw.contains("text/html") && raw.contains("&lt;b&gt;"), "{raw}");
        assert_eq!(message_id("k", "support@example.test"), message_id("k", "support@example.test"));
        assert_ne!(message_id("k", "support@example.test"), message_id("k2", "support@example.test"));
        let tagged = Some("support+0123@example.test");
        let nudge = compose(&item(ActionKind::NudgeBreach, Recipient::Agents), &s, &Templates::builtin(), None, tagged);
        let nudge = String::from_utf8(nudge.unwrap().formatted()).unwrap();
        assert!(nudge.contains("Auto-Submitted: auto-generated") && !nudge.contains("In-Reply-To"), "{nudge}");
        assert!(nudge.contains("\r\nReply-To: support+0123@example.test") && !raw.contains("\r\nReply-To"), "{nudge}");
    }

    /// What a customer controls and ends up in outbound headers: their
    /// address (as a recipient), their Message-ID (threading) and the
    /// thread token. Line breaks in any of them must not add a header.
    #[test]
    fn line_breaks_from_a_customer_never_add_a_header() {
        let s = settings();
        let evil_id = "m1@example.com>\r\nBcc: victim@example.test\r\nX-Injected: <x";
        let mut evil = item(ActionKind::Acknowledgement, Recipient::Customer("ana@example.test".into()));
        evil.thread = "1042\r\nBcc: victim@example.test".into();
        let message = compose(&evil, &s, &Templates::builtin(), Some(evil_id), None).unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        let head = raw.split("\r\n\r\n").next().unwrap();
        for line in head.split("\r\n") {
            assert!(!line.starts_with("Bcc:") && !line.starts_with("X-Injected:"), "injected: {line:?} in\n{head}");
        }
        let bad_address = item(ActionKind::Acknowledgement, Recipient::Customer("ana@x.test\r\nBcc: v@x.test".into()));
        assert!(
            compose(&bad_address, &s, &Templates::builtin(), None, None).is_err(),
            "an address with a line break is refused"
        );
    }
}
