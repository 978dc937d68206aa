//! Configuration: every setting comes from the environment, is parsed and validated once at
//! start-up into [`Config`], and is passed down from there. Nothing else in the workspace
//! reads environment variables for settings.
//!
//! A bad or missing value is a [`ConfigError`] naming the variable, so the process can stop
//! with one clear line instead of failing on the first request. Secrets are held as
//! [`SecretString`] and never appear in `Debug` output.

use std::{fmt, net::IpAddr, path::Path, time::Duration};

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

/// Where the process runs; decides defaults and whether development mode is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `local-server` (or the container).
    LocalServer,
    /// One of the Lambda function binaries. Always production.
    Lambda,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Pool settings. Small by default under Lambda, where every instance holds its own pool.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `Some(0)` turns prepared-statement caching off (needed behind RDS Proxy to avoid pinning).
    pub statement_cache_capacity: Option<usize>,
}

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

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub host: IpAddr,
    pub port: u16,
    /// Whole-request budget; a slower request is answered 504.
    pub request_timeout: Duration,
    /// Exact origins allowed by CORS. Empty in production means no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// Abuse protection; always off under Lambda, where API Gateway throttles.
    pub limits: LimitsConfig,
    /// A connection must deliver a request's headers within this, counted from when it
    /// opened or finished its previous request (so also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Where `/metrics` is served, never on the API's port; `None`: nowhere.
    pub metrics: MetricsListener,
}

/// The private listener of `/metrics` (`METRICS_ADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListener {
    Off,
    /// The default address: if it is taken (another local server on this machine), the
    /// server runs without metrics and says so, rather than failing to start.
    Default(std::net::SocketAddr),
    /// Set explicitly: failing to bind it stops the start-up.
    At(std::net::SocketAddr),
}

impl MetricsListener {
    pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);
}

/// Per-client rate limit and global concurrency limit of the local server and container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Token bucket per client IP; `None` turns it off (`RATE_LIMIT_PER_SECOND=0`).
    pub rate: Option<RateLimit>,
    /// Requests handled at once before the rest are shed with 503; `None` turns it off.
    pub concurrency: Option<usize>,
    /// How many proxies in front of us append to `X-Forwarded-For`; 0 means the peer
    /// address is the client and forwarded headers are ignored.
    pub trusted_proxy_hops: usize,
    /// A request body must arrive whole within this of the request's start, and is read
    /// before the request takes a concurrency slot; `None` under Lambda, where bodies arrive
    /// whole with the event.
    pub body_timeout: Option<Duration>,
}

impl LimitsConfig {
    /// No rate limit, no concurrency limit, forwarded headers ignored.
    pub const OFF: Self = Self {
        rate: None,
        concurrency: None,
        trusted_proxy_hops: 0,
        body_timeout: None,
    };
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

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

#[derive(Debug, Clone)]
pub struct Config {
    pub runtime: Runtime,
    pub env: AppEnv,
    pub db: DbConfig,
    pub jwt: JwtConfig,
    pub password_pepper: SecretString,
    pub argon2: Argon2Config,
    pub login_throttle: LoginThrottle,
    /// `None` when `AUTH_RATE_LIMIT_PER_MINUTE=0`.
    pub auth_rate_limit: Option<AuthRateLimit>,
    /// Absolute age of a session (refresh family): no refresh past it.
    pub session_max_age: Duration,
    /// Most tasks one user may own; `None` when `MAX_TASKS_PER_USER=0`.
    pub max_tasks_per_user: Option<u32>,
    pub http: HttpConfig,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// CloudWatch namespace of the metrics a Lambda function writes (`METRICS_NAMESPACE`).
    pub metrics_namespace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, set by Lambda; the `Function` dimension of its metrics.
    pub function_name: Option<String>,
    /// Secrets that were generated because development mode had none; logged at start-up.
    pub generated_secrets: Vec<&'static str>,
}

/// A configuration problem, always naming the variable at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// Minimum length of the JWT secret and the password pepper.
pub const MIN_SECRET_BYTES: usize = 32;
/// Default SQLite database of the local server.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://./data/local.db";

impl Config {
    /// Reads the process environment.
    pub fn from_env(runtime: Runtime) -> Result<Self, ConfigError> {
        Self::from_lookup(runtime, |name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can pass a map instead of mutating the
    /// process environment.
    pub fn from_lookup(
        runtime: Runtime,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // An empty variable counts as unset: `FOO=` in a .env file should not mean "empty secret".
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let env = match runtime {
            Runtime::Lambda => AppEnv::Production,
            Runtime::LocalServer => match get("APP_ENV").as_deref().map(str::trim) {
                None | Some("development") => AppEnv::Development,
                Some("production") => AppEnv::Production,
                Some(other) => {
                    return Err(ConfigError::new(
                        "APP_ENV",
                        format!("must be `development` or `production`, got `{other}`"),
                    ));
                }
            },
        };
        let production = env == AppEnv::Production;
        let mut generated = Vec::new();

        let database_url = match get("DATABASE_URL") {
            Some(url) => url.trim().to_owned(),
            None if runtime == Runtime::LocalServer => DEFAULT_SQLITE_URL.to_owned(),
            None => return Err(ConfigError::new("DATABASE_URL", "is required")),
        };
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            // Never echo the value: it may carry a password.
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with postgres://, postgresql:// or sqlite:",
            ));
        }

