//! What to do with one inbound mail: which ticket it belongs to and which
//! inputs it gives the router, or why it is ignored. Pure: the shell looks up
//! what the database knows ([`Lookup`]) and carries the decision out.
//!
//! Threading: a known ticket token in the subject wins (a customer who replies
//! from another client or strips headers still lands in the same
//! conversation), then any Message-ID in In-Reply-To/References that belongs to
//! a ticket; otherwise a customer's mail opens a new ticket. A ticket is
//! derived from the Message-ID that opened it, so processing the same mail
//! twice gives the same ticket. Never answered: auto-replies, bounces, bulk
//! mail and our own messages (no mail loops).

use sha2::{Digest, Sha256};

use crate::core::text::hex;

use crate::channels::email::auth;
use crate::channels::email::message::{Email, Origin, strip_reply, take_commands};
use crate::channels::email::settings::EmailSettings;
use crate::core::router::{Author, Channel, Input, Message, Role};

/// What the database knows about a mail's thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// The subject's ticket token, when it names a known ticket.
    pub token_ticket: Option<String>,
    /// The ticket of the nearest referenced Message-ID, if any.
    pub ref_ticket: Option<String>,
    /// The customer's address in the ticket the mail threads into, if known.
    pub customer: Option<String>,
    /// The mail was found in the Sent folder (`email.sent_mailbox`).
    pub in_sent: bool,
    /// concierge itself sent this mail.
    pub ours: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Record `message_key → ticket` and apply `inputs` in order;
    /// `new_ticket` when a customer's mail opens the ticket (announce it).
    Route {
        ticket: String,
        message_key: String,
        inputs: Vec<Input>,
        new_ticket: bool,
        /// Something worth a warning in the log (an unauthenticated agent).
        note: Option<String>,
    },
    Ignore {
        reason: String,
    },
}

/// The mail's Message-ID, or for mail without one a stable id made from its
/// bytes, so a re-fetched copy is recognised.
pub fn message_key(email: &Email, raw: &[u8]) -> String {
    match &email.message_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => format!("sha256-{}@concierge.invalid", hex(&Sha256::digest(raw)[..16])),
    }
}

/// The ticket a mail opens: 8 characters of Crockford base32 of its id's hash.
pub fn ticket_for(message_key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let digest = Sha256::digest(message_key.as_bytes());
    let mut bits: u64 = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (0..8)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize] as char;
            bits >>= 5;
            c
        })
        .collect()
}

/// Decides what one mail means. `tag_key` signs the agents' reply
/// addresses (see [`auth`]); `None` when `email.agent_reply_tags` is off.
pub fn decide(
    email: &Email,
    message_key: &str,
    settings: &EmailSettings,
    lookup: &Lookup,
    tag_key: Option<&[u8]>,
) -> Decision {
    let ignore = |reason: &str| Decision::Ignore { reason: reason.to_string() };
    if lookup.ours {
        return ignore("sent by concierge itself");
    }
    if lookup.in_sent {
        // Sent from the shared account (or by an agent): an observed reply.
        if email.from.address != settings.address && !settings.is_agent(&email.from.address) {
            return ignore("in the Sent folder but from neither the support address nor an agent");
        }
        let Some(ticket) = lookup.token_ticket.clone().or_else(|| lookup.ref_ticket.clone()) else {
            return ignore("sent mail that belongs to no ticket");
        };
        let text = strip_reply(take_commands(&email.body).1);
        if text.is_empty() {
            return ignore("sent mail with nothing to record");
        }
        let author = Author { role: Role::Agent, id: email.from.address.clone(), name: email.from.name.clone() };
        let message =
            Message { channel: Channel::Email, thread: ticket.clone(), id: message_key.to_string(), author, text };
        return Decision::Route {
            ticket,
            message_key: message_key.to_string(),
            inputs: vec![Input::Message(message)],
            new_ticket: false,
            note: None,
        };
    }
    if email.from.address == settings.address {
        return ignore("sent by the support address itself (no mail loops)");
    }
    match email.origin {
        Origin::Person => {}
        Origin::AutoReply => return ignore("an automatic reply (Auto-Submitted or similar): never answered"),
        Origin::Bounce => return ignore("a delivery failure report: never answered"),
        Origin::Bulk => return ignore("bulk or mailing-list mail: never answered"),
    }
    let known = lookup.token_ticket.clone().or_else(|| lookup.ref_ticket.clone());
    let author = |role| Author { role, id: email.from.address.clone(), name: email.from.name.clone() };
    let mut note = None;
    if settings.is_agent(&email.from.address) {
        let Some(ticket) = known.clone() else {
            return ignore("an agent's mail that belongs to no ticket");
        };
        match auth::verify(email, &ticket, settings, tag_key) {
            Ok(_) => return agent_mail(email, message_key, settings, lookup, ticket),
            Err(why) => note = Some(format!("{why}: treated as a customer's")),
        }
    }
    let new_ticket = known.is_none();
    let ticket = known.unwrap_or_else(|| ticket_for(message_key));
    let text = strip_reply(&email.body);
    let text = if text.is_empty() { email.subject.clone() } else { text };
    Decision::Route {
        message_key: message_key.to_string(),
        inputs: vec![Input::Message(Message {
            channel: Channel::Email,
            thread: ticket.clone(),
            id: message_key.to_string(),
            author: author(Role::Customer),
            text,
        })],
        ticket,
        new_ticket,
        note,
    }
}

