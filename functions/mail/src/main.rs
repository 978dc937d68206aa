//! Lambda entry point of the `mail` function: every minute (an EventBridge schedule in
//! `template.yaml`), it delivers the account mail that is due in the outbox.
//!
//! The auth function queues a message in the transaction that issues its token; under
//! Lambda it sends nothing itself, since an instance is frozen once it has answered and a
//! delivery started then would stop half-way. This function delivers every message, and
//! every retry after a failed attempt's back-off: each run claims due messages one at a
//! time (a claim is a conditional update, so overlapping runs never take the same message)
//! until none is due, [`MAX_PER_RUN`] were attempted, or the next attempt could outlast the
//! invocation.
//!
//! The answer is `{"sent", "failed", "outbox_depth"}`; the metrics are the same EMF lines
//! the auth function writes (`MailSent`, `MailFailed`, `MailOutboxDepth`). Without
//! `SMTP_URL` a run does nothing and does not touch the database.

use std::time::{Duration, SystemTime};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};
use shared::{AppState, mail};
use tracing::Instrument as _;

/// Messages one run attempts at most, so a large backlog is spread over several minutes
/// rather than over one provider's sending quota.
const MAX_PER_RUN: u32 = 500;

/// Kept back from the invocation's deadline, beyond an attempt's own timeout: the claim
/// before an attempt and the record after it each wait for a connection (at most
/// `DB_ACQUIRE_TIMEOUT_MS`, 2 s in the template) and run a statement. A run cut off
/// between a sent message and its record would leave it to be sent again once its claim
/// ran out.
const MARGIN: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let state = shared::lambda::init()?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move {
            let span = shared::lambda::invocation_span("mail run", &event.context);
            let outcome = run(&state, &event.context).instrument(span).await;
            // The run's spans reach the collector before the answer: then the instance may
            // be frozen.
            shared::telemetry::otel::flush().await;
            outcome
        }
    }))
    .await
}

/// One run: the due mail, within the invocation's time. An error (the database out of
/// reach) fails the invocation, so Lambda's `Errors` metric shows it.
async fn run(state: &AppState, context: &lambda_runtime::Context) -> Result<Value, Error> {
    if !state.mailer.is_configured() {
        tracing::info!("SMTP_URL is not set: there is no mail to send");
        return Ok(json!({"sent": 0, "failed": 0, "outbox_depth": null}));
    }
    let left = context
        .deadline()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    let stop_by = tokio::time::Instant::now() + left.saturating_sub(MARGIN);
    let done = mail::deliver_due(
        &state.store,
        &state.mailer,
        &state.metrics,
        MAX_PER_RUN,
        stop_by,
    )
    .await;
    let depth = state.store.mail().outbox_depth().await.inspect_err(|e| {
        tracing::error!(error = %shared::error::chain(e), "counting the outbox");
    })?;
    tracing::info!(
        sent = done.sent,
        failed = done.failed,
        outbox_depth = depth,
        "mail run"
    );
    Ok(json!({"sent": done.sent, "failed": done.failed, "outbox_depth": depth}))
}
