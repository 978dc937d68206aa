//! `GET /v1/auth/me` and `POST /v1/auth/password`: the signed-in user's own account.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::{AuthUser, security::SecurityEvent},
    error::{ApiJson, Problem},
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
        (status = 429, description = "`too_many_requests`: the email's failure budget or the client's credential limit is spent; see `Retry-After`.",
            body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong (or `unauthorized`, see the bearer token).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    client: ClientAddr,
    auth: AuthUser,
    ApiJson(body): ApiJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    guard::limit_client(&state, client).await?;
    let mut errors = FieldErrors::new();
    let new_password = errors.check("new_password", Password::parse(&body.new_password));
    errors.finish()?;
    let Some(new_password) = new_password else {
        unreachable!("finish() returns early when any field failed");
    };

    let wrong = || {
        ApiError::new(ErrorKind::InvalidCredentials).with_detail("the current password is wrong")
    };
    let reserved = guard::reserve(&state, auth.user.email.as_str(), client, now()).await?;
    let matches = match verify_current(&state, &auth, &body.current_password).await {
        Ok(matches) => matches,
        Err(err) => {
            reserved.give_back(&state).await?;
            return Err(err);
        }
    };
    if !matches {
        reserved.failed(&state, SecurityEvent::PasswordChangeFailed, Some(auth.id));
        return Err(wrong());
    }
    reserved.give_back(&state).await?;
    let hash = state.passwords.hash(new_password.expose()).await?;
    state
        .store
        .users()
        .change_password(auth.id, &hash, now())
        .await?;
    tracing::info!(user_id = %auth.id, "password changed; every session ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `current` is the caller's password (outside the length rule it cannot be, and
/// nothing is hashed).
async fn verify_current(state: &AppState, auth: &AuthUser, current: &str) -> ApiResult<bool> {
    let credentials = state
        .store
        .users()
        .credentials_by_id(auth.id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    if Password::parse(current).is_err() {
        return Ok(false);
    }
    let verification = state
        .passwords
        .verify(current, &credentials.password_hash)
        .await?;
    Ok(verification.matches)
}
