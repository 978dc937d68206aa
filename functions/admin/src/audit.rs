//! `GET /v1/admin/audit`: newest first, keyset-paginated by id (UUIDv7, time-ordered).

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    ApiResult, AppState,
    auth::AdminUser,
    error::ApiQuery,
    models::AuditEntry,
    pagination::{Page, parse_limit},
};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    id: Uuid,
}

const LIST: &str = "admin-audit";

pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let limit = parse_limit(params.limit.as_deref())?;
    let before = params
        .cursor
        .as_deref()
        .map(|c| {
            state
                .cursors
                .decode::<CursorPosition>(LIST, c)
                .map(|p| p.id)
        })
        .transpose()?;
    let rows = state.store.admin().list_audit(before, limit + 1).await?;
    Ok(Json(Page::from_fetched(rows, limit, |last| {
        state.cursors.encode(LIST, &CursorPosition { id: last.id })
    })))
}
