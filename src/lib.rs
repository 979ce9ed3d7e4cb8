//! concierge keeps a support team's service standards on chat and email.
//!
//! # Bird's-eye view
//!
//! Customers write on Discord and by email. Every message becomes an
//! [`Input`](core::router::Input) to the [`Router`](core::router::Router), a
//! pure state machine that threads it into a conversation, starts the
//! first-response clock in business hours, checks agent replies against the
//! team's rules and schedules surveys. The router returns
//! [`Action`](core::router::Action)s (acknowledge, nudge, escalate, feedback,
//! survey, detractor alert) and snapshots of what changed; the shell writes
//! both in one database transaction (the outbox) and a dispatcher delivers the
//! actions through a channel. Weekly reports are computed by pure code from
//! rows the store reads back.
//!
//! ```text
//!  channel adapters ──Inbound──▶ driver ──▶ engine ──▶ router (pure)
//!                                  │          │            │ Step{actions, state}
//!                                  │          └── store ◀──┘ one transaction
//!                                  └── dispatcher ◀── outbox ──▶ Outbound (channel)
//! ```
//!
//! # Code map
//!
//! - [`core`]: the functional core. No I/O, no clock, no tokio/sqlx/serenity/
//!   lettre/imap. [`core::hours`] (business-time arithmetic, the SLA clock's
//!   semantics), [`core::router`] (conversations, SLA stages, surveys),
//!   [`core::rules`] (the reply-standards checker), [`core::report`] and
//!   [`core::stats`] (weekly figures, nearest-rank percentiles, NPS),
//!   [`core::template`] (message templates), [`core::duration`].
//! - [`config`]: `concierge.toml`, validated as a whole with every problem
//!   reported by key.
//! - [`store`]: sqlx over SQLite or PostgreSQL, one portable schema
//!   (`migrations/`), the outbox.
//! - [`engine`]: router + store, so each input or timer is applied as one unit.
//! - [`driver`]: the long-running loop (`concierge run`), outbox dispatch and
//!   commands queued by the command line.
//! - [`email`]: the email channel. [`email::message`] (MIME parsing, quote
//!   stripping, commands), [`email::intake`] (threading and what a mail
//!   means) and [`email::compose`] are pure; [`email::imap`], [`email::smtp`],
//!   [`email::state`] and [`email::channel`] are the shell.
//! - [`replay`]: JSON-lines histories on a simulated clock.
//! - [`format`](mod@format): report rendering (text, markdown, json, csv, html).
//! - [`demo`]: the built-in weeks behind `concierge demo`.
//! - [`cli`]: the command-line contract; `main.rs` only calls [`cli::main`].
//!
//! # Architecture invariants
//!
//! - `core` never performs I/O or reads the time: `now` is an argument.
//! - Every side effect goes through the outbox, written in the same
//!   transaction as the state change that caused it; each has an idempotency
//!   key, so a crash or a replay neither loses nor repeats it.
//! - Every input has an idempotency key (a message's channel id; a resolve's
//!   or survey answer's thread and instant): applying it twice changes nothing.
//! - Only `email` sees MIME, IMAP and SMTP; a channel turns what it receives
//!   into [`Input`](core::router::Input)s and carries out outbox rows.
//! - The library never calls `std::process::exit`.

pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod core;
pub mod demo;
pub mod dispatch;
pub mod driver;
pub mod engine;
pub mod format;
pub mod replay;
pub mod store;
