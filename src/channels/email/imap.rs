//! Reading new mail over IMAP with the `imap` crate (blocking: the caller
//! runs it on tokio's blocking pool). Implicit TLS, STARTTLS, or plain for
//! servers on loopback. Mail is fetched by UID past the stored position and
//! nothing is marked or moved: the position advances only after the mail is
//! stored, so a crash or reconnect never skips a message. Between fetches the
//! intake waits with IMAP IDLE where the server offers it.
//!
//! Every failure is one line naming the setting to fix.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use imap::extensions::idle::SetReadTimeout;
use imap::types::Mailbox;

use crate::channels::email::settings::{EmailSettings, Tls};
use crate::channels::email::state::Position;

/// One fetched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
    /// When it arrived in the mailbox (IMAP INTERNALDATE), unix seconds.
    pub arrived: Option<i64>,
}

/// New mail of one mailbox, one bounded batch of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMail {
    pub uidvalidity: u32,
    /// Ascending UID order.
    pub messages: Vec<Fetched>,
    /// More mail waits after this batch: fetch again past its last UID.
    pub more: bool,
}

/// How much one fetch may bring into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub messages: usize,
    pub bytes: u64,
}

impl Default for Limits {
    /// 100 messages or 32 MiB, whichever comes first (one larger message is
    /// still fetched alone).
    fn default() -> Limits {
        Limits { messages: 100, bytes: 32 << 20 }
    }
}

/// Fetches the next batch of messages of `mailbox` after `since` (from the
/// start when `since` is `None` or its UIDVALIDITY is no longer the
/// mailbox's): sizes first, then the bodies of at most `limits` worth, so a
/// huge backlog is read a batch at a time.
pub fn fetch_new(s: &EmailSettings, mailbox: &str, since: Option<Position>, limits: Limits) -> Result<NewMail, String> {
    with_mailbox(s, mailbox, Fetch { mailbox, since, limits })
}

/// The first UIDs of `sized` (UID, size) that fit in `limits`; at least one.
pub fn take_batch(sized: &[(u32, u64)], limits: Limits) -> &[(u32, u64)] {
    let mut total = 0u64;
    let mut n = 0;
    for (_, size) in sized.iter().take(limits.messages.max(1)) {
        if n > 0 && total + size > limits.bytes {
            break;
        }
        total += size;
        n += 1;
    }
    &sized[..n]
}

/// Waits up to `timeout` for new mail in `mailbox` after `since`: with IMAP
/// IDLE when the server offers it (returns as soon as the mailbox changes, or
/// at once when mail arrived after `since`), otherwise by sleeping. Returns
/// whether the server can IDLE.
pub fn wait_for_mail(
    s: &EmailSettings,
    mailbox: &str,
    since: Option<Position>,
    timeout: Duration,
) -> Result<bool, String> {
    with_mailbox(s, mailbox, Wait { since, timeout })
}

/// Whether `mailbox` holds a message with this Message-ID (without angle
/// brackets; ours are hex digits and a domain, safe to quote).
pub fn has_message_id(s: &EmailSettings, mailbox: &str, message_id: &str) -> Result<bool, String> {
    with_mailbox(s, mailbox, Search { message_id })
}

type Session<T> = imap::Session<T>;

/// Something done with a selected mailbox, on any kind of connection.
trait Job {
    type Out;
    fn run<T: Read + Write + SetReadTimeout>(
        self,
        session: &mut Session<T>,
        selected: &Mailbox,
    ) -> Result<Self::Out, String>;
}

struct Fetch<'a> {
    mailbox: &'a str,
    since: Option<Position>,
    limits: Limits,
}

