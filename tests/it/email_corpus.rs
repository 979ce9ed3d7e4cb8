//! A corpus of tricky inbound mail (encodings, HTML-only, broken MIME, missing
//! headers, auto-replies, bounces, huge attachments): every message parses
//! without a panic into what the router needs, or is refused with a reason.

use concierge::channels::email::message::{Email, Origin, Unusable, strip_reply, take_commands, ticket_token};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/corpus/email/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// (file, sender, display name, subject, words the body must contain, origin)
type Case = (&'static str, &'static str, Option<&'static str>, &'static str, &'static [&'static str], Origin);

#[test]
fn every_message_in_the_corpus_parses_into_what_the_router_needs() {
    let cases: &[Case] = &[
        (
            "plain.eml",
            "ana@example.com",
            Some("Ana Lima"),
            "My invoice is wrong",
            &["amount on my invoice"],
            Origin::Person,
        ),
        (
            "qp_latin1.eml",
            "jose@example.com",
            Some("José Müller"),
            "Café order [#1042]",
            &["café est froid, ça"],
            Origin::Person,
        ),
        (
            "base64_utf8.eml",
            "aegir@example.is",
            Some("Ærður Guðmundsson"),
            "Résumé ✓",
            &["Góðan dag", "✓"],
            Origin::Person,
        ),
        (
            "html_only.eml",
            "grace@example.com",
            Some("Grace Kim"),
            "HTML only",
            &["Hello,", "export never arrives"],
            Origin::Person,
        ),
        (
            "multipart_attachment.eml",
            "hugo@example.com",
            Some("Hugo Rossi"),
            "Screenshot attached",
            &["upload crashes, see the screenshot."],
            Origin::Person,
        ),
        ("broken_mime.eml", "broken@example.com", Some("Broken Client"), "broken mime", &[], Origin::Person),
        ("shift_jis.eml", "yamada@example.jp", Some("山田"), "テスト", &["ログインできません"], Origin::Person),
        (
            "auto_reply.eml",
            "ben@example.com",
            Some("Ben Carter"),
            "Automatic reply: Your ticket [#1042]",
            &["out of the office"],
            Origin::AutoReply,
        ),
        (
            "bounce.eml",
            "mailer-daemon@mx.example.net",
            Some("Mail Delivery System"),
            "Undelivered Mail Returned to Sender",
            &["could not be delivered"],
            Origin::Bounce,
        ),
        ("bulk.eml", "news@example.org", Some("Newsletter"), "Weekly news", &["weekly news"], Origin::Bulk),
    ];
    for (file, sender, name, subject, words, origin) in cases {
        let email = Email::parse(&corpus(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(email.from.address, *sender, "{file}");
        assert_eq!(email.from.name.as_deref(), *name, "{file}");
        assert_eq!(email.subject, *subject, "{file}");
        assert_eq!(email.origin, *origin, "{file}");
        for w in *words {
            assert!(email.body.contains(w), "{file}: {w:?} not in {:?}", email.body);
        }
    }
}

#[test]
fn html_is_turned_into_text_without_markup_or_scripts() {
    let email = Email::parse(&corpus("html_only.eml")).unwrap();
    assert!(!email.body.contains('<') && !email.body.contains("alert("), "{:?}", email.body);
}

#[test]
fn threading_headers_and_the_ticket_token_are_read() {
    let email = Email::parse(&corpus("qp_latin1.eml")).unwrap();
    assert_eq!(email.message_id.as_deref(), Some("qp@example.com"));
    assert_eq!(email.in_reply_to, ["ack-1042@support.example.test"]);
    assert_eq!(email.references, ["m0@example.com", "ack-1042@support.example.test"]);
    let refs: Vec<&str> = email.thread_refs().collect();
    assert_eq!(refs, ["ack-1042@support.example.test", "ack-1042@support.example.test", "m0@example.com"]);
    assert_eq!(ticket_token(&email.subject), Some("1042"));
    let plain = Email::parse(&corpus("plain.eml")).unwrap();
    assert_eq!(plain.date, Some("2026-11-23T15:00:00Z".parse().unwrap()));
}

#[test]
fn a_message_without_a_sender_is_refused_with_a_reason() {
    assert_eq!(Email::parse(&corpus("no_headers.eml")), Err(Unusable::NotMime));
    assert_eq!(Email::parse(b""), Err(Unusable::NotMime));
    let no_from = b"To: support@example.test\r\nSubject: who am I\r\n\r\nHello";
    assert_eq!(Email::parse(no_from), Err(Unusable::NoSender));
    let bad_from = b"From: not an address\r\nSubject: x\r\n\r\nHello";
    assert_eq!(Email::parse(bad_from), Err(Unusable::NoSender));
}

#[test]
fn an_agent_reply_gives_its_commands_and_only_what_was_written_now() {
    let email = Email::parse(&corpus("agent_reply_with_command.eml")).unwrap();
    let (commands, rest) = take_commands(&email.body);
    assert!(commands.resolve && !commands.no_survey);
    assert_eq!(strip_reply(rest), "Hi Ana,\n\nThanks for writing. The invoice is fixed.\n\nBest, Sam");
}

#[test]
fn a_huge_attachment_parses_and_keeps_the_text() {
    let attachment = "QUJDRA==".repeat(1_000_000); // 8 MB of base64
    let raw = format!(
        "From: Big <big@example.com>\r\nSubject: logs\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"x\"\r\n\r\n\
         --x\r\nContent-Type: text/plain\r\n\r\nLogs attached.\r\n--x\r\nContent-Type: application/octet-stream\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--x--\r\n"
    );
    let email = Email::parse(raw.as_bytes()).unwrap();
    assert_eq!(email.body.trim(), "Logs attached.");
}
