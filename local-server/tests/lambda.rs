//! The function binaries as Lambda processes, driven through the runtime-API emulator:
//! cold-start behaviour, event formats, Lambda-only behaviour, and parity with the local
//! server through the HTTP API routes `template.yaml` declares.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::testing::{
    Backend,
    lambda::{
        FunctionProcess, Gateway, HttpRequestSpec, LambdaFunction, LambdaResponse, RuntimeEmulator,
    },
};
use support::binaries::{FUNCTIONS, function_binary};

const SECRETS: [(&str, &str); 2] = [
    ("JWT_SECRET", shared::testing::TEST_JWT_SECRET),
    ("PASSWORD_PEPPER", shared::testing::TEST_PEPPER),
];

/// A "database" that accepts connections and never says a word.
async fn blackhole() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_asks_for_work_quickly_without_touching_the_database() {
    let (port, hole) = blackhole().await;
    let url = format!("postgres://app:secret@127.0.0.1:{port}/app");
    for name in FUNCTIONS {
        let emulator = RuntimeEmulator::start().await;
        let mut env = SECRETS.to_vec();
        env.push(("DATABASE_URL", &url));
        let process = FunctionProcess::spawn(&function_binary(name), &emulator, name, &env);
        let first = emulator
            .wait_first_next(Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("{name} never asked for work"));
        let init = first - process.started;
        assert!(
            init < Duration::from_millis(200),
            "{name}: first /next after {init:?}"
        );
        assert!(
            emulator.init_error().is_none(),
            "{name} reported an init error"
        );

        if name == "health" {
            let call = |path: &'static str| {
                let emulator = &emulator;
                async move {
                    let event = shared::testing::lambda::http_api_event("GET", path, &[], None);
                    let started = Instant::now();
                    let outcome = emulator.invoke(&event, Duration::from_secs(10)).await;
                    (LambdaResponse::from_outcome(outcome), started.elapsed())
                }
            };
            let (health, _) = call("/health").await;
            assert_eq!(health.status, 200);
            let (ready, took) = call("/ready").await;
            assert_eq!(ready.status, 503, "{}", ready.body);
            assert_eq!(ready.json()["code"], "service_unavailable");
            assert!(took < Duration::from_millis(2500), "/ready took {took:?}");
        }
        drop(process);
    }
    hole.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_without_its_secrets_stops_at_init_naming_the_variable() {
    let emulator = RuntimeEmulator::start().await;
    let mut process = FunctionProcess::spawn(
        &function_binary("health"),
        &emulator,
        "health",
        &[("DATABASE_URL", "postgres://db/app")],
    );
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = process.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the function kept running");
            std::thread::sleep(Duration::from_millis(10));
        }
    })
    .await
    .unwrap();
    assert!(!status.success());
    assert_eq!(emulator.next_calls(), 0, "it must not ask for work");
}

