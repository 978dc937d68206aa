//! The compiled `auth` binary serves its routes through `lambda_http`, driven by the
//! runtime-API emulator with API Gateway HTTP API events, on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{path::Path, time::Duration};

use serde_json::json;
use shared::testing::{
    Backend,
    lambda::LambdaFunction,
    smtp::{SmtpSink, token_in},
};

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

/// Four instances of the `auth` binary on one Postgres, as Lambda scales them out.
async fn four_instances(extra_env: &[(&str, &str)]) -> Vec<LambdaFunction> {
    let db = LambdaFunction::database().await;
    let binary = Path::new(env!("CARGO_BIN_EXE_auth"));
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(LambdaFunction::start_on(db.clone(), binary, "auth", extra_env).await);
    }
    instances
}

fn json_body(value: &serde_json::Value) -> String {
    value.to_string()
}

async fn lambda_login(
    function: &LambdaFunction,
    email: &str,
    password: &str,
) -> shared::testing::lambda::LambdaResponse {
    let body = json_body(&json!({"email": email, "password": password}));
    function
        .call("POST", "/v1/auth/login", &[JSON], Some(&body))
        .await
}

/// Four instances (after `Backend::Postgres.available()`) and one registered user.
async fn four_instances_with_user(
    extra_env: &[(&str, &str)],
    email: &str,
    password: &str,
) -> Vec<LambdaFunction> {
    let instances = four_instances(extra_env).await;
    lambda_register(&instances[0], email, password).await;
    instances
}

