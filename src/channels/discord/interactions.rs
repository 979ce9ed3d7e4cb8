//! Slash commands and buttons: who may do what, where, and the answer. Pure:
//! the shell translates serenity's interaction into an [`Asked`], looks up
//! what it needs ([`Known`]), applies the [`Answer`]'s input through the
//! driver and sends the reply (ephemeral unless said otherwise).
//!
//! Commands: `/resolve [survey:false]`, `/reopen`, `/assign agent:@member`
//! (agents and managers, in a conversation's thread or DM), `/check text:`
//! and `/standards` (agents and managers, anywhere), `/summary
//! [week:2026-W47]` (managers only). Buttons: a survey's `0`..`10` (only the
//! conversation's customer; a second click changes nothing), "Add a comment"
//! (a form), and "Send anyway" under a reply taken back (only its author).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::intake::Staff;
use crate::core::report::Week;
use crate::core::router::{Author, Channel, Conversation, Input, Message, Role, Survey, SurveyStatus};
use crate::core::rules::{CheckContext, RuleSet};

/// An option's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opt {
    Text(String),
    Bool(bool),
    User(u64),
}

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Command { name: String, options: HashMap<String, Opt> },
    Button { custom_id: String },
    Form { custom_id: String, fields: HashMap<String, String> },
}

/// One interaction, as the shell translated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub user: u64,
    pub roles: Vec<u64>,
    pub channel: u64,
    pub what: What,
}

/// What the shell knows about where it was asked.
#[derive(Debug, Clone, Default)]
pub struct Known<'a> {
    /// The ticket of the conversation in this channel (or named by the button).
    pub ticket: Option<String>,
    pub conversation: Option<&'a Conversation>,
    pub survey: Option<&'a Survey>,
    /// For "Send anyway": the reply taken back (author id, text).
    pub held: Option<(u64, String)>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Reply with `text` (and `components`), after applying `input` if any.
    Say { text: String, input: Option<Input>, components: Option<Value> },
    /// Open a form.
    Form { custom_id: String, title: String, label: String },
    /// The weekly summary for managers (slow: defer first).
    Summary { week: Option<Week> },
}

fn say(text: impl Into<String>) -> Answer {
    Answer::Say { text: text.into(), input: None, components: None }
}

fn act(text: impl Into<String>, input: Input) -> Answer {
    Answer::Say { text: text.into(), input: Some(input), components: None }
}

/// The ticket a button's custom id names: `kind:TICKET[:more]`.
pub fn button_ticket(custom_id: &str) -> Option<&str> {
    custom_id.split(':').nth(1).filter(|t| !t.is_empty())
}

/// Decides the answer to `asked`.
pub fn answer(asked: &Asked, known: &Known, staff: &Staff, rules: &RuleSet) -> Answer {
    let is_staff = staff.is_staff(&asked.roles);
    match &asked.what {
        What::Command { name, options } => command(name, options, asked, known, staff, is_staff, rules),
        What::Button { custom_id } => button(custom_id, asked, known),
        What::Form { custom_id, fields } => match (custom_id.split(':').next(), &known.ticket) {
            (Some("nps-form"), Some(ticket)) => {
                let comment = fields.get("comment").map(|c| c.trim().to_string()).unwrap_or_default();
                if comment.is_empty() {
                    return say("Nothing to add: the comment was empty.");
                }
                act(
                    "Thank you for the comment!",
                    Input::SurveyComment { channel: Some(Channel::Discord), thread: ticket.clone(), comment },
                )
            }
            _ => say("This form is no longer in use."),
        },
    }
}

