//! What stands between a client and a password hash: the per-client limit of the endpoints
//! that hash, and the per-email failure budget. Both are decided by one statement in the
//! database before any hashing, so they hold for concurrent clients and across every
//! instance (every Lambda instance too).

use shared::{
    ApiError, ApiResult, AppState, ErrorKind,
    auth::security::{self, SecurityEvent, Subject},
    http::ClientAddr,
    models::now,
    store::LoginAttempt,
};
use time::OffsetDateTime;

/// Longest throttle key kept: longer input cannot be an email anyway.
const MAX_THROTTLE_KEY_CHARS: usize = 320;

/// Admits one request to an endpoint that hashes, before it does any other work: 503 at once
/// when the hashing queue is full (it would be refused there anyway), then one count of
/// `client` against `AUTH_RATE_LIMIT_PER_MINUTE` / `AUTH_RATE_LIMIT_BURST`, 429 with
/// `Retry-After` when it is over. No client address (an in-process call) or the limit
/// turned off (`0`): nothing to count.
pub async fn admit(state: &AppState, client: ClientAddr) -> ApiResult<()> {
    if state.passwords.is_saturated() {
        return Err(shared::auth::password::busy());
    }
    let (Some(limit), Some(ip)) = (state.config.auth_rate_limit, client.0) else {
        return Ok(());
    };
    let key = ip.to_string();
    let started = std::time::Instant::now();
    let counted = match state.client_refusals.refused_for(&key, started) {
        // The database refused this client until then: it would again.
        Some(wait) => Err(wait),
        None => {
            let counted = state
                .store
                .tokens()
                .take_client_request(&key, now(), limit)
                .await?;
            if let Err(wait) = counted {
                // Logged once per refusal period and instance, not once per request of
                // a flood.
                security::record(
                    SecurityEvent::ClientThrottled,
                    client,
                    Subject::Nobody,
                    &state.config.password_pepper,
                );
                state.client_refusals.remember(&key, started, wait);
            }
            counted
        }
    };
    counted.map_err(|wait| {
        ApiError::new(ErrorKind::TooManyRequests)
            .with_detail("too many sign-in requests from this client; try again later")
            .with_retry_after(whole_seconds(wait))
    })
}

/// The email as the budget counts it, whether or not it is a registered or even a valid
/// address (the budget must not tell accounts apart); `None` for input no account can have.
pub fn throttle_key(email: &str) -> Option<String> {
    let key: String = email
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_THROTTLE_KEY_CHARS)
        .collect();
    // The database cannot store a NUL in a text key, and no account has one.
    (!key.contains('\0')).then_some(key)
}

/// One reserved attempt of an email's failure budget.
#[derive(Debug)]
pub struct Reserved {
    key: String,
    attempt: LoginAttempt,
    client: ClientAddr,
}

/// Reserves an attempt for `key` before verifying a password; 429 with `Retry-After` when
/// the window's budget (`LOGIN_MAX_FAILURES`) is spent, even if the password is right.
pub async fn reserve(
    state: &AppState,
    key: &str,
    client: ClientAddr,
    now: OffsetDateTime,
) -> ApiResult<Reserved> {
    let attempt = state
        .store
        .tokens()
        .reserve_login_attempt(key, now, state.config.login_throttle)
        .await?;
    if !attempt.allowed {
        security::record(
            SecurityEvent::LoginThrottled,
            client,
            Subject::Email(key),
            &state.config.password_pepper,
        );
        return Err(ApiError::new(ErrorKind::TooManyRequests)
            .with_detail("too many failed sign-ins for this email; try again later")
            .with_retry_after(whole_seconds(attempt.retry_after)));
    }
    Ok(Reserved {
        key: key.to_owned(),
        attempt,
        client,
    })
}

impl Reserved {
    /// The password was right (or never checked): the attempt goes back to the budget.
    pub async fn give_back(self, state: &AppState) -> ApiResult<()> {
        state
            .store
            .tokens()
            .return_login_attempt(&self.key, &self.attempt)
            .await?;
        Ok(())
    }

    /// The password was wrong: the attempt stays spent. Logs the failure, and the lockout
    /// when this failure spent the budget.
    pub fn failed(self, state: &AppState, event: SecurityEvent, user: Option<uuid::Uuid>) {
        let pepper = &state.config.password_pepper;
        let subject = user.map_or(Subject::Email(&self.key), Subject::User);
        security::record(event, self.client, subject, pepper);
        if self.attempt.reserved >= state.config.login_throttle.max_failures {
            security::record(SecurityEvent::LoginLockedOut, self.client, subject, pepper);
        }
    }
}

/// A wait in whole seconds for `Retry-After`, at least one.
fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}
