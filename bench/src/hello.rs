//! The one route both hello-world Lambda floors serve.

use axum::{Json, Router, routing::get};

pub fn router() -> Router {
    Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok"})) }),
    )
}
