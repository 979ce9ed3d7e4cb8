//! The channel contract: how a channel plugs into concierge.
//!
//! A channel (one folder here: `email/`, and a `log` stand-in) implements
//! [`ChannelAdapter`]: it runs its intake until shutdown, turning what it
//! receives into [`Inbound`] inputs for the driver, and it delivers one
//! outbox row at a time, saying whether a failure is worth retrying
//! ([`DeliveryError`]). It owns its config section (`NAME/settings.rs`,
//! validated with the shared helpers in [`crate::config::section`]) and its
//! own tables. The [`Registry`] built from the configuration is the only
//! place that names the channels: adding one means adding its folder and a
//! line in [`Registry::build`].
//!
//! Only a channel sees its protocol's types (MIME, IMAP, SMTP, Discord);
//! routing (who gets what, on which channel) is decided by the core and
//! recorded in each outbox row.

pub mod discord;
pub mod email;
pub mod log;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::status::{Link, StatusBoard};
use tokio::sync::{mpsc, watch};

use crate::config::section::{self, Section};
use crate::config::{Config, ConfigError, Env, Problem};
use crate::core::router::{ActionKind, Channel, Recipient};
use crate::driver::{Clock, Inbound};
use crate::store::{OutboxItem, Store};

/// A boxed future, for the object-safe trait below.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a delivery failed, and so whether it is tried again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another try later (a server down, a timeout, a 4xx reply, a
    /// rate limit): retried with the shared backoff.
    #[error("{0}")]
    Transient(String),
    /// Will fail the same way every time (no address for the recipient, a
    /// 5xx rejection): marked `failed` with the reason, never retried.
    #[error("{0}")]
    Permanent(String),
    /// Rate limited: try again after this long (a server's Retry-After).
    #[error("{reason} (retry after {after:?})")]
    Later { after: std::time::Duration, reason: String },
    /// An attempt cut off by a crash could not be checked yet (whether it
    /// went out is unknown): retried with the backoff, still unchecked.
    #[error("{0}")]
    Unconfirmed(String),
}

/// What an intake is handed: where inputs go and when to stop.
#[derive(Clone)]
pub struct Intake {
    pub store: Store,
    pub inbox: mpsc::Sender<Inbound>,
    pub clock: Clock,
    /// Turns `true` when the bot stops.
    pub shutdown: watch::Receiver<bool>,
    /// Where the channel reports its connection state (`/healthz`).
    pub status: StatusBoard,
}

impl Intake {
    /// Reports `channel`'s connection state.
    pub fn link(&self, channel: Channel, link: Link) {
        self.status.set(channel, link, self.clock.now());
    }

    /// Completes when the bot stops (or the driver is gone).
    pub async fn stopped(&self) {
        let mut s = self.shutdown.clone();
        tokio::select! {
            _ = s.wait_for(|stop| *stop) => {}
            () = self.inbox.closed() => {}
        }
    }
}

/// One channel: intake into the driver's inbox, delivery of outbox rows.
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The channel this adapter serves.
    fn channel(&self) -> Channel;

    /// Whether it can deliver an action of `kind` to `to` (used to route the
    /// team's notices and the weekly summary to a channel that can).
    fn carries(&self, kind: ActionKind, to: &Recipient) -> bool;

    /// Whether this is the log stand-in for a channel that is not configured.
    fn is_stand_in(&self) -> bool {
        false
    }

    /// How many deliveries may be under way at once.
    fn concurrency(&self) -> usize {
        4
    }

    /// Runs intake until [`Intake::stopped`]; never returns early on a
    /// network error (it logs one line and retries with backoff).
    fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()>;

    /// Delivers one row. Redelivery after a crash must be harmless: the row's
    /// key is stable, so a channel derives its message ids from it. A row
    /// with [`OutboxItem::sending_since`] was cut off mid-attempt: a channel
    /// that can tell whether it went out checks before sending again.
    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>>;
}

/// The channels' config sections, validated: one field per channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelSettings {
    pub email: Option<email::settings::EmailSettings>,
    pub discord: Option<discord::settings::DiscordSettings>,
}

