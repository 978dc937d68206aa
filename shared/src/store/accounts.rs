//! User, refresh-token and login-throttle statements, shared by both backends (see
//! [`super::sql`]), and the flows built from them ([`account_repository!`]).
//!
//! Refresh rotation is one transaction whose first statement is a conditional UPDATE: it
//! takes the row lock (Postgres) or the write lock (SQLite), so of concurrent rotations of
//! one token exactly one spends it; the others find it spent and revoke its family.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    NewRefreshToken, NextRefreshToken,
    sql::{Dialect, Param, Sql},
    window_floor,
};
use crate::{
    auth::refresh::TokenHash,
    config::LoginThrottle,
    models::{Email, NewUser, fold},
};

pub use super::admin::USER_COLUMNS;

/// The constraint that makes emails unique, by each backend's name for it.
pub const EMAIL_UNIQUE: &[&str] = &["users_email_key", "users.email"];

pub fn insert_user(d: Dialect, u: &NewUser) -> Sql {
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

pub fn user_by_id(d: Dialect, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "))
        .bind(Param::Uuid(id));
    sql
}

pub fn user_by_email(d: Dialect, email: &Email) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = "))
        .bind(Param::Text(email.as_str().to_owned()));
    sql
}

pub fn set_password_hash(d: Dialect, id: Uuid, hash: &str, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET password_hash = ")
        .bind(Param::Text(hash.to_owned()))
        .push(", updated_at = ")
        .bind(Param::Time(now))
        .push(" WHERE id = ")
        .bind(Param::Uuid(id));
    sql
}

pub fn insert_refresh(d: Dialect, t: &NewRefreshToken) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at) VALUES (");
    sql.bind_list([
        Param::Uuid(t.id),
        Param::Uuid(t.user_id),
        Param::Uuid(t.family_id),
        Param::OptUuid(None),
        Param::Bytes(t.hash.to_vec()),
        Param::Time(t.issued_at),
        Param::Time(t.expires_at),
    ]);
    sql.push(")");
    sql
}

/// Spends a live token, returning its id, user and family; no row when it is not live.
pub fn spend_refresh(d: Dialect, presented: &TokenHash, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE refresh_tokens SET spent_at = ")
        .bind(Param::Time(now))
        .push(" WHERE token_hash = ")
        .bind(Param::Bytes(presented.to_vec()))
        .push(" AND spent_at IS NULL AND revoked_at IS NULL AND expires_at > ")
        .bind(Param::Time(now))
        .push(" RETURNING id, user_id, family_id");
    sql
}

pub fn insert_rotated(
    d: Dialect,
    next: &NextRefreshToken,
    user: Uuid,
    family: Uuid,
    parent: Uuid,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at) VALUES (");
    sql.bind_list([
        Param::Uuid(next.id),
        Param::Uuid(user),
        Param::Uuid(family),
        Param::OptUuid(Some(parent)),
        Param::Bytes(next.hash.to_vec()),
        Param::Time(now),
        Param::Time(next.expires_at),
    ]);
    sql.push(")");
    sql
}

/// The family of a token and whether it was spent.
pub fn classify_refresh(d: Dialect, presented: &TokenHash) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "SELECT family_id, spent_at IS NOT NULL AS spent FROM refresh_tokens WHERE token_hash = ",
    )
    .bind(Param::Bytes(presented.to_vec()));
    sql
}

pub fn revoke_family(d: Dialect, family: Uuid, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE refresh_tokens SET revoked_at = ")
        .bind(Param::Time(now))
        .push(" WHERE family_id = ")
        .bind(Param::Uuid(family))
        .push(" AND revoked_at IS NULL");
    sql
}

pub fn revoke_family_of(d: Dialect, presented: &TokenHash, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE refresh_tokens SET revoked_at = ")
        .bind(Param::Time(now))
        .push(" WHERE revoked_at IS NULL AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = ")
        .bind(Param::Bytes(presented.to_vec()))
        .push(")");
    sql
}

pub fn login_lock(d: Dialect, email: &str, now: OffsetDateTime, throttle: LoginThrottle) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT window_start FROM login_attempts WHERE email = ")
        .bind(Param::Text(email.to_owned()))
        .push(" AND failures >= ")
        .bind(Param::Int(i64::from(throttle.max_failures)))
        .push(" AND window_start > ")
        .bind(Param::Time(window_floor(now, throttle)));
    sql
}

