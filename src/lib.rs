//! concierge (work in progress)
pub mod config;
pub mod core;
pub mod engine;
pub mod format;
pub mod replay;
pub mod store;
