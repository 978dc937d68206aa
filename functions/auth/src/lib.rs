//! The `auth` function: registration, login, refresh-token rotation with reuse detection,
//! logout, the current user, password change, and account recovery and email verification
//! by mail (README, "API"; the `auth` operations of `openapi.json`).

mod account;
mod guard;
mod recovery;
mod register;
mod session;

use axum::{Router, routing::post};
pub use recovery::FORGOT_TIMEBOX;
use shared::AppState;

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    register::register,
    session::login,
    session::refresh,
    session::logout,
    account::me,
    account::change_password,
    recovery::forgot,
    recovery::reset,
    recovery::request_verification,
    recovery::verify,
))]
pub struct ApiDoc;

/// The routes of this function, with state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/register", post(register::register))
        .route("/v1/auth/login", post(session::login))
        .route("/v1/auth/refresh", post(session::refresh))
        .route("/v1/auth/logout", post(session::logout))
        .route("/v1/auth/me", axum::routing::get(account::me))
        .route("/v1/auth/password", post(account::change_password))
        .route("/v1/auth/password/forgot", post(recovery::forgot))
        .route("/v1/auth/password/reset", post(recovery::reset))
        .route(
            "/v1/auth/email/verification",
            post(recovery::request_verification),
        )
        .route("/v1/auth/email/verify", post(recovery::verify))
        .with_state(state)
}