/// Atomic upsert: a window older than the throttle's restarts at one failure.
pub fn record_failure(
    d: Dialect,
    email: &str,
    now: OffsetDateTime,
    throttle: LoginThrottle,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO login_attempts (email, window_start, failures) VALUES (")
        .bind(Param::Text(email.to_owned()))
        .push(", ")
        .bind(Param::Time(now))
        .push(", 1) ON CONFLICT (email) DO UPDATE SET failures = CASE WHEN login_attempts.window_start <= ");
    let floor = Param::Time(window_floor(now, throttle));
    sql.bind(floor.clone())
        .push(" THEN 1 ELSE login_attempts.failures + 1 END, window_start = CASE WHEN login_attempts.window_start <= ")
        .bind(floor)
        .push(" THEN ")
        .bind(Param::Time(now))
        .push(" ELSE login_attempts.window_start END");
    sql
}

pub fn clear_failures(d: Dialect, email: &str) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM login_attempts WHERE email = ")
        .bind(Param::Text(email.to_owned()));
    sql
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

            async fn credentials_by_email(
                &self,
                email: &$crate::models::Email,
            ) -> Result<Option<$crate::store::Credentials>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let row = $query(&accounts::user_by_email($dialect, email))
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
                let row = $query(&accounts::user_by_id($dialect, id))
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
                hash: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::set_password_hash($dialect, id, hash, now))
                    .execute(self.pool())
                    .await
                    .context("upgrading a password hash")?;
                Ok(())
            }

            async fn change_password(
                &self,
                id: uuid::Uuid,
                hash: &str,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts, admin};
                let mut tx = self
                    .begin_write()
                    .await
                    .context("beginning a password change")?;
                $query(&accounts::set_password_hash($dialect, id, hash, now))
                    .execute(&mut *tx)
                    .await
                    .context("changing a password")?;
                $query(&admin::revoke_all_refresh($dialect, id, now))
                    .execute(&mut *tx)
                    .await
                    .context("revoking refresh tokens after a password change")?;
                tx.commit().await.context("committing a password change")
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::TokenRepository for $store {
            async fn insert_refresh(
                &self,
                token: &$crate::store::NewRefreshToken,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::insert_refresh($dialect, token))
                    .execute(self.pool())
                    .await
                    .context("storing a refresh token")?;
                Ok(())
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
                    let family: uuid::Uuid =
                        row.try_get("family_id").context("reading a token family")?;
                    $query(&accounts::insert_rotated(
                        $dialect, next, user, family, id, now,
                    ))
                    .execute(&mut *tx)
                    .await
                    .context("storing the rotated refresh token")?;
                    Rotation::Rotated { user_id: user }
                } else {
                    let row = $query(&accounts::classify_refresh($dialect, presented))
                        .fetch_optional(&mut *tx)
                        .await
                        .context("classifying a refresh token")?;
                    match row {
                        Some(row)
                            if row.try_get::<bool, _>("spent").context("reading spent")? =>
                        {
                            let family: uuid::Uuid =
                                row.try_get("family_id").context("reading a family")?;
                            $query(&accounts::revoke_family($dialect, family, now))
                                .execute(&mut *tx)
                                .await
                                .context("revoking a family after reuse")?;
                            Rotation::Reused
                        }
                        _ => Rotation::Invalid,
                    }
                };
                tx.commit().await.context("committing a rotation")?;
                Ok(outcome)
            }

            async fn revoke_family_of(
                &self,
                presented: &$crate::auth::refresh::TokenHash,
                now: time::OffsetDateTime,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::revoke_family_of($dialect, presented, now))
                    .execute(self.pool())
                    .await
                    .context("revoking a refresh family")?;
                Ok(())
            }

            async fn login_locked_until(
                &self,
                email: &str,
                now: time::OffsetDateTime,
                throttle: $crate::config::LoginThrottle,
            ) -> Result<Option<time::OffsetDateTime>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                let row = $query(&accounts::login_lock($dialect, email, now, throttle))
                    .fetch_optional(self.pool())
                    .await
                    .context("checking the login throttle")?;
                row.map(|r| $time_of(&r, "window_start"))
                    .transpose()
                    .map(|start| start.map(|s| s + throttle.window))
                    .context("reading the login throttle")
            }

            async fn record_login_failure(
                &self,
                email: &str,
                now: time::OffsetDateTime,
                throttle: $crate::config::LoginThrottle,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::record_failure($dialect, email, now, throttle))
                    .execute(self.pool())
                    .await
                    .context("counting a failed login")?;
                Ok(())
            }

            async fn clear_login_failures(
                &self,
                email: &str,
            ) -> Result<(), $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, accounts};
                $query(&accounts::clear_failures($dialect, email))
                    .execute(self.pool())
                    .await
                    .context("clearing failed logins")?;
                Ok(())
            }
        }
    };
}
pub(crate) use account_repository;
