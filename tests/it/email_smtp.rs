//! The email channel delivering outbox rows against the real Postfix, in
//! every TLS mode, through a relay without AUTH, and with each failure typed
//! (retried or not) and worded by its cause.

use concierge::channels::email::EmailChannel;
use concierge::channels::email::settings::{EmailSettings, Tls};
use concierge::channels::{ChannelAdapter, DeliveryError};
use concierge::core::router::{ActionKind, Channel, Recipient};
use concierge::core::template::Templates;
use concierge::store::{OutboxItem, OutboxStatus, Store};

use crate::helpers::sqlite;
use crate::mail_servers::{MailServers, PASSWORD};

fn item(key: &str, kind: ActionKind, to: Recipient) -> OutboxItem {
    OutboxItem {
        key: key.into(),
        at: "2026-11-23T10:00:00Z".parse().unwrap(),
        kind,
        conversation: "email:1042".into(),
        channel: Channel::Email,
        thread: "1042".into(),
        recipient: to,
        body: format!("Body of {key}"),
        html: None,
        about: None,
        attempts: 0,
        status: OutboxStatus::Pending,
        last_error: None,
        delivered_at: None,
        sending_since: None,
    }
}

fn ana() -> Recipient {
    Recipient::Customer("ana@example.test".into())
}

async fn channel(settings: &EmailSettings, password: &str, store: &Store) -> EmailChannel {
    let secret = std::sync::Arc::new(b"a test secret of 32 bytes.......".to_vec());
    EmailChannel::new(settings, &MailServers::env(password), store.clone(), Templates::builtin(), secret).unwrap()
}

#[tokio::test]
async fn actions_are_mailed_in_every_tls_mode_marked_automatic_with_the_ticket_token() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let store = Store::open(&db.url).await.unwrap();
    for (n, tls) in [Tls::None, Tls::StartTls, Tls::Implicit].into_iter().enumerate() {
        let email = channel(&servers.settings(tls, PASSWORD), PASSWORD, &store).await;
        let key = format!("email:1042/ack-{n}");
        email.deliver(&item(&key, ActionKind::Acknowledgement, ana())).await.unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let mail = servers.wait_for("ana", |m| m.contains(&format!("Body of {key}")));
        assert!(mail.contains("Subject: We have your request [#1042]"), "{mail}");
        assert!(mail.contains("Auto-Submitted: auto-replied"), "{mail}");
        assert!(mail.contains("From: Support <support@example.test>"), "{mail}");
    }
    let email = channel(&servers.settings(Tls::StartTls, PASSWORD), PASSWORD, &store).await;
    email.deliver(&item("email:1042/sla/2", ActionKind::Escalation, Recipient::Managers)).await.unwrap();
    let mail = servers.wait_for("boss", |m| m.contains("Body of email:1042/sla/2"));
    assert!(mail.contains("Subject: [#1042] Escalation: still unanswered"), "{mail}");
    email.deliver(&item("email:1042/sla/0", ActionKind::NudgeWarning, Recipient::Agents)).await.unwrap();
    servers.wait_for("sam", |m| m.contains("Auto-Submitted: auto-generated"));
}

