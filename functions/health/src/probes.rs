//! Probe handlers.

use std::time::Duration;

use axum::{Json, extract::State};
use serde::Serialize;
use serde_json::json;
use shared::{ApiError, ErrorKind, error::Problem, store::DynStore};
use utoipa::ToSchema;

/// `/ready` answers within this bound even when the database hangs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// Liveness: touches no dependency.
#[utoipa::path(get, path = "/health", operation_id = "health", tag = "health",
    responses((status = 200, description = "The process is up.", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    #[schema(value_type = String, pattern = "^ready$")]
    status: &'static str,
    checks: Checks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// `ok`; in the 503 problem, `unavailable` or `timeout`.
    #[schema(value_type = String)]
    database: &'static str,
}

/// Readiness: pings the database, answering within 2 s even when it hangs.
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "The database answers.", body = Ready),
        (status = 503, description = "`service_unavailable`, with `checks` naming the failing check.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))),
    ))]
pub async fn ready(State(store): State<DynStore>) -> Result<Json<Ready>, ApiError> {
    let failure = match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => {
            return Ok(Json(Ready {
                status: "ready",
                checks: Checks { database: "ok" },
            }));
        }
        Ok(Err(err)) => {
            tracing::warn!(error = %shared::error::chain(&err), "readiness: database check failed");
            "unavailable"
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            "timeout"
        }
    };
    Err(ApiError::new(ErrorKind::ServiceUnavailable)
        .with_detail(format!("database check failed: {failure}"))
        .with_retry_after(5)
        .with_extension("checks", json!({"database": failure})))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Version {
    #[schema(value_type = String)]
    name: &'static str,
    #[schema(value_type = String)]
    version: &'static str,
    /// The commit the binary was built from, or `unknown`.
    #[schema(value_type = String)]
    git_sha: &'static str,
}

/// What is running.
#[utoipa::path(get, path = "/version", operation_id = "version", tag = "health",
    responses((status = 200, description = "Name, version and commit.", body = Version)))]
pub async fn version() -> Json<Version> {
    Json(Version {
        name: "task-api",
        version: env!("CARGO_PKG_VERSION"),
        git_sha: env!("BUILD_GIT_SHA"),
    })
}
