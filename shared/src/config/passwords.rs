//! Passwords: the pepper, Argon2id's cost and hashing capacity, and the limits on the
//! endpoints that hash (failed logins per email, credential requests per client).

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError,
    values::{Lookup, parse_num, parse_optional_num},
};

/// Failed-login throttling: `max_failures` within `window` locks an email until the window passes.
#[derive(Debug, Clone, Copy)]
pub struct LoginThrottle {
    pub max_failures: u32,
    pub window: Duration,
}

/// Per-client limit of the endpoints that hash (login, register, password change): a
/// bucket of `burst` requests per client address refilled at `per_minute`, kept in the
/// database so every instance (every Lambda instance too) shares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthRateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// Argon2id cost. Never below the OWASP minimum (19 MiB, t=2, p=1).
#[derive(Debug, Clone, Copy)]
pub struct Argon2Config {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Hashes computed at once; each holds `memory_kib` of memory. `None`: one per core,
    /// counted at the first hash, not at start-up (counting reads the cgroup's CPU quota:
    /// about 20 system calls on every Lambda cold start, for a number most functions never
    /// use).
    pub concurrency: Option<usize>,
    /// Hashes that may wait for a free hashing thread; one more is refused at once (503)
    /// instead of queueing (`PASSWORD_HASH_QUEUE`).
    pub queue: usize,
}

impl Argon2Config {
    pub const MIN_MEMORY_KIB: u32 = 19 * 1024;
    pub const MIN_ITERATIONS: u32 = 2;
}

/// Everything password-related [`Config`](super::Config) holds.
pub(super) struct Passwords {
    pub pepper: SecretString,
    pub argon2: Argon2Config,
    pub login_throttle: LoginThrottle,
    pub auth_rate_limit: Option<AuthRateLimit>,
}

/// `ARGON2_*`, `PASSWORD_HASH_*`, `LOGIN_*` and `AUTH_RATE_LIMIT_*`, around `pepper`
/// (`PASSWORD_PEPPER`, read first with the other required secret).
pub(super) fn parse(pepper: SecretString, get: &impl Lookup) -> Result<Passwords, ConfigError> {
    let argon2 = Argon2Config {
        memory_kib: parse_num(
            get,
            "ARGON2_MEMORY_KIB",
            Argon2Config::MIN_MEMORY_KIB,
            Argon2Config::MIN_MEMORY_KIB..=4 * 1024 * 1024,
        )?,
        iterations: parse_num(
            get,
            "ARGON2_ITERATIONS",
            Argon2Config::MIN_ITERATIONS,
            Argon2Config::MIN_ITERATIONS..=100,
        )?,
        parallelism: parse_num(get, "ARGON2_PARALLELISM", 1, 1..=64)?,
        concurrency: parse_optional_num(get, "PASSWORD_HASH_CONCURRENCY", 1..=1024)?,
        queue: parse_num(get, "PASSWORD_HASH_QUEUE", 64, 0..=100_000)?,
    };
    let login_throttle = LoginThrottle {
        max_failures: parse_num(get, "LOGIN_MAX_FAILURES", 5, 1..=1000)?,
        window: Duration::from_secs(parse_num(get, "LOGIN_WINDOW_SECS", 900u64, 1..=86_400)?),
    };
    Ok(Passwords {
        pepper,
        argon2,
        login_throttle,
        auth_rate_limit: parse_auth_rate_limit(get)?,
    })
}

/// 30 a minute with a burst of 30: a person signs in once a fortnight (refresh tokens do
/// the rest), so this is an office of people behind one address, not one client's flood.
fn parse_auth_rate_limit(get: &impl Lookup) -> Result<Option<AuthRateLimit>, ConfigError> {
    let per_minute = parse_num(get, "AUTH_RATE_LIMIT_PER_MINUTE", 30u32, 0..=1_000_000)?;
    let burst = parse_num(get, "AUTH_RATE_LIMIT_BURST", 30u32, 0..=1_000_000)?;
    match (per_minute, burst) {
        (0, _) => Ok(None),
        (_, 0) => Err(ConfigError::new(
            "AUTH_RATE_LIMIT_BURST",
            "must be at least 1 while AUTH_RATE_LIMIT_PER_MINUTE is on",
        )),
        (per_minute, burst) => Ok(Some(AuthRateLimit { per_minute, burst })),
    }
}
