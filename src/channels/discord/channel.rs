//! The Discord channel at run time: [`DiscordChannel`], the thin shell
//! around [`super::intake`] (what a message means), [`super::rest`] (what is
//! sent) and serenity's gateway (what is received).
//!
//! Intake: serenity's event handler only forwards events to one task that
//! handles them in order: it checks the token first (a 401 is one line
//! naming `discord.token_env`), then runs the gateway, reconnecting with
//! backoff; a bad token (close 4004) or a disallowed intent (close 4014) is
//! one line naming the fix, and the other channels keep running. A message
//! is handed to the driver stamped with the instant it was written, and the
//! channel's read position advances only after the driver committed it. On
//! READY (a start or a reconnect) it catches up: every support text channel
//! after the newest message it had read, forum posts made meanwhile (active
//! threads of a support channel), and every conversation's channel.
//!
//! Delivery: to a customer in the conversation's thread or DM; to an agent
//! by DM (closed DMs: the staff channel, mentioning them); to the team or
//! the managers in the staff channel, mentioning their role. Every message
//! carries a `nonce` derived from its outbox key with `enforce_nonce`, so a
//! resend after a crash is not posted twice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use serenity::all::{
    ActionRowComponent, ClientBuilder, CommandDataOptionValue, Context, EventHandler, GatewayIntents, Guild,
    GuildChannel, HttpBuilder, Interaction, Message as DMessage, Ready,
};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::intake::{Decision, Kind, Place, Seen, Staff, decide};
use super::interactions::{self, Answer, Asked, Known, Opt, What};
use super::rest::{HISTORY_PAGE, Rest, RestError, id_of};
use super::settings::{DiscordSettings, RoleRef};
use super::state;
use crate::channels::{BoxFuture, ChannelAdapter, DeliveryError, Intake};
use crate::config::{Config, Env, Problem};
use crate::core::hours::BusinessHours;
use crate::core::report::Week;
use crate::core::router::{ActionKind, Channel, Conversation, Recipient};
use crate::core::rules::RuleSet;
use crate::driver::Inbound;
use crate::status::Link;
use crate::store::{OutboxItem, Store};

/// The intents concierge needs (Message Content is privileged).
pub fn intents() -> GatewayIntents {
    GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::GUILD_MEMBERS
}

/// The Discord channel.
pub struct DiscordChannel {
    settings: DiscordSettings,
    store: Store,
    rest: Rest,
    staff: Mutex<Staff>,
    bot_id: AtomicU64,
    rules: RuleSet,
    hours: BusinessHours,
}

impl DiscordChannel {
    /// Reads the token (from `env` or its file) and prepares REST.
    pub fn new(
        settings: &DiscordSettings,
        env: &dyn Env,
        store: Store,
        config: &Config,
    ) -> Result<DiscordChannel, Vec<Problem>> {
        let settings = settings.clone().with_token(env).map_err(|p| vec![p])?;
        let rest = Rest::new(settings.base(), &settings.token.0)
            .map_err(|e| vec![Problem { key: "discord.api_base".into(), message: format!("{e:#}") }])?;
        let staff = Staff {
            agent_role: match settings.agent_role {
                RoleRef::Id(id) => Some(id),
                RoleRef::Name(_) => None,
            },
            manager_role: match settings.manager_role {
                RoleRef::Id(id) => Some(id),
                RoleRef::Name(_) => None,
            },
        };
        Ok(DiscordChannel {
            settings,
            store,
            rest,
            staff: Mutex::new(staff),
            bot_id: AtomicU64::new(0),
            rules: config.rules.clone(),
            hours: config.policy.hours.clone(),
        })
    }

    fn staff(&self) -> Staff {
        *self.staff.lock().expect("staff lock")
    }

    fn bot_id(&self) -> Option<u64> {
        Some(self.bot_id.load(Ordering::Relaxed)).filter(|id| *id != 0)
    }

    /// A link to a conversation's channel, for the team.
    fn link(&self, channel_id: u64) -> String {
        format!("https://discord.com/channels/{}/{channel_id}", self.settings.guild_id)
    }
}

/// What serenity's handler forwards.
enum Event {
    Ready { application: u64 },
    Interaction(Box<(Asked, Reply)>),
    Guild(Box<Guild>),
    Thread { id: u64, parent: Option<u64> },
    Message(Box<Seen>),
}

