//! Reading new mail over IMAP with the `imap` crate (blocking: the caller
//! runs it on tokio's blocking pool). Implicit TLS, STARTTLS, or plain for
//! servers on loopback. Mail is fetched by UID past the stored position and
//! nothing is marked or moved: the position advances only after the mail is
//! stored, so a crash or reconnect never skips a message. Between fetches the
//! intake waits with IMAP IDLE where the server offers it. A logged-in
//! session is kept between jobs ([`Sessions`]): reading, waiting and
//! searching share one login instead of connecting for each.
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
pub fn fetch_new(
    s: &EmailSettings,
    kept: &Sessions,
    mailbox: &str,
    since: Option<Position>,
    limits: Limits,
) -> Result<NewMail, String> {
    with_mailbox(s, kept, mailbox, Fetch { mailbox, since, limits })
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
    kept: &Sessions,
    mailbox: &str,
    since: Option<Position>,
    timeout: Duration,
) -> Result<bool, String> {
    with_mailbox(s, kept, mailbox, Wait { since, timeout })
}

/// Whether `mailbox` holds a message with this Message-ID (without angle
/// brackets; ours are hex digits and a domain, safe to quote).
pub fn has_message_id(s: &EmailSettings, kept: &Sessions, mailbox: &str, message_id: &str) -> Result<bool, String> {
    with_mailbox(s, kept, mailbox, Search { message_id })
}

type Session<T> = imap::Session<T>;

/// Logged-in sessions with one server, kept between jobs (at most
/// `Sessions::KEEP`: the intake's and a delivery's). A job takes one (or
/// connects), and gives it back when it went well; a kept session that
/// fails (the server restarted, a timeout) is dropped and the job runs
/// once more on a new connection, whose error, if any, is the one said.
#[derive(Default)]
pub struct Sessions {
    kept: std::sync::Mutex<Vec<Kept>>,
    logins: std::sync::atomic::AtomicU64,
}

impl Sessions {
    const KEEP: usize = 2;

    /// How many times these sessions logged in.
    pub fn logins(&self) -> u64 {
        self.logins.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn take(&self) -> Option<Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn give_back(&self, session: Kept) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < Self::KEEP {
            kept.push(session);
        }
    }
}

/// A logged-in session on either kind of connection, with its socket (a
/// handle on the same connection) to bound every read.
enum Kept {
    Plain(Session<TcpStream>, TcpStream),
    Tls(Session<native_tls::TlsStream<TcpStream>>, TcpStream),
}

/// How long a read may wait for the server outside IDLE.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

impl Kept {
    fn run<J: Job>(&mut self, mailbox: &str, job: J) -> Result<J::Out, String> {
        // IDLE leaves the socket without a timeout: set it for every job.
        let (Kept::Plain(_, socket) | Kept::Tls(_, socket)) = self;
        socket.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| format!("the IMAP connection failed: {e}"))?;
        match self {
            Kept::Plain(session, _) => select_and_run(session, mailbox, job),
            Kept::Tls(session, _) => select_and_run(session, mailbox, job),
        }
    }

    fn logout(self) {
        let _ = match self {
            Kept::Plain(mut session, _) => session.logout(),
            Kept::Tls(mut session, _) => session.logout(),
        };
    }
}

/// Something done with a selected mailbox, on any kind of connection.
trait Job: Clone {
    type Out;
    fn run<T: Read + Write + SetReadTimeout>(
        self,
        session: &mut Session<T>,
        selected: &Mailbox,
    ) -> Result<Self::Out, String>;
}

#[derive(Clone, Copy)]
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

#[derive(Clone, Copy)]
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

#[derive(Clone, Copy)]
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

/// Selects `mailbox` and runs `job` on a kept session, or on a new one
/// (connected and logged in as configured) when none is kept or the kept
/// one fails; a session that did its job is kept for the next.
fn with_mailbox<J: Job>(s: &EmailSettings, kept: &Sessions, mailbox: &str, job: J) -> Result<J::Out, String> {
    // A kept session that fails is dropped: its connection may be dead. A
    // new one says why, if so.
    if let Some(mut session) = kept.take()
        && let Ok(out) = session.run(mailbox, job.clone())
    {
        kept.give_back(session);
        return Ok(out);
    }
    let mut session = connect(s)?;
    kept.logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = session.run(mailbox, job);
    match out {
        Ok(_) => kept.give_back(session),
        Err(_) => session.logout(),
    }
    out
}

/// Connects as configured and logs in.
fn connect(s: &EmailSettings) -> Result<Kept, String> {
    let unreachable = |e: &dyn std::fmt::Display| {
        format!(
            "cannot reach the IMAP server {}:{} ({e}): check email.imap_host and email.imap_port",
            s.imap_host, s.imap_port
        )
    };
    let tls_failed = |e: &dyn std::fmt::Display| {
        format!("TLS with {}:{} failed ({e}): check email.tls and email.tls_ca_file", s.imap_host, s.imap_port)
    };
    let tcp = TcpStream::connect((s.imap_host.as_str(), s.imap_port)).map_err(|e| unreachable(&e))?;
    tcp.set_read_timeout(Some(READ_TIMEOUT)).map_err(|e| unreachable(&e))?;
    let socket = tcp.try_clone().map_err(|e| unreachable(&e))?;
    let tls = || -> Result<native_tls::TlsConnector, String> {
        let mut builder = native_tls::TlsConnector::builder();
        if let Some(ca) = &s.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("email.tls_ca_file {}: {e}", ca.display()))?;
            let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| tls_failed(&e))?;
            builder.add_root_certificate(cert);
        }
        builder.build().map_err(|e| tls_failed(&e))
    };
    match s.tls {
        Tls::None => {
            let mut client = imap::Client::new(tcp);
            client.read_greeting().map_err(|e| unreachable(&e))?;
            Ok(Kept::Plain(login(s, client)?, socket))
        }
        Tls::Implicit => {
            let stream = tls()?.connect(&s.imap_host, tcp).map_err(|e| tls_failed(&e))?;
            let mut client = imap::Client::new(stream);
            client.read_greeting().map_err(|e| unreachable(&e))?;
            Ok(Kept::Tls(login(s, client)?, socket))
        }
        Tls::StartTls => {
            let mut client = imap::Client::new(tcp);
            client.read_greeting().map_err(|e| unreachable(&e))?;
            let client = client.secure(&s.imap_host, &tls()?).map_err(|e| match e {
                imap::error::Error::Io(io) => unreachable(&io),
                other => tls_failed(&other),
            })?;
            Ok(Kept::Tls(login(s, client)?, socket))
        }
    }
}

fn login<T: Read + Write>(s: &EmailSettings, client: imap::Client<T>) -> Result<Session<T>, String> {
    client.login(&s.username, &s.password.0).map_err(|(e, _)| {
        format!(
            "IMAP login as \"{}\" failed ({e}): check email.username and email.password_env/password_file",
            s.username
        )
    })
}

fn select_and_run<T: Read + Write + SetReadTimeout, J: Job>(
    session: &mut Session<T>,
    mailbox: &str,
    job: J,
) -> Result<J::Out, String> {
    let selected = session
        .select(mailbox)
        .map_err(|e| format!("cannot open mailbox \"{mailbox}\" ({e}): check email.mailboxes"))?;
    job.run(session, &selected)
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
