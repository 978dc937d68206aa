//! Access and refresh tokens: the signing keys, the claims' issuer and audience, lifetimes.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError,
    values::{Lookup, MIN_SECRET_BYTES, parse_num},
};

#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub secret: SecretString,
    /// Keys that still verify tokens but never sign: for rotation.
    pub previous_secrets: Vec<SecretString>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// `JWT_PREVIOUS_SECRETS`, `JWT_ISSUER`, `JWT_AUDIENCE` and the TTLs, around `secret`
/// (`JWT_SECRET`, read first with the other required secret).
pub(super) fn parse(secret: SecretString, get: &impl Lookup) -> Result<JwtConfig, ConfigError> {
    let previous_secrets = match get("JWT_PREVIOUS_SECRETS") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.len() >= MIN_SECRET_BYTES {
                    Ok(SecretString::from(s.to_owned()))
                } else {
                    Err(ConfigError::new(
                        "JWT_PREVIOUS_SECRETS",
                        format!("every key must be at least {MIN_SECRET_BYTES} bytes"),
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let access_secs = parse_num(get, "ACCESS_TOKEN_TTL_SECS", 900u64, 1..=86_400)?;
    let refresh_secs = parse_num(get, "REFRESH_TOKEN_TTL_SECS", 1_209_600u64, 60..=31_536_000)?;
    Ok(JwtConfig {
        secret,
        previous_secrets,
        issuer: get("JWT_ISSUER").unwrap_or_else(|| "task-api".to_owned()),
        audience: get("JWT_AUDIENCE").unwrap_or_else(|| "task-api".to_owned()),
        access_ttl: Duration::from_secs(access_secs),
        refresh_ttl: Duration::from_secs(refresh_secs),
    })
}

/// `SESSION_MAX_AGE_SECS`: a session's absolute age, past which no refresh succeeds.
pub(super) fn parse_session_max_age(get: &impl Lookup) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(parse_num(
        get,
        "SESSION_MAX_AGE_SECS",
        30 * 86_400u64,
        1..=366 * 86_400,
    )?))
}
