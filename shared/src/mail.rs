//! Account mail: the two messages (password reset, email verification) and their delivery
//! from the outbox ([`crate::store::mail`]).
//!
//! A handler queues a message in its own transaction. On the local server it then asks for
//! it to be delivered in the background ([`deliver_in_background`]), so the answer never
//! waits on the mail server; each such delivery also takes up to [`BACKLOG_PER_DELIVERY`]
//! older due messages, so a message whose first attempt failed is retried by later
//! requests, and the server's background loop and `local-server send-mail` deliver the
//! whole backlog ([`deliver_due`]). Under Lambda the `mail` function runs [`deliver_due`]
//! every minute and is the only sender.
//!
//! Where mail goes is `SMTP_URL` (lettre over rustls; any provider, Amazon SES's SMTP
//! interface, or a local sink), or, in development without it, the log and
//! `./data/mail/`. In production without `SMTP_URL` the mail endpoints answer 503.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tracing::Instrument as _;
use uuid::Uuid;

use crate::{
    ApiError, ErrorKind,
    config::{MailConfig, MailDelivery},
    metrics::Metrics,
    models::{Email, now},
    store::{
        DynStore,
        mail::{OutgoingMail, QueuedMail},
    },
    telemetry::otel,
};

/// Older due messages one delivery also takes: the bounded share of retries a request
/// carries.
pub const BACKLOG_PER_DELIVERY: u32 = 3;

/// How long one attempt may take before it counts as failed (and the message is due
/// again after its back-off).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a claimed message is left to its sender before another may take it: six
/// times an attempt's timeout (one message is claimed at a time).
const LEASE: time::Duration = time::Duration::seconds(60);

/// Sends account mail where the configuration says.
pub struct Mailer {
    from: String,
    delivery: Delivery,
}

enum Delivery {
    #[cfg(feature = "mail")]
    Smtp(lettre::AsyncSmtpTransport<lettre::Tokio1Executor>),
    /// `SMTP_URL` is set but this binary has no SMTP client (a function that sends no mail).
    #[cfg(not(feature = "mail"))]
    Smtp,
    Files(PathBuf),
    Unconfigured,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let delivery = match &self.delivery {
            #[cfg(feature = "mail")]
            Delivery::Smtp(_) => "smtp",
            #[cfg(not(feature = "mail"))]
            Delivery::Smtp => "smtp (not built in)",
            Delivery::Files(_) => "files",
            Delivery::Unconfigured => "unconfigured",
        };
        f.debug_struct("Mailer")
            .field("delivery", &delivery)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// The mailer `config` describes. Fails only when the SMTP client cannot be built
    /// (TLS set-up for the host).
    pub fn new(config: &MailConfig) -> Result<Self, String> {
        let delivery = match &config.delivery {
            MailDelivery::Smtp(smtp) => {
                check_sender(&config.from)?;
                smtp_delivery(smtp)?
            }
            MailDelivery::DevelopmentFiles => Delivery::Files(PathBuf::from("data/mail")),
            MailDelivery::Unconfigured => Delivery::Unconfigured,
        };
        Ok(Self {
            from: config.from.clone(),
            delivery,
        })
    }

    /// A mailer that sends nothing: the mail endpoints answer 503.
    pub fn unavailable(config: &MailConfig) -> Self {
        Self {
            from: config.from.clone(),
            delivery: Delivery::Unconfigured,
        }
    }

    /// Whether mail can go anywhere; the mail endpoints answer 503 when not.
    pub fn is_configured(&self) -> bool {
        !matches!(self.delivery, Delivery::Unconfigured)
    }

    /// The 503 of a mail endpoint in production without `SMTP_URL`.
    pub fn unconfigured() -> ApiError {
        ApiError::new(ErrorKind::ServiceUnavailable)
            .with_detail("mail is not configured on this server (SMTP_URL)")
    }

    /// One attempt to hand `mail` over; the error says why not.
    async fn send(&self, mail: &QueuedMail) -> Result<(), String> {
        match &self.delivery {
            #[cfg(feature = "mail")]
            Delivery::Smtp(transport) => {
                use lettre::AsyncTransport as _;
                let message = lettre::Message::builder()
                    .from(self.from.parse().map_err(|e| format!("MAIL_FROM: {e}"))?)
                    .to(recipient(&mail.recipient)?)
                    .subject(mail.subject.clone())
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(mail.body.clone())
                    .map_err(|e| format!("building the message: {e}"))?;
                match tokio::time::timeout(ATTEMPT_TIMEOUT, transport.send(message)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("SMTP: {e}")),
                    Err(_) => Err(format!("SMTP: no answer within {ATTEMPT_TIMEOUT:?}")),
                }
            }
            #[cfg(not(feature = "mail"))]
            Delivery::Smtp => Err("this binary was built without an SMTP client".to_owned()),
            Delivery::Files(dir) => write_to_files(dir, &self.from, mail).await,
            Delivery::Unconfigured => Err("mail is not configured (SMTP_URL)".to_owned()),
        }
    }
}

