//! What one Discord message means: which conversation it belongs to and the
//! input it gives the router, or why it is ignored. Pure: the shell looks up
//! what is known about the message's channel ([`Place`]) and carries out the
//! decision (starting a thread, recording the ticket).
//!
//! A customer's message in a support text channel opens a conversation and a
//! thread on that message; a post in a support forum channel uses its own
//! thread; a DM to the bot is a conversation too. Later messages there belong
//! to it. Members holding the agent or manager role are staff (their replies
//! are checked); everyone else is a customer. Bots, the bot itself and staff
//! talking in a support channel outside any thread are ignored.

use crate::channels::email::intake::ticket_for;
use crate::core::router::{Author, Channel, Input, Message, Role};

/// A message as received, from the gateway or from history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    pub channel_id: u64,
    /// `None` for a DM.
    pub guild_id: Option<u64>,
    pub author_id: u64,
    pub author_bot: bool,
    /// The display name: the member's nickname, else the global name, else the username.
    pub author_name: String,
    pub roles: Vec<u64>,
    pub content: String,
    /// When it was written, unix seconds.
    pub at: i64,
}

/// How a conversation lives on Discord.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A thread concierge started on the customer's message in a text channel.
    Thread,
    /// A forum post's own thread.
    Forum,
    /// Direct messages with the bot.
    Dm,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Thread => "thread",
            Kind::Forum => "forum",
            Kind::Dm => "dm",
        }
    }
}

/// What the shell knows about the message's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A conversation's channel (thread, forum post or DM): its ticket.
    Known { ticket: String },
    /// A support text channel itself.
    SupportChannel,
    /// A thread whose parent is a support channel (a new forum post).
    SupportThread,
    /// A DM channel with no conversation yet.
    NewDm,
    /// Anywhere else.
    Elsewhere,
}

/// Who is staff: the resolved role ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Staff {
    pub agent_role: Option<u64>,
    pub manager_role: Option<u64>,
}

impl Staff {
    pub fn is_staff(&self, roles: &[u64]) -> bool {
        roles.iter().any(|r| Some(*r) == self.agent_role || Some(*r) == self.manager_role)
    }

