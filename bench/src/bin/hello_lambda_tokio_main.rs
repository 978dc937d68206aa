//! The hello world as most Lambda examples write it: `#[tokio::main]`, a multi-thread
//! runtime with a worker per core. `bench/run` reports the functions against it too, to
//! show what the current-thread runtime (one request at a time per instance) is worth.

use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let app = Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok"})) }),
    );
    lambda_http::run(app).await
}
