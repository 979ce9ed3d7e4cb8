//! A team's rules file: compiled, or refused with reasons; a compiled one
//! checks replies without a panic.
#![no_main]

use concierge::core::rules::{CheckContext, RuleSet};
use libfuzzer_sys::fuzz_target;

const REPLY: &str =
    "Hi Ana,\n\nSorry for the wait. I've fixed the setting on your account, so it works again now.\n\nBest,\nSam";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The text is both a rules file and a reply to the default rules.
    if let Ok(rules) = RuleSet::parse(text, "rules.toml", 70) {
        let _ =
            rules.check(REPLY, CheckContext { customer_name: Some("Ana Lima"), late: true, ..CheckContext::default() });
        let _ = rules.check(text, CheckContext::default());
    }
});
