//! The router: a sans-IO state machine that threads messages into
//! conversations, runs the first-response clock, checks agent replies and
//! schedules surveys.
//!
//! Shape (after quinn-proto): inputs arrive through [`Router::handle`] with the
//! current instant, timers fire through [`Router::poll_timers`], and
//! [`Router::next_deadline`] says when to call again. Each call returns
//! [`Step`]s: the actions to carry out plus what else changed (a survey, a
//! reply's check, a resolution). The conversations the steps changed are
//! taken once per batch with [`Router::take_changed`] (one copy each, not
//! one per step), and the shell writes them in one transaction with the
//! actions (the outbox). No clock is read and nothing is sent from here.
//!
//! Decisions where the issue is silent:
//! - only the customer's *first* message opens the clock; later customer
//!   messages in an unanswered conversation do not restart it; with
//!   `sla.next_response`, a customer message after an agent's reply starts a
//!   next-response wait with the same nudges (numbered keys), answered by the
//!   next agent reply;
//! - an agent message on an unknown thread opens an agent-started conversation
//!   with no customer and no clock (it is checked, never counted as a response);
//! - a resolve cancels pending nudges; a conversation resolved before any
//!   answer is not nudged again if the customer writes back (it is reopened);
//! - nudges go to the conversation's agent once one has replied, else to
//!   `agents`; escalations and detractor alerts go to `managers` (or the
//!   recipients configured per escalation level);
//! - routing is decided here and recorded in each action: what is for the
//!   customer goes out on the conversation's channel, what is for the team on
//!   the policy's staff route ([`Policy::staff_channel`]); new conversations
//!   on channels in [`Policy::announce`] are announced to the agents.

use std::collections::{BTreeSet, HashMap, HashSet};

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::duration::Human;
use super::hours::BusinessHours;
use super::rules::{CheckContext, CheckResult, RuleSet, contains_word, first_name, words};
use super::stats::{NpsClass, classify};
use super::template::{Templates, render};
use super::timers::{Kind, Timers};

mod held;
use held::Held;

/// Maps and sets keyed by ids on the ingest path (a faster hasher than std's).
type IdMap<V> = hashbrown::HashMap<String, V>;
pub type IdSet = hashbrown::HashSet<String>;

/// Where a conversation happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Discord,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Discord];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "discord" => Some(Channel::Discord),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub role: Role,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A message seen on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Channel,
    pub thread: String,
    /// The channel's own id for the message; the same id twice is one message.
    pub id: String,
    pub author: Author,
    pub text: String,
}

/// Everything the router reacts to, besides time passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Message(Message),
    /// An agent's reply written to concierge for the customer (email's
    /// "answer through concierge"): checked first, then sent as a `reply`
    /// action, or `held` in enforce mode when it breaks an error rule
    /// (`send_anyway` overrides, and the override is recorded).
    Relay {
        message: Message,
        send_anyway: bool,
    },
    /// An agent's reply already visible to the customer on a channel where
    /// concierge can take it back (Discord): checked like any agent message;
    /// in enforce mode one that breaks an error rule is taken back (a `held`
    /// action about the message: the channel deletes it and returns it to
    /// the agent) and does not count as a response.
    Posted(Message),
    /// Open a resolved conversation again (its pending survey is cancelled).
    Reopen {
        channel: Option<Channel>,
        thread: String,
        by: String,
    },
    /// A comment added to a survey answer already recorded (a form filled in
    /// after the score was clicked).
    SurveyComment {
        channel: Option<Channel>,
        thread: String,
        comment: String,
    },
    /// Give a conversation to an agent: its nudges go to them from now on.
    Assign {
        channel: Option<Channel>,
        thread: String,
        agent: String,
    },
    /// Close a conversation; `survey: false` asks for no survey.
    Resolve {
        channel: Option<Channel>,
        thread: String,
        by: String,
        survey: bool,
    },
    SurveyAnswer {
        channel: Option<Channel>,
        thread: String,
        score: u8,
        comment: Option<String>,
    },
    /// A changed score for a survey answered moments ago (a misclick on the
    /// web page): applied within [`SURVEY_CORRECTION_SECS`] of the answer.
    SurveyCorrection {
        channel: Option<Channel>,
        thread: String,
        score: u8,
    },
}

/// How long after answering a survey a customer may change the score.
pub const SURVEY_CORRECTION_SECS: i64 = 600;

/// What the shell is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Acknowledgement,
    NudgeWarning,
    NudgeBreach,
    Escalation,
    Feedback,
    Survey,
    DetractorAlert,
    /// An agent's relayed reply, to the customer.
    Reply,
    /// An agent's reply held back in enforce mode, returned to the agent.
    Held,
    /// A new conversation announced to the agents (channels in
    /// [`Policy::announce`]): agents answer the customer by replying to it.
    Announcement,
    /// The weekly summary, to the managers (queued by `report --send`).
    Summary,
}

impl ActionKind {
    pub const ALL: [ActionKind; 11] = [
        ActionKind::Acknowledgement,
        ActionKind::NudgeWarning,
        ActionKind::NudgeBreach,
        ActionKind::Escalation,
        ActionKind::Feedback,
        ActionKind::Survey,
        ActionKind::DetractorAlert,
        ActionKind::Reply,
        ActionKind::Held,
        ActionKind::Announcement,
        ActionKind::Summary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Acknowledgement => "acknowledgement",
            ActionKind::NudgeWarning => "nudge_warning",
            ActionKind::NudgeBreach => "nudge_breach",
            ActionKind::Escalation => "escalation",
            ActionKind::Feedback => "feedback",
            ActionKind::Survey => "survey",
            ActionKind::DetractorAlert => "detractor_alert",
            ActionKind::Reply => "reply",
            ActionKind::Held => "held",
            ActionKind::Announcement => "announcement",
            ActionKind::Summary => "summary",
        }
    }

    pub fn parse(s: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Who an action is for. Each channel resolves these to its own addresses
/// (email: addresses from `[email]`); the core never sees an address book.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// The conversation's customer, by their id on its channel.
    Customer(String),
    /// One member of the team, by id (an agent's address on email).
    Agent(String),
    /// The whole team of agents.
    Agents,
    /// The managers.
    Managers,
}

impl Recipient {
    /// The id, or `agents` / `managers`: what `replay --print-actions` shows.
    pub fn as_str(&self) -> &str {
        match self {
            Recipient::Customer(id) | Recipient::Agent(id) => id,
            Recipient::Agents => "agents",
            Recipient::Managers => "managers",
        }
    }

    /// The stored form: `customer:ID`, `agent:ID`, `agents` or `managers`.
    pub fn encode(&self) -> String {
        match self {
            Recipient::Customer(id) => joined("customer", id),
            Recipient::Agent(id) => joined("agent", id),
            Recipient::Agents => "agents".into(),
            Recipient::Managers => "managers".into(),
        }
    }

