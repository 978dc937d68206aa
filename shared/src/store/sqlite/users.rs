//! Users on SQLite.

use async_trait::async_trait;
use sqlx::{Row as _, sqlite::SqliteRow};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SqliteStore, parse_ts, ts};
use crate::{
    models::{Email, NewUser, Role, User},
    store::{Conflict, Credentials, SqlxResultExt as _, StoreError, UserRepository},
};

pub(super) const USER_COLUMNS: &str =
    "id, email, name, role, disabled, created_at, updated_at, password_hash";

pub(super) fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).map_err(|e| sqlx::Error::Decode(e.into()))?,
        disabled: row.try_get("disabled")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

fn credentials_from_row(row: &SqliteRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
    })
}

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create(&self, user: &NewUser) -> Result<User, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, email, name, name_folded, password_hash, role, disabled, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?7, ?4, ?5, 0, ?6, ?6)
             RETURNING {USER_COLUMNS}"
        ))
        .bind(user.id)
        .bind(user.email.as_str())
        .bind(user.name.as_str())
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(ts(user.now))
        .bind(crate::models::fold(user.name.as_str()))
        .fetch_one(self.pool())
        .await
        .context("inserting a user")
        .map_err(|e| e.on_constraint(&["users.email"], Conflict::EmailTaken))?;
        user_from_row(&row).context("reading the new user")
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .context("loading a user")?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .context("reading a user")
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = ?1"
        ))
        .bind(email.as_str())
        .fetch_optional(self.pool())
        .await
        .context("loading credentials by email")?;
        row.as_ref()
            .map(credentials_from_row)
            .transpose()
            .context("reading credentials")
    }

    async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .context("loading credentials by id")?;
        row.as_ref()
            .map(credentials_from_row)
            .transpose()
            .context("reading credentials")
    }

    async fn upgrade_password_hash(
        &self,
        id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(hash)
            .bind(ts(now))
            .execute(self.pool())
            .await
            .context("upgrading a password hash")?;
        Ok(())
    }

    async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // The transaction writes first, so SQLite takes the write lock at once (waiting on the
        // busy timeout) instead of failing to upgrade a read lock later.
        let mut tx = self
            .pool()
            .begin()
            .await
            .context("beginning a password change")?;
        sqlx::query("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")
            .bind(id)
            .bind(hash)
            .bind(ts(now))
            .execute(&mut *tx)
            .await
            .context("changing a password")?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(ts(now))
        .execute(&mut *tx)
        .await
        .context("revoking refresh tokens after a password change")?;
        tx.commit().await.context("committing a password change")
    }
}
