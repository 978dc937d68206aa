//! Runs a router as a Lambda function through `lambda_http`. A function's `main` is one
//! call to [`serve`]; everything it does at init is cheap (read config, build the router);
//! the database pool connects on first use.

use axum::Router;
use lambda_http::{RequestExt as _, request::RequestContext};

use crate::{
    config::{Config, Runtime},
    http::{LambdaInvocation, PlatformSourceIp, StackConfig, UpstreamRequestId, stack},
    state::AppState,
    telemetry,
};

/// Loads production config, builds `routes(state)` with the full stack and serves it under
/// the Lambda runtime until the runtime stops. A configuration error stops the process
/// with one line naming the variable.
///
/// The functions' `main`s run this on a current-thread runtime: an instance serves one
/// request at a time, and password hashing has its own threads, so worker threads would
/// only cost their start-up. Against the usual `#[tokio::main]` that is about 0.3 ms off
/// every cold start (`bench/run`, row 1).
pub async fn serve(routes: fn(AppState) -> Router) -> Result<(), lambda_http::Error> {
    let state = init()?;
    let stack_config = StackConfig::new(&state);
    let app = stack(routes(state), &stack_config);
    run(app).await
}

/// What every function does at init, cheaply: production configuration from the
/// environment (a bad value stops the process with one line naming the variable), logging,
/// and the state, whose pool connects on first use. On SIGTERM the pool is closed.
pub fn init() -> Result<AppState, lambda_http::Error> {
    let config = match Config::from_env(Runtime::Lambda) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    telemetry::init(&config);
    let state = AppState::new(config).inspect_err(|e| {
        tracing::error!(error = %crate::error::chain(e), "building the store");
    })?;
    let store = state.store.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        // Lambda sends SIGTERM before shutting an instance down (when an extension is
        // registered): give the database its connections back, then leave.
        tracing::info!("SIGTERM: closing the database pool");
        store.close().await;
        // Spans an invocation's bounded flush left behind, if traces are exported.
        telemetry::otel::shutdown(std::time::Duration::from_millis(300)).await;
        std::process::exit(0);
    });
    Ok(state)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// Serves an already-built app (the stack applied) under `lambda_http`. Each invocation's
/// spans are handed to the trace collector after its response is complete and before it is
/// posted ([`telemetry::otel::flush`]): once posted, the instance may be frozen.
pub async fn run(app: Router) -> Result<(), lambda_http::Error> {
    use tower::ServiceExt as _;

    let app = tower::ServiceBuilder::new()
        .map_request(adapt_request)
        .service(app);
    let handler = lambda_http::Adapter::from(app).and_then(|response| async move {
        telemetry::otel::flush().await;
        Ok::<_, std::convert::Infallible>(response)
    });
    lambda_runtime::run(handler).await
}

/// Makes a Lambda request look like the same request to the local server:
/// - the API Gateway request id becomes ours when the caller sent none;
/// - a named stage (`/prod/v1/tasks` under a REST API stage `prod`) is removed from the
///   path, because routes do not depend on the stage. The `$default` stage of the HTTP API
///   in `template.yaml` has no prefix to remove.
fn adapt_request(mut req: lambda_http::Request) -> lambda_http::Request {
    let stage = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.stage.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.stage.clone(),
        _ => None,
    };
    if let Some(stage) = stage.filter(|s| !s.is_empty() && s != "$default") {
        strip_stage(&mut req, &stage);
    }
    let id = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone(),
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.request_id.clone(),
        _ => None,
    }
    .or_else(|| req.lambda_context_ref().map(|ctx| ctx.request_id.clone()))
    .filter(|id| !id.is_empty());
    if let Some(id) = id {
        req.extensions_mut().insert(UpstreamRequestId(id));
    }
    if let Some(ip) = source_ip(&req) {
        req.extensions_mut().insert(PlatformSourceIp(ip));
    }
    let invocation = req
        .lambda_context_ref()
        .map(|ctx| LambdaInvocation::new(ctx.request_id.clone(), ctx.xray_trace_id.clone()));
    if let Some(invocation) = invocation {
        req.extensions_mut().insert(invocation);
    }
    req
}

/// The caller's address as API Gateway saw it (not a header the caller could write); for an
/// ALB, the entry the load balancer appended to `X-Forwarded-For` (the last).
fn source_ip(req: &lambda_http::Request) -> Option<std::net::IpAddr> {
    let text = match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.identity.source_ip.clone(),
        RequestContext::Alb(_) => req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(|s| s.trim().to_owned()),
        _ => None,
    }?;
    text.parse().ok()
}

fn strip_stage(req: &mut lambda_http::Request, stage: &str) {
    let prefix = format!("/{stage}");
    let path = req.uri().path();
    let rest = match path.strip_prefix(&prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => return,
    };
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// The trace span of an invocation that is not an HTTP request (the `mail` function's runs):
/// a root under the invocation's X-Ray context, as an HTTP request's server span is. Spans
/// are recorded only while traces are exported; end it before [`telemetry::otel::flush`].
pub fn invocation_span(name: &'static str, context: &lambda_runtime::Context) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let invocation =
        LambdaInvocation::new(context.request_id.clone(), context.xray_trace_id.clone());
    let span = tracing::info_span!(
        target: telemetry::otel::SPAN,
        "invocation",
        otel.name = name,
        otel.kind = "server",
        faas.invocation_id = invocation.request_id.as_str(),
        faas.coldstart = invocation.coldstart,
        faas.trigger = "timer",
    );
    if let Some(parent) =
        telemetry::otel::parent(&http::HeaderMap::new(), invocation.xray.as_deref())
    {
        let _ = span.set_parent(parent);
    }
    span
}
