//! Integration tests: one binary (see helpers.rs for the databases they use).

mod app;
mod cli;
mod email_corpus;
mod email_e2e;
mod email_imap;
mod email_smtp;
mod helpers;
mod mail_servers;
mod replay;
