//! Delivering the outbox: one worker per channel, apart from the driver.
//!
//! A worker takes the rows due for its channel, delivers up to the channel's
//! [`concurrency`](crate::channels::ChannelAdapter::concurrency) at once, and
//! marks each: delivered; a transient failure rescheduled with the shared
//! [`crate::backoff::delivery`] (exponential with jitter); a permanent one `failed` with its
//! reason, never retried. It wakes when the driver commits, when a retry
//! falls due, and every few seconds. A slow or down channel only slows its
//! own worker: timers, intake and the other channels go on.
//!
//! A crash neither loses nor (where the channel can tell) repeats a
//! delivery: the attempt is recorded before it begins
//! ([`Store::mark_sending`]) and the outcome after it returns; a row found
//! with an attempt but no outcome goes to the channel marked as cut off
//! ([`OutboxItem::sending_since`]), and the channel checks whether it went
//! out (email: its copy in the support mailbox) before sending again, with
//! the same key (and so the same Message-ID on email).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::channels::log::redact;
use crate::channels::{ChannelAdapter, DeliveryError};
use crate::driver::Clock;
use crate::status::Condition;
use crate::store::{OutboxItem, Store};

/// How often a worker looks at its rows even without being woken.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Runs the worker of `adapter` until `stop` turns true.
pub async fn run_worker(
    store: Store,
    adapter: Arc<dyn ChannelAdapter>,
    wake: Arc<Notify>,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
) {
    let channel = adapter.channel();
    let max = adapter.concurrency().max(1);
    // `None`: not attempted (the lease lapsed first); left as it was.
    let mut running: JoinSet<(OutboxItem, Option<Result<(), DeliveryError>>)> = JoinSet::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut deliveries = Condition::new(format!("{} deliveries", channel.as_str()));
    let mut outbox = Condition::new(format!("{} outbox (the database)", channel.as_str()));
    loop {
        if *stop.borrow() {
            break;
        }
        // Fill the free places with rows that are due.
        // The active one of several instances delivers only while its lease
        // is fresh (see `store::lease`); a lapsed one stops before a standby
        // may take over.
        if busy.len() < max && store.may_act() {
            match store.pending_outbox(channel, clock.now(), max - busy.len(), &busy).await {
                Ok(items) => {
                    outbox.ok();
                    for item in items {
                        busy.insert(item.key.clone());
                        let adapter = adapter.clone();
                        let fenced = store.clone();
                        let span = tracing::info_span!("deliver", conversation = %item.conversation, key = %item.key);
                        running.spawn(
                            async move {
                                if !fenced.may_act() {
                                    return (item, None);
                                }
                                // Recorded first: a crash from here on leaves
                                // the row marked as an attempt to check.
                                if let Err(e) = fenced.mark_sending(&item.key, clock.now()).await {
                                    let error = format!("database error before sending: {e:#}");
                                    return (item, Some(Err(DeliveryError::Transient(error))));
                                }
                                let result = adapter.deliver(&item).await;
                                (item, Some(result))
                            }
                            .instrument(span),
                        );
                    }
                }
                Err(e) => {
                    outbox.failed(&format!("cannot read the outbox: {e:#}"));
                }
            }
        }
        let next_retry = store.next_outbox_attempt(channel, clock.now()).await.ok().flatten();
        // The next retry on this clock (virtual in tests), and a look every few seconds anyway.
        let every = tokio::time::Instant::now() + LOOK_EVERY;
        let look = next_retry.map_or(every, |t| clock.instant_of(t).min(every));
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                match done {
                    Ok((item, result)) => {
                        busy.remove(&item.key);
                        if let Some(result) = result {
                            record(&store, &item, result, clock.now(), &mut deliveries).await;
                        }
                    }
                    Err(e) => {
                        // A panicking delivery: its row stays pending and is tried again.
                        tracing::error!(channel = channel.as_str(), error = %e, "a delivery task failed");
                        busy.clear();
                        running.abort_all();
                    }
                }
            }
            () = wake.notified() => {}
            () = tokio::time::sleep_until(look.max(tokio::time::Instant::now() + Duration::from_millis(20))), if busy.len() < max => {}
            _ = stop.changed() => {}
        }
    }
    // Deliveries still under way stay pending and are sent again next time.
    running.abort_all();
}

/// Marks a delivery's outcome. Failures worth retrying put the channel's
/// deliveries in a degraded state (said once, see [`Condition`]); each
/// retry is logged at debug level. The first success after them makes every
/// row waiting on a retry due at once.
async fn record(
    store: &Store,
    item: &OutboxItem,
    result: Result<(), DeliveryError>,
    now: Timestamp,
    deliveries: &mut Condition,
) {
    let to = redact(item.recipient.as_str());
    let later = |wait: i64| now.checked_add(jiff::SignedDuration::from_secs(wait)).unwrap_or(now);
    let backoff = || crate::backoff::delivery(item.attempts).as_secs().max(1) as i64;
    let marked = match result {
        Ok(()) => {
            if deliveries.ok()
                && let Err(e) = store.retry_now(item.channel, now).await
            {
                tracing::warn!(error = %format!("{e:#}"), "cannot bring the waiting retries forward");
            }
            tracing::info!(kind = item.kind.as_str(), channel = item.channel.as_str(), %to, "delivered");
            store.mark_delivered(&item.key, now).await
        }
        Err(DeliveryError::Transient(error)) => {
            let wait = backoff();
            deliveries.failed(&error);
            tracing::debug!(key = %item.key, %error, retry_in = wait, "delivery failed; will retry");
            store.mark_retry(&item.key, &error, later(wait), false).await
        }
        Err(DeliveryError::Unconfirmed(error)) => {
            let wait = backoff();
            deliveries.failed(&format!("an interrupted delivery cannot be checked: {error}"));
            tracing::debug!(key = %item.key, %error, retry_in = wait, "an interrupted delivery could not be checked; will retry");
            store.mark_retry(&item.key, &error, later(wait), true).await
        }
        Err(DeliveryError::Later { after, reason }) => {
            let wait = after.as_secs().clamp(1, 3600) as i64;
            deliveries.failed(&format!("rate limited: {reason}"));
            tracing::debug!(key = %item.key, %reason, retry_in = wait, "rate limited; will retry");
            store.mark_retry(&item.key, &reason, later(wait), false).await
        }
        Err(DeliveryError::Permanent(error)) => {
            tracing::error!(key = %item.key, channel = item.channel.as_str(), %error, "delivery failed for good; see `concierge outbox`");
            store.mark_failed(&item.key, &error).await
        }
    };
    if let Err(e) = marked {
        tracing::error!(error = %format!("{e:#}"), key = %item.key, "cannot update the outbox");
    }
}
