//! Lambda entry point of the `migrate` function: one custom-resource request per
//! invocation (see the library). Nothing at init can fail: configuration is read per
//! request, so every problem becomes a `FAILED` answer to CloudFormation.

use std::time::{Duration, SystemTime};

use lambda_runtime::{Error, LambdaEvent, service_fn};
use migrate::{ANSWER_MARGIN, Action, CustomResourceEvent, Outcome};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // The API functions' rule, so the template's LogLevel applies here too.
    let filter = shared::config::log_filter(|name| {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    });
    shared::telemetry::init_with(shared::config::LogFormat::Json, &filter);
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let (payload, context) = event.into_parts();
    // Not a custom-resource request: there is nobody to answer but the invoker.
    let request: CustomResourceEvent = serde_json::from_value(payload)
        .map_err(|e| format!("not a CloudFormation custom-resource request: {e}"))?;
    tracing::info!(
        request_type = ?request.request_type,
        logical_resource_id = %request.logical_resource_id,
        properties = %request.resource_properties,
        "custom-resource request"
    );
    let outcome = match request.action(migrate::MIGRATIONS_DIGEST) {
        Action::Nothing(why) => Outcome::Skipped(why),
        Action::Migrate => {
            let left = context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            migrate::migrate_database(left.saturating_sub(ANSWER_MARGIN)).await
        }
    };
    let response = migrate::response(&request, &outcome);
    match &outcome {
        Outcome::Failed(reason) => tracing::error!(%reason, "migration failed"),
        _ => tracing::info!(reason = %response.reason, "answering SUCCESS"),
    }
    migrate::respond::send(&request.response_url, &response).await?;
    Ok(serde_json::to_value(&response)?)
}
