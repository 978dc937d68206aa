//! Traces, from outside: the built local server and Lambda binaries, configured only by the
//! standard OpenTelemetry variables, export to an in-process OTLP/HTTP receiver. A request
//! that brings a trace context (W3C `traceparent`, or under Lambda the invocation's X-Ray
//! header) is found there as a server span in that trace, with its statements, password
//! hashing and log lines joined to it; without an endpoint nothing is exported and no
//! exporter runs; a collector that is down or hangs never holds an invocation long.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::testing::{
    Backend, TestDb,
    lambda::{FunctionProcess, LambdaFunction, RuntimeEmulator, http_api_event},
    otlp::{OtlpReceiver, ReceivedSpan, closed_port},
};
use support::{Server, binaries::function_binary};

/// The caller's trace, as a W3C `traceparent` names it.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// An X-Ray trace header as Lambda hands it over, and the same trace in OpenTelemetry's form.
const XRAY_HEADER: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const XRAY_ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
const XRAY_TRACE: &str = "5759e988bd862e3fe1be46a994272793";
const XRAY_PARENT: &str = "53995c3f42cd8ad8";
/// A trace X-Ray decided not to sample.
const XRAY_SAMPLED_OUT: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272794;Parent=53995c3f42cd8ad8;Sampled=0";

const PASSWORD: &str = "a traced secret, never in a span";

/// A function binary under `emulator` with its secrets, a database it never reaches unless
/// `env` names one (later entries win), and `env`.
fn traced_function(
    name: &str,
    emulator: &RuntimeEmulator,
    env: &[(&str, &str)],
) -> FunctionProcess {
    let mut all = vec![
        ("DATABASE_URL", "postgres://task:task@127.0.0.1:9/task"),
        ("JWT_SECRET", shared::testing::TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", shared::testing::TEST_PEPPER),
    ];
    all.extend_from_slice(env);
    FunctionProcess::spawn(&function_binary(name), emulator, name, &all)
}

fn traceparent() -> String {
    format!("00-{TRACE}-{CALLER_SPAN}-01")
}

/// Whether the process runs the SDK's batch export thread (`OpenTelemetry.Traces.BatchProcessor`,
/// cut to 15 bytes by the kernel).
fn exporter_thread(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.filter_map(Result::ok).any(|task| {
        std::fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|name| name.starts_with("OpenTelemetry"))
    })
}

fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    found: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let matching: Vec<&ReceivedSpan> = spans.iter().filter(|s| found(s)).collect();
    assert_eq!(matching.len(), 1, "{what}: {matching:#?}\nall: {spans:#?}");
    matching[0]
}

/// What every request's trace must show: the statements (children of `server`, SQL with
/// placeholders, attributes named by the database conventions) and no secret anywhere.
fn assert_statements(spans: &[ReceivedSpan], server: &ReceivedSpan, system: &str, email: &str) {
    let statements: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.attr("db.query.text").is_some())
        .collect();
    // Nothing outside a request (the local server's mail retries) is traced.
    assert!(!statements.is_empty(), "no statement spans: {spans:#?}");
    for statement in &statements {
        assert_eq!(statement.trace_id, server.trace_id, "{statement:#?}");
        assert_eq!(statement.parent_span_id, server.span_id, "{statement:#?}");
        assert_eq!(
            statement.kind, 3,
            "a statement is a client span: {statement:#?}"
        );
        assert_eq!(
            statement.attr("db.system.name"),
            Some(system),
            "{statement:#?}"
        );
        let operation = statement.attr("db.operation.name").unwrap();
        assert!(statement.name.starts_with(operation), "{statement:#?}");
    }
    let insert = statements
        .iter()
        .find(|s| {
            s.attr("db.operation.name") == Some("INSERT")
                && s.attr("db.collection.name") == Some("users")
        })
        .unwrap_or_else(|| panic!("no INSERT INTO users: {statements:#?}"));
    assert_eq!(insert.name, "INSERT users");
    let placeholder = if system == "postgresql" { "$1" } else { "?" };
    assert!(
        insert.attr("db.query.text").unwrap().contains(placeholder),
        "{insert:#?}"
    );
    for span in spans {
        for (key, value) in &span.attributes {
            assert!(
                !value.contains(email) && !value.contains(PASSWORD),
                "a bound value reached span {} ({key} = {value})",
                span.name
            );
        }
    }
}

