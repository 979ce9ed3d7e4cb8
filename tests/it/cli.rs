//! The command-line contract, run as a user would.