/// serenity's event handler: translates and forwards, nothing else.
struct Handler(mpsc::UnboundedSender<Event>);

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        let _ = self.0.send(Event::Ready { application: ready.application.id.get() });
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        if let Some(asked) = asked_from(&interaction) {
            let _ = self.0.send(Event::Interaction(Box::new(asked)));
        }
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let _ = self.0.send(Event::Guild(Box::new(guild)));
    }

    async fn thread_create(&self, _ctx: Context, thread: GuildChannel) {
        let _ = self.0.send(Event::Thread { id: thread.id.get(), parent: thread.parent_id.map(|p| p.get()) });
    }

    async fn message(&self, _ctx: Context, m: DMessage) {
        let _ = self.0.send(Event::Message(Box::new(seen_from_gateway(&m))));
    }
}

/// Where to send the answer to an interaction.
struct Reply {
    id: u64,
    token: String,
    application: u64,
}

fn asked_from(interaction: &Interaction) -> Option<(Asked, Reply)> {
    let roles =
        |m: Option<&serenity::all::Member>| m.map(|m| m.roles.iter().map(|r| r.get()).collect()).unwrap_or_default();
    let (asked, reply) = match interaction {
        Interaction::Command(c) => {
            let options = c
                .data
                .options
                .iter()
                .filter_map(|o| {
                    let v = match &o.value {
                        CommandDataOptionValue::String(s) => Opt::Text(s.clone()),
                        CommandDataOptionValue::Boolean(b) => Opt::Bool(*b),
                        CommandDataOptionValue::User(u) => Opt::User(u.get()),
                        _ => return None,
                    };
                    Some((o.name.clone(), v))
                })
                .collect();
            let what = What::Command { name: c.data.name.clone(), options };
            let asked =
                Asked { user: c.user.id.get(), roles: roles(c.member.as_deref()), channel: c.channel_id.get(), what };
            (asked, Reply { id: c.id.get(), token: c.token.clone(), application: c.application_id.get() })
        }
        Interaction::Component(c) => {
            let what = What::Button { custom_id: c.data.custom_id.clone() };
            let asked =
                Asked { user: c.user.id.get(), roles: roles(c.member.as_ref()), channel: c.channel_id.get(), what };
            (asked, Reply { id: c.id.get(), token: c.token.clone(), application: c.application_id.get() })
        }
        Interaction::Modal(m) => {
            let fields = m
                .data
                .components
                .iter()
                .flat_map(|row| &row.components)
                .filter_map(|c| match c {
                    ActionRowComponent::InputText(t) => {
                        Some((t.custom_id.clone(), t.value.clone().unwrap_or_default()))
                    }
                    _ => None,
                })
                .collect();
            let what = What::Form { custom_id: m.data.custom_id.clone(), fields };
            let asked =
                Asked { user: m.user.id.get(), roles: roles(m.member.as_ref()), channel: m.channel_id.get(), what };
            (asked, Reply { id: m.id.get(), token: m.token.clone(), application: m.application_id.get() })
        }
        _ => return None,
    };
    Some((asked, reply))
}

fn seen_from_gateway(m: &DMessage) -> Seen {
    let member = m.member.as_deref();
    let name = member
        .and_then(|mb| mb.nick.clone())
        .or_else(|| m.author.global_name.clone())
        .unwrap_or_else(|| m.author.name.clone());
    Seen {
        id: m.id.get(),
        channel_id: m.channel_id.get(),
        guild_id: m.guild_id.map(|g| g.get()),
        author_id: m.author.id.get(),
        author_bot: m.author.bot,
        author_name: name,
        roles: member.map(|mb| mb.roles.iter().map(|r| r.get()).collect()).unwrap_or_default(),
        content: m.content.clone(),
        at: m.timestamp.unix_timestamp(),
    }
}

