//! The local server: the four function routers, exactly as the Lambda binaries mount them,
//! merged into one app, plus what only a long-running server has: `/openapi.json` on the
//! API's port and `/metrics` on a private listener of its own ([`metrics_app`]). The
//! binary (`main.rs`) adds the command line, serving and shutdown.

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};
use shared::{
    AppState,
    http::{StackConfig, stack},
};

pub mod bootstrap;
pub mod metrics;
pub mod openapi;
pub mod serve;

/// All routes of the API, without the middleware stack.
pub fn routes(state: AppState) -> Router {
    metrics::export(&state);
    Router::new()
        .merge(health::router(state.clone()))
        .merge(auth::router(state.clone()))
        .merge(tasks::router(state.clone()))
        .merge(admin::router(state.clone()))
        .merge(Router::new().route("/openapi.json", get(openapi_json)))
}

/// The private metrics listener's app: `/metrics` behind the same stack (so a scrape is
/// counted too), and nothing else. Never merged into the API's routes: route names,
/// status counts and pool sizes are for the operator's scraper, not for anyone who can
/// reach the API.
pub fn metrics_app(state: AppState) -> Router {
    metrics::export(&state);
    // A scrape every few seconds is no trace anyone wants.
    let stack_config = StackConfig {
        traces: false,
        ..StackConfig::new(&state)
    };
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state);
    stack(routes, &stack_config)
}

/// The whole app as served: routes plus the stack.
pub fn app(state: AppState) -> Router {
    let stack_config = StackConfig::new(&state);
    stack(routes(state), &stack_config)
}

/// The OpenAPI 3.1 document of this API.
// Generated from the code on each call: it is small and rarely read.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", tag = "local server",
    responses((status = 200, description = "The OpenAPI 3.1 document.",
        content_type = "application/json", body = Object)))]
async fn openapi_json() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openapi::document_json(),
    )
}

/// Prometheus text exposition of the request and database pool metrics.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        metrics::in_order(&state.metrics.render().unwrap_or_default()),
    )
}
