//! Reading new mail over IMAP with the `imap` crate (blocking: the caller
//! runs it on tokio's blocking pool). Implicit TLS, STARTTLS, or plain for
//! servers on loopback. Mail is fetched by UID past the stored position and
//! nothing is marked or moved: the position advances only after the mail is
//! stored, so a crash or reconnect never skips a message.
//!
//! Every failure is one line naming the setting to fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::email::settings::{EmailSettings, Tls};
use crate::email::state::Position;

/// One fetched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
}

/// New mail of one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub uidvalidity: u32,
    /// Ascending UID order.
    pub messages: Vec<Fetched>,
}

/// Fetches the messages of `mailbox` after `since` (all of them when `since`
/// is `None` or its UIDVALIDITY is no longer the mailbox's).
pub fn fetch_new(s: &EmailSettings, mailbox: &str, since: Option<Position>) -> Result<NewMail, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach the IMAP server {}:{} ({e}): check email.imap_host and email.imap_port",
            s.imap_host, s.imap_port
        )
    };
    let tls_failed = |e: &dyn std::fmt::Display| {
        format!("TLS with {}:{} failed ({e}): check email.tls and email.tls_ca_file", s.imap_host, s.imap_port)
    };
    match s.tls {
        Tls::None => {
            let stream = TcpStream::connect((s.imap_host.as_str(), s.imap_port)).map_err(|e| unreachable(&e))?;
            stream.set_read_timeout(Some(Duration::from_secs(60))).map_err(|e| unreachable(&e))?;
            let mut client = imap::Client::new(stream);
            client.read_greeting().map_err(|e| unreachable(&e))?;
            fetch_with(s, client, mailbox, since)
        }
        Tls::Implicit | Tls::StartTls => {
            let mut builder = native_tls::TlsConnector::builder();
            if let Some(ca) = &s.tls_ca_file {
                let pem = std::fs::read(ca).map_err(|e| format!("email.tls_ca_file {}: {e}", ca.display()))?;
                let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| tls_failed(&e))?;
                builder.add_root_certificate(cert);
            }
            let tls = builder.build().map_err(|e| tls_failed(&e))?;
            let addr = (s.imap_host.as_str(), s.imap_port);
            let client = if s.tls == Tls::Implicit {
                imap::connect(addr, &s.imap_host, &tls)
            } else {
                imap::connect_starttls(addr, &s.imap_host, &tls)
            }
            .map_err(|e| match e {
                imap::error::Error::Io(io) => unreachable(&io),
                other => tls_failed(&other),
            })?;
            fetch_with(s, client, mailbox, since)
        }
    }
}

fn fetch_with<T: Read + Write>(
    s: &EmailSettings,
    client: imap::Client<T>,
    mailbox: &str,
    since: Option<Position>,
) -> Result<NewMail, String> {
    let mut session = client.login(&s.username, &s.password.0).map_err(|(e, _)| {
        format!(
            "IMAP login as \"{}\" failed ({e}): check email.username and email.password_env/password_file",
            s.username
        )
    })?;
    let selected = session
        .select(mailbox)
        .map_err(|e| format!("cannot open mailbox \"{mailbox}\" ({e}): check email.mailboxes"))?;
    let uidvalidity = selected.uid_validity.unwrap_or(0);
    let after = since.filter(|p| p.uidvalidity == uidvalidity).map_or(0, |p| p.last_uid);
    let mut messages = Vec::new();
    if selected.exists > 0 {
        let fetches = session
            .uid_fetch(format!("{}:*", after + 1), "(UID BODY.PEEK[])")
            .map_err(|e| format!("fetching from \"{mailbox}\" failed: {e}"))?;
        for f in fetches.iter() {
            // "n:*" also returns the newest message when nothing is newer than n.
            if let (Some(uid), Some(body)) = (f.uid, f.body())
                && uid > after
            {
                messages.push(Fetched { uid, raw: body.to_vec() });
            }
        }
    }
    let _ = session.logout();
    messages.sort_by_key(|m| m.uid);
    Ok(NewMail { uidvalidity, messages })
}
