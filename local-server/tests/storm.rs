//! Password hashing must stay off the async workers: while 32 logins hash concurrently,
//! `/health` on the same app still answers in under 50 ms. A correctness test (a stalled
//! executor would take hundreds of milliseconds), not a benchmark.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{body::Body, http::Method};
use serde_json::json;
use shared::testing::{Backend, TestApp, request, send};

const PASSWORD: &str = "correct horse battery staple";

async fn health_stays_fast_during_a_login_storm(backend: Backend) {
    // One account logging in 32 times at once would spend its failure budget with
    // in-flight reservations (each login reserves one before hashing); this test is about
    // the executor, so the budget is raised out of the way.
    let app = TestApp::start_with(
        backend,
        local_server::routes,
        &[("LOGIN_MAX_FAILURES", "1000")],
    )
    .await;
    let created = app
        .post("/v1/auth/register")
        .json(json!({"email": "storm@example.com", "password": PASSWORD, "name": "Storm"}))
        .await;
    assert_eq!(created.status.as_u16(), 201);

    let finished = Arc::new(AtomicUsize::new(0));
    let logins: Vec<_> = (0..32)
        .map(|_| {
            let router = app.app.clone();
            let finished = finished.clone();
            tokio::spawn(async move {
                let req = request(Method::POST, "/v1/auth/login")
                    .header("content-type", "application/json")
                    .body(Body::from(
                        json!({"email": "storm@example.com", "password": PASSWORD}).to_string(),
                    ))
                    .unwrap();
                let response = send(&router, req).await;
                finished.fetch_add(1, Ordering::SeqCst);
                response.status.as_u16()
            })
        })
        .collect();

    // Let the storm get going, then probe.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let health = app.get("/health").await;
        worst = worst.max(started.elapsed());
        assert_eq!(health.status.as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let done_while_probing = finished.load(Ordering::SeqCst);
    assert!(
        done_while_probing < 32,
        "the storm was over before the probes; the test proves nothing"
    );
    assert!(
        worst < Duration::from_millis(50),
        "/health took {worst:?} during the storm"
    );

    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
}

/// Every kind of request at once on a pool of one connection: logins (which give their
/// connection back before hashing), creates with an idempotency key (a transaction),
/// conditional updates and lists. A request keeps its connection for all its statements,
/// so one that wanted a second connection while holding the first would wait for itself
/// until the acquire timeout and answer 503.
async fn a_pool_of_one_connection_serves_every_kind_of_request_at_once(backend: Backend) {
    let app = Arc::new(
        TestApp::start_with(
            backend,
            local_server::routes,
            &[
                ("DB_MAX_CONNECTIONS", "1"),
                ("DB_ACQUIRE_TIMEOUT_MS", "10000"),
                ("LOGIN_MAX_FAILURES", "1000"),
            ],
        )
        .await,
    );
    let created = app
        .post("/v1/auth/register")
        .json(json!({"email": "pool@example.com", "password": PASSWORD, "name": "Pool"}))
        .await;
    assert_eq!(created.status.as_u16(), 201);
    let clients: Vec<_> = (0..16)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                let login = app
                    .post("/v1/auth/login")
                    .json(json!({"email": "pool@example.com", "password": PASSWORD}))
                    .await;
                assert_eq!(login.status.as_u16(), 200, "{:?}", login.body);
                let token = login.json()["access_token"].as_str().unwrap().to_owned();
                let task = app
                    .post("/v1/tasks")
                    .bearer(&token)
                    .headers(&[("idempotency-key", &format!("pool-{n}"))])
                    .json(json!({"title": format!("task {n}")}))
                    .await;
                assert_eq!(task.status.as_u16(), 201, "{:?}", task.body);
                let task = task.json();
                let done = app
                    .patch(&format!("/v1/tasks/{}", task["id"].as_str().unwrap()))
                    .bearer(&token)
                    .headers(&[("if-match", &format!("\"{}\"", task["version"]))])
                    .json(json!({"completed": true}))
                    .await;
                assert_eq!(done.status.as_u16(), 200, "{:?}", done.body);
                let list = app.get("/v1/tasks?limit=100").bearer(&token).await;
                assert_eq!(list.status.as_u16(), 200, "{:?}", list.body);
                token
            })
        })
        .collect();
    let mut token = String::new();
    for client in clients {
        token = client.await.unwrap();
    }
    let all = app.get("/v1/tasks?limit=100").bearer(&token).await.json();
    let tasks = all["items"].as_array().unwrap();
    assert_eq!(tasks.len(), 16);
    assert!(tasks.iter().all(|t| t["completed"] == true));
}

shared::backend_tests!(
    health_stays_fast_during_a_login_storm,
    a_pool_of_one_connection_serves_every_kind_of_request_at_once
);
