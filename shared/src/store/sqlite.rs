//! The SQLite backend: the zero-set-up default of the local server and of tests. WAL mode,
//! foreign keys on, a busy timeout; the database file's directory is created if missing.
//! This module is how its pool is built, and its [`Driver`]: timestamps as fixed-width
//! text, writing transactions that take the write lock at once (`BEGIN IMMEDIATE`), its
//! migrations. Everything else is the generic store ([`super::db`]).

use std::{str::FromStr as _, time::Duration};

use secrecy::ExposeSecret as _;
use sqlx::{
    Connection as _, Sqlite, Transaction,
    sqlite::{
        SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
        SqliteQueryResult, SqliteRow, SqliteSynchronous,
    },
};
use time::{OffsetDateTime, format_description::BorrowedFormatItem, macros::format_description};

use super::{
    StoreError,
    db::{Driver, Record, SqlStore, Statements},
    migrations,
};
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

pub type SqliteStore = SqlStore<Sqlite>;

/// Fixed width, always UTC, always six fractional digits: text order is time order, so
/// comparisons and `ORDER BY` on timestamp columns work on the text. (It is RFC 3339, which
/// sqlx decodes natively into `OffsetDateTime`.)
const TIMESTAMP: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// A timestamp as stored in SQLite.
pub(crate) fn ts(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default()
}

impl SqlStore<Sqlite> {
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
        // A file's connection cannot go stale: no ping before use.
        let pool = |max| {
            SqlitePoolOptions::new()
                .max_connections(max)
                .test_before_acquire(false)
                .acquire_timeout(config.acquire_timeout)
                .connect_lazy_with(options.clone())
        };
        Ok(Self {
            pool: pool(config.max_connections),
            // Writers queue for the one connection in order (`SqlStore::writer`).
            writer: pool(1),
            holds: None,
            statements: Statements::Prepared,
        })
    }
}

impl Driver for Sqlite {
    const KIND: Backend = Backend::Sqlite;

    type Time = String;

    fn time(t: OffsetDateTime) -> String {
        ts(t)
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    async fn migrate(
        pool: &sqlx::SqlitePool,
        _: Statements,
    ) -> Result<migrations::MigrationReport, StoreError> {
        migrations::sqlite(pool).await
    }

    /// Holds the write lock from the first statement: SQLite has no row locks, and a
    /// deferred transaction that reads and then writes could deadlock with another (the
    /// busy timeout queues writers instead).
    async fn begin_writer(
        conn: &mut SqliteConnection,
    ) -> Result<Transaction<'_, Self>, sqlx::Error> {
        conn.begin_with("BEGIN IMMEDIATE").await
    }

    fn decode<T: Record>(row: &SqliteRow) -> Result<T, sqlx::Error> {
        T::from_row(row)
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_rfc3339_and_sort_as_text() {
        let a = crate::models::now();
        let b = a + time::Duration::microseconds(1);
        let text = ts(a);
        let parsed =
            OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(parsed, a);
        assert!(ts(a) < ts(b));
        assert_eq!(text.len(), "2026-11-21T10:15:00.000000Z".len());
        let whole = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(
            ts(whole).len(),
            text.len(),
            "no digits dropped: {}",
            ts(whole)
        );
    }
}
