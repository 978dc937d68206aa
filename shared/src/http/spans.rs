//! A request's place in a trace: its server span ([`server_span`], opened by the stack's
//! `Finish` service while traces are exported), and the trace ids its log lines carry
//! ([`log_trace`], always).

use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{MatchedPath, Request};
use opentelemetry::trace::TraceContextExt as _;
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::limits;
use crate::telemetry::{LogTrace, otel};

/// What the Lambda adapter knows of the invocation a request came in: read per invocation
/// from the runtime API's answer, never from the process's environment.
#[derive(Debug, Clone)]
pub struct LambdaInvocation {
    pub request_id: String,
    /// `Lambda-Runtime-Trace-Id`: `Root=1-…;Parent=…;Sampled=…`.
    pub xray: Option<String>,
    /// The first invocation of this process.
    pub coldstart: bool,
}

impl LambdaInvocation {
    /// `coldstart` is true for the process's first invocation only.
    pub fn new(request_id: String, xray: Option<String>) -> Self {
        static STARTED: AtomicBool = AtomicBool::new(false);
        Self {
            request_id,
            xray,
            coldstart: !STARTED.swap(true, Ordering::Relaxed),
        }
    }
}

/// The longest `user_agent.original` and `url.path` a span keeps: a request head may be far
/// larger, and up to `OTEL_BSP_MAX_QUEUE_SIZE` spans wait in memory for the collector.
const MAX_USER_AGENT: usize = 256;
const MAX_PATH: usize = 1024;

/// One server span per request, named `{method} {route template}`, with the HTTP semantic
/// conventions' attributes, continuing the trace the request brings ([`otel::parent`]).
pub(super) fn server_span(request: &Request, hops: usize) -> Span {
    // A method a client invents would otherwise name spans: the conventions' `_OTHER`.
    let method = match *request.method() {
        http::Method::GET
        | http::Method::POST
        | http::Method::PUT
        | http::Method::PATCH
        | http::Method::DELETE
        | http::Method::HEAD
        | http::Method::OPTIONS
        | http::Method::TRACE
        | http::Method::CONNECT => request.method().as_str(),
        _ => "_OTHER",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let invocation = request.extensions().get::<LambdaInvocation>();
    let span = tracing::info_span!(
        target: otel::SPAN,
        "server",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        url.path = truncated(request.uri().path(), MAX_PATH),
        user_agent.original = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| truncated(ua, MAX_USER_AGENT)),
        client.address = limits::client_ip(request, hops).map(|ip| ip.to_string()),
        faas.invocation_id = invocation.map(|i| i.request_id.as_str()),
        faas.coldstart = invocation.map(|i| i.coldstart),
        error.type = Empty,
    );
    if let Some(parent) = otel::parent(
        request.headers(),
        invocation.and_then(|i| i.xray.as_deref()),
    ) {
        let _ = span.set_parent(parent);
    }
    span
}

/// The answer's status on its server span: a 5xx marks it as an error; a 4xx does not (the
/// client's error, not ours).
pub(super) fn record_status(span: &Span, status: http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
        span.record("error.type", status.as_str());
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The trace ids a request's log lines carry: its server span's while traces are exported,
/// else the trace the request continues, if it says; and under Lambda, the X-Ray trace.
/// `span` is the access log's span: when it is off (`RUST_LOG=warn`), so are these.
pub(super) fn log_trace<B>(request: &http::Request<B>, span: &Span) -> Option<LogTrace> {
    if span.is_disabled() {
        return None;
    }
    let xray = request
        .extensions()
        .get::<LambdaInvocation>()
        .and_then(|i| i.xray.as_deref());
    let mut trace = LogTrace {
        xray_trace_id: xray.and_then(xray_root).map(str::to_owned),
        ..LogTrace::default()
    };
    if otel::enabled() {
        // The server span is current here (`ServerSpan::call`).
        let context = Span::current().context();
        let span = context.span();
        let ids = span.span_context();
        if ids.is_valid() {
            trace.trace_id = Some(ids.trace_id().to_string());
            trace.span_id = Some(ids.span_id().to_string());
        }
    } else if let Some(parent) = otel::parent(request.headers(), xray) {
        trace.trace_id = Some(parent.span().span_context().trace_id().to_string());
    }
    (trace.trace_id.is_some() || trace.xray_trace_id.is_some()).then_some(trace)
}

/// `1-5759e988-bd862e3fe1be46a994272793` out of `Root=1-5759e988-…;Parent=…;Sampled=1`.
fn xray_root(header: &str) -> Option<&str> {
    header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .filter(|root| root.len() <= 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        assert_eq!(truncated("short", 10), "short");
        assert_eq!(truncated("abcdef", 3), "abc");
        // "é" is two bytes: a cut inside it moves back before it.
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated("", 0), "");
    }

    #[test]
    fn the_xray_root_is_read_from_the_header() {
        assert_eq!(
            xray_root("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
            Some("1-5759e988-bd862e3fe1be46a994272793")
        );
        assert_eq!(xray_root("Parent=1;Sampled=0"), None);
    }
}
