//! `GET /v1/auth/me` and `POST /v1/auth/password`: the signed-in user's own account.

use axum::{Json, extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::AuthUser,
    error::ApiJson,
    models::{FieldErrors, Password, User, now},
};

pub async fn me(auth: AuthUser) -> Json<User> {
    Json(auth.user)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    current_password: String,
    new_password: String,
}

/// Sets a new password after checking the current one; every refresh family of the user
/// is revoked in the same transaction (other sessions must sign in again).
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
