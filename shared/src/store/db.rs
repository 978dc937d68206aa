//! The store's one implementation, generic over the backend: [`SqlStore<D>`] for
//! `D = sqlx::Postgres` or `sqlx::Sqlite`. The repositories (`tasks`, `accounts`, `admin`)
//! are written once against it; the [`Db`] trait is everything a backend supplies, and each
//! backend's module (`postgres`, `sqlite`) implements it in one place: how a transaction that
//! writes begins, how parameters are bound (the timestamp codec), and the migrations.
//! Differences in statement text are in the [`Dialect`](super::sql::Dialect) tables.
//!
//! Rows become values through `#[derive(sqlx::FromRow)]` on the models; both backends decode
//! every column natively (SQLite parses the RFC 3339 text our codec writes).

use std::future::Future;

use async_trait::async_trait;
use sqlx::{Database, Pool, Transaction, migrate::Migrate, pool::PoolConnection};

use super::{
    AdminRepository, PoolStats, SqlxResultExt as _, Store, StoreError, TaskRepository,
    TokenRepository, UserRepository, migrations, sql::Sql,
};
use crate::config::Backend;

/// What a backend supplies to the generic store.
pub trait Db: Database<Connection: Migrate> {
    const KIND: Backend;

    /// This backend's embedded migrations (`migrations/postgres` or `migrations/sqlite`).
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// Starts a transaction that may read and then write. Postgres locks rows as statements
    /// reach them; SQLite takes its write lock at once (`BEGIN IMMEDIATE`), so a
    /// read-then-write flow cannot deadlock with another.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// The rows of `sql`, decoded, at most one.
    fn fetch_optional<'c, T: Record>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
    ) -> impl Future<Output = Result<Option<T>, sqlx::Error>> + Send + 'c;

    /// All rows of `sql`, decoded.
    fn fetch_all<'c, T: Record>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'c;

    /// Runs `sql`; how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;
}

/// A value decodable from a row of every compiled-in backend (anything with
/// `#[derive(sqlx::FromRow)]`, and tuples of column types).
pub trait Record: PgRecord + SqliteRecord + Send + Unpin + 'static {}
impl<T: PgRecord + SqliteRecord + Send + Unpin + 'static> Record for T {}

#[cfg(feature = "postgres")]
pub trait PgRecord: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> {}
#[cfg(feature = "postgres")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>> PgRecord for T {}
#[cfg(not(feature = "postgres"))]
pub trait PgRecord {}
#[cfg(not(feature = "postgres"))]
impl<T> PgRecord for T {}

#[cfg(feature = "sqlite")]
pub trait SqliteRecord: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> {}
#[cfg(feature = "sqlite")]
impl<T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>> SqliteRecord for T {}
#[cfg(not(feature = "sqlite"))]
pub trait SqliteRecord {}
#[cfg(not(feature = "sqlite"))]
impl<T> SqliteRecord for T {}

/// The store: a pool of backend `D`. Cheap to clone.
#[derive(Debug)]
pub struct SqlStore<D: Db> {
    pub(super) pool: Pool<D>,
}

impl<D: Db> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<D: Db> SqlStore<D> {
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// The statement's dialect: statement builders take it from here.
    pub(super) fn kind(&self) -> Backend {
        D::KIND
    }

    async fn connection(&self, doing: &'static str) -> Result<PoolConnection<D>, StoreError> {
        self.pool.acquire().await.context(doing)
    }

    /// At most one row of `sql`, on a pooled connection.
    pub(super) async fn optional<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let mut conn = self.connection(doing).await?;
        D::fetch_optional(&mut conn, sql).await.context(doing)
    }

    /// Exactly one row of `sql` (a statement that always returns one).
    pub(super) async fn one<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<T, StoreError> {
        self.optional(sql, doing)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
            .context(doing)
    }

    pub(super) async fn all<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let mut conn = self.connection(doing).await?;
        D::fetch_all(&mut conn, sql).await.context(doing)
    }

    /// Runs `sql`; how many rows it changed.
    pub(super) async fn run(&self, sql: &Sql, doing: &'static str) -> Result<u64, StoreError> {
        let mut conn = self.connection(doing).await?;
        D::execute(&mut conn, sql).await.context(doing)
    }

    /// A transaction that may write ([`Db::begin_write`]).
    pub(super) async fn begin_write(&self, doing: &'static str) -> Result<Tx<D>, StoreError> {
        Ok(Tx(D::begin_write(&self.pool).await.context(doing)?))
    }

    /// A transaction for writes that need no lock before their first statement.
    pub(super) async fn begin(&self, doing: &'static str) -> Result<Tx<D>, StoreError> {
        Ok(Tx(self.pool.begin().await.context(doing)?))
    }
}

/// A transaction with the same statement helpers as [`SqlStore`]. Dropped without
/// [`commit`](Tx::commit), it rolls back.
pub(super) struct Tx<D: Db>(Transaction<'static, D>);

impl<D: Db> Tx<D> {
    pub(super) async fn optional<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Option<T>, StoreError> {
        D::fetch_optional(&mut self.0, sql).await.context(doing)
    }

    pub(super) async fn one<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<T, StoreError> {
        self.optional(sql, doing)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
            .context(doing)
    }

    pub(super) async fn all<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        D::fetch_all(&mut self.0, sql).await.context(doing)
    }

    pub(super) async fn run(&mut self, sql: &Sql, doing: &'static str) -> Result<u64, StoreError> {
        D::execute(&mut self.0, sql).await.context(doing)
    }

    pub(super) async fn commit(self, doing: &'static str) -> Result<(), StoreError> {
        self.0.commit().await.context(doing)
    }
}

#[async_trait]
impl<D: Db> Store for SqlStore<D> {
    fn kind(&self) -> Backend {
        D::KIND
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut sql = Sql::new(D::KIND);
        sql.push("SELECT 1");
        self.run(&sql, "pinging the database").await.map(drop)
    }

    async fn migrate(&self) -> Result<migrations::MigrationReport, StoreError> {
        migrations::run_on_pool(D::migrator(), &self.pool).await
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

    fn admin(&self) -> &dyn AdminRepository {
        self
    }
}
