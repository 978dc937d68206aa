//! The store's one implementation, generic over the backend: [`SqlStore<D>`] for
//! `D = sqlx::Postgres` or `sqlx::Sqlite`. The repositories (`tasks`, `accounts`, `admin`)
//! are written once against it. A backend supplies only what it alone knows, the
//! [`Driver`] trait, implemented once in `postgres.rs` and once in `sqlite.rs`: how a
//! timestamp is stored, how a transaction that writes begins, its migrations, and decoding
//! its row type. Everything else (binding, running, decoding through
//! `#[derive(sqlx::FromRow)]` on the models) is written once, here ([`Db`]). Differences
//! in statement text are in the [`Dialect`](super::sql::Dialect) tables.

use std::{
    future::Future,
    marker::PhantomData,
    ops::{Deref, DerefMut},
};

use async_trait::async_trait;
use sqlx::{
    Connection as _, Database, Encode, Executor, IntoArguments, Pool, Transaction, Type,
    database::HasStatementCache, migrate::Migrate, pool::PoolConnection, query::Query,
};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AdminRepository, MailRepository, PoolStats, SqlxResultExt as _, Store, StoreError,
    TaskRepository, TokenRepository, UserRepository,
    held::{self, StoreId},
    migrations,
    sql::{Param, Sql},
};
use crate::{config::Backend, telemetry::otel};

/// What only a backend knows. Implemented once per backend, in `postgres.rs` and
/// `sqlite.rs`.
pub trait Driver: Database<Connection: Migrate> + HasStatementCache {
    const KIND: Backend;

    /// A timestamp as this backend stores it.
    type Time: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;

    /// The timestamp codec: `OffsetDateTime` to [`Driver::Time`].
    fn time(t: OffsetDateTime) -> Self::Time;

    /// This backend's embedded migrations (`migrations/postgres` or `migrations/sqlite`).
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// Applies the pending migrations on a connection of `pool` ([`migrations`]), whose
    /// statements go as `statements` says.
    fn migrate(
        pool: &Pool<Self>,
        statements: Statements,
    ) -> impl Future<Output = Result<migrations::MigrationReport, StoreError>> + Send;

    /// Starts a transaction that may read and then write. Postgres locks rows as statements
    /// reach them; SQLite takes its write lock at once (`BEGIN IMMEDIATE`), so a
    /// read-then-write flow cannot deadlock with another.
    fn begin_writer(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Transaction<'_, Self>, sqlx::Error>> + Send;

    /// One of this backend's rows as `T` (a row type is decodable only by its own
    /// backend's `FromRow` impls).
    fn decode<T: Record>(row: &Self::Row) -> Result<T, sqlx::Error>;

    /// How many rows a statement changed.
    fn rows_affected(done: &Self::QueryResult) -> u64;
}

/// How statements go to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    /// Named prepared statements, kept per connection (sqlx's statement cache): straight to
    /// Postgres, and SQLite.
    Prepared,
    /// Behind a connection proxy that pools by transaction (PgBouncer's `pool_mode =
    /// transaction`, RDS Proxy), chosen by `DB_STATEMENT_CACHE_CAPACITY=0`: such a proxy
    /// hands each transaction whichever server connection is free, so nothing may outlive
    /// one. Statements are unnamed (a named one would stay on a server connection that
    /// another client may be given, and collide with its names), and a statement outside
    /// a transaction runs in one of its own: sqlx parses a statement and runs it in two
    /// exchanges, and between them the proxy may switch server connections unless a
    /// transaction is open.
    Proxied,
}

/// A backend as the generic store uses it: statements bound, run and decoded. Implemented
/// once, below, for every [`Driver`]; the bounds sqlx needs are stated there and nowhere
/// else, so generic code asks only for `D: Db`.
pub trait Db: Driver {
    /// Runs `sql` and decodes its rows; `named` keeps it prepared on the connection.
    fn fetch_all<'c, T: Record>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
        named: bool,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'c;

    /// Runs `sql`; how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
        named: bool,
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;
}

