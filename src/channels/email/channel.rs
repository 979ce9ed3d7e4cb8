//! The email channel at run time: [`EmailChannel`], the thin shell around
//! [`super::intake`], [`super::imap`], [`super::compose`] and [`super::smtp`]
//! that implements the channel contract.
//!
//! Durability: a fetched mail is handed to the driver and the mailbox position
//! advances only after the driver has committed it; a mail that cannot be
//! parsed is kept whole in the database and never blocks the mailbox. Network
//! or server errors are logged as one line naming the setting, then retried
//! with exponential backoff and jitter; the bot never exits over them. A
//! mail's clock starts when it arrived in the mailbox (INTERNALDATE), not
//! when concierge read it, so an outage does not hide how long a customer
//! waited.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::oneshot;

use crate::channels::email::auth::reply_address;
use crate::channels::email::compose::{compose, message_id};
use crate::channels::email::imap::{self, Fetched, Limits, Sessions, fetch_new, wait_for_mail};
use crate::channels::email::intake::{Decision, Lookup, decide, message_key};
use crate::channels::email::message::{Email, ticket_token};
use crate::channels::email::settings::{AddressPattern, EmailSettings};
use crate::channels::email::smtp::SmtpOutbound;
use crate::channels::email::state::{self, Position};
use crate::channels::log::redact;
use crate::channels::{BoxFuture, ChannelAdapter, DeliveryError, Intake};
use crate::config::{Env, Problem};
use crate::core::router::{ActionKind, Channel, Recipient};
use crate::core::template::Templates;
use crate::driver::Inbound;
use crate::status::{Condition, Link};
use crate::store::{OutboxItem, Store};

/// The email channel: IMAP in, SMTP out.
pub struct EmailChannel {
    settings: EmailSettings,
    store: Store,
    smtp: SmtpOutbound,
    templates: Templates,
    /// Signs agents' reply addresses ([`super::auth`]); `None` when
    /// `email.agent_reply_tags` is off.
    tag_key: Option<Arc<Vec<u8>>>,
    /// IMAP sessions kept between reading, waiting and searching.
    imap: Arc<Sessions>,
}

impl EmailChannel {
    /// Reads the password (from `env` or its file) and prepares SMTP;
    /// `secret` is the instance's secret (it signs agents' reply addresses).
    pub fn new(
        settings: &EmailSettings,
        env: &dyn Env,
        store: Store,
        templates: Templates,
        secret: Arc<Vec<u8>>,
    ) -> Result<EmailChannel, Vec<Problem>> {
        let settings = settings.clone().with_password(env).map_err(|p| vec![p])?;
        let smtp = SmtpOutbound::new(settings.clone())
            .map_err(|e| vec![Problem { key: "email.tls_ca_file".into(), message: format!("{e:#}") }])?;
        let tag_key = settings.agent_reply_tags.then_some(secret);
        Ok(EmailChannel { settings, store, smtp, templates, tag_key, imap: Arc::default() })
    }
}

impl ChannelAdapter for EmailChannel {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn carries(&self, _kind: ActionKind, to: &Recipient) -> bool {
        let s = &self.settings;
        match to {
            Recipient::Customer(id) | Recipient::Agent(id) => id.contains('@'),
            Recipient::Agents => s.agents.iter().any(|p| matches!(p, AddressPattern::Exact(_))),
            Recipient::Managers => !s.managers.is_empty(),
        }
    }

    fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()> {
        let s = &self.settings;
        tracing::info!(
            mailboxes = ?s.mailboxes,
            imap = %format!("{}:{}", s.imap_host, s.imap_port),
            smtp = %format!("{}:{}", s.smtp_host, s.smtp_port),
            address = %s.address,
            "email channel: reading mail and sending through SMTP"
        );
        if s.authserv_ids.is_empty() && !s.agent_reply_tags {
            tracing::warn!(
                "email: neither email.authserv_id nor email.agent_reply_tags is set: agents' mail cannot be authenticated and is treated as customers'"
            );
        }
        Box::pin(run_intake(intake, self.settings.clone(), self.tag_key.clone(), self.imap.clone()))
    }

    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(self.deliver_mail(item))
    }
}

