//! `GET /v1/auth/me` and `POST /v1/auth/password`: the signed-in user's own account.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::{AuthUser, security::SecurityEvent},
    error::Problem,
    extract::ApiJson,
    http::ClientAddr,
    models::{FieldErrors, Password, User, now},
};

use crate::guard;
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

/// Sets a new password after checking the current one; every session of the user ends in
/// the same statement (their refresh and access tokens stop working, this one's too).
/// Wrong `current_password` guesses count against the same per-email budget as logins.
#[utoipa::path(post, path = "/v1/auth/password", operation_id = "change_password", tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; every session of the user has ended."),
        (status = 401, description = "`invalid_credentials`: the current password is wrong (or `unauthorized`, see the bearer token).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    auth: AuthUser,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    guard::admit(&state, client).await?;
    let mut errors = FieldErrors::new();
    let new_password = errors.check("new_password", Password::parse(&body.new_password));
    let new_password = errors.finish_with(new_password)?;

    let wrong = || {
        ApiError::new(ErrorKind::InvalidCredentials).with_detail("the current password is wrong")
    };
    let reserved = guard::reserve(&state, auth.user.email.as_str(), client, now()).await?;
    let epoch = match verify_current(&state, &auth, &body.current_password).await {
        Ok(Some(epoch)) => epoch,
        Ok(None) => {
            reserved.failed(&state, SecurityEvent::PasswordChangeFailed, Some(auth.id));
            return Err(wrong());
        }
        Err(err) => {
            reserved.give_back(&state).await?;
            return Err(err);
        }
    };
    reserved.give_back(&state).await?;
    let hash = state.passwords.hash(new_password.expose()).await?;
    let changed = state
        .store
        .users()
        .change_password(auth.id, &hash, epoch, now())
        .await?;
    if !changed {
        // Another change (or a disable) committed after the current password was checked:
        // the password checked is no longer the current one.
        return Err(wrong());
    }
    tracing::info!(user_id = %auth.id, "password changed; every session ended");
    Ok(StatusCode::NO_CONTENT)
}

/// The user's session epoch when `current` is their password, `None` when it is not
/// (outside the length rule it cannot be, and nothing is hashed).
async fn verify_current(
    state: &AppState,
    auth: &AuthUser,
    current: &str,
) -> ApiResult<Option<i64>> {
    let credentials = state
        .store
        .users()
        .credentials_by_id(auth.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if Password::parse(current).is_err() {
        return Ok(None);
    }
    let verification = state
        .passwords
        .verify(current, &credentials.password_hash)
        .await?;
    Ok(verification.matches.then_some(credentials.session_epoch))
}
