//! The driver: the long-running loop of `concierge run`.
//!
//! A `select!` over the inbox (inputs from channel adapters), a sleep until the
//! router's next deadline, a dispatch tick and shutdown. Each input or timer is
//! applied in its own transaction; then the outbox is dispatched through an
//! [`Outbound`]. Delivery is at-least-once: a row is marked delivered after
//! its delivery succeeds, and the outbox key travels with it so a channel can
//! make redelivery harmless (the email channel derives its Message-ID from it).
//! A failed delivery is retried with exponential backoff, across restarts.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::core::router::Input;
use crate::engine::Engine;
use crate::store::{OutboxItem, Store};

/// An input as a channel adapter hands it over, stamped with the instant it
/// was received (so processing delays never move a customer's clock).
#[derive(Debug)]
pub struct Inbound {
    pub at: Timestamp,
    pub input: Input,
    /// Told `true` once the input is committed (or was already stored), `false`
    /// if it could not be: an adapter consumes its source only after `true`.
    pub done: Option<tokio::sync::oneshot::Sender<bool>>,
}

impl Inbound {
    pub fn new(at: Timestamp, input: Input) -> Inbound {
        Inbound { at, input, done: None }
    }
}

/// Carries out queued actions on a channel.
pub trait Outbound {
    /// Delivers one outbox row; an `Err` is retried later.
    fn deliver(&self, item: &OutboxItem) -> impl Future<Output = Result<(), String>> + Send;
}

/// Logs actions instead of sending them: the outbound of a bot with no channel.
#[derive(Debug, Default, Clone)]
pub struct LogOutbound;

impl Outbound for LogOutbound {
    async fn deliver(&self, item: &OutboxItem) -> Result<(), String> {
        tracing::info!(
            key = %item.key,
            kind = %item.kind,
            thread = %item.thread,
            to = %redact(&item.recipient),
            "action (no channel configured: logged only)"
        );
        tracing::debug!(to = %item.recipient, body = %item.body, "action body");
        Ok(())
    }
}

/// Hides the local part of an address above debug level: `a***@example.com`.
pub fn redact(recipient: &str) -> String {
    match recipient.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => recipient.to_string(),
    }
}

/// Where the driver reads the time: the system clock, or a virtual clock that
/// starts at a given instant and runs `speed` times faster than tokio's
/// (tests run hours of business time in seconds; real database I/O rules
/// out tokio's paused clock, which jumps ahead whenever the runtime waits).
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    Virtual { start: Timestamp, at: tokio::time::Instant, speed: u32 },
}

impl Clock {
    /// A clock reading `start` now and running `speed` times real time.
    pub fn virtual_from(start: Timestamp, speed: u32) -> Clock {
        Clock::Virtual { start, at: tokio::time::Instant::now(), speed: speed.max(1) }
    }

    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Virtual { start, at, speed } => {
                let elapsed = at.elapsed().saturating_mul(*speed);
                let elapsed = jiff::SignedDuration::try_from(elapsed).unwrap_or(jiff::SignedDuration::MAX);
                start.checked_add(elapsed).unwrap_or(Timestamp::MAX)
            }
        }
    }

    /// The tokio instant at which this clock reads `t`.
    fn instant_of(&self, t: Timestamp) -> tokio::time::Instant {
        let wait = Duration::try_from(t.duration_since(self.now())).unwrap_or(Duration::ZERO);
        let wait = match self {
            Clock::System => wait,
            Clock::Virtual { speed, .. } => wait / *speed,
        };
        tokio::time::Instant::now() + wait
    }
}

/// How often pending outbox rows are looked at even without new work (retries).
const DISPATCH_EVERY: Duration = Duration::from_secs(5);

