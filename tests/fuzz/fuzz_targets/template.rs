//! Message templates: a team's file is accepted or refused by name, and
//! rendering any template with any values never panics.
#![no_main]

use concierge::core::template::{Templates, render};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let file = Templates::FILES[text.len() % Templates::FILES.len()];
    if let Ok(templates) = Templates::with_overrides(|name| (name == file).then(|| text.to_string())) {
        let _ = templates.email_subject(concierge::core::router::ActionKind::Acknowledgement, text);
    }
    let (template, value) = text.split_at(text.floor_char_boundary(text.len() / 2));
    let _ = render(template, &[("customer_name", value), ("ticket", "T1"), ("body", value)]);
});
