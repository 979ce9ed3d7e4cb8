//! Replay files: every line an event or a reason with its line number.
#![no_main]

use concierge::core::router::Policy;
use concierge::replay::{parse, parse_line, to_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((at, input)) = parse_line(text) {
        // What reads also writes back and reads the same.
        if let Some(line) = to_line(at, &input) {
            assert_eq!(parse_line(&line), Ok((at, input)));
        }
    }
    if let Err(problems) = parse(text, "fuzz.jsonl", &Policy::default()) {
        assert!(problems.iter().all(|p| p.starts_with("fuzz.jsonl:")));
    }
});