impl<D> Db for D
where
    D: Driver,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> <D as Database>::Arguments<'q>: IntoArguments<'q, D>,
    for<'q> Uuid: Encode<'q, D> + Type<D>,
    for<'q> Option<Uuid>: Encode<'q, D> + Type<D>,
    for<'q> &'q str: Encode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D> + Type<D>,
    for<'q> Option<D::Time>: Encode<'q, D> + Type<D>,
    for<'q> &'q [u8]: Encode<'q, D> + Type<D>,
    for<'q> bool: Encode<'q, D> + Type<D>,
    for<'q> i64: Encode<'q, D> + Type<D>,
{
    fn fetch_all<'c, T: Record>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
        named: bool,
    ) -> impl Future<Output = Result<Vec<T>, sqlx::Error>> + Send + 'c {
        bind::<D>(sql)
            .persistent(named)
            .try_map(|row: D::Row| D::decode(&row))
            .fetch_all(conn)
    }

    async fn execute<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c Sql,
        named: bool,
    ) -> Result<u64, sqlx::Error> {
        let done = bind::<D>(sql).persistent(named).execute(conn).await?;
        Ok(D::rows_affected(&done))
    }
}

/// How one statement runs on a connection: as [`Statements`] says, and, when
/// `in_transaction` is false behind a proxy, in a transaction of its own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    statements: Statements,
    in_transaction: bool,
}

impl Run {
    fn named(self) -> bool {
        self.statements == Statements::Prepared
    }

    fn own_transaction(self) -> bool {
        self.statements == Statements::Proxied && !self.in_transaction
    }

    /// After a statement of an explicit transaction failed behind a proxy: the connection
    /// goes back to the pool rather than being kept for the request's next statement, so the
    /// pending `ROLLBACK` goes out at once (the pool pings a returned connection) and the
    /// proxy's server connection is not kept in an aborted transaction meanwhile.
    fn after<R>(self, outcome: &Result<R, sqlx::Error>) {
        if outcome.is_err() && self.statements == Statements::Proxied && self.in_transaction {
            held::doubt();
        }
    }

    /// The rows of `sql` on `conn`.
    async fn fetch_all<D: Db, T: Record>(
        self,
        conn: &mut D::Connection,
        sql: &Sql,
    ) -> Result<Vec<T>, sqlx::Error> {
        traced(D::KIND, sql, async {
            if !self.own_transaction() {
                return D::fetch_all(conn, sql, self.named()).await;
            }
            let mut tx = conn.begin().await?;
            let rows = D::fetch_all(&mut tx, sql, false).await;
            end(tx, rows).await
        })
        .await
    }

    /// Runs `sql` on `conn`; how many rows it changed.
    async fn execute<D: Db>(self, conn: &mut D::Connection, sql: &Sql) -> Result<u64, sqlx::Error> {
        traced(D::KIND, sql, async {
            if !self.own_transaction() {
                return D::execute(conn, sql, self.named()).await;
            }
            let mut tx = conn.begin().await?;
            let done = D::execute(&mut tx, sql, false).await;
            end(tx, done).await
        })
        .await
    }
}

/// Runs one statement inside its trace span (while traces are exported): named
/// `{operation} {table}`, with the database semantic conventions' attributes and the SQL
/// text with its placeholders; the values bound to them never reach a span.
///
/// The span lives from before the statement to after it, and is never entered: nothing
/// inside it is traced, and entering it would cost a registry lookup per layer at every poll
/// of the statement (on SQLite, up to once per row its worker thread hands over).
async fn traced<R>(
    kind: Backend,
    sql: &Sql,
    statement: impl Future<Output = Result<R, sqlx::Error>>,
) -> Result<R, sqlx::Error> {
    if !otel::in_trace() {
        return statement.await;
    }
    let (operation, table) = otel::statement_summary(&sql.text);
    let span = tracing::info_span!(
        target: otel::SPAN,
        "statement",
        otel.name = match table {
            Some(table) => format!("{operation} {table}"),
            None => operation.to_owned(),
        },
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        db.system.name = db_system(kind),
        db.operation.name = operation,
        db.collection.name = table,
        db.query.text = sql.text.as_str(),
        error.type = tracing::field::Empty,
    );
    let outcome = statement.await;
    if let Err(error) = &outcome {
        mark_failed(&span, error);
    }
    drop(span);
    outcome
}

/// A transaction's span: from `BEGIN` to its commit, or to its end unfinished (rolled back).
fn transaction_span(kind: Backend) -> tracing::Span {
    if !otel::in_trace() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: otel::SPAN,
        "transaction",
        otel.name = "transaction",
        db.system.name = db_system(kind),
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// `db.system.name`.
fn db_system(kind: Backend) -> &'static str {
    match kind {
        Backend::Postgres => "postgresql",
        Backend::Sqlite => "sqlite",
    }
}

