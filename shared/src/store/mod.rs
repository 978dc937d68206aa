//! Persistence. Handlers talk to the [`Store`] trait and its repositories, declared here;
//! each repository has one implementation, for the generic [`db::SqlStore`], next to the
//! statements it runs: [`tasks`], [`accounts`] (users, sessions, login throttling) and
//! [`admin`]. What a backend supplies is [`db::Driver`], implemented in [`postgres`] and
//! [`sqlite`] (the generic [`db::Db`] follows from it); what differs in SQL text is
//! [`sql::Dialect`]. The backend is chosen at run
//! time from `DATABASE_URL`; a binary built without a backend's cargo feature says so
//! instead of linking it (the Lambda functions carry Postgres only).
//!
//! Pools are lazy: building a store opens no connection, so a Lambda cold start never waits
//! on the database. Migrations are embedded and run only when asked (`local-server`).

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    auth::refresh::TokenHash,
    config::{AuthRateLimit, Backend, DbConfig, LoginThrottle},
    domain::{AdminRefusal, CreateRefusal, Created, WriteRefusal},
    error::{ApiError, ErrorKind},
    models::{
        AuditEntry, Email, NewTask, NewUser, Precondition, Stats, Task, TaskPatch, TaskQuery, User,
        UserChange, UserDetail, UserQuery,
    },
};

pub mod accounts;
pub mod admin;
#[cfg(feature = "postgres")]
mod concurrent;
pub mod db;
pub mod held;
mod landed;
pub mod mail;
pub mod migrations;
pub mod sql;
pub mod tasks;

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
    /// A conflict the API names (decided by a constraint, identified by its name).
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    #[error("migrating the database")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Another migration run held the migration lock for longer than the lock timeout.
    #[error("lock timeout while {0}: another migration run held the lock")]
    LockTimeout(&'static str),
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
            sqlx::Error::Database(db)
                if is_contention(db.code().as_deref())
                    || is_session_end(db.code().as_deref(), db.message())
                    || is_out_of_connections(db.code().as_deref(), db.message()) =>
            {
                Self::Unavailable { context, source }
            }
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

/// Errors that say "two transactions collided, try again", not "this request is wrong":
/// Postgres's deadlock, serialization failure, lock and statement timeouts (SQLSTATE
/// 40P01, 40001, 55P03, 57014) and SQLite's busy or locked database (primary result codes
/// 5 and 6, in any extended form). They become 503 with `Retry-After`, never 500.
fn is_contention(code: Option<&str>) -> bool {
    match code {
        Some("40P01" | "40001" | "55P03" | "57014") => true,
        Some(sqlite) => sqlite
            .parse::<i32>()
            .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6)),
        None => false,
    }
}

/// No connection to be had: Postgres's limit on connections (SQLSTATE 53300, too many
/// clients for the server, a database or a role), or a connection proxy's refusal.
/// PgBouncer words its own (as protocol errors, 08P01): its client limit reached, a client
/// that waited longer than `query_wait_timeout` for a server connection, a server it cannot
/// log in to. A retry shortly after may succeed: 503.
fn is_out_of_connections(code: Option<&str>, message: &str) -> bool {
    const PROXY_REFUSALS: [&str; 5] = [
        "no more connections allowed",
        "query_wait_timeout",
        "pgbouncer cannot connect to server",
        "server login has been failing",
        "client_login_timeout",
    ];
    match code {
        Some("53300") => true,
        Some("08P01") => PROXY_REFUSALS.iter().any(|m| message.starts_with(m)),
        _ => false,
    }
}

/// The server ended the session: SQLSTATE class 08 (connection exception, but not 08P01)
/// or 57P01–57P03 (shut down, crashed, restarting), or PgBouncer lost the server connection
/// under the statement (08P01 `server conn crashed?`: a failover, a restart). The database
/// is unavailable for now (503), not broken.
fn is_session_end(code: Option<&str>, message: &str) -> bool {
    // Otherwise 08P01 is a protocol violation: a bug in what was sent, not a lost connection.
    code.is_some_and(|code| {
        (code.starts_with("08") && code != "08P01")
            || matches!(code, "57P01" | "57P02" | "57P03")
            || (code == "08P01" && message.starts_with("server conn crashed"))
    })
}

