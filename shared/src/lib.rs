//! The common library of the task API. Every function crate and the local server build on
//! it; it knows nothing of any one function.
//!
//! - [`auth`]: password hashing, access and refresh tokens, the `AuthUser` extractor.
//! - [`models`]: domain types parsed at the handler edge.
//! - [`domain`]: the API's decisions (last admin, If-Match, idempotent replay) as pure
//!   functions, and the refusals they return.
//! - [`pagination`]: signed keyset cursors and pages.
//! - [`config`]: the typed, validated configuration.
//! - [`error`]: problem+json errors: the kinds, `ApiError`, the `Problem` body.
//! - [`extract`]: the JSON, query and path extractors whose rejections are problems.
//! - [`http`]: the middleware stack every deployment shape applies.
//! - [`store`]: repository traits with Postgres and SQLite implementations.
//! - [`state`]: the application state handed to routers.
//! - [`metrics`]: request metrics as Prometheus text or CloudWatch EMF lines.
//! - [`openapi`]: what every operation of the OpenAPI document shares.
//! - [`lambda`]: running a router under `lambda_http`.
//! - [`telemetry`]: tracing set-up.

pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod extract;
pub mod http;
pub mod lambda;
pub mod mail;
pub mod metrics;
pub mod models;
pub mod openapi;
pub mod pagination;
pub mod state;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{ApiError, ApiResult, ErrorKind};
pub use state::AppState;