    pub fn decode(s: &str) -> Option<Recipient> {
        match s {
            "agents" => Some(Recipient::Agents),
            "managers" => Some(Recipient::Managers),
            _ => match s.split_once(':') {
                Some(("customer", id)) if !id.is_empty() => Some(Recipient::Customer(id.into())),
                Some(("agent", id)) if !id.is_empty() => Some(Recipient::Agent(id.into())),
                _ => None,
            },
        }
    }

    /// Whether this is a member of staff rather than a customer.
    pub fn is_staff(&self) -> bool {
        !matches!(self, Recipient::Customer(_))
    }
}

/// One side effect, with an idempotency key unique for its cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub key: String,
    pub at: Timestamp,
    pub kind: ActionKind,
    pub conversation: String,
    /// The channel that delivers it: the conversation's own for its customer,
    /// the policy's staff route for the team (see [`Policy::staff_channel`]).
    pub channel: Channel,
    pub thread: String,
    pub to: Recipient,
    pub body: String,
    /// The channel's id of the message the action is about, when it acts on
    /// one (a held reply to take back).
    pub about: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Resolved,
}

/// The state of one conversation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// `channel:thread`.
    pub id: String,
    pub channel: Channel,
    pub thread: String,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub opened_at: Timestamp,
    /// The first-response due instant; `None` for agent-started conversations.
    pub due_at: Option<Timestamp>,
    pub first_reply_at: Option<Timestamp>,
    pub first_reply_by: Option<String>,
    pub status: Status,
    pub resolved_at: Option<Timestamp>,
    pub assigned: Option<String>,
    /// When the customer began waiting for the reply now owed: the opening
    /// for the first response, a later message for a next response.
    pub waiting_since: Option<Timestamp>,
    /// When the reply now owed is due; `None` when no reply is owed.
    pub reply_due: Option<Timestamp>,
    /// How many waits have started: 1 is the first response, 2.. next responses.
    pub waits: u32,
    /// How many SLA stages (warning, breach, escalation levels) of the current
    /// wait have fired.
    pub sla_stage: u32,
    /// How many surveys this conversation has scheduled.
    pub surveys: u32,
    /// Since when an agent's reply has gone unanswered by the customer (for
    /// resolving after silence); cleared by a customer message or a resolve.
    pub silent_since: Option<Timestamp>,
    /// Words the customer has written since the last agent reply (the reply
    /// check judges curt answers to long messages by it).
    pub asked_words: u32,
    /// An agent reply has already used the customer's name.
    pub name_used: bool,
}

impl Survey {
    /// Whether a sent survey no longer takes answers, `expire` seconds after sending.
    pub fn expired(&self, now: Timestamp, expire: i64) -> bool {
        self.sent_at.is_some_and(|sent| now.as_second() - sent.as_second() > expire)
    }

    /// Whether an answered survey's score may still be changed.
    pub fn correctable(&self, now: Timestamp) -> bool {
        self.status == SurveyStatus::Answered
            && self.answered_at.is_some_and(|at| now.as_second() - at.as_second() <= SURVEY_CORRECTION_SECS)
    }
}

impl Conversation {
    /// What the reply check needs to know about a reply in this conversation.
    pub fn check_context(&self, first: bool, late: bool) -> CheckContext<'_> {
        CheckContext {
            customer_name: self.customer_name.as_deref(),
            first,
            late,
            chat: self.channel == Channel::Discord,
            customer_words: self.asked_words as usize,
            name_used_earlier: self.name_used,
        }
    }

    /// A conversation on `thread` opened at `at` with nothing known yet:
    /// no customer, no clock, nobody assigned.
    pub fn blank(channel: Channel, thread: &str, at: Timestamp) -> Conversation {
        Conversation {
            id: Conversation::key(channel, thread),
            channel,
            thread: thread.to_string(),
            customer_id: None,
            customer_name: None,
            opened_at: at,
            due_at: None,
            first_reply_at: None,
            first_reply_by: None,
            status: Status::Open,
            resolved_at: None,
            assigned: None,
            waiting_since: None,
            reply_due: None,
            waits: 0,
            sla_stage: 0,
            surveys: 0,
            silent_since: None,
            asked_words: 0,
            name_used: false,
        }
    }

    pub fn key(channel: Channel, thread: &str) -> String {
        joined(channel.as_str(), thread)
    }

    fn awaiting_reply(&self) -> bool {
        self.status == Status::Open && self.reply_due.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SurveyStatus {
    Pending,
    Sent,
    Cancelled,
    Skipped,
    Answered,
}

impl SurveyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyStatus::Pending => "pending",
            SurveyStatus::Sent => "sent",
            SurveyStatus::Cancelled => "cancelled",
            SurveyStatus::Skipped => "skipped",
            SurveyStatus::Answered => "answered",
        }
    }

    pub fn parse(s: &str) -> Option<SurveyStatus> {
        [Self::Pending, Self::Sent, Self::Cancelled, Self::Skipped, Self::Answered]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One NPS survey, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    /// `conversation#n`.
    pub id: String,
    pub conversation: String,
    pub customer_id: String,
    pub status: SurveyStatus,
    /// When it goes out (resolve + `surveys.delay`).
    pub due_at: Timestamp,
    pub sent_at: Option<Timestamp>,
    /// The signed token that identifies the answer; set when sent.
    pub token: Option<String>,
    pub score: Option<u8>,
    pub comment: Option<String>,
    pub answered_at: Option<Timestamp>,
}

/// The verdict on an agent reply, to be stored with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyCheck {
    pub message_id: String,
    pub conversation: String,
    pub agent: String,
    pub at: Timestamp,
    pub first: bool,
    pub late: bool,
    /// Sent with `#send-anyway` despite an error finding in enforce mode.
    pub overridden: bool,
    pub result: CheckResult,
}

/// The outcome of one input or timer: actions plus what changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub actions: Vec<Action>,
    /// The survey as the step left it. (A conversation the step changed is
    /// not copied into it: the shell takes each changed conversation once
    /// per batch, with [`Router::take_changed`].)
    pub survey: Option<Survey>,
    pub check: Option<ReplyCheck>,
    /// Why an input changed nothing (unknown thread, nothing to answer...).
    pub notice: Option<String>,
    /// A resolve, or the reopening of one: the resolution history that
    /// reports read as of any instant.
    pub resolution: Option<Resolution>,
}

/// One time a conversation was resolved: when, and when it was reopened
/// (a reopen, or the customer writing back), if it was. Written as it
/// changes; a report counts a conversation resolved at `T` when one of its
/// resolutions holds then (`resolved_at <= T` and not reopened by `T`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub conversation: String,
    pub resolved_at: Timestamp,
    pub reopened_at: Option<Timestamp>,
}

/// One escalation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    /// Business seconds past the due instant.
    pub after: i64,
    pub to: Recipient,
}

