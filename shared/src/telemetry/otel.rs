//! Traces: `tracing` spans of the target [`SPAN`] bridged to OpenTelemetry by
//! `tracing-opentelemetry`, and exported by `opentelemetry-otlp` over HTTP/protobuf, only when
//! an OTLP endpoint is configured ([`TracingConfig::export`]). Without one nothing here is
//! built: no provider, no exporter, no thread, and every [`SPAN`] span is disabled at its
//! call site, so an instrumented statement costs a branch.
//!
//! Spans of the target [`SPAN`] are for traces alone (the log layer never sees them), and the
//! trace layer sees nothing else: the access log's `request` span and a trace's server span
//! are different spans, so neither the log lines nor the spans carry the other's fields.
//!
//! The exporter's HTTP client is ours, [`Client`]: the SDK's batch processor exports from a
//! thread of its own, outside any async runtime, so a client that needs tokio (hyper's) must
//! have its request run on the process's runtime, which [`Client`] does by spawning it there.
//! The crate's built-in choice for that thread is `reqwest`'s blocking client, a second HTTP
//! stack in every Lambda binary.
//!
//! Under Lambda an instance is frozen as soon as it has answered, so [`flush`] hands an
//! invocation's spans to the collector before its answer goes, waiting at most
//! `OTEL_LAMBDA_FLUSH_TIMEOUT_MS`: a collector that is down or hangs costs an invocation that
//! much, never its answer. There is no export thread under Lambda ([`Pending`]): ended spans
//! wait in memory and [`flush`] exports them from the function's own runtime, which spares a cold
//! start the thread and each invocation two hand-overs between threads.

use std::{
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http::HeaderMap;
use opentelemetry::{
    Context, KeyValue,
    propagation::{TextMapCompositePropagator, TextMapPropagator},
    trace::{SpanContext, TraceContextExt as _, TraceState, TracerProvider as _},
};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{
        BatchSpanProcessor, Sampler as SdkSampler, SdkTracer, SdkTracerProvider, SpanData,
        SpanExporter as _, SpanProcessor,
    },
};
use secrecy::ExposeSecret as _;

use crate::config::{Propagator, Runtime, Sampler, TracingConfig};

/// The target of every span meant for traces (server, statement, pool, transaction, hash,
/// mail delivery). Logs never see them.
pub const SPAN: &str = "otel::span";

