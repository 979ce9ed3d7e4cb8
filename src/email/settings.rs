//! The `[email]` settings, as validated by [`crate::config`].

use std::fmt;
use std::path::PathBuf;

/// How connections to the mail servers are secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (IMAPS 993, SMTPS 465). The default.
    Implicit,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    StartTls,
    /// No encryption: only for servers on loopback (tests).
    None,
}

impl Tls {
    /// Default (IMAP, SMTP) ports.
    pub fn default_ports(self) -> (u16, u16) {
        match self {
            Tls::Implicit => (993, 465),
            Tls::StartTls => (143, 587),
            Tls::None => (143, 25),
        }
    }
}

/// Who an address belongs to: `sam@example.com` or every address of a domain,
/// `*@example.com`. Matching ignores case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressPattern {
    Exact(String),
    Domain(String),
}

impl AddressPattern {
    pub fn parse(text: &str) -> Option<AddressPattern> {
        let t = text.trim().to_ascii_lowercase();
        let (local, domain) = t.split_once('@')?;
        if domain.is_empty() || domain.contains('@') || local.is_empty() {
            return None;
        }
        Some(if local == "*" { AddressPattern::Domain(domain.to_string()) } else { AddressPattern::Exact(t) })
    }

    pub fn matches(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        match self {
            AddressPattern::Exact(e) => a == *e,
            AddressPattern::Domain(d) => a.rsplit_once('@').is_some_and(|(_, dom)| dom == d),
        }
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The validated `[email]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub imap_host: String,
    pub imap_port: u16,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub username: String,
    pub password: Secret,
    /// The support address customers write to and mail is sent from.
    pub address: String,
    pub tls: Tls,
    /// A CA certificate to trust besides the system's (e.g. a test server's).
    pub tls_ca_file: Option<PathBuf>,
    /// Mailboxes to watch; default `["INBOX"]`.
    pub mailboxes: Vec<String>,
    /// The shared mailbox's Sent folder, watched for agents' replies sent
    /// from the shared account.
    pub sent_mailbox: Option<String>,
    pub agents: Vec<AddressPattern>,
    pub managers: Vec<String>,
    /// Resolve a conversation after this long with no customer answer to an
    /// agent reply (wall-clock seconds).
    pub resolve_after_silence: Option<i64>,
    /// Seconds between polls when the server offers no IDLE.
    pub poll_interval: i64,
}

impl EmailSettings {
    /// The address of the agent called `name`: an address as given, or the
    /// configured agent address whose local part is `name` (ignoring case),
    /// else `name` itself.
    pub fn agent_address(&self, name: &str) -> String {
        if name.contains('@') {
            return name.to_ascii_lowercase();
        }
        self.agents
            .iter()
            .find_map(|p| match p {
                AddressPattern::Exact(a) if a.split('@').next().is_some_and(|l| l.eq_ignore_ascii_case(name)) => {
                    Some(a.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| name.to_string())
    }

    /// Whether `address` is one of the team's agents.
    pub fn is_agent(&self, address: &str) -> bool {
        self.agents.iter().any(|p| p.matches(address))
    }
}

/// Settings for unit tests: support@example.test on loopback, agents at
/// `*@support.example.test` and sam@example.test, one manager.
#[cfg(test)]
pub(crate) fn test_settings() -> EmailSettings {
    EmailSettings {
        imap_host: "localhost".into(),
        imap_port: 143,
        smtp_host: "localhost".into(),
        smtp_port: 25,
        username: "support".into(),
        password: Secret("x".into()),
        address: "support@example.test".into(),
        tls: Tls::None,
        tls_ca_file: None,
        mailboxes: vec!["INBOX".into()],
        sent_mailbox: None,
        agents: vec![
            AddressPattern::parse("sam@example.test").unwrap(),
            AddressPattern::parse("*@support.example.test").unwrap(),
        ],
        managers: vec!["boss@example.test".into()],
        resolve_after_silence: None,
        poll_interval: 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_patterns_match_addresses_and_domains_ignoring_case() {
        let exact = AddressPattern::parse("Sam@Example.com").unwrap();
        let domain = AddressPattern::parse("*@support.example.com").unwrap();
        assert!(exact.matches("sam@example.COM") && !exact.matches("kim@example.com"));
        assert!(domain.matches("Kim@Support.Example.com") && !domain.matches("kim@example.com"));
        for bad in ["sam", "@example.com", "sam@", "a@b@c"] {
            assert_eq!(AddressPattern::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "<redacted>");
    }
}