/// The connection failed under a statement: the socket broke, or the server had ended the
/// session. A read can be run again on another connection; a write cannot (it may have
/// run).
pub(crate) fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => is_session_end(db.code().as_deref(), db.message()),
        _ => false,
    }
}

/// The connection may be unusable after this error: lost ([`connection_lost`]), ended by
/// the server or a proxy with a fatal error (PgBouncer's refusals are), or out of step with
/// the server (TLS, protocol, its worker gone).
fn connection_in_doubt(error: &sqlx::Error) -> bool {
    connection_lost(error)
        || matches!(
            error,
            sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed
        )
        || is_fatal(error)
}

/// A Postgres error of severity FATAL or PANIC: the server closes the connection with it.
#[cfg(feature = "postgres")]
fn is_fatal(error: &sqlx::Error) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    matches!(error, sqlx::Error::Database(db)
        if db.try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)))
}

#[cfg(not(feature = "postgres"))]
fn is_fatal(_: &sqlx::Error) -> bool {
    false
}

/// Conflicts with a stable API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    EmailTaken,
}

impl StoreError {
    /// Turns the violation of `constraint` (by either backend's name for it) into `conflict`.
    pub fn on_constraint(self, names: &[&str], conflict: Conflict) -> Self {
        match &self {
            Self::Constraint { constraint, .. } if names.contains(&constraint.as_str()) => {
                Self::Conflict(conflict)
            }
            _ => self,
        }
    }
}

/// Adds `.context("…")` to driver results.
pub trait SqlxResultExt<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|e| {
            // Not kept for the request's next statement: back to the pool, which checks it.
            if connection_in_doubt(&e) {
                held::doubt();
            }
            StoreError::from_sqlx(what, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Credentials, is_contention, is_out_of_connections, is_session_end};
    use crate::models::{Role, User, now};

    #[test]
    fn credentials_never_show_the_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let credentials = Credentials {
            user: User {
                id: uuid::Uuid::nil(),
                email: "a@example.com".to_owned(),
                name: "A".to_owned(),
                role: Role::User,
                disabled: false,
                email_verified: false,
                created_at: now(),
                updated_at: now(),
            },
            password_hash: hash.to_owned(),
            session_epoch: 3,
        };
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("a@example.com") && shown.contains("session_epoch: 3"));
    }

    #[test]
    fn collisions_between_transactions_are_retryable_not_bugs() {
        for code in [
            "40P01", "40001", "55P03", "57014", "5", "6", "517", "261", "262",
        ] {
            assert!(is_contention(Some(code)), "{code}");
        }
        for code in ["23505", "23514", "42P01", "19", "2067", "1"] {
            assert!(!is_contention(Some(code)), "{code}");
        }
        assert!(!is_contention(None));
    }

    #[test]
    fn running_out_of_connections_is_retryable_but_a_protocol_bug_is_not() {
        for (code, message) in [
            ("53300", "sorry, too many clients already"),
            ("53300", "too many connections for role \"app\""),
            ("08P01", "no more connections allowed (max_client_conn)"),
            ("08P01", "query_wait_timeout"),
            ("08P01", "pgbouncer cannot connect to server"),
        ] {
            assert!(
                is_out_of_connections(Some(code), message),
                "{code} {message}"
            );
        }
        for (code, message) in [
            ("08P01", "invalid message format"),
            ("53200", "out of memory"),
            ("53400", "configuration limit exceeded"),
            ("23505", "query_wait_timeout"),
        ] {
            assert!(
                !is_out_of_connections(Some(code), message),
                "{code} {message}"
            );
        }
        assert!(!is_out_of_connections(None, "query_wait_timeout"));
    }

    #[test]
    fn a_proxy_losing_its_server_connection_is_a_session_end_not_a_bug() {
        assert!(is_session_end(Some("08P01"), "server conn crashed?"));
        assert!(is_session_end(Some("08006"), "connection failure"));
        assert!(is_session_end(Some("57P01"), "terminating connection"));
        assert!(!is_session_end(Some("08P01"), "invalid message format"));
        assert!(!is_session_end(Some("23505"), "server conn crashed?"));
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable { .. } => Self::unavailable(err),
            StoreError::Conflict(Conflict::EmailTaken) => Self::new(ErrorKind::EmailTaken)
                .with_detail("an account with this email already exists"),
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
    fn kind(&self) -> Backend;
    /// One round trip; used by `/ready`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Applies the embedded migrations of this backend; see [`migrations`].
    async fn migrate(&self) -> Result<migrations::MigrationReport, StoreError>;
    /// Closes the pool, waiting for checked-out connections to come back.
    async fn close(&self);
    fn pool_stats(&self) -> PoolStats;
    fn users(&self) -> &dyn UserRepository;
    fn tokens(&self) -> &dyn TokenRepository;
    fn tasks(&self) -> &dyn TaskRepository;
    fn admin(&self) -> &dyn AdminRepository;
    fn mail(&self) -> &dyn MailRepository;
}