/// A span whose work failed with `error`: status Error, `error.type` the SQLSTATE when the
/// database answered with one, else what kind of failure it was.
fn mark_failed(span: &tracing::Span, error: &sqlx::Error) {
    if span.is_disabled() {
        return;
    }
    let kind = match error {
        sqlx::Error::Database(e) => e
            .code()
            .map_or_else(|| "database".into(), |c| c.into_owned()),
        sqlx::Error::PoolTimedOut => "pool_timed_out".into(),
        sqlx::Error::PoolClosed => "pool_closed".into(),
        sqlx::Error::Io(_) => "io".into(),
        sqlx::Error::Tls(_) => "tls".into(),
        sqlx::Error::Protocol(_) => "protocol".into(),
        sqlx::Error::RowNotFound => "row_not_found".into(),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode".into(),
        _ => "other".into(),
    };
    span.record("otel.status_code", "error");
    span.record("error.type", kind.as_str());
}

/// Commits a statement's own transaction, or rolls it back at once when the statement
/// failed (rather than with the connection's next use), so a proxy's server connection is
/// not kept by an aborted transaction.
async fn end<D: Database, R>(
    tx: Transaction<'_, D>,
    outcome: Result<R, sqlx::Error>,
) -> Result<R, sqlx::Error> {
    match outcome {
        Ok(done) => {
            tx.commit().await?;
            Ok(done)
        }
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// `sql` with its parameters bound in `D`'s types (timestamps through [`Driver::time`]).
fn bind<'q, D>(sql: &'q Sql) -> Query<'q, D, <D as Database>::Arguments<'q>>
where
    D: Driver,
    Uuid: Encode<'q, D> + Type<D>,
    Option<Uuid>: Encode<'q, D> + Type<D>,
    &'q str: Encode<'q, D> + Type<D>,
    Option<&'q str>: Encode<'q, D> + Type<D>,
    Option<D::Time>: Encode<'q, D> + Type<D>,
    &'q [u8]: Encode<'q, D> + Type<D>,
    bool: Encode<'q, D> + Type<D>,
    i64: Encode<'q, D> + Type<D>,
{
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::OptUuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.as_str()),
            Param::OptText(v) => q.bind(v.as_deref()),
            Param::Time(v) => q.bind(D::time(*v)),
            Param::OptTime(v) => q.bind(v.map(D::time)),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.as_slice()),
        })
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

/// The store: a pool of backend `D`, and the pool its writes go through. Cheap to clone.
#[derive(Debug)]
pub struct SqlStore<D: Db> {
    pub(super) pool: Pool<D>,
    /// On Postgres the same pool. On SQLite, which lets one writer in at a time, a pool of
    /// one connection: writers wait their turn for it in order, in this process, instead
    /// of each retrying SQLite's write lock in the busy handler's sleep loop (which let the
    /// slowest writes wait a quarter of a second at eight concurrent creates). Reads keep
    /// the main pool and run beside the writer (WAL).
    pub(super) writer: Pool<D>,
    /// Set when a request keeps its connection for all its statements ([`held`]): on
    /// Postgres. Not on SQLite, whose writer connection must go back as soon as a write is
    /// done.
    pub(super) holds: Option<StoreId>,
    pub(super) statements: Statements,
}

impl<D: Db> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            writer: self.writer.clone(),
            holds: self.holds,
            statements: self.statements,
        }
    }
}

impl<D: Db> SqlStore<D> {
    pub fn pool(&self) -> &Pool<D> {
        &self.pool
    }

    /// A connection for writes (from the writer pool): for statements that need no
    /// transaction, or to [`begin`](Conn::begin) one on.
    pub(super) async fn conn(&self) -> Result<Conn<D, Lease<D>>, StoreError> {
        let conn = self.lease(&self.writer).await?;
        Ok(Conn {
            conn,
            run: self.run(false),
            span: tracing::Span::none(),
            backend: PhantomData,
        })
    }

    fn run(&self, in_transaction: bool) -> Run {
        Run {
            statements: self.statements,
            in_transaction,
        }
    }

