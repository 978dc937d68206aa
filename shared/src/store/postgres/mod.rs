//! The Postgres backend: production. One module per resource, SQL only here.

use std::str::FromStr as _;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sqlx::{
    PgPool, Postgres,
    postgres::{PgArguments, PgConnectOptions, PgPoolOptions},
    query::Query,
};

mod admin;
mod tasks;
mod users;

use super::sql::{Param, Sql};
use super::{
    PoolStats, SqlxResultExt as _, Store, StoreError, TaskRepository, TokenRepository,
    UserRepository,
};
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
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

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// [`Store::migrate`] with server-side bounds, for migrating a live database on deploy:
    /// a statement running longer than `statement_timeout` is cancelled by Postgres itself
    /// (its migration rolled back), and one waiting longer than `lock_timeout` for a lock
    /// gives up rather than queueing every query of the API behind it.
    pub async fn migrate_bounded(
        &self,
        statement_timeout: std::time::Duration,
        lock_timeout: std::time::Duration,
    ) -> Result<super::migrations::MigrationReport, StoreError> {
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
        let report = super::migrations::run(&MIGRATOR, &mut *conn).await;
        // The connection goes back to the pool as it came.
        let _ = sqlx::raw_sql("RESET statement_timeout; RESET lock_timeout")
            .execute(&mut *conn)
            .await;
        report
    }

    /// A transaction that may write; Postgres locks rows as statements reach them.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> Backend {
        Backend::Postgres
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

/// Builds a query from shared SQL, binding each value in Postgres's own type.
pub(crate) fn query(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::OptUuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
            Param::OptText(v) => q.bind(v.clone()),
            Param::Time(v) => q.bind(*v),
            Param::OptTime(v) => q.bind(*v),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.clone()),
        })
}