async fn lambda_register(function: &LambdaFunction, email: &str, password: &str) {
    let body = json_body(&json!({"email": email, "password": password, "name": "Target"}));
    let created = function
        .call("POST", "/v1/auth/register", &[JSON], Some(&body))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lambda_instances_verify_at_most_five_of_fifty_parallel_wrong_logins() {
    if !Backend::Postgres.available() {
        return;
    }
    let password = "correct horse battery staple";
    let instances = four_instances_with_user(
        &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")],
        "target@example.com",
        password,
    )
    .await;
    let results =
        futures::future::join_all(
            (0..50).map(|i| {
                let function = &instances[i % 4];
                async move {
                    lambda_login(function, "target@example.com", &format!("wrong {i:03}")).await
                }
            }),
        )
        .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        45,
        "{statuses:?}"
    );
    for r in results.iter().filter(|r| r.status == 429) {
        assert_eq!(r.json()["code"], "too_many_requests");
        assert!(r.header("retry-after").is_some());
    }
    for function in &instances {
        let right = lambda_login(function, "target@example.com", password).await;
        assert_eq!(right.status, 429, "{}", right.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lambda_instances_leave_no_working_token_after_a_racing_password_change() {
    if !Backend::Postgres.available() {
        return;
    }
    let instances = four_instances(&[
        ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ("LOGIN_MAX_FAILURES", "1000"),
    ])
    .await;
    let (old, new) = ("the old password 123", "the new password 456");
    lambda_register(&instances[0], "racer@example.com", old).await;
    let first = lambda_login(&instances[0], "racer@example.com", old).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let bearer = format!("Bearer {}", first.json()["access_token"].as_str().unwrap());
    let logins = futures::future::join_all((0..32u64).map(|i| {
        let function = &instances[usize::try_from(i % 3).unwrap() + 1];
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(15 * i)).await;
            lambda_login(function, "racer@example.com", old).await
        }
    }));
    let change = async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let body = json_body(&json!({"current_password": old, "new_password": new}));
        instances[0]
            .call(
                "POST",
                "/v1/auth/password",
                &[JSON, ("authorization", &bearer)],
                Some(&body),
            )
            .await
    };
    let (results, changed) = tokio::join!(logins, change);
    assert_eq!(changed.status, 204, "{}", changed.body);
    let mut issued = 0;
    for (i, r) in results.iter().enumerate() {
        if r.status != 200 {
            assert_eq!(r.status, 401, "{}", r.body);
            continue;
        }
        issued += 1;
        let pair = r.json();
        let function = &instances[i % 4];
        let bearer = format!("Bearer {}", pair["access_token"].as_str().unwrap());
        let me = function
            .call("GET", "/v1/auth/me", &[("authorization", &bearer)], None)
            .await;
        assert_eq!(me.status, 401, "an access token survived the change");
        let refresh = json_body(&json!({"refresh_token": pair["refresh_token"]}));
        let rotated = function
            .call("POST", "/v1/auth/refresh", &[JSON], Some(&refresh))
            .await;
        assert_eq!(rotated.status, 401, "a refresh token survived the change");
    }
    eprintln!("{issued} of 32 raced logins were issued tokens; none works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lambda_instances_share_the_per_client_limit_by_source_ip() {
    if !Backend::Postgres.available() {
        return;
    }
    let instances = four_instances(&[
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
        ("AUTH_RATE_LIMIT_BURST", "6"),
    ])
    .await;
    let from = |source_ip: &str, i: usize| {
        let body =
            json_body(&json!({"email": format!("n{i}@example.com"), "password": "some password"}));
        let mut event = shared::testing::lambda::http_api_event(
            "POST",
            "/v1/auth/login",
            &[JSON, ("x-forwarded-for", "10.9.8.7")],
            Some(&body),
        );
        event["requestContext"]["http"]["sourceIp"] = json!(source_ip);
        event
    };
    let results = futures::future::join_all((0..20).map(|i| {
        let function = &instances[i % 4];
        let event = from("198.51.100.7", i);
        async move { function.invoke(&event).await }
    }))
    .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    // The caller's own X-Forwarded-For changes nothing: API Gateway's source IP counts.
    assert_eq!(
        statuses.iter().filter(|s| **s != 429).count(),
        6,
        "{statuses:?}"
    );
    let other = instances[0].invoke(&from("198.51.100.8", 99)).await;
    assert_eq!(other.status, 401, "{}", other.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lambda_instances_share_the_budget_of_password_change_guesses() {
    if !Backend::Postgres.available() {
        return;
    }
    let password = "correct horse battery staple";
    let instances = four_instances_with_user(
        &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")],
        "stolen@example.com",
        password,
    )
    .await;
    let pair = lambda_login(&instances[0], "stolen@example.com", password).await;
    assert_eq!(pair.status, 200, "{}", pair.body);
    let bearer = format!("Bearer {}", pair.json()["access_token"].as_str().unwrap());
    let results = futures::future::join_all((0..24).map(|i| {
        let (function, bearer) = (&instances[i % 4], &bearer);
        async move {
            let body = json_body(&json!({
                "current_password": format!("guess number {i:03}"),
                "new_password": "the thief's new password",
            }));
            function
                .call(
                    "POST",
                    "/v1/auth/password",
                    &[JSON, ("authorization", bearer)],
                    Some(&body),
                )
                .await
        }
    }))
    .await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        19,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_lambda_instances_let_each_mailed_token_work_exactly_once() {
    if !Backend::Postgres.available() {
        return;
    }
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let email = "mailed@example.com";
    let instances = four_instances_with_user(
        &[
            ("SMTP_URL", smtp.as_str()),
            ("APP_BASE_URL", "https://app.example.com"),
            // Every request comes from one address; the per-client limit has its own test.
            ("AUTH_RATE_LIMIT_PER_MINUTE", "0"),
        ],
        email,
        "the password before the reset",
    )
    .await;
    // Under Lambda the auth function only queues: registration's verification mail waits
    // in the outbox for the mail function, which this test stands in for.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        sink.messages().is_empty(),
        "the auth function sent mail itself"
    );
    let db = instances[0].db.clone();
    assert_eq!(deliver_outbox(&db, &smtp).await, 1);
    let verification = token_in(&sink.wait_for(1, Duration::from_secs(10)).await[0]);
    // The address may be sent another mail now.
    db.raw_statement(
        "",
        "UPDATE mail_throttle SET last_sent_at = last_sent_at - interval '61 seconds'",
    )
    .await;
    // Twelve reset requests at once through the four instances: the address's budget
    // (one mail a minute) lets exactly one mail out.
    let forgot = json_body(&json!({"email": email}));
    let asked = futures::future::join_all((0..12).map(|i| {
        instances[i % 4].call("POST", "/v1/auth/password/forgot", &[JSON], Some(&forgot))
    }))
    .await;
    for answer in &asked {
        assert_eq!(answer.status, 202, "{}", answer.body);
    }
    assert_eq!(deliver_outbox(&db, &smtp).await, 1);
    let mail = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(mail[1].contains("/reset-password?token="), "{}", mail[1]);
    let reset = token_in(&mail[1]);

    // Each token is sent by many clients at once, through every instance: one use wins.
    let resets = futures::future::join_all((0..12).map(|i| {
        let (function, reset) = (&instances[i % 4], &reset);
        async move {
            let body = json_body(&json!({
                "token": reset,
                "new_password": format!("new password number {i:02}"),
            }));
            let answer = function
                .call("POST", "/v1/auth/password/reset", &[JSON], Some(&body))
                .await;
            (i, answer)
        }
    }))
    .await;
    let verifies = futures::future::join_all((0..8).map(|i| {
        let (function, verification) = (&instances[i % 4], &verification);
        async move {
            let body = json_body(&json!({"token": verification}));
            function
                .call("POST", "/v1/auth/email/verify", &[JSON], Some(&body))
                .await
        }
    }))
    .await;

    let winners: Vec<usize> = resets
        .iter()
        .filter(|(_, r)| r.status == 204)
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one reset wins: {winners:?}");
    for (_, answer) in resets.iter().filter(|(_, r)| r.status != 204) {
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json()["code"], "invalid_token");
    }
    let verified: Vec<u16> = verifies.iter().map(|r| r.status).collect();
    assert_eq!(
        verified.iter().filter(|s| **s == 204).count(),
        1,
        "{verified:?}"
    );
    assert!(
        verified.iter().all(|s| *s == 204 || *s == 400),
        "{verified:?}"
    );

    // The winner's password is the one that works now, through any instance.
    let old = lambda_login(&instances[2], email, "the password before the reset").await;
    assert_eq!(old.status, 401, "{}", old.body);
    let new = format!("new password number {:02}", winners[0]);
    let logged_in = lambda_login(&instances[3], email, &new).await;
    assert_eq!(logged_in.status, 200, "{}", logged_in.body);
    let bearer = format!(
        "Bearer {}",
        logged_in.json()["access_token"].as_str().unwrap()
    );
    let me = instances[0]
        .call("GET", "/v1/auth/me", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(me.json()["email_verified"], true, "{}", me.body);
}

/// What a run of the mail function does: delivers the due outbox to `smtp`. Returns how
/// many messages went out.
async fn deliver_outbox(db: &shared::testing::TestDb, smtp: &str) -> u32 {
    let config = shared::testing::test_config(
        &db.url,
        &[
            ("SMTP_URL", smtp),
            ("APP_BASE_URL", "https://app.example.com"),
        ],
    );
    let state = shared::AppState::new(config).unwrap();
    let stop_by = tokio::time::Instant::now() + Duration::from_secs(60);
    let done =
        shared::mail::deliver_due(&state.store, &state.mailer, &state.metrics, 100, stop_by).await;
    state.store.close().await;
    assert_eq!(done.failed, 0);
    done.sent
}
