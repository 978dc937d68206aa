//! A Lambda runtime-API emulator for tests, on loopback: just enough of the API that AWS's
//! runtime serves to a function process (`GET …/invocation/next`, `POST …/{id}/response`,
//! `POST …/{id}/error`, `POST …/init/error`) to run the compiled function binaries as child
//! processes, feed them events and read what they answer.
//!
//! It also records when the first `/next` arrives, which is how cold-start tests and
//! benchmarks see that a binary finished its init.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc, oneshot};

/// What a function answered to one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response(Value),
    Error(Value),
}

struct Pending {
    id: String,
    event: Bytes,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Timeline {
    first_next: Option<Instant>,
    init_error: Option<Value>,
}

struct Inner {
    queue: Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    timeline: std::sync::Mutex<Timeline>,
    next_calls: AtomicU64,
}

pub struct RuntimeEmulator {
    addr: SocketAddr,
    sender: mpsc::UnboundedSender<Pending>,
    inner: Arc<Inner>,
    counter: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RuntimeEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for RuntimeEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const PREFIX: &str = "/2018-06-01/runtime";
/// Deadline handed to the function with each invocation.
const INVOCATION_BUDGET: Duration = Duration::from_secs(30);

impl RuntimeEmulator {
    /// Starts the emulator on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the emulator");
        let addr = listener.local_addr().expect("emulator address");
        let (sender, receiver) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            queue: Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            timeline: std::sync::Mutex::new(Timeline::default()),
            next_calls: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(&format!("{PREFIX}/invocation/next"), get(next))
            .route(
                &format!("{PREFIX}/invocation/{{id}}/response"),
                post(response),
            )
            .route(&format!("{PREFIX}/invocation/{{id}}/error"), post(error))
            .route(&format!("{PREFIX}/init/error"), post(init_error))
            .with_state(inner.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            sender,
            inner,
            counter: AtomicU64::new(0),
            server,
        }
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> String {
        self.addr.to_string()
    }

    /// The variables Lambda sets for a function process, pointing at this emulator.
    pub fn lambda_env(&self, function_name: &str) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "test-stream".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Queues `event` and waits for the function's answer.
    pub async fn invoke(&self, event: &Value, timeout: Duration) -> Outcome {
        let id = format!(
            "emulated-{}-{}",
            std::process::id(),
            self.counter.fetch_add(1, Ordering::SeqCst)
        );
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending {
                id,
                event: Bytes::from(event.to_string()),
                reply,
            })
            .expect("the emulator is running");
        tokio::time::timeout(timeout, answer)
            .await
            .expect("the function answered within the timeout")
            .expect("the emulator kept the reply channel")
    }

    /// When the function first asked for work, if it has.
    pub fn first_next_at(&self) -> Option<Instant> {
        self.inner
            .timeline
            .lock()
            .expect("timeline lock")
            .first_next
    }

