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
    StoreError,
    db::{Driver, Record, SqlStore, Statements},
    held::StoreId,
    migrations::{self, Bounds, MigrationReport},
};
use crate::config::{Backend, DbConfig};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

pub type PgStore = SqlStore<Postgres>;

/// A pooled connection idle at least this long is pinged before it is handed out.
pub const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl SqlStore<Postgres> {
    pub fn connect_lazy(config: &DbConfig) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(config.url.expose_secret())
            .map_err(StoreError::BadUrl)?
            // No column here is a float, and a proxy may refuse a startup parameter it does
            // not know (PgBouncer does, unless told to ignore it).
            .extra_float_digits(None);
        if let Some(password) = &config.password {
            options = options.password(password.expose_secret());
        }
        if let Some(capacity) = config.statement_cache_capacity {
            options = options.statement_cache_capacity(capacity);
        }
        // The cache off in the URL (sqlx's `statement-cache-capacity=0`) means the same.
        let url_turns_cache_off = config
            .url
            .expose_secret()
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p == "statement-cache-capacity=0"));
        let statements = match config.statement_cache_capacity {
            Some(0) => Statements::Proxied,
            None if url_turns_cache_off => Statements::Proxied,
            _ => Statements::Prepared,
        };
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
            statements,
        })
    }

    /// [`Store::migrate`](super::Store::migrate) with server-side bounds, for migrating a
    /// live database on deploy ([`Bounds`]).
    pub async fn migrate_bounded(&self, bounds: Bounds) -> Result<MigrationReport, StoreError> {
        self.migrate_with(&MIGRATOR, Some(bounds)).await
    }

    /// Applies `embedded`'s migrations (tests give other sets than this build's).
    pub async fn migrate_with(
        &self,
        embedded: &sqlx::migrate::Migrator,
        bounds: Option<Bounds>,
    ) -> Result<MigrationReport, StoreError> {
        migrations::postgres(&self.pool, embedded, bounds, self.statements).await
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

    async fn migrate(
        pool: &sqlx::PgPool,
        statements: Statements,
    ) -> Result<MigrationReport, StoreError> {
        migrations::postgres(pool, &MIGRATOR, None, statements).await
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