/// The service policy the router applies.
#[derive(Debug, Clone)]
pub struct Policy {
    pub hours: BusinessHours,
    /// First-response target, business seconds.
    pub first_response: i64,
    /// Next-response target (business seconds) for a customer message that
    /// arrives after an agent's reply; `None` runs no clock for those.
    pub next_response: Option<i64>,
    /// Warning nudge at this percentage of the target.
    pub warn_at_percent: u32,
    pub escalations: Vec<Escalation>,
    /// Wall-clock seconds from resolve to survey.
    pub survey_delay: i64,
    /// No survey to a customer sent one within this many seconds.
    pub survey_throttle: i64,
    pub surveys_enabled: bool,
    /// Seconds after sending that a survey stops taking answers.
    pub survey_expire: i64,
    /// The survey web page's base (`{public_url}/survey/`), when concierge
    /// serves one: email surveys then carry a link per score.
    pub survey_url: Option<String>,
    /// Hold relayed replies that break an error-severity rule.
    pub enforce: bool,
    /// Resolve a conversation of this channel when the customer has not
    /// answered an agent's reply for this many (wall-clock) seconds.
    pub resolve_after_silence: HashMap<Channel, i64>,
    /// Where notices to the team about a conversation on a channel go
    /// (nudges, escalations, feedback, alerts); a channel not listed keeps
    /// its own. Built from the configured channels.
    pub staff_route: HashMap<Channel, Channel>,
    /// Channels whose new conversations are announced to the agents.
    pub announce: HashSet<Channel>,
}

impl Policy {
    /// The channel that carries notices to the team about a conversation on `channel`.
    pub fn staff_channel(&self, channel: Channel) -> Channel {
        self.staff_route.get(&channel).copied().unwrap_or(channel)
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            hours: BusinessHours::always_open(),
            first_response: 3600,
            next_response: None,
            warn_at_percent: 75,
            escalations: vec![Escalation { after: 3600, to: Recipient::Managers }],
            survey_delay: 3600,
            survey_throttle: 30 * 86_400,
            surveys_enabled: true,
            survey_expire: 30 * 86_400,
            survey_url: None,
            enforce: false,
            resolve_after_silence: HashMap::new(),
            staff_route: HashMap::new(),
            announce: HashSet::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Sla,
    Survey,
    Silence,
}

impl Kind for TimerKind {
    const LEAST: TimerKind = TimerKind::Sla;
}

/// The state machine. See the module docs.
pub struct Router {
    policy: Policy,
    rules: RuleSet,
    templates: Templates,
    secret: Vec<u8>,
    /// The conversations in memory, by id and by thread.
    held: Held,
    /// The latest survey of each conversation.
    surveys: IdMap<Survey>,
    /// When each customer was last sent a survey.
    last_survey_sent: IdMap<Timestamp>,
    timers: Timers<TimerKind>,
    /// Conversations changed or hydrated since the last [`Router::settle`].
    touched: IdSet,
    /// Conversations changed since the last [`Router::take_changed`].
    changed: IdSet,
    /// Size of `last_survey_sent` after its last pruning.
    last_sent_pruned: usize,
}

/// What the shell reads back for [`Router::restore`]: the conversations
/// open or with a survey pending, their surveys, and each customer's latest
/// survey sent within the throttle window.
#[derive(Debug, Clone, Default)]
pub struct OpenWork {
    pub conversations: Vec<Conversation>,
    pub surveys: Vec<Survey>,
    pub last_sent: Vec<(String, Timestamp)>,
}

/// The stored conversation an input needs in memory before
/// [`Router::handle`]: see [`Router::wants`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Wanted {
    /// The conversation with this id (`channel:thread`).
    Id(String),
    /// The newest conversation of this thread, on any channel.
    Thread(String),
}

impl Router {
    pub fn new(policy: Policy, rules: RuleSet, templates: Templates, secret: Vec<u8>) -> Router {
        Router {
            policy,
            rules,
            templates,
            secret,
            held: Held::default(),
            surveys: IdMap::default(),
            last_survey_sent: IdMap::default(),
            timers: Timers::default(),
            touched: IdSet::default(),
            changed: IdSet::default(),
            last_sent_pruned: 0,
        }
    }