/// A user with the stored password hash, for credential checks only. Its `Debug` leaves
/// the hash out.
#[derive(Clone, sqlx::FromRow)]
pub struct Credentials {
    #[sqlx(flatten)]
    pub user: User,
    pub password_hash: String,
    /// The user's session epoch when the hash was read: a session started from this check
    /// is live only if no password change or disable moved the epoch on meanwhile.
    pub session_epoch: i64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("session_epoch", &self.session_epoch)
            .finish()
    }
}

/// The user an access token names, as the database has them now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenUser {
    #[sqlx(flatten)]
    pub user: User,
    /// The token's session is neither revoked nor ended by a password change or disable.
    pub session_live: bool,
}

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts a user; a taken email is `Conflict(EmailTaken)`, decided by the unique index.
    /// With `verification`, its token and mail are queued in the same transaction (within
    /// the address's mail budget).
    async fn create(
        &self,
        user: &NewUser,
        verification: Option<&mail::TokenMail>,
    ) -> Result<User, StoreError>;
    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// The user of an access token and whether its session is live, in one round trip
    /// (`session` is `None` for a token issued before sessions existed).
    async fn for_access_token(
        &self,
        user: Uuid,
        session: Option<Uuid>,
    ) -> Result<Option<TokenUser>, StoreError>;
    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError>;
    async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, StoreError>;
    /// Replaces the hash `verified` by `upgraded` (the same password at stronger
    /// parameters, after a login); `false` when the hash changed meanwhile (a password
    /// change won), and nothing is written.
    async fn upgrade_password_hash(
        &self,
        id: Uuid,
        verified: &str,
        upgraded: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Sets a new password and ends every session of the user, in one statement, if the
    /// user is still at `expected_epoch` (read with the current password that was checked);
    /// `false`, with nothing changed, when another change or a disable came first.
    async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        expected_epoch: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// A session to start: one login, whose refresh tokens form its family.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    /// [`Credentials::session_epoch`] of the check that allowed the login.
    pub epoch: i64,
    pub created_at: OffsetDateTime,
    /// The absolute end: no refresh after it (`SESSION_MAX_AGE_SECS` after the login).
    pub expires_at: OffsetDateTime,
}

/// A refresh token to store (its hash only): a session's first, or a rotation's successor.
#[derive(Debug, Clone)]
pub struct NextRefreshToken {
    pub id: Uuid,
    pub hash: TokenHash,
    pub expires_at: OffsetDateTime,
}

/// Outcome of presenting a refresh token for rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now spent and its successor stored in the same session,
    /// expiring at `expires_at` (capped by the session's absolute age).
    Rotated {
        user_id: Uuid,
        session_id: Uuid,
        expires_at: OffsetDateTime,
    },
    /// The token had been spent before: its whole session is now revoked.
    Reused { user_id: Uuid },
    /// Unknown, expired, revoked, or its session is over.
    Invalid,
}

