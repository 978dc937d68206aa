//! The local server: the four function routers, exactly as the Lambda binaries mount them,
//! merged into one app. The binary (`main.rs`) adds the command line, serving and shutdown.

use axum::Router;
use shared::{
    AppState,
    http::{StackConfig, stack},
};

pub mod bootstrap;
pub mod serve;

/// All routes of the API, without the middleware stack.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .merge(health::router(state.clone()))
        .merge(auth::router(state.clone()))
        .merge(tasks::router(state.clone()))
        .merge(admin::router(state))
}

/// The whole app as served: routes plus the stack.
pub fn app(state: AppState) -> Router {
    let stack_config = StackConfig::from(state.config.as_ref());
    stack(routes(state), &stack_config)
}
