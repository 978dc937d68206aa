//! `GET /v1/admin/stats`.

use axum::{Json, extract::State};
use shared::{ApiResult, AppState, auth::AdminUser, error::Problem, models::Stats};

/// Counts of users and tasks.
#[utoipa::path(get, path = "/v1/admin/stats", operation_id = "get_stats", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The counts.", body = Stats),
        (status = 403, description = "`forbidden`: the caller is not an admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stats(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<Stats>> {
    Ok(Json(state.store.admin().stats().await?))
}