    /// An empty router with the same policy, rules, templates and secret.
    pub fn fresh(&self) -> Router {
        Router::new(self.policy.clone(), self.rules.clone(), self.templates.clone(), self.secret.clone())
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Loads stored state and re-arms every pending timer, so a restart loses
    /// no nudge or survey. Stages already fired are not fired again.
    ///
    /// Memory follows open work: the shell restores the conversations that
    /// are open or have a survey pending, with their surveys, and when each
    /// customer was last sent a survey within the throttle window. Resolved
    /// history is brought in by [`Router::hydrate`] when an input needs it.
    pub fn restore(&mut self, work: OpenWork) {
        for (customer, at) in &work.last_sent {
            self.restore_sent(customer, *at);
        }
        let mut by_conversation = by_conversation(work.surveys);
        for c in work.conversations {
            let surveys = by_conversation.remove(&c.id).unwrap_or_default();
            self.restore_one(c, surveys);
        }
    }

    /// [`Router::restore`] one conversation at a time, for a shell that
    /// streams open work from the database rather than reading it all
    /// first: a conversation with its surveys.
    pub fn restore_one(&mut self, conversation: Conversation, surveys: Vec<Survey>) {
        // Restored work is in the database already: nothing to settle.
        self.bring_in(conversation, surveys, false);
    }

    /// [`Router::restore`] one customer's latest survey sent within the
    /// throttle window.
    pub fn restore_sent(&mut self, customer: &str, at: Timestamp) {
        self.survey_sent(customer, at);
    }

    /// [`Router::hydrate`] for each of `conversations`, with its surveys
    /// from `surveys` (which may hold others').
    pub fn hydrate_all(&mut self, conversations: Vec<Conversation>, surveys: Vec<Survey>) {
        let mut by_conversation = by_conversation(surveys);
        for c in conversations {
            let surveys = by_conversation.remove(&c.id).unwrap_or_default();
            self.hydrate(c, surveys);
        }
    }

    /// Brings a stored conversation and its surveys into memory and re-arms
    /// its timers. Memory is never overwritten: what it holds is newer than
    /// the database until the shell commits.
    pub fn hydrate(&mut self, conversation: Conversation, surveys: Vec<Survey>) {
        self.bring_in(conversation, surveys, true);
    }

    fn bring_in(&mut self, conversation: Conversation, surveys: Vec<Survey>, touch: bool) {
        let id = conversation.id.clone();
        if self.held.contains(&id) {
            return;
        }
        for s in surveys.into_iter().filter(|s| s.conversation == id) {
            if let Some(sent) = s.sent_at {
                self.survey_sent(&s.customer_id, sent);
            }
            let newer = self.surveys.get(&id).is_none_or(|old| survey_seq(&old.id) < survey_seq(&s.id));
            if newer {
                self.surveys.insert(id.clone(), s);
            }
        }
        let slot = self.held.insert(conversation);
        self.held.set_newest(slot, false);
        self.arm_sla(&id);
        self.arm_silence(&id);
        if let Some(s) = self.surveys.get(&id).filter(|s| s.status == SurveyStatus::Pending) {
            self.arm(s.due_at, &id, TimerKind::Survey);
        }
        if touch {
            self.touched.insert(id);
        }
    }

    /// The stored conversation `input` needs that memory does not hold, if
    /// any: the shell looks it up and calls [`Router::hydrate`] before
    /// [`Router::handle`] (nothing stored means a new conversation).
    pub fn wants(&self, input: &Input) -> Option<Wanted> {
        let (channel, thread) = match input {
            Input::Message(m) | Input::Relay { message: m, .. } | Input::Posted(m) => (Some(m.channel), &m.thread),
            Input::Resolve { channel, thread, .. }
            | Input::Assign { channel, thread, .. }
            | Input::Reopen { channel, thread, .. }
            | Input::SurveyComment { channel, thread, .. }
            | Input::SurveyAnswer { channel, thread, .. }
            | Input::SurveyCorrection { channel, thread, .. } => (*channel, thread),
        };
        match channel {
            Some(c) => {
                let id = Conversation::key(c, thread);
                (!self.held.contains(&id)).then_some(Wanted::Id(id))
            }
            None => self.held.newest_of(thread).is_none().then(|| Wanted::Thread(thread.clone())),
        }
    }

    /// Drops from memory the conversations touched since the last call that
    /// are at rest — resolved, with no timer and no survey pending — and the
    /// send instants older than the survey throttle window. Call it once what
    /// was stepped is committed: the database then holds all of it.
    pub fn settle(&mut self, now: Timestamp) {
        let touched = self.take_touched();
        self.settle_ids(touched, now);
    }

    /// The conversations touched since the last call (or [`Router::settle`]),
    /// for a shell that commits in the background: it passes them to
    /// [`Router::settle_ids`] once their batch is committed.
    pub fn take_touched(&mut self) -> IdSet {
        std::mem::take(&mut self.touched)
    }

    /// [`Router::settle`] for the conversations of one committed batch. One
    /// touched again since (in a batch not yet committed) stays, and so does
    /// one changed but not yet taken by [`Router::take_changed`]: nothing
    /// has written it yet.
    pub fn settle_ids(&mut self, committed: IdSet, now: Timestamp) {
        for id in committed {
            if self.changed.contains(&id) {
                // Considered again at the next settle, once written.
                self.touched.insert(id);
                continue;
            }
            let at_rest = !self.touched.contains(&id)
                && self.held.get(&id).is_some_and(|c| c.status == Status::Resolved)
                && self.surveys.get(&id).is_none_or(|s| s.status != SurveyStatus::Pending);
            if !at_rest {
                continue;
            }
            // Its timers first: the slot they name is reused once emptied.
            self.disarm(&id, |_| true);
            self.held.remove(&id);
            self.surveys.remove(&id);
        }
        // Pruned when it has doubled, so settling stays cheap per input.
        if self.last_survey_sent.len() > 2 * self.last_sent_pruned + 1024 {
            let throttle = self.policy.survey_throttle;
            self.last_survey_sent.retain(|_, sent| now.as_second() - sent.as_second() < throttle);
            self.last_sent_pruned = self.last_survey_sent.len();
        }
    }

    /// How many conversations memory holds (open work plus what was touched
    /// since the last [`Router::settle`]).
    pub fn in_memory(&self) -> usize {
        self.held.len()
    }

    /// How many timers are armed.
    pub fn timers_pending(&self) -> usize {
        self.timers.len()
    }

    /// Arms a timer of the conversation `id` (held in memory).
    fn arm(&mut self, at: Timestamp, id: &str, kind: TimerKind) {
        if let Some(slot) = self.held.slot(id) {
            self.timers.insert(at, slot, kind);
        }
    }

    /// Cancels the conversation `id`'s timers whose kind satisfies `which`.
    fn disarm(&mut self, id: &str, which: impl Fn(TimerKind) -> bool) {
        if let Some(slot) = self.held.slot(id) {
            self.timers.cancel(slot, which);
        }
    }

    fn survey_sent(&mut self, customer: &str, at: Timestamp) {
        let last = self.last_survey_sent.entry(customer.to_string()).or_insert(at);
        *last = (*last).max(at);
    }

    /// Every conversation in memory, in no particular order.
    pub fn conversations(&self) -> impl Iterator<Item = &Conversation> {
        self.held.values()
    }

    pub fn conversation(&self, id: &str) -> Option<&Conversation> {
        self.held.get(id)
    }

    /// The earliest pending timer, if any: call [`Router::poll_timers`] then.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// Applies one input at `now`. The input is only read (the shell keeps
    /// it to store), so either the input or a reference to it will do.
    pub fn handle(&mut self, now: Timestamp, input: impl std::borrow::Borrow<Input>) -> Step {
        let step = self.step(now, input.borrow());
        self.touch(&step);
        step
    }

    fn touch(&mut self, step: &Step) {
        if let Some(s) = &step.survey {
            self.touched.insert(s.conversation.clone());
        }
    }

    /// Notes that the conversation `id` changed: the shell writes it with
    /// the batch, and settles it once that is committed.
    fn changed(&mut self, id: &str) {
        if !self.changed.contains(id) {
            self.changed.insert(id.to_string());
        }
        if !self.touched.contains(id) {
            self.touched.insert(id.to_string());
        }
    }

    /// The conversations changed since the last call, as they are now: one
    /// copy each however many steps changed them (the shell writes them with
    /// the batch those steps are in).
    pub fn take_changed(&mut self) -> Vec<Conversation> {
        let changed = std::mem::take(&mut self.changed);
        changed.iter().filter_map(|id| self.held.get(id)).cloned().collect()
    }

    fn step(&mut self, now: Timestamp, input: &Input) -> Step {
        match input {
            Input::Message(m) => match m.author.role {
                Role::Customer => self.customer_message(now, m),
                Role::Agent => self.agent_message(now, m),
            },
            Input::Relay { message, send_anyway } => self.relay(now, message, *send_anyway),
            Input::Posted(message) => self.posted(now, message),
            Input::Reopen { channel, thread, by } => self.reopen(now, *channel, thread, by),
            Input::SurveyComment { channel, thread, comment } => self.survey_comment(*channel, thread, comment),
            Input::Assign { channel, thread, agent } => self.assign(*channel, thread, agent),
            Input::Resolve { channel, thread, by, survey } => self.resolve(now, *channel, thread, by, *survey),
            Input::SurveyCorrection { channel, thread, score } => self.survey_correction(now, *channel, thread, *score),
            Input::SurveyAnswer { channel, thread, score, comment } => {
                self.survey_answer(now, *channel, thread, *score, comment.clone())
            }
        }
    }

    /// Fires every timer due at or before `now`, in time order.
    pub fn poll_timers(&mut self, now: Timestamp) -> Vec<Step> {
        let mut steps = Vec::new();
        while let Some(&(at, _, _)) = self.timers.first().filter(|t| t.0 <= now) {
            // Timers due at one instant fire in (conversation id, kind) order,
            // the same before and after a restart whatever slots they have.
            let mut due: BTreeSet<(String, TimerKind, u32)> =
                self.timers.at(at).map(|(slot, kind)| (self.held.at(slot).id.clone(), kind, slot)).collect();
            while let Some((id, kind, slot)) = due.pop_first() {
                if !self.timers.remove(at, slot, kind) {
                    continue; // cancelled by a timer fired before it
                }
                let step = match kind {
                    TimerKind::Sla => self.fire_sla(at, &id),
                    TimerKind::Survey => self.fire_survey(at, &id),
                    TimerKind::Silence => self.fire_silence(at, &id),
                };
                if let Some(step) = &step {
                    self.touch(step);
                }
                steps.extend(step);
                // A timer only arms timers of its own conversation, at or
                // after its instant: those at this instant join the round.
                if let Some(slot) = self.held.slot(&id) {
                    due.extend(self.timers.of(slot).filter(|t| t.0 == at).map(|(_, k)| (id.clone(), k, slot)));
                }
            }
        }
        steps
    }

    fn customer_message(&mut self, now: Timestamp, m: &Message) -> Step {
        let id = Conversation::key(m.channel, &m.thread);
        // A reply that starts with a score answers the survey awaiting one.
        let awaiting = self.surveys.get(&id).is_some_and(|s| s.status == SurveyStatus::Sent);
        if let (true, Some((score, comment))) = (awaiting, score_reply(&m.text)) {
            return self.survey_answer(now, Some(m.channel), &m.thread, score, comment);
        }
        let mut step = Step::default();
        if let Some(conv) = self.held.get_mut(&id) {
            if conv.customer_id.is_none() {
                conv.customer_id = Some(m.author.id.clone());
                conv.customer_name = m.author.name.clone();
            }
            if conv.status == Status::Resolved {
                conv.status = Status::Open;
                step.resolution = conv.resolved_at.take().map(|resolved_at| Resolution {
                    conversation: id.clone(),
                    resolved_at,
                    reopened_at: Some(now),
                });
            }
            if conv.silent_since.take().is_some() {
                self.disarm(&id, |k| k == TimerKind::Silence);
            }
            let conv = self.held.get_mut(&id).expect("present above");
            conv.asked_words = conv.asked_words.saturating_add(words(&m.text));
            let start_wait = conv.first_reply_at.is_some() && conv.reply_due.is_none();
            if let (true, Some(target)) = (start_wait, self.policy.next_response) {
                conv.waits += 1;
                conv.sla_stage = 0;
                conv.waiting_since = Some(now);
                conv.reply_due = Some(self.policy.hours.add(now, target).unwrap_or(Timestamp::MAX));
            }
            step.survey = self.cancel_pending_survey(&id);
            self.arm_sla(&id);
            self.changed(&id);
            return step;
        }
        let due = self.business_add(now, self.policy.first_response);
        let conv = Conversation {
            customer_id: Some(m.author.id.clone()),
            customer_name: m.author.name.clone(),
            due_at: Some(due),
            waiting_since: Some(now),
            reply_due: Some(due),
            waits: 1,
            asked_words: words(&m.text),
            ..Conversation::blank(m.channel, &m.thread, now)
        };
        let name = m.author.name.as_deref().and_then(first_name).unwrap_or("there");
        let due_text = self.customer_time(due);
        let target = Human(self.policy.first_response).to_string();
        let body = render(
            &self.templates.acknowledgement,
            &[("customer_name", name), ("due", &due_text), ("ticket", &m.thread), ("target", &target)],
        );
        step.actions.push(self.action(
            &conv,
            now,
            ActionKind::Acknowledgement,
            concat(&[&id, "/ack"]),
            Recipient::Customer(m.author.id.clone()),
            body,
        ));
        if self.policy.announce.contains(&m.channel) {
            let customer = display_customer(&conv);
            let due_text = self.agent_time(due);
            let body = render(
                &self.templates.announcement,
                &[("ticket", &m.thread), ("customer", &customer), ("text", m.text.trim()), ("due", &due_text)],
            );
            let key = concat(&[&id, "/announce"]);
            step.actions.push(self.action(&conv, now, ActionKind::Announcement, key, Recipient::Agents, body));
        }
        let slot = self.held.insert(conv);
        self.held.set_newest(slot, true);
        self.arm_sla(&id);
        self.changed(&id);
        step
    }

    fn agent_message(&mut self, now: Timestamp, m: &Message) -> Step {
        let id = Conversation::key(m.channel, &m.thread);
        let slot = match self.held.slot(&id) {
            Some(slot) => slot,
            None => self.held.insert(Conversation {
                assigned: Some(m.author.id.clone()),
                ..Conversation::blank(m.channel, &m.thread, now)
            }),
        };
        self.held.set_newest(slot, false);
        let conv = self.held.get_mut(&id).expect("inserted above");
        let first = conv.customer_id.is_some() && conv.first_reply_at.is_none();
        // A reply at exactly the due instant is on time.
        let late = first && conv.due_at.is_some_and(|due| now > due);
        if first {
            conv.first_reply_at = Some(now);
            conv.first_reply_by = Some(m.author.id.clone());
        }
        conv.assigned.get_or_insert_with(|| m.author.id.clone());
        // Any agent reply answers the reply now owed.
        let answered = conv.reply_due.take().is_some();
        if answered {
            conv.waiting_since = None;
        }
        if conv.customer_id.is_some() && conv.status == Status::Open {
            conv.silent_since = Some(now);
        }
        if answered {
            self.disarm(&id, |k| k == TimerKind::Sla);
        }
        self.arm_silence(&id);
        let held = self.held.get(&id).expect("inserted above");
        let result = self.rules.check(&m.text, held.check_context(first, late));
        if let Some(c) = self.held.get_mut(&id) {
            c.asked_words = 0;
            c.name_used |= c.customer_name.as_deref().and_then(first_name).is_some_and(|n| contains_word(&m.text, n));
        }
        let conv = self.held.get(&id).expect("inserted above");
        let mut step = Step::default();
        if !result.findings.is_empty() {
            let feedback = result.feedback(&m.text);
            let body = render(&self.templates.feedback, &[("ticket", &conv.thread), ("feedback", feedback.trim_end())]);
            let key = concat(&["feedback/", m.channel.as_str(), ":", &m.id]);
            step.actions.push(self.action(
                conv,
                now,
                ActionKind::Feedback,
                key,
                Recipient::Agent(m.author.id.clone()),
                body,
            ));
        }
        self.changed(&id);
        step.check = Some(ReplyCheck {
            message_id: m.id.clone(),
            conversation: id,
            agent: m.author.id.clone(),
            at: now,
            first,
            late,
            overridden: false,
            result,
        });
        step
    }

    fn assign(&mut self, channel: Option<Channel>, thread: &str, agent: &str) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("assignment of unknown thread \"{thread}\" ignored"));
        };
        let conv = self.held.get_mut(&id).expect("found above");
        conv.assigned = Some(agent.to_string());
        self.changed(&id);
        Step::default()
    }

    fn relay(&mut self, now: Timestamp, m: &Message, send_anyway: bool) -> Step {
        let id = Conversation::key(m.channel, &m.thread);
        let Some(conv) = self.held.get(&id) else {
            return notice(format!("reply for unknown thread \"{}\" not relayed", m.thread));
        };
        let Some(customer) = conv.customer_id.clone() else {
            return notice(format!("thread \"{}\" has no customer to relay a reply to", m.thread));
        };
        let first = conv.first_reply_at.is_none();
        let late = first && conv.due_at.is_some_and(|due| now > due);
        let verdict = self.rules.check(&m.text, conv.check_context(first, late));
        let breaks = verdict.findings.iter().any(|f| f.severity == super::rules::Severity::Error);
        if self.policy.enforce && breaks && !send_anyway {
            let conv = conv.clone();
            let feedback = verdict.feedback(&m.text);
            let body = render(&self.templates.held, &[("ticket", &conv.thread), ("feedback", feedback.trim_end())]);
            let key = format!("held/{}:{}", m.channel.as_str(), m.id);
            return Step {
                actions: vec![self.action(
                    &conv,
                    now,
                    ActionKind::Held,
                    key,
                    Recipient::Agent(m.author.id.clone()),
                    body,
                )],
                notice: Some(format!("reply to \"{}\" held: it breaks an error rule", m.thread)),
                ..Step::default()
            };
        }
        let (key, text) = (format!("reply/{}:{}", m.channel.as_str(), m.id), m.text.clone());
        let mut step = self.agent_message(now, m);
        if let Some(check) = &mut step.check {
            check.overridden = self.policy.enforce && breaks;
        }
        let conv = self.held.get(&id).expect("agent_message keeps the conversation");
        step.actions.insert(0, self.action(conv, now, ActionKind::Reply, key, Recipient::Customer(customer), text));
        step
    }

    fn posted(&mut self, now: Timestamp, m: &Message) -> Step {
        let id = Conversation::key(m.channel, &m.thread);
        if let (true, Some(conv)) = (self.policy.enforce, self.held.get(&id))
            && conv.customer_id.is_some()
        {
            let first = conv.first_reply_at.is_none();
            let late = first && conv.due_at.is_some_and(|due| now > due);
            let verdict = self.rules.check(&m.text, conv.check_context(first, late));
            if verdict.findings.iter().any(|f| f.severity == super::rules::Severity::Error) {
                let conv = conv.clone();
                let feedback = verdict.feedback(&m.text);
                let body = render(
                    &self.templates.held_chat,
                    &[("ticket", &conv.thread), ("feedback", feedback.trim_end()), ("original", m.text.trim())],
                );
                let key = format!("held/{}:{}", m.channel.as_str(), m.id);
                let mut held =
                    self.action(&conv, now, ActionKind::Held, key, Recipient::Agent(m.author.id.clone()), body);
                held.about = Some(m.id.clone());
                return Step {
                    actions: vec![held],
                    notice: Some(format!("reply in \"{}\" taken back: it breaks an error rule", m.thread)),
                    ..Step::default()
                };
            }
        }
        self.agent_message(now, m)
    }

    fn reopen(&mut self, now: Timestamp, channel: Option<Channel>, thread: &str, by: &str) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("reopen of unknown thread \"{thread}\" ignored"));
        };
        let conv = self.held.get_mut(&id).expect("found above");
        if conv.status == Status::Open {
            return notice(format!("thread \"{thread}\" is open already"));
        }
        conv.status = Status::Open;
        let resolution = conv.resolved_at.take().map(|resolved_at| Resolution {
            conversation: id.clone(),
            resolved_at,
            reopened_at: Some(now),
        });
        conv.assigned.get_or_insert_with(|| by.to_string());
        let survey = self.cancel_pending_survey(&id);
        self.changed(&id);
        Step { survey, resolution, ..Step::default() }
    }

    fn survey_comment(&mut self, channel: Option<Channel>, thread: &str, comment: &str) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("survey comment for unknown thread \"{thread}\" ignored"));
        };
        let Some(survey) = self.surveys.get_mut(&id).filter(|s| s.status == SurveyStatus::Answered) else {
            return notice(format!("thread \"{thread}\" has no answered survey to comment on"));
        };
        let comment = comment.trim();
        if comment.is_empty() {
            return notice("an empty survey comment changes nothing".into());
        }
        survey.comment = Some(comment.to_string());
        Step { survey: Some(survey.clone()), ..Step::default() }
    }

    fn resolve(&mut self, now: Timestamp, channel: Option<Channel>, thread: &str, by: &str, survey: bool) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("resolve of unknown thread \"{thread}\" ignored"));
        };
        let slot = self.held.slot(&id).expect("found above");
        let conv = self.held.get_mut(&id).expect("found above");
        if conv.status == Status::Resolved {
            return notice(format!("thread \"{thread}\" is already resolved"));
        }
        conv.status = Status::Resolved;
        conv.resolved_at = Some(now);
        conv.reply_due = None;
        conv.waiting_since = None;
        conv.silent_since = None;
        conv.assigned.get_or_insert_with(|| by.to_string());
        self.timers.cancel(slot, |k| matches!(k, TimerKind::Sla | TimerKind::Silence));
        let mut step = Step {
            resolution: Some(Resolution { conversation: id.clone(), resolved_at: now, reopened_at: None }),
            ..Step::default()
        };
        if survey
            && self.policy.surveys_enabled
            && let Some(customer) = conv.customer_id.clone()
        {
            conv.surveys += 1;
            let s = Survey {
                id: format!("{id}#{}", conv.surveys),
                conversation: id.clone(),
                customer_id: customer,
                status: SurveyStatus::Pending,
                due_at: plus(now, self.policy.survey_delay),
                sent_at: None,
                token: None,
                score: None,
                comment: None,
                answered_at: None,
            };
            self.timers.insert(s.due_at, slot, TimerKind::Survey);
            self.surveys.insert(id.clone(), s.clone());
            step.survey = Some(s);
        }
        self.changed(&id);
        step
    }

    fn survey_answer(
        &mut self,
        now: Timestamp,
        channel: Option<Channel>,
        thread: &str,
        score: u8,
        comment: Option<String>,
    ) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("survey answer for unknown thread \"{thread}\" ignored"));
        };
        let expire = self.policy.survey_expire;
        let Some(survey) = self.surveys.get_mut(&id).filter(|s| s.status == SurveyStatus::Sent) else {
            return notice(format!("thread \"{thread}\" has no survey awaiting an answer; answer ignored"));
        };
        if survey.expired(now, expire) {
            return notice(format!("the survey of thread \"{thread}\" has expired; answer ignored"));
        }
        survey.status = SurveyStatus::Answered;
        survey.score = Some(score.min(10));
        survey.comment = comment;
        survey.answered_at = Some(now);
        let survey = survey.clone();
        self.after_answer(now, &id, survey, None)
    }

    fn survey_correction(&mut self, now: Timestamp, channel: Option<Channel>, thread: &str, score: u8) -> Step {
        let Some(id) = self.find(channel, thread) else {
            return notice(format!("survey correction for unknown thread \"{thread}\" ignored"));
        };
        let Some(survey) = self.surveys.get_mut(&id).filter(|s| s.correctable(now)) else {
            return notice(format!("the survey of thread \"{thread}\" can no longer be changed"));
        };
        let before = survey.score;
        survey.score = Some(score.min(10));
        let survey = survey.clone();
        self.after_answer(now, &id, survey, before)
    }

    /// The step for a survey just answered (or re-scored from `before`): the
    /// survey, and an alert to the managers when it newly is a detractor's.
    fn after_answer(&mut self, now: Timestamp, id: &str, survey: Survey, before: Option<u8>) -> Step {
        let score = survey.score.unwrap_or(0);
        let conv = self.held.get(id).expect("found by the caller");
        let mut step = Step::default();
        let was_detractor = before.is_some_and(|b| classify(b) == NpsClass::Detractor);
        if classify(score) == NpsClass::Detractor && !was_detractor {
            let customer = display_customer(conv);
            let score_text = score.to_string();
            let body = render(
                &self.templates.detractor_alert,
                &[
                    ("customer", &customer),
                    ("ticket", &conv.thread),
                    ("score", &score_text),
                    ("comment", survey.comment.as_deref().unwrap_or("(none)")),
                    ("agent", conv.first_reply_by.as_deref().or(conv.assigned.as_deref()).unwrap_or("(no reply yet)")),
                    ("followup", &followup_id(&survey.id)),
                ],
            );
            let key = concat(&[&survey.id, "/detractor"]);
            step.actions.push(self.action(conv, now, ActionKind::DetractorAlert, key, Recipient::Managers, body));
        }
        step.survey = Some(survey);
        step
    }

    fn fire_sla(&mut self, at: Timestamp, id: &str) -> Option<Step> {
        let conv = self.held.get(id)?;
        if !conv.awaiting_reply() {
            return None;
        }
        let stage = conv.sla_stage;
        let due = conv.reply_due?;
        let (waiting_for, target_name) =
            if conv.waits <= 1 { ("a first response", "first-response") } else { ("a reply", "next-response") };
        let (_, kind, to) = self.stage(conv, stage)?;
        let customer = display_customer(conv);
        let due_text = self.agent_time(due);
        let body = match kind {
            ActionKind::NudgeWarning => {
                let left = Human(self.policy.hours.elapsed(at, due)).to_string();
                render(
                    &self.templates.nudge_warning,
                    &[
                        ("ticket", &conv.thread),
                        ("customer", &customer),
                        ("due", &due_text),
                        ("remaining", &left),
                        ("waiting_for", waiting_for),
                        ("target_name", target_name),
                    ],
                )
            }
            ActionKind::NudgeBreach => render(
                &self.templates.nudge_breach,
                &[
                    ("ticket", &conv.thread),
                    ("customer", &customer),
                    ("due", &due_text),
                    ("waiting_for", waiting_for),
                    ("target_name", target_name),
                ],
            ),
            _ => {
                let level = (stage - 1).to_string();
                let overdue = Human(self.policy.hours.elapsed(due, at)).to_string();
                render(
                    &self.templates.escalation,
                    &[
                        ("ticket", &conv.thread),
                        ("customer", &customer),
                        ("due", &due_text),
                        ("overdue", &overdue),
                        ("level", &level),
                        ("waiting_for", waiting_for),
                        ("target_name", target_name),
                    ],
                )
            }
        };
        // The first wait keeps the original key; later waits are numbered.
        let stage_text = stage.to_string();
        let key = if conv.waits <= 1 {
            concat(&[id, "/sla/", &stage_text])
        } else {
            concat(&[id, "/wait", &conv.waits.to_string(), "/sla/", &stage_text])
        };
        let action = self.action(conv, at, kind, key, to, body);
        let conv = self.held.get_mut(id)?;
        conv.sla_stage += 1;
        self.arm_sla(id);
        self.changed(id);
        Some(Step { actions: vec![action], ..Step::default() })
    }

    fn fire_survey(&mut self, at: Timestamp, id: &str) -> Option<Step> {
        let survey = self.surveys.get(id).filter(|s| s.status == SurveyStatus::Pending)?.clone();
        let conv = self.held.get(id)?;
        let throttled = self
            .last_survey_sent
            .get(&survey.customer_id)
            .is_some_and(|last| at.as_second() - last.as_second() < self.policy.survey_throttle);
        let mut updated = survey.clone();
        let mut step = Step::default();
        if throttled {
            updated.status = SurveyStatus::Skipped;
        } else {
            let token = survey_token(&self.secret, &survey.id, at);
            updated.status = SurveyStatus::Sent;
            updated.sent_at = Some(at);
            updated.token = Some(token.clone());
            let name = conv.customer_name.as_deref().and_then(first_name).unwrap_or("there");
            // Chat surveys carry buttons of their own; mail carries a link per score.
            let links = match (&self.policy.survey_url, conv.channel) {
                (Some(base), Channel::Email) => score_links(base, &token),
                _ => String::new(),
            };
            let body = render(
                &self.templates.survey,
                &[("customer_name", name), ("ticket", &conv.thread), ("token", &token), ("score_links", &links)],
            );
            step.actions.push(self.action(
                conv,
                at,
                ActionKind::Survey,
                concat(&[&survey.id, "/send"]),
                Recipient::Customer(survey.customer_id.clone()),
                body,
            ));
            self.last_survey_sent.insert(survey.customer_id.clone(), at);
        }
        self.surveys.insert(id.to_string(), updated.clone());
        step.survey = Some(updated);
        Some(step)
    }

    /// The SLA stages of a conversation: 0 warning, 1 breach, 2.. escalations.
    fn stage(&self, conv: &Conversation, stage: u32) -> Option<(Timestamp, ActionKind, Recipient)> {
        let due = conv.reply_due?;
        let agent = conv.assigned.clone().map_or(Recipient::Agents, Recipient::Agent);
        match stage {
            0 => {
                let target = if conv.waits <= 1 { self.policy.first_response } else { self.policy.next_response? };
                let warn = target * i64::from(self.policy.warn_at_percent) / 100;
                Some((self.business_add(conv.waiting_since?, warn), ActionKind::NudgeWarning, agent))
            }
            1 => Some((due, ActionKind::NudgeBreach, agent)),
            n => {
                let level = self.policy.escalations.get((n - 2) as usize)?;
                Some((self.business_add(due, level.after), ActionKind::Escalation, level.to.clone()))
            }
        }
    }

    fn arm_sla(&mut self, id: &str) {
        let Some(conv) = self.held.get(id) else {
            return;
        };
        if !conv.awaiting_reply() {
            return;
        }
        if let Some((at, _, _)) = self.stage(conv, conv.sla_stage) {
            self.arm(at, id, TimerKind::Sla);
        }
    }

    /// Arms the resolve-after-silence timer, when the channel has one.
    fn arm_silence(&mut self, id: &str) {
        let Some(conv) = self.held.get(id) else { return };
        let (Some(since), Some(&after)) = (conv.silent_since, self.policy.resolve_after_silence.get(&conv.channel))
        else {
            return;
        };
        if conv.status == Status::Open {
            self.disarm(id, |k| k == TimerKind::Silence);
            self.arm(plus(since, after), id, TimerKind::Silence);
        }
    }

    fn fire_silence(&mut self, at: Timestamp, id: &str) -> Option<Step> {
        let conv = self.held.get(id)?;
        let after = *self.policy.resolve_after_silence.get(&conv.channel)?;
        // Only when the silence that armed this timer is still unbroken.
        if conv.status != Status::Open || conv.silent_since.is_none_or(|s| plus(s, after) != at) {
            return None;
        }
        let (channel, thread) = (conv.channel, conv.thread.clone());
        let mut step = self.resolve(at, Some(channel), &thread, "concierge", true);
        step.notice = Some(format!("\"{thread}\" resolved after silence"));
        Some(step)
    }

    fn cancel_pending_survey(&mut self, id: &str) -> Option<Survey> {
        let survey = self.surveys.get_mut(id).filter(|s| s.status == SurveyStatus::Pending)?;
        survey.status = SurveyStatus::Cancelled;
        let survey = survey.clone();
        self.disarm(id, |k| k == TimerKind::Survey);
        Some(survey)
    }

    fn find(&self, channel: Option<Channel>, thread: &str) -> Option<String> {
        match channel {
            Some(c) => {
                let id = Conversation::key(c, thread);
                self.held.contains(&id).then_some(id)
            }
            None => self.held.newest_of(thread).map(str::to_string),
        }
    }

    fn action(
        &self,
        conv: &Conversation,
        at: Timestamp,
        kind: ActionKind,
        key: String,
        to: Recipient,
        body: String,
    ) -> Action {
        let channel = if to.is_staff() { self.policy.staff_channel(conv.channel) } else { conv.channel };
        Action {
            key,
            at,
            kind,
            conversation: conv.id.clone(),
            channel,
            thread: conv.thread.clone(),
            to,
            body,
            about: None,
        }
    }

    /// `hours.add`, saturating at the end of time. Configuration and replay
    /// validation refuse targets and instants that get there, so a live
    /// conversation never does; a timer at `Timestamp::MAX` never fires.
    fn business_add(&self, start: Timestamp, seconds: i64) -> Timestamp {
        self.policy.hours.add(start, seconds).unwrap_or(Timestamp::MAX)
    }

    /// "Monday, November 23 at 9:00 AM EST" in the business time zone.
    fn customer_time(&self, at: Timestamp) -> String {
        at.to_zoned(self.policy.hours.time_zone().clone()).strftime("%A, %B %-d at %-I:%M %p %Z").to_string()
    }

    /// "Mon 2026-11-23 09:00 EST" for agents and managers.
    fn agent_time(&self, at: Timestamp) -> String {
        at.to_zoned(self.policy.hours.time_zone().clone()).strftime("%a %Y-%m-%d %H:%M %Z").to_string()
    }
}

