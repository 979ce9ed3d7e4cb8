//! The functional core: conversations, the SLA clock, reply standards, surveys
//! and report maths.
//!
//! **Invariant:** nothing in `core` does I/O or reads a clock. It never imports
//! tokio, sqlx, serenity, imap or lettre. Every function that depends on time
//! takes `now` as an argument and returns values or actions for the shell to
//! carry out. That is what lets the tests drive timers to the second.

pub mod duration;
pub mod hours;
pub mod report;
pub mod router;
pub mod rules;
pub mod schedule;
pub mod stats;
pub mod survey_link;
pub mod template;
pub mod text;
pub mod timers;
