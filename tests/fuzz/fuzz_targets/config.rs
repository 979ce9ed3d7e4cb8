//! `concierge.toml`: any text is either a configuration or a list of
//! problems by key, never a panic.
#![no_main]

use concierge::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let env = std::collections::HashMap::from([("CONCIERGE_EMAIL_PASSWORD".to_string(), "pw".to_string())]);
    if let Err(e) = Config::parse_with_env(text, "fuzz.toml", None, &env) {
        assert!(!e.problems.is_empty());
    }
});