/// The id of the follow-up a detractor's answer to survey `survey_id`
/// (`channel:thread#n`) opens: `thread-n`.
pub fn followup_id(survey_id: &str) -> String {
    let without_channel = survey_id.split_once(':').map_or(survey_id, |(_, rest)| rest);
    match without_channel.rsplit_once('#') {
        Some((thread, n)) => format!("{thread}-{n}"),
        None => without_channel.to_string(),
    }
}

/// The lines of one-click answers: "Or click your score:" then `N  URL` for
/// 0 to 10 (the email channel shows them as a row of buttons).
pub fn score_links(base: &str, token: &str) -> String {
    use std::fmt::Write as _;
    let head = "\n\nOr click your score:";
    let mut out = String::with_capacity(head.len() + 11 * (base.len() + token.len() + 16));
    out.push_str(head);
    for n in 0..=10 {
        write!(out, "\n{n:>2}  {base}{token}?score={n}").expect("writing to a string cannot fail");
    }
    out
}

/// The token of a survey sent at `sent_at`: that instant as 10 hex digits
/// (seconds since the earliest instant there is), then 48 hex digits of
/// HMAC-SHA256(secret, survey id). Tokens made later sort after earlier ones,
/// so each new one is written at the end of the token index (like a UUIDv7),
/// not at a random page of it: random tokens cost a survey's row twice its
/// writing time (BENCHMARKS.md, ingest). Links check both halves (see
/// [`crate::core::survey_link::verify`]); the send time is no secret.
pub fn survey_token(secret: &[u8], survey_id: &str, sent_at: Timestamp) -> String {
    let since = sent_at.as_second().abs_diff(Timestamp::MIN.as_second());
    let signed = sign(secret, survey_id);
    let mut token = String::with_capacity(10 + signed.len());
    std::fmt::Write::write_fmt(&mut token, format_args!("{since:010x}")).expect("writing to a string cannot fail");
    token.push_str(&signed);
    token
}

