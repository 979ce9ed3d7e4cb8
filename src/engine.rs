//! The engine: the router and the store together, so that every input and
//! every timer is applied as one unit — the message recorded, the router
//! stepped, the changed state and its actions written in the caller's
//! transaction.
//!
//! Both the live driver and `replay` go through here. If a transaction fails
//! after the router has stepped, call [`Engine::reload`] so memory matches the
//! database again (the inputs are re-delivered by their source).

use jiff::Timestamp;

use crate::config::Config;
use crate::core::router::{Action, Input, Router, Step};
use crate::store::{Store, Tx};

pub struct Engine {
    pub router: Router,
    pub store: Store,
    /// Whether actions are queued for delivery (`false` records them as history).
    deliver: bool,
}

impl Engine {
    /// Opens the store, loads the secret and restores pending timers.
    pub async fn start(config: Config, deliver: bool) -> anyhow::Result<Engine> {
        let store = Store::open(&config.database_url).await?;
        let secret = match config.secret {
            Some(s) => s,
            None => store.secret().await?,
        };
        let mut router = Router::new(config.policy, config.rules, config.templates, secret);
        let (convs, surveys) = store.load_state().await?;
        router.restore(convs, surveys);
        Ok(Engine { router, store, deliver })
    }

    /// Rebuilds the router's memory from the database.
    pub async fn reload(&mut self) -> anyhow::Result<()> {
        let (convs, surveys) = self.store.load_state().await?;
        let fresh = self.router.fresh();
        self.router = fresh;
        self.router.restore(convs, surveys);
        Ok(())
    }

    /// Applies one input at `now`. An input already applied (a message with a
    /// stored id; a resolve or survey answer for the same thread at the same
    /// instant) is skipped and returns `None`.
    pub async fn apply(&mut self, tx: &mut Tx, now: Timestamp, input: Input) -> anyhow::Result<Option<Step>> {
        let new = match &input {
            Input::Message(m) => Store::insert_message(tx, now, m).await?,
            other => Store::mark_processed(tx, now, &input_key(now, other)).await?,
        };
        if !new {
            return Ok(None);
        }
        let step = self.router.handle(now, input);
        Store::apply(tx, &step, self.deliver).await?;
        if let Some(notice) = &step.notice {
            tracing::info!(%notice, "input changed nothing");
        }
        Ok(Some(step))
    }

    /// Fires the timers due at or before `now`.
    pub async fn fire(&mut self, tx: &mut Tx, now: Timestamp) -> anyhow::Result<Vec<Action>> {
        let mut actions = Vec::new();
        for step in self.router.poll_timers(now) {
            Store::apply(tx, &step, self.deliver).await?;
            actions.extend(step.actions);
        }
        Ok(actions)
    }
}

/// The idempotency key of an input that has no id of its own.
fn input_key(at: Timestamp, input: &Input) -> String {
    let (kind, channel, thread) = match input {
        Input::Message(m) => ("message", Some(m.channel), &m.thread),
        Input::Resolve { channel, thread, .. } => ("resolve", *channel, thread),
        Input::SurveyAnswer { channel, thread, .. } => ("answer", *channel, thread),
    };
    let channel = channel.map_or("*", |c| c.as_str());
    format!("{kind}:{channel}:{thread}@{}", at.as_second())
}
