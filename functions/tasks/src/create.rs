//! `POST /v1/tasks`, with `Idempotency-Key`.

use axum::{
    Json,
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use shared::{
    ApiError, ApiResult, AppState,
    auth::AuthUser,
    domain::Created,
    error::{FieldError, Problem},
    extract::ApiJson,
    models::{FieldErrors, NewTask, Task, TaskDescription, TaskTitle, now, parse_timestamp},
    store::IdempotencyClaim,
};
use time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// How long an idempotency key is remembered.
const IDEMPOTENCY_TTL: Duration = Duration::hours(24);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// 1 to 200 characters after trimming.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    title: String,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\x00]*$")]
    description: Option<String>,
    /// RFC 3339; stored in UTC.
    #[serde(default)]
    #[schema(format = DateTime)]
    due_date: Option<String>,
    /// `false` when absent.
    #[serde(default)]
    completed: Option<bool>,
}

/// Creates a task. With an `Idempotency-Key`, a retry of the same request within 24 h
/// returns the original answer (`Idempotent-Replayed: true`) instead of a second task.
#[utoipa::path(post, path = "/v1/tasks", operation_id = "create_task", tag = "tasks",
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255,
        pattern = r"^[\x20-\x7E]+$", description = "1 to 255 printable ASCII characters.")),
    request_body = CreateTask,
    responses(
        (status = 201, description = "Created (or replayed).", body = Task, headers(
            ("ETag" = String, description = "The task's version in quotes."),
            ("Location" = String, description = "`/v1/tasks/{id}`"),
            ("Idempotent-Replayed" = String, description = "`true` on a replay."),
        )),
        (status = 409, description = "`idempotency_request_in_progress`: the original request with this key is still running (with `Retry-After`); or `task_limit_reached`: the caller has `MAX_TASKS_PER_USER` tasks already.",
            body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again."))),
        (status = 422, description = "`validation_failed` (invalid fields or `Idempotency-Key`), or `idempotency_key_reused` (the key was used with a different body).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateTask>,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let title = errors.check("title", TaskTitle::parse(&body.title));
    let description = body
        .description
        .as_deref()
        .map(|d| errors.check("description", TaskDescription::parse(d)));
    let due_date = body
        .due_date
        .as_deref()
        .map(|d| errors.check("due_date", parse_timestamp(d)));
    let key = idempotency_key(&headers).map_err(|message| {
        ApiError::validation(vec![FieldError::new("Idempotency-Key", message)])
    })?;
    let title = errors.finish_with(title)?;
    let description = description.flatten();
    let due_date = due_date.flatten();
    let completed = body.completed.unwrap_or(false);

    let now = now();
    let claim = key.map(|key| IdempotencyClaim {
        fingerprint: fingerprint(&title, description.as_ref(), due_date, completed),
        key,
        expires_at: now + IDEMPOTENCY_TTL,
    });
    let task = NewTask {
        id: Uuid::now_v7(),
        owner_id: auth.id,
        title,
        description,
        completed,
        due_date,
        now,
    };
    let max_tasks = state.config.max_tasks_per_user;
    match state
        .store
        .tasks()
        .create(&task, claim.as_ref(), max_tasks)
        .await??
    {
        Created::New(task) => Ok(created(
            task.id,
            task.version,
            StatusCode::CREATED,
            Json(&task),
        )),
        Created::Replayed { status, body } => replay(status, body),
    }
}

fn created(id: Uuid, version: i64, status: StatusCode, body: impl IntoResponse) -> Response {
    (
        status,
        [
            crate::etag(version),
            (header::LOCATION, format!("/v1/tasks/{id}")),
        ],
        body,
    )
        .into_response()
}

/// The original answer, byte for byte, marked as a replay.
fn replay(status: u16, body: String) -> ApiResult<Response> {
    #[derive(Deserialize)]
    struct Recorded {
        id: Uuid,
        version: i64,
    }
    let recorded: Recorded = serde_json::from_str(&body).map_err(ApiError::internal)?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::CREATED);
    let mut response = created(
        recorded.id,
        recorded.version,
        status,
        (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(body),
        ),
    );
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}

/// `Idempotency-Key`: absent, or 1..=255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, &'static str> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if (1..=255).contains(&bytes.len()) && bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
    } else {
        Err("must be 1 to 255 printable ASCII characters")
    }
}

/// The request as parsed, hashed: the same request in different formatting (spacing, key
/// order, `"completed": false` spelled out or not) has the same fingerprint.
fn fingerprint(
    title: &TaskTitle,
    description: Option<&TaskDescription>,
    due_date: Option<time::OffsetDateTime>,
    completed: bool,
) -> [u8; 32] {
    let canonical = json!({
        "title": title.as_str(),
        "description": description.map(TaskDescription::as_str),
        "due_date": due_date.map(|d| d.unix_timestamp_nanos().to_string()),
        "completed": completed,
    });
    Sha256::digest(canonical.to_string().as_bytes()).into()
}