    /// Waits until the function has asked for work.
    pub async fn wait_first_next(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(at) = self.first_next_at() {
                return Some(at);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    }

    pub fn init_error(&self) -> Option<Value> {
        self.inner
            .timeline
            .lock()
            .expect("timeline lock")
            .init_error
            .clone()
    }

    pub fn next_calls(&self) -> u64 {
        self.inner.next_calls.load(Ordering::SeqCst)
    }
}

async fn next(State(inner): State<Arc<Inner>>) -> impl IntoResponse {
    {
        let mut timeline = inner.timeline.lock().expect("timeline lock");
        timeline.first_next.get_or_insert_with(Instant::now);
    }
    inner.next_calls.fetch_add(1, Ordering::SeqCst);
    let pending = inner.queue.lock().await.recv().await;
    let Some(pending) = pending else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    inner
        .in_flight
        .lock()
        .await
        .insert(pending.id.clone(), pending.reply);
    let deadline = SystemTime::now()
        .checked_add(INVOCATION_BUDGET)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    put("lambda-runtime-aws-request-id", pending.id.clone());
    put("lambda-runtime-deadline-ms", deadline.to_string());
    put(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:emulated".to_owned(),
    );
    put(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".to_owned(),
    );
    put("content-type", "application/json".to_owned());
    (StatusCode::OK, headers, pending.event)
}

async fn finish(inner: &Inner, id: &str, outcome: Outcome) -> StatusCode {
    match inner.in_flight.lock().await.remove(id) {
        Some(reply) => {
            let _ = reply.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn response(
    State(inner): State<Arc<Inner>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    finish(&inner, &id, Outcome::Response(value)).await
}

async fn error(
    State(inner): State<Arc<Inner>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    finish(&inner, &id, Outcome::Error(value)).await
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inner.timeline.lock().expect("timeline lock").init_error = Some(value);
    StatusCode::ACCEPTED
}

/// A function binary running as a child process against an emulator; killed on drop.
/// Its standard output (the function's logs) is kept in a file.
#[derive(Debug)]
pub struct FunctionProcess {
    pub child: Child,
    pub started: Instant,
    stdout: tempfile::NamedTempFile,
}

impl FunctionProcess {
    /// Starts `binary` with only the Lambda variables plus `env` (nothing inherited).
    pub fn spawn(
        binary: &Path,
        emulator: &RuntimeEmulator,
        function_name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let stdout = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(emulator.lambda_env(function_name))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout.reopen().expect("reopening the log file"))
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let child = command.spawn().expect("starting the function binary");
        Self {
            child,
            started,
            stdout,
        }
    }

    /// Everything the function has written to standard output so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.stdout.path()).unwrap_or_default()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway builds it.
pub fn http_api_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let header_map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String((*v).to_owned())))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "emulated",
            "domainName": "emulated.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "emulated",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "task-api-tests"
            },
            "requestId": format!("apigw-{}", uuid::Uuid::now_v7()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:10:15:00 +0000",
            "timeEpoch": 1_795_255_700_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// An HTTP response as a function returns it to API Gateway.
#[derive(Debug, Clone)]
pub struct LambdaResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl LambdaResponse {
    /// Reads the function's answer; panics on a function error.
    pub fn from_outcome(outcome: Outcome) -> Self {
        let value = match outcome {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("the function reported an error: {e}"),
        };
        let status = value["statusCode"].as_u64().expect("statusCode") as u16;
        let mut headers = HashMap::new();
        if let Some(map) = value["headers"].as_object() {
            for (k, v) in map {
                headers.insert(k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned());
            }
        }
        if let Some(map) = value["multiValueHeaders"].as_object() {
            for (k, v) in map {
                let joined = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                headers.entry(k.to_ascii_lowercase()).or_insert(joined);
            }
        }
        let raw = value["body"].as_str().unwrap_or("").to_owned();
        let body = if value["isBase64Encoded"].as_bool().unwrap_or(false) {
            String::from_utf8(STANDARD.decode(raw).expect("base64 body")).expect("UTF-8 body")
        } else {
            raw
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A compiled function binary under the emulator, on a fresh migrated Postgres schema
/// (the Lambda binaries carry Postgres only).
pub struct LambdaFunction {
    // Fields drop in order: the process is killed before its emulator goes away, so it never
    // sees the runtime API vanish under a pending `/next`.
    pub process: FunctionProcess,
    pub emulator: RuntimeEmulator,
    pub db: Arc<super::TestDb>,
}

impl std::fmt::Debug for LambdaFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaFunction").finish_non_exhaustive()
    }
}

impl LambdaFunction {
    /// A fresh migrated Postgres schema for functions to share.
    /// Call only after `Backend::Postgres.available()`.
    pub async fn database() -> Arc<super::TestDb> {
        let db = super::TestDb::new(super::Backend::Postgres).await;
        let config = super::test_config(&db.url, &[]);
        let store = crate::store::connect_lazy(&config.db).expect("building the store");
        store.migrate().await.expect("migrating the test schema");
        store.close().await;
        Arc::new(db)
    }

    /// Starts `binary` on a database of its own.
    /// Call only after `Backend::Postgres.available()`.
    pub async fn start(binary: &Path, function_name: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::start_on(Self::database().await, binary, function_name, extra_env).await
    }

    /// Starts `binary` on `db` (shared with other functions).
    pub async fn start_on(
        db: Arc<super::TestDb>,
        binary: &Path,
        function_name: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let emulator = RuntimeEmulator::start().await;
        let mut env: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", db.url.as_str()),
            ("JWT_SECRET", super::TEST_JWT_SECRET),
            ("PASSWORD_PEPPER", super::TEST_PEPPER),
            ("RUST_LOG", "warn"),
        ];
        env.extend_from_slice(extra_env);
        let process = FunctionProcess::spawn(binary, &emulator, function_name, &env);
        Self {
            process,
            emulator,
            db,
        }
    }

    /// Creates a user in the function's database, with a token the function accepts.
    pub async fn create_user(&self, email: &str, role: crate::models::Role) -> super::TestUser {
        let state = crate::AppState::new(super::test_config(&self.db.url, &[]))
            .expect("building a state for the function's database");
        let user = super::create_user(&state, email, role).await;
        state.store.close().await;
        user
    }

    /// Sends one HTTP API (v2) request through the function.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> LambdaResponse {
        let event = http_api_event(method, path, headers, body);
        self.invoke(&event).await
    }

    /// Sends any event through the function and reads its HTTP answer.
    pub async fn invoke(&self, event: &Value) -> LambdaResponse {
        LambdaResponse::from_outcome(self.emulator.invoke(event, Duration::from_secs(30)).await)
    }
}

/// The template's HTTP API in front of the function binaries: one instance of each routed
/// function on one database, requests routed as API Gateway routes them
/// ([`super::template::HttpApiRoutes`]).
pub struct Gateway {
    routes: super::template::HttpApiRoutes,
    functions: BTreeMap<String, LambdaFunction>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("functions", &self.functions.keys())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts every function `template.yaml` routes to, on `db`; `binary` gives the path
    /// of a function's compiled binary from its name.
    pub async fn start_on(db: Arc<super::TestDb>, binary: impl Fn(&str) -> PathBuf) -> Self {
        let routes = super::template::HttpApiRoutes::from_workspace_template();
        let routed: BTreeSet<String> = routes
            .routes()
            .iter()
            .map(|r| r.function.clone())
            .chain(routes.default_function().map(str::to_owned))
            .collect();
        let mut functions = BTreeMap::new();
        for name in routed {
            let function = LambdaFunction::start_on(db.clone(), &binary(&name), &name, &[]).await;
            functions.insert(name, function);
        }
        Self { routes, functions }
    }