fn spec_register(email: &str, base64: bool) -> HttpRequestSpec {
    HttpRequestSpec::new("POST", "/v1/auth/register").json(
        &json!({"email": email, "password": "pässwörd ünïcödé 🦀", "name": "Zoë ✓ 名前"}),
        base64,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_format_reaches_the_right_function() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = LambdaFunction::database().await;
    let auth = LambdaFunction::start_on(db.clone(), &function_binary("auth"), "auth", &[]).await;
    let tasks = LambdaFunction::start_on(db.clone(), &function_binary("tasks"), "tasks", &[]).await;
    let health =
        LambdaFunction::start_on(db.clone(), &function_binary("health"), "health", &[]).await;

    type Render = fn(&HttpRequestSpec) -> Value;
    let formats: [(&str, Render); 4] = [
        ("http api v2", |s| s.to_http_api("$default")),
        ("rest api v1, stage in path", |s| s.to_rest_api("prod")),
        ("function url", |s| s.to_function_url()),
        ("alb", |s| s.to_alb()),
    ];
    for (i, (format, render)) in formats.iter().enumerate() {
        // Probes.
        let r = health
            .invoke(&render(&HttpRequestSpec::new("GET", "/health")))
            .await;
        assert_eq!(r.status, 200, "{format}: {}", r.body);
        assert_eq!(r.json(), json!({"status": "ok"}), "{format}");

        // A unicode JSON body, plain for some formats and base64 for others.
        let email = format!("fmt{i}@example.com");
        let r = auth
            .invoke(&render(&spec_register(&email, i % 2 == 1)))
            .await;
        assert_eq!(r.status, 201, "{format}: {}", r.body);
        assert_eq!(r.json()["name"], "Zoë ✓ 名前", "{format}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{format}"
        );

        let login = HttpRequestSpec::new("POST", "/v1/auth/login")
            .json(
                &json!({"email": email, "password": "pässwörd ünïcödé 🦀"}),
                false,
            )
            .cookie("session=ignored")
            .cookie("theme=dark");
        let r = auth.invoke(&render(&login)).await;
        assert_eq!(r.status, 200, "{format}: {}", r.body);
        let token = r.json()["access_token"].as_str().unwrap().to_owned();

        // Multi-value headers (two Accept values), a repeated query key.
        let create = HttpRequestSpec::new("POST", "/v1/tasks")
            .header("authorization", &format!("Bearer {token}"))
            .header("accept", "application/json")
            .header("accept", "application/problem+json")
            .json(
                &json!({"title": format!("ünïcödé task via {format}")}),
                i % 2 == 0,
            );
        let r = tasks.invoke(&render(&create)).await;
        assert_eq!(r.status, 201, "{format}: {}", r.body);
        assert!(
            r.header("location")
                .is_some_and(|l| l.starts_with("/v1/tasks/")),
            "{format}"
        );

        let list = HttpRequestSpec::new("GET", "/v1/tasks")
            .header("authorization", &format!("Bearer {token}"))
            .query("limit", "5")
            .query("sort", "title");
        let r = tasks.invoke(&render(&list)).await;
        assert_eq!(r.status, 200, "{format}: {}", r.body);
        assert_eq!(
            r.json()["items"][0]["title"],
            format!("ünïcödé task via {format}")
        );

        let repeated = HttpRequestSpec::new("GET", "/v1/tasks")
            .header("authorization", &format!("Bearer {token}"))
            .query("limit", "1")
            .query("limit", "2");
        let r = tasks.invoke(&render(&repeated)).await;
        assert_eq!(r.status, 400, "{format}: {}", r.body);
        assert_eq!(r.json()["code"], "invalid_query", "{format}");

        // A route of another function: a 404 problem, not a crash.
        let elsewhere = HttpRequestSpec::new("GET", "/v1/admin/stats")
            .header("authorization", &format!("Bearer {token}"));
        let r = tasks.invoke(&render(&elsewhere)).await;
        assert_eq!(r.status, 404, "{format}: {}", r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{format}"
        );
        assert_eq!(r.json()["code"], "not_found");
        let r = health
            .invoke(&render(&HttpRequestSpec::new("GET", "/v1/tasks")))
            .await;
        assert_eq!(r.status, 404, "{format}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_between_invocations_is_replaced_transparently() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = LambdaFunction::database().await;
    let app_name = format!("stale{}", uuid::Uuid::new_v4().simple());
    let url = shared::testing::with_param(&db.url, "application_name", &app_name);
    let tasks = LambdaFunction::start_on(
        db.clone(),
        &function_binary("tasks"),
        "tasks",
        &[("DATABASE_URL", &url)],
    )
    .await;
    let user = tasks
        .create_user("stale@example.com", shared::models::Role::User)
        .await;
    let bearer = format!("Bearer {}", user.token);
    let first = tasks
        .call("GET", "/v1/tasks", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);

    // As after a freeze: the server side of the pooled connection is gone.
    terminate_backends_of(&app_name).await;

    let second = tasks
        .call("GET", "/v1/tasks", &[("authorization", &bearer)], None)
        .await;
    assert_eq!(second.status, 200, "{}", second.body);
}

/// Ends, server side, every connection of the application named `app_name`.
async fn terminate_backends_of(app_name: &str) {
    let admin_url = std::env::var(shared::testing::POSTGRES_URL_VAR).unwrap();
    let mut conn = shared::testing::pg_connect(&admin_url).await;
    // One simple-protocol message (the name is ours: letters and digits), so also through a
    // proxy.
    assert!(app_name.chars().all(|c| c.is_ascii_alphanumeric()));
    let killed = sqlx::Executor::fetch_all(
        &mut conn,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{app_name}'"
        )
        .as_str(),
    )
    .await
    .unwrap();
    assert!(!killed.is_empty(), "the function held a connection to kill");
}

/// A write is never run twice, so it cannot be retried like a read: a connection that died
/// while idle must be found out before a write is sent on it. The first statement of a
/// registration is a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_while_idle_is_replaced_before_a_write_is_sent_on_it() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = LambdaFunction::database().await;
    let app_name = format!("idle{}", uuid::Uuid::new_v4().simple());
    let url = shared::testing::with_param(&db.url, "application_name", &app_name);
    let auth = LambdaFunction::start_on(
        db.clone(),
        &function_binary("auth"),
        "auth",
        &[("DATABASE_URL", &url)],
    )
    .await;
    let register = |email: &str| {
        json!({"email": email, "password": "a long enough password", "name": "Idle"}).to_string()
    };
    let json = [("content-type", "application/json")];
    let first = auth
        .call(
            "POST",
            "/v1/auth/register",
            &json,
            Some(&register("one@example.com")),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);

    terminate_backends_of(&app_name).await;
    // Idle long enough to be pinged before use, as after a freeze between invocations. The
    // function gave its connection back before it posted the answer above, so by the next
    // invocation it has been idle for longer than this.
    tokio::time::sleep(shared::store::postgres::PING_AFTER_IDLE).await;

    let second = auth
        .call(
            "POST",
            "/v1/auth/register",
            &json,
            Some(&register("two@example.com")),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_with_the_request_id_and_emf_metrics_and_sigterm_exits_cleanly() {
    if !Backend::Postgres.available() {
        return;
    }
    let mut health = LambdaFunction::start(
        &function_binary("health"),
        "health",
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("RUST_LOG", "info")],
    )
    .await;
    let r = health
        .call("GET", "/ready", &[("x-request-id", "log-probe-1")], None)
        .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = health.process.logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["message"] == "request completed")
        .unwrap_or_else(|| panic!("no access log line in:\n{logs}"));
    assert_eq!(access["span"]["request_id"], "log-probe-1", "{access}");
    assert_eq!(access["span"]["route"], "/ready", "{access}");
    assert_eq!(access["status"], 200, "{access}");
    // The same request as CloudWatch Embedded Metric Format: metrics without an endpoint.
    let emf = lines
        .iter()
        .find(|l| l["_aws"]["CloudWatchMetrics"].is_array())
        .unwrap_or_else(|| panic!("no EMF line in:\n{logs}"));
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "TaskApi");
    assert_eq!(emf["Function"], "health", "{emf}");
    assert_eq!(emf["Route"], "/ready", "{emf}");
    assert_eq!(emf["Method"], "GET", "{emf}");
    assert_eq!(emf["Status"], "200", "{emf}");
    assert_eq!(emf["Requests"], 1, "{emf}");
    assert!(emf["Latency"].as_f64().is_some_and(|ms| ms >= 0.0), "{emf}");
    assert!(emf["DbPoolSize"].as_u64().is_some_and(|n| n >= 1), "{emf}");

    let pid = health.process.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let child = &mut health.process.child;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(health.process.logs().contains("closing the database pool"));
}

