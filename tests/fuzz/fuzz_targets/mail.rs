//! Inbound mail: MIME parsing, threading and what the mail means (customer,
//! agent with or without proof, ignored), then the reply rules on its text.
#![no_main]

use std::sync::LazyLock;

use concierge::channels::email::auth::parse_authentication_results;
use concierge::channels::email::intake::{Decision, Lookup, decide, message_key};
use concierge::channels::email::message::{Email, strip_reply, take_commands, ticket_token};
use concierge::channels::email::settings::EmailSettings;
use concierge::config::Config;
use concierge::core::rules::{CheckContext, RuleSet};
use libfuzzer_sys::fuzz_target;

static SETTINGS: LazyLock<EmailSettings> = LazyLock::new(|| {
    let text = "[email]\nimap_host = \"localhost\"\nsmtp_host = \"localhost\"\nusername = \"support\"\n\
                password_env = \"UNUSED\"\naddress = \"support@example.test\"\nagents = [\"*@example.test\"]\n\
                managers = [\"boss@example.test\"]\nauthserv_id = \"mx.example.test\"\n";
    Config::parse(text, "fuzz", None).expect("a valid config").channels.email.expect("[email]")
});

static RULES: LazyLock<RuleSet> = LazyLock::new(RuleSet::default_rules);

fuzz_target!(|data: &[u8]| {
    let Ok(email) = Email::parse(data) else { return };
    let key = message_key(&email, data);
    for header in &email.auth_results {
        let _ = parse_authentication_results(header);
    }
    let token = ticket_token(&email.subject).map(str::to_string);
    let lookups = [
        Lookup::default(),
        Lookup {
            token_ticket: token.or(Some("T1".into())),
            customer: Some("ana@example.com".into()),
            ..Lookup::default()
        },
        Lookup { ref_ticket: Some("T2".into()), in_sent: true, ..Lookup::default() },
    ];
    for lookup in &lookups {
        if let Decision::Route { ticket, inputs, .. } = decide(&email, &key, &SETTINGS, lookup, Some(b"fuzz key")) {
            assert!(!ticket.is_empty() && !inputs.is_empty());
        }
    }
    let (_, rest) = take_commands(&email.body);
    let text = strip_reply(rest);
    let _ = RULES.check(&text, CheckContext { customer_name: email.from.name.as_deref(), ..CheckContext::default() });
});