struct Tracing {
    /// `None` when no endpoint is configured.
    provider: Option<SdkTracerProvider>,
    /// Under Lambda, the spans waiting for [`flush`] and the exporter it sends them with.
    pending: Option<Arc<Pending>>,
    propagator: TextMapCompositePropagator,
    flush_timeout: Duration,
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Sets up traces for the process from `config` (once; a later call changes nothing) and
/// returns the tracer the subscriber's trace layer needs, `None` when nothing is exported.
/// `default_service` names the service when neither `OTEL_SERVICE_NAME` nor
/// `OTEL_RESOURCE_ATTRIBUTES` does. Must be called inside the tokio runtime that will carry
/// the exports.
pub(super) fn install(
    config: &TracingConfig,
    runtime: Runtime,
    default_service: &str,
) -> Option<SdkTracer> {
    let mut installed = None;
    TRACING.get_or_init(|| {
        let built = config.export.as_ref().and_then(|export| {
            match provider(config, export, runtime, default_service) {
                Ok(built) => Some(built),
                Err(error) => {
                    // Traces are not worth refusing to serve for: say so and go on without.
                    eprintln!("traces are off: building the OTLP exporter failed: {error}");
                    None
                }
            }
        });
        let (provider, pending) = built.unzip();
        installed = provider.as_ref().map(|p| p.tracer("task-api"));
        Tracing {
            provider,
            pending: pending.flatten(),
            propagator: propagator(&config.propagators),
            flush_timeout: config.flush_timeout,
        }
    });
    installed
}

fn provider(
    config: &TracingConfig,
    export: &crate::config::OtlpExport,
    runtime: Runtime,
    default_service: &str,
) -> Result<(SdkTracerProvider, Option<Arc<Pending>>), opentelemetry_otlp::ExporterBuildError> {
    let client = Client {
        runtime: tokio::runtime::Handle::current(),
        timeout: export.timeout,
    };
    // The exporter percent-decodes what it is given; ours are decoded already.
    let headers = export
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().replace('%', "%25")))
        .collect();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(export.traces_url.clone())
        .with_timeout(export.timeout)
        .with_headers(headers);
    if runtime == Runtime::Lambda {
        // A retry's back-off would hold the export thread while the instance is frozen.
        exporter = exporter.with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled());
    }
    let exporter = exporter.build()?;
    // The SDK's detectors add OTEL_RESOURCE_ATTRIBUTES; the name is decided here.
    let mut resource = Resource::builder().with_service_name(
        config
            .service_name
            .clone()
            .unwrap_or_else(|| default_service.to_owned()),
    );
    if runtime == Runtime::Lambda {
        resource = resource.with_attributes([
            KeyValue::new("cloud.provider", "aws"),
            KeyValue::new("cloud.platform", "aws_lambda"),
        ]);
    }
    let builder = SdkTracerProvider::builder()
        .with_sampler(sampler(config.sampler))
        .with_resource(resource.build());
    Ok(if runtime == Runtime::Lambda {
        let pending = Arc::new(Pending {
            spans: Mutex::new(Vec::new()),
            exporter: tokio::sync::Mutex::new(exporter),
            runtime: tokio::runtime::Handle::current(),
            sending: AtomicBool::new(false),
            sent: tokio::sync::Notify::new(),
            dropped: AtomicUsize::new(0),
        });
        let provider = builder.with_span_processor(Queue(pending.clone())).build();
        (provider, Some(pending))
    } else {
        let provider = builder
            .with_span_processor(BatchSpanProcessor::builder(exporter).build())
            .build();
        (provider, None)
    })
}