impl EmailChannel {
    async fn deliver_mail(&self, item: &OutboxItem) -> Result<(), DeliveryError> {
        let db = |e: anyhow::Error| DeliveryError::Transient(format!("database error: {e:#}"));
        let about_email = item.conversation_channel() == Some(Channel::Email);
        // What goes to an email customer is threaded under their latest mail.
        let in_reply_to = match (&item.recipient, about_email) {
            (Recipient::Customer(_), true) => {
                self.store.latest_customer_message(&item.conversation).await.map_err(db)?
            }
            _ => None,
        };
        // Agents' replies about an email ticket prove themselves by its tag.
        let reply_to = match (&item.recipient, &self.tag_key) {
            (Recipient::Agent(_) | Recipient::Agents, Some(key)) if about_email => {
                reply_address(&self.settings.address, key, &item.thread)
            }
            _ => None,
        };
        let id = message_id(&item.key, &self.settings.address);
        let id = id.trim_matches(['<', '>']);
        let copy_to = self.settings.copy_to_support.then_some(self.settings.address.as_str());
        let went_out = match (item.sending_since, copy_to) {
            (Some(since), Some(_)) => self.went_out(id, since).await?,
            _ => false,
        };
        if went_out {
            tracing::info!("an interrupted send had gone out (its copy is in the support mailbox): not sent again");
        } else {
            let message = compose(item, &self.settings, &self.templates, in_reply_to.as_deref(), reply_to.as_deref())
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            self.smtp.send(message, copy_to).await?;
        }
        // Replies to what we sent thread back into the ticket; copies of it
        // in a Sent folder are recognised as ours.
        state::record_sent(&self.store, id).await.map_err(db)?;
        if about_email {
            state::map_message_id(&self.store, id, &item.thread).await.map_err(db)?;
        }
        Ok(())
    }
}

/// How long after an interrupted attempt began its copy may still be on its
/// way to the support mailbox; after that, a missing copy means it never
/// went out.
const COPY_GRACE: Duration = Duration::from_secs(30);