/// The password hash: a child of the server span, its queue wait and its hashing apart.
fn assert_hashing(spans: &[ReceivedSpan], server: &ReceivedSpan) {
    let hash = one(spans, "password hash", |s| s.name == "password hash");
    assert_eq!(hash.parent_span_id, server.span_id);
    let hashing = one(spans, "password hashing", |s| s.name == "password hashing");
    assert_eq!(hashing.parent_span_id, hash.span_id);
    let queue = one(spans, "password hash queue", |s| {
        s.name == "password hash queue"
    });
    assert_eq!(queue.parent_span_id, hash.span_id);
}

/// The JSON log lines written while serving `request_id`'s request.
fn request_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "request completed")
        .collect()
}

fn register_body(email: &str) -> String {
    json!({"email": email, "password": PASSWORD, "name": "Traced"}).to_string()
}

/// Resource attributes and export headers as the standard variables give them; on
/// Postgres also a service name of its own.
fn a_traced_request_is_one_trace_with_its_statements_and_logs(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(OtlpReceiver::start());
    let db = runtime.block_on(TestDb::new(backend));
    let dir = tempfile::tempdir().unwrap();
    let endpoint = receiver.endpoint();
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=t0p%20secret"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci"),
        ("LOG_FORMAT", "json"),
    ];
    if backend == Backend::Postgres {
        env.push(("OTEL_SERVICE_NAME", "tasks-eu"));
    }
    env.extend_from_slice(shared::testing::database_env());
    let mut server = Server::start(dir.path(), &env, &[]);
    assert!(
        exporter_thread(server.child.id()),
        "no export thread with an endpoint set"
    );

    let email = format!("traced-{backend}@example.com");
    let body = register_body(&email);
    let tp = traceparent();
    let r = support::request(
        server.port,
        "POST",
        "/v1/auth/register",
        &[
            ("content-type", "application/json"),
            ("traceparent", &tp),
            ("user-agent", "traces-test/1.0"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Shutdown hands the batch to the collector.
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(20)).success());

    let spans = receiver.spans();
    let root = one(&spans, "the server span", |s| s.kind == 2);
    assert_eq!(root.name, "POST /v1/auth/register");
    assert_eq!(root.trace_id, TRACE);
    assert_eq!(root.parent_span_id, CALLER_SPAN);
    let service = match backend {
        Backend::Postgres => "tasks-eu",
        Backend::Sqlite => "task-api",
    };
    assert_eq!(root.service_name.as_deref(), Some(service));
    assert_eq!(
        root.resource
            .get("deployment.environment.name")
            .map(String::as_str),
        Some("ci")
    );
    assert_eq!(root.attr("user_agent.original"), Some("traces-test/1.0"));
    let exports = receiver.exports();
    assert!(!exports.is_empty());
    for headers in &exports {
        assert_eq!(headers.get("x-api-key").unwrap(), "t0p secret");
        assert_eq!(
            headers.get("content-type").unwrap(),
            "application/x-protobuf"
        );
    }
    assert_eq!(root.attr("http.request.method"), Some("POST"));
    assert_eq!(root.attr("http.route"), Some("/v1/auth/register"));
    assert_eq!(root.attr("url.path"), Some("/v1/auth/register"));
    assert_eq!(root.attr("http.response.status_code"), Some("201"));
    assert_eq!(root.attr("client.address"), Some("127.0.0.1"));
    assert_eq!(root.status, 0, "a 201 is no error");
    assert!(root.attr("faas.invocation_id").is_none());
    let system = match backend {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    };
    assert_statements(&spans, root, system, &email);
    assert_hashing(&spans, root);
    assert!(spans.iter().all(|s| s.trace_id == TRACE), "{spans:#?}");
    // In development the verification mail is queued in the user's transaction.
    let transaction = one(&spans, "the transaction", |s| s.name == "transaction");
    assert_eq!(transaction.parent_span_id, root.span_id);
    assert_eq!(transaction.attr("db.system.name"), Some(system));

    let lines: Vec<String> = server.log.try_iter().collect();
    let logged = request_lines(&lines);
    assert_eq!(logged.len(), 1, "{lines:#?}");
    assert_eq!(logged[0]["trace_id"], TRACE, "{}", logged[0]);
    assert_eq!(logged[0]["span_id"].as_str(), Some(root.span_id.as_str()));
    assert!(logged[0].get("xray_trace_id").is_none());
}

