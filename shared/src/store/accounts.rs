//! User, refresh-token and login-throttle statements, shared by both backends (see
//! [`super::sql`]), and the flows built from them ([`account_repository!`]).
//!
//! Refresh rotation is one transaction whose first statement is a conditional UPDATE: it
//! takes the row lock (Postgres) or the write lock (SQLite), so of concurrent rotations of
//! one token exactly one spends it; the others find it spent and revoke its session.
//!
//! Every promise about counts is one statement the database decides: a login attempt is
//! reserved by a conditional upsert before any hashing, a client's credential requests are
//! counted by another, and a session only starts at the epoch its login read.

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    NewSession, NextRefreshToken,
    sql::{Param, Sql},
    window_floor,
};
use crate::{
    auth::refresh::TokenHash,
    config::{AuthRateLimit, Backend, LoginThrottle},
    models::{Email, NewUser, fold},
};

pub use super::admin::{CREDENTIAL_COLUMNS, USER_COLUMNS};

/// The constraint that makes emails unique, by each backend's name for it.
pub const EMAIL_UNIQUE: &[&str] = &["users_email_key", "users.email"];

pub fn insert_user(d: Backend, u: &NewUser) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO users (id, email, name, name_folded, password_hash, role, disabled, created_at, updated_at) VALUES (");
    sql.bind_list([
        Param::Uuid(u.id),
        Param::Text(u.email.as_str().to_owned()),
        Param::Text(u.name.as_str().to_owned()),
        Param::Text(fold(u.name.as_str())),
        Param::Text(u.password_hash.clone()),
        Param::Text(u.role.as_str().to_owned()),
        Param::Bool(false),
        Param::Time(u.now),
        Param::Time(u.now),
    ]);
    sql.push(&format!(") RETURNING {USER_COLUMNS}"));
    sql
}

pub fn user_by_id(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "))
        .bind(Param::Uuid(id));
    sql
}

pub fn credentials_by_id(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM users WHERE id = "
    ))
    .bind(Param::Uuid(id));
    sql
}

pub fn credentials_by_email(d: Backend, email: &Email) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM users WHERE email = "
    ))
    .bind(Param::Text(email.as_str().to_owned()));
    sql
}

/// Replaces a hash with a stronger one of the same password, only if it is still the hash
/// that was verified: a password change that committed meanwhile is never undone.
pub fn upgrade_password_hash(
    d: Backend,
    id: Uuid,
    verified: &str,
    upgraded: &str,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET password_hash = ")
        .bind(Param::Text(upgraded.to_owned()))
        .push(", updated_at = ")
        .bind(Param::Time(now))
        .push(" WHERE id = ")
        .bind(Param::Uuid(id))
        .push(" AND password_hash = ")
        .bind(Param::Text(verified.to_owned()));
    sql
}

/// A new password that also ends every session of the user (their epoch moves on), in one
/// statement, only if the user is still at the epoch read when the current password was
/// checked: a change that lost a race to another change (or a disable) changes nothing.
pub fn change_password(
    d: Backend,
    id: Uuid,
    hash: &str,
    expected_epoch: i64,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET password_hash = ")
        .bind(Param::Text(hash.to_owned()))
        .push(", updated_at = ")
        .bind(Param::Time(now))
        .push(", session_epoch = session_epoch + 1 WHERE id = ")
        .bind(Param::Uuid(id))
        .push(" AND session_epoch = ")
        .bind(Param::Int(expected_epoch));
    sql
}

/// The user behind an access token, and whether the token's session is still live: one
/// round trip for every authenticated request. A token without a session (issued before
/// sessions existed) is live while its user is still at their first epoch.
pub fn user_for_token(d: Backend, user: Uuid, session: Option<Uuid>) -> Sql {
    let mut sql = Sql::new(d);
    match session {
        Some(session) => {
            sql.push(&format!(
                "SELECT {USER_COLUMNS}, EXISTS (SELECT 1 FROM sessions s WHERE s.id = "
            ))
            .bind(Param::Uuid(session))
            .push(" AND s.user_id = users.id AND s.revoked_at IS NULL AND s.epoch = users.session_epoch) AS session_live");
        }
        None => {
            sql.push(&format!(
                "SELECT {USER_COLUMNS}, session_epoch = 0 AS session_live"
            ));
        }
    }
    sql.push(" FROM users WHERE id = ").bind(Param::Uuid(user));
    sql
}

