//! The `[email]` section: its keys, their validation (every problem by key,
//! with the fix) and the settings the channel runs with. The password is not
//! read here: [`EmailSettings::password_source`] says where it is, and the
//! channel reads it when it starts.

use std::path::PathBuf;

pub use crate::config::Secret;
use crate::config::{SecretSource, Section};

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

/// The validated `[email]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub imap_host: String,
    pub imap_port: u16,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub username: String,
    /// Where the password is (`password_env` / `password_file`).
    pub password_source: SecretSource,
    /// The password, once read by [`EmailSettings::with_password`].
    pub password: Secret,
    /// Log in to the SMTP server (`smtp_auth`, default true); false for a
    /// relay without AUTH such as a local MTA on port 25.
    pub smtp_auth: bool,
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
    /// `authserv_id`: the receiving servers whose `Authentication-Results`
    /// prove an agent's mail (see [`super::auth`]); lower-cased.
    pub authserv_ids: Vec<String>,
    /// `agent_reply_tags` (default true): mail to agents carries a
    /// `Reply-To` with the ticket's secret tag, which proves their replies.
    pub agent_reply_tags: bool,
    /// `copy_to_support` (default true): every mail sent also goes to the
    /// support address (envelope only), so after a crash concierge can see
    /// whether an interrupted send went out before sending it again.
    pub copy_to_support: bool,
}

/// The keys of `[email]`.
pub const KEYS: &[&str] = &[
    "imap_host",
    "imap_port",
    "smtp_host",
    "smtp_port",
    "smtp_auth",
    "username",
    "password_env",
    "password_file",
    "address",
    "tls",
    "tls_ca_file",
    "mailboxes",
    "sent_mailbox",
    "agents",
    "managers",
    "resolve_after_silence",
    "poll_interval",
    "authserv_id",
    "agent_reply_tags",
    "copy_to_support",
    "enabled",
];

/// Validates `[email]`; `None` when it is disabled or has problems (all
/// reported in `s`).
pub fn parse(s: &mut Section) -> Option<EmailSettings> {
    if s.flag("enabled") == Some(false) {
        return None;
    }
    let before = s.problem_count();
    let tls = match s.string("tls") {
        None | Some("tls") => Tls::Implicit,
        Some("starttls") => Tls::StartTls,
        Some("none") => Tls::None,
        Some(other) => {
            s.problem(
                "tls",
                format!("\"{other}\" is not a TLS mode; use \"tls\", \"starttls\" or \"none\" (loopback only)"),
            );
            Tls::Implicit
        }
    };
    let imap_host = s.required("imap_host", "imap.example.com");
    let smtp_host = s.required("smtp_host", "smtp.example.com");
    let username = s.required("username", "support@example.com");
    let address = s.required("address", "support@example.com").to_ascii_lowercase();
    if !address.is_empty() && AddressPattern::parse(&address).is_none() {
        s.problem("address", format!("\"{address}\" is not an email address"));
    }
    let (default_imap, default_smtp) = tls.default_ports();
    let imap_port = s.port("imap_port", default_imap);
    let smtp_port = s.port("smtp_port", default_smtp);
    let smtp_auth = s.flag("smtp_auth").unwrap_or(true);
    let password_source = s.secret("password", "mailbox password (or app password)", "CONCIERGE_EMAIL_PASSWORD");
    let tls_ca_file = s.path("tls_ca_file");
    if let Some(ca) = &tls_ca_file
        && !ca.is_file()
    {
        s.problem("tls_ca_file", format!("{} is not a file; point it at a PEM certificate", ca.display()));
    }
    let mut mailboxes = s.strings("mailboxes");
    if mailboxes.is_empty() {
        mailboxes.push("INBOX".into());
    }
    let listed = s.strings("agents");
    if listed.is_empty() {
        s.problem("agents", "is missing; list the agents' addresses or domains, e.g. [\"*@support.example.com\"]");
    }
    let mut agents = Vec::new();
    for a in listed {
        match AddressPattern::parse(&a) {
            Some(p) => agents.push(p),
            None => s.problem("agents", format!("\"{a}\" is neither an address nor a *@domain pattern")),
        }
    }
    let managers = s.strings("managers");
    for m in &managers {
        if !matches!(AddressPattern::parse(m), Some(AddressPattern::Exact(_))) {
            s.problem("managers", format!("\"{m}\" is not an email address"));
        }
    }
    let resolve_after_silence = s.duration("resolve_after_silence");
    let poll_interval = s.duration("poll_interval").unwrap_or(60).max(1);
    let sent_mailbox = s.string("sent_mailbox").map(str::to_string);
    let authserv_ids = s.string_or_strings("authserv_id");
    for id in &authserv_ids {
        if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == ';') {
            s.problem("authserv_id", format!("\"{id}\" is not a server name; use the name your receiving server writes first in Authentication-Results, e.g. \"mx.example.com\""));
        }
    }
    let agent_reply_tags = s.flag("agent_reply_tags").unwrap_or(true);
    let copy_to_support = s.flag("copy_to_support").unwrap_or(true);
    if s.problem_count() > before {
        return None;
    }
    Some(EmailSettings {
        imap_host,
        imap_port,
        smtp_host,
        smtp_port,
        username,
        password_source: password_source?,
        password: Secret::default(),
        smtp_auth,
        address,
        tls,
        tls_ca_file,
        mailboxes,
        sent_mailbox,
        agents,
        managers: managers.into_iter().map(|m| m.to_ascii_lowercase()).collect(),
        resolve_after_silence,
        poll_interval,
        authserv_ids: authserv_ids.iter().map(|i| i.to_ascii_lowercase()).collect(),
        agent_reply_tags,
        copy_to_support,
    })
}

impl EmailSettings {
    /// These settings with the password read from where it is kept.
    pub fn with_password(mut self, env: &dyn crate::config::Env) -> Result<EmailSettings, crate::config::Problem> {
        self.password = self.password_source.read(env, "mailbox password (or app password)")?;
        Ok(self)
    }

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
        password_source: SecretSource::Env { key: "email.password_env".into(), var: "UNUSED".into() },
        password: Secret("x".into()),
        smtp_auth: true,
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
        authserv_ids: vec!["mx.example.test".into()],
        agent_reply_tags: true,
        copy_to_support: true,
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

    #[test]
    fn the_password_is_read_from_the_injected_environment_only_when_asked() {
        let s = test_settings();
        let env: std::collections::HashMap<String, String> = [("UNUSED".to_string(), "pw".to_string())].into();
        assert_eq!(s.clone().with_password(&env).unwrap().password.0, "pw");
        let missing = s.with_password(&std::collections::HashMap::new()).unwrap_err();
        assert_eq!(missing.key, "email.password_env");
        assert!(missing.message.contains("$UNUSED is not set"), "{}", missing.message);
    }
}
