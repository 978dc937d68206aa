//! The middleware stack's contract, checked through a small router of its own: every error
//! is problem+json with `status` equal to the HTTP status and `request_id` equal to the
//! `x-request-id` header, and every response carries the security headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::ConnectInfo,
    http::{Method, StatusCode},
    routing::get,
};
use serde::Deserialize;
use shared::{
    config::{AppEnv, LimitsConfig, RateLimit},
    extract::ApiJson,
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
            limits: LimitsConfig::OFF,
            metrics: None,
            traces: true,
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

#[tokio::test]
async fn cors_preflight_allows_the_api_methods_and_headers_and_responses_expose_ours() {
    let preflight = request(Method::OPTIONS, "/items")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header(
            "access-control-request-headers",
            "authorization, content-type, if-match, idempotency-key",
        )
        .body(Body::empty())
        .unwrap();
    let ok = send(&app(), preflight).await;
    assert!(ok.status.is_success(), "{:?}", ok.status);
    let methods = ok
        .header("access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    for method in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = ok
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "if-match",
        "idempotency-key",
    ] {
        assert!(headers.contains(name), "{headers}");
    }
    let actual = send(
        &app(),
        request(Method::GET, "/items")
            .header("origin", "https://app.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        actual.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = actual
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for name in ["etag", "location", "x-request-id", "retry-after"] {
        assert!(exposed.contains(name), "{exposed}");
    }
}

#[tokio::test]
async fn development_allows_localhost_origins_and_production_allows_none_unconfigured() {
    let app_in = |env| {
        stack(
            Router::new().route("/items", get(|| async { "[]" })),
            &StackConfig {
                request_timeout: Duration::from_secs(5),
                env,
                cors_allowed_origins: Vec::new(),
                limits: LimitsConfig::OFF,
                metrics: None,
                traces: true,
            },
        )
    };
    let from = |origin: &str| {
        request(Method::GET, "/items")
            .header("origin", origin)
            .body(Body::empty())
            .unwrap()
    };
    let dev = send(&app_in(AppEnv::Development), from("http://localhost:5173")).await;
    assert_eq!(
        dev.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    let dev_other = send(&app_in(AppEnv::Development), from("https://evil.example")).await;
    assert!(dev_other.header("access-control-allow-origin").is_none());
    let prod = send(&app_in(AppEnv::Production), from("http://localhost:5173")).await;
    assert!(prod.header("access-control-allow-origin").is_none());
}

// --- Rate and concurrency limits -----------------------------------------------------

/// Routes behind the stack with `limits`: `/items` answers at once, `/wait` answers once
/// `gate` has a permit for it, `/health` is a probe.
fn limited_app(limits: LimitsConfig, gate: Arc<tokio::sync::Semaphore>) -> Router {
    let routes = Router::new()
        .route("/items", get(|| async { "[]" }))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/wait",
            get(move || {
                let gate = gate.clone();
                async move {
                    let _ = gate.acquire().await.unwrap();
                    "done"
                }
            }),
        );
    stack(
        routes,
        &StackConfig {
            request_timeout: Duration::from_secs(30),
            env: AppEnv::Production,
            cors_allowed_origins: Vec::new(),
            limits,
            metrics: None,
            traces: true,
        },
    )
}

fn rate_limited(per_second: u32, burst: u32, trusted_proxy_hops: usize) -> Router {
    limited_app(
        LimitsConfig {
            rate: Some(RateLimit { per_second, burst }),
            concurrency: None,
            trusted_proxy_hops,
            body_timeout: Some(std::time::Duration::from_secs(10)),
        },
        Arc::new(tokio::sync::Semaphore::new(0)),
    )
}

fn from_peer(path: &str, peer: &str, forwarded_for: Option<&str>) -> axum::http::Request<Body> {
    let mut builder = request(Method::GET, path);
    if let Some(value) = forwarded_for {
        builder = builder.header("x-forwarded-for", value);
    }
    let mut req = builder.body(Body::empty()).unwrap();
    let addr: SocketAddr = format!("{peer}:50000").parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

#[tokio::test]
async fn a_burst_over_the_rate_limit_gets_429_with_retry_after_and_other_peers_are_unaffected() {
    let app = rate_limited(1, 3, 0);
    for _ in 0..3 {
        let ok = send(&app, from_peer("/items", "192.0.2.1", None)).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let throttled = send(&app, from_peer("/items", "192.0.2.1", None)).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.header("retry-after"), Some("1"));
    assert_eq!(throttled.json()["code"], "too_many_requests");
    assert_security_headers(&throttled);
    assert_eq!(
        throttled.json()["request_id"].as_str(),
        throttled.header("x-request-id")
    );

    let other = send(&app, from_peer("/items", "192.0.2.2", None)).await;
    assert_eq!(other.status, StatusCode::OK);
    // Probes are never throttled.
    let probe = send(&app, from_peer("/health", "192.0.2.1", None)).await;
    assert_eq!(probe.status, StatusCode::OK);
}

#[tokio::test]
async fn a_spoofed_forwarded_for_is_ignored_unless_trust_proxy_is_set() {
    let app = rate_limited(1, 2, 0);
    for forged in ["198.51.100.1", "198.51.100.2"] {
        let ok = send(&app, from_peer("/items", "192.0.2.1", Some(forged))).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    // Same peer, yet another forged client address: still the peer's bucket.
    let throttled = send(&app, from_peer("/items", "192.0.2.1", Some("198.51.100.3"))).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);

    // Behind one trusted proxy (the peer), the forwarded client is the one throttled.
    let app = rate_limited(1, 2, 1);
    for _ in 0..2 {
        let ok = send(&app, from_peer("/items", "10.0.0.1", Some("203.0.113.5"))).await;
        assert_eq!(ok.status, StatusCode::OK);
    }
    let throttled = send(&app, from_peer("/items", "10.0.0.1", Some("203.0.113.5"))).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    let other_client = send(&app, from_peer("/items", "10.0.0.1", Some("203.0.113.6"))).await;
    assert_eq!(other_client.status, StatusCode::OK);
}

#[tokio::test]
async fn over_the_concurrency_limit_extra_requests_get_503_at_once_and_none_hangs() {
    const LIMIT: usize = 3;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let app = limited_app(
        LimitsConfig {
            rate: None,
            concurrency: Some(LIMIT),
            trusted_proxy_hops: 0,
            body_timeout: Some(std::time::Duration::from_secs(10)),
        },
        gate.clone(),
    );
    let mut slow = Vec::new();
    for _ in 0..LIMIT {
        let app = app.clone();
        slow.push(tokio::spawn(async move {
            send(
                &app,
                request(Method::GET, "/wait").body(Body::empty()).unwrap(),
            )
            .await
        }));
    }
    // Let the first LIMIT requests take their permits.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut extra = Vec::new();
    for _ in 0..5 {
        let app = app.clone();
        extra.push(tokio::spawn(async move {
            send(
                &app,
                request(Method::GET, "/wait").body(Body::empty()).unwrap(),
            )
            .await
        }));
    }
    for handle in extra {
        let shed = tokio::time::timeout(Duration::from_secs(2), handle)
            .await
            .expect("a shed request answers at once, it does not queue")
            .unwrap();
        assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.header("retry-after"), Some("1"));
        assert_eq!(shed.json()["code"], "service_unavailable");
    }
    // Probes still answer while the server is full.
    let probe = send(
        &app,
        request(Method::GET, "/health").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(probe.status, StatusCode::OK);

    gate.add_permits(LIMIT);
    for handle in slow {
        let done = tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("admitted requests finish")
            .unwrap();
        assert_eq!(done.status, StatusCode::OK);
    }
    // Capacity is given back.
    gate.add_permits(1);
    let again = send(
        &app,
        request(Method::GET, "/wait").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
}
