//! `POST /v1/auth/register`.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Deserialize;
use shared::{
    ApiResult, AppState,
    error::ApiJson,
    models::{Email, FieldErrors, NewUser, Password, Role, UserName, now},
};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    password: String,
    name: String,
}

/// Creates a `user`. A taken email (in any case or padding) is 409 `email_taken`, decided
/// by the database's unique index, so concurrent registrations cannot both win.
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse(&body.password));
    let name = errors.check("name", UserName::parse(&body.name));
    errors.finish()?;
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        unreachable!("finish() returns early when any field failed");
    };

    let password_hash = state.passwords.hash(password.expose()).await?;
    let user = state
        .store
        .users()
        .create(&NewUser {
            id: Uuid::now_v7(),
            email,
            name,
            password_hash,
            role: Role::User,
            now: now(),
        })
        .await?;
    tracing::info!(user_id = %user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, "/v1/auth/me")],
        Json(user),
    ))
}
