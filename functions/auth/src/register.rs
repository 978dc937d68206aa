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
    error::Problem,
    extract::ApiJson,
    http::ClientAddr,
    models::{Email, FieldErrors, NewUser, Password, Role, User, UserName, now},
};

use crate::{guard, recovery};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Trimmed and lower-cased before it is stored.
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 12, max_length = 128)]
    password: String,
    /// 1 to 100 characters after trimming; no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    name: String,
}

/// Creates a `user` and mails a verification token to the address (when mail is
/// configured; see `POST /v1/auth/email/verify`). A taken email (in any case or padding) is 409 `email_taken`, decided
/// by the database's unique index, so concurrent registrations cannot both win.
#[utoipa::path(post, path = "/v1/auth/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered.", body = User,
            headers(("Location" = String, description = "`/v1/auth/me`"))),
        (status = 409, description = "`email_taken`.", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    guard::admit(&state, client).await?;
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&body.email));
    let password = errors.check("password", Password::parse(&body.password));
    let name = errors.check("name", UserName::parse(&body.name));
    let ((email, password), name) = errors.finish_with(email.zip(password).zip(name))?;

    let password_hash = state.passwords.hash(password.expose()).await?;
    // The verification mail is queued with the user (when mail can go anywhere).
    let verification = state
        .mailer
        .is_configured()
        .then(|| recovery::verification(&state, &email));
    let user = state
        .store
        .users()
        .create(
            &NewUser {
                id: Uuid::now_v7(),
                email,
                name,
                password_hash,
                role: Role::User,
                email_verified: false,
                now: now(),
            },
            verification.as_ref(),
        )
        .await?;
    if let Some(verification) = verification {
        recovery::deliver(&state, verification.mail.id);
    }
    tracing::info!(user_id = %user.id, "user registered");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, "/v1/auth/me")],
        Json(user),
    ))
}
