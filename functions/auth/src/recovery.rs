//! Account recovery and verified emails: `POST /v1/auth/password/forgot`,
//! `POST /v1/auth/password/reset`, `POST /v1/auth/email/verification` and
//! `POST /v1/auth/email/verify`.
//!
//! Tokens are 256 random bits (base64url), mailed once and stored only as a hash; each is
//! spent by one conditional update, so of concurrent uses exactly one succeeds. A mail is
//! queued in the transaction that issues its token and delivered after the answer
//! ([`shared::mail`]): by a task of the local server, or under Lambda by the mail function,
//! so the answer never waits on the mail server.

use axum::{extract::State, http::StatusCode};
use serde::Deserialize;
use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::{AuthUser, refresh},
    config::Runtime,
    error::Problem,
    extract::ApiJson,
    http::ClientAddr,
    mail::{self, Mailer},
    models::{Email, FieldErrors, Password, now},
    store::mail::{NewAccountToken, TokenMail},
};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::guard;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// How long a password reset request takes at least: its answer is held until then, so an
/// address with an account (a token and a mail written) and one without (nothing written)
/// are answered after the same time. The request's own work is about a millisecond on a
/// healthy database (`bench/run`, row 11), far inside it; a request slower than this (a
/// cold pool, an overloaded database) is slow for either kind of address.
pub const FORGOT_TIMEBOX: std::time::Duration = std::time::Duration::from_millis(25);

/// Mails a password reset token to the account with this address, if there is an enabled
/// one and its mail budget allows (one mail a minute, five an hour). The answer is the
/// same whether or not a mail went out, and comes no sooner than 25 ms after the request
/// (`FORGOT_TIMEBOX`).
#[utoipa::path(post, path = "/v1/auth/password/forgot", operation_id = "forgot_password", tag = "auth",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "Accepted: a reset mail goes out if the address has an account (the same answer either way)."),
        (status = 503, description = "`service_unavailable`: mail is not configured on this server.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn forgot(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<ForgotPassword>,
) -> ApiResult<StatusCode> {
    admit(&state, client).await?;
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&body.email));
    let email = errors.finish_with(email)?;
    let answer_at = tokio::time::Instant::now() + FORGOT_TIMEBOX;
    let now = now();
    let (token, hash) = refresh::generate();
    let queued = TokenMail {
        token: NewAccountToken {
            hash,
            expires_at: now + state.config.mail.reset_ttl,
        },
        mail: mail::reset_mail(&state.config.mail, &email, &token),
    };
    let queued_or_not = state
        .store
        .mail()
        .queue_password_reset(&email, &queued, now)
        .await;
    // Every outcome, an error too, is held to the box; only then may delivery start (it
    // finds the message, or nothing, then the due backlog), so its work cannot slow the
    // answer either. The wait holds no database connection.
    shared::store::held::release();
    tokio::time::sleep_until(answer_at).await;
    queued_or_not?;
    deliver(&state, queued.mail.id);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The token from the reset mail.
    token: String,
    #[schema(min_length = 12, max_length = 128)]
    new_password: String,
}

/// The token and the password stay out of `Debug`.
impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword").finish_non_exhaustive()
    }
}

