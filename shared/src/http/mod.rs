//! The middleware stack every deployment shape applies to its routes, and nothing else.
//!
//! Outermost first: request id (set, then copied to the response) → security headers →
//! problem rendering → metrics → the trace's server span (only while traces are exported) →
//! the access log's span + access log → panic catcher (500) → timeout
//! (504) → CORS → body limit (413) → rate and concurrency limits (429 / 503; local server
//! and container only) → routes. Security headers and the problem layer sit outside the
//! panic catcher and the timeout (the README's "Request pipeline" says why) so that the 500
//! and 504 answers carry them too; metrics sit outside everything that can answer, so every
//! answer is counted under its final status.

mod limits;
mod spans;

use std::{
    any::Any,
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use tower::{Layer, Service, ServiceBuilder};
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    set_header::SetResponseHeaderLayer,
    timeout::TimeoutLayer,
    trace::TraceLayer,
};
use tracing::{Instrument as _, Span, field::Empty};

use crate::{
    config::{AppEnv, LimitsConfig},
    error::{ApiError, ErrorKind, PROBLEM_JSON, Problem, problem_response},
    metrics::{Metrics, Sample, UNMATCHED_ROUTE},
    state::AppState,
};

pub use limits::{ClientAddr, Limiter, PlatformSourceIp};
pub use spans::LambdaInvocation;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Request bodies larger than this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// What the stack needs from the application.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub request_timeout: Duration,
    pub env: AppEnv,
    pub cors_allowed_origins: Vec<String>,
    /// Rate and concurrency limits; [`LimitsConfig::OFF`] under Lambda.
    pub limits: LimitsConfig,
    /// Where request measurements go; `None` records nothing.
    pub metrics: Option<Arc<Metrics>>,
    /// A server span per request while traces are exported (not for the metrics listener).
    pub traces: bool,
}

impl StackConfig {
    pub fn new(state: &AppState) -> Self {
        let config = &state.config;
        Self {
            request_timeout: config.http.request_timeout,
            env: config.env,
            cors_allowed_origins: config.http.cors_allowed_origins.clone(),
            limits: config.http.limits,
            metrics: Some(state.metrics.clone()),
            traces: true,
        }
    }
}

/// A request id handed over by the platform (the API Gateway request id under Lambda),
/// used when the caller sent none.
#[derive(Debug, Clone)]
pub struct UpstreamRequestId(pub String);

/// Applies the whole stack, plus the problem+json 404 fallback, to `routes`.
pub fn stack(routes: Router, config: &StackConfig) -> Router {
    // One `Router::layer` call with every layer composed statically. Each `Router::layer`
    // call boxes every route's service once more, and a boxed service is cloned and its
    // future boxed on every request: with one call per layer that was most of the stack's
    // cost per request (`bench/profile`). `ServiceBuilder` lists the outermost layer first.
    let limiter = Limiter::new(&config.limits).map(|limiter| limits::LimitLayer(Arc::new(limiter)));
    let layers = ServiceBuilder::new()
        .map_request(drop_insane_request_id)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeId))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(security_header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Nothing this API returns is meant for shared caches: tokens, user data, tasks, probes.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(FinishLayer {
            metrics: config.metrics.clone(),
            // Only while traces are exported: a server span per request, around the access
            // log's.
            traces: (config.traces && crate::telemetry::otel::enabled())
                .then_some(config.limits.trusted_proxy_hops),
        })
        .map_response(into_axum_response)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        .map_response(into_axum_response)
        .layer(CatchPanicLayer::custom(panic_response))
        .map_response(into_axum_response)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout,
        ))
        .layer(cors_layer(config))
        .map_response(into_axum_response)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        .map_request(|request: http::Request<tower_http::body::Limited<Body>>| {
            request.map(Body::new)
        })
        .option_layer(limiter);
    // `Router::layer` clones the layer once per route: sharing the composed stack behind an
    // `Arc` makes each clone a reference count, where cloning the stack itself (CORS origin
    // lists, header values, …) for each of a function's ~25 routes cost every Lambda cold
    // start (`tasks` init: 962k → 807k instructions, callgrind, `bench/profile --cold`).
    let layers = Arc::new(layers);
    routes
        .fallback(fallback)
        .layer(tower::layer::layer_fn(move |inner| {
            Layer::layer(&*layers, inner)
        }))
}

/// Layers that wrap the response body in their own type hand it on as axum's `Body`, which
/// the layers outside them need (`Default` for an empty answer, `IntoResponse`).
fn into_axum_response<B>(response: http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    response.map(Body::new)
}

async fn fallback() -> ApiError {
    ApiError::new(ErrorKind::NotFound).with_detail("no such route")
}

/// A caller's request id is echoed only when it is sane: 1..=128 visible ASCII characters,
/// so it cannot smuggle control characters or megabytes into our logs.
fn drop_insane_request_id<B>(mut req: http::Request<B>) -> http::Request<B> {
    let sane = req.headers().get(&REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
    });
    if !sane {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

#[derive(Clone, Copy)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, request: &http::Request<B>) -> Option<RequestId> {
        let upstream = request
            .extensions()
            .get::<UpstreamRequestId>()
            .and_then(|id| HeaderValue::from_str(&id.0).ok());
        let value = upstream.unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
        });
        Some(RequestId::new(value))
    }
}