impl Job for Fetch<'_> {
    type Out = NewMail;

    fn run<T: Read + Write + SetReadTimeout>(
        self,
        session: &mut Session<T>,
        selected: &Mailbox,
    ) -> Result<NewMail, String> {
        let uidvalidity = selected.uid_validity.unwrap_or(0);
        let after = self.since.filter(|p| p.uidvalidity == uidvalidity).map_or(0, |p| p.last_uid);
        let failed = |e: imap::error::Error| format!("fetching from \"{}\" failed: {e}", self.mailbox);
        if selected.exists == 0 {
            return Ok(NewMail { uidvalidity, messages: Vec::new(), more: false });
        }
        let sizes = session.uid_fetch(format!("{}:*", after + 1), "(UID RFC822.SIZE)").map_err(failed)?;
        // "n:*" also returns the newest message when nothing is newer than n.
        let mut sized: Vec<(u32, u64)> = sizes
            .iter()
            .filter_map(|f| Some((f.uid?, u64::from(f.size.unwrap_or(0)))))
            .filter(|(u, _)| *u > after)
            .collect();
        sized.sort_unstable();
        let batch = take_batch(&sized, self.limits);
        let more = batch.len() < sized.len();
        let mut messages = Vec::with_capacity(batch.len());
        if !batch.is_empty() {
            let set: Vec<String> = batch.iter().map(|(u, _)| u.to_string()).collect();
            let fetches = session.uid_fetch(set.join(","), "(UID INTERNALDATE BODY.PEEK[])").map_err(failed)?;
            for f in fetches.iter() {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    let arrived = f.internal_date().map(|d| d.timestamp());
                    messages.push(Fetched { uid, raw: body.to_vec(), arrived });
                }
            }
        }
        messages.sort_by_key(|m| m.uid);
        Ok(NewMail { uidvalidity, messages, more })
    }
}

struct Search<'a> {
    message_id: &'a str,
}

impl Job for Search<'_> {
    type Out = bool;

    fn run<T: Read + Write + SetReadTimeout>(self, session: &mut Session<T>, _: &Mailbox) -> Result<bool, String> {
        let id: String = self.message_id.chars().filter(|c| !matches!(c, '"' | '\\' | '\r' | '\n')).collect();
        let found = session
            .uid_search(format!("HEADER Message-ID \"<{id}>\""))
            .map_err(|e| format!("searching the mailbox for a sent copy failed: {e}"))?;
        Ok(!found.is_empty())
    }
}

struct Wait {
    since: Option<Position>,
    timeout: Duration,
}

impl Job for Wait {
    type Out = bool;

    fn run<T: Read + Write + SetReadTimeout>(
        self,
        session: &mut Session<T>,
        selected: &Mailbox,
    ) -> Result<bool, String> {
        let arrived = match self.since {
            Some(p) => {
                selected.uid_validity != Some(p.uidvalidity)
                    || selected.uid_next.is_some_and(|next| next > p.last_uid.saturating_add(1))
            }
            None => selected.exists > 0,
        };
        let can_idle = session.capabilities().map(|c| c.has_str("IDLE")).unwrap_or(false);
        if arrived {
            return Ok(can_idle);
        }
        if !can_idle {
            std::thread::sleep(self.timeout);
            return Ok(false);
        }
        let idle = session.idle().map_err(|e| format!("IMAP IDLE failed: {e}"))?;
        // A timeout is the normal end of a quiet wait.
        let _ = idle.wait_with_timeout(self.timeout);
        Ok(true)
    }
}

/// Connects as configured, logs in, selects `mailbox`, runs `job`, logs out.
fn with_mailbox<J: Job>(s: &EmailSettings, mailbox: &str, job: J) -> Result<J::Out, String> {
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
            run_job(s, client, mailbox, job)
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
            run_job(s, client, mailbox, job)
        }
    }
}

fn run_job<T: Read + Write + SetReadTimeout, J: Job>(
    s: &EmailSettings,
    client: imap::Client<T>,
    mailbox: &str,
    job: J,
) -> Result<J::Out, String> {
    let mut session = client.login(&s.username, &s.password.0).map_err(|(e, _)| {
        format!(
            "IMAP login as \"{}\" failed ({e}): check email.username and email.password_env/password_file",
            s.username
        )
    })?;
    let selected = session
        .select(mailbox)
        .map_err(|e| format!("cannot open mailbox \"{mailbox}\" ({e}): check email.mailboxes"))?;
    let out = job.run(&mut session, &selected);
    let _ = session.logout();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_stops_at_the_count_or_the_size_but_always_takes_one() {
        let sized = [(1, 10), (2, 10), (3, 10), (4, 10)];
        assert_eq!(take_batch(&sized, Limits { messages: 3, bytes: 1000 }).len(), 3);
        assert_eq!(take_batch(&sized, Limits { messages: 100, bytes: 25 }).len(), 2);
        assert_eq!(take_batch(&[(7, 5000)], Limits { messages: 10, bytes: 100 }).len(), 1);
        assert!(take_batch(&[], Limits::default()).is_empty());
    }
}