// --- Parity: one scenario, two shapes -------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    headers: std::collections::BTreeMap<String, String>,
    body: Value,
}

/// The headers that matter, with ids blanked; `x-request-id` only for presence.
fn reply(status: u16, headers: impl Fn(&str) -> Option<String>, body: &str) -> Reply {
    let mut kept = std::collections::BTreeMap::new();
    for name in [
        "content-type",
        "etag",
        "location",
        "retry-after",
        "idempotent-replayed",
        "cache-control",
        "www-authenticate",
        "allow",
        "x-content-type-options",
        "x-frame-options",
        "referrer-policy",
        "content-security-policy",
    ] {
        if let Some(v) = headers(name) {
            kept.insert(
                name.to_owned(),
                blank(&Value::String(v)).as_str().unwrap().to_owned(),
            );
        }
    }
    kept.insert(
        "x-request-id".into(),
        if headers("x-request-id").is_some_and(|v| !v.is_empty()) {
            "present"
        } else {
            "missing"
        }
        .into(),
    );
    let body = if body.is_empty() {
        Value::Null
    } else {
        blank(&serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
    };
    Reply {
        status,
        headers: kept,
        body,
    }
}

/// Replaces what differs between runs: ids, times, tokens, cursors, request ids.
fn blank(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "access_token" | "refresh_token" | "next_cursor" | "request_id"
                        | "git_sha"
                            if !v.is_null() =>
                        {
                            Value::String(format!("<{k}>"))
                        }
                        _ => blank(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(blank).collect()),
        Value::String(s) => {
            let mut out = s.clone();
            for word in s.split('/') {
                if uuid::Uuid::parse_str(word).is_ok() {
                    out = out.replace(word, "<uuid>");
                }
            }
            if shared::models::parse_timestamp(s).is_ok() {
                out = "<time>".into();
            }
            Value::String(out)
        }
        other => other.clone(),
    }
}

