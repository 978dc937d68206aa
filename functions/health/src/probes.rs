//! Probe handlers.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Json, extract::State};
use serde::Serialize;
use serde_json::json;
use shared::{ApiError, ErrorKind, error::Problem, store::DynStore};
use utoipa::ToSchema;

/// `/ready` answers within this bound even when the database hangs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one database check answers every `/ready` caller.
pub const READY_REUSE: Duration = Duration::from_secs(1);

/// What the probes need: the store, and the last readiness check.
#[derive(Clone)]
pub struct ProbeState {
    store: DynStore,
    last_check: Arc<LastCheck>,
}

impl ProbeState {
    pub fn new(store: DynStore) -> Self {
        Self {
            store,
            last_check: Arc::new(LastCheck::default()),
        }
    }
}

/// The outcome of the last database check and when it finished. Callers take turns on the
/// lock, so concurrent callers wait for one check rather than each running their own, and
/// a check younger than [`READY_REUSE`] answers without touching the database.
#[derive(Default)]
struct LastCheck(tokio::sync::Mutex<Option<(Instant, Result<(), &'static str>)>>);

impl LastCheck {
    /// `Ok` or the failing check's name, within [`READY_TIMEOUT`] of the call however long
    /// the database or an earlier caller's check takes.
    async fn database(&self, store: &DynStore) -> Result<(), &'static str> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let Ok(mut last) = tokio::time::timeout_at(deadline, self.0.lock()).await else {
            tracing::warn!("readiness: an earlier database check is still running");
            return Err("timeout");
        };
        if let Some((at, outcome)) = *last {
            if at.elapsed() < READY_REUSE {
                return outcome;
            }
        }
        let outcome = match tokio::time::timeout_at(deadline, store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                tracing::warn!(error = %shared::error::chain(&err), "readiness: database check failed");
                Err("unavailable")
            }
            Err(_) => {
                tracing::warn!("readiness: database check timed out");
                Err("timeout")
            }
        };
        *last = Some((Instant::now(), outcome));
        outcome
    }
}

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

/// Readiness: pings the database, answering within 2 s even when it hangs; one check serves
/// every caller for up to a second.
#[utoipa::path(get, path = "/ready", operation_id = "ready", tag = "health",
    responses(
        (status = 200, description = "The database answers.", body = Ready),
        (status = 503, description = "`service_unavailable`, with `checks` naming the failing check.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))),
    ))]
pub async fn ready(State(probes): State<ProbeState>) -> Result<Json<Ready>, ApiError> {
    let Err(failure) = probes.last_check.database(&probes.store).await else {
        return Ok(Json(Ready {
            status: "ready",
            checks: Checks { database: "ok" },
        }));
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
