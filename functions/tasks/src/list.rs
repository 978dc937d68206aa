//! `GET /v1/tasks`: filters, search, sort and keyset pagination.

use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AuthUser,
    extract::ApiQuery,
    models::{
        SortKey, SortValue, Task, TaskPosition, TaskQuery, TaskSort, TaskTitle, parse_timestamp,
        search_term,
    },
    pagination::{Page, parse_limit},
};
use time::OffsetDateTime;
use utoipa::IntoParams;
use uuid::Uuid;

/// Every parameter as text, so each bad one gets its own clear `invalid_query`; the
/// OpenAPI document shows the types they are parsed into.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 20)]
    limit: Option<String>,
    /// `next_cursor` of the previous page, as it was given.
    #[param(value_type = Option<String>)]
    cursor: Option<String>,
    #[param(value_type = Option<bool>)]
    completed: Option<String>,
    /// Only tasks due before this instant.
    #[param(value_type = Option<String>, format = DateTime)]
    due_before: Option<String>,
    /// Only tasks due after this instant.
    #[param(value_type = Option<String>, format = DateTime)]
    due_after: Option<String>,
    /// Case-insensitive substring of the title.
    #[param(value_type = Option<String>, max_length = 200, pattern = r"^[^\x00]*$")]
    q: Option<String>,
    /// Ties are broken by id; tasks without a due date sort last. Default `-created_at`.
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
}

fn sort_schema() -> utoipa::openapi::Object {
    shared::openapi::one_of_strings(&TaskSort::ALL)
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

/// A page of the caller's tasks, filtered and sorted.
#[utoipa::path(get, path = "/v1/tasks", operation_id = "list_tasks", tag = "tasks",
    security(("bearer" = [])),
    params(ListParams),
    responses((status = 200, description = "A page of tasks.", body = Page<Task>)))]
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
    let search = search_term(params.q.as_deref(), TaskTitle::MAX_CHARS).map_err(bad)?;
    let list_name = format!("tasks:{}", sort.as_str());
    let after = state
        .cursors
        .decode_param::<CursorPosition>(&list_name, params.cursor.as_deref())?
        .map(|position| to_position(position, sort.key).ok_or_else(|| bad("cursor is invalid")))
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
