//! The common library of the task API. Every function crate and the local server build on
//! it; it knows nothing of any one function.
//!
//! - [`config`]: the typed, validated configuration.
//! - [`error`]: problem+json errors and the extractors that produce them.
//! - [`http`]: the middleware stack every deployment shape applies.
//! - [`store`]: repository traits with Postgres and SQLite implementations.
//! - [`state`]: the application state handed to routers.
//! - [`lambda`]: running a router under `lambda_http`.
//! - [`telemetry`]: tracing set-up.

pub mod config;
pub mod error;
pub mod http;
pub mod lambda;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, ApiResult, ErrorKind};
pub use state::AppState;
