//! Configuration: every setting comes from the environment, is parsed and validated once at
//! start-up into [`Config`], and is passed down from there. Nothing else in the workspace
//! reads environment variables for settings.
//!
//! A bad or missing value is a [`ConfigError`] naming the variable, so the process can stop
//! with one clear line instead of failing on the first request. Secrets are held as
//! [`SecretString`] and never appear in `Debug` output.
//!
//! One module per concern, each reading its own variables: [`database`], [`tokens`],
//! [`passwords`], [`http`], [`mail`], [`telemetry`]; [`values`] turns text into numbers and secrets.

mod database;
mod dev_secrets;
mod http;
mod mail;
mod passwords;
mod telemetry;
mod tokens;
mod values;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

pub use database::{Backend, DEFAULT_SQLITE_URL, DbConfig};
pub use dev_secrets::persist_dev_secrets;
pub use http::{HttpConfig, LimitsConfig, MetricsListener, RateLimit};
pub use mail::{MailConfig, MailDelivery, SmtpSettings, SmtpTls};
pub use passwords::{Argon2Config, AuthRateLimit, LoginThrottle};
pub use telemetry::{LogFormat, OtlpExport, Propagator, Sampler, TracingConfig, log_filter};
pub use tokens::{AsymmetricKeys, JwtConfig};
pub use values::MIN_SECRET_BYTES;
use values::{Lookup, Secrets, parse_num};

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
    pub mail: MailConfig,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub tracing: TracingConfig,
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
    pub(crate) fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

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
        let env = parse_app_env(runtime, &get)?;
        let mut secrets = Secrets {
            production: env == AppEnv::Production,
            generated: Vec::new(),
        };
        // The required values first, so a deployment missing one hears about it first.
        let url = database::parse_url(runtime, &get)?;
        let jwt_secret = secrets.read(&get, "JWT_SECRET")?;
        let pepper = secrets.read(&get, "PASSWORD_PEPPER")?;
        let jwt = tokens::parse(jwt_secret, &mut secrets, &get)?;
        let db = database::parse(url, runtime, &get)?;
        let passwords = passwords::parse(pepper, &get)?;
        Ok(Self {
            runtime,
            env,
            db,
            jwt,
            password_pepper: passwords.pepper,
            argon2: passwords.argon2,
            login_throttle: passwords.login_throttle,
            auth_rate_limit: passwords.auth_rate_limit,
            session_max_age: tokens::parse_session_max_age(&get)?,
            max_tasks_per_user: Some(parse_num(
                &get,
                "MAX_TASKS_PER_USER",
                10_000u32,
                0..=100_000_000,
            )?)
            .filter(|max| *max > 0),
            http: http::parse(runtime, &get)?,
            mail: mail::parse(env == AppEnv::Production, &get)?,
            log_format: telemetry::parse_format(runtime, &get)?,
            log_filter: log_filter(get),
            tracing: telemetry::parse_tracing(&get)?,
            metrics_namespace: get("METRICS_NAMESPACE").unwrap_or_else(|| "TaskApi".to_owned()),
            function_name: get("AWS_LAMBDA_FUNCTION_NAME"),
            generated_secrets: secrets.generated,
        })
    }

    pub fn is_production(&self) -> bool {
        self.env == AppEnv::Production
    }

    /// Which backend `DATABASE_URL` selects, without exposing the URL.
    pub fn database_kind(&self) -> Backend {
        Backend::of(self.db.url.expose_secret())
    }
}

