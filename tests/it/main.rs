//! Integration tests: one binary (see helpers.rs for the databases they use).

mod app;
mod browser;
mod cli;
mod crash;
mod discord_e2e;
mod email_corpus;
mod email_e2e;
mod email_imap;
mod email_smtp;
mod failover;
mod fake_discord;
mod helpers;
mod mail_servers;
mod migrations;
mod outage;
mod privacy;
mod replay;
mod report_as_of;
mod schedule;
mod web;