    /// The connection this request holds, or one from `pool` that it will hold.
    async fn lease(&self, pool: &Pool<D>) -> Result<Lease<D>, StoreError> {
        let conn = match self.holds.and_then(held::take::<PoolConnection<D>>) {
            Some(conn) => conn,
            None => acquire(pool)
                .await
                .map_err(|error| StoreError::from_sqlx(acquiring(pool, &error), error))?,
        };
        Ok(Lease {
            conn: Some(conn),
            holds: self.holds,
        })
    }

    /// The rows of a read-only `sql`, on a pooled connection. A connection the server closed
    /// since its last use (a restart, a failover, a timeout; one idle long enough is pinged
    /// before use instead) fails the statement before it runs: the read is then run again
    /// on another connection, as many times as the pool has connections, so a request does
    /// not fail for a connection that died while it sat in the pool. Writes are never run
    /// twice: a lost answer would not say whether they happened.
    pub(super) async fn read<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        debug_assert!(sql.text.starts_with("SELECT "), "not a read: {}", sql.text);
        let mut retries = self.pool.options().get_max_connections();
        loop {
            let mut conn = self.lease(&self.pool).await?;
            match self.run(false).fetch_all::<D, T>(&mut conn, sql).await {
                Err(error) if retries > 0 && super::connection_lost(&error) => {
                    tracing::warn!(%error, doing, "a pooled connection was closed; reading again");
                    conn.discard();
                    retries -= 1;
                }
                rows => return rows.context(doing),
            }
        }
    }

    /// [`read`](Self::read) of a statement that always returns one row.
    pub(super) async fn read_one<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<T, StoreError> {
        exactly_one(self.read_optional(sql, doing).await?, doing)
    }

    /// [`read`](Self::read) of a statement that returns at most one row.
    pub(super) async fn read_optional<T: Record>(
        &self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Option<T>, StoreError> {
        at_most_one(self.read(sql, doing).await?)
    }
}

/// A connection from `pool`; the wait is a span of the request's trace, if it has one.
async fn acquire<D: Db>(pool: &Pool<D>) -> Result<PoolConnection<D>, sqlx::Error> {
    if !otel::in_trace() {
        return pool.acquire().await;
    }
    let span = tracing::info_span!(
        target: otel::SPAN,
        "acquire",
        otel.name = "acquire connection",
        db.system.name = db_system(D::KIND),
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    // Not entered, as a statement's span is not ([`traced`]).
    let acquired = pool.acquire().await;
    acquired.inspect_err(|error| mark_failed(&span, error))
}

/// What an acquire that failed was waiting for, for the log: a pool whose connections were
/// all in use, or a database that accepted no new connection in time (too many clients,
/// or unreachable; sqlx retries "too many clients" until the acquire timeout).
fn acquiring<D: Database>(pool: &Pool<D>, error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::PoolTimedOut if pool.size() >= pool.options().get_max_connections() => {
            "acquiring a connection: every pooled connection was in use"
        }
        sqlx::Error::PoolTimedOut => {
            "acquiring a connection: the database accepted no new connection in time"
        }
        _ => "acquiring a connection",
    }
}

/// A pooled connection that goes back, when dropped, to the request that holds it
/// ([`held`]) if its store holds connections, and to the pool otherwise.
pub(super) struct Lease<D: Database> {
    /// Always `Some` until dropped or discarded.
    conn: Option<PoolConnection<D>>,
    holds: Option<StoreId>,
}

impl<D: Database> Lease<D> {
    /// Drops a connection the server has closed: the pool opens a new one in its place.
    fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

impl<D: Database> Deref for Lease<D> {
    type Target = D::Connection;