fn sampler(choice: Sampler) -> SdkSampler {
    match choice {
        Sampler::AlwaysOn => SdkSampler::AlwaysOn,
        Sampler::AlwaysOff => SdkSampler::AlwaysOff,
        Sampler::TraceIdRatio(r) => SdkSampler::TraceIdRatioBased(r),
        Sampler::ParentBasedAlwaysOn => SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => SdkSampler::ParentBased(Box::new(SdkSampler::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio(r) => {
            SdkSampler::ParentBased(Box::new(SdkSampler::TraceIdRatioBased(r)))
        }
    }
}

fn propagator(chosen: &[Propagator]) -> TextMapCompositePropagator {
    let propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = chosen
        .iter()
        .map(|p| -> Box<dyn TextMapPropagator + Send + Sync> {
            match p {
                Propagator::TraceContext => Box::new(TraceContextPropagator::new()),
                Propagator::Baggage => Box::new(BaggagePropagator::new()),
                Propagator::Xray => Box::new(opentelemetry_aws::trace::XrayPropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(propagators)
}

/// Whether spans are being exported (an endpoint is configured and its exporter was built).
pub fn enabled() -> bool {
    TRACING.get().is_some_and(|t| t.provider.is_some())
}

/// Whether work started here belongs to a trace: spans are exported and a request or an
/// invocation is being served. Background work (the local server's mail retries) is not
/// traced: each of its statements would be a trace of its own.
pub fn in_trace() -> bool {
    enabled() && !tracing::Span::current().is_none()
}

/// The longest `tracestate` a trace keeps (W3C allows 32 members of up to 256 bytes).
const MAX_TRACE_STATE: usize = 512;

/// The trace context a request continues: the one its headers carry (as `OTEL_PROPAGATORS`
/// says), else, under Lambda, the invocation's X-Ray context (`Lambda-Runtime-Trace-Id`, as
/// the runtime handed it over with this invocation). `None` when there is neither.
pub fn parent(headers: &HeaderMap, xray: Option<&str>) -> Option<Context> {
    let tracing = TRACING.get()?;
    let from_headers = tracing
        .propagator
        .extract(&opentelemetry_http::HeaderExtractor(headers));
    let remote = from_headers.span().span_context().clone();
    if remote.is_valid() {
        return Some(bounded(from_headers, remote));
    }
    let remote = xray.and_then(opentelemetry_aws::trace::xray_propagator::span_context_from_str)?;
    Some(bounded(from_headers, remote))
}

/// `cx` continuing `remote`, without its trace state when that is longer than
/// [`MAX_TRACE_STATE`]: every span of the trace would carry it, and a client writes it
/// (`tracestate`, or the extra fields of `X-Amzn-Trace-Id`).
fn bounded(cx: Context, remote: SpanContext) -> Context {
    if remote.trace_state().header().len() <= MAX_TRACE_STATE {
        return cx.with_remote_span_context(remote);
    }
    let remote = SpanContext::new(
        remote.trace_id(),
        remote.span_id(),
        remote.trace_flags(),
        true,
        TraceState::NONE,
    );
    cx.with_remote_span_context(remote)
}

/// The most spans kept for a flush (the batch processor's default queue): past it, a span is
/// dropped, and counted, rather than memory grown.
const MAX_PENDING: usize = 2048;

/// Spans that, pending, are exported at once, without waiting for the flush (the batch
/// processor's default batch): an invocation that records more than [`MAX_PENDING`] (a
/// `mail` run with a backlog) sends them as it goes.
const EXPORT_BATCH: usize = 512;

/// Under Lambda: the spans ended since the last export, and the exporter that sends them.
#[derive(Debug)]
struct Pending {
    spans: Mutex<Vec<SpanData>>,
    /// Locked for an export: the SDK's exporter must not export two batches at once.
    exporter: tokio::sync::Mutex<opentelemetry_otlp::SpanExporter>,
    /// Where a full batch's export runs: the function's runtime.
    runtime: tokio::runtime::Handle,
    /// An export task is queued or running. One at a time: a collector that hangs holds
    /// one task, not one per invocation.
    sending: AtomicBool,
    /// Told when an export task ends.
    sent: tokio::sync::Notify,
    /// Spans dropped because [`MAX_PENDING`] were waiting; reported by the next export.
    dropped: AtomicUsize,
}

impl Pending {
    /// Exports every span ended so far; an invocation that recorded nothing (X-Ray sampled
    /// it out, as it does most) sends nothing.
    async fn export(&self) {
        let exporter = self.exporter.lock().await;
        let batch = std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()));
        let dropped = self.dropped.swap(0, Ordering::AcqRel);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "trace spans dropped: more ended than could wait for export"
            );
        }
        if batch.is_empty() {
            return;
        }
        if let Err(error) = exporter.export(batch).await {
            tracing::debug!(%error, "the trace collector refused spans");
        }
    }

    /// Exports what is pending on a task of its own, waiting at most `bound` for an export
    /// already running to end and for this one: an export still running then goes on (its
    /// spans are not lost; it is bounded by the export timeout), and a later one waits for it.
    async fn export_within(self: &Arc<Self>, bound: Duration) -> bool {
        let exporting = async {
            loop {
                let ended = self.sent.notified();
                tokio::pin!(ended);
                // Registered before the flag is read: an end between the two is not missed.
                ended.as_mut().enable();
                if !self.sending.swap(true, Ordering::AcqRel) {
                    break;
                }
                ended.await;
            }
            let _ = self.spawn_export().await;
        };
        tokio::time::timeout(bound, exporting).await.is_ok()
    }

    /// Starts an export task; the caller has set [`Pending::sending`], which the task clears
    /// when it ends, however it ends.
    fn spawn_export(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        struct Ended(Arc<Pending>);
        impl Drop for Ended {
            fn drop(&mut self) {
                self.0.sending.store(false, Ordering::Release);
                self.0.sent.notify_waiters();
            }
        }
        let ended = Ended(self.clone());
        self.runtime.spawn(async move { ended.0.export().await })
    }
}

/// The span processor under Lambda: keeps each ended span for the invocation's [`flush`].
#[derive(Debug)]
struct Queue(Arc<Pending>);

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let full = {
            let mut spans = self.0.spans.lock().unwrap_or_else(|e| e.into_inner());
            if spans.len() < MAX_PENDING {
                spans.push(span);
            } else {
                self.0.dropped.fetch_add(1, Ordering::Relaxed);
            }
            spans.len() >= EXPORT_BATCH
        };
        if full && !self.0.sending.swap(true, Ordering::AcqRel) {
            // Not awaited: it runs on the runtime, and clears `sending` when it ends.
            drop(self.0.spawn_export());
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, while the provider is built, before anything else can lock it.
        if let Ok(mut exporter) = self.0.exporter.try_lock() {
            exporter.set_resource(resource);
        }
    }
}

/// Hands every span ended so far to the collector, waiting at most the configured flush
/// timeout. A no-op when nothing is exported, or nothing was recorded since the last flush.
pub async fn flush() {
    let Some(tracing) = TRACING.get() else {
        return;
    };
    let Some(pending) = &tracing.pending else {
        return;
    };
    // An invocation that recorded nothing (X-Ray sampled it out, as it does most) starts no
    // task and waits for none.
    if pending
        .spans
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
    {
        return;
    }
    if !pending.export_within(tracing.flush_timeout).await {
        tracing::debug!(
            timeout_ms = tracing.flush_timeout.as_millis() as u64,
            "the trace collector did not take this invocation's spans in time"
        );
    }
}

/// Exports what is left and stops the exporter (the local server's shutdown), within `bound`.
pub async fn shutdown(bound: Duration) {
    let Some(tracing) = TRACING.get() else {
        return;
    };
    if let Some(pending) = &tracing.pending {
        pending.export_within(bound).await;
        return;
    }
    let Some(provider) = tracing.provider.clone() else {
        return;
    };
    let stopping = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(bound));
    let _ = tokio::time::timeout(bound, stopping).await;
}