fn command(
    name: &str,
    options: &HashMap<String, Opt>,
    asked: &Asked,
    known: &Known,
    staff: &Staff,
    is_staff: bool,
    rules: &RuleSet,
) -> Answer {
    // `Err` is the refusal to say.
    let in_conversation = || -> Result<&str, String> {
        if !is_staff {
            return Err(format!("Only agents can use /{name}."));
        }
        known.ticket.as_deref().ok_or_else(|| format!("Use /{name} inside a customer's thread or DM conversation."))
    };
    let by = asked.user.to_string();
    match name {
        "resolve" => {
            let ticket = match in_conversation() {
                Ok(t) => t.to_string(),
                Err(refused) => return say(refused),
            };
            let survey = !matches!(options.get("survey"), Some(Opt::Bool(false)));
            let text = if survey {
                format!("Ticket {ticket} is resolved; the customer's survey follows.")
            } else {
                format!("Ticket {ticket} is resolved, without a survey.")
            };
            act(text, Input::Resolve { channel: Some(Channel::Discord), thread: ticket, by, survey })
        }
        "reopen" => match in_conversation() {
            Ok(ticket) => act(
                format!("Ticket {ticket} is open again."),
                Input::Reopen { channel: Some(Channel::Discord), thread: ticket.to_string(), by },
            ),
            Err(refused) => say(refused),
        },
        "assign" => {
            let ticket = match in_conversation() {
                Ok(t) => t.to_string(),
                Err(refused) => return say(refused),
            };
            let Some(Opt::User(agent)) = options.get("agent") else {
                return say("Name the agent: /assign agent:@member.");
            };
            act(
                format!("Ticket {ticket} is assigned to <@{agent}>: nudges go to them from now on."),
                Input::Assign { channel: Some(Channel::Discord), thread: ticket, agent: agent.to_string() },
            )
        }
        "check" => {
            if !is_staff {
                return say("Only agents can use /check.");
            }
            let Some(Opt::Text(text)) = options.get("text") else {
                return say("Give the draft to check: /check text:...");
            };
            let conv = known.conversation;
            let first = conv.is_some_and(|c| c.first_reply_at.is_none() && c.customer_id.is_some());
            // Judged as it would be if posted now (lateness is not known here).
            let ctx = match conv {
                Some(c) => c.check_context(first, false),
                None => CheckContext { chat: true, ..CheckContext::default() },
            };
            let result = rules.check(text, ctx);
            let verdict = if result.findings.is_empty() {
                "No findings: good to post.".to_string()
            } else {
                result.feedback(text)
            };
            say(format!("Draft check (score {}/100):\n{verdict}", result.score))
        }
        "standards" => {
            if !is_staff {
                return say("Only agents can use /standards.");
            }
            say(format!("The reply standards in force:\n{}", rules.describe()))
        }
        "summary" => {
            if !staff.is_manager(&asked.roles) {
                return say("Only managers can use /summary.");
            }
            match options.get("week") {
                None => Answer::Summary { week: None },
                Some(Opt::Text(w)) => match Week::parse(w) {
                    Ok(week) => Answer::Summary { week: Some(week) },
                    Err(e) => say(format!("week: {e}")),
                },
                Some(_) => say("week: write it as 2026-W47."),
            }
        }
        other => say(format!("/{other} is not a concierge command.")),
    }
}

