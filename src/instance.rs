//! `concierge run` as one of several instances. On SQLite there is one
//! instance (a second is refused with a message saying so). On PostgreSQL any
//! number may point at one database: each stands by until it can take the
//! lease ([`crate::store::lease`]), then runs the app with its writes fenced
//! and renews the lease; if it loses the lease (taken over after a pause or
//! a lost connection) it stops acting and stands by again. A standby takes
//! over within [`LEASE_TTL`] plus [`STANDBY_POLL`] of the active one's last
//! renewal: it rebuilds timers from the database, resumes each channel from
//! its stored position and delivers what was pending.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::app::{App, BuildError};
use crate::config::{Config, Env};
use crate::driver::Clock;
use crate::store::lease::{Fence, LEASE_TTL, RENEW_EVERY, STANDBY_POLL, instance_id};
use crate::store::{Backend, InstanceLock, Store};

/// Runs until `shutdown` completes: standing by and acting in turn on
/// PostgreSQL, acting at once on SQLite. `config` serves the first term as
/// the active instance; `load` reads the configuration again for each later
/// one.
pub async fn run(
    config: Config,
    load: impl Fn() -> Result<Config, BuildError>,
    env: &dyn Env,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), BuildError> {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let store = Store::open(&config.database_url).await?;
    if store.backend() == Backend::Sqlite {
        let lock = store.lock_instance().await?;
        let app = App::assemble(config, env, clock, store, lock).await?;
        return Ok(app.run_until_stopped(stopped(stop)).await?);
    }
    let me = instance_id();
    let mut config = Some(config);
    loop {
        let Some(epoch) = stand_by(&store, &me, stop.clone()).await else {
            store.close().await;
            return Ok(());
        };
        let fence = Arc::new(Fence::new(me.clone(), epoch, Instant::now()));
        tracing::info!(instance = %me, epoch, "active: this instance holds the lease and acts");
        let config = match config.take() {
            Some(c) => c,
            None => load()?,
        };
        let fenced = Store::open(&config.database_url).await?.with_fence(fence.clone());
        let lock = InstanceLock::Lease { store: Box::new(fenced.clone()), holder: me.clone(), epoch };
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew(fenced.clone(), fence, lost_tx));
        let app = App::assemble(config, env, clock, fenced, lock).await?;
        let mut until = stop.clone();
        let mut lost_rx = lost.clone();
        app.run_until_stopped(async move {
            tokio::select! {
                _ = until.wait_for(|s| *s) => {}
                _ = lost_rx.wait_for(|l| *l) => {}
            }
        })
        .await?;
        renewer.abort();
        if *stop.borrow() {
            store.close().await;
            return Ok(());
        }
        tracing::warn!(instance = %me, epoch, "no longer active: standing by");
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Waits until this instance takes the lease (its epoch) or `stop` is set
/// (`None`). Says once who is active, and once when the database cannot be
/// reached, and when it can again.
async fn stand_by(store: &Store, me: &str, mut stop: watch::Receiver<bool>) -> Option<i64> {
    let mut said: Option<String> = None;
    let mut unreachable = false;
    loop {
        if *stop.borrow() {
            return None;
        }
        match store.try_acquire_lease(me).await {
            Ok(Some(epoch)) => return Some(epoch),
            Ok(None) => {
                if unreachable {
                    tracing::info!("the database is reachable again");
                    unreachable = false;
                }
                if let Ok(Some(h)) = store.lease_holder().await
                    && said.as_deref() != Some(h.holder.as_str())
                {
                    tracing::info!(instance = %me, active = %h.holder, epoch = h.epoch, "standing by: another instance is active");
                    said = Some(h.holder);
                }
            }
            Err(e) => {
                if !unreachable {
                    tracing::warn!(instance = %me, error = %format!("{e:#}"), "standing by: cannot reach the database");
                    unreachable = true;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Renews the lease every [`RENEW_EVERY`]; sets `lost` when it was taken
/// over, or when renewals have failed for half a lease (the instance must
/// stop acting before a standby may take over).
async fn renew(store: Store, fence: Arc<Fence>, lost: watch::Sender<bool>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let started = Instant::now();
        match tokio::time::timeout(LEASE_TTL / 2, store.renew_lease(&fence.holder, fence.epoch)).await {
            Ok(Ok(true)) => {
                fence.renewed(started);
                if failing {
                    tracing::info!(instance = %fence.holder, "the lease is renewed again");
                    failing = false;
                }
            }
            Ok(Ok(false)) => {
                tracing::error!(instance = %fence.holder, epoch = fence.epoch, "the lease was taken over by another instance");
                let _ = lost.send(true);
                return;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(instance = %fence.holder, error = %format!("{e:#}"), "cannot renew the lease");
                    failing = true;
                }
            }
            Err(_) => {
                if !failing {
                    tracing::warn!(instance = %fence.holder, "renewing the lease timed out");
                    failing = true;
                }
            }
        }
        if !fence.valid() {
            tracing::error!(instance = %fence.holder, "the lease lapsed: this instance stops acting");
            let _ = lost.send(true);
            return;
        }
    }
}