impl EmailChannel {
    /// Whether a send cut off by a crash (begun at `since`) went out: its
    /// copy (`copy_to_support`) is in one of the watched mailboxes, looked
    /// for until [`COPY_GRACE`] after `since`. A server that cannot be asked
    /// leaves the question open ([`DeliveryError::Unconfirmed`]).
    async fn went_out(&self, message_id: &str, since: Timestamp) -> Result<bool, DeliveryError> {
        let s = &self.settings;
        let boxes: Vec<String> = s.mailboxes.iter().chain(&s.sent_mailbox).cloned().collect();
        let deadline = since.checked_add(COPY_GRACE).unwrap_or(since);
        loop {
            for mailbox in &boxes {
                let (s, mailbox, id, kept) = (s.clone(), mailbox.clone(), message_id.to_string(), self.imap.clone());
                match tokio::task::spawn_blocking(move || imap::has_message_id(&s, &kept, &mailbox, &id)).await {
                    Ok(Ok(true)) => return Ok(true),
                    Ok(Ok(false)) => {}
                    Ok(Err(line)) => return Err(DeliveryError::Unconfirmed(line)),
                    Err(e) => return Err(DeliveryError::Unconfirmed(format!("the IMAP task failed: {e}"))),
                }
            }
            if Timestamp::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Reads the configured mailboxes until the bot stops.
pub async fn run_intake(intake: Intake, settings: EmailSettings, tag_key: Option<Arc<Vec<u8>>>, kept: Arc<Sessions>) {
    let store = intake.store.clone();
    let mut failures: u32 = 0;
    let mut reading = Condition::new("email intake");
    loop {
        let mut failed = None;
        let sent = settings.sent_mailbox.iter().map(|m| (m, true));
        for (mailbox, in_sent) in settings.mailboxes.iter().map(|m| (m, false)).chain(sent) {
            match poll_mailbox(&store, (&settings, &kept), tag_key.as_deref(), (mailbox, in_sent), &intake).await {
                Ok(polled) => {
                    if polled.consumed > 0 {
                        tracing::info!(mailbox = %mailbox, messages = polled.consumed, "mail read");
                    }
                    if let Some(line) = polled.error {
                        reading.failed(&format!("mailbox \"{mailbox}\": {line}"));
                        intake.link(Channel::Email, Link::Down(line));
                        failed = Some(());
                    }
                }
                Err(Stop) => return,
            }
        }
        let ok = failed.is_none();
        failures = if ok { 0 } else { failures + 1 };
        if ok {
            reading.ok();
            intake.link(Channel::Email, Link::Up);
            // Wait for new mail in the first mailbox: IDLE where offered, else poll.
            let (s, name, k) = (settings.clone(), settings.mailboxes[0].clone(), kept.clone());
            let since = state::position(&store, &name).await.ok().flatten();
            let timeout = Duration::from_secs(settings.poll_interval as u64);
            let waiting = tokio::task::spawn_blocking(move || wait_for_mail(&s, &k, &name, since, timeout));
            tokio::select! {
                waited = waiting => {
                    if let Ok(Err(line)) = waited {
                        reading.failed(&line);
                        intake.link(Channel::Email, Link::Down(line));
                        failures += 1;
                    }
                }
                () = intake.stopped() => return,
            }
        }
        if failures > 0 {
            tokio::select! {
                () = tokio::time::sleep(crate::backoff::reconnect(failures, Duration::from_secs(settings.poll_interval as u64 / 4))) => {}
                () = intake.stopped() => return,
            }
        }
    }
}

/// What one poll of a mailbox did.
struct Polled {
    consumed: usize,
    /// Why it stopped early, if it did (then the loop backs off).
    error: Option<String>,
}

/// The inbox closed: the bot is stopping.
struct Stop;

/// Reads one mailbox past its stored position, a bounded batch at a time.
/// Errors are logged (one line) and leave the position where the last stored
/// mail put it.
async fn poll_mailbox(
    store: &Store,
    (settings, kept): (&EmailSettings, &Arc<Sessions>),
    tag_key: Option<&Vec<u8>>,
    (mailbox, in_sent): (&str, bool),
    intake: &Intake,
) -> Result<Polled, Stop> {
    let fail = |line: String, consumed: usize| Ok(Polled { consumed, error: Some(line) });
    let mut consumed = 0;
    loop {
        let since = match state::position(store, mailbox).await {
            Ok(p) => p,
            Err(e) => return fail(format!("cannot read the mailbox position: {e:#}"), consumed),
        };
        let (s, name, k) = (settings.clone(), mailbox.to_string(), kept.clone());
        let new = match tokio::task::spawn_blocking(move || fetch_new(&s, &k, &name, since, Limits::default())).await {
            Ok(Ok(new)) => new,
            Ok(Err(line)) => return fail(line, consumed),
            Err(e) => return fail(format!("the IMAP task failed: {e}"), consumed),
        };
        for fetched in new.messages {
            match consume(store, (settings, tag_key), (mailbox, in_sent), new.uidvalidity, &fetched, intake).await {
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
        if !new.more {
            return Ok(Polled { consumed, error: None });
        }
    }
}

/// When a mail's clock starts: its arrival in the mailbox, unless the server
/// gave none or one in the future (a wrong server clock), then now.
pub fn arrival(arrived: Option<i64>, now: Timestamp) -> Timestamp {
    arrived.and_then(|s| Timestamp::from_second(s).ok()).filter(|t| *t <= now).unwrap_or(now)
}

/// Stores one mail through the driver. `Err(None)`: the bot is stopping.
async fn consume(
    store: &Store,
    (settings, tag_key): (&EmailSettings, Option<&Vec<u8>>),
    (mailbox, in_sent): (&str, bool),
    uidvalidity: u32,
    fetched: &Fetched,
    intake: &Intake,
) -> Result<(), Option<String>> {
    let now = intake.clock.now();
    let at = arrival(fetched.arrived, now);
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
        Some(t) if store.conversation_exists(Channel::Email, t).await.map_err(db)? => Some(t.to_string()),
        _ => None,
    };
    let refs: Vec<&str> = email.thread_refs().collect();
    let ref_ticket = state::ticket_of(store, &refs).await.map_err(db)?;
    let customer = match token_ticket.as_ref().or(ref_ticket.as_ref()) {
        Some(t) => store.customer_of(Channel::Email, t).await.map_err(db)?,
        None => None,
    };
    let ours = state::is_sent_by_us(store, &key).await.map_err(db)?;
    let lookup = Lookup { token_ticket, ref_ticket, customer, in_sent, ours };
    match decide(&email, &key, settings, &lookup, tag_key.map(Vec::as_slice)) {
        // Copies of what we sent (`copy_to_support`) are expected: not news.
        Decision::Ignore { reason } if email.from.address == settings.address => {
            tracing::debug!(mailbox = %mailbox, uid = fetched.uid, %reason, "mail ignored");
            Ok(())
        }
        Decision::Ignore { reason } => {
            tracing::info!(mailbox = %mailbox, uid = fetched.uid, %reason, "mail ignored");
            Ok(())
        }
        Decision::Route { ticket, message_key, inputs, note, .. } => {
            if let Some(note) = note {
                tracing::warn!(mailbox = %mailbox, uid = fetched.uid, from = %redact(&email.from.address), %ticket, "{note}");
            }
            state::map_message_id(store, &message_key, &ticket).await.map_err(db)?;
            for input in inputs {
                let (tx, rx) = oneshot::channel();
                intake.inbox.send(Inbound { at, input, done: Some(tx) }).await.map_err(|_| None)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_is_timed_from_its_arrival_unless_that_is_missing_or_in_the_future() {
        let now: Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        let earlier = now.as_second() - 7200;
        assert_eq!(arrival(Some(earlier), now).as_second(), earlier);
        assert_eq!(arrival(None, now), now);
        assert_eq!(arrival(Some(now.as_second() + 60), now), now);
    }
}