/// Runs until `shutdown` completes or every inbox sender is gone.
pub async fn run<O: Outbound>(
    mut engine: Engine,
    outbound: O,
    mut inbox: mpsc::Receiver<Inbound>,
    clock: Clock,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(DISPATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Deliver whatever an earlier run left queued.
    dispatch(&engine, &outbound, clock).await;
    loop {
        let deadline = engine.router.next_deadline();
        let wake = deadline.map(|d| clock.instant_of(d));
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            input = inbox.recv() => {
                let Some(Inbound { at, input, done }) = input else { break };
                // Timers due before this input fire first, at their own instants.
                if let Err(e) = fire(&mut engine, at.min(clock.now())).await {
                    tracing::error!(error = %format!("{e:#}"), "timers not applied; state reloaded from the database");
                    engine.reload().await?;
                }
                let span = tracing::info_span!("input", %at);
                let applied = apply(&mut engine, at, input).instrument(span).await;
                if let Some(done) = done {
                    let _ = done.send(applied.is_ok());
                }
                if let Err(e) = applied {
                    tracing::error!(error = %format!("{e:#}"), "input not applied; state reloaded from the database");
                    engine.reload().await?;
                }
            }
            () = sleep_until_opt(wake) => {
                let now = clock.now();
                if let Err(e) = fire(&mut engine, now).await {
                    tracing::error!(error = %format!("{e:#}"), "timers not applied; state reloaded from the database");
                    engine.reload().await?;
                }
            }
            _ = tick.tick() => {
                if let Err(e) = apply_commands(&mut engine, clock).await {
                    tracing::error!(error = %format!("{e:#}"), "queued commands not applied; state reloaded from the database");
                    engine.reload().await?;
                }
            }
        }
        dispatch(&engine, &outbound, clock).await;
    }
    engine.store.close().await;
    Ok(())
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn apply(engine: &mut Engine, now: Timestamp, input: Input) -> anyhow::Result<()> {
    let mut tx = engine.store.begin().await?;
    engine.apply(&mut tx, now, input).await?;
    tx.commit().await?;
    Ok(())
}

/// Applies commands queued by the command line, each in the transaction that
/// marks it done. A command that no longer parses is marked done and logged.
async fn apply_commands(engine: &mut Engine, clock: Clock) -> anyhow::Result<()> {
    for (key, event) in engine.store.pending_commands().await? {
        let mut tx = engine.store.begin().await?;
        match crate::replay::parse_line(&event) {
            Ok((_, input)) => {
                let now = clock.now();
                engine.fire(&mut tx, now).await?;
                engine.apply(&mut tx, now, input).await?;
                tracing::info!(command = %key, "command applied");
            }
            Err(reason) => tracing::warn!(command = %key, %reason, "command dropped: it does not parse"),
        }
        Store::command_done(&mut tx, &key).await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn fire(engine: &mut Engine, now: Timestamp) -> anyhow::Result<()> {
    let mut tx = engine.store.begin().await?;
    let actions = engine.fire(&mut tx, now).await?;
    tx.commit().await?;
    for a in &actions {
        tracing::info!(kind = a.kind.as_str(), thread = %a.thread, "timer fired");
    }
    Ok(())
}

/// Delivers due outbox rows; failures are rescheduled with backoff.
async fn dispatch<O: Outbound>(engine: &Engine, outbound: &O, clock: Clock) {
    let now = clock.now();
    let items = match engine.store.pending_outbox(now, 100).await {
        Ok(items) => items,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot read the outbox");
            return;
        }
    };
    for item in items {
        let result = outbound.deliver(&item).await;
        let now = clock.now();
        let marked = match result {
            Ok(()) => engine.store.mark_delivered(&item.key, now).await,
            Err(error) => {
                let wait = backoff(item.attempts);
                tracing::warn!(key = %item.key, %error, retry_in = wait, "delivery failed; will retry");
                let retry = now.checked_add(jiff::SignedDuration::from_secs(wait)).unwrap_or(now);
                engine.store.mark_failed(&item.key, &error, retry).await
            }
        };
        if let Err(e) = marked {
            tracing::error!(error = %format!("{e:#}"), key = %item.key, "cannot update the outbox");
        }
    }
}

/// Seconds to wait after `attempts` failures: 5 s doubling up to one hour.
pub fn backoff(attempts: i64) -> i64 {
    (5_i64 << attempts.clamp(0, 10)).min(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_redacted_and_backoff_grows_to_an_hour() {
        assert_eq!(redact("ana@example.com"), "a***@example.com");
        assert_eq!(redact("managers"), "managers");
        assert_eq!([0, 1, 2, 9, 50].map(backoff), [5, 10, 20, 2560, 3600]);
    }
}
