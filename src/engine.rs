//! The engine: the router and the store together, so that every input and
//! every timer is applied as one unit — the input recorded, the router
//! stepped, the changed state and its actions written in the caller's
//! transaction.
//!
//! Both the live driver (a batch of one input) and `replay` (batches of
//! thousands) go through here. If a transaction fails after the router has
//! stepped, call [`Engine::reload`] so memory matches the database again (the
//! inputs are re-delivered by their source).

use jiff::Timestamp;

use crate::config::Config;
use crate::core::router::{Action, IdSet, Input, Router, Step, Wanted};
use crate::store::{Batch, Store, Stored, Tx, input_key, is_message};

pub struct Engine {
    pub router: Router,
    pub store: Store,
    /// Whether actions are queued for delivery (`false` records them as history).
    deliver: bool,
}

impl Engine {
    /// Opens the store, loads the secret and restores open work and its
    /// timers as of `now` (the throttle window is counted back from it).
    pub async fn start(config: Config, deliver: bool, now: Timestamp) -> anyhow::Result<Engine> {
        let store = Store::open(&config.database_url).await?;
        Engine::with_store(config, store, deliver, now).await
    }

    /// [`Engine::start`] on an open store.
    pub async fn with_store(config: Config, store: Store, deliver: bool, now: Timestamp) -> anyhow::Result<Engine> {
        let secret = match config.secret {
            Some(s) => s,
            None => store.secret().await?,
        };
        let router = Router::new(config.policy, config.rules, config.templates, secret);
        let mut engine = Engine { router, store, deliver };
        engine.reload(now).await?;
        Ok(engine)
    }

    /// Rebuilds the router's memory from the database: open work, surveys
    /// pending, and the surveys sent within the throttle window before `now`.
    pub async fn reload(&mut self, now: Timestamp) -> anyhow::Result<()> {
        let throttle = jiff::SignedDuration::from_secs(self.router.policy().survey_throttle);
        let from = now.checked_sub(throttle).unwrap_or(Timestamp::MIN);
        let mut router = self.router.fresh();
        self.store
            .load_state_each(from, |item| match item {
                Stored::Sent(customer, at) => router.restore_sent(&customer, at),
                Stored::Conversation(c, surveys) => router.restore_one(c, surveys),
            })
            .await?;
        self.router = router;
        Ok(())
    }

    /// Brings into memory the stored conversations `inputs` need (see
    /// [`Router::wants`]), in one lookup.
    pub async fn hydrate<'a>(
        &mut self,
        tx: &mut Tx,
        inputs: impl IntoIterator<Item = &'a Input>,
    ) -> anyhow::Result<()> {
        self.hydrate_where(tx, inputs, |_| true).await
    }

    /// [`Engine::hydrate`], looking up only what `may_be_stored` allows (a
    /// replay into a new database knows what it stored itself).
    pub async fn hydrate_where<'a>(
        &mut self,
        tx: &mut Tx,
        inputs: impl IntoIterator<Item = &'a Input>,
        may_be_stored: impl Fn(&Wanted) -> bool,
    ) -> anyhow::Result<()> {
        let (mut ids, mut threads) = (Vec::new(), Vec::new());
        for input in inputs {
            match self.router.wants(input).filter(|w| may_be_stored(w)) {
                Some(Wanted::Id(id)) => ids.push(id),
                Some(Wanted::Thread(thread)) => threads.push(thread),
                None => {}
            }
        }
        if ids.is_empty() && threads.is_empty() {
            return Ok(());
        }
        ids.sort();
        ids.dedup();
        threads.sort();
        threads.dedup();
        let (convs, surveys) = self.store.stored_for(tx, &ids, &threads).await?;
        self.router.hydrate_all(convs, surveys);
        Ok(())
    }

    /// Lets the router drop what is at rest once a transaction committed.
    pub fn settle(&mut self, now: Timestamp) {
        self.router.settle(now);
    }

    /// An empty batch for this engine's delivery mode.
    pub fn batch(&self) -> Batch {
        Batch::new(self.deliver)
    }

    /// Steps the router with `input` unless its `key` ([`input_key`]) is in
    /// `known`, recording both in `batch`; adds the key to `known`. `None`
    /// for a repeat.
    pub fn route(
        &mut self,
        batch: &mut Batch,
        known: &mut IdSet,
        now: Timestamp,
        key: String,
        input: Input,
    ) -> Option<Step> {
        if known.contains(&key) {
            return None;
        }
        let step = self.router.handle(now, &input);
        batch.record_input(now, &key, input);
        known.insert(key);
        if let Some(notice) = &step.notice {
            tracing::info!(%notice, "input changed nothing");
        }
        Some(step)
    }

    /// Fires the timers due at or before `now` into `batch`, showing each
    /// step's actions to `each` first.
    pub fn fire_each(
        &mut self,
        batch: &mut Batch,
        now: Timestamp,
        mut each: impl FnMut(&[Action]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for step in self.router.poll_timers(now) {
            each(&step.actions)?;
            batch.record_step(step);
        }
        Ok(())
    }

    /// Applies one input at `now` in `tx`. An input already applied (a message
    /// with a stored id; a resolve or survey answer for the same thread at the
    /// same instant) is skipped and returns `None`.
    pub async fn apply(&mut self, tx: &mut Tx, now: Timestamp, input: Input) -> anyhow::Result<Option<Vec<Action>>> {
        let key = input_key(now, &input);
        let mut known = self.store.known_inputs(tx, &[(key.as_str(), is_message(&input))]).await?;
        if !known.contains(&key) {
            self.hydrate(tx, [&input]).await?;
        }
        let mut batch = self.batch();
        let Some(step) = self.route(&mut batch, &mut known, now, key, input) else {
            return Ok(None);
        };
        let actions = step.actions.clone();
        batch.record_step(step);
        batch.record_conversations(self.router.take_changed());
        self.store.flush(tx, &batch).await?;
        Ok(Some(actions))
    }

    /// Fires the timers due at or before `now` in `tx`.
    pub async fn fire(&mut self, tx: &mut Tx, now: Timestamp) -> anyhow::Result<Vec<Action>> {
        let mut batch = self.batch();
        let mut actions = Vec::new();
        self.fire_each(&mut batch, now, |a| {
            actions.extend_from_slice(a);
            Ok(())
        })?;
        batch.record_conversations(self.router.take_changed());
        if !batch.is_empty() {
            self.store.flush(tx, &batch).await?;
        }
        Ok(actions)
    }
}
