//! The compiled `health` binary serves its probes through `lambda_http`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use shared::testing::{Backend, lambda::LambdaFunction};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_binary_serves_its_probes_under_lambda() {
    if !Backend::Postgres.available() {
        return;
    }
    let function =
        LambdaFunction::start(Path::new(env!("CARGO_BIN_EXE_health")), "health", &[]).await;
    let health = function.call("GET", "/health", &[], None).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(health.header("x-frame-options"), Some("DENY"));
    let ready = function.call("GET", "/ready", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["database"], "ok");
    let version = function.call("GET", "/version", &[], None).await;
    assert_eq!(version.json()["name"], "task-api");
    let missing = function.call("GET", "/v1/auth/me", &[], None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "not_found");
}
