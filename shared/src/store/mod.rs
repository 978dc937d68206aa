//! Persistence. Handlers talk to the [`Store`] trait and its repositories; the Postgres and
//! SQLite implementations below hide every line of SQL. The backend is chosen at run time
//! from `DATABASE_URL`; a binary built without a backend's cargo feature says so instead of
//! linking it (the Lambda functions carry Postgres only).
//!
//! Pools are lazy: building a store opens no connection, so a Lambda cold start never waits
//! on the database. Migrations are embedded and run only when asked (`local-server`).

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{DatabaseKind, DbConfig};

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// What can go wrong in the store, in terms callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the pool is exhausted: retryable, 503.
    #[error("database unavailable while {context}")]
    Unavailable {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A unique or check constraint decided a race or refused a value.
    #[error("constraint `{constraint}` violated while {context}")]
    Constraint {
        context: &'static str,
        constraint: String,
    },
    #[error("migrating the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("invalid database URL")]
    BadUrl(#[source] sqlx::Error),
    #[error("database error while {context}")]
    Other {
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl StoreError {
    /// Classifies a driver error, naming what the store was doing.
    pub fn from_sqlx(context: &'static str, source: sqlx::Error) -> Self {
        match &source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable { context, source },
            sqlx::Error::Database(db) => match db.constraint() {
                Some(name) => Self::Constraint {
                    context,
                    constraint: name.to_owned(),
                },
                // SQLite reports unique violations without a constraint name; its message
                // names the columns ("UNIQUE constraint failed: users.email").
                None if db.is_unique_violation() || db.is_check_violation() => Self::Constraint {
                    context,
                    constraint: db.message().rsplit(": ").next().unwrap_or("").to_owned(),
                },
                None => Self::Other { context, source },
            },
            _ => Self::Other { context, source },
        }
    }
}

/// Adds `.context("…")` to driver results.
pub trait SqlxResultExt<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::from_sqlx(what, e))
    }
}

impl From<StoreError> for crate::error::ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { .. } => Self::unavailable(err),
            other => Self::internal(other),
        }
    }
}

/// Pool occupancy, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// The database as the rest of the code sees it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn kind(&self) -> DatabaseKind;
    /// One round trip; used by `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Applies the embedded migrations of this backend.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// Closes the pool, waiting for checked-out connections to come back.
    async fn close(&self);
    fn pool_stats(&self) -> PoolStats;
}

pub type DynStore = Arc<dyn Store>;

/// Builds the store `DATABASE_URL` names, without connecting.
pub fn connect_lazy(config: &DbConfig) -> Result<DynStore, StoreError> {
    use secrecy::ExposeSecret as _;
    match DatabaseKind::of(config.url.expose_secret()) {
        #[cfg(feature = "postgres")]
        DatabaseKind::Postgres => Ok(Arc::new(postgres::PgStore::connect_lazy(config)?)),
        #[cfg(not(feature = "postgres"))]
        DatabaseKind::Postgres => Err(StoreError::Unsupported(
            "this binary was built without Postgres support",
        )),
        #[cfg(feature = "sqlite")]
        DatabaseKind::Sqlite => Ok(Arc::new(sqlite::SqliteStore::connect_lazy(config)?)),
        #[cfg(not(feature = "sqlite"))]
        DatabaseKind::Sqlite => Err(StoreError::Unsupported(
            "this binary was built without SQLite support (Lambda functions use Postgres)",
        )),
    }
}
