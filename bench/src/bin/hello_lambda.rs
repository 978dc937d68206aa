//! The floor for cold start and binary size: `lambda_http` serving one axum route, nothing
//! else. Built with the same profile and crate versions as the functions.

use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok"})) }),
    );
    lambda_http::run(app).await
}
