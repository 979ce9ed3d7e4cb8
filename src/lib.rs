//! concierge (work in progress)
pub mod config;
pub mod core;
pub mod store;
