//! `/v1/admin/users` and `/v1/admin/users/{id}`.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AdminUser,
    error::{ApiJson, ApiPath, ApiQuery, FieldError},
    models::{Role, User, UserChange, UserDetail, UserQuery, fold, now},
    pagination::{Page, parse_limit},
    store::AdminOutcome,
};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<String>,
    cursor: Option<String>,
    q: Option<String>,
    role: Option<String>,
    disabled: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    #[serde(with = "time::serde::rfc3339")]
    t: OffsetDateTime,
    id: Uuid,
}

const LIST: &str = "admin-users";

fn bad(detail: &'static str) -> ApiError {
    ApiError::new(ErrorKind::InvalidQuery).with_detail(detail)
}

pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Json<Page<User>>> {
    let limit = parse_limit(params.limit.as_deref())?;
    let role = params
        .role
        .as_deref()
        .map(|r| Role::parse(r).map_err(|_| bad("role must be user or admin")))
        .transpose()?;
    let disabled = match params.disabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(bad("disabled must be true or false")),
    };
    let search = match params.q.as_deref() {
        None | Some("") => None,
        Some(q) if q.chars().count() > 254 => return Err(bad("q must be at most 254 characters")),
        Some(q) => Some(fold(q)),
    };
    let after = params
        .cursor
        .as_deref()
        .map(|c| {
            state
                .cursors
                .decode::<CursorPosition>(LIST, c)
                .map(|p| (p.t, p.id))
        })
        .transpose()?;
    let rows = state
        .store
        .admin()
        .list_users(&UserQuery {
            search,
            role,
            disabled,
            after,
            fetch: limit + 1,
        })
        .await?;
    Ok(Json(Page::from_fetched(rows, limit, |last| {
        let position = CursorPosition {
            t: last.created_at,
            id: last.id,
        };
        state.cursors.encode(LIST, &position)
    })))
}

pub async fn detail(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<UserDetail>> {
    state
        .store
        .admin()
        .user_detail(id)
        .await?
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

pub async fn change(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChangeUser>,
) -> ApiResult<Json<User>> {
    let role = body
        .role
        .as_deref()
        .map(|r| Role::parse(r).map_err(|m| ApiError::validation(vec![FieldError::new("role", m)])))
        .transpose()?;
    if role.is_none() && body.disabled.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must set at least one of role, disabled",
        )]));
    }
    let change = UserChange {
        role,
        disabled: body.disabled,
    };
    match state
        .store
        .admin()
        .change_user(Some(admin.id), id, &change, now())
        .await?
    {
        AdminOutcome::Done(user) => {
            tracing::info!(target_id = %id, ?change, "admin changed a user");
            Ok(Json(user))
        }
        other => Err(refusal(other)),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    match state.store.admin().delete_user(admin.id, id, now()).await? {
        AdminOutcome::Done(()) => {
            tracing::info!(target_id = %id, "admin deleted a user");
            Ok(StatusCode::NO_CONTENT)
        }
        other => Err(refusal(other)),
    }
}

fn refusal<T>(outcome: AdminOutcome<T>) -> ApiError {
    match outcome {
        AdminOutcome::NotFound => ApiError::not_found(),
        AdminOutcome::LastAdmin => {
            ApiError::new(ErrorKind::LastAdmin).with_detail("this would leave no enabled admin")
        }
        AdminOutcome::Forbidden => {
            ApiError::new(ErrorKind::Forbidden).with_detail("you are no longer an admin")
        }
        AdminOutcome::SelfDeletion => ApiError::new(ErrorKind::Forbidden)
            .with_detail("admins cannot delete their own account through the API"),
        AdminOutcome::Done(_) => ApiError::internal(std::io::Error::other(
            "BUG: a successful admin outcome was treated as a refusal",
        )),
    }
}
