//! Sending mail over SMTP with lettre: implicit TLS, STARTTLS, or plain (for
//! servers on loopback), with authentication or (`smtp_auth = false`)
//! through a relay that offers none. Each failure comes back as one line
//! naming its real cause and the setting to fix, typed as worth retrying or
//! not ([`DeliveryError`]); addresses in a server's reply are redacted.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::channels::DeliveryError;
use crate::channels::email::settings::{EmailSettings, Tls};
use crate::channels::log::redact_addresses;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct SmtpOutbound {
    settings: EmailSettings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpOutbound {
    pub fn new(settings: EmailSettings) -> anyhow::Result<SmtpOutbound> {
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
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.smtp_host.clone())
            .port(settings.smtp_port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if settings.smtp_auth {
            builder = builder.credentials(Credentials::new(settings.username.clone(), settings.password.0.clone()));
        }
        Ok(SmtpOutbound { transport: builder.build(), settings })
    }

    /// Sends one message; with `copy_to`, that address is one more envelope
    /// recipient (not in the headers): the server accepts the message for
    /// everyone or no one, so the copy proves the sending.
    pub async fn send(&self, message: Message, copy_to: Option<&str>) -> Result<(), DeliveryError> {
        let envelope = message.envelope();
        let mut to = envelope.to().to_vec();
        if let Some(copy) = copy_to.and_then(|c| c.parse::<lettre::Address>().ok())
            && !to.contains(&copy)
        {
            to.push(copy);
        }
        let envelope = lettre::address::Envelope::new(envelope.from().cloned(), to)
            .map_err(|e| DeliveryError::Permanent(format!("no valid envelope: {e}")))?;
        self.transport.send_raw(&envelope, &message.formatted()).await.map(|_| ()).map_err(|e| self.explain(&e))
    }

    /// One line saying what went wrong and which setting to look at.
    fn explain(&self, e: &lettre::transport::smtp::Error) -> DeliveryError {
        let s = &self.settings;
        let (host, port) = (&s.smtp_host, s.smtp_port);
        let text = redact_addresses(&e.to_string());
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        if ["530", "534", "535", "538"].iter().any(|c| code.starts_with(c)) {
            // About the account, not the message: retried once the login is fixed.
            return DeliveryError::Transient(format!(
                "SMTP authentication failed at {host} ({text}): check email.username and email.password_env/password_file"
            ));
        }
        if e.is_permanent() {
            return DeliveryError::Permanent(format!("the SMTP server {host} refused the message for good: {text}"));
        }
        if e.is_transient() {
            return DeliveryError::Transient(format!("the SMTP server {host} refused the message for now: {text}"));
        }
        if e.is_tls() {
            return DeliveryError::Transient(format!(
                "TLS with {host}:{port} failed ({text}): check email.tls and email.tls_ca_file"
            ));
        }
        if e.is_timeout() {
            return DeliveryError::Transient(format!(
                "the SMTP server {host}:{port} did not answer within {} s; will retry",
                TIMEOUT.as_secs()
            ));
        }
        if text.contains("authentication mechanism") {
            return DeliveryError::Transient(format!(
                "the SMTP server {host}:{port} offers no login (AUTH) that concierge can use: for a relay without \
                 authentication (a local MTA) set email.smtp_auth = false; many servers offer AUTH only after \
                 TLS, so check email.tls"
            ));
        }
        if e.is_response() || e.is_client() {
            return DeliveryError::Transient(format!("SMTP with {host}:{port} failed: {text}"));
        }
        DeliveryError::Transient(format!(
            "cannot reach the SMTP server {host}:{port} ({text}): check email.smtp_host and email.smtp_port"
        ))
    }
}
