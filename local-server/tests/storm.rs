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

shared::backend_tests!(health_stays_fast_during_a_login_storm);