impl ChannelSettings {
    /// The config sections the channels own.
    pub const SECTIONS: &'static [&'static str] = &["email", "discord"];

    /// Validates every channel's section of `root`, problems by key.
    /// With `secrets`, each channel's secrets are read now too (for `run`).
    pub fn parse(
        root: &toml::Table,
        problems: &mut Vec<Problem>,
        dir: Option<&std::path::Path>,
        secrets: Option<&dyn Env>,
    ) -> ChannelSettings {
        let read = |name: &'static str, keys: &[&str], problems: &mut Vec<Problem>| {
            section::table(root, name, keys, problems).map(|t| (name, t))
        };
        let email = read("email", email::settings::KEYS, problems).and_then(|(name, t)| {
            email::settings::parse(&mut Section::new(name, t, problems, dir).checking_secrets(secrets))
        });
        let discord = read("discord", discord::settings::KEYS, problems).and_then(|(name, t)| {
            discord::settings::parse(&mut Section::new(name, t, problems, dir).checking_secrets(secrets))
        });
        ChannelSettings { email, discord }
    }

    /// The channels that are configured.
    pub fn connected(&self) -> Vec<Channel> {
        let email = self.email.iter().map(|_| Channel::Email);
        email.chain(self.discord.iter().map(|_| Channel::Discord)).collect()
    }

    /// Channels whose new conversations are announced to the agents: on
    /// email, agents answer by replying to the new-ticket mail.
    pub fn announce(&self) -> std::collections::HashSet<Channel> {
        self.email.iter().map(|_| Channel::Email).collect()
    }

    /// Per channel, how long a customer's silence after a reply resolves.
    pub fn resolve_after_silence(&self) -> std::collections::HashMap<Channel, i64> {
        let email = self.email.as_ref().and_then(|e| e.resolve_after_silence).map(|s| (Channel::Email, s));
        email.into_iter().collect()
    }
}

/// The channels of one run, built from the configuration: every
/// [`Channel`] has an adapter, the log stand-in where none is configured.
pub struct Registry {
    adapters: Vec<Arc<dyn ChannelAdapter>>,
}

impl Registry {
    /// The configured channels, their secrets read from `env` now (only
    /// `concierge run` needs them). A missing secret is a configuration
    /// problem naming its key.
    pub fn build(config: &Config, store: &Store, env: &dyn Env, secret: Arc<Vec<u8>>) -> Result<Registry, ConfigError> {
        let mut problems = Vec::new();
        let mut adapters: Vec<Arc<dyn ChannelAdapter>> = Vec::new();
        // One line per channel.
        if let Some(s) = &config.channels.email {
            match email::EmailChannel::new(s, env, store.clone(), config.templates.clone(), secret) {
                Ok(c) => adapters.push(Arc::new(c)),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if let Some(s) = &config.channels.discord {
            match discord::DiscordChannel::new(s, env, store.clone(), config) {
                Ok(c) => adapters.push(Arc::new(c)),
                Err(mut p) => problems.append(&mut p),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { origin: config.source.clone(), problems });
        }
        Ok(Registry::with(adapters))
    }

    /// These adapters, with the log stand-in for every channel they leave out.
    pub fn with(mut adapters: Vec<Arc<dyn ChannelAdapter>>) -> Registry {
        for channel in Channel::ALL {
            if !adapters.iter().any(|a| a.channel() == channel) {
                adapters.push(Arc::new(log::LogChannel(channel)));
            }
        }
        Registry { adapters }
    }

    /// The team's notices that the configured channels cannot carry under
    /// `policy` (e.g. escalations to managers with no manager address): one
    /// line each, said at start-up, since such rows would be marked failed.
    pub fn unroutable(&self, policy: &crate::core::router::Policy) -> Vec<String> {
        let mut notices =
            vec![(ActionKind::NudgeWarning, Recipient::Agents), (ActionKind::DetractorAlert, Recipient::Managers)];
        notices.extend(policy.escalations.iter().map(|e| (ActionKind::Escalation, e.to.clone())));
        let mut out = Vec::new();
        for adapter in self.adapters.iter().filter(|a| !a.is_stand_in()) {
            let staff = policy.staff_channel(adapter.channel());
            let Some(target) = self.adapters.iter().find(|a| a.channel() == staff && !a.is_stand_in()) else {
                continue;
            };
            for (kind, to) in &notices {
                let line = format!(
                    "the {} channel cannot deliver {} to {} (such messages would fail): check its section's agents and managers",
                    target.channel().as_str(),
                    kind.as_str(),
                    to.as_str()
                );
                if !target.carries(*kind, to) && !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out
    }

    pub fn adapters(&self) -> &[Arc<dyn ChannelAdapter>] {
        &self.adapters
    }

    /// The names of the channels that are really connected.
    pub fn connected(&self) -> Vec<&'static str> {
        self.adapters.iter().filter(|a| !a.is_stand_in()).map(|a| a.channel().as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel that reaches agents but has no manager addresses.
    struct NoManagers;

    impl ChannelAdapter for NoManagers {
        fn channel(&self) -> Channel {
            Channel::Email
        }
        fn carries(&self, _kind: ActionKind, to: &Recipient) -> bool {
            *to != Recipient::Managers
        }
        fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()> {
            Box::pin(async move { intake.stopped().await })
        }
        fn deliver<'a>(&'a self, _item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>> {
            Box::pin(async { Ok(()) })
        }
    }

    #[test]
    fn notices_a_channel_cannot_carry_are_named_once_each() {
        let registry = Registry::with(vec![Arc::new(NoManagers)]);
        assert_eq!(registry.connected(), ["email"]);
        let lines = registry.unroutable(&crate::core::router::Policy::default());
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(lines[0].contains("detractor_alert to managers") && lines[1].contains("escalation to managers"));
    }
}
