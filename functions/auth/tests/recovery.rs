//! Account recovery and email verification by mail, on SQLite and Postgres, through the
//! auth router with an SMTP sink on loopback: the four flows, no enumeration, single-use
//! and newest-only tokens, the mail budget, sessions ended by a reset, delivery once SMTP
//! is back, and 503 in production without `SMTP_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use axum::http::StatusCode;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use serde_json::json;
use shared::{
    metrics::Exporter,
    models::Role,
    testing::{
        Backend, TEST_PASSWORD, TestApp, TestResponse,
        smtp::{SmtpSink, token_in},
    },
};

const NEW_PASSWORD: &str = "a brand new password for this one";
const WAIT: Duration = Duration::from_secs(10);

async fn start(backend: Backend, sink: &SmtpSink, extra: &[(&str, &str)]) -> TestApp {
    let url = sink.url();
    let mut vars = vec![
        ("SMTP_URL", url.as_str()),
        ("APP_BASE_URL", "https://app.example.com"),
    ];
    vars.extend_from_slice(extra);
    let app = TestApp::start_with(backend, auth::router, &vars).await;
    app.state
        .metrics
        .export_to(|| Box::new(MailCounters::default()));
    app
}

/// The app's own recorder in these tests: the two mail counters, shown as Prometheus shows
/// them (the local server's recorder is Prometheus's, in `local-server`).
#[derive(Default)]
struct MailCounters {
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Recorder for MailCounters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match key.name() {
            "mail_sent_total" => Counter::from_arc(self.sent.clone()),
            "mail_failed_total" => Counter::from_arc(self.failed.clone()),
            _ => Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

impl Exporter for MailCounters {
    fn recorder(&self) -> &dyn Recorder {
        self
    }

    fn render(&self) -> String {
        let (sent, failed) = (self.sent.load(Relaxed), self.failed.load(Relaxed));
        format!("mail_sent_total {sent}\nmail_failed_total {failed}\n")
    }
}

async fn forgot(app: &TestApp, email: &str) -> TestResponse {
    app.post("/v1/auth/password/forgot")
        .json(json!({"email": email}))
        .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    app.post("/v1/auth/password/reset")
        .json(json!({"token": token, "new_password": password}))
        .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.post("/v1/auth/login")
        .json(json!({"email": email, "password": password}))
        .await
}

/// Lets `email` be sent mail again at once: its budget's last mail moves `secs` back.
async fn age_budget(app: &TestApp, email: &str, secs: u32) {
    app.raw_statement(
        &format!(
            "UPDATE mail_throttle SET last_sent_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', last_sent_at, '-{secs} seconds') WHERE email = '{email}'"
        ),
        &format!(
            "UPDATE mail_throttle SET last_sent_at = last_sent_at - interval '{secs} seconds' WHERE email = '{email}'"
        ),
    )
    .await;
}

/// Waits until the metrics text satisfies `done`: mail is delivered after the answer.
async fn until_metrics(app: &TestApp, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&app.state.metrics.render().unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn subject_of(message: &str) -> &str {
    message
        .lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or("")
}

async fn forgot_then_reset_ends_every_session_and_the_token_works_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    let pair = login(&app, "ada@example.com", TEST_PASSWORD).await.json();
    let (access, refresh) = (
        pair["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
    );

    let accepted = forgot(&app, "ada@example.com").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    assert!(accepted.body.is_empty());
    let mail = sink.wait_for(1, WAIT).await;
    assert_eq!(mail.len(), 1);
    assert_eq!(subject_of(&mail[0]), "Reset your password");
    assert!(mail[0].contains("To: ada@example.com"), "{}", mail[0]);
    let token = token_in(&mail[0]);

    // A weak password is refused before the token is touched.
    reset(&app, &token, "short")
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token");

    // Every session ended: the old access token and refresh token are refused.
    app.get("/v1/auth/me")
        .bearer(&access)
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/auth/refresh")
        .json(json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    login(&app, "ada@example.com", TEST_PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        login(&app, "ada@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn unknown_disabled_and_known_addresses_get_the_same_answer(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("known@example.com", Role::User).await;
    let disabled = app.create_user("disabled@example.com", Role::User).await;
    app.raw_user_statement(
        "UPDATE users SET disabled = 1 WHERE id = ?1",
        "UPDATE users SET disabled = true WHERE id = $1",
        disabled.id,
    )
    .await;
    let mut answers = Vec::new();
    for address in [
        "nobody@example.com",
        "disabled@example.com",
        "known@example.com",
        // Within a minute of the last: over the address's budget, so no mail either.
        "known@example.com",
    ] {
        let started = std::time::Instant::now();
        answers.push(forgot(&app, address).await);
        // Every answer is held to the same time box, whatever the request wrote.
        let took = started.elapsed();
        assert!(
            took >= auth::FORGOT_TIMEBOX,
            "{address}: answered after {took:?}"
        );
    }
    // Status, body and every header but the request's own id are the same.
    let shape = |answer: &TestResponse| {
        let headers: std::collections::BTreeMap<String, Vec<String>> = answer
            .headers
            .keys()
            .filter(|name| name.as_str() != "x-request-id")
            .map(|name| {
                let values = answer.headers.get_all(name).iter();
                let values = values.map(|v| v.to_str().unwrap().to_owned()).collect();
                (name.as_str().to_owned(), values)
            })
            .collect();
        (answer.status, answer.body.clone(), headers)
    };
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert!(answer.body.is_empty());
        assert_eq!(answer.header("content-type"), None);
        assert_eq!(shape(answer), shape(&answers[0]));
    }
    let mail = sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1, "{mail:?}");
    assert!(mail[0].contains("To: known@example.com"));
    // Malformed input is the same 422 for everyone.
    forgot(&app, "not an email")
        .await
        .assert_problem(422, "validation_failed");
}

async fn only_the_newest_token_works_and_an_expired_one_does_not(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    forgot(&app, "ada@example.com").await;
    let first = token_in(&sink.wait_for(1, WAIT).await[0]);
    age_budget(&app, "ada@example.com", 61).await;
    forgot(&app, "ada@example.com").await;
    let second = token_in(&sink.wait_for(2, WAIT).await[1]);
    assert_ne!(first, second);
    reset(&app, &first, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token");

    app.raw_statement(
        "UPDATE account_tokens SET created_at = '2020-01-01T00:00:00.000000Z', expires_at = '2020-01-01T00:30:00.000000Z'",
        "UPDATE account_tokens SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'",
    )
    .await;
    reset(&app, &second, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token");
    for garbage in ["", "x", &"A".repeat(43), &"é".repeat(43), &"a".repeat(5000)] {
        reset(&app, garbage, NEW_PASSWORD)
            .await
            .assert_problem(400, "invalid_token");
    }
    assert_eq!(
        login(&app, "ada@example.com", TEST_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn an_address_gets_one_mail_a_minute_and_five_an_hour(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    // Ten at once: one mail.
    let answers = futures::future::join_all((0..10).map(|_| forgot(&app, "ada@example.com"))).await;
    assert!(answers.iter().all(|a| a.status == StatusCode::ACCEPTED));
    sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
    // A minute later each time: four more, then the hour's budget is spent.
    for _ in 0..6 {
        age_budget(&app, "ada@example.com", 61).await;
        assert_eq!(
            forgot(&app, "ada@example.com").await.status,
            StatusCode::ACCEPTED
        );
    }
    sink.wait_for(5, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 5);
    // An hour after the window opened, it restarts.
    app.raw_statement(
        "UPDATE mail_throttle SET window_start = strftime('%Y-%m-%dT%H:%M:%S.000000Z', window_start, '-3601 seconds') WHERE email = 'ada@example.com'",
        "UPDATE mail_throttle SET window_start = window_start - interval '3601 seconds' WHERE email = 'ada@example.com'",
    )
    .await;
    age_budget(&app, "ada@example.com", 61).await;
    assert_eq!(
        forgot(&app, "ada@example.com").await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(sink.wait_for(6, WAIT).await.len(), 6);
}

async fn concurrent_resets_with_one_token_have_one_winner(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    forgot(&app, "ada@example.com").await;
    let token = token_in(&sink.wait_for(1, WAIT).await[0]);
    let answers = futures::future::join_all((0..8).map(|i| {
        let (app, token) = (&app, &token);
        async move { reset(app, token, &format!("{NEW_PASSWORD} {i}")).await }
    }))
    .await;
    let winners: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.status == StatusCode::NO_CONTENT)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1);
    for answer in answers
        .iter()
        .filter(|a| a.status != StatusCode::NO_CONTENT)
    {
        answer.assert_problem(400, "invalid_token");
    }
    let password = format!("{NEW_PASSWORD} {}", winners[0]);
    assert_eq!(
        login(&app, "ada@example.com", &password).await.status,
        StatusCode::OK
    );
}

async fn a_reset_clears_the_login_throttle(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    for _ in 0..5 {
        login(&app, "ada@example.com", "wrong password guess")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    login(&app, "ada@example.com", TEST_PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    forgot(&app, "ada@example.com").await;
    let token = token_in(&sink.wait_for(1, WAIT).await[0]);
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        login(&app, "ada@example.com", NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn registration_mails_a_verification_token_that_verifies_the_address(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    let registered = app
        .post("/v1/auth/register")
        .json(json!({"email": "ada@example.com", "password": TEST_PASSWORD, "name": "Ada"}))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    assert_eq!(registered.json()["email_verified"], false);
    let mail = sink.wait_for(1, WAIT).await;
    assert_eq!(subject_of(&mail[0]), "Verify your email address");
    assert!(mail[0].contains("https://app.example.com/verify-email?token="));
    let token = token_in(&mail[0]);

    let pair = login(&app, "ada@example.com", TEST_PASSWORD).await.json();
    let access = pair["access_token"].as_str().unwrap();
    let verify = |token: String| {
        let app = &app;
        async move {
            app.post("/v1/auth/email/verify")
                .json(json!({"token": token}))
                .await
        }
    };
    // Eight uses at once: one verifies, the others find the token spent.
    let answers = futures::future::join_all((0..8).map(|_| verify(token.clone()))).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{statuses:?}"
    );
    for answer in answers
        .iter()
        .filter(|a| a.status != StatusCode::NO_CONTENT)
    {
        answer.assert_problem(400, "invalid_token");
    }
    verify(token).await.assert_problem(400, "invalid_token");
    let me = app.get("/v1/auth/me").bearer(access).await.json();
    assert_eq!(me["email_verified"], true);
    app.post("/v1/auth/email/verification")
        .bearer(access)
        .await
        .assert_problem(409, "email_already_verified");
}

async fn a_verification_mail_can_be_asked_for_and_login_can_require_it(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let user = app.create_user("ada@example.com", Role::User).await;
    login(&app, "ada@example.com", TEST_PASSWORD)
        .await
        .assert_problem(403, "email_not_verified");
    // A wrong password is still the same 401 as for anyone.
    login(&app, "ada@example.com", "wrong password guess")
        .await
        .assert_problem(401, "invalid_credentials");
    let asked = app
        .post("/v1/auth/email/verification")
        .bearer(&user.token)
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let token = token_in(&sink.wait_for(1, WAIT).await[0]);
    let verified = app
        .post("/v1/auth/email/verify")
        .json(json!({"token": token}))
        .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
    assert_eq!(
        login(&app, "ada@example.com", TEST_PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn mail_queued_while_smtp_is_down_is_delivered_once_it_is_back(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    app.create_user("bob@example.com", Role::User).await;
    sink.set_down(true);
    assert_eq!(
        forgot(&app, "ada@example.com").await.status,
        StatusCode::ACCEPTED
    );
    // The attempt fails; the message waits in the outbox.
    until_metrics(&app, "no failed attempt", |m| {
        !m.contains("mail_failed_total 0")
    })
    .await;
    assert_eq!(app.state.store.mail().outbox_depth().await.unwrap(), 1);
    sink.set_down(false);
    // Its back-off has passed; the next request that sends mail also delivers it.
    app.raw_statement(
        "UPDATE mail_outbox SET next_attempt_at = '2020-01-01T00:00:00.000000Z' WHERE sent_at IS NULL",
        "UPDATE mail_outbox SET next_attempt_at = now() - interval '1 hour' WHERE sent_at IS NULL",
    )
    .await;
    forgot(&app, "bob@example.com").await;
    let mail = sink.wait_for(2, WAIT).await;
    assert_eq!(mail.len(), 2);
    // Both recorded as sent (the metric is counted after the outbox row is marked).
    until_metrics(&app, "not recorded as sent", |m| {
        m.contains("mail_sent_total 2")
    })
    .await;
    assert!(mail.iter().any(|m| m.contains("To: ada@example.com")));
    assert!(mail.iter().any(|m| m.contains("To: bob@example.com")));
    assert_eq!(app.state.store.mail().outbox_depth().await.unwrap(), 0);
    let metrics = app.state.metrics.render().unwrap();
    assert!(metrics.contains("mail_failed_total 1"), "{metrics}");
    // The token mailed late still works.
    let ada = mail
        .iter()
        .find(|m| m.contains("To: ada@example.com"))
        .unwrap();
    assert_eq!(
        reset(&app, &token_in(ada), NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

async fn production_without_smtp_answers_503_and_still_registers(backend: Backend) {
    let app = TestApp::start(backend, auth::router).await;
    let user = app.create_user("ada@example.com", Role::User).await;
    for answer in [
        forgot(&app, "ada@example.com").await,
        reset(&app, &"A".repeat(43), NEW_PASSWORD).await,
        app.post("/v1/auth/email/verify")
            .json(json!({"token": "A".repeat(43)}))
            .await,
        app.post("/v1/auth/email/verification")
            .bearer(&user.token)
            .await,
    ] {
        let body = answer.assert_problem(503, "service_unavailable");
        assert!(
            body["detail"].as_str().unwrap().contains("SMTP_URL"),
            "{body}"
        );
    }
    let registered = app
        .post("/v1/auth/register")
        .json(json!({"email": "bob@example.com", "password": TEST_PASSWORD, "name": "Bob"}))
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
}

async fn a_token_serves_only_its_purpose_and_an_over_budget_request_keeps_the_old_one(
    backend: Backend,
) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    let user = app.create_user("ada@example.com", Role::User).await;
    forgot(&app, "ada@example.com").await;
    let reset_token = token_in(&sink.wait_for(1, WAIT).await[0]);
    // Within the minute: 202, no mail, and the mailed token is not replaced.
    assert_eq!(
        forgot(&app, "ada@example.com").await.status,
        StatusCode::ACCEPTED
    );
    age_budget(&app, "ada@example.com", 61).await;
    app.post("/v1/auth/email/verification")
        .bearer(&user.token)
        .await;
    let verify_token = token_in(&sink.wait_for(2, WAIT).await[1]);
    assert_eq!(sink.messages().len(), 2);
    // Neither token works for the other purpose, and trying spends neither.
    app.post("/v1/auth/email/verify")
        .json(json!({"token": reset_token}))
        .await
        .assert_problem(400, "invalid_token");
    reset(&app, &verify_token, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token");
    // A disabled account cannot be reset, and its token stays unspent.
    app.raw_user_statement(
        "UPDATE users SET disabled = 1 WHERE id = ?1",
        "UPDATE users SET disabled = true WHERE id = $1",
        user.id,
    )
    .await;
    reset(&app, &reset_token, NEW_PASSWORD)
        .await
        .assert_problem(400, "invalid_token");
    app.raw_user_statement(
        "UPDATE users SET disabled = 0 WHERE id = ?1",
        "UPDATE users SET disabled = false WHERE id = $1",
        user.id,
    )
    .await;
    assert_eq!(
        reset(&app, &reset_token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    let verified = app
        .post("/v1/auth/email/verify")
        .json(json!({"token": verify_token}))
        .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
}

async fn a_delivery_starts_no_attempt_it_could_not_finish_by_its_deadline(backend: Backend) {
    let sink = SmtpSink::start().await;
    let app = start(backend, &sink, &[]).await;
    app.create_user("ada@example.com", Role::User).await;
    sink.set_down(true);
    forgot(&app, "ada@example.com").await;
    until_metrics(&app, "no failed attempt", |m| {
        !m.contains("mail_failed_total 0")
    })
    .await;
    sink.set_down(false);
    app.raw_statement(
        "UPDATE mail_outbox SET next_attempt_at = '2020-01-01T00:00:00.000000Z' WHERE sent_at IS NULL",
        "UPDATE mail_outbox SET next_attempt_at = now() - interval '1 hour' WHERE sent_at IS NULL",
    )
    .await;
    let state = &app.state;
    let deliver = |room: Duration| {
        let stop_by = tokio::time::Instant::now() + room;
        shared::mail::deliver_due(&state.store, &state.mailer, &state.metrics, 10, stop_by)
    };
    // Less time left than an attempt may take: nothing is claimed, nothing sent.
    let attempt = shared::mail::ATTEMPT_TIMEOUT;
    let none = deliver(attempt - Duration::from_millis(100)).await;
    assert_eq!((none.sent, none.failed), (0, 0));
    assert_eq!(app.state.store.mail().outbox_depth().await.unwrap(), 1);
    // With room for it, the message goes out.
    let one = deliver(attempt + Duration::from_secs(1)).await;
    assert_eq!((one.sent, one.failed), (1, 0));
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
    assert_eq!(app.state.store.mail().outbox_depth().await.unwrap(), 0);
}

shared::backend_tests!(
    a_token_serves_only_its_purpose_and_an_over_budget_request_keeps_the_old_one,
    forgot_then_reset_ends_every_session_and_the_token_works_once,
    unknown_disabled_and_known_addresses_get_the_same_answer,
    only_the_newest_token_works_and_an_expired_one_does_not,
    an_address_gets_one_mail_a_minute_and_five_an_hour,
    concurrent_resets_with_one_token_have_one_winner,
    a_reset_clears_the_login_throttle,
    registration_mails_a_verification_token_that_verifies_the_address,
    a_verification_mail_can_be_asked_for_and_login_can_require_it,
    mail_queued_while_smtp_is_down_is_delivered_once_it_is_back,
    production_without_smtp_answers_503_and_still_registers,
    a_delivery_starts_no_attempt_it_could_not_finish_by_its_deadline,
);
