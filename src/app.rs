//! The composition root: what `concierge run` is made of.
//!
//! [`App::build`] takes a validated [`Config`]: it opens the store, takes the
//! instance lock (see [`Store::lock_instance`]; `concierge run` goes through
//! [`crate::instance`], which on PostgreSQL stands by for the lease),
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
use crate::core::router::{ActionKind, Channel, Recipient};
use crate::core::schedule::WeeklyAt;
use crate::driver::{self, Clock, Wakers};
use crate::engine::Engine;
use crate::status::StatusBoard;
use crate::store::{InstanceLock, Store};
use crate::web::{Web, WebState};

/// `[data] keep_messages`: removes message text older than `keep` seconds at
/// start and then once a day.
async fn purge_daily(store: Store, keep: i64, clock: Clock, mut stopped: watch::Receiver<bool>) {
    loop {
        let before = clock.now().checked_sub(jiff::SignedDuration::from_secs(keep)).unwrap_or(jiff::Timestamp::MIN);
        match store.purge_text(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, before = %before, "message text past [data] keep_messages removed"),
            Err(e) => tracing::warn!("cannot remove old message text: {e:#}; will retry tomorrow"),
        }
        let next = clock.instant_of(clock.now() + jiff::SignedDuration::from_hours(24));
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// The instance's secret: `surveys.secret_*` when configured, else the one
/// the store keeps. It signs survey links and agents' reply addresses.
async fn secret(config: &Config, store: &Store) -> anyhow::Result<Arc<Vec<u8>>> {
    Ok(Arc::new(match &config.secret {
        Some(s) => s.clone(),
        None => store.secret().await?,
    }))
}

/// Binds the web surface when `[http]` enables it.
async fn web(config: &mut Config, secret: Arc<Vec<u8>>) -> anyhow::Result<Option<(Web, WebSettings)>> {
    if !config.http.enabled {
        return Ok(None);
    }
    let web = Web::bind(&config.http).await?;
    if !config.http.public_url_set {
        // Port 0 picks a port only now: links follow the address bound.
        config.http.public_url = format!("http://{}", web.local_addr());
        config.policy.survey_url = Some(format!("{}/survey/", config.http.public_url));
    }
    let settings = WebSettings {
        secret,
        public_url: config.http.public_url.clone(),
        survey_expire: config.policy.survey_expire,
        hours: config.policy.hours.clone(),
    };
    Ok(Some((web, settings)))
}

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
    /// The weekly summary's schedule, with what it needs.
    schedule: Option<Schedule>,
    /// `[data] keep_messages`, in seconds.
    keep_messages: Option<i64>,
    /// The web surface, bound at build time (a taken port fails the start).
    web: Option<(Web, WebSettings)>,
    _lock: InstanceLock,
}

struct Schedule {
    at: WeeklyAt,
    hours: crate::core::hours::BusinessHours,
    rules: crate::core::rules::RuleSet,
}

impl Schedule {
    fn of(config: &Config) -> Option<Schedule> {
        config.weekly_at.map(|at| Schedule { at, hours: config.policy.hours.clone(), rules: config.rules.clone() })
    }
}

/// What the web surface needs besides the store and the inbox.
struct WebSettings {
    secret: Arc<Vec<u8>>,
    /// Where people open the pages (links in mail).
    public_url: String,
    survey_expire: i64,
    hours: crate::core::hours::BusinessHours,
}

impl App {
    /// Everything `concierge run` needs, from the configuration: the store,
    /// the instance lock (see [`Store::lock_instance`]), the channels.
    pub async fn build(config: Config, env: &dyn Env, clock: Clock) -> Result<App, BuildError> {
        let store = Store::open(&config.database_url).await?;
        let lock = store.lock_instance().await?;
        App::assemble(config, env, clock, store, lock).await
    }

