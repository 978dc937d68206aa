//! The database: which one (`DATABASE_URL`) and its pool.

use std::{fmt, time::Duration};

use secrecy::SecretString;

use super::{
    ConfigError, Runtime,
    values::{Lookup, parse_num},
};

/// Default SQLite database of the local server.
pub const DEFAULT_SQLITE_URL: &str = "sqlite://./data/local.db";

/// Pool settings. Small by default under Lambda, where every instance holds its own pool.
#[derive(Debug, Clone)]
pub struct DbConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `Some(0)` turns prepared-statement caching off, for a connection proxy that pools by
    /// transaction (PgBouncer's transaction mode, RDS Proxy): statements are then unnamed,
    /// each in a transaction ([`crate::store::db::Statements`]).
    pub statement_cache_capacity: Option<usize>,
    /// `DATABASE_PASSWORD`: the password for `url`'s user, when it is not in the URL (the
    /// template passes the one in the RDS Proxy's secret this way: it need not be
    /// percent-encoded).
    pub password: Option<SecretString>,
    /// `MIGRATIONS_DATABASE_URL`: where migrations run, when not through `url` (a direct
    /// address of the database behind a proxy, or a role that may change the schema).
    pub migrations_url: Option<SecretString>,
}

impl DbConfig {
    /// The settings migrations run with: `MIGRATIONS_DATABASE_URL` when set, else
    /// `DATABASE_URL`, with the same pool settings. `MIGRATIONS_DATABASE_URL` is taken for
    /// the database's own address, with prepared statements whatever
    /// `DB_STATEMENT_CACHE_CAPACITY` says for the proxy in front of `DATABASE_URL` (a URL
    /// through a proxy too says so itself: `statement-cache-capacity=0`).
    pub fn for_migrations(&self) -> Self {
        match &self.migrations_url {
            // Its own credentials: DATABASE_PASSWORD is DATABASE_URL's.
            Some(url) => Self {
                url: url.clone(),
                password: None,
                migrations_url: None,
                statement_cache_capacity: None,
                ..self.clone()
            },
            None => self.clone(),
        }
    }
}

/// The database behind `DATABASE_URL`: the one name for it everywhere (configuration, the
/// store's SQL dialect, the test matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    pub fn of(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            Self::Sqlite
        } else {
            Self::Postgres
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        })
    }
}

/// `DATABASE_URL`: required under Lambda; the local server defaults to SQLite. The value is
/// never echoed in an error (it may carry a password).
pub(super) fn parse_url(runtime: Runtime, get: &impl Lookup) -> Result<SecretString, ConfigError> {
    let url = match get("DATABASE_URL") {
        Some(url) => url.trim().to_owned(),
        None if runtime == Runtime::LocalServer => DEFAULT_SQLITE_URL.to_owned(),
        None => return Err(ConfigError::new("DATABASE_URL", "is required")),
    };
    check_scheme("DATABASE_URL", &url)?;
    Ok(SecretString::from(url))
}

fn check_scheme(variable: &'static str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url.starts_with("sqlite:")
    {
        Ok(())
    } else {
        Err(ConfigError::new(
            variable,
            "must start with postgres://, postgresql:// or sqlite:",
        ))
    }
}

/// `MIGRATIONS_DATABASE_URL`: optional (empty is unset), and the same kind of database as
/// `url`. Never echoed either.
fn parse_migrations_url(
    url: &SecretString,
    get: &impl Lookup,
) -> Result<Option<SecretString>, ConfigError> {
    use secrecy::ExposeSecret as _;
    const VAR: &str = "MIGRATIONS_DATABASE_URL";
    let Some(migrations) = get(VAR)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    check_scheme(VAR, &migrations)?;
    if Backend::of(&migrations) != Backend::of(url.expose_secret()) {
        return Err(ConfigError::new(
            VAR,
            "must name the same kind of database as DATABASE_URL",
        ));
    }
    Ok(Some(SecretString::from(migrations)))
}

/// The pool's `DB_*` settings for `url`.
pub(super) fn parse(
    url: SecretString,
    runtime: Runtime,
    get: &impl Lookup,
) -> Result<DbConfig, ConfigError> {
    let default_max_connections = match runtime {
        Runtime::Lambda => 2,
        Runtime::LocalServer => 10,
    };
    let max_connections = parse_num(get, "DB_MAX_CONNECTIONS", default_max_connections, 1..=1000)?;
    let acquire_ms = parse_num(get, "DB_ACQUIRE_TIMEOUT_MS", 3000u64, 1..=600_000)?;
    let statement_cache_capacity = match get("DB_STATEMENT_CACHE_CAPACITY") {
        None => None,
        Some(v) => Some(v.trim().parse::<usize>().map_err(|_| {
            ConfigError::new("DB_STATEMENT_CACHE_CAPACITY", "must be a whole number")
        })?),
    };
    let migrations_url = parse_migrations_url(&url, get)?;
    Ok(DbConfig {
        password: get("DATABASE_PASSWORD").map(SecretString::from),
        migrations_url,
        url,
        max_connections,
        acquire_timeout: Duration::from_millis(acquire_ms),
        statement_cache_capacity,
    })
}