/// Starts a session only if the user is still enabled and still at the epoch the login read
/// with their credentials: a login that verified a password which has since changed
/// inserts nothing.
pub fn start_session(d: Backend, s: &NewSession) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO sessions (id, user_id, epoch, created_at, expires_at) SELECT ")
        .bind(Param::Uuid(s.id))
        .push(", id, session_epoch, ")
        .bind(Param::Time(s.created_at))
        .push(", ")
        .bind(Param::Time(s.expires_at))
        .push(" FROM users WHERE id = ")
        .bind(Param::Uuid(s.user_id))
        .push(" AND session_epoch = ")
        .bind(Param::Int(s.epoch))
        .push(" AND disabled = ")
        .bind(Param::Bool(false));
    sql
}

pub fn insert_refresh(
    d: Backend,
    user: Uuid,
    session: Uuid,
    parent: Option<Uuid>,
    token: &NextRefreshToken,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at) VALUES (");
    sql.bind_list([
        Param::Uuid(token.id),
        Param::Uuid(user),
        Param::Uuid(session),
        Param::OptUuid(parent),
        Param::Bytes(token.hash.to_vec()),
        Param::Time(now),
        Param::Time(token.expires_at),
    ]);
    sql.push(")");
    sql
}

/// Spends a live token of a live, unexpired session, returning its id, user, session and
/// the session's end; no row when any of that fails. (`revoked_at` of the token itself is
/// what the release before sessions revoked; it is still honoured.)
pub fn spend_refresh(d: Backend, presented: &TokenHash, now: OffsetDateTime) -> Sql {
    let now = Param::Time(now);
    let mut sql = Sql::new(d);
    sql.push("UPDATE refresh_tokens SET spent_at = ")
        .bind(now.clone())
        .push(" WHERE token_hash = ")
        .bind(Param::Bytes(presented.to_vec()))
        .push(" AND spent_at IS NULL AND revoked_at IS NULL AND expires_at > ")
        .bind(now.clone())
        .push(" AND EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = refresh_tokens.family_id AND s.revoked_at IS NULL AND s.epoch = u.session_epoch AND u.disabled = ")
        .bind(Param::Bool(false))
        .push(" AND s.expires_at > ")
        .bind(now)
        .push(") RETURNING id, user_id, family_id, (SELECT expires_at FROM sessions WHERE id = refresh_tokens.family_id) AS session_expires");
    sql
}

/// The session of a token, its user and whether the token was spent.
pub fn classify_refresh(d: Backend, presented: &TokenHash) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "SELECT family_id, user_id, spent_at IS NOT NULL AS spent FROM refresh_tokens WHERE token_hash = ",
    )
    .bind(Param::Bytes(presented.to_vec()));
    sql
}

pub fn revoke_session(d: Backend, session: Uuid, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE sessions SET revoked_at = ")
        .bind(Param::Time(now))
        .push(" WHERE id = ")
        .bind(Param::Uuid(session))
        .push(" AND revoked_at IS NULL");
    sql
}

pub fn revoke_session_of(d: Backend, presented: &TokenHash, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE sessions SET revoked_at = ")
        .bind(Param::Time(now))
        .push(" WHERE revoked_at IS NULL AND id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ")
        .bind(Param::Bytes(presented.to_vec()))
        .push(")");
    sql
}

