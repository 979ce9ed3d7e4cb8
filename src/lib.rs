//! concierge keeps a support team's service standards on chat and email.
//!
//! # Bird's-eye view
//!
//! Customers write on Discord and by email. Every message becomes an
//! [`Input`](core::router::Input) to the [`Router`](core::router::Router), a
//! pure state machine that threads it into a conversation, starts the
//! first-response clock in business hours, checks agent replies against the
//! team's rules and schedules surveys. The router returns
//! [`Action`](core::router::Action)s (acknowledge, announce, nudge, escalate,
//! feedback, survey, detractor alert), each already routed — a typed
//! [`Recipient`](core::router::Recipient) and the channel that delivers it —
//! and snapshots of what changed; the shell writes both in one database
//! transaction (the outbox). A dispatch worker per channel delivers the
//! outbox apart from the driver, so a slow channel delays nobody else.
//! Weekly reports are computed by pure code from rows the store reads back,
//! as they stood at any instant: the steps also carry the resolution history
//! (each resolve and its reopening), so a report as of last Monday counts
//! what was resolved then.
//!
//! ```text
//!                    ┌──────────────── app (composition root) ────────────────┐
//!  channels/NAME ──Inbound──▶ driver ──▶ engine ──▶ router (pure)              │
//!   (intake)                   │          │            │ Step{actions, state}  │
//!                              │ wake     └── store ◀──┘ one transaction       │
//!                              ▼                 │                             │
//!  channels/NAME ◀── deliver ── dispatch (one worker per channel) ◀── outbox   │
//!                    └────────────────────────────────────────────────────────┘
//! ```
//!
//! # Code map
//!
//! - [`core`]: the functional core. No I/O, no clock, no tokio/sqlx/serenity/
//!   lettre/imap. [`core::hours`] (business-time arithmetic, the SLA clock's
//!   semantics), [`core::router`] (conversations, SLA stages, surveys, who
//!   gets each action on which channel; its memory laid out for size in
//!   `core/router/held.rs`, timers in [`core::timers`]), [`core::rules`] (the reply-standards
//!   checker; its one pass over a reply in `core/rules/one_pass.rs`), [`core::report`] and [`core::stats`] (weekly figures,
//!   nearest-rank percentiles, NPS, the report page's details),
//!   [`core::schedule`] (when the weekly summary goes out, DST-exact),
//!   [`core::survey_link`] (what a survey link or comment form does),
//!   [`core::template`] (message templates and mail subjects, checked at
//!   load), [`core::duration`], [`core::text`].
//! - [`config`]: `concierge.toml`, validated as a whole with every problem
//!   reported by key; [`config::section`] holds the helpers every section
//!   uses (secrets by env or file, read only when needed; an injected
//!   [`Env`](config::Env)).
//! - [`channels`]: the channel contract ([`ChannelAdapter`](channels::ChannelAdapter),
//!   [`DeliveryError`](channels::DeliveryError)), the registry, the `log`
//!   stand-in and one folder per channel: [`channels::email`] (MIME, IMAP,
//!   SMTP; its `settings.rs` owns `[email]`) and [`channels::discord`]
//!   (serenity's gateway, REST, threads, slash commands and buttons; owns
//!   `[discord]`).
//! - [`app`]: the composition root: `App::build` + `run_until_stopped`,
//!   used by `concierge run` and by in-process tests: channels, dispatch,
//!   driver, the web surface, the weekly schedule, the daily text purge.
//! - [`web`]: the HTTP surface on axum: survey pages, the report page, the
//!   API (bearer tokens), `/healthz`, `/metrics`. [`status`]: each channel's
//!   connection state, for `/healthz`, and [`Condition`](status::Condition),
//!   how a degraded part says so once in the log and once when it recovers.
//! - [`reports`]: weekly reports read, computed and rendered for the CLI,
//!   Discord and the web; queuing the summary; the schedule's task.
//! - [`instance`]: `concierge run` as one of several instances: SQLite
//!   single, PostgreSQL active/standby on a lease with fenced writes.
//! - [`driver`]: the loop that applies inputs, timers and queued commands,
//!   one transaction each. [`dispatch`]: the outbox workers. [`backoff`]:
//!   the retry policies (deliveries and reconnects).
//! - [`store`]: sqlx over SQLite or PostgreSQL, one portable schema
//!   (`migrations/`), split by concern: batch, outbox, report, commands,
//!   conversations, tokens, metrics, privacy (forget, purge); the instance
//!   lock, and on PostgreSQL the active instance's lease ([`store::lease`]).
//! - [`engine`]: router + store, so each input or timer is applied as one unit.
//! - [`replay`]: JSON-lines histories on a simulated clock.
//! - [`standards`]: the rules measured against a labelled corpus (pure).
//! - [`format`](mod@format): report rendering (text, markdown, json, csv, html).
//! - [`demo`]: the built-in weeks behind `concierge demo`.
//! - [`bench`](mod@bench): `concierge bench`: figures beside their physical references,
//!   on data from seeded generators ([`bench::generate`]).
//! - [`cli`]: the command-line contract; `main.rs` only calls [`cli::main`].
//!
//! # Architecture invariants
//!
//! - `core` never performs I/O or reads the time: `now` is an argument.
//! - Every side effect goes through the outbox, written in the same
//!   transaction as the state change that caused it; each has an idempotency
//!   key, so a crash or a replay neither loses nor repeats it.
//! - A delivery's attempt is recorded before it starts; one cut off by a
//!   crash is checked before it is sent again (email: its copy in the
//!   support mailbox), so a kill -9 neither loses nor repeats mail.
//! - Every input has an idempotency key (a message's channel id; a resolve's
//!   or survey answer's thread and instant): applying it twice changes nothing.
//! - Routing is decided by the core and recorded in the outbox row; a channel
//!   only resolves a [`Recipient`](core::router::Recipient) to its own
//!   addresses, and says whether a failure is worth retrying.
//! - Only a channel sees its protocol (MIME, IMAP, SMTP, Discord); adding one
//!   means adding `channels/NAME/` and its lines in `channels/mod.rs`.
//! - Memory follows open work: the router holds open conversations, pending
//!   surveys and the survey throttle's window; the engine hydrates an old
//!   conversation before an input needs it and lets the router drop what came
//!   to rest once committed (start-up and memory do not grow with history;
//!   open work is streamed from the database into the router, never listed
//!   whole first).
//! - On PostgreSQL exactly one instance acts (a lease with fenced writes,
//!   [`store::lease`]); SQLite serves one instance.
//! - Mail from an agent's address is acted on only with proof that the
//!   agent wrote it ([`channels::email::auth`]); otherwise it is a customer's.
//! - No outage ends `run`: a degraded part says so once and once when it
//!   recovers ([`status::Condition`]); what could not be stored stays at
//!   its source and is read again.
//! - The library never calls `std::process::exit`.

pub mod app;
pub mod backoff;
pub mod bench;
pub mod channels;
pub mod cli;
pub mod config;
pub mod core;
pub mod demo;
pub mod dispatch;
pub mod driver;
pub mod engine;
pub mod format;
pub mod input;
pub mod instance;
pub mod replay;
pub mod reports;
pub mod standards;
pub mod status;
pub mod store;
pub mod web;
