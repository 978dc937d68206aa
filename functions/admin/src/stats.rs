//! `GET /v1/admin/stats`.

use axum::{Json, extract::State};
use shared::{ApiResult, AppState, auth::AdminUser, models::Stats};

pub async fn stats(State(state): State<AppState>, _admin: AdminUser) -> ApiResult<Json<Stats>> {
    Ok(Json(state.store.admin().stats().await?))
}
