//! The compiled `mail` binary as the schedule drives it, through the runtime-API emulator,
//! on Postgres, with an SMTP sink on loopback: overlapping runs on several instances send
//! every due message exactly once; a run while SMTP is down counts the failures and a later
//! run delivers; without `SMTP_URL` a run leaves the outbox alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeSet, path::Path, sync::Arc, time::Duration};

use serde_json::{Value, json};
use shared::{
    AppState,
    auth::refresh,
    mail::reset_mail,
    models::{Email, Role, now},
    store::mail::{NewAccountToken, TokenMail},
    testing::{
        Backend, TEST_JWT_SECRET, TEST_PEPPER, TestDb,
        lambda::{FunctionProcess, LambdaFunction, Outcome, RuntimeEmulator},
        smtp::SmtpSink,
        test_config,
    },
};

const BASE_URL: &str = "https://app.example.com";

/// What EventBridge sends on a `rate(1 minute)` schedule.
fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/task-api-mail"],
        "detail": {}
    })
}

/// Queues a password-reset mail for each of `count` new accounts, as the auth function
/// does, without delivering any; returns their addresses.
async fn queue_resets(db: &TestDb, count: usize) -> BTreeSet<String> {
    let state = AppState::new(test_config(&db.url, &[("APP_BASE_URL", BASE_URL)])).unwrap();
    let mut addresses = BTreeSet::new();
    for i in 0..count {
        let address = format!("user{i}@example.com");
        shared::testing::create_user(&state, &address, Role::User).await;
        let email = Email::parse(&address).unwrap();
        let (token, hash) = refresh::generate();
        let queued = TokenMail {
            token: NewAccountToken {
                hash,
                expires_at: now() + state.config.mail.reset_ttl,
            },
            mail: reset_mail(&state.config.mail, &email, &token),
        };
        let issued = state
            .store
            .mail()
            .queue_password_reset(&email, &queued, now())
            .await
            .unwrap();
        assert!(issued, "the account {address} gets its mail");
        addresses.insert(address);
    }
    state.store.close().await;
    addresses
}

async fn start(db: &Arc<TestDb>, smtp_url: Option<&str>) -> LambdaFunction {
    let mut env = vec![("APP_BASE_URL", BASE_URL)];
    env.extend(smtp_url.map(|url| ("SMTP_URL", url)));
    LambdaFunction::start_on(
        db.clone(),
        Path::new(env!("CARGO_BIN_EXE_mail")),
        "mail",
        &env,
    )
    .await
}

async fn run(function: &LambdaFunction) -> Value {
    match function
        .emulator
        .invoke(&scheduled_event(), Duration::from_secs(30))
        .await
    {
        Outcome::Response(answer) => answer,
        Outcome::Error(error) => panic!("the run failed: {error}"),
    }
}