    /// Sends one request through the HTTP API: to the function of the route API Gateway
    /// would select (with its route key and path parameters in the event), or, when no
    /// route matches, API Gateway's own 404.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> LambdaResponse {
        let raw_path = path.split_once('?').map_or(path, |(p, _)| p);
        let Some(selected) = self.routes.select(method, raw_path) else {
            let (status, body) = super::template::gateway_not_found();
            return LambdaResponse {
                status,
                headers: HashMap::from([(
                    "content-type".to_owned(),
                    "application/json".to_owned(),
                )]),
                body: body.to_string(),
            };
        };
        let mut event = http_api_event(method, path, headers, body);
        event["routeKey"] = Value::String(selected.route_key.clone());
        event["requestContext"]["routeKey"] = Value::String(selected.route_key);
        if !selected.path_parameters.is_empty() {
            event["pathParameters"] = json!(selected.path_parameters);
        }
        self.functions[&selected.function].invoke(&event).await
    }
}

/// One HTTP request, to be rendered as any of the event formats API Gateway, Function URLs
/// and ALB hand to a function.
#[derive(Debug, Clone, Default)]
pub struct HttpRequestSpec {
    pub method: String,
    pub path: String,
    /// In order; a key may repeat.
    pub query: Vec<(String, String)>,
    /// In order; a name may repeat.
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub base64: bool,
}

impl HttpRequestSpec {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookies.push(cookie.to_owned());
        self
    }