/// Reserves one login attempt for `email`, atomically: a window older than the throttle's
/// restarts at one; a window that already holds `max_failures` reservations refuses (and
/// records `allowed = 0` without counting). Returns `allowed, failures, window_start`.
pub fn reserve_attempt(
    d: Backend,
    email: &str,
    now: OffsetDateTime,
    throttle: LoginThrottle,
) -> Sql {
    let floor = Param::Time(window_floor(now, throttle));
    let max = Param::Int(i64::from(throttle.max_failures));
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO login_attempts (email, window_start, failures, allowed) VALUES (")
        .bind(Param::Text(email.to_owned()))
        .push(", ")
        .bind(Param::Time(now))
        .push(", 1, 1) ON CONFLICT (email) DO UPDATE SET allowed = CASE WHEN login_attempts.window_start <= ")
        .bind(floor.clone())
        .push(" OR login_attempts.failures < ")
        .bind(max.clone())
        .push(" THEN 1 ELSE 0 END, failures = CASE WHEN login_attempts.window_start <= ")
        .bind(floor.clone())
        .push(" THEN 1 WHEN login_attempts.failures < ")
        .bind(max)
        .push(" THEN login_attempts.failures + 1 ELSE login_attempts.failures END, window_start = CASE WHEN login_attempts.window_start <= ")
        .bind(floor)
        .push(" THEN ")
        .bind(Param::Time(now))
        .push(" ELSE login_attempts.window_start END RETURNING allowed, failures, window_start");
    sql
}

/// Gives a reserved attempt back (a successful login), in the window it was taken from.
pub fn return_attempt(d: Backend, email: &str, window_start: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE login_attempts SET failures = failures - 1 WHERE email = ")
        .bind(Param::Text(email.to_owned()))
        .push(" AND window_start = ")
        .bind(Param::Time(window_start))
        .push(" AND failures > 0");
    sql
}

/// One request against a client's GCRA bucket, decided and recorded in one upsert; all
/// times in microseconds since the Unix epoch. Returns `allowed, tat_us`.
pub fn take_client_request(d: Backend, client: &str, now_us: i64, gcra: Gcra) -> Sql {
    let (now, t, tau) = (
        Param::Int(now_us),
        Param::Int(gcra.interval_us),
        Param::Int(gcra.tolerance_us),
    );
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO client_throttle (client, tat_us, allowed) VALUES (")
        .bind(Param::Text(client.to_owned()))
        .push(", ")
        .bind(Param::Int(now_us.saturating_add(gcra.interval_us)))
        .push(", 1) ON CONFLICT (client) DO UPDATE SET ");
    // max(tat, now) + T − now ≤ τ: the request fits in the bucket.
    let fits = |sql: &mut Sql| {
        sql.push("(CASE WHEN client_throttle.tat_us > ")
            .bind(now.clone())
            .push(" THEN client_throttle.tat_us ELSE ")
            .bind(now.clone())
            .push(" END) + ")
            .bind(t.clone())
            .push(" - ")
            .bind(now.clone())
            .push(" <= ")
            .bind(tau.clone());
    };
    sql.push("allowed = CASE WHEN ");
    fits(&mut sql);
    sql.push(" THEN 1 ELSE 0 END, tat_us = CASE WHEN ");
    fits(&mut sql);
    sql.push(" THEN (CASE WHEN client_throttle.tat_us > ")
        .bind(now.clone())
        .push(" THEN client_throttle.tat_us ELSE ")
        .bind(now.clone())
        .push(" END) + ")
        .bind(t)
        .push(" ELSE client_throttle.tat_us END RETURNING allowed, tat_us");
    sql
}

/// A GCRA bucket in microseconds: one request per `interval_us`, `tolerance_us` of credit
/// (the burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    pub interval_us: i64,
    pub tolerance_us: i64,
}

impl Gcra {
    pub fn new(limit: AuthRateLimit) -> Self {
        let interval_us = 60_000_000 / i64::from(limit.per_minute.max(1));
        Self {
            interval_us,
            tolerance_us: interval_us.saturating_mul(i64::from(limit.burst)),
        }
    }

    /// How long a refused client waits for the next request to fit, given the stored `tat`.
    pub fn wait(&self, tat_us: i64, now_us: i64) -> Duration {
        let wait = tat_us
            .saturating_add(self.interval_us)
            .saturating_sub(self.tolerance_us)
            .saturating_sub(now_us);
        Duration::from_micros(wait.max(0).unsigned_abs())
    }
}

/// Deletes at most `batch` rows of `table` (by `key`) matching `condition`; the statement
/// the prune command repeats until a batch comes back short.
fn delete_batch(
    d: Backend,
    table: &str,
    key: &str,
    condition: &str,
    params: Vec<Param>,
    batch: i64,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE "
    ));
    // `condition` holds `{}` where each parameter goes.
    let mut pieces = condition.split("{}");
    if let Some(first) = pieces.next() {
        sql.push(first);
    }
    for (piece, param) in pieces.zip(params) {
        sql.bind(param).push(piece);
    }
    sql.push(" LIMIT ").bind(Param::Int(batch)).push(")");
    sql
}

