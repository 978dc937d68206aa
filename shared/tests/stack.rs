//! The middleware stack's contract, checked through a small router of its own: every error
//! is problem+json with `status` equal to the HTTP status and `request_id` equal to the
//! `x-request-id` header, and every response carries the security headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::{
    Json, Router,
    body::Body,
    http::{Method, StatusCode},
    routing::get,
};
use serde::Deserialize;
use shared::{
    config::AppEnv,
    error::ApiJson,
    http::{StackConfig, stack},
    testing::{TestResponse, request, send},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    title: String,
    done: bool,
}

async fn create(ApiJson(item): ApiJson<Item>) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::CREATED,
        Json(serde_json::json!({"title": item.title, "done": item.done})),
    )
}

async fn panics() -> &'static str {
    panic!("BUG: this handler always panics")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(10)).await;
    "too late"
}

fn app() -> Router {
    let routes = Router::new()
        .route("/items", get(|| async { "[]" }).post(create))
        .route("/panic", get(panics))
        .route("/slow", get(slow));
    stack(
        routes,
        &StackConfig {
            request_timeout: Duration::from_millis(200),
            env: AppEnv::Production,
            cors_allowed_origins: vec!["https://app.example".into()],
        },
    )
}

async fn call(method: Method, path: &str, content_type: Option<&str>, body: Body) -> TestResponse {
    let mut builder = request(method, path);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    send(&app(), builder.body(body).unwrap()).await
}

async fn post_json(body: impl Into<Body>) -> TestResponse {
    call(
        Method::POST,
        "/items",
        Some("application/json"),
        body.into(),
    )
    .await
}

fn assert_security_headers(response: &TestResponse) {
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(response.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(response.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        response.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
    assert!(
        response
            .header("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let response = call(Method::GET, "/nope", None, Body::empty()).await;
    response.assert_problem(404, "not_found");
    assert_security_headers(&response);
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let response = call(Method::DELETE, "/items", None, Body::empty()).await;
    response.assert_problem(405, "method_not_allowed");
    let allow = response.header("allow").expect("Allow header");
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert_security_headers(&response);
}

#[tokio::test]
async fn malformed_json_is_400() {
    let response = post_json(r#"{"title": "a", "done": "#).await;
    response.assert_problem(400, "malformed_json");
}

#[tokio::test]
async fn missing_content_type_is_415() {
    let response = call(
        Method::POST,
        "/items",
        None,
        Body::from(r#"{"title":"a","done":true}"#),
    )
    .await;
    response.assert_problem(415, "unsupported_media_type");

    let response = call(
        Method::POST,
        "/items",
        Some("text/plain"),
        Body::from(r#"{"title":"a","done":true}"#),
    )
    .await;
    response.assert_problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn wrong_field_type_is_422_with_field_errors() {
    let response = post_json(r#"{"title": "a", "done": "yes"}"#).await;
    let body = response.assert_problem(422, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "done", "{body}");
    let text = body.to_string();
    assert!(!text.contains("Item"), "no Rust type names: {text}");
}

#[tokio::test]
async fn unknown_field_is_422() {
    let response = post_json(r#"{"title": "a", "done": true, "owner_id": 7}"#).await;
    response.assert_problem(422, "validation_failed");
}

#[tokio::test]
async fn body_of_one_mib_plus_one_byte_is_413() {
    // A valid JSON document just over the limit: the size alone must decide.
    let limit = shared::http::BODY_LIMIT_BYTES;
    let prefix = r#"{"title": ""#;
    let suffix = r#"", "done": true}"#;
    let filler = "a".repeat(limit + 1 - prefix.len() - suffix.len());
    let body = format!("{prefix}{filler}{suffix}");
    assert_eq!(body.len(), limit + 1);
    let response = post_json(body).await;
    response.assert_problem(413, "payload_too_large");
}

#[tokio::test]
async fn body_of_exactly_one_mib_is_accepted() {
    let limit = shared::http::BODY_LIMIT_BYTES;
    let prefix = r#"{"title": ""#;
    let suffix = r#"", "done": true}"#;
    let filler = "a".repeat(limit - prefix.len() - suffix.len());
    let response = post_json(format!("{prefix}{filler}{suffix}")).await;
    assert_eq!(response.status, StatusCode::CREATED);
}

#[tokio::test]
async fn streamed_body_over_the_limit_without_content_length_is_413() {
    let limit = shared::http::BODY_LIMIT_BYTES;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; limit / 2]), Ok(vec![b' '; limit / 2 + 1])];
    let body = Body::from_stream(futures_stream(chunks));
    let response = call(Method::POST, "/items", Some("application/json"), body).await;
    response.assert_problem(413, "payload_too_large");
}

fn futures_stream(
    chunks: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn panicking_handler_is_a_500_problem_that_hides_the_message() {
    let response = call(Method::GET, "/panic", None, Body::empty()).await;
    let body = response.assert_problem(500, "internal");
    assert!(!body.to_string().contains("BUG"), "{body}");
    assert_security_headers(&response);
}

#[tokio::test]
async fn handler_slower_than_the_timeout_is_a_504_problem() {
    let started = std::time::Instant::now();
    let response = call(Method::GET, "/slow", None, Body::empty()).await;
    response.assert_problem(504, "timeout");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_security_headers(&response);
}

#[tokio::test]
async fn success_responses_carry_request_id_and_security_headers() {
    let response = call(Method::GET, "/items", None, Body::empty()).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_security_headers(&response);
    assert_eq!(response.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_echoed_in_header_and_problem() {
    let req = request(Method::GET, "/nope")
        .header("x-request-id", "client-abc-123")
        .body(Body::empty())
        .unwrap();
    let response = send(&app(), req).await;
    assert_eq!(response.header("x-request-id"), Some("client-abc-123"));
    let body = response.assert_problem(404, "not_found");
    assert_eq!(body["request_id"], "client-abc-123");
}

#[tokio::test]
async fn an_insane_incoming_request_id_is_replaced() {
    let long = "x".repeat(500);
    for bad in [long.as_str(), "has space", ""] {
        let req = request(Method::GET, "/items")
            .header("x-request-id", bad)
            .body(Body::empty())
            .unwrap();
        let response = send(&app(), req).await;
        let id = response.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}

#[tokio::test]
async fn generated_request_ids_differ_per_request() {
    let a = call(Method::GET, "/items", None, Body::empty()).await;
    let b = call(Method::GET, "/items", None, Body::empty()).await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_succeeds_and_others_get_nothing() {
    let preflight = |origin: &'static str| {
        request(Method::OPTIONS, "/items")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let ok = send(&app(), preflight("https://app.example")).await;
    assert!(ok.status.is_success(), "{:?}", ok.status);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let other = send(&app(), preflight("https://evil.example")).await;
    assert!(other.header("access-control-allow-origin").is_none());
}
