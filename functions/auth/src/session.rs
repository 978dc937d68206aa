//! `POST /v1/auth/login`, `/refresh` and `/logout`: token pairs and their lifecycle.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::{Verification, refresh},
    error::{ApiJson, Problem},
    models::{Email, Password, User, now},
    store::{NewRefreshToken, NextRefreshToken, Rotation},
};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// A JWT (HS256) for the `Authorization: Bearer` header.
    access_token: String,
    #[schema(value_type = String, pattern = "^Bearer$")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Opaque; present it once to `/v1/auth/refresh`.
    refresh_token: String,
    /// Seconds until the refresh token expires.
    refresh_expires_in: u64,
}

fn invalid_credentials() -> ApiError {
    ApiError::new(ErrorKind::InvalidCredentials).with_detail("email or password is wrong")
}

/// Longest throttle key kept: longer input cannot be an email anyway.
const MAX_THROTTLE_KEY_CHARS: usize = 320;

/// Exchanges credentials for a token pair. Five failures for one email within the window
/// lock it (429) until the window passes, even with the right password.
#[utoipa::path(post, path = "/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = TokenPair),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (the same answer).",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`: the right password of a disabled account.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    let now = now();
    let throttle = state.config.login_throttle;
    let tokens = state.store.tokens();
    // Throttle on the normalised email, whether or not it is a registered or even a valid
    // address: the throttle must not tell accounts apart.
    let throttle_key: String = body
        .email
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_THROTTLE_KEY_CHARS)
        .collect();
    if throttle_key.contains('\0') {
        // No account has such an email, and the database cannot store it as a key.
        return Err(invalid_credentials());
    }
    if let Some(until) = tokens
        .login_locked_until(&throttle_key, now, throttle)
        .await?
    {
        let wait = (until - now).whole_seconds().max(1);
        return Err(ApiError::new(ErrorKind::TooManyRequests)
            .with_detail("too many failed logins for this email; try again later")
            .with_retry_after(wait.unsigned_abs()));
    }

    let credentials = match Email::parse(&body.email) {
        Ok(email) => state.store.users().credentials_by_email(&email).await?,
        Err(_) => None,
    };
    // The length rule is checked before any hashing; a password outside it cannot match.
    let verification = match (&credentials, Password::parse(&body.password).is_ok()) {
        (Some(c), true) => {
            state
                .passwords
                .verify(&body.password, &c.password_hash)
                .await?
        }
        (None, true) => {
            // Same work as a wrong password for a real account: no timing oracle.
            state.passwords.verify_dummy(&body.password).await?;
            Verification {
                matches: false,
                needs_rehash: false,
            }
        }
        (_, false) => Verification {
            matches: false,
            needs_rehash: false,
        },
    };
    let Some(credentials) = credentials.filter(|_| verification.matches) else {
        tokens
            .record_login_failure(&throttle_key, now, throttle)
            .await?;
        return Err(invalid_credentials());
    };
    let user = credentials.user;
    if user.disabled {
        return Err(
            ApiError::new(ErrorKind::AccountDisabled).with_detail("this account has been disabled")
        );
    }
    tokens.clear_login_failures(&throttle_key).await?;
    if verification.needs_rehash {
        let upgraded = state.passwords.hash(&body.password).await?;
        state
            .store
            .users()
            .upgrade_password_hash(user.id, &upgraded, now)
            .await?;
        tracing::info!(user_id = %user.id, "password hash upgraded to current parameters");
    }

    let (refresh_token, hash) = refresh::generate();
    tokens
        .insert_refresh(&NewRefreshToken {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id: Uuid::now_v7(),
            hash,
            issued_at: now,
            expires_at: refresh_expiry(&state, now),
        })
        .await?;
    tracing::info!(user_id = %user.id, "login");
    pair(&state, &user, refresh_token, now).map(Json)
}

/// Rotates a refresh token: it is spent and a new pair is issued in the same family.
#[utoipa::path(post, path = "/v1/auth/refresh", operation_id = "refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair.", body = TokenPair),
        (status = 401, description = "`invalid_refresh_token` (unknown, expired or revoked) or `refresh_token_reused` (spent before: the whole family is now revoked).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let invalid = || {
        ApiError::new(ErrorKind::InvalidRefreshToken)
            .with_detail("the refresh token is unknown, expired or revoked")
    };
    let presented = refresh::hash_presented(&body.refresh_token).ok_or_else(invalid)?;
    let now = now();
    let (refresh_token, hash) = refresh::generate();
    let next = NextRefreshToken {
        id: Uuid::now_v7(),
        hash,
        expires_at: refresh_expiry(&state, now),
    };
    match state
        .store
        .tokens()
        .rotate_refresh(&presented, &next, now)
        .await?
    {
        Rotation::Rotated { user_id } => {
            let user = state
                .store
                .users()
                .by_id(user_id)
                .await?
                .filter(|u| !u.disabled)
                .ok_or_else(invalid)?;
            pair(&state, &user, refresh_token, now).map(Json)
        }
        Rotation::Reused => {
            tracing::warn!("refresh token reused: its family is revoked");
            Err(ApiError::new(ErrorKind::RefreshTokenReused)
                .with_detail("this refresh token was already used; sign in again"))
        }
        Rotation::Invalid => Err(invalid()),
    }
}

/// Revokes the presented token's family. Idempotent: 204 whatever the token's state.
#[utoipa::path(post, path = "/v1/auth/logout", operation_id = "logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out (or already was).")))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    if let Some(presented) = refresh::hash_presented(&body.refresh_token) {
        state
            .store
            .tokens()
            .revoke_family_of(&presented, now())
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn refresh_expiry(state: &AppState, now: OffsetDateTime) -> OffsetDateTime {
    now + state.config.jwt.refresh_ttl
}

fn pair(
    state: &AppState,
    user: &User,
    refresh_token: String,
    now: OffsetDateTime,
) -> ApiResult<TokenPair> {
    Ok(TokenPair {
        access_token: state.jwt.issue(user.id, user.role, now)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        refresh_token,
        refresh_expires_in: state.config.jwt.refresh_ttl.as_secs(),
    })
}