    pub fn is_manager(&self, roles: &[u64]) -> bool {
        roles.iter().any(|r| Some(*r) == self.manager_role)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new conversation: record `ticket` for the channel (starting a thread
    /// on the message first for [`Kind::Thread`]), then apply `input`.
    Open {
        ticket: String,
        kind: Kind,
        thread_name: String,
        input: Input,
    },
    /// A message of a known conversation.
    Continue {
        ticket: String,
        input: Input,
    },
    Ignore {
        reason: &'static str,
    },
}

/// Decides what `m` means.
pub fn decide(m: &Seen, place: &Place, staff: &Staff, bot_id: Option<u64>) -> Decision {
    if m.author_bot || Some(m.author_id) == bot_id {
        return Decision::Ignore { reason: "written by a bot" };
    }
    if m.content.trim().is_empty() {
        return Decision::Ignore { reason: "no text (an attachment or a sticker only)" };
    }
    let is_staff = m.guild_id.is_some() && staff.is_staff(&m.roles);
    let message = |ticket: &str, role: Role| Message {
        channel: Channel::Discord,
        thread: ticket.to_string(),
        id: m.id.to_string(),
        author: Author { role, id: m.author_id.to_string(), name: Some(m.author_name.clone()) },
        text: m.content.clone(),
    };
    let open = |ticket: String, kind: Kind| Decision::Open {
        thread_name: thread_name(&ticket, &m.content),
        input: Input::Message(message(&ticket, Role::Customer)),
        ticket,
        kind,
    };
    match place {
        Place::Known { ticket } => Decision::Continue {
            ticket: ticket.clone(),
            input: if is_staff {
                Input::Posted(message(ticket, Role::Agent))
            } else {
                Input::Message(message(ticket, Role::Customer))
            },
        },
        Place::SupportChannel if is_staff => Decision::Ignore { reason: "staff talking in a support channel" },
        Place::SupportChannel => open(ticket_for(&format!("discord:{}", m.id)), Kind::Thread),
        Place::SupportThread if is_staff => Decision::Ignore { reason: "a thread started by staff" },
        Place::SupportThread => open(ticket_for(&format!("discord:{}", m.channel_id)), Kind::Forum),
        Place::NewDm => open(ticket_for(&format!("discord-dm:{}", m.channel_id)), Kind::Dm),
        Place::Elsewhere => Decision::Ignore { reason: "not in a support channel" },
    }
}

/// `[TICKET] first words`, at most 100 characters (Discord's limit).
pub fn thread_name(ticket: &str, text: &str) -> String {
    let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut name = format!("[{ticket}] {words}");
    if name.chars().count() > 100 {
        name = name.chars().take(99).collect::<String>() + "…";
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAFF: Staff = Staff { agent_role: Some(900), manager_role: Some(901) };

    fn seen(author: u64, roles: &[u64], text: &str) -> Seen {
        Seen {
            id: 5000,
            channel_id: 201,
            guild_id: Some(1),
            author_id: author,
            author_bot: false,
            author_name: "Ana Lima".into(),
            roles: roles.to_vec(),
            content: text.into(),
            at: 1_795_000_000,
        }
    }

    #[test]
    fn a_customer_in_a_support_channel_opens_a_thread_named_after_the_ticket() {
        let d = decide(&seen(7, &[], "My   invoice\nis wrong"), &Place::SupportChannel, &STAFF, Some(1000));
        let Decision::Open { ticket, kind, thread_name, input } = d else { panic!("{d:?}") };
        assert_eq!((kind, ticket.len()), (Kind::Thread, 8));
        assert_eq!(thread_name, format!("[{ticket}] My invoice is wrong"));
        let Input::Message(m) = input else { panic!() };
        assert_eq!((m.author.role, m.thread.as_str(), m.id.as_str()), (Role::Customer, ticket.as_str(), "5000"));
    }

    #[test]
    fn staff_replies_in_a_conversation_are_posted_replies_and_bots_are_ignored() {
        let known = Place::Known { ticket: "T1".into() };
        let d = decide(&seen(8, &[900], "Hi Ana"), &known, &STAFF, Some(1000));
        assert!(matches!(d, Decision::Continue { input: Input::Posted(_), .. }), "{d:?}");
        let d = decide(&seen(9, &[901], "Hi Ana"), &known, &STAFF, Some(1000));
        assert!(matches!(d, Decision::Continue { input: Input::Posted(_), .. }), "managers are staff: {d:?}");
        let d = decide(&seen(7, &[], "More info"), &known, &STAFF, Some(1000));
        assert!(matches!(d, Decision::Continue { input: Input::Message(_), .. }), "{d:?}");
        let mut bot = seen(1000, &[], "our own ack");
        assert!(matches!(decide(&bot, &known, &STAFF, Some(1000)), Decision::Ignore { .. }));
        bot.author_id = 55;
        bot.author_bot = true;
        assert!(matches!(decide(&bot, &known, &STAFF, Some(1000)), Decision::Ignore { .. }));
        let staff_chat = decide(&seen(8, &[900], "lunch?"), &Place::SupportChannel, &STAFF, Some(1000));
        assert!(matches!(staff_chat, Decision::Ignore { .. }));
    }

    #[test]
    fn a_forum_post_and_a_dm_each_open_a_conversation_with_a_stable_ticket() {
        let post = decide(&seen(7, &[], "Help"), &Place::SupportThread, &STAFF, None);
        let again = decide(&seen(7, &[], "Help"), &Place::SupportThread, &STAFF, None);
        assert!(matches!(&post, Decision::Open { kind: Kind::Forum, .. }));
        assert_eq!(post, again);
        let mut dm = seen(7, &[900], "Help");
        dm.guild_id = None;
        // In a DM there are no roles: whoever writes is a customer.
        assert!(matches!(decide(&dm, &Place::NewDm, &STAFF, None), Decision::Open { kind: Kind::Dm, .. }));
        assert!(matches!(decide(&seen(7, &[], "x"), &Place::Elsewhere, &STAFF, None), Decision::Ignore { .. }));
        assert_eq!(thread_name("T", &"word ".repeat(40)).chars().count(), 100);
    }
}
