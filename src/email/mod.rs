//! The email channel (in progress): IMAP in, SMTP out, threaded and durable.
//!
//! Only this module sees MIME, IMAP and SMTP. [`message`] turns raw mail into
//! values the router can use; it does no I/O.

pub mod channel;
pub mod compose;
pub mod imap;
pub mod intake;
pub mod message;
pub mod settings;
pub mod smtp;
pub mod state;