/// The exporter's HTTP client: one HTTP/1.1 connection per export (an export is a batch,
/// at most one every few seconds, or one per Lambda invocation to a collector on the same
/// host), its request run on the process's tokio runtime, bounded by the export timeout.
#[derive(Debug)]
struct Client {
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for Client {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let timeout = self.timeout;
        let sending = async move {
            match tokio::time::timeout(timeout, send(request)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis()).into()),
            }
        };
        // Lambda's flush exports on the runtime already; the batch processor's thread is
        // outside it and has the request run there.
        if tokio::runtime::Handle::try_current().is_ok() {
            return sending.await;
        }
        let sending = self.runtime.spawn(sending);
        sending.await.map_err(|e| -> HttpError { Box::new(e) })?
    }
}

async fn send(request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    use http_body_util::{BodyExt as _, Full};

    let uri = request.uri();
    let authority = uri
        .authority()
        .ok_or("the endpoint has no host")?
        .as_str()
        .to_owned();
    // `[::1]` in a URL, `::1` to connect to.
    let host = uri
        .host()
        .ok_or("the endpoint has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let driving = tokio::spawn(connection);
    let (mut parts, body) = request.into_parts();
    if !parts.headers.contains_key(http::header::HOST) {
        parts.headers.insert(http::header::HOST, authority.parse()?);
    }
    // Origin form on the wire: the path and query only.
    parts.uri = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .parse()?;
    let response = sender
        .send_request(http::Request::from_parts(parts, Full::new(body)))
        .await?;
    let (parts, body) = response.into_parts();
    // An OTLP answer is a small protobuf message; a collector that streams more is refused.
    let body = http_body_util::Limited::new(body, 64 * 1024)
        .collect()
        .await?
        .to_bytes();
    driving.abort();
    Ok(Response::from_parts(parts, body))
}

/// A statement's span name and attributes from its SQL text (with placeholders, never a bound
/// value): `db.operation.name` is the first keyword, `db.collection.name` the table it acts on.
pub fn statement_summary(sql: &str) -> (&str, Option<&str>) {
    let mut words = sql.split_ascii_whitespace();
    let operation = words.next().unwrap_or("");
    let table_after = |keyword: &str| {
        let mut words = sql.split_ascii_whitespace();
        words
            .by_ref()
            .find(|w| w.eq_ignore_ascii_case(keyword))
            .and_then(|_| words.next())
            .map(|t| t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
            .filter(|t| !t.is_empty())
    };
    let table = match operation.to_ascii_uppercase().as_str() {
        "SELECT" | "DELETE" => table_after("FROM"),
        "INSERT" => table_after("INTO"),
        "UPDATE" => words
            .next()
            .map(|t| t.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))),
        "WITH" => table_after("FROM"),
        _ => None,
    };
    (operation, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields to the runtime until `done`, for at most 5 s (the caller asserts what it waited for).
    async fn until(done: impl Fn() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Under Lambda, a full batch is exported without waiting for the flush, and past
    /// [`MAX_PENDING`] spans are dropped and counted rather than memory grown.
    #[tokio::test]
    async fn a_lambda_queue_exports_full_batches_and_bounds_what_waits() {
        use opentelemetry::trace::{Tracer as _, TracerProvider as _};

        let config = TracingConfig {
            // The discard port: whether an export succeeds or not, it takes its spans first.
            export: Some(crate::config::OtlpExport {
                traces_url: "http://127.0.0.1:9/v1/traces".to_owned(),
                headers: Vec::new(),
                timeout: Duration::from_secs(1),
            }),
            propagators: Vec::new(),
            sampler: Sampler::AlwaysOn,
            service_name: None,
            flush_timeout: Duration::from_millis(50),
        };
        let export = config.export.clone().expect("an endpoint");
        let (provider, pending) =
            provider(&config, &export, Runtime::Lambda, "test").expect("the provider");
        let pending = pending.expect("a queue under Lambda");
        let tracer = provider.tracer("test");
        let waiting = || pending.spans.lock().expect("the queue").len();

        for _ in 0..EXPORT_BATCH - 1 {
            drop(tracer.start("span"));
        }
        assert_eq!(
            waiting(),
            EXPORT_BATCH - 1,
            "below a batch, spans wait for the flush"
        );
        drop(tracer.start("span"));
        // The batch's export runs on this runtime as soon as this test yields.
        until(|| waiting() == 0).await;
        assert_eq!(waiting(), 0, "a full batch is exported without a flush");
        // And the next full batch too, once that export has ended (within its 1 s timeout).
        until(|| !pending.sending.load(Ordering::Acquire)).await;
        for _ in 0..EXPORT_BATCH {
            drop(tracer.start("span"));
        }
        until(|| waiting() == 0).await;
        assert_eq!(waiting(), 0, "every full batch is exported without a flush");

        // Without yielding, nothing exports: the queue stops at its bound and counts the rest.
        for _ in 0..MAX_PENDING + 10 {
            drop(tracer.start("span"));
        }
        assert_eq!(waiting(), MAX_PENDING);
        assert_eq!(pending.dropped.load(Ordering::Acquire), 10);
        assert!(pending.export_within(Duration::from_secs(5)).await);
        assert_eq!(waiting(), 0);
        assert_eq!(
            pending.dropped.load(Ordering::Acquire),
            0,
            "reported, then reset"
        );
    }

    #[test]
    fn statements_are_named_by_operation_and_table() {
        assert_eq!(
            statement_summary("SELECT id, title FROM tasks WHERE owner_id = $1"),
            ("SELECT", Some("tasks"))
        );
        assert_eq!(
            statement_summary("INSERT INTO users (id, email) VALUES (?, ?)"),
            ("INSERT", Some("users"))
        );
        assert_eq!(
            statement_summary("UPDATE tasks SET title = $1 WHERE id = $2"),
            ("UPDATE", Some("tasks"))
        );
        assert_eq!(
            statement_summary("DELETE FROM sessions WHERE expires_at < $1"),
            ("DELETE", Some("sessions"))
        );
        assert_eq!(statement_summary("SELECT 1"), ("SELECT", None));
        assert_eq!(statement_summary("BEGIN"), ("BEGIN", None));
    }
}