fn button(custom_id: &str, asked: &Asked, known: &Known) -> Answer {
    let mut parts = custom_id.split(':');
    let (kind, ticket, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
    match kind {
        "nps" => {
            let Some(score) = rest.and_then(|s| s.parse::<u8>().ok()).filter(|s| *s <= 10) else {
                return say("This button is not a survey answer.");
            };
            // A second click, by anyone, changes nothing.
            if known.survey.is_some_and(|s| s.status == SurveyStatus::Answered) {
                return say("An answer was already recorded for this survey. Thank you!");
            }
            let customer = known.conversation.and_then(|c| c.customer_id.as_deref());
            if customer != Some(asked.user.to_string().as_str()) {
                return say("Only the customer who asked for help can answer this survey.");
            }
            match known.survey.map(|s| s.status) {
                Some(SurveyStatus::Sent) => Answer::Say {
                    text: format!("Thank you! We recorded {score}/10."),
                    input: Some(Input::SurveyAnswer {
                        channel: Some(Channel::Discord),
                        thread: ticket.to_string(),
                        score,
                        comment: None,
                    }),
                    components: Some(json!([{"type": 1, "components": [
                        {"type": 2, "style": 2, "label": "Add a comment", "custom_id": format!("nps-comment:{ticket}")}
                    ]}])),
                },
                _ => say("This survey is closed."),
            }
        }
        "nps-comment" => {
            let customer = known.conversation.and_then(|c| c.customer_id.as_deref());
            if customer != Some(asked.user.to_string().as_str()) {
                return say("Only the customer who asked for help can comment on this survey.");
            }
            Answer::Form {
                custom_id: format!("nps-form:{ticket}"),
                title: "Your comment".into(),
                label: "What should we know?".into(),
            }
        }
        "anyway" => {
            let Some((author, text)) = &known.held else {
                return say("That reply is no longer held.");
            };
            if *author != asked.user {
                return say("Only the agent who wrote the reply can send it anyway.");
            }
            let original = rest.unwrap_or("");
            let message = Message {
                channel: Channel::Discord,
                thread: ticket.to_string(),
                id: format!("anyway:{original}"),
                author: Author { role: Role::Agent, id: author.to_string(), name: None },
                text: text.clone(),
            };
            act("Posted as it is; the override is recorded.", Input::Relay { message, send_anyway: true })
        }
        _ => say("This button is no longer in use."),
    }
}

/// The slash commands concierge registers for the guild.
pub fn definitions() -> Value {
    let opt = |kind: u8, name: &str, description: &str, required: bool| json!({"type": kind, "name": name, "description": description, "required": required});
    json!([
        {"name": "resolve", "description": "Resolve this conversation (the customer's survey follows)",
         "options": [opt(5, "survey", "Send the survey (default true)", false)]},
        {"name": "reopen", "description": "Open this resolved conversation again"},
        {"name": "assign", "description": "Give this conversation to an agent",
         "options": [opt(6, "agent", "The agent", true)]},
        {"name": "check", "description": "Check a draft reply against the reply standards",
         "options": [opt(3, "text", "The draft", true)]},
        {"name": "standards", "description": "The reply standards in force"},
        {"name": "summary", "description": "The weekly support summary (managers)",
         "options": [opt(3, "week", "An ISO week such as 2026-W47 (default: this week)", false)]}
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAFF: Staff = Staff { agent_role: Some(900), manager_role: Some(901) };

    fn asked(roles: &[u64], what: What) -> Asked {
        Asked { user: 7, roles: roles.to_vec(), channel: 42, what }
    }

    fn command(name: &str, options: &[(&str, Opt)]) -> What {
        What::Command { name: name.into(), options: options.iter().map(|(k, v)| (k.to_string(), v.clone())).collect() }
    }

    fn conversation(customer: &str) -> Conversation {
        Conversation {
            id: "discord:T1".into(),
            channel: Channel::Discord,
            thread: "T1".into(),
            customer_id: Some(customer.into()),
            customer_name: Some("Ana Lima".into()),
            opened_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            due_at: None,
            first_reply_at: None,
            first_reply_by: None,
            status: crate::core::router::Status::Open,
            resolved_at: None,
            assigned: None,
            waiting_since: None,
            reply_due: None,
            waits: 1,
            sla_stage: 0,
            surveys: 0,
            silent_since: None,
            asked_words: 0,
            name_used: false,
        }
    }

    fn text(a: &Answer) -> &str {
        match a {
            Answer::Say { text, .. } => text,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resolve_is_for_agents_inside_a_conversation() {
        let rules = RuleSet::default_rules();
        let here = Known { ticket: Some("T1".into()), ..Known::default() };
        let a = answer(&asked(&[900], command("resolve", &[("survey", Opt::Bool(false))])), &here, &STAFF, &rules);
        let Answer::Say { input: Some(Input::Resolve { survey: false, thread, .. }), .. } = &a else { panic!("{a:?}") };
        assert_eq!(thread, "T1");
        let refused = answer(&asked(&[], command("resolve", &[])), &here, &STAFF, &rules);
        assert!(text(&refused).contains("Only agents"));
        let elsewhere = answer(&asked(&[900], command("resolve", &[])), &Known::default(), &STAFF, &rules);
        assert!(text(&elsewhere).contains("inside a customer's thread"));
    }

    #[test]
    fn summary_is_for_managers_and_check_reports_findings() {
        let rules = RuleSet::default_rules();
        let agent = answer(&asked(&[900], command("summary", &[])), &Known::default(), &STAFF, &rules);
        assert!(text(&agent).contains("Only managers"));
        let week = Opt::Text("2026-W47".into());
        let manager = answer(&asked(&[901], command("summary", &[("week", week)])), &Known::default(), &STAFF, &rules);
        assert_eq!(manager, Answer::Summary { week: Some(Week::parse("2026-W47").unwrap()) });
        let draft = Opt::Text("as I already said, restart it".into());
        let checked = answer(&asked(&[900], command("check", &[("text", draft)])), &Known::default(), &STAFF, &rules);
        assert!(text(&checked).contains("dismissive"), "{checked:?}");
        let standards = answer(&asked(&[900], command("standards", &[])), &Known::default(), &STAFF, &rules);
        assert!(text(&standards).contains("no-dismissive"));
    }

    #[test]
    fn only_the_customer_answers_the_survey_and_only_once() {
        let rules = RuleSet::default_rules();
        let conv = conversation("7");
        let survey = Survey {
            id: "discord:T1#1".into(),
            conversation: "discord:T1".into(),
            customer_id: "7".into(),
            status: SurveyStatus::Sent,
            due_at: "2026-11-23T10:00:00Z".parse().unwrap(),
            sent_at: None,
            token: None,
            score: None,
            comment: None,
            answered_at: None,
        };
        let known = Known { ticket: Some("T1".into()), conversation: Some(&conv), survey: Some(&survey), held: None };
        let click = What::Button { custom_id: "nps:T1:9".into() };
        let a = answer(&asked(&[], click.clone()), &known, &STAFF, &rules);
        assert!(
            matches!(&a, Answer::Say { input: Some(Input::SurveyAnswer { score: 9, .. }), components: Some(_), .. }),
            "{a:?}"
        );
        let mut other = asked(&[], click.clone());
        other.user = 8;
        assert!(text(&answer(&other, &known, &STAFF, &rules)).contains("Only the customer"));
        let answered = Survey { status: SurveyStatus::Answered, ..survey.clone() };
        let known = Known { survey: Some(&answered), ..known };
        let again = answer(&asked(&[], click), &known, &STAFF, &rules);
        assert!(matches!(&again, Answer::Say { input: None, .. }) && text(&again).contains("already recorded"));
    }

    #[test]
    fn send_anyway_is_for_the_author_and_relays_the_original_text() {
        let rules = RuleSet::default_rules();
        let known =
            Known { ticket: Some("T1".into()), held: Some((7, "as I already said".into())), ..Known::default() };
        let a = answer(&asked(&[900], What::Button { custom_id: "anyway:T1:5001".into() }), &known, &STAFF, &rules);
        let Answer::Say { input: Some(Input::Relay { message, send_anyway: true }), .. } = &a else { panic!("{a:?}") };
        assert_eq!((message.id.as_str(), message.text.as_str()), ("anyway:5001", "as I already said"));
        let mut other = asked(&[900], What::Button { custom_id: "anyway:T1:5001".into() });
        other.user = 9;
        assert!(text(&answer(&other, &known, &STAFF, &rules)).contains("Only the agent who wrote"));
    }
}
