//! `POST /v1/auth/login`, `/refresh` and `/logout`: token pairs and their lifecycle.

use axum::{Json, extract::State, http::StatusCode};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::{
        Verification, refresh,
        security::{self, SecurityEvent, Subject},
    },
    error::Problem,
    extract::ApiJson,
    http::ClientAddr,
    models::{Email, Password, User, now},
    store::{Credentials, NewSession, NextRefreshToken, Rotation},
};

use crate::guard;
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

/// What a login's password check found.
enum Checked {
    /// No such account (a dummy hash was verified, for the same timing, unless the password
    /// is outside the length rule: then nothing is hashed, as for a known account).
    Unknown,
    Wrong(Uuid),
    Right(Credentials, Verification),
}

/// Exchanges credentials for a token pair and starts a session. Each attempt reserves one
/// of the email's `LOGIN_MAX_FAILURES` per window before any hashing; a right password
/// gives it back. When the budget is spent, logins for the email are 429 until the window
/// passes, even with the right password.
#[utoipa::path(post, path = "/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in.", body = TokenPair),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (the same answer).",
            body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`: the right password of a disabled account; `email_not_verified`: the right password of an account whose address is not verified, when `REQUIRE_VERIFIED_EMAIL=true`.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenPair>> {
    guard::admit(&state, client).await?;
    let now = now();
    let key = guard::throttle_key(&body.email).ok_or_else(invalid_credentials)?;
    let reserved = guard::reserve(&state, &key, client, now).await?;
    let (credentials, verification) = match check(&state, &body).await {
        Err(err) => {
            // Nothing was learned about the password: the attempt is not spent.
            reserved.give_back(&state).await?;
            return Err(err);
        }
        Ok(Checked::Unknown) => {
            reserved.failed(&state, SecurityEvent::LoginFailed, None);
            return Err(invalid_credentials());
        }
        Ok(Checked::Wrong(user)) => {
            reserved.failed(&state, SecurityEvent::LoginFailed, Some(user));
            return Err(invalid_credentials());
        }
        Ok(Checked::Right(credentials, verification)) => (credentials, verification),
    };
    reserved.give_back(&state).await?;
    let user = credentials.user;
    if user.disabled {
        return Err(
            ApiError::new(ErrorKind::AccountDisabled).with_detail("this account has been disabled")
        );
    }
    if state.config.mail.require_verified_email && !user.email_verified {
        return Err(ApiError::new(ErrorKind::EmailNotVerified)
            .with_detail("verify your email address first (POST /v1/auth/email/verification)"));
    }
    if verification.needs_rehash {
        upgrade_hash(&state, &credentials.password_hash, user.id, &body.password).await;
    }

    let session = NewSession {
        id: Uuid::now_v7(),
        user_id: user.id,
        epoch: credentials.session_epoch,
        created_at: now,
        expires_at: now + state.config.session_max_age,
    };
    let (refresh_token, hash) = refresh::generate();
    let first = NextRefreshToken {
        id: Uuid::now_v7(),
        hash,
        expires_at: refresh_expiry(&state, now).min(session.expires_at),
    };
    if !state.store.tokens().start_session(&session, &first).await? {
        // The password changed or the account was disabled while this login was checking
        // the old one: no session may start from it.
        return Err(invalid_credentials());
    }
    tracing::info!(user_id = %user.id, session_id = %session.id, "login");
    pair(
        &state,
        &user,
        session.id,
        refresh_token,
        first.expires_at,
        now,
    )
    .map(Json)
}

/// Stores the password at the current Argon2 parameters, best effort: a busy hashing queue
/// or a password change that committed meanwhile (the stored hash is no longer the one
/// verified) leaves the old hash, and the login goes on either way.
async fn upgrade_hash(state: &AppState, verified: &str, user: Uuid, password: &str) {
    let upgraded = match state.passwords.hash(password).await {
        Ok(upgraded) => upgraded,
        Err(err) => {
            tracing::info!(user_id = %user, error = %err, "password hash upgrade skipped");
            return;
        }
    };
    match state
        .store
        .users()
        .upgrade_password_hash(user, verified, &upgraded, now())
        .await
    {
        Ok(true) => {
            tracing::info!(user_id = %user, "password hash upgraded to current parameters");
        }
        Ok(false) => tracing::info!(user_id = %user, "password changed meanwhile: no upgrade"),
        Err(err) => {
            tracing::warn!(user_id = %user, error = %shared::error::chain(&err), "password hash upgrade failed");
        }
    }
}

/// Looks the account up and verifies the password (a dummy hash for an unknown email).
async fn check(state: &AppState, body: &LoginRequest) -> ApiResult<Checked> {
    let credentials = match Email::parse(&body.email) {
        Ok(email) => state.store.users().credentials_by_email(&email).await?,
        Err(_) => None,
    };
    // The length rule is checked before any hashing; a password outside it cannot match.
    if Password::parse(&body.password).is_err() {
        return Ok(credentials.map_or(Checked::Unknown, |c| Checked::Wrong(c.user.id)));
    }
    let Some(credentials) = credentials else {
        // The same work as a wrong password for an account whose hash has the current
        // parameters (older, weaker hashes are faster until their next login upgrades them).
        state.passwords.verify_dummy(&body.password).await?;
        return Ok(Checked::Unknown);
    };
    let verification = state
        .passwords
        .verify(&body.password, &credentials.password_hash)
        .await?;
    Ok(if verification.matches {
        Checked::Right(credentials, verification)
    } else {
        Checked::Wrong(credentials.user.id)
    })
}

/// Rotates a refresh token: it is spent and a new pair is issued in the same family.
#[utoipa::path(post, path = "/v1/auth/refresh", operation_id = "refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair.", body = TokenPair),
        (status = 401, description = "`invalid_refresh_token` (unknown, expired or revoked, or its session is over: logged out, password changed, older than `SESSION_MAX_AGE_SECS`) or `refresh_token_reused` (spent before: the whole session is now revoked).",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientAddr,
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
        Rotation::Rotated {
            user_id,
            session_id,
            expires_at,
        } => {
            let user = state
                .store
                .users()
                .by_id(user_id)
                .await?
                .filter(|u| !u.disabled)
                .ok_or_else(invalid)?;
            pair(&state, &user, session_id, refresh_token, expires_at, now).map(Json)
        }
        Rotation::Reused { user_id } => {
            security::record(
                SecurityEvent::RefreshTokenReused,
                client,
                Subject::User(user_id),
                &state.config.password_pepper,
            );
            Err(ApiError::new(ErrorKind::RefreshTokenReused)
                .with_detail("this refresh token was already used; sign in again"))
        }
        Rotation::Invalid => Err(invalid()),
    }
}

/// Ends the presented token's session: its refresh tokens and the access tokens issued in
/// it stop working. Idempotent: 204 whatever the token's state.
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
            .revoke_session_of(&presented, now())
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
    session: Uuid,
    refresh_token: String,
    refresh_expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> ApiResult<TokenPair> {
    Ok(TokenPair {
        access_token: state.jwt.issue(user.id, user.role, session, now)?,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
        refresh_token,
        refresh_expires_in: (refresh_expires_at - now)
            .whole_seconds()
            .max(0)
            .unsigned_abs(),
    })
}
