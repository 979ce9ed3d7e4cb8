//! concierge (work in progress)
pub mod core;
