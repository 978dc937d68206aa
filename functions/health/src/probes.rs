//! Probe handlers.

use std::time::Duration;

use axum::{Json, extract::State};
use serde::Serialize;
use serde_json::json;
use shared::{ApiError, ErrorKind, store::DynStore};

/// `/ready` answers within this bound even when the database hangs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub struct Status {
    status: &'static str,
}

pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

pub async fn ready(State(store): State<DynStore>) -> Result<Json<serde_json::Value>, ApiError> {
    let failure = match tokio::time::timeout(READY_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => {
            return Ok(Json(
                json!({"status": "ready", "checks": {"database": "ok"}}),
            ));
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

#[derive(Debug, Serialize)]
pub struct Version {
    name: &'static str,
    version: &'static str,
    git_sha: &'static str,
}

pub async fn version() -> Json<Version> {
    Json(Version {
        name: "task-api",
        version: env!("CARGO_PKG_VERSION"),
        git_sha: env!("BUILD_GIT_SHA"),
    })
}
