//! The composition root: what `concierge run` is made of.
//!
//! [`App::build`] takes a validated [`Config`]: it opens the store, takes the
//! instance lock (a second `run` on the same database refuses to start),
//! builds the channel [`Registry`] (reading channel secrets now) and the
//! engine. [`App::run_until_stopped`] starts each channel's intake and
//! dispatch worker and the driver, and stops them all when `shutdown`
//! completes. End-to-end tests build the same app in-process, with
//! [`App::with_channels`] to plug in channels of their own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::channels::{ChannelAdapter, Intake, Registry};
use crate::config::{Config, ConfigError, Env};
use crate::driver::{self, Clock, Wakers};
use crate::engine::Engine;
use crate::store::{InstanceLock, Store};

/// Why the app could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A configuration problem found only now (a missing channel secret): exit 2.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The database or a channel could not be set up: exit 1.
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

pub struct App {
    engine: Engine,
    registry: Registry,
    clock: Clock,
    _lock: InstanceLock,
}

impl App {
    /// Everything `concierge run` needs, from the configuration.
    pub async fn build(config: Config, env: &dyn Env, clock: Clock) -> Result<App, BuildError> {
        let store = Store::open(&config.database_url).await?;
        let lock = store.lock_instance().await?;
        let registry = Registry::build(&config, &store, env)?;
        for warning in registry.unroutable(&config.policy) {
            tracing::warn!("{warning}");
        }
        let engine = Engine::with_store(config, store, true).await?;
        Ok(App { engine, registry, clock, _lock: lock })
    }

    /// The app with these channels instead of the configured ones (tests).
    pub async fn with_channels(
        config: Config,
        channels: Vec<Arc<dyn ChannelAdapter>>,
        clock: Clock,
    ) -> Result<App, BuildError> {
        let store = Store::open(&config.database_url).await?;
        let lock = store.lock_instance().await?;
        let engine = Engine::with_store(config, store, true).await?;
        Ok(App { engine, registry: Registry::with(channels), clock, _lock: lock })
    }

    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Runs the channels, their dispatch workers and the driver until
    /// `shutdown` completes; then stops everything within a second.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let App { engine, registry, clock, _lock } = self;
        let store = engine.store.clone();
        let (sender, inbox) = mpsc::channel(1024);
        let (stop, stopped) = watch::channel(false);
        let connected = registry.connected();
        if connected.is_empty() {
            tracing::info!("no channels are configured: serving timers and the outbox (actions are logged)");
        }
        let mut tasks = tokio::task::JoinSet::new();
        let mut wakers = Wakers::default();
        for adapter in registry.adapters() {
            let intake = Intake { store: store.clone(), inbox: sender.clone(), clock, shutdown: stopped.clone() };
            tasks.spawn(adapter.clone().intake(intake));
            let wake = Arc::new(Notify::new());
            wakers.0.push(wake.clone());
            tasks.spawn(crate::dispatch::run_worker(store.clone(), adapter.clone(), wake, clock, stopped.clone()));
        }
        // The driver keeps running while any sender lives; intakes hold theirs.
        drop(sender);
        wakers.wake();
        let result = driver::run(engine, inbox, clock, wakers, shutdown).await;
        let _ = stop.send(true);
        // Workers and intakes end at once; a blocking IMAP call is left behind.
        let _ = tokio::time::timeout(Duration::from_millis(500), async { while tasks.join_next().await.is_some() {} })
            .await;
        tasks.abort_all();
        store.close().await;
        _lock.release().await;
        result
    }
}
