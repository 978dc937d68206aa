//! `GET`, `PATCH` and `DELETE /v1/tasks/{id}`, with ETag / If-Match.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState,
    auth::AuthUser,
    domain,
    error::{FieldError, Problem},
    extract::{ApiJson, ApiPath},
    models::{
        FieldErrors, Precondition, Task, TaskDescription, TaskPatch, TaskTitle, now,
        parse_timestamp, present,
    },
};
use utoipa::ToSchema;
use uuid::Uuid;

/// One of the caller's tasks.
#[utoipa::path(get, path = "/v1/tasks/{id}", operation_id = "get_task", tag = "tasks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The task id.")),
    responses((status = 200, description = "The task.", body = Task,
        headers(("ETag" = String, description = "The task's version in quotes.")))))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    let task = state
        .store
        .tasks()
        .get(auth.id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(([crate::etag(task.version)], Json(task)).into_response())
}

/// Any non-empty subset of the fields; `null` clears `description` or `due_date`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTask {
    /// 1 to 200 characters after trimming.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = false, min_length = 1, max_length = 200,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\x00]*$")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    completed: Option<Option<bool>>,
    /// RFC 3339, or `null` to clear.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    due_date: Option<Option<String>>,
}

impl PatchTask {
    /// Field-by-field parsing: absent leaves a field alone, `null` clears the nullable ones.
    fn parse(self) -> ApiResult<TaskPatch> {
        if self.title.is_none()
            && self.description.is_none()
            && self.completed.is_none()
            && self.due_date.is_none()
        {
            return Err(ApiError::validation(vec![FieldError::new(
                "body",
                "must set at least one of title, description, completed, due_date",
            )]));
        }
        let mut errors = FieldErrors::new();
        let null = |field: &str| Err::<(), _>(format!("{field} cannot be null"));
        let mut patch = TaskPatch::default();
        match self.title {
            None => {}
            Some(None) => {
                errors.check("title", null("title"));
            }
            Some(Some(t)) => patch.title = errors.check("title", TaskTitle::parse(&t)),
        }
        match self.description {
            None => {}
            Some(None) => patch.description = Some(None),
            Some(Some(d)) => {
                patch.description = errors
                    .check("description", TaskDescription::parse(&d))
                    .map(Some);
            }
        }
        match self.completed {
            None => {}
            Some(None) => {
                errors.check("completed", null("completed"));
            }
            Some(Some(c)) => patch.completed = Some(c),
        }
        match self.due_date {
            None => {}
            Some(None) => patch.due_date = Some(None),
            Some(Some(d)) => {
                patch.due_date = errors.check("due_date", parse_timestamp(&d)).map(Some);
            }
        }
        errors.finish()?;
        Ok(patch)
    }
}

/// Changes some fields and bumps `version`. With `If-Match`, only if the task is still at
/// that version (checked atomically with the write).
#[utoipa::path(patch, path = "/v1/tasks/{id}", operation_id = "update_task", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The task id."),
        ("If-Match" = Option<String>, Header, nullable = false, description = "An ETag from an earlier answer (`\"3\"`), a list of them, or `*`."),
    ),
    request_body = PatchTask,
    responses(
        (status = 200, description = "The changed task.", body = Task,
            headers(("ETag" = String, description = "The task's new version in quotes."))),
        (status = 412, description = "`precondition_failed`: `If-Match` does not match the current version; nothing changed.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PatchTask>,
) -> ApiResult<Response> {
    let patch = body.parse()?;
    let precondition = if_match(&headers)?;
    let task = state
        .store
        .tasks()
        .update(auth.id, id, &patch, &precondition, now())
        .await??;
    Ok(([crate::etag(task.version)], Json(task)).into_response())
}

/// Deletes a task; with `If-Match`, only if it is still at that version.
#[utoipa::path(delete, path = "/v1/tasks/{id}", operation_id = "delete_task", tag = "tasks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The task id."),
        ("If-Match" = Option<String>, Header, nullable = false, description = "An ETag from an earlier answer (`\"3\"`), a list of them, or `*`."),
    ),
    responses(
        (status = 204, description = "Deleted."),
        (status = 412, description = "`precondition_failed`: `If-Match` does not match the current version; nothing changed.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    state
        .store
        .tasks()
        .delete(auth.id, id, &if_match(&headers)?)
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// `If-Match` as the store applies it ([`shared::domain::precondition`]). A header value
/// that is not visible ASCII names no version.
fn if_match(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let values = headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|v| v.to_str().unwrap_or(""));
    Ok(domain::precondition(values)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(header::IF_MATCH, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn every_if_match_header_line_counts_and_a_long_list_is_412() {
        assert_eq!(
            if_match(&headers(&["\"7\", \"4\"", "\"3\""])).unwrap(),
            Precondition::Versions(vec![3, 4, 7])
        );
        let many = "\"1\", ".repeat(20);
        let err = if_match(&headers(&[&many, &many])).unwrap_err();
        assert_eq!(
            axum::response::IntoResponse::into_response(err).status(),
            StatusCode::PRECONDITION_FAILED
        );
    }
}
