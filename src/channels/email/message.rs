//! Inbound email, parsed and made ready for the router: MIME decoding (with
//! mail-parser: multipart, HTML-only, quoted-printable, base64, RFC 2047
//! headers, odd charsets), threading headers, the ticket token in the subject,
//! auto-reply and bounce detection, first-line agent commands, and stripping of
//! quoted history and signatures so the rules judge what was written now.
//!
//! Pure: bytes in, values out. Parsing is forgiving (Postel's law); a message
//! is refused only when it has no usable sender, and the caller keeps it raw.

use jiff::Timestamp;
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders};

/// A sender or recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    /// Lower-cased address.
    pub address: String,
}

/// What kind of sender wrote the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A person.
    Person,
    /// An automatic reply (out of office, ticket systems...): never acknowledged.
    AutoReply,
    /// A delivery failure report: never acknowledged.
    Bounce,
    /// Bulk or mailing-list mail: never acknowledged.
    Bulk,
}

/// A parsed inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub date: Option<Timestamp>,
    /// The text as sent (the text part, or the HTML part turned into text).
    pub body: String,
    pub origin: Origin,
    /// The values of `Authentication-Results` headers, topmost first,
    /// unfolded (see [`super::auth`]).
    pub auth_results: Vec<String>,
}

/// Why a message could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("not a MIME message (nothing could be parsed)")]
    NotMime,
    #[error("no sender address in From")]
    NoSender,
}

impl Email {
    /// Parses raw RFC 5322 bytes.
    pub fn parse(raw: &[u8]) -> Result<Email, Unusable> {
        let msg = MessageParser::default().parse(raw).ok_or(Unusable::NotMime)?;
        let from = msg.from().and_then(first_mailbox).ok_or(Unusable::NoSender)?;
        let header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
        let content_type =
            msg.content_type().map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or("")).to_ascii_lowercase());
        let local = from.address.split('@').next().unwrap_or("").to_string();
        let origin = if content_type.as_deref() == Some("multipart/report")
            || matches!(local.as_str(), "mailer-daemon" | "postmaster")
        {
            Origin::Bounce
        } else if header("Auto-Submitted").is_some_and(|v| v != "no")
            || header("X-Autoreply").is_some()
            || header("X-Autorespond").is_some()
            || msg.header_raw("X-Auto-Response-Suppress").is_some_and(|v| v.to_ascii_lowercase().contains("all"))
        {
            Origin::AutoReply
        } else if header("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "list" | "junk"))
            || msg.header_raw("List-Id").is_some()
            || msg.header_raw("List-Unsubscribe").is_some()
        {
            Origin::Bulk
        } else {
            Origin::Person
        };
        let body = msg.body_text(0).map(|b| b.into_owned()).unwrap_or_default();
        Ok(Email {
            message_id: msg.message_id().map(strip_brackets),
            in_reply_to: ids(msg.in_reply_to()),
            references: ids(msg.references()),
            subject: msg.subject().unwrap_or("").trim().to_string(),
            from,
            to: msg.to().map(mailboxes).unwrap_or_default(),
            cc: msg.cc().map(mailboxes).unwrap_or_default(),
            date: msg.date().and_then(|d| Timestamp::from_second(d.to_timestamp()).ok()),
            body: body.replace("\r\n", "\n"),
            origin,
            auth_results: msg
                .headers_raw()
                .filter(|(name, _)| name.eq_ignore_ascii_case("Authentication-Results"))
                .map(|(_, value)| value.replace(['\r', '\n'], " ").trim().to_string())
                .collect(),
        })
    }

    /// Every id this message refers to, nearest first: In-Reply-To, then
    /// References from the newest.
    pub fn thread_refs(&self) -> impl Iterator<Item = &str> {
        self.in_reply_to.iter().chain(self.references.iter().rev()).map(String::as_str)
    }
}

fn strip_brackets(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_string()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![strip_brackets(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| strip_brackets(t)).collect(),
        _ => Vec::new(),
    }
}

fn mailboxes(a: &Address<'_>) -> Vec<Mailbox> {
    a.iter()
        .filter_map(|addr| {
            let address = addr.address()?.trim().to_ascii_lowercase();
            address
                .contains('@')
                .then(|| Mailbox { name: addr.name().map(|n| n.trim().to_string()).filter(|n| !n.is_empty()), address })
        })
        .collect()
}