/// A reserved login attempt (or the refusal of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempt {
    /// The budget had room: the caller may verify one password.
    pub allowed: bool,
    /// Reservations in the window, this one included when allowed.
    pub reserved: u32,
    pub window_start: OffsetDateTime,
    /// Until the window passes.
    pub retry_after: Duration,
}

#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// Starts `session` with its first refresh token, unless the user was disabled or moved
    /// to another epoch since their credentials were read (then nothing is stored: `false`).
    async fn start_session(
        &self,
        session: &NewSession,
        first: &NextRefreshToken,
    ) -> Result<bool, StoreError>;
    /// Spends `presented` and stores `next` in its session, atomically: of concurrent
    /// rotations of one token exactly one sees `Rotated`. A session past its `expires_at`,
    /// revoked or ended by its user's epoch rotates nothing.
    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &NextRefreshToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError>;
    /// Revokes the session `presented` belongs to; nothing happens for an unknown token.
    async fn revoke_session_of(
        &self,
        presented: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Reserves one attempt of `email`'s failure budget before a password is verified, in
    /// one conditional upsert: of any number of concurrent callers, at most
    /// `throttle.max_failures` per window are allowed.
    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: OffsetDateTime,
        throttle: LoginThrottle,
    ) -> Result<LoginAttempt, StoreError>;
    /// Gives an allowed attempt back (the password was right, or was never checked).
    async fn return_login_attempt(
        &self,
        email: &str,
        attempt: &LoginAttempt,
    ) -> Result<(), StoreError>;
    /// Counts one credential request of `client` against its bucket: `Err(wait)` when the
    /// bucket is empty.
    async fn take_client_request(
        &self,
        client: &str,
        now: OffsetDateTime,
        limit: AuthRateLimit,
    ) -> Result<Result<(), Duration>, StoreError>;
    /// Deletes ended sessions, expired refresh tokens, stale throttle rows and every user's
    /// expired idempotency records, in bounded batches, judged by each row's own expiry
    /// (never by configuration); returns how many rows of each kind went. (It lives here,
    /// beside the statements most of it runs, until the store is reorganised.)
    async fn prune(&self, now: OffsetDateTime) -> Result<Vec<(&'static str, u64)>, StoreError>;
}

/// Start of the window that is still open at `now`.
pub fn window_floor(now: OffsetDateTime, throttle: LoginThrottle) -> OffsetDateTime {
    now - throttle.window
}

pub type DynStore = Arc<dyn Store>;

/// Builds the store `DATABASE_URL` names, without connecting.
pub fn connect_lazy(config: &DbConfig) -> Result<DynStore, StoreError> {
    use secrecy::ExposeSecret as _;
    match Backend::of(config.url.expose_secret()) {
        #[cfg(feature = "postgres")]
        Backend::Postgres => Ok(Arc::new(postgres::PgStore::connect_lazy(config)?)),
        #[cfg(not(feature = "postgres"))]
        Backend::Postgres => Err(StoreError::Unsupported(
            "this binary was built without Postgres support",
        )),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => Ok(Arc::new(sqlite::SqliteStore::connect_lazy(config)?)),
        #[cfg(not(feature = "sqlite"))]
        Backend::Sqlite => Err(StoreError::Unsupported(
            "this binary was built without SQLite support (Lambda functions use Postgres)",
        )),
    }
}

/// Applies the pending migrations: on `store` itself, or, when `MIGRATIONS_DATABASE_URL`
/// names another address ([`DbConfig::for_migrations`]), on a connection of its own there.
pub async fn migrate(
    store: &DynStore,
    config: &DbConfig,
) -> Result<migrations::MigrationReport, StoreError> {
    if config.migrations_url.is_none() {
        return store.migrate().await;
    }
    let direct = connect_lazy(&DbConfig {
        max_connections: 1,
        ..config.for_migrations()
    })?;
    let report = direct.migrate().await;
    direct.close().await;
    report
}

