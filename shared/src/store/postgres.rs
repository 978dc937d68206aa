//! The Postgres backend (production): how its pool is built, and its [`Driver`]: timestamps
//! as `timestamptz`, writing transactions that lock rows as they reach them, its
//! migrations. Everything else is the generic store ([`super::db`]).

use std::str::FromStr as _;

use secrecy::ExposeSecret as _;
use sqlx::{
    Connection as _, Postgres, Transaction,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgQueryResult, PgRow},
};
use time::OffsetDateTime;

use super::{
    SqlxResultExt as _, StoreError,
    db::{Driver, Record, SqlStore},
    held::StoreId,
    migrations::{self, MigrationReport},
};
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub type PgStore = SqlStore<Postgres>;

/// A pooled connection idle at least this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl SqlStore<Postgres> {
    pub fn connect_lazy(config: &DbConfig) -> Result<Self, StoreError> {
        let mut options =
            PgConnectOptions::from_str(config.url.expose_secret()).map_err(StoreError::BadUrl)?;
        if let Some(capacity) = config.statement_cache_capacity {
            options = options.statement_cache_capacity(capacity);
        }
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(config.acquire_timeout)
            // A connection that sat idle (through a Lambda freeze, past a NAT's or the
            // server's idle timeout) may be dead: ping it before use, so the request gets a
            // fresh one instead of an error. One in steady use is not pinged: that would be
            // a round trip per acquire. A read that meets a connection closed more recently
            // is retried ([`SqlStore::read`](super::db::SqlStore)).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    Ok(meta.idle_for < PING_AFTER_IDLE
                        || sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .connect_lazy_with(options);
        Ok(Self {
            writer: pool.clone(),
            pool,
            holds: Some(StoreId::next()),
        })
    }

    /// [`Store::migrate`](super::Store::migrate) with server-side bounds, for migrating a
    /// live database on deploy: a statement running longer than `statement_timeout` is
    /// cancelled by Postgres itself (its migration rolled back), and one waiting longer than
    /// `lock_timeout` for a lock gives up rather than queueing every query of the API
    /// behind it.
    pub async fn migrate_bounded(
        &self,
        statement_timeout: std::time::Duration,
        lock_timeout: std::time::Duration,
    ) -> Result<MigrationReport, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .context("migrating the database")?;
        let ms = |d: std::time::Duration| d.as_millis().max(1);
        // `SET` takes no bind parameters; the values are integers formatted here.
        let settings = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            ms(statement_timeout),
            ms(lock_timeout)
        );
        sqlx::raw_sql(&settings)
            .execute(&mut *conn)
            .await
            .context("bounding the migration")?;
        let report = migrations::run(&MIGRATOR, &mut *conn).await;
        // The connection goes back to the pool as it came.
        let _ = sqlx::raw_sql("RESET statement_timeout; RESET lock_timeout")
            .execute(&mut *conn)
            .await;
        report
    }
}

impl Driver for Postgres {
    const KIND: Backend = Backend::Postgres;

    type Time = OffsetDateTime;

    fn time(t: OffsetDateTime) -> OffsetDateTime {
        t
    }

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    // Postgres locks rows as statements reach them (`FOR UPDATE` where a flow reads first).
    async fn begin_writer(conn: &mut PgConnection) -> Result<Transaction<'_, Self>, sqlx::Error> {
        conn.begin().await
    }

    fn decode<T: Record>(row: &PgRow) -> Result<T, sqlx::Error> {
        T::from_row(row)
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}