    fn deref(&self) -> &D::Connection {
        match &self.conn {
            Some(conn) => conn,
            None => unreachable!("a lease's connection is taken only as it ends"),
        }
    }
}

impl<D: Database> DerefMut for Lease<D> {
    fn deref_mut(&mut self) -> &mut D::Connection {
        match &mut self.conn {
            Some(conn) => conn,
            None => unreachable!("a lease's connection is taken only as it ends"),
        }
    }
}

impl<D: Database> Drop for Lease<D> {
    fn drop(&mut self) {
        if let (Some(store), Some(conn)) = (self.holds, self.conn.take()) {
            // Back to the pool if the request cannot keep it.
            drop(held::keep(store, conn));
        }
    }
}

/// A connection to run statements on: `C` is a pooled connection of backend `D`
/// ([`SqlStore::conn`]) or a transaction ([`Tx`]), which rolls back if dropped before
/// [`commit`](Tx::commit). Every method takes `doing`, which names the step in errors
/// ("loading a task").
pub(super) struct Conn<D: Db, C> {
    conn: C,
    run: Run,
    /// A transaction's trace span (while traces are exported), from `BEGIN` to its end,
    /// beside its statements' spans (which stay children of the request's server span).
    /// Disabled on a plain connection.
    span: tracing::Span,
    backend: PhantomData<D>,
}

pub(super) type Tx<'c, D> = Conn<D, Transaction<'c, D>>;

impl<D: Db, C: DerefMut<Target = D::Connection> + Send> Conn<D, C> {
    /// The rows of `sql`, decoded.
    pub(super) async fn all<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.run.fetch_all::<D, T>(&mut self.conn, sql).await;
        self.run.after(&rows);
        rows.context(doing)
    }

    /// The row of a statement that returns at most one (by key, or a single-row write's
    /// `RETURNING`); more than one is a bug in the statement, reported as an error.
    pub(super) async fn optional<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<Option<T>, StoreError> {
        at_most_one(self.all(sql, doing).await?)
    }

    /// The row of a statement that always returns one.
    pub(super) async fn one<T: Record>(
        &mut self,
        sql: &Sql,
        doing: &'static str,
    ) -> Result<T, StoreError> {
        exactly_one(self.optional(sql, doing).await?, doing)
    }

    /// Runs `sql`; how many rows it changed.
    pub(super) async fn run(&mut self, sql: &Sql, doing: &'static str) -> Result<u64, StoreError> {
        let done = self.run.execute::<D>(&mut self.conn, sql).await;
        self.run.after(&done);
        done.context(doing)
    }
}

/// The row of a statement that always returns one; none is an error naming `doing`.
fn exactly_one<T>(row: Option<T>, doing: &'static str) -> Result<T, StoreError> {
    row.ok_or(sqlx::Error::RowNotFound).context(doing)
}

/// The row of a statement that returns at most one; more is a bug in the statement.
fn at_most_one<T>(mut rows: Vec<T>) -> Result<Option<T>, StoreError> {
    if rows.len() > 1 {
        return Err(StoreError::Unsupported(
            "a statement expected to return at most one row returned more",
        ));
    }
    Ok(rows.pop())
}

impl<D: Db> Conn<D, Lease<D>> {
    /// A transaction that may read and then write ([`Driver::begin_writer`]).
    pub(super) async fn begin_write(
        &mut self,
        doing: &'static str,
    ) -> Result<Tx<'_, D>, StoreError> {
        let run = self.run;
        Tx::begun(run, D::begin_writer(&mut self.conn), doing).await
    }

    /// A transaction whose first statement writes (or that needs no lock before it).
    pub(super) async fn begin(&mut self, doing: &'static str) -> Result<Tx<'_, D>, StoreError> {
        let run = self.run;
        Tx::begun(run, self.conn.begin(), doing).await
    }
}

impl<'c, D: Db> Tx<'c, D> {
    /// The transaction `begin` starts, inside its trace span from `BEGIN` on (marked when
    /// `BEGIN` fails).
    async fn begun(
        run: Run,
        begin: impl Future<Output = Result<Transaction<'c, D>, sqlx::Error>>,
        doing: &'static str,
    ) -> Result<Self, StoreError> {
        // Never entered, as a statement's span is not ([`traced`]).
        let span = transaction_span(D::KIND);
        let tx = begin
            .await
            .inspect_err(|error| mark_failed(&span, error))
            .context(doing)?;
        Ok(Conn {
            conn: tx,
            run: Run {
                in_transaction: true,
                ..run
            },
            span,
            backend: PhantomData,
        })
    }
}

impl<D: Db> Tx<'_, D> {
    pub(super) async fn commit(self, doing: &'static str) -> Result<(), StoreError> {
        let span = self.span;
        let done = self.conn.commit().await;
        if let Err(error) = &done {
            mark_failed(&span, error);
        }
        drop(span);
        done.context(doing)
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
        self.read::<(i32,)>(&sql, "pinging the database").await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<migrations::MigrationReport, StoreError> {
        D::migrate(&self.pool, self.statements).await
    }

    async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
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

    fn mail(&self) -> &dyn MailRepository {
        self
    }
}
