//! The email channel at run time: the intake loop (IMAP → router) and the
//! outbound side (outbox → SMTP), the thin shell around [`super::intake`],
//! [`super::imap`], [`super::compose`] and [`super::smtp`].
//!
//! Durability: a fetched mail is handed to the driver and the mailbox position
//! advances only after the driver has committed it; a mail that cannot be
//! parsed is kept whole in the database and never blocks the mailbox. Network
//! or server errors are logged as one line naming the setting, then retried
//! with exponential backoff and jitter; the bot never exits over them.

use std::time::Duration;

use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};

use crate::core::router::{Action, ActionKind, Channel, Conversation, Step};
use crate::driver::{Clock, Inbound, LogOutbound, Outbound};
use crate::email::compose::message_id;
use crate::email::imap::{Fetched, fetch_new, wait_for_mail};
use crate::email::intake::{Decision, Lookup, decide, message_key};
use crate::email::message::strip_reply;
use crate::email::message::{Email, ticket_token};
use crate::email::settings::EmailSettings;
use crate::email::smtp::SmtpOutbound;
use crate::email::state::{self, Position};
use crate::store::{Batch, OutboxItem, Store};

/// Reads the configured mailboxes until `inbox` closes.
pub async fn run_intake(store: Store, settings: EmailSettings, inbox: mpsc::Sender<Inbound>, clock: Clock) {
    let mut failures: u32 = 0;
    loop {
        let mut ok = true;
        let sent = settings.sent_mailbox.iter().map(|m| (m, true));
        for (mailbox, in_sent) in settings.mailboxes.iter().map(|m| (m, false)).chain(sent) {
            match poll_mailbox(&store, &settings, mailbox, in_sent, &inbox, clock).await {
                Ok(polled) => {
                    if polled.consumed > 0 {
                        tracing::info!(mailbox = %mailbox, messages = polled.consumed, "mail read");
                    }
                    ok &= polled.ok;
                }
                Err(Stop) => return,
            }
        }
        failures = if ok { 0 } else { failures + 1 };
        if ok {
            // Wait for new mail in the first mailbox: IDLE where offered, else poll.
            let (s, name) = (settings.clone(), settings.mailboxes[0].clone());
            let since = state::position(&store, &name).await.ok().flatten();
            let timeout = Duration::from_secs(settings.poll_interval as u64);
            let waiting = tokio::task::spawn_blocking(move || wait_for_mail(&s, &name, since, timeout));
            tokio::select! {
                waited = waiting => {
                    if let Ok(Err(line)) = waited {
                        tracing::warn!("{line}; will retry");
                        failures += 1;
                    }
                }
                () = inbox.closed() => return,
            }
        }
        if failures > 0 {
            tokio::select! {
                () = tokio::time::sleep(retry_delay(failures, settings.poll_interval)) => {}
                () = inbox.closed() => return,
            }
        }
    }
}

/// What one poll of a mailbox did.
struct Polled {
    consumed: usize,
    /// False when it stopped on an error (then the loop backs off).
    ok: bool,
}

/// The inbox closed: the bot is stopping.
struct Stop;

/// Exponential backoff from 2 s to 5 minutes with ±25% jitter.
fn retry_delay(failures: u32, poll: i64) -> Duration {
    let base = (2u64 << failures.min(8)).min(300).max(poll.clamp(1, 300) as u64 / 4);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    let spread = (u64::from(u16::from_le_bytes(jitter)) % 500) as i64 - 250; // ±25%, in thousandths
    Duration::from_millis((base as i64 * (1000 + spread)).max(500) as u64)
}

