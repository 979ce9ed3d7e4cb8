//! The Discord channel: a thread per conversation, checked replies taken
//! back in enforce mode, nudges by DM and in the staff channel.
//!
//! Only this module sees serenity and Discord's JSON. [`intake`] (what a
//! message means) is pure; [`rest`], [`state`] (the channel's own tables)
//! and [`channel`] (the [`DiscordChannel`] adapter: gateway, catch-up,
//! delivery) are the shell. [`settings`] validates the `[discord]` section.

pub mod channel;
pub mod intake;
pub mod interactions;
pub mod rest;
pub mod settings;
pub mod state;

pub use channel::DiscordChannel;
