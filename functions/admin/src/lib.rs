//! The `admin` function: user management with the last-admin guard, stats and the audit
//! log (README, "API"; the `admin` operations of `openapi.json`). Every handler takes [`AdminUser`](shared::auth::AdminUser): no
//! token is 401, a non-admin is 403, and the role is read from the database per request.

mod audit;
mod stats;
mod users;

use axum::{Router, routing::get};
use shared::AppState;

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    users::list,
    users::detail,
    users::change,
    users::delete,
    stats::stats,
    audit::list,
), modifiers(&CHANGE_USER_IS_NON_EMPTY))]
pub struct ApiDoc;

const CHANGE_USER_IS_NON_EMPTY: shared::openapi::NonEmptyBody =
    shared::openapi::NonEmptyBody("ChangeUser");

/// The routes of this function, with state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/admin/users", get(users::list))
        .route(
            "/v1/admin/users/{id}",
            get(users::detail)
                .patch(users::change)
                .delete(users::delete),
        )
        .route("/v1/admin/stats", get(stats::stats))
        .route("/v1/admin/audit", get(audit::list))
        .with_state(state)
}