#[test]
fn a_traced_request_is_one_trace_with_its_statements_and_logs_sqlite() {
    a_traced_request_is_one_trace_with_its_statements_and_logs(Backend::Sqlite);
}

#[test]
fn a_traced_request_is_one_trace_with_its_statements_and_logs_postgres() {
    if !Backend::Postgres.available() {
        return;
    }
    a_traced_request_is_one_trace_with_its_statements_and_logs(Backend::Postgres);
}

#[test]
fn without_an_endpoint_nothing_is_exported_and_no_exporter_runs() {
    let dir = tempfile::tempdir().unwrap();
    // Other OTEL variables set, the endpoint not: still nothing. (With one, the first test
    // finds the thread: this check can fail.)
    let mut server = Server::start(
        dir.path(),
        &[
            ("LOG_FORMAT", "json"),
            ("OTEL_SERVICE_NAME", "not-exported"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ],
        &[],
    );
    let tp = traceparent();
    let r = support::request(server.port, "GET", "/ready", &[("traceparent", &tp)], b"");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        !exporter_thread(server.child.id()),
        "an export thread runs without an endpoint"
    );
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(20));
    let lines: Vec<String> = server.log.try_iter().collect();
    assert!(status.success(), "{status:?}: {lines:#?}");

    // The log still names the caller's trace, so logs join the caller's traces.
    let logged = request_lines(&lines);
    assert_eq!(logged.len(), 1, "{lines:#?}");
    assert_eq!(logged[0]["trace_id"], TRACE, "{}", logged[0]);
    assert!(logged[0].get("span_id").is_none(), "{}", logged[0]);
}