    /// [`App::build`] on an open store whose instance lock (or lease) is held.
    pub async fn assemble(
        mut config: Config,
        env: &dyn Env,
        clock: Clock,
        store: Store,
        lock: InstanceLock,
    ) -> Result<App, BuildError> {
        let secret = secret(&config, &store).await?;
        let registry = Registry::build(&config, &store, env, secret.clone())?;
        for warning in registry.unroutable(&config.policy) {
            tracing::warn!("{warning}");
        }
        let web = web(&mut config, secret).await?;
        let (schedule, keep_messages) = (Schedule::of(&config), config.keep_messages);
        let engine = Engine::with_store(config, store, true, clock.now()).await?;
        Ok(App { engine, registry, clock, schedule, keep_messages, web, _lock: lock })
    }

    /// The app with these channels instead of the configured ones (tests).
    pub async fn with_channels(
        mut config: Config,
        channels: Vec<Arc<dyn ChannelAdapter>>,
        clock: Clock,
    ) -> Result<App, BuildError> {
        let store = Store::open(&config.database_url).await?;
        let lock = store.lock_instance().await?;
        let secret = secret(&config, &store).await?;
        let web = web(&mut config, secret).await?;
        let (schedule, keep_messages) = (Schedule::of(&config), config.keep_messages);
        let engine = Engine::with_store(config, store, true, clock.now()).await?;
        Ok(App { engine, registry: Registry::with(channels), clock, schedule, keep_messages, web, _lock: lock })
    }

    pub fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Where the web surface listens, when it is enabled.
    pub fn web_addr(&self) -> Option<std::net::SocketAddr> {
        self.web.as_ref().map(|(w, _)| w.local_addr())
    }

    /// Runs the channels, their dispatch workers and the driver until
    /// `shutdown` completes; then stops everything within a second.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let App { engine, registry, clock, schedule, keep_messages, web, _lock } = self;
        let store = engine.store.clone();
        let (sender, inbox) = mpsc::channel(1024);
        let (stop, stopped) = watch::channel(false);
        let connected = registry.connected();
        if connected.is_empty() {
            tracing::info!("no channels are configured: serving timers and the outbox (actions are logged)");
        }
        let real = registry.adapters().iter().filter(|a| !a.is_stand_in()).map(|a| a.channel());
        let status = StatusBoard::new(real, clock.now());
        let mut tasks = tokio::task::JoinSet::new();
        let links = web.as_ref().map(|(_, w)| (w.public_url.clone(), w.secret.clone()));
        if let Some((web, settings)) = web {
            let state = WebState {
                store: store.clone(),
                inbox: sender.clone(),
                clock,
                status: status.clone(),
                secret: settings.secret,
                survey_expire: settings.survey_expire,
                started: clock.now(),
                hours: settings.hours,
            };
            let mut s = stopped.clone();
            tasks.spawn(web.serve(state, async move {
                let _ = s.wait_for(|stop| *stop).await;
            }));
        }
        let mut wakers = Wakers::default();
        for adapter in registry.adapters() {
            let intake = Intake {
                store: store.clone(),
                inbox: sender.clone(),
                clock,
                shutdown: stopped.clone(),
                status: status.clone(),
            };
            tasks.spawn(adapter.clone().intake(intake));
            let wake = Arc::new(Notify::new());
            wakers.0.push(wake.clone());
            tasks.spawn(crate::dispatch::run_worker(store.clone(), adapter.clone(), wake, clock, stopped.clone()));
        }
        if let Some(Schedule { at, hours, rules }) = schedule {
            let managers: Vec<Channel> = registry
                .adapters()
                .iter()
                .filter(|a| !a.is_stand_in() && a.carries(ActionKind::Summary, &Recipient::Managers))
                .map(|a| a.channel())
                .collect();
            tasks.spawn(crate::reports::run_schedule(
                store.clone(),
                hours,
                rules,
                at,
                managers,
                links,
                clock,
                wakers.clone(),
                stopped.clone(),
            ));
        }
        if let Some(keep) = keep_messages {
            tasks.spawn(purge_daily(store.clone(), keep, clock, stopped.clone()));
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
        _lock.release().await;
        store.close().await;
        result
    }
}
