//! The Postgres backend (production): how its pool is built, how a statement's parameters
//! are bound (timestamps as `timestamptz`), and its migrations. Everything else is the
//! generic store ([`super::db`]).

use std::str::FromStr as _;

use secrecy::ExposeSecret as _;
use sqlx::{
    PgConnection, Pool, Postgres, Transaction,
    postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow},
    query::Query,
};

use super::{
    SqlxResultExt as _, StoreError,
    db::{Db, Record, SqlStore},
    migrations::{self, MigrationReport},
    sql::{Param, Sql},
};
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub type PgStore = SqlStore<Postgres>;

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
            // A connection that sat through a Lambda freeze may be dead; check before use so
            // the request gets a fresh one instead of an error.
            .test_before_acquire(true)
            .connect_lazy_with(options);
        Ok(Self { pool })
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

/// A statement with its parameters bound in Postgres's own types.
fn query(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::OptUuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.as_str()),
            Param::OptText(v) => q.bind(v.as_deref()),
            Param::Time(v) => q.bind(*v),
            Param::OptTime(v) => q.bind(*v),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.as_slice()),
        })
}

impl Db for Postgres {
    const KIND: Backend = Backend::Postgres;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    // Postgres locks rows as statements reach them (`FOR UPDATE` where a flow reads first).
    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    fn fetch_optional<'c, T: Record>(
        conn: &'c mut PgConnection,
        sql: &'c Sql,
    ) -> impl Future<Output = Result<Option<T>, sqlx::Error>> + Send + 'c {
        query(sql)
            .try_map(|row: PgRow| T::from_row(&row))
            .fetch_optional(conn)
    }

    fn fetch_all<'c, T: Record>(
        conn: &'c mut PgConnection,
        sql: &'c Sql,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'c {
        query(sql)
            .try_map(|row: PgRow| T::from_row(&row))
            .fetch_all(conn)
    }

    async fn execute<'c>(conn: &'c mut PgConnection, sql: &'c Sql) -> Result<u64, sqlx::Error> {
        Ok(query(sql).execute(conn).await?.rows_affected())
    }
}