/// HMAC-SHA256 of `message` under `secret`, as 48 hex digits.
pub fn sign(secret: &[u8], message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    super::text::hex(&mac.finalize().into_bytes()[..24])
}

/// Reads a survey answer written as a reply: a whole number from 0 to 10 at
/// the start ("9", "9/10", "10 - great service"), the rest as the comment.
pub fn score_reply(text: &str) -> Option<(u8, Option<String>)> {
    let t = text.trim_start();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 2 {
        return None;
    }
    let score: u8 = t[..digits].parse().ok().filter(|s| *s <= 10)?;
    let after = &t[digits..];
    let mut chars = after.chars();
    let decimal = matches!(chars.next(), Some('.' | ',')) && chars.next().is_some_and(|c| c.is_ascii_digit());
    if decimal || after.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
        return None; // "9.5", "1,000", "3 4": not a plain score
    }
    let rest = after.trim_start();
    let rest = rest.strip_prefix("/10").or_else(|| rest.strip_prefix("/ 10")).unwrap_or(rest);
    let comment = rest.trim_start_matches(|c: char| c.is_whitespace() || "-–—:.,!".contains(c)).trim();
    Some((score, (!comment.is_empty()).then(|| comment.to_string())))
}

fn notice(text: String) -> Step {
    Step { notice: Some(text), ..Step::default() }
}

