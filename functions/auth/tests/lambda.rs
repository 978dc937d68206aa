//! The compiled `auth` binary serves its routes through `lambda_http`, driven by the
//! runtime-API emulator with API Gateway HTTP API events, on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;
use shared::testing::{Backend, lambda::LambdaFunction};

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_binary_serves_register_login_me_and_refresh_under_lambda() {
    if !Backend::Postgres.available() {
        return;
    }
    let function = LambdaFunction::start(Path::new(env!("CARGO_BIN_EXE_auth")), "auth", &[]).await;
    let body =
        json!({"email": "lambda@example.com", "password": "correct horse battery", "name": "L"})
            .to_string();
    let created = function
        .call("POST", "/v1/auth/register", &[JSON], Some(&body))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("location"), Some("/v1/auth/me"));
    assert_eq!(created.json()["email"], "lambda@example.com");
    // Without a caller id, the API Gateway request id becomes the request id.
    assert!(
        created
            .header("x-request-id")
            .is_some_and(|id| id.starts_with("apigw-")),
        "{:?}",
        created.headers
    );

    let login =
        json!({"email": "lambda@example.com", "password": "correct horse battery"}).to_string();
    let pair = function
        .call("POST", "/v1/auth/login", &[JSON], Some(&login))
        .await;
    assert_eq!(pair.status, 200, "{}", pair.body);
    assert_eq!(pair.header("cache-control"), Some("no-store"));
    let pair = pair.json();
    let bearer = format!("Bearer {}", pair["access_token"].as_str().unwrap());

    let me = function
        .call(
            "GET",
            "/v1/auth/me",
            &[("authorization", &bearer), ("x-request-id", "mine-1")],
            None,
        )
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.header("x-request-id"), Some("mine-1"));
    assert_eq!(me.json()["email"], "lambda@example.com");

    let refresh = json!({"refresh_token": pair["refresh_token"]}).to_string();
    let rotated = function
        .call("POST", "/v1/auth/refresh", &[JSON], Some(&refresh))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let replayed = function
        .call("POST", "/v1/auth/refresh", &[JSON], Some(&refresh))
        .await;
    assert_eq!(replayed.status, 401);
    assert_eq!(replayed.json()["code"], "refresh_token_reused");

    // A route of another function is a 404 problem here, not a crash.
    let other = function.call("GET", "/v1/tasks", &[], None).await;
    assert_eq!(other.status, 404);
    assert_eq!(
        other.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(other.json()["code"], "not_found");
}