fn recipient(message: &str) -> String {
    message
        .lines()
        .find_map(|l| l.strip_prefix("To: "))
        .expect("a To: header")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_runs_on_three_instances_send_every_due_message_exactly_once() {
    if !Backend::Postgres.available() {
        return;
    }
    let sink = SmtpSink::start().await;
    let db = LambdaFunction::database().await;
    let addresses = queue_resets(&db, 24).await;
    let url = sink.url();
    let instances = [
        start(&db, Some(&url)).await,
        start(&db, Some(&url)).await,
        start(&db, Some(&url)).await,
    ];
    let answers = run_all(&instances).await;
    let sent: u64 = answers.iter().map(|a| a["sent"].as_u64().unwrap()).sum();
    let failed: u64 = answers.iter().map(|a| a["failed"].as_u64().unwrap()).sum();
    assert_eq!((sent, failed), (24, 0), "{answers:?}");

    let received: Vec<String> = sink.messages().iter().map(|m| recipient(m)).collect();
    assert_eq!(received.len(), 24, "each message once: {received:?}");
    assert_eq!(received.into_iter().collect::<BTreeSet<_>>(), addresses);

    // Nothing is left: the next minute's run sends nothing and sees an empty outbox.
    let next = run(&instances[0]).await;
    assert_eq!(next, json!({"sent": 0, "failed": 0, "outbox_depth": 0}));
    assert_eq!(sink.messages().len(), 24);
}

/// Runs every instance at once.
async fn run_all(instances: &[LambdaFunction]) -> Vec<Value> {
    futures::future::join_all(instances.iter().map(run)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_while_smtp_is_down_counts_the_failures_and_a_later_run_delivers() {
    if !Backend::Postgres.available() {
        return;
    }
    let sink = SmtpSink::start().await;
    sink.set_down(true);
    let db = LambdaFunction::database().await;
    queue_resets(&db, 2).await;
    let function = start(&db, Some(&sink.url())).await;

    let down = run(&function).await;
    assert_eq!(down, json!({"sent": 0, "failed": 2, "outbox_depth": 2}));
    assert!(
        function.process.logs().contains("\"MailFailed\":1"),
        "an EMF line counts each failed attempt: {}",
        function.process.logs()
    );

    // SMTP is back, but each message waits out its back-off: a run now sends nothing.
    sink.set_down(false);
    let waiting = run(&function).await;
    assert_eq!(waiting, json!({"sent": 0, "failed": 0, "outbox_depth": 2}));

    // Once the back-off has passed, the next run delivers both.
    db.raw_statement(
        "UPDATE mail_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'",
        "UPDATE mail_outbox SET next_attempt_at = now() - interval '1 second'",
    )
    .await;
    let back = run(&function).await;
    assert_eq!(back, json!({"sent": 2, "failed": 0, "outbox_depth": 0}));
    assert_eq!(sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_a_run_leaves_the_outbox_alone() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = LambdaFunction::database().await;
    queue_resets(&db, 1).await;
    let function = start(&db, None).await;
    let answer = run(&function).await;
    assert_eq!(
        answer,
        json!({"sent": 0, "failed": 0, "outbox_depth": null})
    );

    // The message is still there for a function that can send it.
    let sink = SmtpSink::start().await;
    let sender = start(&db, Some(&sink.url())).await;
    assert_eq!(
        run(&sender).await,
        json!({"sent": 1, "failed": 0, "outbox_depth": 0})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_without_its_database_fails_the_invocation() {
    let sink = SmtpSink::start().await;
    let emulator = RuntimeEmulator::start().await;
    let smtp = sink.url();
    let env = [
        // Port 1 is closed.
        ("DATABASE_URL", "postgres://app@127.0.0.1:1/app"),
        // The run gives up on the database after this long (3 s by default).
        ("DB_ACQUIRE_TIMEOUT_MS", "300"),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", TEST_PEPPER),
        ("SMTP_URL", smtp.as_str()),
        ("APP_BASE_URL", BASE_URL),
        ("RUST_LOG", "warn"),
    ];
    let _process = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_mail")),
        &emulator,
        "mail",
        &env,
    );
    match emulator
        .invoke(&scheduled_event(), Duration::from_secs(30))
        .await
    {
        Outcome::Error(error) => assert!(
            error.to_string().contains("database unavailable"),
            "the error says what failed: {error}"
        ),
        Outcome::Response(answer) => panic!("a run without its database succeeded: {answer}"),
    }
}

#[test]
fn the_template_runs_the_mail_function_every_minute_without_a_route_or_retries() {
    let template = shared::testing::template::template();
    let function = &template["Resources"]["MailFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("mail")
    );
    let properties = &function["Properties"];
    let events = properties["Events"]
        .as_hash()
        .expect("the function has events");
    assert_eq!(events.len(), 1, "one event: the schedule");
    let (_, schedule) = events.iter().next().unwrap();
    assert_eq!(schedule["Type"].as_str(), Some("Schedule"));
    assert_eq!(
        schedule["Properties"]["Schedule"].as_str(),
        Some("rate(1 minute)")
    );
    let routes = shared::testing::template::HttpApiRoutes::from_template(&template);
    assert!(routes.routes().iter().all(|r| r.function != "mail"));
    assert_eq!(
        properties["EventInvokeConfig"]["MaximumRetryAttempts"].as_i64(),
        Some(0),
        "the next run takes what a failed one left"
    );
    // A run stops before its deadline only if the deadline leaves room for an attempt, and
    // runs may overlap but not pile up.
    let timeout = properties["Timeout"].as_i64().unwrap();
    let attempt = i64::try_from(shared::mail::ATTEMPT_TIMEOUT.as_secs()).unwrap();
    assert!((2 * attempt..60).contains(&timeout), "Timeout {timeout} s");
    for variable in ["SMTP_URL", "MAIL_FROM", "APP_BASE_URL"] {
        assert!(
            !properties["Environment"]["Variables"][variable].is_badvalue(),
            "the mail function needs {variable}"
        );
    }
    assert_eq!(function["DependsOn"].as_str(), Some("Migrations"));
}
