//! The floor for HTTP throughput: a bare axum server answering `GET /health` with the same
//! body as ours, on the same runtime, without our middleware stack.

use axum::{Json, Router, routing::get};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new().route(
        "/health",
        get(|| async { Json(serde_json::json!({"status": "ok"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // The harness reads the port from this line.
    eprintln!("listening url=http://{addr}");
    axum::serve(listener, app).await
}