enum Shape<'a> {
    Tcp(u16),
    /// The functions behind the HTTP API of `template.yaml`.
    Lambda(&'a Gateway),
}

impl Shape<'_> {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (Reply, Value) {
        let text = body.map(Value::to_string);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if text.is_some() {
            all.push(("content-type", "application/json"));
        }
        match self {
            Shape::Tcp(port) => {
                let (port, method, path) = (*port, method.to_owned(), path.to_owned());
                let owned: Vec<(String, String)> = all
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect();
                let r = tokio::task::spawn_blocking(move || {
                    let refs: Vec<(&str, &str)> = owned
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    support::request(
                        port,
                        &method,
                        &path,
                        &refs,
                        text.as_deref().unwrap_or("").as_bytes(),
                    )
                })
                .await
                .unwrap();
                let raw = if r.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&r.body).unwrap()
                };
                (
                    reply(r.status, |n| r.header(n).map(str::to_owned), &r.body),
                    raw,
                )
            }
            Shape::Lambda(gateway) => {
                let r = gateway.call(method, path, &all, text.as_deref()).await;
                let raw = if r.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&r.body).unwrap()
                };
                (
                    reply(r.status, |n| r.header(n).map(str::to_owned), &r.body),
                    raw,
                )
            }
        }
    }
}

