//! Integration tests: one binary (see helpers.rs for the databases they use).

mod cli;
mod driver;
mod helpers;
mod replay;