#[test]
fn an_unusable_exporter_setting_stops_the_server_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
    for env in [
        vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318",
        )],
        vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "not a url")],
        vec![(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "ftp://127.0.0.1/v1/traces",
        )],
        vec![("OTEL_TRACES_SAMPLER", "sometimes")],
        vec![
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ],
        vec![("OTEL_PROPAGATORS", "tracecontext,b3")],
        vec![endpoint, ("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign")],
        vec![endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")],
        vec![("OTEL_LAMBDA_FLUSH_TIMEOUT_MS", "0")],
    ] {
        let (name, value) = env[env.len() - 1];
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .args(["--port", "0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name}={value} was accepted: the server kept running");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!status.success(), "{name}={value} was accepted");
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// The function binaries: the invocation's X-Ray context is the parent, and every span of
/// an invocation is at the collector when its answer is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lambda_invocation_continues_its_xray_trace_and_exports_before_answering() {
    if !Backend::Postgres.available() {
        return;
    }
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let auth = LambdaFunction::start(
        &function_binary("auth"),
        "auth",
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            // The spans must be there with the answer; a loaded machine gets time for that.
            ("OTEL_LAMBDA_FLUSH_TIMEOUT_MS", "5000"),
            ("RUST_LOG", "info"),
        ],
    )
    .await;

    let email = "lambda-traced@example.com";
    let body = register_body(email);
    let event = http_api_event(
        "POST",
        "/v1/auth/register",
        &[("content-type", "application/json")],
        Some(&body),
    );
    let r = auth.invoke_traced(&event, XRAY_HEADER).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // No waiting: the spans came before the answer.
    let spans = receiver.spans();
    let root = one(&spans, "the server span", |s| s.kind == 2);
    assert_eq!(root.name, "POST /v1/auth/register");
    assert_eq!(root.trace_id, XRAY_TRACE);
    assert_eq!(root.parent_span_id, XRAY_PARENT);
    assert_eq!(root.service_name.as_deref(), Some("auth"));
    assert!(
        root.attr("faas.invocation_id")
            .is_some_and(|id| id.starts_with("emulated-"))
    );
    assert_eq!(root.attr("faas.coldstart"), Some("true"));
    assert_statements(&spans, root, "postgresql", email);
    assert_hashing(&spans, root);

    let logs = auth.process.logs();
    let lines: Vec<String> = logs.lines().map(str::to_owned).collect();
    let logged = request_lines(&lines);
    assert_eq!(logged.len(), 1, "{logs}");
    assert_eq!(logged[0]["trace_id"], XRAY_TRACE, "{}", logged[0]);
    assert_eq!(logged[0]["xray_trace_id"], XRAY_ROOT, "{}", logged[0]);
    assert_eq!(logged[0]["span_id"].as_str(), Some(root.span_id.as_str()));

    // The next invocation, in another trace, is no cold start and carries its own ids.
    let other = "Root=1-6759e988-0000000000000000000000aa;Parent=1111111111111111;Sampled=1";
    let r = auth
        .invoke_traced(&http_api_event("GET", "/v1/auth/nope", &[], None), other)
        .await;
    assert_eq!(r.status, 404);
    let second = receiver
        .spans()
        .into_iter()
        .find(|s| s.kind == 2 && s.trace_id == "6759e9880000000000000000000000aa")
        .expect("the second invocation's server span");
    assert_eq!(second.attr("faas.coldstart"), Some("false"));
    assert_eq!(
        second.status, 0,
        "a 404 is the client's error, not the span's"
    );

    // A request that brings a W3C trace continues it, not the invocation's X-Ray trace.
    let tp = traceparent();
    let r = auth
        .invoke_traced(
            &http_api_event("GET", "/v1/auth/me", &[("traceparent", tp.as_str())], None),
            XRAY_HEADER,
        )
        .await;
    assert_eq!(r.status, 401);
    let third = receiver
        .spans()
        .into_iter()
        .find(|s| s.kind == 2 && s.trace_id == TRACE)
        .expect("the traceparent's trace");
    assert_eq!(third.parent_span_id, CALLER_SPAN);
    assert_eq!(third.name, "GET /v1/auth/me");

    // A login for an unknown address answers 401 right after its (dummy) hash: the hashing
    // thread's spans have ended by then, and are at the collector with the answer.
    let unknown = "Root=1-6759e988-0000000000000000000000cc;Parent=3333333333333333;Sampled=1";
    let body = json!({"email": "nobody@example.com", "password": PASSWORD}).to_string();
    let login = http_api_event(
        "POST",
        "/v1/auth/login",
        &[("content-type", "application/json")],
        Some(&body),
    );
    let r = auth.invoke_traced(&login, unknown).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let spans: Vec<ReceivedSpan> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == "6759e9880000000000000000000000cc")
        .collect();
    let root = one(&spans, "the login's server span", |s| s.kind == 2);
    assert_hashing(&spans, root);
}

