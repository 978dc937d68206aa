//! The floor for cold start and binary size: `lambda_http` serving one axum route, nothing
//! else. Built with the same profile and crate versions as the functions, and on the same
//! current-thread runtime, so the ratio counts only the functions' own work.

use axum::{Json, Router, routing::get};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(hello()).await
}

fn hello() -> Router {
    Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok"})) }),
    )
}