/// register → login → create with an idempotency key (and its replay) → list with a cursor
/// → PATCH with If-Match → stale If-Match 412 → refresh → replayed refresh 401 → admin stats
/// → delete, plus probes and error shapes. Returns the transcript.
async fn scenario(shape: &Shape<'_>) -> Vec<(String, Reply)> {
    let mut transcript = Vec::new();
    macro_rules! step {
        ($name:expr, $method:expr, $path:expr, $headers:expr, $body:expr) => {{
            let (reply, raw) = shape.send($method, $path, $headers, $body).await;
            transcript.push(($name.to_string(), reply));
            raw
        }};
    }
    let password = "parity password 123";
    step!(
        "register",
        "POST",
        "/v1/auth/register",
        &[],
        Some(&json!({"email": "Alice@Example.com", "password": password, "name": "Alice"}))
    );
    step!(
        "register taken",
        "POST",
        "/v1/auth/register",
        &[],
        Some(&json!({"email": "alice@example.com", "password": password, "name": "Alice"}))
    );
    step!(
        "register invalid",
        "POST",
        "/v1/auth/register",
        &[],
        Some(&json!({"email": "nope", "password": "short", "name": ""}))
    );
    let pair = step!(
        "login",
        "POST",
        "/v1/auth/login",
        &[],
        Some(&json!({"email": "alice@example.com", "password": password}))
    );
    let bearer = format!("Bearer {}", pair["access_token"].as_str().unwrap());
    let auth = [("authorization", bearer.as_str())];
    step!("me", "GET", "/v1/auth/me", &auth, None);

    let keyed = [
        ("authorization", bearer.as_str()),
        ("idempotency-key", "parity-1"),
    ];
    let first = step!(
        "create keyed",
        "POST",
        "/v1/tasks",
        &keyed,
        Some(&json!({"title": "Alpha", "due_date": "2026-12-01T10:00:00Z"}))
    );
    step!(
        "create replayed",
        "POST",
        "/v1/tasks",
        &keyed,
        Some(&json!({"title": "Alpha", "due_date": "2026-12-01T10:00:00Z"}))
    );
    step!(
        "create key reused",
        "POST",
        "/v1/tasks",
        &keyed,
        Some(&json!({"title": "Other"}))
    );
    step!(
        "create beta",
        "POST",
        "/v1/tasks",
        &auth,
        Some(&json!({"title": "beta", "completed": true}))
    );
    step!(
        "create gamma",
        "POST",
        "/v1/tasks",
        &auth,
        Some(&json!({"title": "Gamma", "description": "ünïcödé"}))
    );
    let page = step!(
        "list page 1",
        "GET",
        "/v1/tasks?limit=2&sort=title",
        &auth,
        None
    );
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    step!(
        "list page 2",
        "GET",
        &format!("/v1/tasks?limit=2&sort=title&cursor={cursor}"),
        &auth,
        None
    );
    step!(
        "list filtered",
        "GET",
        "/v1/tasks?completed=false&q=A",
        &auth,
        None
    );
    step!("list bad limit", "GET", "/v1/tasks?limit=0", &auth, None);

    let task = format!("/v1/tasks/{}", first["id"].as_str().unwrap());
    let v1 = [("authorization", bearer.as_str()), ("if-match", "\"1\"")];
    step!(
        "patch with if-match",
        "PATCH",
        &task,
        &v1,
        Some(&json!({"completed": true, "description": null}))
    );
    step!(
        "patch stale if-match",
        "PATCH",
        &task,
        &v1,
        Some(&json!({"title": "Late"}))
    );
    step!("get task", "GET", &task, &auth, None);

    let admin = step!(
        "admin login",
        "POST",
        "/v1/auth/login",
        &[],
        Some(&json!({"email": "root@example.com", "password": "root password 1234"}))
    );
    let admin_bearer = format!("Bearer {}", admin["access_token"].as_str().unwrap());
    step!(
        "admin stats",
        "GET",
        "/v1/admin/stats",
        &[("authorization", admin_bearer.as_str())],
        None
    );
    step!("admin forbidden", "GET", "/v1/admin/stats", &auth, None);

    step!("delete", "DELETE", &task, &auth, None);
    step!("get deleted", "GET", &task, &auth, None);
    step!("no token", "GET", "/v1/tasks", &[], None);
    // Last of the user's steps: a replayed refresh token ends the whole session, its
    // access tokens included.
    let refreshed = step!(
        "refresh",
        "POST",
        "/v1/auth/refresh",
        &[],
        Some(&json!({"refresh_token": pair["refresh_token"]}))
    );
    assert!(refreshed["access_token"].is_string());
    step!(
        "refresh replayed",
        "POST",
        "/v1/auth/refresh",
        &[],
        Some(&json!({"refresh_token": pair["refresh_token"]}))
    );
    step!("after reuse", "GET", "/v1/tasks", &auth, None);
    step!("health", "GET", "/health", &[], None);
    step!("ready", "GET", "/ready", &[], None);
    step!("version", "GET", "/version", &[], None);
    // What no route of the template matches, or matches only for another method: API
    // Gateway's $default route, served by a function whose router answers as the local
    // server does.
    step!("wrong method", "DELETE", "/health", &[], None);
    step!("wrong method on a probe", "PUT", "/health", &[], None);
    step!("unknown path", "GET", "/nope", &[], None);
    step!("near miss", "GET", "/v1/tasksx", &auth, None);
    step!("prefix only", "GET", "/v1/admin", &[], None);
    step!("root", "POST", "/", &[], None);
    step!("deep unknown", "GET", "/v1/unknown/a/b?x=1", &[], None);
    // Matched by a greedy or ANY route, answered by that function's router.
    step!("wrong method on me", "DELETE", "/v1/auth/me", &auth, None);
    step!("wrong method on tasks", "PUT", "/v1/tasks", &auth, None);
    step!("unknown admin path", "GET", "/v1/admin/nope", &[], None);
    transcript
}