/// An idempotency key claimed by a create.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub key: String,
    /// SHA-256 of the request as parsed, so the same request in other formatting matches.
    pub fingerprint: [u8; 32],
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait TaskRepository: Send + Sync {
    /// Inserts a task; with a claim, the key, the task and the recorded answer are one
    /// transaction, so a duplicate racing the original waits and then replays.
    /// With `max_tasks`, the insert happens only while the owner has fewer tasks than
    /// that, decided under a lock on the owner (Postgres: their user row; SQLite: the
    /// write lock), so concurrent creates never pass the cap.
    async fn create(
        &self,
        task: &NewTask,
        idempotency: Option<&IdempotencyClaim>,
        max_tasks: Option<u32>,
    ) -> Result<Result<Created, CreateRefusal>, StoreError>;
    async fn get(&self, owner: Uuid, id: Uuid) -> Result<Option<Task>, StoreError>;
    /// Rows in query order, `query.fetch` at most.
    async fn list(&self, owner: Uuid, query: &TaskQuery) -> Result<Vec<Task>, StoreError>;
    /// Applies `patch` if the task exists and `precondition` holds, in one statement.
    async fn update(
        &self,
        owner: Uuid,
        id: Uuid,
        patch: &TaskPatch,
        precondition: &Precondition,
        now: OffsetDateTime,
    ) -> Result<Result<Task, WriteRefusal>, StoreError>;
    async fn delete(
        &self,
        owner: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<Result<(), WriteRefusal>, StoreError>;
}

#[async_trait]
pub trait AdminRepository: Send + Sync {
    /// Changes role and/or disabled state with the last-admin guard, the end of every
    /// session a disable implies and one audit entry per actual change, in one
    /// transaction. `actor` is `None` for the command line.
    async fn change_user(
        &self,
        actor: Option<Uuid>,
        target: Uuid,
        change: &UserChange,
        now: OffsetDateTime,
    ) -> Result<Result<User, AdminRefusal>, StoreError>;
    /// Deletes a user (their tasks, tokens and login state go too) and audits it.
    async fn delete_user(
        &self,
        actor: Uuid,
        target: Uuid,
        now: OffsetDateTime,
    ) -> Result<Result<(), AdminRefusal>, StoreError>;
    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError>;
    async fn user_detail(&self, id: Uuid) -> Result<Option<UserDetail>, StoreError>;
    async fn stats(&self) -> Result<Stats, StoreError>;
    /// Newest first, strictly older than `before` when given.
    async fn list_audit(
        &self,
        before: Option<Uuid>,
        fetch: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}

#[async_trait]
pub trait MailRepository: Send + Sync {
    /// For the enabled account with address `email`, within its mail budget: replaces its
    /// reset token and queues the mail carrying the new one, in one transaction. `false`
    /// when nothing was queued (no such account, disabled, or over budget): the caller
    /// answers the same either way.
    async fn queue_password_reset(
        &self,
        email: &Email,
        queued: &mail::TokenMail,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The same for `user`'s verification token: `None` when the address is already
    /// verified (or the user is gone), `Some(false)` over budget.
    async fn queue_email_verification(
        &self,
        user: Uuid,
        queued: &mail::TokenMail,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError>;
    /// Spends a live reset token and sets the new password, ending every session of the
    /// user and clearing the login throttle of their email, in one transaction. `false`:
    /// the token is unknown, used, expired or replaced (or the account was disabled), and
    /// nothing changed.
    async fn reset_password(
        &self,
        token: &TokenHash,
        password_hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Spends a live verification token and marks its user's address verified.
    async fn verify_email(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Claims up to `limit` due messages (`only`: just that one) for an attempt that may
    /// last until `lease_end`.
    async fn claim_mail(
        &self,
        only: Option<Uuid>,
        now: OffsetDateTime,
        lease_end: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<mail::QueuedMail>, StoreError>;
    /// Records attempt `attempt` of message `id` (its `attempts` when claimed) as sent.
    async fn mail_sent(
        &self,
        id: Uuid,
        attempt: i32,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Records attempt `attempt` as failed; the message is due again at `retry_at`.
    async fn mail_failed(
        &self,
        id: Uuid,
        attempt: i32,
        error: &str,
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Messages not yet sent.
    async fn outbox_depth(&self) -> Result<i64, StoreError>;
}
