//! The `health` function: liveness, readiness and version probes. No authentication.
//!
//! `/health` touches nothing; `/ready` pings the database with a hard 2-second bound so a
//! hanging database yields a 503, never a hung probe, and reuses a check for up to a second
//! across every caller, so it cannot be used to hammer the database. It also publishes the
//! keys that verify access tokens ([`discovery`]).

mod discovery;
mod probes;

use axum::{Router, routing::get};
use shared::AppState;

pub use probes::{READY_REUSE, READY_TIMEOUT};

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    probes::health,
    probes::ready,
    probes::version,
    discovery::jwks,
    discovery::openid_configuration
))]
pub struct ApiDoc;

/// The routes of this function, with state applied.
pub fn router(state: AppState) -> Router {
    let discovery = Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .with_state(state.jwt.clone());
    Router::new()
        .route("/health", get(probes::health))
        .route("/ready", get(probes::ready))
        .route("/version", get(probes::version))
        .with_state(probes::ProbeState::new(state.store))
        .merge(discovery)
}