/// Longest a row is kept after it can no longer matter to a request under any allowed
/// configuration: `LOGIN_WINDOW_SECS` and `ACCESS_TOKEN_TTL_SECS` are at most a day. Prune
/// decides by what each row says (its own expiry), never by the configuration of whatever
/// machine runs it, so it cannot shorten a window or a session the API still relies on.
const PRUNE_GRACE: Duration = Duration::from_secs(86_400);

/// The prune command's statements, each deleting one batch of rows nobody can use again.
pub fn prune_statements(d: Backend, now: OffsetDateTime, batch: i64) -> [(&'static str, Sql); 5] {
    let grace_ago = now - PRUNE_GRACE;
    [
        (
            "sessions",
            // Revoked or at an old epoch: refused already. Expired: no refresh since
            // `expires_at`, so no access token of it outlives the grace.
            delete_batch(
                d,
                "sessions",
                "id",
                "revoked_at IS NOT NULL OR expires_at <= {} OR epoch <> (SELECT session_epoch FROM users WHERE users.id = sessions.user_id)",
                vec![Param::Time(grace_ago)],
                batch,
            ),
        ),
        (
            "refresh tokens",
            delete_batch(
                d,
                "refresh_tokens",
                "id",
                "expires_at <= {} OR NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.family_id)",
                vec![Param::Time(now)],
                batch,
            ),
        ),
        (
            "login throttle rows",
            delete_batch(
                d,
                "login_attempts",
                "email",
                "window_start <= {}",
                vec![Param::Time(grace_ago)],
                batch,
            ),
        ),
        (
            "idempotency records",
            // Every user's, not only those of users who create again.
            delete_batch(
                d,
                "idempotency_keys",
                "user_id, key",
                "expires_at <= {}",
                vec![Param::Time(now)],
                batch,
            ),
        ),
        (
            "client throttle rows",
            // A bucket whose theoretical arrival time has passed is full: the same as none.
            delete_batch(
                d,
                "client_throttle",
                "client",
                "tat_us <= {}",
                vec![Param::Int(crate::models::unix_micros(now))],
                batch,
            ),
        ),
    ]
}

/// Implements [`UserRepository`](super::UserRepository) and
/// [`TokenRepository`](super::TokenRepository) for a backend from the statements above,
/// given its query builder and its decoders for users, credentials and a timestamp column.
macro_rules! account_repository {
    ($store:ty, $dialect:expr, $query:path, $user_from_row:path, $credentials_from_row:path, $time_of:path) => {
        #[async_trait::async_trait]
        impl $crate::store::UserRepository for $store {
            async fn create(
                &self,
                user: &$crate::models::NewUser,
            ) -> Result<$crate::models::User, $crate::store::StoreError> {
                use $crate::store::{Conflict, SqlxResultExt as _, accounts};
                let row = $query(&accounts::insert_user($dialect, user))
                    .fetch_one(self.pool())
                    .await
                    .context("inserting a user")
                    .map_err(|e| e.on_constraint(accounts::EMAIL_UNIQUE, Conflict::EmailTaken))?;
                $user_from_row(&row).context("reading the new user")
            }

            async fn by_id(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::models::User>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let row = $query(&accounts::user_by_id($dialect, id))
                    .fetch_optional(self.pool())
                    .await
                    .context("loading a user")?;
                row.as_ref()
                    .map($user_from_row)
                    .transpose()
                    .context("reading a user")
            }

            async fn for_access_token(
                &self,
                user: uuid::Uuid,
                session: Option<uuid::Uuid>,
            ) -> Result<Option<$crate::store::TokenUser>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{SqlxResultExt as _, TokenUser, accounts};
                let row = $query(&accounts::user_for_token($dialect, user, session))
                    .fetch_optional(self.pool())
                    .await
                    .context("loading the user of an access token")?;
                row.as_ref()
                    .map(|row| -> Result<TokenUser, sqlx::Error> {
                        Ok(TokenUser {
                            user: $user_from_row(row)?,
                            session_live: row.try_get("session_live")?,
                        })
                    })
                    .transpose()
                    .context("reading the user of an access token")
            }

            async fn credentials_by_email(
                &self,
                email: &$crate::models::Email,
            ) -> Result<Option<$crate::store::Credentials>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let row = $query(&accounts::credentials_by_email($dialect, email))
                    .fetch_optional(self.pool())
                    .await
                    .context("loading credentials by email")?;
                row.as_ref()
                    .map($credentials_from_row)
                    .transpose()
                    .context("reading credentials")
            }

            async fn credentials_by_id(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::store::Credentials>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let row = $query(&accounts::credentials_by_id($dialect, id))
                    .fetch_optional(self.pool())
                    .await
                    .context("loading credentials by id")?;
                row.as_ref()
                    .map($credentials_from_row)
                    .transpose()
                    .context("reading credentials")
            }

            async fn upgrade_password_hash(
                &self,
                id: uuid::Uuid,
                verified: &str,
                upgraded: &str,
                now: time::OffsetDateTime,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let done = $query(&accounts::upgrade_password_hash(
                    $dialect, id, verified, upgraded, now,
                ))
                .execute(self.pool())
                .await
                .context("upgrading a password hash")?;
                Ok(done.rows_affected() == 1)
            }

            async fn change_password(
                &self,
                id: uuid::Uuid,
                hash: &str,
                expected_epoch: i64,
                now: time::OffsetDateTime,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let done = $query(&accounts::change_password(
                    $dialect,
                    id,
                    hash,
                    expected_epoch,
                    now,
                ))
                .execute(self.pool())
                .await
                .context("changing a password")?;
                Ok(done.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TokenRepository for $store {
            async fn start_session(
                &self,
                session: &$crate::store::NewSession,
                first: &$crate::store::NextRefreshToken,
            ) -> Result<bool, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let mut tx = self.begin_write().await.context("beginning a session")?;
                let started = $query(&accounts::start_session($dialect, session))
                    .execute(&mut *tx)
                    .await
                    .context("starting a session")?
                    .rows_affected()
                    == 1;
                if !started {
                    return Ok(false);
                }
                $query(&accounts::insert_refresh(
                    $dialect,
                    session.user_id,
                    session.id,
                    None,
                    first,
                    session.created_at,
                ))
                .execute(&mut *tx)
                .await
                .context("storing a refresh token")?;
                tx.commit().await.context("committing a new session")?;
                Ok(true)
            }

            async fn rotate_refresh(
                &self,
                presented: &$crate::auth::refresh::TokenHash,
                next: &$crate::store::NextRefreshToken,
                now: time::OffsetDateTime,
            ) -> Result<$crate::store::Rotation, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{Rotation, SqlxResultExt as _, accounts};
                let mut tx = self.begin_write().await.context("beginning a rotation")?;
                let spent = $query(&accounts::spend_refresh($dialect, presented, now))
                    .fetch_optional(&mut *tx)
                    .await
                    .context("spending a refresh token")?;
                let outcome = if let Some(row) = spent {
                    let id: uuid::Uuid = row.try_get("id").context("reading a token id")?;
                    let user: uuid::Uuid =
                        row.try_get("user_id").context("reading a token user")?;
                    let session: uuid::Uuid = row
                        .try_get("family_id")
                        .context("reading a token session")?;
                    let session_expires =
                        $time_of(&row, "session_expires").context("reading a session's end")?;
                    // No token outlives its session's absolute age.
                    let next = $crate::store::NextRefreshToken {
                        expires_at: next.expires_at.min(session_expires),
                        ..next.clone()
                    };
                    $query(&accounts::insert_refresh(
                        $dialect,
                        user,
                        session,
                        Some(id),
                        &next,
                        now,
                    ))
                    .execute(&mut *tx)
                    .await
                    .context("storing the rotated refresh token")?;
                    Rotation::Rotated {
                        user_id: user,
                        session_id: session,
                        expires_at: next.expires_at,
                    }
                } else {
                    let row = $query(&accounts::classify_refresh($dialect, presented))
                        .fetch_optional(&mut *tx)
                        .await
                        .context("classifying a refresh token")?;
                    match row {
                        Some(row)
                            if row.try_get::<bool, _>("spent").context("reading spent")? =>
                        {
                            let session: uuid::Uuid =
                                row.try_get("family_id").context("reading a session")?;
                            let user: uuid::Uuid =
                                row.try_get("user_id").context("reading a token user")?;
                            $query(&accounts::revoke_session($dialect, session, now))
                                .execute(&mut *tx)
                                .await
                                .context("revoking a session after reuse")?;
                            Rotation::Reused { user_id: user }
                        }
                        _ => Rotation::Invalid,
                    }
                };
                tx.commit().await.context("committing a rotation")?;
                Ok(outcome)
            }

            async fn revoke_session_of(
                &self,
                presented: &$crate::auth::refresh::TokenHash,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::revoke_session_of($dialect, presented, now))
                    .execute(self.pool())
                    .await
                    .context("revoking a session")?;
                Ok(())
            }

            async fn reserve_login_attempt(
                &self,
                email: &str,
                now: time::OffsetDateTime,
                throttle: $crate::config::LoginThrottle,
            ) -> Result<$crate::store::LoginAttempt, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{LoginAttempt, SqlxResultExt as _, accounts};
                let row = $query(&accounts::reserve_attempt($dialect, email, now, throttle))
                    .fetch_one(self.pool())
                    .await
                    .context("reserving a login attempt")?;
                let allowed: i32 = row.try_get("allowed").context("reading the decision")?;
                let failures: i32 = row.try_get("failures").context("reading the count")?;
                let window_start = $time_of(&row, "window_start").context("reading the window")?;
                Ok(LoginAttempt {
                    allowed: allowed == 1,
                    reserved: u32::try_from(failures).unwrap_or(u32::MAX),
                    window_start,
                    // A concurrent request may have opened the window a moment after
                    // this one read the clock: never more than the window itself.
                    retry_after: std::time::Duration::try_from(
                        window_start + throttle.window - now,
                    )
                    .unwrap_or_default()
                    .min(throttle.window),
                })
            }

            async fn return_login_attempt(
                &self,
                email: &str,
                attempt: &$crate::store::LoginAttempt,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::return_attempt(
                    $dialect,
                    email,
                    attempt.window_start,
                ))
                .execute(self.pool())
                .await
                .context("returning a login attempt")?;
                Ok(())
            }

            async fn take_client_request(
                &self,
                client: &str,
                now: time::OffsetDateTime,
                limit: $crate::config::AuthRateLimit,
            ) -> Result<Result<(), std::time::Duration>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{SqlxResultExt as _, accounts};
                let gcra = accounts::Gcra::new(limit);
                let now_us = $crate::models::unix_micros(now);
                let row = $query(&accounts::take_client_request(
                    $dialect, client, now_us, gcra,
                ))
                .fetch_one(self.pool())
                .await
                .context("counting a client's credential request")?;
                let allowed: i32 = row.try_get("allowed").context("reading the decision")?;
                let tat: i64 = row.try_get("tat_us").context("reading the bucket")?;
                Ok(if allowed == 1 {
                    Ok(())
                } else {
                    Err(gcra.wait(tat, now_us))
                })
            }

            async fn prune(
                &self,
                now: time::OffsetDateTime,
            ) -> Result<Vec<(&'static str, u64)>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                const BATCH: i64 = 5_000;
                let mut counts = Vec::new();
                for (what, sql) in accounts::prune_statements($dialect, now, BATCH) {
                    let mut total = 0;
                    loop {
                        let deleted = $query(&sql)
                            .execute(self.pool())
                            .await
                            .context("pruning expired rows")?
                            .rows_affected();
                        total += deleted;
                        if deleted < BATCH.unsigned_abs() {
                            break;
                        }
                    }
                    counts.push((what, total));
                }
                Ok(counts)
            }
        }
    };
}
pub(crate) use account_repository;