/// An authenticated agent's mail about `ticket`: a relayed or observed reply
/// and the commands on its first lines.
fn agent_mail(email: &Email, message_key: &str, settings: &EmailSettings, lookup: &Lookup, ticket: String) -> Decision {
    let ignore = |reason: &str| Decision::Ignore { reason: reason.to_string() };
    let author = |role| Author { role, id: email.from.address.clone(), name: email.from.name.clone() };
    let (commands, rest) = take_commands(&email.body);
    let mut inputs = Vec::new();
    let text = strip_reply(rest);
    // With the customer in To/Cc the agent answered directly (observed);
    // otherwise the mail was written to concierge, to relay.
    let direct = lookup
        .customer
        .as_deref()
        .is_some_and(|c| email.to.iter().chain(&email.cc).any(|m| m.address.eq_ignore_ascii_case(c)));
    if !text.is_empty() {
        let message = Message {
            channel: Channel::Email,
            thread: ticket.clone(),
            id: message_key.to_string(),
            author: author(Role::Agent),
            text,
        };
        inputs.push(if direct {
            Input::Message(message)
        } else {
            Input::Relay { message, send_anyway: commands.send_anyway }
        });
    }
    if let Some(name) = &commands.assign {
        inputs.push(Input::Assign {
            channel: Some(Channel::Email),
            thread: ticket.clone(),
            agent: settings.agent_address(name),
        });
    }
    if commands.resolve {
        inputs.push(Input::Resolve {
            channel: Some(Channel::Email),
            thread: ticket.clone(),
            by: email.from.address.clone(),
            survey: !commands.no_survey,
        });
    }
    if inputs.is_empty() {
        return ignore("an agent's mail with nothing to record");
    }
    Decision::Route { ticket, message_key: message_key.to_string(), inputs, new_ticket: false, note: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EmailSettings {
        crate::channels::email::settings::test_settings()
    }

    fn mail(from: &str, headers: &str, body: &str) -> Email {
        Email::parse(
            format!("From: {from}\r\nSubject: Help\r\nMessage-ID: <x1@example.com>\r\n{headers}\r\n{body}").as_bytes(),
        )
        .unwrap()
    }

    fn thread_of(d: &Decision) -> &str {
        match d {
            Decision::Route { ticket, .. } => ticket,
            Decision::Ignore { reason } => panic!("ignored: {reason}"),
        }
    }

    #[test]
    fn a_new_customer_mail_opens_a_stable_ticket() {
        let email = mail("Ana Lima <ana@example.com>", "", "Hello, it broke.");
        let d = decide(&email, "x1@example.com", &settings(), &Lookup::default(), None);
        assert_eq!(thread_of(&d), ticket_for("x1@example.com"));
        assert_eq!(ticket_for("x1@example.com").len(), 8);
        let Decision::Route { inputs, .. } = d else { unreachable!() };
        let Input::Message(m) = &inputs[0] else { panic!() };
        assert_eq!(
            (m.author.role, m.author.name.as_deref(), m.text.as_str()),
            (Role::Customer, Some("Ana Lima"), "Hello, it broke.")
        );
    }

    #[test]
    fn a_known_token_wins_over_references_and_references_over_a_new_ticket() {
        let email = mail("ana@example.com", "", "More info");
        let both = Lookup {
            token_ticket: Some("TOKEN001".into()),
            ref_ticket: Some("REF00001".into()),
            customer: None,
            in_sent: false,
            ours: false,
        };
        assert_eq!(thread_of(&decide(&email, "x1@example.com", &settings(), &both, None)), "TOKEN001");
        let refs = Lookup {
            token_ticket: None,
            ref_ticket: Some("REF00001".into()),
            customer: None,
            in_sent: false,
            ours: false,
        };
        assert_eq!(thread_of(&decide(&email, "x1@example.com", &settings(), &refs, None)), "REF00001");
    }

    #[test]
    fn automatic_mail_and_our_own_mail_are_never_answered() {
        for (from, headers) in [
            ("ben@example.com", "Auto-Submitted: auto-replied\r\n"),
            ("MAILER-DAEMON@mx.example.net", ""),
            ("news@example.org", "Precedence: bulk\r\n"),
            ("support@example.test", ""),
        ] {
            let d = decide(&mail(from, headers, "x"), "x1@example.com", &settings(), &Lookup::default(), None);
            assert!(matches!(d, Decision::Ignore { .. }), "{from}: {d:?}");
        }
    }

    #[test]
    fn an_agent_reply_is_stripped_and_its_commands_become_inputs() {
        let email = mail(
            "Sam <sam@support.example.test>",
            "Authentication-Results: mx.example.test; dkim=pass header.d=support.example.test\r\n",
            "#resolve #nosurvey\r\nHi Ana, fixed. Best, Sam\r\n\r\nOn Mon, Ana <ana@example.com> wrote:\r\n> it broke\r\n",
        );
        let lookup = Lookup {
            token_ticket: None,
            ref_ticket: Some("T1".into()),
            customer: Some("ana@example.com".into()),
            in_sent: false,
            ours: false,
        };
        let Decision::Route { inputs, .. } = decide(&email, "x1@example.com", &settings(), &lookup, None) else {
            panic!()
        };
        // Written to support only: a reply through concierge, to relay.
        let Input::Relay { message: m, send_anyway: false } = &inputs[0] else { panic!("{inputs:?}") };
        assert_eq!((m.author.role, m.text.as_str()), (Role::Agent, "Hi Ana, fixed. Best, Sam"));
        assert_eq!(
            inputs[1],
            Input::Resolve {
                channel: Some(Channel::Email),
                thread: "T1".into(),
                by: "sam@support.example.test".into(),
                survey: false
            }
        );
        let stray = decide(&email, "x1@example.com", &settings(), &Lookup::default(), None);
        assert!(matches!(stray, Decision::Ignore { .. }));
    }

    #[test]
    fn an_agent_mail_copying_the_customer_is_an_observed_reply_not_a_relay() {
        let email = mail(
            "sam@support.example.test",
            "To: ana@example.com\r\nCc: support@example.test\r\nAuthentication-Results: mx.example.test; dmarc=pass\r\n",
            "#send-anyway\r\nHi Ana",
        );
        let lookup = Lookup {
            token_ticket: Some("T1".into()),
            ref_ticket: None,
            customer: Some("ana@example.com".into()),
            in_sent: false,
            ours: false,
        };
        let Decision::Route { inputs, new_ticket, .. } = decide(&email, "x1@example.com", &settings(), &lookup, None)
        else {
            panic!()
        };
        assert!(matches!(&inputs[0], Input::Message(m) if m.author.role == Role::Agent) && !new_ticket, "{inputs:?}");
        let to_support = mail(
            "sam@support.example.test",
            "To: support@example.test\r\nAuthentication-Results: mx.example.test; dkim=pass header.d=support.example.test\r\n",
            "#send-anyway\r\nHi Ana",
        );
        let Decision::Route { inputs, .. } = decide(&to_support, "x2@example.com", &settings(), &lookup, None) else {
            panic!()
        };
        assert!(matches!(&inputs[0], Input::Relay { send_anyway: true, .. }), "{inputs:?}");
    }

    #[test]
    fn assign_names_an_agent_by_address_or_by_the_local_part_of_a_configured_one() {
        let s = settings();
        assert_eq!(s.agent_address("Sam"), "sam@example.test");
        assert_eq!(s.agent_address("lee@other.example"), "lee@other.example");
        assert_eq!(s.agent_address("nobody"), "nobody");
        let email = mail(
            "kim@support.example.test",
            "Authentication-Results: mx.example.test; dmarc=pass header.from=support.example.test\r\n",
            "#assign sam\r\nTaking this over to Sam.",
        );
        let lookup = Lookup {
            token_ticket: Some("T1".into()),
            ref_ticket: None,
            customer: Some("ana@example.com".into()),
            in_sent: false,
            ours: false,
        };
        let Decision::Route { inputs, .. } = decide(&email, "x1@example.com", &s, &lookup, None) else { panic!() };
        assert!(
            inputs.contains(&Input::Assign {
                channel: Some(Channel::Email),
                thread: "T1".into(),
                agent: "sam@example.test".into()
            }),
            "{inputs:?}"
        );
    }

    #[test]
    fn mail_without_a_message_id_gets_a_stable_key_from_its_bytes() {
        let raw = b"From: ana@example.com\r\nSubject: x\r\n\r\nhi";
        let email = Email::parse(raw).unwrap();
        assert_eq!(message_key(&email, raw), message_key(&email, raw));
        assert!(message_key(&email, raw).ends_with("@concierge.invalid"));
    }

    #[test]
    fn unauthenticated_agent_mail_is_a_customers_and_says_why() {
        let lookup = Lookup {
            token_ticket: Some("T1".into()),
            ref_ticket: None,
            customer: Some("ana@example.com".into()),
            in_sent: false,
            ours: false,
        };
        let forged = [
            "",
            "Authentication-Results: mx.evil.test; dmarc=pass header.from=support.example.test\r\n",
            "Authentication-Results: mx.example.test; dkim=pass header.d=evil.test\r\n",
            "To: support+0123456789abcdef0123@example.test\r\n",
        ];
        for headers in forged {
            let email = mail("Sam <sam@support.example.test>", headers, "#resolve\r\nHi Ana, all done. Sam");
            let Decision::Route { inputs, note, .. } =
                decide(&email, "x1@example.com", &settings(), &lookup, Some(b"k"))
            else {
                panic!("{headers}")
            };
            let [Input::Message(m)] = inputs.as_slice() else { panic!("{headers}: {inputs:?}") };
            assert_eq!(m.author.role, Role::Customer, "{headers}");
            assert!(note.is_some_and(|n| n.contains("not authenticated") && n.contains("customer")), "{headers}");
        }
    }

    #[test]
    fn a_reply_to_the_tickets_tagged_address_is_the_agents() {
        let lookup = Lookup { token_ticket: Some("T1".into()), ..Lookup::default() };
        let tagged = auth::reply_address("support@example.test", b"k", "T1").unwrap();
        let email = mail("Sam <sam@support.example.test>", &format!("To: {tagged}\r\n"), "#resolve\r\nDone.");
        let Decision::Route { inputs, note: None, .. } =
            decide(&email, "x1@example.com", &settings(), &lookup, Some(b"k"))
        else {
            panic!()
        };
        assert!(matches!(&inputs[0], Input::Relay { message, .. } if message.author.role == Role::Agent), "{inputs:?}");
        let other_ticket = Lookup { token_ticket: Some("T2".into()), ..Lookup::default() };
        let Decision::Route { inputs, .. } = decide(&email, "x1@example.com", &settings(), &other_ticket, Some(b"k"))
        else {
            panic!()
        };
        assert!(matches!(&inputs[0], Input::Message(m) if m.author.role == Role::Customer), "another ticket's tag");
        let tags_off = decide(&email, "x1@example.com", &settings(), &lookup, None);
        assert!(matches!(tags_off, Decision::Route { note: Some(_), .. }), "{tags_off:?}");
    }
}
