//! The stand-in for a channel that is not configured: it logs what would
//! have been sent (the recipient redacted above debug level) and counts it
//! delivered, so a bot with no channel still serves its timers.

use std::sync::Arc;

use super::{BoxFuture, ChannelAdapter, DeliveryError, Intake};
use crate::core::router::{ActionKind, Channel, Recipient};
use crate::store::OutboxItem;

pub struct LogChannel(pub Channel);

impl ChannelAdapter for LogChannel {
    fn channel(&self) -> Channel {
        self.0
    }

    fn carries(&self, _kind: ActionKind, _to: &Recipient) -> bool {
        false
    }

    fn is_stand_in(&self) -> bool {
        true
    }

    fn intake(self: Arc<Self>, intake: Intake) -> BoxFuture<'static, ()> {
        Box::pin(async move { intake.stopped().await })
    }

    fn deliver<'a>(&'a self, item: &'a OutboxItem) -> BoxFuture<'a, Result<(), DeliveryError>> {
        Box::pin(async move {
            tracing::info!(
                key = %item.key,
                kind = item.kind.as_str(),
                thread = %item.thread,
                to = %redact(item.recipient.as_str()),
                channel = item.channel.as_str(),
                "action logged: the {} channel is not configured",
                item.channel.as_str()
            );
            tracing::debug!(to = item.recipient.as_str(), body = %item.body, "action body");
            Ok(())
        })
    }
}

/// Hides the local part of an address above debug level: `a***@example.com`.
pub fn redact(recipient: &str) -> String {
    match recipient.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => recipient.to_string(),
    }
}

/// Every address in `text` redacted (an SMTP server's reply quotes them).
pub fn redact_addresses(text: &str) -> String {
    text.split_inclusive(|c: char| c.is_whitespace() || "<>,;:\"'()[]".contains(c))
        .map(|word| {
            let end = word.trim_end_matches(|c: char| c.is_whitespace() || "<>,;:\"'()[]".contains(c));
            if end.contains('@') && !end.starts_with('@') {
                format!("{}{}", redact(end), &word[end.len()..])
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_redacted_in_recipients_and_in_server_replies() {
        assert_eq!(redact("ana@example.com"), "a***@example.com");
        assert_eq!(redact("managers"), "managers");
        assert_eq!(
            redact_addresses("550 5.1.1 <ana.lima@example.com>: Recipient address rejected: ana.lima@example.com"),
            "550 5.1.1 <a***@example.com>: Recipient address rejected: a***@example.com"
        );
    }
}