        let mut secret = |name: &'static str| -> Result<SecretString, ConfigError> {
            match get(name) {
                Some(value) if value.len() >= MIN_SECRET_BYTES => Ok(SecretString::from(value)),
                Some(_) => Err(ConfigError::new(
                    name,
                    format!("must be at least {MIN_SECRET_BYTES} bytes"),
                )),
                None if production => Err(ConfigError::new(
                    name,
                    format!("is required in production (at least {MIN_SECRET_BYTES} bytes)"),
                )),
                None => {
                    generated.push(name);
                    Ok(generate_secret())
                }
            }
        };
        let jwt_secret = secret("JWT_SECRET")?;
        let password_pepper = secret("PASSWORD_PEPPER")?;

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

        let (default_max_conn, default_log) = match runtime {
            Runtime::Lambda => (2, LogFormat::Json),
            Runtime::LocalServer => (10, LogFormat::Pretty),
        };
        let max_connections = parse_num(&get, "DB_MAX_CONNECTIONS", default_max_conn, 1..=1000)?;
        let acquire_ms = parse_num(&get, "DB_ACQUIRE_TIMEOUT_MS", 3000u64, 1..=600_000)?;
        let statement_cache_capacity = match get("DB_STATEMENT_CACHE_CAPACITY") {
            None => None,
            Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
                ConfigError::new("DB_STATEMENT_CACHE_CAPACITY", "must be a whole number")
            })?),
        };

        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None => match get("AWS_LAMBDA_LOG_FORMAT").as_deref() {
                Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
                _ => default_log,
            },
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("must be `pretty` or `json`, got `{other}`"),
                ));
            }
        };
        let log_filter = log_filter(get);

        let host = match get("HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(h) => h
                .trim()
                .parse()
                .map_err(|_| ConfigError::new("HOST", "must be an IP address"))?,
        };
        let port = parse_num(&get, "PORT", 3000u16, 0..=u16::MAX)?;
        let timeout_ms = parse_num(&get, "REQUEST_TIMEOUT_MS", 25_000u64, 1..=900_000)?;
        let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
            .map(|list| {
                list.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();

        let limits = match runtime {
            Runtime::Lambda => LimitsConfig::OFF,
            Runtime::LocalServer => parse_limits(&get)?,
        };

        let access_secs = parse_num(&get, "ACCESS_TOKEN_TTL_SECS", 900u64, 1..=86_400)?;
        let refresh_secs = parse_num(
            &get,
            "REFRESH_TOKEN_TTL_SECS",
            1_209_600u64,
            60..=31_536_000,
        )?;
        let argon2 = Argon2Config {
            memory_kib: parse_num(
                &get,
                "ARGON2_MEMORY_KIB",
                Argon2Config::MIN_MEMORY_KIB,
                Argon2Config::MIN_MEMORY_KIB..=4 * 1024 * 1024,
            )?,
            iterations: parse_num(
                &get,
                "ARGON2_ITERATIONS",
                Argon2Config::MIN_ITERATIONS,
                Argon2Config::MIN_ITERATIONS..=100,
            )?,
            parallelism: parse_num(&get, "ARGON2_PARALLELISM", 1, 1..=64)?,
            concurrency: parse_optional_num(&get, "PASSWORD_HASH_CONCURRENCY", 1..=1024)?,
            queue: parse_num(&get, "PASSWORD_HASH_QUEUE", 64, 0..=100_000)?,
        };
        let login_throttle = LoginThrottle {
            max_failures: parse_num(&get, "LOGIN_MAX_FAILURES", 5, 1..=1000)?,
            window: Duration::from_secs(parse_num(&get, "LOGIN_WINDOW_SECS", 900u64, 1..=86_400)?),
        };
        let auth_rate_limit = parse_auth_rate_limit(&get)?;
        let session_max_age = Duration::from_secs(parse_num(
            &get,
            "SESSION_MAX_AGE_SECS",
            30 * 86_400u64,
            1..=366 * 86_400,
        )?);
        let issuer = get("JWT_ISSUER").unwrap_or_else(|| "task-api".to_owned());
        let audience = get("JWT_AUDIENCE").unwrap_or_else(|| "task-api".to_owned());

        Ok(Self {
            runtime,
            env,
            db: DbConfig {
                url: SecretString::from(database_url),
                max_connections,
                acquire_timeout: Duration::from_millis(acquire_ms),
                statement_cache_capacity,
            },
            jwt: JwtConfig {
                secret: jwt_secret,
                previous_secrets,
                issuer,
                audience,
                access_ttl: Duration::from_secs(access_secs),
                refresh_ttl: Duration::from_secs(refresh_secs),
            },
            password_pepper,
            argon2,
            login_throttle,
            auth_rate_limit,
            session_max_age,
            max_tasks_per_user: Some(parse_num(
                &get,
                "MAX_TASKS_PER_USER",
                10_000u32,
                0..=100_000_000,
            )?)
            .filter(|max| *max > 0),
            http: HttpConfig {
                host,
                port,
                request_timeout: Duration::from_millis(timeout_ms),
                cors_allowed_origins,
                limits,
                header_timeout: Duration::from_secs(parse_num(
                    &get,
                    "HTTP_HEADER_TIMEOUT_SECS",
                    10u64,
                    1..=3600,
                )?),
                max_connections: parse_num(&get, "HTTP_MAX_CONNECTIONS", 1000usize, 1..=1_000_000)?,
                metrics: match get("METRICS_ADDR").as_deref().map(str::trim) {
                    None => MetricsListener::Default(MetricsListener::DEFAULT_ADDR.into()),
                    Some("off") => MetricsListener::Off,
                    Some(addr) => MetricsListener::At(addr.parse().map_err(|_| {
                        ConfigError::new(
                            "METRICS_ADDR",
                            "must be an address with a port (127.0.0.1:9464) or `off`",
                        )
                    })?),
                },
            },
            log_format,
            log_filter,
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "TaskApi".to_owned()),
            function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
            generated_secrets: generated,
        })
    }

    pub fn is_production(&self) -> bool {
        self.env == AppEnv::Production
    }

    /// Which backend `DATABASE_URL` selects, without exposing the URL.
    pub fn database_kind(&self) -> DatabaseKind {
        DatabaseKind::of(self.db.url.expose_secret())
    }
}

