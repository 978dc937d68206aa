//! Router tests of the health function on the real stack, on SQLite and Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use shared::{
    AppState,
    http::{StackConfig, stack},
    store,
    testing::{Backend, TestApp, send, test_config},
};

async fn health_is_ok_and_carries_security_headers(backend: Backend) {
    let app = TestApp::start(backend, health::router).await;
    let response = app.get("/health").await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.json(), serde_json::json!({"status": "ok"}));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.header("x-content-type-options"), Some("nosniff"));
    assert!(response.header("x-request-id").is_some());
}

async fn ready_reports_the_database_ok(backend: Backend) {
    let app = TestApp::start(backend, health::router).await;
    let response = app.get("/ready").await;
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    assert_eq!(
        response.json(),
        serde_json::json!({"status": "ready", "checks": {"database": "ok"}})
    );
}

async fn version_names_the_service(backend: Backend) {
    let app = TestApp::start(backend, health::router).await;
    let body = app.get("/version").await.json();
    assert_eq!(body["name"], "task-api");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let sha = body["git_sha"].as_str().unwrap();
    assert!(
        sha == "unknown" || (sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit())),
        "{sha}"
    );
}

async fn unknown_route_and_wrong_method_are_problems(backend: Backend) {
    let app = TestApp::start(backend, health::router).await;
    app.get("/v1/nothing-here")
        .await
        .assert_problem(404, "not_found");
    let response = app.post("/health").json(serde_json::json!({})).await;
    response.assert_problem(405, "method_not_allowed");
    assert_eq!(response.header("allow"), Some("GET,HEAD"));
}

shared::backend_tests!(
    health_is_ok_and_carries_security_headers,
    ready_reports_the_database_ok,
    version_names_the_service,
    unknown_route_and_wrong_method_are_problems,
);

/// `/version`'s version is the newest release of CHANGELOG.md: cutting a release means
/// both (README, "Releases"), and a build between releases reports the last one.
#[test]
fn the_version_is_the_changelogs_newest_release() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../CHANGELOG.md");
    let changelog = std::fs::read_to_string(path).unwrap();
    let newest = changelog
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .find(|heading| !heading.starts_with("Unreleased"))
        .expect("CHANGELOG.md has a release");
    let (version, date) = newest.split_once(" - ").expect("## X.Y.Z - YYYY-MM-DD");
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "{newest}");
    let parts: Vec<&str> = version.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u64>().is_ok()),
        "a semantic version: {version}"
    );
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let date: Vec<&str> = date.split('-').collect();
    assert!(
        date.len() == 3 && date.iter().all(|p| digits(p)),
        "a date: {date:?}"
    );
}

/// An app whose database URL points at `url`, which never works; nothing is migrated.
fn app_on(url: &str) -> axum::Router {
    let config = test_config(url, &[("DB_ACQUIRE_TIMEOUT_MS", "10000")]);
    let store = store::connect_lazy(&config.db).unwrap();
    let state = AppState::with_store(config, store);
    let stack_config = StackConfig::new(&state);
    stack(health::router(state), &stack_config)
}

async fn assert_not_ready_quickly_but_healthy(app: axum::Router) {
    let started = Instant::now();
    let ready = send(
        &app,
        shared::testing::request(axum::http::Method::GET, "/ready")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let elapsed = started.elapsed();
    let body = ready.assert_problem(503, "service_unavailable");
    assert!(elapsed < Duration::from_millis(2500), "took {elapsed:?}");
    assert!(body["checks"]["database"].is_string(), "{body}");
    assert!(ready.header("retry-after").is_some());

    let started = Instant::now();
    let health = send(
        &app,
        shared::testing::request(axum::http::Method::GET, "/health")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn ready_is_503_within_bound_when_nobody_listens_on_the_database_port() {
    // Bind then drop a listener: the port is free, so connections are refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let app = app_on(&format!("postgres://app:secret@127.0.0.1:{port}/app"));
    assert_not_ready_quickly_but_healthy(app).await;
}

#[tokio::test]
async fn ready_is_503_within_bound_when_the_database_accepts_but_never_answers() {
    // A "database" that accepts connections and then says nothing at all.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = app_on(&format!("postgres://app:secret@127.0.0.1:{port}/app"));
    assert_not_ready_quickly_but_healthy(app).await;
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ready_calls_share_one_database_check_and_reuse_it() {
    // A "database" that counts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket);
        }
    });
    let app = app_on(&format!("postgres://app:secret@127.0.0.1:{port}/app"));
    let ready = || {
        send(
            &app,
            shared::testing::request(axum::http::Method::GET, "/ready")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
    };
    let started = Instant::now();
    let answers = futures::future::join_all((0..30).map(|_| ready())).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    for answer in &answers {
        answer.assert_problem(503, "service_unavailable");
    }
    // Thirty callers, one check: one connection attempt, not one per caller (the pool
    // would have opened up to ten).
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Within a second of that check, the answer comes from it, at once.
    let again = Instant::now();
    ready().await.assert_problem(503, "service_unavailable");
    assert!(again.elapsed() < Duration::from_millis(100));
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    hold.abort();
}