/// A message from REST history, as the gateway would have given it.
pub fn seen_from_json(v: &Value, guild_id: Option<u64>) -> Option<Seen> {
    let num = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
    let author = &v["author"];
    let at: Timestamp = v["timestamp"].as_str()?.parse().ok()?;
    Some(Seen {
        id: num(&v["id"])?,
        channel_id: num(&v["channel_id"])?,
        guild_id: num(&v["guild_id"]).or(guild_id),
        author_id: num(&author["id"])?,
        author_bot: author["bot"].as_bool().unwrap_or(false),
        author_name: v["member"]["nick"]
            .as_str()
            .or(author["global_name"].as_str())
            .or(author["username"].as_str())
            .unwrap_or("")
            .to_string(),
        roles: v["member"]["roles"].as_array().map(|r| r.iter().filter_map(num).collect()).unwrap_or_default(),
        content: v["content"].as_str().unwrap_or("").to_string(),
        at: at.as_second(),
    })
}

impl ChannelAdapter for DiscordChannel {
    fn channel(&self) -> Channel {
        Channel::Discord
    }

    fn carries(&self, _kind: ActionKind, to: &Recipient) -> bool {
        match to {
            Recipient::Customer(id) | Recipient::Agent(id) => id.parse::<u64>().is_ok(),
            Recipient::Agents | Recipient::Managers => true,
        }
    }

    fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            tokio::select! {
                () = self.clone().run_gateway(intake.clone()) => {}
                () = intake.stopped() => {}
            }
        })
    }

    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.deliver_message(item))
    }
}

