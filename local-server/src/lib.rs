//! The local server: the four function routers, exactly as the Lambda binaries mount them,
//! merged into one app, plus what only a long-running server has: `/metrics` and
//! `/openapi.json`. The binary (`main.rs`) adds the command line, serving and shutdown.

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
pub mod openapi;
pub mod serve;

/// All routes of the API, without the middleware stack.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .merge(health::router(state.clone()))
        .merge(auth::router(state.clone()))
        .merge(tasks::router(state.clone()))
        .merge(admin::router(state.clone()))
        .merge(
            Router::new()
                .route("/metrics", get(metrics))
                .route("/openapi.json", get(openapi_json))
                .with_state(state),
        )
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
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "local server",
    responses((status = 200, description = "Prometheus text format 0.0.4.",
        content_type = "text/plain; version=0.0.4; charset=utf-8", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render_prometheus(),
    )
}
