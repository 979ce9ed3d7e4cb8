//! Reading mail from the real Dovecot, in every TLS mode.

use concierge::channels::email::imap::{Limits, Sessions, fetch_new};
use concierge::channels::email::settings::{EmailSettings, Tls};
use concierge::channels::email::state::Position;

use crate::mail_servers::{MailServers, PASSWORD};

fn settings(servers: &MailServers, tls: Tls, password: &str) -> EmailSettings {
    servers.settings(tls, password)
}

fn mail(n: u32) -> String {
    format!(
        "From: Ana <ana@example.test>\r\nTo: support@example.test\r\nSubject: note {n}\r\nMessage-ID: <n{n}@example.test>\r\n\r\nBody {n}\r\n"
    )
}

#[test]
fn new_mail_is_fetched_by_uid_past_the_stored_position_in_every_tls_mode() {
    let Some(servers) = MailServers::start() else { return };
    for n in 1..=3 {
        servers.send("ana@example.test", "support@example.test", &mail(n));
    }
    servers.wait_for("support", |m| m.contains("Subject: note 3"));
    for tls in [Tls::None, Tls::StartTls, Tls::Implicit] {
        let s = settings(&servers, tls, PASSWORD);
        // One session for the three reads: logged in once, kept between them.
        let kept = Sessions::default();
        let all = fetch_new(&s, &kept, "INBOX", None, Limits::default()).unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let uids: Vec<u32> = all.messages.iter().map(|m| m.uid).collect();
        assert_eq!(uids, [1, 2, 3], "{tls:?}");
        assert!(String::from_utf8_lossy(&all.messages[2].raw).contains("Body 3"));
        let pos = Position { uidvalidity: all.uidvalidity, last_uid: 3 };
        assert!(
            fetch_new(&s, &kept, "INBOX", Some(pos), Limits::default()).unwrap().messages.is_empty(),
            "{tls:?}: nothing past UID 3"
        );
        // A different UIDVALIDITY means the mailbox is read again.
        let stale = Position { uidvalidity: all.uidvalidity.wrapping_add(1), last_uid: 3 };
        assert_eq!(fetch_new(&s, &kept, "INBOX", Some(stale), Limits::default()).unwrap().messages.len(), 3, "{tls:?}");
        assert_eq!(kept.logins(), 1, "{tls:?}: one login for three reads");
    }
    servers.send("ana@example.test", "support@example.test", &mail(4));
    servers.wait_for("support", |m| m.contains("Subject: note 4"));
    let s = settings(&servers, Tls::None, PASSWORD);
    let first = fetch_new(&s, &Sessions::default(), "INBOX", None, Limits::default()).unwrap();
    let pos = Position { uidvalidity: first.uidvalidity, last_uid: 3 };
    let new = fetch_new(&s, &Sessions::default(), "INBOX", Some(pos), Limits::default()).unwrap();
    assert_eq!(new.messages.iter().map(|m| m.uid).collect::<Vec<_>>(), [4]);
    assert!(!new.more && new.messages[0].arrived.is_some(), "INTERNALDATE is read");
}

#[test]
fn a_backlog_is_fetched_in_bounded_batches_by_count_and_size() {
    let Some(servers) = MailServers::start() else { return };
    for n in 1..=5 {
        servers.send("ana@example.test", "support@example.test", &mail(n));
    }
    servers.wait_for("support", |m| m.contains("Subject: note 5"));
    let s = settings(&servers, Tls::None, PASSWORD);
    let mut since = None;
    let mut batches = Vec::new();
    loop {
        let batch =
            fetch_new(&s, &Sessions::default(), "INBOX", since, Limits { messages: 2, bytes: 1 << 20 }).unwrap();
        batches.push(batch.messages.iter().map(|m| m.uid).collect::<Vec<_>>());
        since = batch.messages.last().map(|m| Position { uidvalidity: batch.uidvalidity, last_uid: m.uid });
        if !batch.more {
            break;
        }
    }
    assert_eq!(batches, [vec![1, 2], vec![3, 4], vec![5]]);
    // By size: each message is a few hundred bytes, so 1 byte allows one at a time.
    let one = fetch_new(&s, &Sessions::default(), "INBOX", None, Limits { messages: 100, bytes: 1 }).unwrap();
    assert_eq!((one.messages.len(), one.more), (1, true));
}

#[test]
fn bad_credentials_a_missing_mailbox_and_a_stopped_server_each_name_the_setting() {
    let Some(mut servers) = MailServers::start() else { return };
    let err =
        fetch_new(&settings(&servers, Tls::StartTls, "wrong"), &Sessions::default(), "INBOX", None, Limits::default())
            .unwrap_err();
    assert!(err.contains("IMAP login") && err.contains("email.password_env"), "{err}");
    let err =
        fetch_new(&settings(&servers, Tls::Implicit, PASSWORD), &Sessions::default(), "Nope", None, Limits::default())
            .unwrap_err();
    assert!(err.contains("mailbox \"Nope\"") && err.contains("email.mailboxes"), "{err}");
    // A kept session whose server went away: the error is the new
    // connection's, naming the setting.
    let s = settings(&servers, Tls::None, PASSWORD);
    let kept = Sessions::default();
    fetch_new(&s, &kept, "INBOX", None, Limits::default()).unwrap();
    servers.stop_imap();
    let err = fetch_new(&s, &kept, "INBOX", None, Limits::default()).unwrap_err();
    assert!(err.contains("cannot reach the IMAP server") && err.contains("email.imap_host"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn a_kept_session_cut_by_a_server_restart_is_replaced_without_an_error() {
    let Some(mut servers) = MailServers::start() else { return };
    servers.send("ana@example.test", "support@example.test", &mail(1));
    servers.wait_for("support", |m| m.contains("Subject: note 1"));
    let s = settings(&servers, Tls::None, PASSWORD);
    let kept = Sessions::default();
    assert_eq!(fetch_new(&s, &kept, "INBOX", None, Limits::default()).unwrap().messages.len(), 1);
    servers.stop_imap();
    servers.start_imap();
    let again = fetch_new(&s, &kept, "INBOX", None, Limits::default()).unwrap();
    assert_eq!(again.messages.len(), 1, "read through a new session");
    assert_eq!(kept.logins(), 2, "the cut session was dropped and one new login made");
}
