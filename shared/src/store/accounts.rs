//! Users, sessions and their refresh tokens, and login throttling: the statements (ordinary
//! functions returning a [`Sql`], the same text on both backends) and, at the end of the
//! file, the [`UserRepository`] and [`TokenRepository`] that run them.
//!
//! Refresh rotation is one transaction whose first statement is a conditional UPDATE: it
//! takes the row lock (Postgres) or the write lock (SQLite), so of concurrent rotations of
//! one token exactly one spends it; the others find it spent and revoke its session.
//!
//! Every promise about counts is one statement the database decides: a login attempt is
//! reserved by a conditional upsert before any hashing, a client's credential requests are
//! counted by another, and a session only starts at the epoch its login read.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    Conflict, Credentials, LoginAttempt, NewSession, NextRefreshToken, Rotation, StoreError,
    TokenRepository, TokenUser, UserRepository,
    db::{Db, SqlStore},
    mail::{TokenMail, TokenPurpose, queue_token_mail},
    sql::{Param, Sql},
    window_floor,
};
use crate::{
    auth::refresh::TokenHash,
    config::{AuthRateLimit, Backend, LoginThrottle},
    domain::{self, RefreshVerdict, StoredRefresh},
    models::{Email, NewUser, User, fold, unix_micros},
};

pub use super::admin::{CREDENTIAL_COLUMNS, USER_COLUMNS};

/// The constraint that makes emails unique, by each backend's name for it.
pub const EMAIL_UNIQUE: &[&str] = &["users_email_key", "users.email"];

