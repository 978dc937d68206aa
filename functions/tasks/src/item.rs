//! `GET`, `PATCH` and `DELETE /v1/tasks/{id}`, with ETag / If-Match.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AuthUser,
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

/// Most entity tags an `If-Match` may list, and most bytes its values may hold: a client
/// names the one or two versions it has seen, never thousands.
const IF_MATCH_MAX_ENTRIES: usize = 32;
const IF_MATCH_MAX_BYTES: usize = 4096;

/// `If-Match`: absent or `*` matches any existing task; otherwise a list of strong ETags
/// (`"3"`, `"3", "4"`). Weak or malformed entries match nothing, as RFC 9110 requires of
/// strong comparison. A list longer than [`IF_MATCH_MAX_ENTRIES`] entries or
/// [`IF_MATCH_MAX_BYTES`] bytes is 412 before the task is even looked up: it cannot be a
/// precondition a client means, and nothing changes.
fn if_match(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let values: Vec<&str> = headers
        .get_all(header::IF_MATCH)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    if values.is_empty() {
        return Ok(Precondition::Any);
    }
    let too_long = || {
        ApiError::new(ErrorKind::PreconditionFailed).with_detail(format!(
            "If-Match may list at most {IF_MATCH_MAX_ENTRIES} entity tags in {IF_MATCH_MAX_BYTES} bytes"
        ))
    };
    if values.iter().map(|v| v.len()).sum::<usize>() > IF_MATCH_MAX_BYTES {
        return Err(too_long());
    }
    let entries: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if entries.len() > IF_MATCH_MAX_ENTRIES {
        return Err(too_long());
    }
    if entries.contains(&"*") {
        return Ok(Precondition::Any);
    }
    let mut versions: Vec<i64> = entries
        .iter()
        .filter_map(|e| e.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    Ok(Precondition::Versions(versions))
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
    fn if_match_forms() {
        let parse = |values: &[&str]| if_match(&headers(values)).unwrap();
        assert_eq!(parse(&[]), Precondition::Any);
        assert_eq!(parse(&["*"]), Precondition::Any);
        assert_eq!(parse(&["\"3\""]), Precondition::Versions(vec![3]));
        assert_eq!(
            parse(&["\"7\", \"4\"", "\"3\", \"4\""]),
            Precondition::Versions(vec![3, 4, 7])
        );
        assert_eq!(parse(&["W/\"3\""]), Precondition::Versions(vec![]));
        assert_eq!(parse(&["3"]), Precondition::Versions(vec![]));
        assert_eq!(
            parse(&["\"99999999999999999999999\""]),
            Precondition::Versions(vec![])
        );
    }

    #[test]
    fn long_if_match_lists_are_412_whatever_their_entries() {
        let list = |n: usize| {
            (0..n)
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert!(if_match(&headers(&[&list(32)])).is_ok());
        for values in [
            vec![list(33)],
            vec![list(20), list(13)],
            vec!["*, ".repeat(40)],
            vec![format!("\"1\", {}", " ".repeat(5000))],
        ] {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let err = if_match(&headers(&values)).unwrap_err();
            assert_eq!(
                axum::response::IntoResponse::into_response(err).status(),
                StatusCode::PRECONDITION_FAILED
            );
        }
    }
}