fn first_mailbox(a: &Address<'_>) -> Option<Mailbox> {
    mailboxes(a).into_iter().next()
}

/// The ticket token carried in a subject, e.g. `Re: Invoice [#1042]` gives
/// `1042`.
pub fn ticket_token(subject: &str) -> Option<&str> {
    let start = subject.find("[#")? + 2;
    let len = subject[start..].find(']')?;
    let token = &subject[start..start + len];
    (!token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then_some(token)
}

/// Commands an agent puts on the first lines of a reply sent through
/// concierge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commands {
    pub resolve: bool,
    pub no_survey: bool,
    pub send_anyway: bool,
    pub assign: Option<String>,
}

/// Takes `#resolve`, `#nosurvey`, `#send-anyway` and `#assign NAME` from the
/// leading lines of `text` (lines made only of commands) and returns them with
/// the rest of the text. A line with anything else ends the command lines.
pub fn take_commands(text: &str) -> (Commands, &str) {
    let mut commands = Commands::default();
    let mut rest = text;
    loop {
        let line_end = rest.find('\n').map_or(rest.len(), |i| i + 1);
        let line = rest[..line_end].trim();
        if line.is_empty() && line_end < rest.len() && line_end > 0 && commands != Commands::default() {
            rest = &rest[line_end..];
            continue;
        }
        if !line.starts_with('#') {
            break;
        }
        let mut parsed = commands.clone();
        let mut words = line.split_whitespace();
        let mut ok = true;
        while let Some(word) = words.next() {
            match word.to_ascii_lowercase().as_str() {
                "#resolve" => parsed.resolve = true,
                "#nosurvey" => parsed.no_survey = true,
                "#send-anyway" => parsed.send_anyway = true,
                "#assign" => match words.next() {
                    Some(name) if !name.starts_with('#') => parsed.assign = Some(name.to_string()),
                    _ => ok = false,
                },
                _ => ok = false,
            }
        }
        if !ok {
            break;
        }
        commands = parsed;
        rest = &rest[line_end..];
        if rest.is_empty() {
            break;
        }
    }
    (commands, rest.trim_start_matches(['\n', '\r']))
}

/// The most of a mail's text concierge keeps (stores, checks, shows agents):
/// 64 KiB, pages of writing; the rest of a longer text is counted, not kept.
pub const MAX_TEXT: usize = 64 * 1024;

/// What the sender wrote now: the text before any quoted history (`On ...
/// wrote:`, `-----Original Message-----`, an Outlook `From:`/`Sent:` block,
/// `>` lines) and before a signature (`-- `), at most [`MAX_TEXT`] bytes of
/// it with a note of how much more there was.
pub fn strip_reply(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut keep = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        let lower = t.to_lowercase();
        let quote_header = (lower.starts_with("on ") && (lower.ends_with("wrote:") || next_ends_wrote(&lines, i)))
            || (lower.starts_with("le ") && lower.ends_with("a écrit :"))
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || lower.starts_with("-----original message-----")
            || lower.starts_with("________________________________")
            || (lower.starts_with("from:")
                && lines.get(i + 1).is_some_and(|n| n.trim().to_lowercase().starts_with("sent:")));
        if quote_header || *line == "-- " || t == "--" {
            break;
        }
        if t.starts_with('>') {
            continue;
        }
        keep.push(*line);
    }
    bounded(keep.join("\n").trim())
}

/// `text` cut to [`MAX_TEXT`] bytes (at a character boundary) with a note.
pub fn bounded(text: &str) -> String {
    if text.len() <= MAX_TEXT {
        return text.to_string();
    }
    let cut = (0..=MAX_TEXT).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
    let more = text[cut..].chars().count();
    format!("{}\n\n[{more} more characters not kept: the message is longer than concierge keeps]", &text[..cut])
}

