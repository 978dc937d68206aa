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
//! much, never its answer.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicBool, Ordering},
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
        SpanProcessor,
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
        let provider = config.export.as_ref().and_then(|export| {
            match provider(config, export, runtime, default_service) {
                Ok(provider) => Some(provider),
                Err(error) => {
                    // Traces are not worth refusing to serve for: say so and go on without.
                    eprintln!("traces are off: building the OTLP exporter failed: {error}");
                    None
                }
            }
        });
        installed = provider.as_ref().map(|p| p.tracer("task-api"));
        Tracing {
            provider,
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
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
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
    Ok(SdkTracerProvider::builder()
        .with_span_processor(Noting(BatchSpanProcessor::builder(exporter).build()))
        .with_sampler(sampler(config.sampler))
        .with_resource(resource.build())
        .build())
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

/// A span was recorded (sampled) and ended since the last [`flush`].
static ENDED: AtomicBool = AtomicBool::new(false);

/// The batch processor, noting each span it is handed ([`ENDED`]): an invocation that
/// recorded nothing (X-Ray sampled it out, as it does most) does not wait on the export thread.
#[derive(Debug)]
struct Noting<P>(P);

impl<P: SpanProcessor> SpanProcessor for Noting<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Queued first: a flush that sees the flag finds the span in the queue.
        self.0.on_end(span);
        ENDED.store(true, Ordering::Release);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// Hands every span ended so far to the collector, waiting at most the configured flush
/// timeout. A no-op when nothing is exported, or nothing was recorded since the last flush.
pub async fn flush() {
    let Some(tracing) = TRACING.get() else {
        return;
    };
    let Some(provider) = tracing.provider.clone() else {
        return;
    };
    if !ENDED.swap(false, Ordering::AcqRel) {
        return;
    }
    // The SDK's flush blocks until the export thread has sent the batch; that thread's
    // request runs on this runtime (`Client`), so the wait must not block it.
    let flushing = tokio::task::spawn_blocking(move || provider.force_flush());
    if tokio::time::timeout(tracing.flush_timeout, flushing)
        .await
        .is_err()
    {
        tracing::debug!(
            timeout_ms = tracing.flush_timeout.as_millis() as u64,
            "the trace collector did not take this invocation's spans in time"
        );
    }
}

/// Exports what is left and stops the exporter (the local server's shutdown), within `bound`.
pub async fn shutdown(bound: Duration) {
    let Some(provider) = TRACING.get().and_then(|t| t.provider.clone()) else {
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
        let sending = self.runtime.spawn(async move {
            match tokio::time::timeout(timeout, send(request)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {} ms", timeout.as_millis()).into()),
            }
        });
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
