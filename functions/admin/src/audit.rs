//! `GET /v1/admin/audit`: newest first, keyset-paginated by id (UUIDv7, time-ordered).

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    ApiResult, AppState,
    auth::AdminUser,
    error::Problem,
    extract::ApiQuery,
    models::AuditEntry,
    pagination::{Page, parse_limit},
};
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `next_cursor` of the previous page, as it was given.
    #[param(value_type = Option<String>)]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    id: Uuid,
}

const LIST: &str = "admin-audit";

/// A page of the audit log, newest first.
#[utoipa::path(get, path = "/v1/admin/audit", operation_id = "list_audit", tag = "admin",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of audit entries.", body = Page<AuditEntry>),
        (status = 403, description = "`forbidden`: the caller is not an admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let limit = parse_limit(params.limit.as_deref())?;
    let before = state
        .cursors
        .decode_param::<CursorPosition>(LIST, params.cursor.as_deref())?
        .map(|p| p.id);
    let rows = state.store.admin().list_audit(before, limit + 1).await?;
    Ok(Json(Page::from_fetched(rows, limit, |last| {
        state.cursors.encode(LIST, &CursorPosition { id: last.id })
    })))
}