pub fn insert_user(d: Backend, u: &NewUser) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO users (id, email, name, name_folded, password_hash, role, disabled, email_verified, created_at, updated_at) VALUES (");
    sql.bind_list([
        Param::Uuid(u.id),
        Param::Text(u.email.as_str().to_owned()),
        Param::Text(u.name.as_str().to_owned()),
        Param::Text(fold(u.name.as_str())),
        Param::Text(u.password_hash.clone()),
        Param::Text(u.role.as_str().to_owned()),
        Param::Bool(false),
        Param::Bool(u.email_verified),
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
        .push(" AND ");
    push_session_live(&mut sql, now);
    sql.push(" RETURNING id, user_id, family_id, (SELECT expires_at FROM sessions WHERE id = refresh_tokens.family_id) AS session_expires");
    sql
}

/// `EXISTS (…)`: the session of the `refresh_tokens` row at hand is live at `now`: not
/// revoked, not past its absolute age, at its user's epoch, and the user is enabled.
fn push_session_live(sql: &mut Sql, now: Param) {
    sql.push("EXISTS (SELECT 1 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = refresh_tokens.family_id AND s.revoked_at IS NULL AND s.epoch = u.session_epoch AND u.disabled = ")
        .bind(Param::Bool(false))
        .push(" AND s.expires_at > ")
        .bind(now)
        .push(")");
}

/// A presented token as stored, for [`domain::refresh_verdict`].
pub fn classify_refresh(d: Backend, presented: &TokenHash, now: OffsetDateTime) -> Sql {
    let now = Param::Time(now);
    let mut sql = Sql::new(d);
    sql.push("SELECT family_id AS session_id, user_id, spent_at IS NOT NULL AS spent, revoked_at IS NOT NULL AS revoked, expires_at <= ")
        .bind(now.clone())
        .push(" AS expired, ");
    push_session_live(&mut sql, now);
    sql.push(" AS session_live FROM refresh_tokens WHERE token_hash = ")
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
pub fn prune_statements(d: Backend, now: OffsetDateTime, batch: i64) -> [(&'static str, Sql); 9] {
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
        (
            "account tokens",
            // Used or expired: refused already.
            delete_batch(
                d,
                "account_tokens",
                "user_id, purpose",
                "used_at IS NOT NULL OR expires_at <= {}",
                vec![Param::Time(now)],
                batch,
            ),
        ),
        (
            "mail budget rows",
            // A window an hour old restarts anyway.
            delete_batch(
                d,
                "mail_throttle",
                "email",
                "window_start <= {}",
                vec![Param::Time(grace_ago)],
                batch,
            ),
        ),
        (
            "undeliverable mail",
            // Given up on (and its token in the body with it), or older than any token a
            // mail can carry lives (`EMAIL_VERIFICATION_TTL_SECS` is at most 30 days).
            delete_batch(
                d,
                "mail_outbox",
                "id",
                "sent_at IS NULL AND (attempts >= {} OR created_at <= {})",
                vec![
                    Param::Int(super::mail::MAX_ATTEMPTS),
                    Param::Time(now - Duration::from_secs(31 * 86_400)),
                ],
                batch,
            ),
        ),
        (
            "sent mail",
            // Kept a day after sending for the record (they hold no body).
            delete_batch(
                d,
                "mail_outbox",
                "id",
                "sent_at <= {}",
                vec![Param::Time(grace_ago)],
                batch,
            ),
        ),
    ]
}

// --- The repositories -----------------------------------------------------------------

#[async_trait]
impl<D: Db> UserRepository for SqlStore<D> {
    async fn create(
        &self,
        user: &NewUser,
        verification: Option<&TokenMail>,
    ) -> Result<User, StoreError> {
        let taken = |e: StoreError| e.on_constraint(EMAIL_UNIQUE, Conflict::EmailTaken);
        let insert = insert_user(D::KIND, user);
        let Some(verification) = verification else {
            return self
                .conn()
                .await?
                .one(&insert, "inserting a user")
                .await
                .map_err(taken);
        };
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning a registration").await?;
        let created: User = tx.one(&insert, "inserting a user").await.map_err(taken)?;
        let purpose = TokenPurpose::EmailVerification;
        queue_token_mail(&mut tx, created.id, purpose, verification, user.now).await?;
        tx.commit("committing a registration").await?;
        Ok(created)
    }

    async fn by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.read_optional(&user_by_id(D::KIND, id), "loading a user")
            .await
    }

    async fn for_access_token(
        &self,
        user: Uuid,
        session: Option<Uuid>,
    ) -> Result<Option<TokenUser>, StoreError> {
        let sql = user_for_token(D::KIND, user, session);
        self.read_optional(&sql, "loading the user of an access token")
            .await
    }

    async fn credentials_by_email(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        let sql = credentials_by_email(D::KIND, email);
        self.read_optional(&sql, "loading credentials by email")
            .await
    }

    async fn credentials_by_id(&self, id: Uuid) -> Result<Option<Credentials>, StoreError> {
        let sql = credentials_by_id(D::KIND, id);
        self.read_optional(&sql, "loading credentials by id").await
    }

    async fn upgrade_password_hash(
        &self,
        id: Uuid,
        verified: &str,
        upgraded: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let sql = upgrade_password_hash(D::KIND, id, verified, upgraded, now);
        Ok(self
            .conn()
            .await?
            .run(&sql, "upgrading a password hash")
            .await?
            == 1)
    }

    async fn change_password(
        &self,
        id: Uuid,
        hash: &str,
        expected_epoch: i64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let sql = change_password(D::KIND, id, hash, expected_epoch, now);
        Ok(self.conn().await?.run(&sql, "changing a password").await? == 1)
    }
}

/// A refresh token as [`spend_refresh`] returns it.
#[derive(sqlx::FromRow)]
struct SpentToken {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    session_expires: OffsetDateTime,
}

/// A login attempt's reservation as [`reserve_attempt`] returns it.
#[derive(sqlx::FromRow)]
struct Reservation {
    allowed: i32,
    failures: i32,
    window_start: OffsetDateTime,
}

#[async_trait]
impl<D: Db> TokenRepository for SqlStore<D> {
    async fn start_session(
        &self,
        session: &NewSession,
        first: &NextRefreshToken,
    ) -> Result<bool, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning a session").await?;
        if tx
            .run(&start_session(d, session), "starting a session")
            .await?
            != 1
        {
            return Ok(false);
        }
        let token = insert_refresh(
            d,
            session.user_id,
            session.id,
            None,
            first,
            session.created_at,
        );
        tx.run(&token, "storing a refresh token").await?;
        tx.commit("committing a new session").await?;
        Ok(true)
    }

    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &NextRefreshToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning a rotation").await?;
        let spent: Option<SpentToken> = tx
            .optional(
                &spend_refresh(d, presented, now),
                "spending a refresh token",
            )
            .await?;
        let outcome = if let Some(spent) = spent {
            // No token outlives its session's absolute age.
            let next = NextRefreshToken {
                expires_at: next.expires_at.min(spent.session_expires),
                ..next.clone()
            };
            let successor = insert_refresh(
                d,
                spent.user_id,
                spent.family_id,
                Some(spent.id),
                &next,
                now,
            );
            tx.run(&successor, "storing the rotated refresh token")
                .await?;
            Rotation::Rotated {
                user_id: spent.user_id,
                session_id: spent.family_id,
                expires_at: next.expires_at,
            }
        } else {
            // Not spent now: find out why, from the token as stored. (A rotation racing
            // this one may spend it meanwhile on Postgres, where the update that matched
            // nothing locked nothing; it is then `Spent`, and reuse is what it is.)
            let stored: Option<StoredRefresh> = tx
                .optional(
                    &classify_refresh(d, presented, now),
                    "classifying a refresh token",
                )
                .await?;
            match stored.map(|t| (domain::refresh_verdict(&t), t)) {
                Some((RefreshVerdict::Spent, token)) => {
                    let revoke = revoke_session(d, token.session_id, now);
                    tx.run(&revoke, "revoking a session after reuse").await?;
                    Rotation::Reused {
                        user_id: token.user_id,
                    }
                }
                Some((verdict, _)) => {
                    tracing::debug!(?verdict, "refresh token refused");
                    Rotation::Invalid
                }
                None => Rotation::Invalid,
            }
        };
        tx.commit("committing a rotation").await?;
        Ok(outcome)
    }

    async fn revoke_session_of(
        &self,
        presented: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = revoke_session_of(D::KIND, presented, now);
        self.conn()
            .await?
            .run(&sql, "revoking a session")
            .await
            .map(drop)
    }

    async fn reserve_login_attempt(
        &self,
        email: &str,
        now: OffsetDateTime,
        throttle: LoginThrottle,
    ) -> Result<LoginAttempt, StoreError> {
        let sql = reserve_attempt(D::KIND, email, now, throttle);
        let r: Reservation = self
            .conn()
            .await?
            .one(&sql, "reserving a login attempt")
            .await?;
        Ok(LoginAttempt {
            allowed: r.allowed == 1,
            reserved: u32::try_from(r.failures).unwrap_or(u32::MAX),
            window_start: r.window_start,
            // A concurrent request may have opened the window a moment after this one read
            // the clock: never more than the window itself.
            retry_after: Duration::try_from(r.window_start + throttle.window - now)
                .unwrap_or_default()
                .min(throttle.window),
        })
    }

    async fn return_login_attempt(
        &self,
        email: &str,
        attempt: &LoginAttempt,
    ) -> Result<(), StoreError> {
        let sql = return_attempt(D::KIND, email, attempt.window_start);
        self.conn()
            .await?
            .run(&sql, "returning a login attempt")
            .await
            .map(drop)
    }

    async fn take_client_request(
        &self,
        client: &str,
        now: OffsetDateTime,
        limit: AuthRateLimit,
    ) -> Result<Result<(), Duration>, StoreError> {
        let gcra = Gcra::new(limit);
        let now_us = unix_micros(now);
        let sql = take_client_request(D::KIND, client, now_us, gcra);
        let (allowed, tat): (i32, i64) = self
            .conn()
            .await?
            .one(&sql, "counting a client's credential request")
            .await?;
        Ok(if allowed == 1 {
            Ok(())
        } else {
            Err(gcra.wait(tat, now_us))
        })
    }

    async fn prune(&self, now: OffsetDateTime) -> Result<Vec<(&'static str, u64)>, StoreError> {
        const BATCH: i64 = 5_000;
        let mut counts = Vec::new();
        for (what, sql) in prune_statements(D::KIND, now, BATCH) {
            let mut total = 0;
            loop {
                // A connection per batch: on SQLite other writers take their turn between.
                let deleted = self.conn().await?.run(&sql, "pruning expired rows").await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_check_is_one_statement_that_never_reads_the_password_hash() {
        for d in [Backend::Postgres, Backend::Sqlite] {
            for session in [Some(Uuid::now_v7()), None] {
                let sql = user_for_token(d, Uuid::now_v7(), session);
                assert!(!sql.text.contains("password_hash"), "{}", sql.text);
                assert!(!sql.text.contains(';'), "{}", sql.text);
                assert!(sql.text.starts_with("SELECT "), "{}", sql.text);
            }
        }
    }
}