/// Gmail wraps long "On ..., X <x@y> wrote:" lines onto two.
fn next_ends_wrote(lines: &[&str], i: usize) -> bool {
    lines.get(i + 1).is_some_and(|n| n.trim().to_lowercase().ends_with("wrote:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_mail_is_parsed_in_bounded_memory_without_a_panic() {
        // 25 MB of text: what is kept is bounded and says so.
        let line = "My invoice is wrong again, and here is the whole story once more.\r\n";
        let body = line.repeat(25 * 1024 * 1024 / line.len());
        let raw = format!("From: Ana <ana@example.com>\r\nSubject: big\r\nMessage-ID: <b@x>\r\n\r\n{body}");
        let email = Email::parse(raw.as_bytes()).unwrap();
        let kept = strip_reply(&email.body);
        assert!(kept.len() < MAX_TEXT + 200 && kept.ends_with("longer than concierge keeps]"), "{}", kept.len());
        assert!(kept.starts_with("My invoice is wrong again"));
        // Megabytes of quoted history: only the new text.
        let quoted = format!("Thanks!\r\n\r\nOn Mon, Sam wrote:\r\n{}", "> old text\r\n".repeat(300_000));
        let raw = format!("From: ana@example.com\r\nSubject: re\r\n\r\n{quoted}");
        assert_eq!(strip_reply(&Email::parse(raw.as_bytes()).unwrap().body), "Thanks!");
        // 10,000 recipients.
        let to: Vec<String> = (0..10_000).map(|i| format!("u{i}@example.com")).collect();
        let raw = format!("From: ana@example.com\r\nTo: {}\r\nSubject: x\r\n\r\nhi", to.join(", "));
        assert_eq!(Email::parse(raw.as_bytes()).unwrap().to.len(), 10_000);
        // MIME nested 5,000 deep.
        let mut raw = String::from("From: ana@example.com\r\nSubject: nested\r\n");
        for i in 0..5000 {
            raw.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
        }
        raw.push_str("Content-Type: text/plain\r\n\r\ndeep text\r\n");
        assert!(Email::parse(raw.as_bytes()).is_ok());
        // Invalid UTF-8 in headers and body; line breaks in a display name.
        let raw = b"From: \"Ana\xff\r\n Bcc: x@y\" <ana@example.com>\r\nSubject: caf\xe9\r\n\r\nbad \xc3\x28 bytes";
        let email = Email::parse(raw).unwrap();
        assert_eq!(email.from.address, "ana@example.com");
        assert!(email.from.name.as_deref().is_some_and(|n| !n.contains('\n') && !n.contains('\r')), "{:?}", email.from);
        assert!(email.body.starts_with("bad "));
    }

    #[test]
    fn ticket_tokens_are_found_in_subjects() {
        assert_eq!(ticket_token("Re: Invoice wrong [#1042]"), Some("1042"));
        assert_eq!(ticket_token("[#email-0007] Fwd: x"), Some("email-0007"));
        assert_eq!(ticket_token("No token [#] here [x]"), None);
        assert_eq!(ticket_token("[#bad token]"), None);
    }

    #[test]
    fn first_line_commands_are_taken_and_stripped() {
        let (c, rest) = take_commands("#resolve #nosurvey\n#assign kim\n\nHi Ana,\nDone.");
        assert_eq!(c, Commands { resolve: true, no_survey: true, send_anyway: false, assign: Some("kim".into()) });
        assert_eq!(rest, "Hi Ana,\nDone.");
        let (c, rest) = take_commands("Hi Ana, #resolve is not a command here");
        assert_eq!((c, rest), (Commands::default(), "Hi Ana, #resolve is not a command here"));
        let (c, rest) = take_commands("#send-anyway\nHi Ana");
        assert!(c.send_anyway);
        assert_eq!(rest, "Hi Ana");
        // An unknown hashtag ends the command lines and stays in the text.
        let (c, rest) = take_commands("#resolve\n#hashtag fun\nHi");
        assert!(c.resolve);
        assert_eq!(rest, "#hashtag fun\nHi");
    }

    #[test]
    fn quoted_history_and_signatures_are_stripped() {
        let cases = [
            ("Hi Ana,\nFixed.\n\nOn Mon, 23 Nov 2026 at 10:00, Ana <ana@x.com> wrote:\n> broken\n", "Hi Ana,\nFixed."),
            ("Thanks!\n-- \nSam\nSupport", "Thanks!"),
            ("Done\n\n-----Original Message-----\nFrom: Ana\nbroken", "Done"),
            ("Done\nFrom: Ana Lima\nSent: Monday\nTo: support", "Done"),
            ("Top\n> quoted\nBottom", "Top\nBottom"),
            ("On it.\nOn Mon, 23 Nov 2026, Ana Lima <ana@example.com>\nwrote:\n> x", "On it."),
            ("Réglé.\nLe lun. 23 nov. 2026, Ana a écrit :\n> x", "Réglé."),
        ];
        for (input, expected) in cases {
            assert_eq!(strip_reply(input), expected, "{input:?}");
        }
    }
}