/// The id [`SetRequestIdLayer`] gave the request; borrowed, as most requests never need
/// their own copy.
fn request_id_of<B>(request: &http::Request<B>) -> &str {
    id_text(request.extensions().get::<RequestId>())
}

fn id_text(id: Option<&RequestId>) -> &str {
    id.and_then(|id| id.header_value().to_str().ok())
        .unwrap_or_default()
}

/// A boxed response future: what the stack's hand-written services return.
pub(crate) type ResponseFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// Counts every answer under its route template and final status, then renders every error
/// answer as problem+json carrying the request id. Written as a service rather than two
/// `middleware::from_fn`s, each of which clones and boxes the inner service per request.
#[derive(Clone)]
struct FinishLayer {
    metrics: Option<Arc<Metrics>>,
    /// The trusted proxy hops for `client.address`, when each request gets a server span.
    traces: Option<usize>,
}

impl<S> Layer<S> for FinishLayer {
    type Service = Finish<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Finish {
            inner,
            metrics: self.metrics.clone(),
            traces: self.traces,
        }
    }
}

#[derive(Clone)]
struct Finish<S> {
    inner: S,
    metrics: Option<Arc<Metrics>>,
    traces: Option<usize>,
}

impl<S> Service<Request> for Finish<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A cheap handle (the header value shares its bytes), made a string only for an error.
        let request_id = request.extensions().get::<RequestId>().cloned();
        let measuring = self.metrics.clone().map(|metrics| {
            let method = request.method().clone();
            let route = request.extensions().get::<MatchedPath>().cloned();
            (metrics, method, route, Instant::now())
        });
        let span = self.traces.map(|hops| spans::server_span(&request, hops));
        // The layers inside (the access log's span) open their spans under the server span.
        let response = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        Box::pin(async move {
            let in_flight = measuring.as_ref().map(|(metrics, ..)| metrics.start());
            // The request keeps the connection its first statement takes for the rest.
            let response = crate::store::held::scope(response);
            let Ok(response) = match &span {
                Some(span) => response.instrument(span.clone()).await,
                None => response.await,
            };
            if let Some(span) = &span {
                spans::record_status(span, response.status());
            }
            drop(in_flight);
            if let Some((metrics, method, route, started)) = &measuring {
                metrics.record(Sample {
                    method,
                    route: route.as_ref().map_or(UNMATCHED_ROUTE, MatchedPath::as_str),
                    status: response.status().as_u16(),
                    latency: started.elapsed(),
                });
            }
            Ok(render_problem(response, request_id))
        })
    }
}

/// Every error response leaves as problem+json carrying the request id: those from
/// [`ApiError`] get the id added; those from the router or a tower layer (405, 413, …) are
/// rebuilt from their status, keeping their headers (`Allow`, `Retry-After`).
fn render_problem(mut response: Response, request_id: Option<RequestId>) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let mut problem = match response.extensions_mut().remove::<Problem>() {
        Some(problem) => problem,
        None => {
            let is_problem = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
            if is_problem {
                return response;
            }
            let kind = ErrorKind::from_status(status);
            let mut problem = Problem::new(kind);
            problem.detail = match kind {
                ErrorKind::MethodNotAllowed => Some("this route does not allow that method".into()),
                ErrorKind::PayloadTooLarge => Some("the body is larger than 1 MiB".into()),
                ErrorKind::Timeout => Some("the request took too long".into()),
                ErrorKind::NotFound => Some("no such route".into()),
                _ => None,
            };
            problem
        }
    };
    problem.request_id = Some(id_text(request_id.as_ref()).to_owned());
    let (mut parts, _) = response.into_parts();
    let rendered = problem_response(&problem);
    parts.status = rendered.status();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = rendered.into_body();
    Response::from_parts(parts, body)
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value))
}

fn make_span(request: &http::Request<Body>) -> Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let span = tracing::info_span!(
        "request",
        request_id = %request_id_of(request),
        method = %request.method(),
        route,
        status = Empty,
        latency_ms = Empty,
        user_id = Empty,
    );
    if let Some(trace) = spans::log_trace(request, &span) {
        trace.attach(&span);
    }
    span
}

/// The access log: one line per request with id, method, route template, status and
/// latency (from the span), never the raw path or query string.
fn log_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_secs_f64() * 1000.0;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    tracing::info!(status, latency_ms, "request completed");
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string panic>".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::new(ErrorKind::Internal).into_response()
}

fn cors_layer(config: &StackConfig) -> CorsLayer {
    let exact: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let development = config.env == AppEnv::Development;
    let allow_origin = AllowOrigin::predicate(move |origin, _| {
        exact.iter().any(|o| o == origin) || (development && is_local_origin(origin.as_bytes()))
    });
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
            REQUEST_ID,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            REQUEST_ID,
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(600))
}

/// `http://localhost[:port]` and `http://127.0.0.1[:port]`: what a developer's front end runs on.
fn is_local_origin(origin: &[u8]) -> bool {
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_are_recognised_exactly() {
        assert!(is_local_origin(b"http://localhost:5173"));
        assert!(is_local_origin(b"http://127.0.0.1"));
        assert!(!is_local_origin(b"https://localhost:5173"));
        assert!(!is_local_origin(b"http://localhost.evil.example"));
        assert!(!is_local_origin(b"http://localhost:80/x"));
    }
}