/// `APP_ENV`; Lambda is always production.
fn parse_app_env(runtime: Runtime, get: &impl Lookup) -> Result<AppEnv, ConfigError> {
    match runtime {
        Runtime::Lambda => Ok(AppEnv::Production),
        Runtime::LocalServer => match get("APP_ENV").as_deref().map(str::trim) {
            None | Some("development") => Ok(AppEnv::Development),
            Some("production") => Ok(AppEnv::Production),
            Some(other) => Err(ConfigError::new(
                "APP_ENV",
                format!("must be `development` or `production`, got `{other}`"),
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const GOOD: &str = "0123456789abcdef0123456789abcdef";
    const SECRETS: &[(&str, &str)] = &[("JWT_SECRET", GOOD), ("PASSWORD_PEPPER", GOOD)];

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
        assert_eq!(config.database_kind(), Backend::Sqlite);
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
    fn migrations_use_their_own_url_and_credentials_when_given() {
        use secrecy::ExposeSecret as _;
        let proxy = "postgres://app@proxy.example:5432/app";
        let direct = "postgres://owner:owner-pw@db.example:5432/app";
        let base = [
            ("DATABASE_URL", proxy),
            ("DATABASE_PASSWORD", "proxy-pw"),
            ("DB_STATEMENT_CACHE_CAPACITY", "0"),
            ("MIGRATIONS_DATABASE_URL", " "),
        ];
        let config = load(Runtime::Lambda, &[&base[..], SECRETS].concat()).unwrap();
        let migrations = config.db.for_migrations();
        assert_eq!(
            migrations.url.expose_secret(),
            proxy,
            "unset (blank): DATABASE_URL"
        );
        assert_eq!(migrations.password.unwrap().expose_secret(), "proxy-pw");
        assert_eq!(
            migrations.statement_cache_capacity,
            Some(0),
            "through the proxy"
        );

        let with = [&base[..3], &[("MIGRATIONS_DATABASE_URL", direct)], SECRETS].concat();
        let config = load(Runtime::Lambda, &with).unwrap();
        let migrations = config.db.for_migrations();
        assert_eq!(migrations.url.expose_secret(), direct);
        assert!(
            migrations.password.is_none(),
            "DATABASE_PASSWORD is DATABASE_URL's"
        );
        assert_eq!(
            migrations.statement_cache_capacity, None,
            "the database itself: prepared statements, and a session for a concurrent build"
        );
        let shown = format!("{:?}", config.db);
        assert!(
            !shown.contains("owner-pw") && !shown.contains("proxy-pw"),
            "{shown}"
        );

        for wrong in ["sqlite://./data/x.db", "mysql://owner:owner-pw@db/app"] {
            let vars = [&base[..2], &[("MIGRATIONS_DATABASE_URL", wrong)], SECRETS].concat();
            let err = load(Runtime::Lambda, &vars).unwrap_err();
            assert_eq!(err.variable, "MIGRATIONS_DATABASE_URL");
            assert!(!err.to_string().contains("owner-pw"), "{err}");
        }
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
    fn asymmetric_algorithms_need_their_key_in_production_and_refuse_a_key_they_cannot_use() {
        use crate::auth::keys::{KeyAlgorithm, SigningKey};
        let production = |extra: &[(&str, &str)]| {
            let mut vars = vec![("APP_ENV", "production")];
            vars.extend_from_slice(SECRETS);
            vars.extend_from_slice(extra);
            load(Runtime::LocalServer, &vars)
        };
        assert!(
            production(&[]).unwrap().jwt.keys.is_none(),
            "HS256 by default"
        );
        let missing = production(&[("JWT_ALGORITHM", "EdDSA")]).unwrap_err();
        assert_eq!(missing.variable, "JWT_SIGNING_KEY");
        let ed = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
        let config = production(&[("JWT_ALGORITHM", "EdDSA"), ("JWT_SIGNING_KEY", &ed)]).unwrap();
        let keys = config.jwt.keys.as_ref().unwrap();
        assert_eq!(keys.algorithm(), KeyAlgorithm::EdDsa);
        let debug = format!("{config:?}");
        let der = format!("{:?}", keys.signing.pkcs8());
        assert!(
            !debug.contains(&ed[30..60]) && !debug.contains(&der[1..40]),
            "the private key reached Debug output"
        );
        let wrong =
            production(&[("JWT_ALGORITHM", "ES256"), ("JWT_SIGNING_KEY", &ed)]).unwrap_err();
        assert_eq!(wrong.variable, "JWT_SIGNING_KEY");
        assert!(!wrong.to_string().contains(&ed[40..70]), "{wrong}");
        for (variable, extra) in [
            ("JWT_ALGORITHM", vec![("JWT_ALGORITHM", "RS512")]),
            ("JWT_SIGNING_KEY", vec![("JWT_ALGORITHM", "RS256")]),
            ("JWT_ALGORITHM", vec![("JWT_ALGORITHM", "none")]),
            ("JWT_SIGNING_KEY", vec![("JWT_SIGNING_KEY", ed.as_str())]),
            (
                "JWT_VERIFY_KEYS",
                vec![("JWT_VERIFY_KEYS", "-----BEGIN PUBLIC KEY-----")],
            ),
            (
                "JWT_PREVIOUS_SECRETS",
                vec![
                    ("JWT_ALGORITHM", "EdDSA"),
                    ("JWT_SIGNING_KEY", ed.as_str()),
                    ("JWT_PREVIOUS_SECRETS", GOOD),
                ],
            ),
            (
                "JWT_VERIFY_KEYS",
                vec![
                    ("JWT_ALGORITHM", "EdDSA"),
                    ("JWT_SIGNING_KEY", ed.as_str()),
                    ("JWT_VERIFY_KEYS", "not a key"),
                ],
            ),
        ] {
            assert_eq!(
                production(&extra).unwrap_err().variable,
                variable,
                "{extra:?}"
            );
        }
    }

    #[test]
    fn a_generated_signing_key_survives_a_restart_and_a_new_algorithm_gets_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let start = |algorithm: &str| {
            let mut config = load(Runtime::LocalServer, &[("JWT_ALGORITHM", algorithm)]).unwrap();
            assert!(config.generated_secrets.contains(&"JWT_SIGNING_KEY"));
            persist_dev_secrets(&mut config, dir.path()).unwrap();
            let keys = config.jwt.keys.unwrap();
            (keys.algorithm(), keys.signing.public().kid().to_owned())
        };
        let first = start("EdDSA");
        assert_eq!(start("EdDSA"), first);
        let other = start("ES256");
        assert_ne!(other.1, first.1);
        assert_eq!(start("ES256"), other);
        // ring makes no RSA keys: RS256 needs one given, even in development.
        let rsa = load(Runtime::LocalServer, &[("JWT_ALGORITHM", "RS256")]).unwrap_err();
        assert_eq!(rsa.variable, "JWT_SIGNING_KEY");
        assert!(rsa.problem.contains("openssl genpkey"), "{rsa}");
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
