//! SMTP delivery of outbox actions against the real Postfix, in every TLS mode.

use concierge::driver::Outbound;
use concierge::email::settings::{EmailSettings, Tls};
use concierge::email::smtp::SmtpOutbound;
use concierge::store::OutboxItem;

use crate::mail_servers::{MailServers, PASSWORD};

fn settings(servers: &MailServers, tls: Tls, password: &str) -> EmailSettings {
    servers.settings(tls, password)
}

fn item(key: &str, kind: &str, to: &str) -> OutboxItem {
    OutboxItem {
        key: key.into(),
        at: "2026-11-23T10:00:00Z".parse().unwrap(),
        kind: kind.into(),
        conversation: "email:1042".into(),
        channel: "email".into(),
        thread: "1042".into(),
        recipient: to.into(),
        body: format!("Body of {key}"),
        attempts: 0,
    }
}

#[tokio::test]
async fn actions_are_mailed_in_every_tls_mode_marked_automatic_with_the_ticket_token() {
    let Some(servers) = MailServers::start() else { return };
    for (n, tls) in [Tls::None, Tls::StartTls, Tls::Implicit].into_iter().enumerate() {
        let smtp = SmtpOutbound::new(settings(&servers, tls, PASSWORD)).unwrap();
        let key = format!("email:1042/ack-{n}");
        smtp.deliver(&item(&key, "acknowledgement", "ana@example.test"))
            .await
            .unwrap_or_else(|e| panic!("{tls:?}: {e}"));
        let mail = servers.wait_for("ana", |m| m.contains(&format!("Body of {key}")));
        assert!(mail.contains("Subject: We have your request [#1042]"), "{mail}");
        assert!(mail.contains("Auto-Submitted: auto-replied"), "{mail}");
        assert!(mail.contains("From: Support <support@example.test>"), "{mail}");
    }
    let smtp = SmtpOutbound::new(settings(&servers, Tls::StartTls, PASSWORD)).unwrap();
    smtp.deliver(&item("email:1042/sla/2", "escalation", "managers")).await.unwrap();
    let mail = servers.wait_for("boss", |m| m.contains("Body of email:1042/sla/2"));
    assert!(mail.contains("Subject: [#1042] Escalation: still unanswered"), "{mail}");
    smtp.deliver(&item("email:1042/sla/0", "nudge_warning", "agents")).await.unwrap();
    servers.wait_for("sam", |m| m.contains("Auto-Submitted: auto-generated"));
}

#[tokio::test]
async fn wrong_credentials_and_a_stopped_server_give_one_line_naming_the_setting() {
    let Some(mut servers) = MailServers::start() else { return };
    let smtp = SmtpOutbound::new(settings(&servers, Tls::StartTls, "wrong")).unwrap();
    let err = smtp.deliver(&item("k1", "acknowledgement", "ana@example.test")).await.unwrap_err();
    assert!(err.contains("authentication failed") && err.contains("email.password_env"), "{err}");
    servers.stop_smtp();
    let smtp = SmtpOutbound::new(settings(&servers, Tls::StartTls, PASSWORD)).unwrap();
    let err = smtp.deliver(&item("k2", "acknowledgement", "ana@example.test")).await.unwrap_err();
    assert!(err.contains("cannot reach the SMTP server") && err.contains("email.smtp_host"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    // Back up: the same action goes through.
    servers.start_smtp();
    smtp.deliver(&item("k2", "acknowledgement", "ana@example.test")).await.unwrap();
    servers.wait_for("ana", |m| m.contains("Body of k2"));
}