/// Reads one mailbox past its stored position. Errors are logged (one line)
/// and leave the position where the last stored mail put it.
async fn poll_mailbox(
    store: &Store,
    settings: &EmailSettings,
    mailbox: &str,
    in_sent: bool,
    inbox: &mpsc::Sender<Inbound>,
    clock: Clock,
) -> Result<Polled, Stop> {
    let fail = |line: String, consumed: usize| {
        tracing::warn!(mailbox = %mailbox, "{line}; will retry");
        Ok(Polled { consumed, ok: false })
    };
    let since = match state::position(store, mailbox).await {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot read the mailbox position: {e:#}"), 0),
    };
    let (s, name) = (settings.clone(), mailbox.to_string());
    let new = match tokio::task::spawn_blocking(move || fetch_new(&s, &name, since)).await {
        Ok(Ok(new)) => new,
        Ok(Err(line)) => return fail(line, 0),
        Err(e) => return fail(format!("the IMAP task failed: {e}"), 0),
    };
    let mut consumed = 0;
    for fetched in new.messages {
        match consume(store, settings, (mailbox, in_sent), new.uidvalidity, &fetched, inbox, clock).await {
            Ok(()) => {}
            Err(Some(line)) => return fail(line, consumed),
            Err(None) => return Err(Stop),
        }
        let pos = Position { uidvalidity: new.uidvalidity, last_uid: fetched.uid };
        if let Err(e) = state::set_position(store, mailbox, pos).await {
            return fail(format!("cannot store the mailbox position: {e:#}"), consumed);
        }
        consumed += 1;
    }
    Ok(Polled { consumed, ok: true })
}

/// Stores one mail through the driver. `Err(None)`: the bot is stopping.
async fn consume(
    store: &Store,
    settings: &EmailSettings,
    (mailbox, in_sent): (&str, bool),
    uidvalidity: u32,
    fetched: &Fetched,
    inbox: &mpsc::Sender<Inbound>,
    clock: Clock,
) -> Result<(), Option<String>> {
    let at = clock.now();
    let db = |e: anyhow::Error| Some(format!("database error: {e:#}"));
    let email = match Email::parse(&fetched.raw) {
        Ok(email) => email,
        Err(reason) => {
            tracing::warn!(mailbox = %mailbox, uid = fetched.uid, %reason, "mail kept unparsed");
            state::keep_unparsed(store, mailbox, uidvalidity, fetched.uid, &reason.to_string(), &fetched.raw, at)
                .await
                .map_err(db)?;
            return Ok(());
        }
    };
    let key = message_key(&email, &fetched.raw);
    let token_ticket = match ticket_token(&email.subject) {
        Some(t) if state::ticket_exists(store, t).await.map_err(db)? => Some(t.to_string()),
        _ => None,
    };
    let refs: Vec<&str> = email.thread_refs().collect();
    let ref_ticket = state::ticket_of(store, &refs).await.map_err(db)?;
    let customer = match token_ticket.as_ref().or(ref_ticket.as_ref()) {
        Some(t) => state::customer_of(store, t).await.map_err(db)?,
        None => None,
    };
    let ours = state::is_sent_by_us(store, &key).await.map_err(db)?;
    match decide(&email, &key, settings, &Lookup { token_ticket, ref_ticket, customer, in_sent, ours }) {
        Decision::Ignore { reason } => {
            tracing::info!(mailbox = %mailbox, uid = fetched.uid, %reason, "mail ignored");
            Ok(())
        }
        Decision::Route { ticket, message_key, inputs, new_ticket } => {
            state::map_message_id(store, &message_key, &ticket).await.map_err(db)?;
            if new_ticket {
                announce(store, &email, &ticket, at).await.map_err(db)?;
            }
            for input in inputs {
                let (tx, rx) = oneshot::channel();
                inbox.send(Inbound { at, input, done: Some(tx) }).await.map_err(|_| None)?;
                match rx.await {
                    Ok(true) => {}
                    Ok(false) => return Err(Some(format!("mail UID {} could not be stored", fetched.uid))),
                    Err(_) => return Err(None),
                }
            }
            Ok(())
        }
    }
}

/// Queues the new-ticket mail to the agents, who answer the customer by
/// replying to it. Written before the mail is handed over (idempotent key), so
/// a crash in between neither loses nor repeats it.
async fn announce(store: &Store, email: &Email, ticket: &str, at: jiff::Timestamp) -> anyhow::Result<()> {
    let who = match &email.from.name {
        Some(name) => format!("{name} <{}>", email.from.address),
        None => email.from.address.clone(),
    };
    let body = format!(
        "New ticket [#{ticket}] from {who}\nSubject: {}\n\n{}\n\n-- \nReply to this mail to answer the customer through concierge. \
         First-line commands: #resolve, #nosurvey, #send-anyway.",
        email.subject,
        strip_reply(&email.body)
    );
    let conversation = Conversation::key(Channel::Email, ticket);
    let action = Action {
        key: format!("{conversation}/announce"),
        at,
        kind: ActionKind::Announcement,
        conversation,
        channel: Channel::Email,
        thread: ticket.to_string(),
        to: "agents".into(),
        body,
    };
    let mut batch = Batch::new(true);
    batch.record_step(Step { actions: vec![action], ..Step::default() });
    let mut tx = store.begin().await?;
    store.flush(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(())
}

/// Delivers outbox rows: by SMTP when email is configured (customer mail
/// threaded under the customer's last message), otherwise logged.
pub struct EmailOutbound {
    store: Store,
    smtp: SmtpOutbound,
    settings: EmailSettings,
}

impl EmailOutbound {
    pub fn new(store: Store, settings: EmailSettings, html_layout: String) -> anyhow::Result<EmailOutbound> {
        Ok(EmailOutbound { smtp: SmtpOutbound::with_layout(settings.clone(), html_layout)?, store, settings })
    }

    /// The customer's latest message in the conversation, to reply under.
    async fn reply_target(&self, item: &OutboxItem) -> Option<String> {
        let row = sqlx::query(
            "SELECT id FROM messages WHERE conversation = $1 AND role = 'customer' ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(&item.conversation)
        .fetch_optional(self.store.pool())
        .await
        .ok()??;
        let id: String = row.try_get(0).ok()?;
        id.strip_prefix("email:").map(str::to_string)
    }
}

impl Outbound for EmailOutbound {
    async fn deliver(&self, item: &OutboxItem) -> Result<(), String> {
        // Customers on other channels are reached there (not by email yet).
        if item.channel != "email"
            && !matches!(item.kind.as_str(), "nudge_warning" | "nudge_breach" | "escalation" | "detractor_alert")
        {
            return LogOutbound.deliver(item).await;
        }
        let to_customer = matches!(item.kind.as_str(), "acknowledgement" | "survey" | "reply");
        let in_reply_to = if to_customer && item.channel == "email" { self.reply_target(item).await } else { None };
        self.smtp.deliver_threaded(item, in_reply_to.as_deref()).await?;
        // Replies to what we sent thread back into the ticket; copies of it
        // in a Sent folder are recognised as ours.
        let id = message_id(&item.key, &self.settings.address);
        let id = id.trim_matches(['<', '>']);
        state::record_sent(&self.store, id).await.map_err(|e| format!("database error: {e:#}"))?;
        if item.channel == "email" {
            state::map_message_id(&self.store, id, &item.thread).await.map_err(|e| format!("database error: {e:#}"))?;
        }
        Ok(())
    }
}
