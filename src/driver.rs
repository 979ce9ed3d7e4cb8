//! The driver: the loop that applies inputs and timers, one transaction each.
//!
//! A `select!` over the inbox (inputs from channels), a sleep until the
//! router's next deadline, a tick for commands queued by the command line,
//! and shutdown. It never delivers anything itself: after each commit it
//! wakes the dispatch workers ([`crate::dispatch`]), so a slow channel can
//! never hold up a timer or an intake.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument as _;

use crate::core::router::Input;
use crate::engine::Engine;
use crate::status::Condition;
use crate::store::Store;
use crate::store::commands::QueuedCommand;

/// An input as a channel hands it over, stamped with the instant it
/// happened (a mail's arrival, a message's timestamp), so delays in reading
/// it never move a customer's clock.
#[derive(Debug)]
pub struct Inbound {
    pub at: Timestamp,
    pub input: Input,
    /// Told `true` once the input is committed (or was already stored), `false`
    /// if it could not be: a channel consumes its source only after `true`.
    pub done: Option<tokio::sync::oneshot::Sender<bool>>,
}

impl Inbound {
    pub fn new(at: Timestamp, input: Input) -> Inbound {
        Inbound { at, input, done: None }
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
    pub fn instant_of(&self, t: Timestamp) -> tokio::time::Instant {
        let wait = Duration::try_from(t.duration_since(self.now())).unwrap_or(Duration::ZERO);
        let wait = match self {
            Clock::System => wait,
            Clock::Virtual { speed, .. } => wait / *speed,
        };
        tokio::time::Instant::now().checked_add(wait).unwrap_or_else(far_future)
    }
}

/// About thirty years ahead: tokio's "never" for a timer at the end of time.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// The dispatch workers to wake after a commit.
#[derive(Clone, Default)]
pub struct Wakers(pub Vec<Arc<Notify>>);

impl Wakers {
    pub fn wake(&self) {
        for w in &self.0 {
            w.notify_one();
        }
    }
}

/// How often commands queued by the command line are looked for.
const COMMANDS_EVERY: Duration = Duration::from_secs(1);

/// Where the driver reports how late each fired timer's actions were
/// committed (seconds after their due instant, by `clock`): `concierge bench
/// timers` reads it.
pub type Lateness = Arc<std::sync::Mutex<Vec<f64>>>;

/// Runs until `shutdown` completes or every inbox sender is gone.
pub async fn run(
    engine: Engine,
    inbox: mpsc::Receiver<Inbound>,
    clock: Clock,
    wakers: Wakers,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    run_observed(engine, inbox, clock, wakers, shutdown, None).await
}

/// [`run`], reporting each fired action's lateness to `lateness`.
pub async fn run_observed(
    mut engine: Engine,
    mut inbox: mpsc::Receiver<Inbound>,
    clock: Clock,
    wakers: Wakers,
    shutdown: impl Future<Output = ()>,
    lateness: Option<Lateness>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(COMMANDS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut database = Condition::new("the database");
    loop {
        let deadline = engine.router.next_deadline();
        let wake = deadline.map(|d| clock.instant_of(d));
        // What failed, if anything: then the state is read back from the
        // database (waiting for it to come back) before going on.
        let failed: Option<anyhow::Error> = tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            input = inbox.recv() => {
                let Some(Inbound { at, input, done }) = input else { break };
                // Timers due before this input fire first, at their own instants.
                match fire(&mut engine, at.min(clock.now()), clock, lateness.as_ref()).await {
                    Err(e) => {
                        // The input is not applied: its channel keeps it and retries.
                        if let Some(done) = done {
                            let _ = done.send(false);
                        }
                        Some(e)
                    }
                    Ok(()) => {
                        let applied = apply(&mut engine, at, input).await;
                        if let Some(done) = done {
                            let _ = done.send(applied.is_ok());
                        }
                        applied.err()
                    }
                }
            }
            () = sleep_until_opt(wake) => fire(&mut engine, clock.now(), clock, lateness.as_ref()).await.err(),
            _ = tick.tick() => apply_commands(&mut engine, clock).await.err(),
        };
        match failed {
            None => {
                database.ok();
            }
            Some(e) => {
                database.failed(&format!("{e:#}"));
                if !reload(&mut engine, clock, &mut database, shutdown.as_mut()).await {
                    break;
                }
            }
        }
        engine.settle(clock.now());
        wakers.wake();
    }
    engine.store.close().await;
    Ok(())
}

/// Reads the state back from the database after a failed step, retrying
/// with backoff while the database cannot be reached; `false` when the bot
/// is stopping first.
async fn reload(
    engine: &mut Engine,
    clock: Clock,
    database: &mut Condition,
    mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> bool {
    let mut failures = 0;
    loop {
        match engine.reload(clock.now()).await {
            Ok(()) => return true,
            Err(e) => {
                database.failed(&format!("{e:#}"));
                failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(crate::backoff::reconnect(failures, Duration::from_secs(1))) => {}
                    () = &mut shutdown => return false,
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn apply(engine: &mut Engine, now: Timestamp, input: Input) -> anyhow::Result<()> {
    let conversation = crate::store::input_conversation(&input);
    let span = tracing::info_span!("input", conversation = %conversation, at = %now);
    async {
        let mut tx = engine.store.begin().await?;
        if let Some(actions) = engine.apply(&mut tx, now, input).await? {
            tx.commit().await?;
            for a in &actions {
                tracing::info!(kind = a.kind.as_str(), channel = a.channel.as_str(), "action queued");
            }
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// Applies commands queued by the command line, each in the transaction that
/// marks it done. A command that no longer parses is marked failed with the
/// reason (and logged); it is never retried.
async fn apply_commands(engine: &mut Engine, clock: Clock) -> anyhow::Result<()> {
    for queued in engine.store.pending_commands().await? {
        let mut tx = engine.store.begin().await?;
        match &queued.command {
            Ok(QueuedCommand::Forget { customer, pseudonym }) => {
                let forgotten = engine.store.forget(&mut tx, customer, pseudonym).await?;
                // The command itself named them: keep only the pseudonym.
                let kept = QueuedCommand::Forget { customer: String::new(), pseudonym: pseudonym.clone() };
                Store::rewrite_command(&mut tx, &queued.key, &kept).await?;
                Store::command_done(&mut tx, &queued.key, None).await?;
                tx.commit().await?;
                // The router held the customer's id and name: read them back.
                engine.reload(clock.now()).await?;
                tracing::info!(command = %queued.key, conversations = forgotten.conversations, "a customer was forgotten");
                continue;
            }
            Ok(command) => {
                let now = clock.now();
                engine.fire(&mut tx, now).await?;
                if let Some(input) = command.input() {
                    engine.apply(&mut tx, now, input).await?;
                }
                Store::command_done(&mut tx, &queued.key, None).await?;
                tracing::info!(command = %queued.key, "command applied");
            }
            Err(reason) => {
                tracing::warn!(command = %queued.key, %reason, "command failed: it does not parse");
                Store::command_done(&mut tx, &queued.key, Some(reason)).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

async fn fire(engine: &mut Engine, now: Timestamp, clock: Clock, lateness: Option<&Lateness>) -> anyhow::Result<()> {
    let mut tx = engine.store.begin().await?;
    let actions = engine.fire(&mut tx, now).await?;
    tx.commit().await?;
    if let Some(sink) = lateness {
        let committed = clock.now();
        let mut sink = sink.lock().unwrap_or_else(|e| e.into_inner());
        sink.extend(actions.iter().map(|a| committed.duration_since(a.at).as_secs_f64()));
    }
    for a in &actions {
        let _span = tracing::info_span!("timer", conversation = %a.conversation).entered();
        tracing::info!(kind = a.kind.as_str(), channel = a.channel.as_str(), "timer fired");
    }
    Ok(())
}