/// The stored address as a bare mailbox: never parsed as mail syntax, so nothing in it can
/// name another recipient.
#[cfg(feature = "mail")]
fn recipient(address: &str) -> Result<lettre::message::Mailbox, String> {
    let (user, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| "recipient: not an address".to_owned())?;
    let address = lettre::Address::new(user, domain).map_err(|e| format!("recipient: {e}"))?;
    Ok(lettre::message::Mailbox::new(None, address))
}

#[cfg(feature = "mail")]
fn smtp_delivery(smtp: &crate::config::SmtpSettings) -> Result<Delivery, String> {
    use crate::config::SmtpTls;
    use lettre::{AsyncSmtpTransport, Tokio1Executor, transport::smtp::authentication};
    use secrecy::ExposeSecret as _;
    let builder = match smtp.tls {
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host)
            .map_err(|e| format!("SMTP_URL: {e}"))?,
        SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host)
            .map_err(|e| format!("SMTP_URL: {e}"))?,
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
    };
    let mut builder = builder.port(smtp.port).timeout(Some(ATTEMPT_TIMEOUT));
    if let Some((user, password)) = &smtp.credentials {
        builder = builder.credentials(authentication::Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(Delivery::Smtp(builder.build()))
}

/// `MAIL_FROM` must be a mailbox (`Name <address>` or an address), checked at start-up
/// rather than by every delivery failing.
#[cfg(feature = "mail")]
fn check_sender(from: &str) -> Result<(), String> {
    from.parse::<lettre::message::Mailbox>()
        .map(drop)
        .map_err(|e| format!("MAIL_FROM is not a mailbox: {e}"))
}

#[cfg(not(feature = "mail"))]
fn check_sender(_: &str) -> Result<(), String> {
    Ok(())
}

#[cfg(not(feature = "mail"))]
fn smtp_delivery(_: &crate::config::SmtpSettings) -> Result<Delivery, String> {
    Ok(Delivery::Smtp)
}

/// Development without `SMTP_URL`: the message goes to the log and to a file a developer
/// can open (never in production: there it is `Unconfigured`).
async fn write_to_files(
    dir: &std::path::Path,
    from: &str,
    mail: &QueuedMail,
) -> Result<(), String> {
    tracing::info!(
        to = %mail.recipient,
        subject = %mail.subject,
        body = %mail.body,
        "development mail (no SMTP_URL): written to the log and to {}",
        dir.display()
    );
    let text = format!(
        "From: {from}\nTo: {}\nSubject: {}\n\n{}",
        mail.recipient, mail.subject, mail.body
    );
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join(format!("{}.txt", mail.id));
    tokio::fs::write(&file, text)
        .await
        .map_err(|e| format!("writing {}: {e}", file.display()))
}

// --- The messages ------------------------------------------------------------------------

/// The password reset mail carrying `token`.
pub fn reset_mail(config: &MailConfig, to: &Email, token: &str) -> OutgoingMail {
    let minutes = config.reset_ttl.as_secs() / 60;
    OutgoingMail {
        id: Uuid::now_v7(),
        recipient: to.as_str().to_owned(),
        subject: "Reset your password".to_owned(),
        body: format!(
            "Someone, hopefully you, asked to reset the password of your account.\n\
             \n\
             Open this link within {minutes} minutes to choose a new password:\n\
             {}/reset-password?token={token}\n\
             \n\
             Or give the app this token:\n\
             {token}\n\
             \n\
             If it was not you, ignore this mail: your password stays as it is.\n",
            config.app_base_url
        ),
    }
}

/// The verification mail carrying `token`.
pub fn verification_mail(config: &MailConfig, to: &Email, token: &str) -> OutgoingMail {
    let hours = config.verification_ttl.as_secs() / 3600;
    OutgoingMail {
        id: Uuid::now_v7(),
        recipient: to.as_str().to_owned(),
        subject: "Verify your email address".to_owned(),
        body: format!(
            "Please confirm that this address belongs to your account.\n\
             \n\
             Open this link within {hours} hours:\n\
             {}/verify-email?token={token}\n\
             \n\
             Or give the app this token:\n\
             {token}\n\
             \n\
             If you did not sign up, ignore this mail.\n",
            config.app_base_url
        ),
    }
}

// --- Delivery ----------------------------------------------------------------------------

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u32,
    pub failed: u32,
}

