//! Sending outbox actions over SMTP with lettre: implicit TLS, STARTTLS, or
//! plain (for servers on loopback), with authentication. A failure comes back
//! as one line naming the setting to fix; the driver retries it with backoff.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::driver::Outbound;
use crate::email::compose::{compose, compose_report};
use crate::email::settings::{EmailSettings, Tls};
use crate::store::OutboxItem;

pub struct SmtpOutbound {
    settings: EmailSettings,
    /// The HTML layout of mail (`responses/email.html`).
    layout: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpOutbound {
    /// With the built-in HTML layout.
    pub fn new(settings: EmailSettings) -> anyhow::Result<SmtpOutbound> {
        SmtpOutbound::with_layout(settings, crate::core::template::Templates::builtin().email_html)
    }

    pub fn with_layout(settings: EmailSettings, layout: String) -> anyhow::Result<SmtpOutbound> {
        let mut params = TlsParameters::builder(settings.smtp_host.clone());
        if let Some(ca) = &settings.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("email.tls_ca_file {}: {e}", ca.display()))?;
            params = params.add_root_certificate(Certificate::from_pem(&pem)?);
        }
        let params = params.build()?;
        let tls = match settings.tls {
            Tls::Implicit => SmtpTls::Wrapper(params),
            Tls::StartTls => SmtpTls::Required(params),
            Tls::None => SmtpTls::None,
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.smtp_host.clone())
            .port(settings.smtp_port)
            .tls(tls)
            .credentials(Credentials::new(settings.username.clone(), settings.password.0.clone()))
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(SmtpOutbound { settings, layout, transport })
    }

    /// One line saying what went wrong and which setting to look at.
    fn explain(&self, e: &lettre::transport::smtp::Error) -> String {
        let s = &self.settings;
        let code = e.status().map(|c| c.to_string());
        if code.as_deref().is_some_and(|c| c.starts_with("535") || c.starts_with("534")) {
            format!(
                "SMTP authentication failed at {}: check email.username and email.password_env/password_file",
                s.smtp_host
            )
        } else if e.is_tls() {
            format!("TLS with {}:{} failed ({e}): check email.tls and email.tls_ca_file", s.smtp_host, s.smtp_port)
        } else if e.is_response() || e.is_permanent() || e.is_transient() {
            format!("the SMTP server {} refused the message: {e}", s.smtp_host)
        } else {
            format!(
                "cannot reach the SMTP server {}:{} ({e}): check email.smtp_host and email.smtp_port",
                s.smtp_host, s.smtp_port
            )
        }
    }
}

impl SmtpOutbound {
    /// Sends `item`, threaded under `in_reply_to` when given.
    pub async fn deliver_threaded(&self, item: &OutboxItem, in_reply_to: Option<&str>) -> Result<(), String> {
        let message = compose(item, &self.settings, &self.layout, in_reply_to).map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| self.explain(&e))
    }
}

impl SmtpOutbound {
    /// Mails the weekly summary to the managers.
    pub async fn send_report(&self, week: &str, key: &str, text: String, html: String) -> Result<(), String> {
        let message = compose_report(&self.settings, week, key, text, html).map_err(|e| e.to_string())?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| self.explain(&e))
    }
}

impl Outbound for SmtpOutbound {
    async fn deliver(&self, item: &OutboxItem) -> Result<(), String> {
        self.deliver_threaded(item, None).await
    }
}
