//! concierge (work in progress)
pub mod cli;
pub mod config;
pub mod core;
pub mod demo;
pub mod driver;
pub mod engine;
pub mod format;
pub mod replay;
pub mod store;
