//! The SQLite backend: the zero-set-up default of the local server and of tests. WAL mode,
//! foreign keys on, a busy timeout; the database file's directory is created if missing.

use std::{str::FromStr as _, time::Duration};

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sqlx::{
    Sqlite, SqlitePool,
    query::Query,
    sqlite::{
        SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
        SqliteSynchronous,
    },
};

mod admin;
mod tasks;
mod users;

use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use super::sql::{Param, Sql};
use super::{
    PoolStats, SqlxResultExt as _, Store, StoreError, TaskRepository, TokenRepository,
    UserRepository,
};

/// Fixed width, always UTC, always six fractional digits: text order is time order.
const TIMESTAMP: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// A timestamp as stored in SQLite.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

/// Reads a timestamp written by [`ts`].
pub(crate) fn parse_ts(s: &str) -> Result<OffsetDateTime, sqlx::Error> {
    time::PrimitiveDateTime::parse(s, TIMESTAMP)
        .map(|t| t.assume_utc())
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn connect_lazy(config: &DbConfig) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(config.url.expose_secret())
            .map_err(StoreError::BadUrl)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            if file.as_os_str() != ":memory:" {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::BadUrl(sqlx::Error::Configuration(
                        format!(
                            "creating the directory {} for the database: {e}",
                            dir.display()
                        )
                        .into(),
                    ))
                })?;
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A transaction holding SQLite's write lock from its first statement, so a
    /// read-then-write flow cannot deadlock with another (the busy timeout queues them).
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .context("pinging the database")?;
        Ok(())
    }

    async fn migrate(&self) -> Result<super::migrations::MigrationReport, StoreError> {
        super::migrations::run_on_pool(&MIGRATOR, &self.pool).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
        }
    }

    fn users(&self) -> &dyn UserRepository {
        self
    }

    fn tokens(&self) -> &dyn TokenRepository {
        self
    }

    fn tasks(&self) -> &dyn TaskRepository {
        self
    }

    fn admin(&self) -> &dyn super::AdminRepository {
        self
    }
}

/// Builds a query from shared SQL; timestamps become fixed-width text.
pub(crate) fn query(sql: &Sql) -> Query<'_, Sqlite, SqliteArguments<'_>> {
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::OptUuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
            Param::OptText(v) => q.bind(v.clone()),
            Param::Time(v) => q.bind(ts(*v)),
            Param::OptTime(v) => q.bind(v.map(ts)),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.clone()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_sort_as_text() {
        let a = crate::models::now();
        let b = a + time::Duration::microseconds(1);
        assert_eq!(parse_ts(&ts(a)).unwrap(), a);
        assert!(ts(a) < ts(b));
        assert_eq!(ts(a).len(), "2026-11-21T10:15:00.000000Z".len());
    }
}