fn display_customer(conv: &Conversation) -> String {
    match (&conv.customer_name, &conv.customer_id) {
        (Some(name), Some(id)) => format!("{name} <{id}>"),
        (None, Some(id)) => id.clone(),
        (Some(name), None) => name.clone(),
        (None, None) => "an unknown customer".into(),
    }
}

/// `prefix:rest` in one allocation (keys are made for every input; the
/// formatting machinery was a visible part of replay's time).
pub fn joined(prefix: &str, rest: &str) -> String {
    concat(&[prefix, ":", rest])
}

/// `parts` end to end in one allocation (`format!` grows its string piece by
/// piece: the action keys made for every step were a visible part of
/// replay's time).
pub fn concat(parts: &[&str]) -> String {
    let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// Surveys grouped by their conversation's id.
pub fn by_conversation(surveys: Vec<Survey>) -> HashMap<String, Vec<Survey>> {
    let mut by_conversation: HashMap<String, Vec<Survey>> = HashMap::new();
    for s in surveys {
        by_conversation.entry(s.conversation.clone()).or_default().push(s);
    }
    by_conversation
}

fn survey_seq(id: &str) -> u32 {
    id.rsplit_once('#').and_then(|(_, n)| n.parse().ok()).unwrap_or(0)
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(t.as_second().saturating_add(secs)).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests;
