//! The runtime-API emulator: just enough of the API that AWS's runtime serves to a function
//! process (`GET …/invocation/next`, `POST …/{id}/response`, `POST …/{id}/error`,
//! `POST …/init/error`), on loopback. It also records when the first `/next` arrives, which
//! is how cold-start tests and benchmarks see that a binary finished its init.

use std::{
    collections::HashMap,
    net::SocketAddr,
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
use serde_json::Value;
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
    /// The invocation's time: its deadline is this long after the function takes it.
    budget: Duration,
    /// `Lambda-Runtime-Trace-Id`.
    trace: String,
    reply: oneshot::Sender<Outcome>,
}

/// An X-Ray trace header that names no trace: its root is not a valid trace id, so a
/// function that exports traces starts a trace of its own.
pub const UNTRACED: &str = "Root=1-00000000-000000000000000000000000;Sampled=0";

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
        self.try_invoke(event, timeout)
            .await
            .expect("the function answered within the timeout")
    }

    /// [`invoke`](Self::invoke), with `None` when the function did not answer in time.
    pub async fn try_invoke(&self, event: &Value, timeout: Duration) -> Option<Outcome> {
        self.send(event, INVOCATION_BUDGET, UNTRACED, timeout).await
    }

    /// [`invoke`](Self::invoke) as part of the X-Ray trace `trace` (the
    /// `Lambda-Runtime-Trace-Id` the function gets with the event).
    pub async fn invoke_traced(&self, event: &Value, trace: &str, timeout: Duration) -> Outcome {
        self.send(event, INVOCATION_BUDGET, trace, timeout)
            .await
            .expect("the function answered within the timeout")
    }

    /// [`invoke`](Self::invoke) with a deadline `budget` after the function takes the
    /// event (a function's Timeout), instead of the default 30 s.
    pub async fn invoke_within(&self, event: &Value, budget: Duration) -> Outcome {
        self.send(event, budget, UNTRACED, budget + Duration::from_secs(5))
            .await
            .expect("the function answered within its deadline")
    }

    async fn send(
        &self,
        event: &Value,
        budget: Duration,
        trace: &str,
        timeout: Duration,
    ) -> Option<Outcome> {
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
                budget,
                trace: trace.to_owned(),
                reply,
            })
            .expect("the emulator is running");
        tokio::time::timeout(timeout, answer)
            .await
            .ok()
            .map(|answer| answer.expect("the emulator kept the reply channel"))
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
        .checked_add(pending.budget)
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
    put("lambda-runtime-trace-id", pending.trace.clone());
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