/// Sets a new password with a reset token: every session and access token of the user
/// ends, and the login throttle of their email is cleared. The token is spent; a token
/// that is unknown, expired, used or replaced by a newer one is 400 `invalid_token`, and a
/// password outside the rules is 422 (the token stays good).
#[utoipa::path(post, path = "/v1/auth/password/reset", operation_id = "reset_password", tag = "auth",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "Reset; every session of the user has ended."),
        (status = 400, description = "`invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: mail is not configured on this server.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<ResetPassword>,
) -> ApiResult<StatusCode> {
    admit(&state, client).await?;
    let mut errors = FieldErrors::new();
    let password = errors.check("new_password", Password::parse(&body.new_password));
    let password = errors.finish_with(password)?;
    let token = refresh::hash_presented(&body.token).ok_or_else(invalid_token)?;
    let hash = state.passwords.hash(password.expose()).await?;
    if !state
        .store
        .mail()
        .reset_password(&token, &hash, now())
        .await?
    {
        return Err(invalid_token());
    }
    tracing::info!("password reset with a mailed token; every session of the user ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Mails a fresh verification token to the caller's address (within its mail budget: one a
/// minute, five an hour; beyond it, 202 and no mail). 409 `email_already_verified` when
/// there is nothing to verify.
#[utoipa::path(post, path = "/v1/auth/email/verification", operation_id = "request_email_verification", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted: a verification mail goes out (unless the address was sent one within the last minute, or five within the hour)."),
        (status = 409, description = "`email_already_verified`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: mail is not configured on this server.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn request_verification(
    State(state): State<AppState>,
    client: ClientAddr,
    auth: AuthUser,
) -> ApiResult<StatusCode> {
    admit(&state, client).await?;
    let email = Email::parse(&auth.user.email).map_err(|_| ApiError::unauthorized())?;
    let queued = verification(&state, &email);
    match state
        .store
        .mail()
        .queue_email_verification(auth.id, &queued, now())
        .await?
    {
        None => Err(ApiError::new(ErrorKind::EmailAlreadyVerified)
            .with_detail("this account's email address is already verified")),
        Some(sent) => {
            if sent {
                deliver(&state, queued.mail.id);
            }
            Ok(StatusCode::ACCEPTED)
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The token from the verification mail.
    token: String,
}

/// The token stays out of `Debug`.
impl std::fmt::Debug for VerifyEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyEmail").finish_non_exhaustive()
    }
}

/// Marks the address of the token's account verified; the token is spent. Unknown,
/// expired, used or replaced: 400 `invalid_token`.
#[utoipa::path(post, path = "/v1/auth/email/verify", operation_id = "verify_email", tag = "auth",
    request_body = VerifyEmail,
    responses(
        (status = 204, description = "Verified."),
        (status = 400, description = "`invalid_token`.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: mail is not configured on this server.",
            body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(body): ApiJson<VerifyEmail>,
) -> ApiResult<StatusCode> {
    admit(&state, client).await?;
    let token = refresh::hash_presented(&body.token).ok_or_else(invalid_token)?;
    if !state.store.mail().verify_email(&token, now()).await? {
        return Err(invalid_token());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A verification token for `email` and the mail carrying it.
pub fn verification(state: &AppState, email: &Email) -> TokenMail {
    let (token, hash) = refresh::generate();
    TokenMail {
        token: NewAccountToken {
            hash,
            expires_at: now() + state.config.mail.verification_ttl,
        },
        mail: mail::verification_mail(&state.config.mail, email, &token),
    }
}

/// Delivers the message just queued (and a share of the backlog) after the answer; under
/// Lambda, leaves it to the mail function. A Lambda instance is frozen once it has
/// answered, so a delivery started here would stop half-way, hold its claim on the message
/// while frozen, and finish (or fail) during whatever request the instance serves next.
pub fn deliver(state: &AppState, id: Uuid) {
    if state.config.runtime == Runtime::Lambda {
        return;
    }
    mail::deliver_in_background(
        state.store.clone(),
        state.mailer.clone(),
        state.metrics.clone(),
        Some(id),
    );
}

/// What every mail endpoint checks first: that mail can go anywhere (else 503, before any
/// other work), then the per-client limit of the credential endpoints.
async fn admit(state: &AppState, client: ClientAddr) -> ApiResult<()> {
    if !state.mailer.is_configured() {
        return Err(Mailer::unconfigured());
    }
    guard::admit(state, client).await
}

fn invalid_token() -> ApiError {
    ApiError::new(ErrorKind::InvalidToken)
        .with_detail("the token is unknown, expired, already used or replaced by a newer one")
}
