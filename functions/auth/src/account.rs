//! `GET /v1/auth/me` and `POST /v1/auth/password`: the signed-in user's own account.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AuthUser,
    error::{ApiJson, Problem},
    models::{FieldErrors, Password, User, now},
};
use utoipa::ToSchema;

/// The signed-in user.
#[utoipa::path(get, path = "/v1/auth/me", operation_id = "get_me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's own user.", body = User)))]
pub async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    #[schema(min_length = 12, max_length = 128)]
    new_password: String,
}

/// Sets a new password after checking the current one; every refresh family of the user
/// is revoked in the same transaction (other sessions must sign in again).
#[utoipa::path(post, path = "/v1/auth/password", operation_id = "change_password", tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; every refresh family of the user is revoked."),
        (status = 401, description = "`invalid_credentials`: the current password is wrong (or `unauthorized`, see the bearer token).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    let mut errors = FieldErrors::new();
    let new_password = errors.check("new_password", Password::parse(&body.new_password));
    errors.finish()?;
    let Some(new_password) = new_password else {
        unreachable!("finish() returns early when any field failed");
    };

    let wrong = || {
        ApiError::new(ErrorKind::InvalidCredentials).with_detail("the current password is wrong")
    };
    let credentials = state
        .store
        .users()
        .credentials_by_id(auth.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if Password::parse(&body.current_password).is_err() {
        return Err(wrong());
    }
    let verification = state
        .passwords
        .verify(&body.current_password, &credentials.password_hash)
        .await?;
    if !verification.matches {
        return Err(wrong());
    }
    let hash = state.passwords.hash(new_password.expose()).await?;
    state
        .store
        .users()
        .change_password(auth.id, &hash, now())
        .await?;
    tracing::info!(user_id = %auth.id, "password changed; refresh tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