/// A send cut off by a crash (`sending_since` set) is looked for in the
/// support mailbox, where `copy_to_support` puts a copy of every mail in the
/// same SMTP transaction: found, it is not sent again; missing after the
/// grace period, it is sent.
#[tokio::test]
async fn an_interrupted_send_is_not_repeated_when_its_copy_arrived_and_sent_when_it_did_not() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let store = Store::open(&db.url).await.unwrap();
    let email = channel(&servers.settings(Tls::None, PASSWORD), PASSWORD, &store).await;
    // Sent once (the crash came after the server accepted it).
    let sent = item("email:1042/ack", ActionKind::Acknowledgement, ana());
    email.deliver(&sent).await.unwrap();
    servers.wait_for("ana", |m| m.contains("Body of email:1042/ack"));
    servers.wait_for("support", |m| m.contains("Body of email:1042/ack"));
    let cut_off = OutboxItem { sending_since: Some(jiff::Timestamp::now()), ..sent };
    email.deliver(&cut_off).await.unwrap();
    // Never sent (the crash came before): the copy is missing well past the grace.
    let never = item("email:1042/survey", ActionKind::Survey, ana());
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(120);
    email.deliver(&OutboxItem { sending_since: Some(long_ago), ..never }).await.unwrap();
    servers.wait_for("ana", |m| m.contains("Body of email:1042/survey"));
    std::thread::sleep(std::time::Duration::from_secs(1));
    let to_ana = servers.delivered("ana");
    assert_eq!(to_ana.iter().filter(|m| m.contains("Body of email:1042/ack")).count(), 1, "not repeated");
    assert_eq!(to_ana.len(), 2, "{to_ana:#?}");
    let copy = servers.delivered("support").into_iter().find(|m| m.contains("Body of email:1042/ack")).unwrap();
    assert!(
        !copy.contains("support@example.test>\r\nTo: support") && copy.contains("To: ana@example.test"),
        "envelope only: {copy}"
    );
    // The server cannot be asked: the question stays open, nothing is sent.
    let mut down = servers.settings(Tls::None, PASSWORD);
    down.imap_port = 1;
    let email = channel(&down, PASSWORD, &store).await;
    let unknown = item("email:1042/nudge", ActionKind::Acknowledgement, ana());
    let err = email.deliver(&OutboxItem { sending_since: Some(long_ago), ..unknown }).await.unwrap_err();
    assert!(matches!(&err, DeliveryError::Unconfirmed(e) if e.contains("email.imap_port")), "{err:?}");
}

#[tokio::test]
async fn a_relay_without_auth_works_with_smtp_auth_off_and_says_so_when_it_is_on() {
    let Some(servers) = MailServers::start() else { return };
    let db = sqlite();
    let store = Store::open(&db.url).await.unwrap();
    let mut settings = servers.settings(Tls::None, PASSWORD);
    settings.smtp_port = servers.ports.smtp; // a local MTA: no AUTH offered
    let email = channel(&settings, PASSWORD, &store).await;
    let err = email.deliver(&item("k0", ActionKind::Acknowledgement, ana())).await.unwrap_err();
    assert!(matches!(&err, DeliveryError::Transient(e) if e.contains("email.smtp_auth = false")), "{err:?}");
    settings.smtp_auth = false;
    let email = channel(&settings, PASSWORD, &store).await;
    email.deliver(&item("k1", ActionKind::Acknowledgement, ana())).await.unwrap();
    servers.wait_for("ana", |m| m.contains("Body of k1"));
}

#[tokio::test]
async fn wrong_credentials_a_stopped_server_and_a_rejected_recipient_each_say_why_and_whether_to_retry() {
    let Some(mut servers) = MailServers::start() else { return };
    let db = sqlite();
    let store = Store::open(&db.url).await.unwrap();
    let settings = servers.settings(Tls::StartTls, PASSWORD);
    let wrong = channel(&settings, "wrong", &store).await;
    let err = wrong.deliver(&item("k1", ActionKind::Acknowledgement, ana())).await.unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Transient(e) if e.contains("authentication failed") && e.contains("email.password_env")),
        "{err:?}"
    );
    // An unknown mailbox is refused for good, and the address is not logged whole.
    let email = channel(&settings, PASSWORD, &store).await;
    let nobody = Recipient::Customer("nobody.here@example.test".into());
    let err = email.deliver(&item("k3", ActionKind::Acknowledgement, nobody)).await.unwrap_err();
    let DeliveryError::Permanent(text) = &err else { panic!("{err:?}") };
    assert!(text.contains("550") && !text.contains("nobody.here@") && text.contains("n***@example.test"), "{text}");
    servers.stop_smtp();
    let err = email.deliver(&item("k2", ActionKind::Acknowledgement, ana())).await.unwrap_err();
    let DeliveryError::Transient(text) = &err else { panic!("{err:?}") };
    assert!(text.contains("cannot reach the SMTP server") && text.contains("email.smtp_host"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    // Back up: the same action goes through.
    servers.start_smtp();
    email.deliver(&item("k2", ActionKind::Acknowledgement, ana())).await.unwrap();
    servers.wait_for("ana", |m| m.contains("Body of k2"));
}
