//! Refresh tokens and login throttling on Postgres.

use async_trait::async_trait;
use sqlx::Row as _;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PgStore;
use crate::{
    auth::refresh::TokenHash,
    config::LoginThrottle,
    store::{
        NewRefreshToken, NextRefreshToken, Rotation, SqlxResultExt as _, StoreError,
        TokenRepository, window_floor,
    },
};

#[async_trait]
impl TokenRepository for PgStore {
    async fn insert_refresh(&self, t: &NewRefreshToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at)
             VALUES ($1, $2, $3, NULL, $4, $5, $6)",
        )
        .bind(t.id)
        .bind(t.user_id)
        .bind(t.family_id)
        .bind(&t.hash[..])
        .bind(t.issued_at)
        .bind(t.expires_at)
        .execute(self.pool())
        .await
        .context("storing a refresh token")?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &NextRefreshToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool().begin().await.context("beginning a rotation")?;
        // The conditional UPDATE takes the row lock: a concurrent rotation of the same token
        // waits here, then finds it spent and falls through to reuse handling.
        let spent = sqlx::query(
            "UPDATE refresh_tokens SET spent_at = $2
             WHERE token_hash = $1 AND spent_at IS NULL AND revoked_at IS NULL AND expires_at > $2
             RETURNING id, user_id, family_id",
        )
        .bind(&presented[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .context("spending a refresh token")?;

        let outcome = if let Some(row) = spent {
            let (id, user_id, family_id): (Uuid, Uuid, Uuid) = (
                row.try_get("id").context("reading a token id")?,
                row.try_get("user_id").context("reading a token user")?,
                row.try_get("family_id").context("reading a token family")?,
            );
            sqlx::query(
                "INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(next.id)
            .bind(user_id)
            .bind(family_id)
            .bind(id)
            .bind(&next.hash[..])
            .bind(now)
            .bind(next.expires_at)
            .execute(&mut *tx)
            .await
            .context("storing the rotated refresh token")?;
            Rotation::Rotated { user_id }
        } else {
            let row = sqlx::query(
                "SELECT family_id, spent_at IS NOT NULL AS spent FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(&presented[..])
            .fetch_optional(&mut *tx)
            .await
            .context("classifying a refresh token")?;
            match row {
                Some(row) if row.try_get::<bool, _>("spent").context("reading spent")? => {
                    let family_id: Uuid = row.try_get("family_id").context("reading a family")?;
                    sqlx::query(
                        "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(family_id)
                    .bind(now)
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
        presented: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $2
             WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(&presented[..])
        .bind(now)
        .execute(self.pool())
        .await
        .context("revoking a refresh family")?;
        Ok(())
    }

    async fn login_locked_until(
        &self,
        email: &str,
        now: OffsetDateTime,
        throttle: LoginThrottle,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT window_start FROM login_attempts
             WHERE email = $1 AND failures >= $2 AND window_start > $3",
        )
        .bind(email)
        .bind(i32::try_from(throttle.max_failures).unwrap_or(i32::MAX))
        .bind(window_floor(now, throttle))
        .fetch_optional(self.pool())
        .await
        .context("checking the login throttle")?;
        row.map(|r| r.try_get::<OffsetDateTime, _>("window_start"))
            .transpose()
            .map(|start| start.map(|s| s + throttle.window))
            .context("reading the login throttle")
    }

    async fn record_login_failure(
        &self,
        email: &str,
        now: OffsetDateTime,
        throttle: LoginThrottle,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO login_attempts (email, window_start, failures) VALUES ($1, $2, 1)
             ON CONFLICT (email) DO UPDATE SET
               failures = CASE WHEN login_attempts.window_start <= $3 THEN 1
                               ELSE login_attempts.failures + 1 END,
               window_start = CASE WHEN login_attempts.window_start <= $3 THEN $2
                                   ELSE login_attempts.window_start END",
        )
        .bind(email)
        .bind(now)
        .bind(window_floor(now, throttle))
        .execute(self.pool())
        .await
        .context("counting a failed login")?;
        Ok(())
    }

    async fn clear_login_failures(&self, email: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE email = $1")
            .bind(email)
            .execute(self.pool())
            .await
            .context("clearing failed logins")?;
        Ok(())
    }
}