    pub fn json(mut self, body: &Value, base64: bool) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.base64 = base64;
        self.header("content-type", "application/json")
    }

    fn body_field(&self) -> Value {
        match &self.body {
            None => Value::Null,
            Some(b) if self.base64 => Value::String(STANDARD.encode(b)),
            Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        }
    }

    fn raw_query(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Single-value maps join repeated values with commas, as API Gateway v2 does.
    fn joined(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            match map.get_mut(k) {
                Some(Value::String(existing)) => {
                    existing.push(',');
                    existing.push_str(v);
                }
                _ => {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        map
    }

    /// Multi-value maps, as REST APIs and ALB (in multi-value mode) send them.
    fn multi(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            let entry = map.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(values) = entry {
                values.push(Value::String(v.clone()));
            }
        }
        map
    }

    fn last_values(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }

    /// API Gateway HTTP API, payload format 2.0, on `stage`.
    pub fn to_http_api(&self, stage: &str) -> Value {
        let path = if stage == "$default" {
            self.path.clone()
        } else {
            format!("/{stage}{}", self.path)
        };
        let mut event = http_api_event(&self.method, &path, &[], None);
        event["rawQueryString"] = Value::String(self.raw_query());
        if !self.query.is_empty() {
            event["queryStringParameters"] = Value::Object(Self::joined(&self.query));
        }
        event["headers"] = Value::Object(Self::joined(&self.headers));
        if !self.cookies.is_empty() {
            event["cookies"] = json!(self.cookies);
        }
        event["requestContext"]["stage"] = Value::String(stage.to_owned());
        event["body"] = self.body_field();
        event["isBase64Encoded"] = Value::Bool(self.base64);
        event
    }

    /// A Lambda Function URL event (payload 2.0, no stage).
    pub fn to_function_url(&self) -> Value {
        let mut event = self.to_http_api("$default");
        event["requestContext"]["domainName"] =
            Value::String("abcdefg.lambda-url.us-east-1.on.aws".into());
        event["requestContext"]["domainPrefix"] = Value::String("abcdefg".into());
        event["requestContext"]["apiId"] = Value::String("abcdefg".into());
        event
    }

    /// API Gateway REST API (payload 1.0) on a named `stage`, the stage in the path.
    pub fn to_rest_api(&self, stage: &str) -> Value {
        let mut headers = self.headers.clone();
        if !self.cookies.is_empty() {
            headers.push(("cookie".into(), self.cookies.join("; ")));
        }
        let staged = format!("/{stage}{}", self.path);
        json!({
            "resource": "/{proxy+}",
            "path": staged,
            "httpMethod": self.method,
            "headers": Self::last_values(&headers),
            "multiValueHeaders": Self::multi(&headers),
            "queryStringParameters": if self.query.is_empty() { Value::Null } else { Value::Object(Self::last_values(&self.query)) },
            "multiValueQueryStringParameters": if self.query.is_empty() { Value::Null } else { Value::Object(Self::multi(&self.query)) },
            "pathParameters": {"proxy": self.path.trim_start_matches('/')},
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "restapi",
                "resourceId": "abc123",
                "resourcePath": "/{proxy+}",
                "httpMethod": self.method,
                "path": staged,
                "stage": stage,
                "requestId": format!("rest-{}", uuid::Uuid::now_v7()),
                "protocol": "HTTP/1.1",
                "requestTimeEpoch": 1_795_255_700_000_u64,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "task-api-tests"}
            },
            "body": self.body_field(),
            "isBase64Encoded": self.base64
        })
    }

    /// An Application Load Balancer event, multi-value headers enabled.
    pub fn to_alb(&self) -> Value {
        let mut headers = self.headers.clone();
        if !self.cookies.is_empty() {
            headers.push(("cookie".into(), self.cookies.join("; ")));
        }
        headers.push(("host".into(), "alb.example.com".into()));
        json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/task-api/0123456789abcdef"}},
            "httpMethod": self.method,
            "path": self.path,
            "multiValueQueryStringParameters": Self::multi(&self.query),
            "multiValueHeaders": Self::multi(&headers),
            "body": self.body_field().as_str().unwrap_or(""),
            "isBase64Encoded": self.base64
        })
    }
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