/// A 5xx marks the server span as an error; a sampled-out X-Ray context exports nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_marks_the_span_and_an_unsampled_invocation_exports_nothing() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let emulator = RuntimeEmulator::start().await;
    // A database nothing listens on: `/ready` answers 503.
    let database = format!("postgres://task:task@127.0.0.1:{}/task", closed_port());
    let health = traced_function(
        "health",
        &emulator,
        &[
            ("DATABASE_URL", database.as_str()),
            ("DB_ACQUIRE_TIMEOUT_MS", "300"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_LAMBDA_FLUSH_TIMEOUT_MS", "5000"),
        ],
    );
    let ready = http_api_event("GET", "/ready", &[], None);
    let outcome = emulator
        .invoke_traced(&ready, XRAY_HEADER, Duration::from_secs(30))
        .await;
    let r = shared::testing::lambda::LambdaResponse::from_outcome(outcome);
    assert_eq!(r.status, 503, "{}", r.body);
    let spans = receiver.spans();
    let root = one(&spans, "the server span", |s| s.kind == 2);
    assert_eq!(root.name, "GET /ready");
    assert_eq!(root.status, 2, "a 503 is an error: {root:#?}");
    assert_eq!(root.attr("error.type"), Some("503"));
    assert_eq!(root.attr("http.response.status_code"), Some("503"));
    let acquire = one(&spans, "the failed acquire", |s| {
        s.name == "acquire connection"
    });
    assert_eq!(acquire.status, 2, "{acquire:#?}");
    assert_eq!(acquire.parent_span_id, root.span_id);

    // X-Ray did not sample the next one: the function follows its decision. A sampled
    // invocation after it is the sync point: had the sampled-out one recorded spans, this
    // one's flush would have sent them.
    let outcome = emulator
        .invoke_traced(&ready, XRAY_SAMPLED_OUT, Duration::from_secs(30))
        .await;
    let r = shared::testing::lambda::LambdaResponse::from_outcome(outcome);
    assert_eq!(r.status, 503, "{}", r.body);
    let sync = "Root=1-6759e988-0000000000000000000000bb;Parent=2222222222222222;Sampled=1";
    let outcome = emulator
        .invoke_traced(&ready, sync, Duration::from_secs(30))
        .await;
    let r = shared::testing::lambda::LambdaResponse::from_outcome(outcome);
    assert_eq!(r.status, 503, "{}", r.body);
    let spans = receiver.spans();
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == "6759e9880000000000000000000000bb"),
        "{spans:#?}"
    );
    assert!(
        !spans
            .iter()
            .any(|s| s.trace_id == "5759e988bd862e3fe1be46a994272794"),
        "a sampled-out invocation was exported: {spans:#?}"
    );
    drop(health);
}

/// A collector that is down, or that takes the connection and never answers: every
/// invocation still answers, each within a bound far below the export timeout (30 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_or_hanging_collector_costs_each_invocation_a_bounded_time() {
    let hanging = OtlpReceiver::hanging().await;
    let endpoints = [
        ("down", format!("http://127.0.0.1:{}", closed_port())),
        ("hanging", hanging.endpoint()),
    ];
    for (what, endpoint) in &endpoints {
        let emulator = RuntimeEmulator::start().await;
        let health = traced_function(
            "health",
            &emulator,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000"),
            ],
        );
        let probe = http_api_event("GET", "/health", &[], None);
        // The first invocation also pays the process's start.
        let outcome = emulator
            .invoke_traced(&probe, XRAY_HEADER, Duration::from_secs(30))
            .await;
        assert_eq!(
            shared::testing::lambda::LambdaResponse::from_outcome(outcome).status,
            200
        );
        let mut took = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let outcome = emulator
                .invoke_traced(&probe, XRAY_HEADER, Duration::from_secs(30))
                .await;
            took.push(started.elapsed());
            let r = shared::testing::lambda::LambdaResponse::from_outcome(outcome);
            assert_eq!(r.status, 200, "{what}: {}", r.body);
        }
        // The flush waits 50 ms at most (the default). Each invocation is far below the
        // 30 s an export could wait (or the SDK's own 5 s flush), with room for a busy
        // machine; the fastest, whatever the load, near the 50 ms.
        assert!(
            took.iter().all(|t| *t < Duration::from_secs(3)),
            "{what}: {took:?}"
        );
        let fastest = took.iter().min().unwrap();
        assert!(*fastest < Duration::from_millis(300), "{what}: {took:?}");
        drop(health);
    }
}