/// Runs `create-admin` with `env` (the deployment's secrets: the pepper must match).
fn create_admin(dir: &std::path::Path, env: &[(&str, &str)]) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir)
        .args([
            "create-admin",
            "--email",
            "root@example.com",
            "--name",
            "Root",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"root password 1234\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_server_and_the_lambda_functions_answer_alike() {
    if !Backend::Postgres.available() {
        return;
    }
    // The local server, over TCP, on SQLite.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = "sqlite://./parity.db";
    create_admin(dir.path(), &[("DATABASE_URL", sqlite)]);
    let server = support::Server::start(dir.path(), &[("DATABASE_URL", sqlite)], &[]);
    let local = scenario(&Shape::Tcp(server.port)).await;
    drop(server);

    // The functions, through the emulator, on Postgres, routed as template.yaml says.
    let db = LambdaFunction::database().await;
    let mut env = SECRETS.to_vec();
    env.push(("DATABASE_URL", &db.url));
    create_admin(dir.path(), &env);
    let gateway = Gateway::start_on(db.clone(), function_binary).await;
    let lambda = scenario(&Shape::Lambda(&gateway)).await;

    assert_eq!(local.len(), lambda.len());
    for ((step, l), (_, r)) in local.iter().zip(&lambda) {
        assert_eq!(
            l, r,
            "step `{step}` differs:\nlocal server: {l:#?}\nlambda: {r:#?}"
        );
    }
    // The scenario exercised what it claims to.
    let status = |name: &str| local.iter().find(|(s, _)| s == name).unwrap().1.status;
    assert_eq!(status("create replayed"), 201);
    assert_eq!(status("patch stale if-match"), 412);
    assert_eq!(status("refresh replayed"), 401);
    assert_eq!(status("admin stats"), 200);
    assert_eq!(status("delete"), 204);
    assert_eq!(status("after reuse"), 401);
    for step in [
        "unknown path",
        "near miss",
        "prefix only",
        "root",
        "deep unknown",
    ] {
        let reply = &local.iter().find(|(s, _)| s == step).unwrap().1;
        assert_eq!(reply.status, 404, "{step}");
        assert_eq!(reply.body["code"], "not_found", "{step}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        assert_eq!(reply.headers["x-request-id"], "present");
        assert_eq!(reply.headers["x-content-type-options"], "nosniff");
    }
    for step in [
        "wrong method on a probe",
        "wrong method on me",
        "wrong method on tasks",
    ] {
        let reply = &local.iter().find(|(s, _)| s == step).unwrap().1;
        assert_eq!(reply.status, 405, "{step}");
        assert_eq!(reply.body["code"], "method_not_allowed", "{step}");
        assert!(reply.headers.contains_key("allow"), "{step}");
    }
}
