//! `GET /v1/tasks`: filters, search, sort and keyset pagination.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AuthUser,
    error::ApiQuery,
    models::{
        SortKey, SortValue, Task, TaskPosition, TaskQuery, TaskSort, TaskTitle, fold,
        parse_timestamp,
    },
    pagination::{Page, parse_limit},
};
use time::OffsetDateTime;
use uuid::Uuid;

/// Every parameter as text, so each bad one gets its own clear `invalid_query`.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    completed: Option<String>,
    due_before: Option<String>,
    due_after: Option<String>,
    q: Option<String>,
    sort: Option<String>,
}

/// Where a page ended, inside the signed cursor.
#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    /// Time key (created_at, due_date), RFC 3339.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    t: Option<OffsetDateTime>,
    /// Text key (folded title).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    id: Uuid,
}

fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorKind::InvalidQuery).with_detail(detail)
}

pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<Task>>> {
    let limit = parse_limit(params.limit.as_deref())?;
    let sort = match params.sort.as_deref() {
        None => TaskSort::DEFAULT,
        Some(s) => TaskSort::parse(s).ok_or_else(|| {
            bad("sort must be one of created_at, -created_at, due_date, -due_date, title, -title")
        })?,
    };
    let completed = match params.completed.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad("completed must be true or false")),
    };
    let time_param = |name: &str, raw: Option<&str>| -> ApiResult<Option<OffsetDateTime>> {
        raw.map(|r| parse_timestamp(r).map_err(|m| bad(format!("{name} {m}"))))
            .transpose()
    };
    let due_before = time_param("due_before", params.due_before.as_deref())?;
    let due_after = time_param("due_after", params.due_after.as_deref())?;
    let search = match params.q.as_deref() {
        None | Some("") => None,
        Some(q) if q.chars().count() > TaskTitle::MAX_CHARS => {
            return Err(bad("q must be at most 200 characters"));
        }
        Some(q) => Some(fold(q)),
    };
    let list_name = format!("tasks:{}", sort.as_str());
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            let position: CursorPosition = state.cursors.decode(&list_name, c)?;
            to_position(position, sort.key).ok_or_else(|| bad("cursor is invalid"))
        })
        .transpose()?;

    let query = TaskQuery {
        completed,
        due_before,
        due_after,
        search,
        sort,
        after,
        fetch: limit + 1,
    };
    let rows = state.store.tasks().list(auth.id, &query).await?;
    Ok(Json(Page::from_fetched(rows, limit, |last| {
        state
            .cursors
            .encode(&list_name, &from_position(TaskPosition::of(last, sort)))
    })))
}

fn from_position(position: TaskPosition) -> CursorPosition {
    let (t, s) = match position.value {
        SortValue::Time(t) => (Some(t), None),
        SortValue::NoDueDate => (None, None),
        SortValue::Text(s) => (None, Some(s)),
    };
    CursorPosition {
        t,
        s,
        id: position.id,
    }
}

fn to_position(cursor: CursorPosition, key: SortKey) -> Option<TaskPosition> {
    let value = match (key, cursor.t, cursor.s) {
        (SortKey::CreatedAt, Some(t), None) => SortValue::Time(t),
        (SortKey::DueDate, Some(t), None) => SortValue::Time(t),
        (SortKey::DueDate, None, None) => SortValue::NoDueDate,
        (SortKey::Title, None, Some(s)) => SortValue::Text(s),
        _ => return None,
    };
    Some(TaskPosition {
        value,
        id: cursor.id,
    })
}