/// The `mail` function's runs are traced too, under the invocation's X-Ray context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_run_is_a_span_in_its_invocations_trace() {
    let receiver = OtlpReceiver::start().await;
    let endpoint = receiver.endpoint();
    let emulator = RuntimeEmulator::start().await;
    let mail = traced_function(
        "mail",
        &emulator,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_LAMBDA_FLUSH_TIMEOUT_MS", "5000"),
        ],
    );
    let outcome = emulator
        .invoke_traced(
            &json!({"source": "aws.events"}),
            XRAY_HEADER,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        matches!(outcome, shared::testing::lambda::Outcome::Response(_)),
        "{outcome:?}"
    );
    let spans = receiver.spans();
    let run = one(&spans, "the mail run", |s| s.name == "mail run");
    assert_eq!(run.trace_id, XRAY_TRACE);
    assert_eq!(run.parent_span_id, XRAY_PARENT);
    assert_eq!(run.kind, 2);
    assert_eq!(run.attr("faas.trigger"), Some("timer"));
    drop(mail);
}

/// Trace headers and request parts a client controls cannot break a request or bloat a
/// span: a malformed `traceparent` starts a new trace, an oversized `tracestate` is not
/// kept, a long user agent and path are cut, and an invented method does not name spans.
#[test]
fn hostile_trace_headers_are_ignored_or_bounded() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(OtlpReceiver::start());
    let dir = tempfile::tempdir().unwrap();
    let endpoint = receiver.endpoint();
    let mut server = Server::start(
        dir.path(),
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        &[],
    );
    let agent = format!("Mozilla/5.0 {}", "x".repeat(3_000));
    let state = (0..32)
        .map(|i| format!("k{i}={}", "v".repeat(200)))
        .collect::<Vec<_>>()
        .join(",");
    let long_path = format!("/v1/{}", "a".repeat(3_000));
    let tp = traceparent();
    let garbage = [
        ("traceparent", "00-zzzz-not-a-trace-01"),
        ("user-agent", agent.as_str()),
        ("baggage", "k=v;;;==,,,===;x"),
    ];
    let r = support::request(server.port, "GET", "/health", &garbage, b"");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = support::request(
        server.port,
        "GET",
        &long_path,
        &[("traceparent", tp.as_str()), ("tracestate", state.as_str())],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = support::request(server.port, "FOO", "/health", &[], b"");
    assert!((400..500).contains(&r.status), "{}", r.status);
    server.sigterm();
    assert!(server.wait_exit(Duration::from_secs(20)).success());

    let spans = receiver.spans();
    let servers: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == 2).collect();
    assert_eq!(servers.len(), 3, "{spans:#?}");
    let health = one(&spans, "GET /health", |s| s.name == "GET /health");
    assert!(
        health.parent_span_id.is_empty(),
        "a malformed traceparent was followed"
    );
    let cut = health.attr("user_agent.original").unwrap();
    assert!(
        cut.len() == 256 && cut.starts_with("Mozilla/5.0 x"),
        "{}",
        cut.len()
    );
    let missing = one(&spans, "the 404", |s| s.trace_id == TRACE);
    assert_eq!(missing.name, "GET");
    assert_eq!(missing.parent_span_id, CALLER_SPAN);
    assert!(
        missing.trace_state.is_empty(),
        "an oversized tracestate was kept"
    );
    assert!(missing.attr("url.path").unwrap().len() <= 1024);
    let invented = one(&spans, "FOO", |s| {
        s.attr("http.request.method") == Some("_OTHER")
    });
    assert!(!invented.name.contains("FOO"), "{}", invented.name);
}