/// The log filter: `RUST_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL` (the template's
/// `LogLevel`), else `info`. `get` yields only non-empty values. Also for processes that log
/// before, or without, a whole [`Config`] (the `migrate` function).
pub fn log_filter(get: impl Fn(&str) -> Option<String>) -> String {
    get("RUST_LOG")
        .or_else(|| get("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Postgres,
    Sqlite,
}

impl DatabaseKind {
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        })
    }
}

/// Defaults are generous: a person or a well-behaved client never meets them; a flood does.
fn parse_limits(get: &impl Fn(&str) -> Option<String>) -> Result<LimitsConfig, ConfigError> {
    let per_second = parse_num(get, "RATE_LIMIT_PER_SECOND", 500u32, 0..=1_000_000)?;
    let burst = parse_num(
        get,
        "RATE_LIMIT_BURST",
        per_second.saturating_mul(2),
        0..=10_000_000,
    )?;
    let rate = match (per_second, burst) {
        (0, _) => None,
        (_, 0) => {
            return Err(ConfigError::new(
                "RATE_LIMIT_BURST",
                "must be at least 1 while RATE_LIMIT_PER_SECOND is on",
            ));
        }
        (per_second, burst) => Some(RateLimit { per_second, burst }),
    };
    let concurrency = parse_num(get, "CONCURRENCY_LIMIT", 512usize, 0..=1_000_000)?;
    let trusted_proxy_hops = match get("TRUST_PROXY").as_deref().map(str::trim) {
        None | Some("false") => 0,
        Some("true") => 1,
        Some(hops) => hops
            .parse::<usize>()
            .ok()
            .filter(|h| *h <= 10)
            .ok_or_else(|| {
                ConfigError::new(
                    "TRUST_PROXY",
                    "must be `true`, `false` or the number of proxies in front (0 to 10)",
                )
            })?,
    };
    Ok(LimitsConfig {
        rate,
        concurrency: (concurrency > 0).then_some(concurrency),
        trusted_proxy_hops,
        body_timeout: Some(Duration::from_secs(parse_num(
            get,
            "HTTP_BODY_TIMEOUT_SECS",
            10u64,
            1..=3600,
        )?)),
    })
}