/// Delivers `first` (if it is still due) and up to `backlog` other due messages, one
/// attempt each: a sent message is marked sent; a failed one is due again after a
/// back-off that doubles from 30 s up to an hour.
pub async fn deliver(
    store: &DynStore,
    mailer: &Mailer,
    metrics: &Metrics,
    first: Option<Uuid>,
    backlog: u32,
) -> Delivered {
    let mut done = Delivered::default();
    // One message per claim, so a claim's lease always covers its one attempt.
    let claims = first
        .into_iter()
        .map(Some)
        .chain((0..backlog).map(|_| None));
    for only in claims {
        let Some(mail) = claim(store, only).await else {
            if only.is_none() {
                break;
            }
            continue;
        };
        // A delivery is traced inside a traced invocation (the `mail` function's runs), not
        // as the local server's background work.
        let attempt = if !otel::in_trace() {
            tracing::Span::none()
        } else {
            tracing::info_span!(
                target: otel::SPAN,
                "mail delivery",
                otel.kind = "client",
                mail.id = %mail.id,
                mail.attempt = mail.attempts,
                otel.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            )
        };
        let outcome = mailer.send(&mail).instrument(attempt.clone()).await;
        if outcome.is_err() {
            attempt.record("otel.status_code", "error");
            attempt.record("error.type", "delivery_failed");
        }
        drop(attempt);
        let at = now();
        let recorded = match &outcome {
            Ok(()) => store.mail().mail_sent(mail.id, mail.attempts, at).await,
            Err(error) => {
                tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, %error, "mail not delivered; it will be retried");
                let retry_at = at + back_off(mail.attempts);
                store
                    .mail()
                    .mail_failed(mail.id, mail.attempts, error, retry_at)
                    .await
            }
        };
        if let Err(err) = recorded {
            tracing::warn!(mail_id = %mail.id, error = %err, "could not record a delivery attempt");
        }
        let depth = store.mail().outbox_depth().await.ok();
        metrics.record_mail(outcome.is_ok(), depth);
        if outcome.is_ok() {
            done.sent += 1;
        } else {
            done.failed += 1;
        }
    }
    done
}

impl std::ops::AddAssign for Delivered {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.failed += other.failed;
    }
}

/// Delivers due messages, one claim at a time, until none is due, `max` were attempted,
/// or an attempt begun now could still be running at `stop_by` (a Lambda function's
/// deadline). What the mail function runs every minute, and `local-server send-mail`.
pub async fn deliver_due(
    store: &DynStore,
    mailer: &Mailer,
    metrics: &Metrics,
    max: u32,
    stop_by: tokio::time::Instant,
) -> Delivered {
    let mut done = Delivered::default();
    while done.sent + done.failed < max && tokio::time::Instant::now() + ATTEMPT_TIMEOUT <= stop_by
    {
        let step = deliver(store, mailer, metrics, None, 1).await;
        if step == Delivered::default() {
            break;
        }
        done += step;
    }
    done
}

/// Claims one due message (`only`: that one) for an attempt.
async fn claim(store: &DynStore, only: Option<Uuid>) -> Option<QueuedMail> {
    let at = now();
    match store.mail().claim_mail(only, at, at + LEASE, 1).await {
        Ok(claimed) => claimed.into_iter().next(),
        Err(err) => {
            tracing::warn!(error = %err, "could not claim mail to deliver");
            None
        }
    }
}

/// How long a message waits after its `attempts`-th failed attempt.
fn back_off(attempts: i32) -> time::Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(7);
    time::Duration::seconds((30_i64 << doublings).min(3_600))
}

/// Delivers `first` and a bounded share of the backlog on a task of its own, so the
/// request that queued the mail answers without waiting on the mail server.
pub fn deliver_in_background(
    store: DynStore,
    mailer: Arc<Mailer>,
    metrics: Arc<Metrics>,
    first: Option<Uuid>,
) {
    tokio::spawn(async move {
        deliver(&store, &mailer, &metrics, first, BACKLOG_PER_DELIVERY).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_thirty_seconds_to_an_hour() {
        let secs: Vec<i64> = (1..=10).map(|a| back_off(a).whole_seconds()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    }

    #[test]
    fn the_messages_carry_the_link_and_the_token_on_its_own_line() {
        let config = crate::config::Config::from_lookup(crate::config::Runtime::LocalServer, |k| {
            (k == "APP_BASE_URL").then(|| "https://app.example.com/".to_owned())
        })
        .unwrap()
        .mail;
        let to = Email::parse("someone@example.com").unwrap();
        for (mail, path) in [
            (reset_mail(&config, &to, "tok_en-1"), "reset-password"),
            (verification_mail(&config, &to, "tok_en-1"), "verify-email"),
        ] {
            assert_eq!(mail.recipient, "someone@example.com");
            assert!(
                mail.body
                    .contains(&format!("https://app.example.com/{path}?token=tok_en-1\n")),
                "{}",
                mail.body
            );
            assert!(mail.body.lines().any(|l| l == "tok_en-1"), "{}", mail.body);
        }
    }
}
