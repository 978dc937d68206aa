//! Runs a router as a Lambda function through `lambda_http`. A function's `main` is one
//! call to [`serve`]; everything it does at init is cheap (read config, build the router);
//! the database pool connects on first use.

use axum::Router;
use lambda_http::{RequestExt as _, request::RequestContext};

use crate::{
    config::{Config, Runtime},
    http::{StackConfig, UpstreamRequestId, stack},
    state::AppState,
    telemetry,
};

/// Loads production config, builds `routes(state)` with the full stack and serves it under
/// the Lambda runtime until the runtime stops. A configuration error stops the process
/// with one line naming the variable.
pub async fn serve(routes: fn(AppState) -> Router) -> Result<(), lambda_http::Error> {
    let config = match Config::from_env(Runtime::Lambda) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(1);
        }
    };
    telemetry::init(&config);
    let stack_config = StackConfig::from(&config);
    let state = AppState::new(config).inspect_err(|e| {
        tracing::error!(error = %crate::error::chain(e), "building the store");
    })?;
    let app = stack(routes(state), &stack_config);
    run(app).await
}

/// Serves an already-built app (the stack applied) under `lambda_http`.
pub async fn run(app: Router) -> Result<(), lambda_http::Error> {
    let app = tower::ServiceBuilder::new()
        .map_request(attach_upstream_request_id)
        .service(app);
    lambda_http::run(app).await
}

/// Under API Gateway the platform's request id becomes ours when the caller sent none.
fn attach_upstream_request_id(mut req: lambda_http::Request) -> lambda_http::Request {
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
    req
}