/// 30 a minute with a burst of 30: a person signs in once a fortnight (refresh tokens do
/// the rest), so this is an office of people behind one address, not one client's flood.
fn parse_auth_rate_limit(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<AuthRateLimit>, ConfigError> {
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

fn parse_num<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    Ok(parse_optional_num(get, name, range)?.unwrap_or(default))
}

/// [`parse_num`] for a variable whose default is not known at start-up: `None` when unset.
fn parse_optional_num<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(ConfigError::new(
            name,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// 32 random bytes, base64url: 43 characters, above the minimum.
fn generate_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Development convenience: secrets generated on first start are kept in `dir` so that
/// tokens and password hashes survive a restart of the local server. Production never
/// reaches this (its secrets are required).
pub fn persist_dev_secrets(config: &mut Config, dir: &Path) -> std::io::Result<()> {
    if config.generated_secrets.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("dev-secrets.json");
    let stored: serde_json::Map<String, serde_json::Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e),
    };
    let mut stored = stored;
    for name in &config.generated_secrets {
        let slot = match *name {
            "JWT_SECRET" => &mut config.jwt.secret,
            "PASSWORD_PEPPER" => &mut config.password_pepper,
            _ => continue,
        };
        match stored.get(*name).and_then(|v| v.as_str()) {
            Some(v) if v.len() >= MIN_SECRET_BYTES => *slot = SecretString::from(v.to_owned()),
            _ => {
                stored.insert((*name).to_owned(), slot.expose_secret().to_owned().into());
            }
        }
    }
    let text = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
    write_private(&path, &text)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";

    fn load(runtime: Runtime, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(runtime, |k| map.get(k).cloned())
    }

    #[test]
    fn empty_environment_starts_in_development_with_sqlite_and_generated_secrets() {
        let config = load(Runtime::LocalServer, &[]).unwrap();
        assert_eq!(config.env, AppEnv::Development);
        assert_eq!(config.database_kind(), DatabaseKind::Sqlite);
        assert_eq!(config.db.url.expose_secret(), DEFAULT_SQLITE_URL);
        assert_eq!(
            config.generated_secrets,
            vec!["JWT_SECRET", "PASSWORD_PEPPER"]
        );
        assert!(config.jwt.secret.expose_secret().len() >= MIN_SECRET_BYTES);
        assert_eq!(config.http.port, 3000);
        assert_eq!(config.http.host.to_string(), "127.0.0.1");
    }

    #[test]
    fn production_without_jwt_secret_names_the_variable() {
        let err = load(
            Runtime::LocalServer,
            &[("APP_ENV", "production"), ("PASSWORD_PEPPER", GOOD)],
        )
        .unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
        assert!(err.to_string().contains("JWT_SECRET"));
    }

    #[test]
    fn production_with_short_pepper_names_the_variable() {
        let err = load(
            Runtime::LocalServer,
            &[
                ("APP_ENV", "production"),
                ("JWT_SECRET", GOOD),
                ("PASSWORD_PEPPER", "short"),
            ],
        )
        .unwrap_err();
        assert_eq!(err.variable, "PASSWORD_PEPPER");
    }

    #[test]
    fn short_secret_is_refused_even_in_development() {
        let err = load(Runtime::LocalServer, &[("JWT_SECRET", "tooshort")]).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn lambda_is_always_production_and_needs_a_database_url() {
        let err = load(
            Runtime::Lambda,
            &[
                ("APP_ENV", "development"),
                ("JWT_SECRET", GOOD),
                ("PASSWORD_PEPPER", GOOD),
            ],
        )
        .unwrap_err();
        assert_eq!(err.variable, "DATABASE_URL");

        let config = load(
            Runtime::Lambda,
            &[
                ("JWT_SECRET", GOOD),
                ("PASSWORD_PEPPER", GOOD),
                ("DATABASE_URL", "postgres://u:p@db/app"),
            ],
        )
        .unwrap();
        assert!(config.is_production());
        assert_eq!(config.db.max_connections, 2);
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn password_hash_concurrency_defaults_to_the_cores_counted_later() {
        let config = load(Runtime::LocalServer, &[]).unwrap();
        assert_eq!(config.argon2.concurrency, None);
        let config = load(Runtime::LocalServer, &[("PASSWORD_HASH_CONCURRENCY", "3")]).unwrap();
        assert_eq!(config.argon2.concurrency, Some(3));
        // Empty counts as unset, as for every variable.
        let config = load(Runtime::LocalServer, &[("PASSWORD_HASH_CONCURRENCY", "")]).unwrap();
        assert_eq!(config.argon2.concurrency, None);
        for bad in ["0", "many", "1025"] {
            let err =
                load(Runtime::LocalServer, &[("PASSWORD_HASH_CONCURRENCY", bad)]).unwrap_err();
            assert_eq!(err.variable, "PASSWORD_HASH_CONCURRENCY", "{bad:?}");
        }
    }

    #[test]
    fn auth_limits_default_to_tens_a_minute_and_zero_turns_them_off() {
        let config = load(Runtime::LocalServer, &[]).unwrap();
        assert_eq!(
            config.auth_rate_limit,
            Some(AuthRateLimit {
                per_minute: 30,
                burst: 30
            })
        );
        assert_eq!(config.session_max_age, Duration::from_secs(30 * 86_400));
        assert_eq!(config.argon2.queue, 64);
        let off = load(Runtime::LocalServer, &[("AUTH_RATE_LIMIT_PER_MINUTE", "0")]).unwrap();
        assert_eq!(off.auth_rate_limit, None);
        let tuned = load(
            Runtime::LocalServer,
            &[
                ("AUTH_RATE_LIMIT_PER_MINUTE", "6"),
                ("AUTH_RATE_LIMIT_BURST", "2"),
                ("SESSION_MAX_AGE_SECS", "3600"),
                ("PASSWORD_HASH_QUEUE", "0"),
            ],
        )
        .unwrap();
        assert_eq!(
            tuned.auth_rate_limit,
            Some(AuthRateLimit {
                per_minute: 6,
                burst: 2
            })
        );
        assert_eq!(tuned.session_max_age, Duration::from_secs(3600));
        assert_eq!(tuned.argon2.queue, 0);
    }

    #[test]
    fn lambda_without_secrets_fails() {
        let err = load(Runtime::Lambda, &[("DATABASE_URL", "postgres://db/app")]).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn bad_numbers_and_enums_name_their_variable() {
        for (name, value) in [
            ("PORT", "http"),
            ("PORT", "70000"),
            ("DB_MAX_CONNECTIONS", "0"),
            ("DB_ACQUIRE_TIMEOUT_MS", "-1"),
            ("ACCESS_TOKEN_TTL_SECS", "soon"),
            ("LOG_FORMAT", "xml"),
            ("APP_ENV", "staging"),
            ("HOST", "localhost:80"),
            ("DATABASE_URL", "mysql://x"),
            ("JWT_PREVIOUS_SECRETS", "short"),
            ("DB_STATEMENT_CACHE_CAPACITY", "none"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("ARGON2_ITERATIONS", "1"),
            ("LOGIN_MAX_FAILURES", "0"),
            ("RATE_LIMIT_PER_SECOND", "lots"),
            ("RATE_LIMIT_BURST", "0"),
            ("CONCURRENCY_LIMIT", "-5"),
            ("TRUST_PROXY", "yes"),
            ("AUTH_RATE_LIMIT_PER_MINUTE", "-1"),
            ("AUTH_RATE_LIMIT_BURST", "0"),
            ("SESSION_MAX_AGE_SECS", "0"),
            ("PASSWORD_HASH_QUEUE", "lots"),
            ("HTTP_HEADER_TIMEOUT_SECS", "0"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("METRICS_ADDR", "localhost"),
            ("MAX_TASKS_PER_USER", "-1"),
            ("HTTP_BODY_TIMEOUT_SECS", "0"),
        ] {
            let err = load(Runtime::LocalServer, &[(name, value)]).unwrap_err();
            assert_eq!(err.variable, name, "{name}={value}");
        }
    }

    #[test]
    fn limits_are_on_by_default_locally_off_under_lambda_and_configurable() {
        let local = load(Runtime::LocalServer, &[]).unwrap().http.limits;
        assert_eq!(
            local,
            LimitsConfig {
                rate: Some(RateLimit {
                    per_second: 500,
                    burst: 1000
                }),
                concurrency: Some(512),
                trusted_proxy_hops: 0,
                body_timeout: Some(Duration::from_secs(10)),
            }
        );
        let lambda = load(
            Runtime::Lambda,
            &[
                ("DATABASE_URL", "postgres://db/x"),
                ("JWT_SECRET", GOOD),
                ("PASSWORD_PEPPER", GOOD),
                ("RATE_LIMIT_PER_SECOND", "5"),
            ],
        )
        .unwrap();
        assert_eq!(lambda.http.limits, LimitsConfig::OFF);
        let off = load(
            Runtime::LocalServer,
            &[
                ("RATE_LIMIT_PER_SECOND", "0"),
                ("CONCURRENCY_LIMIT", "0"),
                ("TRUST_PROXY", "true"),
            ],
        )
        .unwrap()
        .http
        .limits;
        assert_eq!(off.rate, None);
        assert_eq!(off.concurrency, None);
        assert_eq!(off.trusted_proxy_hops, 1);
        let tuned = load(
            Runtime::LocalServer,
            &[
                ("RATE_LIMIT_PER_SECOND", "3"),
                ("RATE_LIMIT_BURST", "7"),
                ("TRUST_PROXY", "2"),
            ],
        )
        .unwrap()
        .http
        .limits;
        assert_eq!(
            tuned.rate,
            Some(RateLimit {
                per_second: 3,
                burst: 7
            })
        );
        assert_eq!(tuned.trusted_proxy_hops, 2);
    }

    #[test]
    fn database_url_value_never_appears_in_errors_or_debug() {
        let err = load(
            Runtime::LocalServer,
            &[("DATABASE_URL", "mysql://admin:hunter2hunter2@db")],
        )
        .unwrap_err();
        assert!(!err.to_string().contains("hunter2"));

        let config = load(
            Runtime::LocalServer,
            &[
                ("DATABASE_URL", "postgres://admin:hunter2hunter2@db/app"),
                ("JWT_SECRET", "jwt-secret-value-that-is-long-enough-xx"),
            ],
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("jwt-secret-value"), "{debug}");
    }

    #[test]
    fn previous_secrets_and_cors_lists_are_split_and_trimmed() {
        let config = load(
            Runtime::LocalServer,
            &[
                ("JWT_PREVIOUS_SECRETS", &format!(" {GOOD} ,{GOOD}x,")),
                (
                    "CORS_ALLOWED_ORIGINS",
                    "https://a.example/, https://b.example",
                ),
            ],
        )
        .unwrap();
        assert_eq!(config.jwt.previous_secrets.len(), 2);
        assert_eq!(
            config.http.cors_allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn lambda_log_settings_are_honoured() {
        let base = [
            ("JWT_SECRET", GOOD),
            ("PASSWORD_PEPPER", GOOD),
            ("DATABASE_URL", "postgres://db/app"),
        ];
        let mut vars = base.to_vec();
        vars.push(("AWS_LAMBDA_LOG_LEVEL", "DEBUG"));
        let config = load(Runtime::Lambda, &vars).unwrap();
        assert_eq!(config.log_filter, "debug");
        assert_eq!(config.log_format, LogFormat::Json);
        vars.push(("RUST_LOG", "warn,task=trace"));
        assert_eq!(
            load(Runtime::Lambda, &vars).unwrap().log_filter,
            "warn,task=trace"
        );
        let local = load(Runtime::LocalServer, &[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).unwrap();
        assert_eq!(local.log_format, LogFormat::Json);
        assert_eq!(
            load(Runtime::LocalServer, &[]).unwrap().log_format,
            LogFormat::Pretty
        );
    }

    #[test]
    fn dev_secrets_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = load(Runtime::LocalServer, &[]).unwrap();
        persist_dev_secrets(&mut first, dir.path()).unwrap();
        let mut second = load(Runtime::LocalServer, &[]).unwrap();
        persist_dev_secrets(&mut second, dir.path()).unwrap();
        assert_eq!(
            first.jwt.secret.expose_secret(),
            second.jwt.secret.expose_secret()
        );
        assert_eq!(
            first.password_pepper.expose_secret(),
            second.password_pepper.expose_secret()
        );
    }
}
