//! Sending one rendered email over SMTP (lettre on tokio, TLS through rustls).
//!
//! Solves: the transport from `smtp_url` (plain `smtp://`, STARTTLS with `?tls=required`,
//! implicit TLS with `smtps://`, AUTH from the URL's user and password), the message (text and
//! HTML alternatives, `Message-ID` derived from the event id, so a mail client can tell a re-send
//! from a new email), and a verdict on each failure: worth another attempt or not.
//!
//! Deliberately does not: retry (the consumer owns attempts and backoff) or pool connections
//! (one connection per email keeps every failure local to its attempt).

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use super::template::Rendered;

/// Why an email was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The server could not be reached, timed out or answered 4xx: the same email may go through
    /// later.
    #[error("smtp transient failure: {0}")]
    Transient(String),
    /// The server refused this email (5xx: an unknown recipient, a rejected sender) or the
    /// email cannot be built (an address that is not one).
    #[error("smtp permanent failure: {0}")]
    Permanent(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Checks the URL and the sender; connects only when sending.
    pub fn new(smtp_url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| format!("smtp_url: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("mail_from {from:?}: {e}"))?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, to: &str, event_id: &str, email: &Rendered) -> Result<(), SendError> {
        let to: Mailbox = to
            .parse()
            .map_err(|e| SendError::Permanent(format!("recipient {to:?}: {e}")))?;
        let domain = self.from.email.domain().to_owned();
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(email.text.clone());
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .message_id(Some(format!("<{event_id}@{domain}>")));
        let message = match &email.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        }
        .map_err(|e| SendError::Permanent(format!("building the email: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}
