//! `/v1/admin/users` and `/v1/admin/users/{id}`.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AdminUser,
    error::{FieldError, Problem},
    extract::{ApiJson, ApiPath, ApiQuery},
    models::{
        FieldErrors, Role, User, UserChange, UserDetail, UserQuery, now, present, search_term,
    },
    pagination::{Page, parse_limit},
};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
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
    /// Case-insensitive substring of email or name.
    #[param(value_type = Option<String>, max_length = 254, pattern = r"^[^\x00]*$")]
    q: Option<String>,
    #[param(value_type = Option<Role>)]
    role: Option<String>,
    #[param(value_type = Option<bool>)]
    disabled: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CursorPosition {
    #[serde(with = "time::serde::rfc3339")]
    t: OffsetDateTime,
    id: Uuid,
}

const LIST: &str = "admin-users";

fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorKind::InvalidQuery).with_detail(detail)
}

/// A page of users, oldest first.
#[utoipa::path(get, path = "/v1/admin/users", operation_id = "list_users", tag = "admin",
    security(("bearer" = [])),
    params(ListParams),
    responses(
        (status = 200, description = "A page of users.", body = Page<User>),
        (status = 403, description = "`forbidden`: the caller is not an admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
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
    let search = search_term(params.q.as_deref(), 254).map_err(bad)?;
    let after = state
        .cursors
        .decode_param::<CursorPosition>(LIST, params.cursor.as_deref())?
        .map(|p| (p.t, p.id));
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

/// One user, with how many tasks they have.
#[utoipa::path(get, path = "/v1/admin/users/{id}", operation_id = "get_user", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user id.")),
    responses(
        (status = 200, description = "The user.", body = UserDetail),
        (status = 403, description = "`forbidden`: the caller is not an admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
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

/// `role`, `disabled` or both; neither may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeUser {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Role, required = false)]
    role: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool, required = false)]
    disabled: Option<Option<bool>>,
}

/// Changes a user's role or disabled flag; one audit entry per change, in the same
/// transaction. Disabling revokes the user's refresh tokens and access tokens at once.
#[utoipa::path(patch, path = "/v1/admin/users/{id}", operation_id = "update_user", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user id.")),
    request_body = ChangeUser,
    responses(
        (status = 200, description = "The changed user.", body = User),
        (status = 403, description = "`forbidden`: the caller is not an admin.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: this would leave no enabled admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ChangeUser>,
) -> ApiResult<Json<User>> {
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must set at least one of role, disabled",
        )]));
    }
    let mut errors = FieldErrors::new();
    let role = match body.role {
        None => None,
        Some(None) => errors.check("role", Err::<Role, _>("cannot be null".to_owned())),
        Some(Some(r)) => errors.check("role", Role::parse(&r)),
    };
    let disabled = match body.disabled {
        None => None,
        Some(None) => errors.check("disabled", Err::<bool, _>("cannot be null".to_owned())),
        Some(Some(d)) => Some(d),
    };
    errors.finish()?;
    let change = UserChange { role, disabled };
    let user = state
        .store
        .admin()
        .change_user(Some(admin.id), id, &change, now())
        .await??;
    tracing::info!(target_id = %id, ?change, "admin changed a user");
    Ok(Json(user))
}

/// Deletes a user with their tasks and tokens. Admins cannot delete themselves (403).
#[utoipa::path(delete, path = "/v1/admin/users/{id}", operation_id = "delete_user", tag = "admin",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The user id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "`forbidden`: the caller is not an admin, or is deleting their own account.",
            body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`last_admin`: this would leave no enabled admin.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state
        .store
        .admin()
        .delete_user(admin.id, id, now())
        .await??;
    tracing::info!(target_id = %id, "admin deleted a user");
    Ok(StatusCode::NO_CONTENT)
}