impl DiscordChannel {
    /// Checks the token, then runs the gateway until the bot stops,
    /// reconnecting with backoff.
    async fn run_gateway(self: Arc<Self>, intake: Intake) {
        let mut failures = 0u32;
        loop {
            if failures > 0 {
                tokio::time::sleep(crate::backoff::reconnect(failures, Duration::ZERO)).await;
            }
            failures += 1;
            match self.rest.me().await {
                Ok(me) => {
                    self.bot_id.store(id_of(&me).unwrap_or(0), Ordering::Relaxed);
                    match self.rest.roles(self.settings.guild_id).await {
                        Ok(roles) => self.learn_roles(&roles),
                        Err(e) => tracing::warn!("cannot read the server's roles: {e}; will use the gateway's"),
                    }
                }
                Err(RestError::Status { status: 401, .. }) => {
                    tracing::error!(
                        "Discord refused the bot token (401 Unauthorized): check discord.token_env (or token_file) \
                         and reset the token in the Developer Portal if needed; will retry"
                    );
                    intake.link(Channel::Discord, Link::Down("Discord refused the bot token (401)".into()));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("cannot reach Discord at {}: {e}; will retry", self.settings.base());
                    intake.link(Channel::Discord, Link::Down(format!("cannot reach Discord: {e}")));
                    continue;
                }
            }
            let mut http = HttpBuilder::new(&self.settings.token.0);
            if let Some(base) = &self.settings.api_base {
                // serenity's rate limiter would bypass the proxy: concierge
                // retries through the outbox itself.
                http = http.proxy(base.clone()).ratelimiter_disabled(true);
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let mut client =
                match ClientBuilder::new_with_http(http.build(), intents()).event_handler(Handler(tx)).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("cannot start the Discord client: {e}; will retry");
                        continue;
                    }
                };
            tracing::info!(guild = self.settings.guild_id, "discord channel: connecting to the gateway");
            let shards = client.shard_manager.clone();
            let events = tokio::spawn(self.clone().handle_events(rx, intake.clone()));
            let ended = tokio::select! {
                r = client.start() => Some(r),
                () = intake.stopped() => None,
            };
            shards.shutdown_all().await;
            events.abort();
            match ended {
                None => return,
                Some(Ok(())) => {
                    tracing::warn!("the Discord gateway closed; reconnecting");
                    intake.link(Channel::Discord, Link::Down("the gateway closed; reconnecting".into()));
                }
                Some(Err(e)) => {
                    let why = explain_gateway(&e);
                    tracing::error!("{why}");
                    intake.link(Channel::Discord, Link::Down(why));
                }
            }
        }
    }

    /// Handles forwarded events one at a time, in order.
    async fn handle_events(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Event>, intake: Intake) {
        let mut parents: HashMap<u64, u64> = HashMap::new();
        while let Some(event) = rx.recv().await {
            let outcome = match event {
                Event::Ready { application } => {
                    let commands = interactions::definitions();
                    if let Err(e) = self.rest.register_commands(application, self.settings.guild_id, &commands).await {
                        tracing::error!(
                            "cannot register the slash commands: {e}; invite the bot with the applications.commands scope"
                        );
                    }
                    tracing::info!("discord channel: connected; catching up on what was written meanwhile");
                    intake.link(Channel::Discord, Link::Up);
                    let caught_up = self.catch_up(&intake, &mut parents).await;
                    if caught_up.is_ok() {
                        tracing::info!("discord channel: caught up; reading live");
                    }
                    caught_up
                }
                Event::Interaction(boxed) => {
                    let (asked, reply) = *boxed;
                    // Answered apart, within Discord's 3 seconds.
                    tokio::spawn(self.clone().interact(asked, reply, intake.clone()));
                    Ok(())
                }
                Event::Guild(g) => {
                    self.learn_guild(&g, &mut parents);
                    Ok(())
                }
                Event::Thread { id, parent } => {
                    if let Some(p) = parent {
                        parents.insert(id, p);
                    }
                    Ok(())
                }
                Event::Message(m) => self.consume(&m, &intake, &mut parents).await,
            };
            if let Err(e) = outcome {
                tracing::warn!("discord intake: {e:#}; the message is read again after the next reconnect");
            }
        }
    }

    /// Resolves role names and notes the parents of active threads.
    fn learn_guild(&self, g: &Guild, parents: &mut HashMap<u64, u64>) {
        if g.id.get() != self.settings.guild_id {
            return;
        }
        let roles: Vec<(u64, String)> = g.roles.values().map(|r| (r.id.get(), r.name.clone())).collect();
        self.learn_roles(&roles);
        for t in &g.threads {
            if let Some(p) = t.parent_id {
                parents.insert(t.id.get(), p.get());
            }
        }
    }

    /// Who is staff, from the server's roles (id, name).
    fn learn_roles(&self, roles: &[(u64, String)]) {
        let find = |r: &RoleRef| match r {
            RoleRef::Id(id) => Some(*id),
            RoleRef::Name(name) => roles.iter().find(|(_, n)| n == name).map(|(id, _)| *id),
        };
        let staff =
            Staff { agent_role: find(&self.settings.agent_role), manager_role: find(&self.settings.manager_role) };
        for (key, role, found) in [
            ("discord.agent_role", &self.settings.agent_role, staff.agent_role),
            ("discord.manager_role", &self.settings.manager_role, staff.manager_role),
        ] {
            if found.is_none() {
                tracing::error!("{key}: the server has no role {role:?}; give a role id or its exact name");
            }
        }
        *self.staff.lock().expect("staff lock") = staff;
    }

    /// Reads what was written while concierge was away.
    async fn catch_up(&self, intake: &Intake, parents: &mut HashMap<u64, u64>) -> anyhow::Result<()> {
        let mut channels: Vec<u64> = Vec::new();
        for &c in &self.settings.support_channels {
            if state::last_read(&self.store, c).await?.is_some() {
                channels.push(c);
                continue;
            }
            // First start on this channel: it is read from here on (what was
            // written before concierge came is not opened as tickets). The
            // point is recorded now, so a message written after it is caught
            // up even if concierge stops before reading it.
            match self.rest.newest_message(c).await {
                Ok(newest) => state::read_up_to(&self.store, c, newest.unwrap_or(0)).await?,
                Err(e) => tracing::warn!(channel = c, "cannot read the newest message of a support channel: {e}"),
            }
        }
        let known: Vec<u64> = state::all(&self.store).await?.into_iter().map(|t| t.channel_id).collect();
        // Forum posts made meanwhile are new threads of a support channel.
        match self.rest.active_threads(self.settings.guild_id).await {
            Ok(threads) => {
                for (thread, parent) in threads {
                    if self.settings.support_channels.contains(&parent) && !known.contains(&thread) {
                        parents.insert(thread, parent);
                        channels.push(thread);
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list the server's active threads: {e}"),
        }
        channels.extend(known);
        for channel in channels {
            let mut after = state::last_read(&self.store, channel).await?.unwrap_or(0);
            // Page by page: a long absence leaves more than one page.
            loop {
                let page = match self.rest.messages_after(channel, after).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::warn!(channel, "cannot read the history of a Discord channel: {e}");
                        break;
                    }
                };
                for m in page.iter().filter_map(|v| seen_from_json(v, Some(self.settings.guild_id))) {
                    self.consume(&m, intake, parents).await?;
                }
                match page.last().and_then(id_of) {
                    Some(last) if page.len() >= HISTORY_PAGE && last > after => after = last,
                    _ => break,
                }
            }
        }
        Ok(())
    }

    /// Where a message was written, as the intake decision needs it.
    async fn place(&self, m: &Seen, parents: &mut HashMap<u64, u64>) -> anyhow::Result<Place> {
        if let Some(t) = state::by_channel(&self.store, m.channel_id).await? {
            return Ok(Place::Known { ticket: t.ticket });
        }
        if m.guild_id.is_none() {
            return Ok(Place::NewDm);
        }
        if m.guild_id != Some(self.settings.guild_id) {
            return Ok(Place::Elsewhere);
        }
        if self.settings.support_channels.contains(&m.channel_id) {
            return Ok(Place::SupportChannel);
        }
        let parent = match parents.get(&m.channel_id) {
            Some(p) => Some(*p),
            None => {
                let found =
                    self.rest.channel(m.channel_id).await.ok().and_then(|c| c["parent_id"].as_str()?.parse().ok());
                if let Some(p) = found {
                    parents.insert(m.channel_id, p);
                }
                found
            }
        };
        Ok(match parent {
            Some(p) if self.settings.support_channels.contains(&p) => Place::SupportThread,
            _ => Place::Elsewhere,
        })
    }

    /// Hands one message to the driver (once committed, its position advances).
    async fn consume(&self, m: &Seen, intake: &Intake, parents: &mut HashMap<u64, u64>) -> anyhow::Result<()> {
        let place = self.place(m, parents).await?;
        let (input, read_in) = match decide(m, &place, &self.staff(), self.bot_id()) {
            Decision::Ignore { reason } => {
                tracing::debug!(message = m.id, reason, "discord message ignored");
                return Ok(());
            }
            Decision::Continue { input, .. } => (input, m.channel_id),
            Decision::Open { ticket, kind, thread_name, input } => {
                let home = match kind {
                    Kind::Thread => self.start_thread(m, &thread_name).await,
                    Kind::Forum | Kind::Dm => m.channel_id,
                };
                state::open(&self.store, &ticket, home, kind, m.author_id).await?;
                tracing::info!(%ticket, kind = kind.as_str(), "discord conversation opened");
                (input, m.channel_id)
            }
        };
        let at = Timestamp::from_second(m.at)
            .ok()
            .filter(|t| *t <= intake.clock.now())
            .unwrap_or_else(|| intake.clock.now());
        // A failed commit (the database busy) is tried again a few times.
        let mut stored = false;
        for attempt in 0..3u64 {
            let (done, committed) = oneshot::channel();
            let inbound = Inbound { at, input: input.clone(), done: Some(done) };
            intake.inbox.send(inbound).await.map_err(|_| anyhow::anyhow!("the bot is stopping"))?;
            if committed.await == Ok(true) {
                stored = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
        }
        if !stored {
            anyhow::bail!("message {} could not be stored", m.id);
        }
        state::read_up_to(&self.store, read_in, m.id).await?;
        Ok(())
    }

    /// Starts the conversation's thread on the customer's message; its id is
    /// the message's. Rate limits and server errors are waited out (a few
    /// tries); if Discord refuses (a missing permission), the conversation
    /// is answered in the channel itself, and the line says what to grant.
    async fn start_thread(&self, m: &Seen, name: &str) -> u64 {
        for attempt in 0..5u32 {
            let wait = match self.rest.start_thread(m.channel_id, m.id, name).await {
                Ok(t) => return id_of(&t).unwrap_or(m.id),
                // 160004: a thread was already started on this message (a retry).
                Err(e) if e.code() == Some(160_004) => return m.id,
                Err(RestError::RateLimited { after }) => after,
                Err(e @ (RestError::Network(_) | RestError::Status { status: 500.., .. })) => {
                    tracing::warn!("starting a thread failed: {e}; trying again");
                    Duration::from_secs(1 << attempt)
                }
                Err(e) => {
                    let line = e.delivery(&format!("Create Public Threads in channel {}", m.channel_id));
                    tracing::error!("cannot start a thread for a customer's message: {line}; answering in the channel");
                    return m.channel_id;
                }
            };
            tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
        }
        tracing::error!("cannot start a thread for message {}: Discord keeps failing; answering in the channel", m.id);
        m.channel_id
    }

    /// Answers one interaction: looks up what it needs, applies the input
    /// through the driver, replies.
    async fn interact(self: Arc<Self>, asked: Asked, reply: Reply, intake: Intake) {
        if let Err(e) = self.try_interact(&asked, &reply, &intake).await {
            tracing::warn!("discord interaction not answered: {e:#}");
            let sorry =
                json!({"type": 4, "data": {"content": "Sorry, that did not work; please try again.", "flags": 64}});
            let _ = self.rest.respond(reply.id, &reply.token, &sorry).await;
        }
    }

    async fn try_interact(&self, asked: &Asked, reply: &Reply, intake: &Intake) -> anyhow::Result<()> {
        let ticket = match &asked.what {
            What::Command { .. } => state::by_channel(&self.store, asked.channel).await?.map(|t| t.ticket),
            What::Button { custom_id } | What::Form { custom_id, .. } => {
                interactions::button_ticket(custom_id).map(str::to_string)
            }
        };
        let id = ticket.as_deref().map(|t| Conversation::key(Channel::Discord, t));
        let conversation = match &id {
            Some(id) => self.store.conversation(id).await?,
            None => None,
        };
        let survey = match &id {
            Some(id) => self.store.latest_survey(id).await?,
            None => None,
        };
        let held = match &asked.what {
            What::Button { custom_id } if custom_id.starts_with("anyway:") => {
                let original = custom_id.rsplit(':').next().unwrap_or("");
                self.store
                    .message(Channel::Discord, original)
                    .await?
                    .and_then(|(author, text)| Some((author.parse().ok()?, text)))
            }
            _ => None,
        };
        let known = Known { ticket, conversation: conversation.as_ref(), survey: survey.as_ref(), held };
        let response = match interactions::answer(asked, &known, &self.staff(), &self.rules) {
            Answer::Say { text, input, components } => {
                if let Some(input) = input {
                    let (done, committed) = oneshot::channel();
                    let at = intake.clock.now();
                    intake.inbox.send(Inbound { at, input, done: Some(done) }).await?;
                    anyhow::ensure!(committed.await == Ok(true), "the input could not be stored");
                }
                let mut data = json!({"content": truncate(&text, 2000), "flags": 64});
                if let Some(c) = components {
                    data["components"] = c;
                }
                json!({"type": 4, "data": data})
            }
            Answer::Form { custom_id, title, label } => json!({"type": 9, "data": {
                "custom_id": custom_id, "title": title,
                "components": [{"type": 1, "components": [
                    {"type": 4, "custom_id": "comment", "style": 2, "label": label, "required": true, "max_length": 1000}
                ]}]
            }}),
            Answer::Summary { week } => {
                // Slow work: defer within the 3 seconds, then follow up.
                self.rest.respond(reply.id, &reply.token, &json!({"type": 5, "data": {"flags": 64}})).await?;
                return self.summary(week, reply, intake.clock.now()).await;
            }
        };
        self.rest.respond(reply.id, &reply.token, &response).await?;
        Ok(())
    }

    /// The weekly figures as an embed, with the HTML report attached.
    async fn summary(&self, week: Option<Week>, reply: &Reply, now: Timestamp) -> anyhow::Result<()> {
        let week = week.unwrap_or_else(|| Week::containing(now, self.hours.time_zone()));
        let (report, prev) = crate::reports::pair(&self.store, &self.hours, week, now).await?;
        let json_text = crate::format::render(crate::format::Format::Json, &report, &prev, Some(&self.rules));
        let html = crate::format::render(crate::format::Format::Html, &report, &prev, Some(&self.rules));
        let r: Value = serde_json::from_str(&json_text)?;
        let show = |v: &Value| if v.is_null() { "n/a".to_string() } else { v.to_string() };
        let secs = |v: &Value| v.as_i64().map_or("n/a".into(), |s| crate::core::duration::Human(s).to_string());
        let fields = json!([
            {"name": "Conversations", "value": format!("{} opened, {} resolved", r["conversations"]["opened"], r["conversations"]["resolved"]), "inline": true},
            {"name": "First response", "value": format!("median {}, p90 {}", secs(&r["first_response"]["median_seconds"]), secs(&r["first_response"]["p90_seconds"])), "inline": true},
            {"name": "SLA met", "value": format!("{}% ({} met, {} breached)", show(&r["sla"]["met_percent"]), r["sla"]["met"], r["sla"]["breached"]), "inline": true},
            {"name": "Replies checked", "value": format!("{} ({} without findings)", r["standards"]["replies_checked"], r["standards"]["replies_passed_clean"]), "inline": true},
            {"name": "NPS", "value": format!("{} from {} answers", show(&r["nps"]["score"]), r["nps"]["responses"]), "inline": true},
            {"name": "Failed deliveries", "value": r["deliveries"]["failed"].to_string(), "inline": true}
        ]);
        let message = json!({
            "flags": 64,
            "embeds": [{"title": format!("Support summary {week}"), "description": format!("As of {now}; the charts are in the attached page."), "fields": fields}]
        });
        let name = format!("summary-{week}.html");
        self.rest.follow_up_with_file(reply.application, &reply.token, &message, &name, html.into_bytes()).await?;
        Ok(())
    }

    async fn deliver_message(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let db = |e: anyhow::Error| DeliveryError::Transient(format!("database error: {e:#}"));
        let ticket = state::by_ticket(&self.store, &item.thread).await.map_err(db)?;
        let nonce = nonce(&item.key);
        let mut text = item.body.clone();
        let thread_link = ticket.as_ref().map(|t| self.link(t.channel_id));
        let for_team = !matches!(item.recipient, Recipient::Customer(_));
        if for_team && let Some(link) = &thread_link {
            text.push_str(&format!("\n{link}"));
        }
        // A reply taken back: delete it from the customer's thread first.
        if item.kind == ActionKind::Held
            && let (Some(t), Some(about)) = (&ticket, item.about.as_deref().and_then(|a| a.parse::<u64>().ok()))
        {
            self.rest
                .delete_message(t.channel_id, about)
                .await
                .map_err(|e| e.delivery(&format!("Manage Messages in channel {}", t.channel_id)))?;
        }
        let components = components(item);
        match &item.recipient {
            Recipient::Customer(_) => {
                let Some(t) = ticket else {
                    return Err(DeliveryError::Permanent(format!(
                        "no Discord conversation has ticket {}",
                        item.thread
                    )));
                };
                let target =
                    if item.kind == ActionKind::Survey && self.settings.survey_in == super::settings::SurveyIn::Dm {
                        self.rest.dm_channel(t.customer_id).await.map_err(|e| e.delivery("a DM to the customer"))?
                    } else {
                        t.channel_id
                    };
                self.post(target, &text, components, &nonce, "Send Messages in Threads").await
            }
            Recipient::Agent(id) => {
                let Ok(user) = id.parse::<u64>() else {
                    return Err(DeliveryError::Permanent(format!("\"{id}\" is not a Discord user id")));
                };
                let message = message_json(&text, components.clone());
                let by_dm = match self.rest.dm_channel(user).await {
                    Ok(channel) => self.rest.post(channel, message, &nonce).await.map(|_| ()),
                    Err(e) => Err(e),
                };
                match by_dm {
                    Ok(()) => Ok(()),
                    // 50007: their DMs are closed; tell them in the staff channel.
                    Err(e) if e.code() == Some(50_007) => {
                        let text = format!("<@{user}> (your DMs are closed) {text}");
                        self.post(self.settings.staff_channel, &text, components, &nonce, "Send Messages").await
                    }
                    Err(e) => Err(e.delivery("Send Messages (a DM to the agent)")),
                }
            }
            Recipient::Agents | Recipient::Managers => {
                let mut staff = self.staff();
                if staff.agent_role.is_none() || staff.manager_role.is_none() {
                    // Delivered before the gateway connected: learn the roles now,
                    // so the notice mentions them.
                    if let Ok(roles) = self.rest.roles(self.settings.guild_id).await {
                        self.learn_roles(&roles);
                        staff = self.staff();
                    }
                }
                let role = if item.recipient == Recipient::Agents { staff.agent_role } else { staff.manager_role };
                let mention = role.map(|r| format!("<@&{r}> ")).unwrap_or_default();
                if item.kind == ActionKind::Summary {
                    // The figures as text in a code block, the charts attached.
                    let head = format!(
                        "{mention}Weekly support summary {}; the charts are in the attached page.",
                        item.thread
                    );
                    let room = 2000 - head.chars().count() - 12;
                    let content = format!("{head}\n```\n{}\n```", truncate(item.body.trim_end(), room));
                    let page = item.html.clone().unwrap_or_default().into_bytes();
                    let name = format!("summary-{}.html", item.thread);
                    return self
                        .rest
                        .post_with_file(self.settings.staff_channel, json!({"content": content}), &nonce, &name, page)
                        .await
                        .map(|_| ())
                        .map_err(|e| {
                            e.delivery(&format!(
                                "Send Messages and Attach Files in channel {}",
                                self.settings.staff_channel
                            ))
                        });
                }
                let text = format!("{mention}{text}");
                self.post(self.settings.staff_channel, &text, components, &nonce, "Send Messages").await
            }
        }
    }

    async fn post(
        &self,
        channel: u64,
        text: &str,
        components: Option<Value>,
        nonce: &str,
        permission: &str,
    ) -> Result<(), DeliveryError> {
        self.rest
            .post(channel, message_json(text, components), nonce)
            .await
            .map(|_| ())
            .map_err(|e| e.delivery(&format!("{permission} in channel {channel}")))
    }
}

/// A message's JSON: the text (within Discord's 2000 characters) and any buttons.
fn message_json(text: &str, components: Option<Value>) -> Value {
    let mut message = json!({"content": truncate(text, 2000)});
    if let Some(c) = components {
        message["components"] = c;
    }
    message
}

/// Buttons: 0-10 under a survey; "Send anyway" under a reply taken back.
fn components(item: &OutboxItem) -> Option<Value> {
    let button =
        |label: String, id: String, style: u8| json!({"type": 2, "style": style, "label": label, "custom_id": id});
    match item.kind {
        ActionKind::Survey => {
            let rows: Vec<Value> = [0..5, 5..10, 10..11]
                .into_iter()
                .map(|scores| {
                    let buttons: Vec<Value> = scores
                        .map(|s: u8| button(s.to_string(), format!("nps:{}:{s}", item.thread), 2))
                        .collect();
                    json!({"type": 1, "components": buttons})
                })
                .collect();
            Some(Value::Array(rows))
        }
        ActionKind::Held => item.about.as_ref().map(|about| {
            json!([{"type": 1, "components": [button("Send anyway".into(), format!("anyway:{}:{about}", item.thread), 4)]}])
        }),
        _ => None,
    }
}

/// A Discord nonce (at most 25 characters) derived from the outbox key.
pub fn nonce(key: &str) -> String {
    crate::core::text::hex(&Sha256::digest(key.as_bytes()))[..25].to_string()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max { text.to_string() } else { text.chars().take(max - 1).collect::<String>() + "…" }
}

/// One line for a gateway failure, naming the fix.
fn explain_gateway(e: &serenity::Error) -> String {
    use serenity::gateway::GatewayError;
    match e {
        serenity::Error::Gateway(GatewayError::InvalidAuthentication) => {
            "Discord closed the gateway: the bot token is invalid (4004); check discord.token_env (or token_file); will retry".into()
        }
        serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents) => {
            "Discord closed the gateway: a privileged intent is not allowed (4014); enable the Message Content intent \
             (and Server Members) for the bot in the Developer Portal → Bot → Privileged Gateway Intents; will retry"
                .into()
        }
        other => format!("the Discord gateway failed: {other}; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_short_and_stable_per_outbox_key() {
        assert_eq!(nonce("discord:T1/ack").len(), 25);
        assert_eq!(nonce("discord:T1/ack"), nonce("discord:T1/ack"));
        assert_ne!(nonce("discord:T1/ack"), nonce("discord:T2/ack"));
    }

    #[test]
    fn history_json_reads_like_a_gateway_message() {
        let v = json!({
            "id": "5001", "channel_id": "4242", "content": "still broken",
            "timestamp": "2026-11-23T10:00:00.000000+00:00",
            "author": {"id": "2000", "username": "ana", "global_name": "Ana Lima"},
            "member": {"roles": ["900"], "nick": null}
        });
        let m = seen_from_json(&v, Some(1)).unwrap();
        assert_eq!((m.id, m.channel_id, m.guild_id, m.author_id), (5001, 4242, Some(1), 2000));
        assert_eq!((m.author_name.as_str(), m.roles.clone(), m.at), ("Ana Lima", vec![900], 1_795_428_000));
    }
}
