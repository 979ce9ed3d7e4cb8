//! The email channel: IMAP in, SMTP out, threaded and durable.
//!
//! Only this module sees MIME, IMAP and SMTP. [`message`] (MIME parsing,
//! quote stripping, first-line commands), [`intake`] (threading and what a
//! mail means), [`auth`] (whether an agent's mail is really theirs) and
//! [`compose`] are pure; [`imap`], [`smtp`], [`state`] (the
//! channel's own tables) and [`channel`] (the [`EmailChannel`] adapter) are
//! the shell. [`settings`] validates the `[email]` section.

pub mod auth;
pub mod channel;
pub mod compose;
pub mod imap;
pub mod intake;
pub mod message;
pub mod settings;
pub mod smtp;
pub mod state;

pub use channel::EmailChannel;
