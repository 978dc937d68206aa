//! Account mail: one-use tokens (password reset, email verification), each address's mail
//! budget, and the outbox the mail waits in. The statements, then the [`MailRepository`]
//! that runs them.
//!
//! A token and the mail that carries it are written in one transaction, with the budget
//! decided by a conditional upsert in the same transaction: of any number of concurrent
//! requests for one address, at most one a minute (and five an hour) queue a mail, and a
//! token is never replaced without the mail that carries the new one. Delivery happens
//! after commit ([`crate::mail`]); a message stays in the outbox until a sender has handed
//! it to the mail server, so a crash between commit and delivery loses nothing.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    MailRepository, StoreError,
    db::{Db, SqlStore, Tx},
    sql::{Param, Sql},
};
use crate::{auth::refresh::TokenHash, config::Backend, models::Email};

/// Most mail one address is sent in an hour, and the least time between two.
pub const MAIL_PER_HOUR: i64 = 5;
pub const MAIL_MIN_INTERVAL: time::Duration = time::Duration::seconds(60);

/// A sender gives up on a message after this many failed attempts (about fifteen hours
/// of backing off); it stays visible in the outbox depth until `prune` deletes it.
pub const MAX_ATTEMPTS: i64 = 20;

/// What an account token proves when presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
        }
    }
}

/// A token to issue (its hash only), and when it stops working.
#[derive(Debug, Clone)]
pub struct NewAccountToken {
    pub hash: TokenHash,
    pub expires_at: OffsetDateTime,
}

/// A message to queue. The body holds the token in clear until the message is sent (the
/// recipient needs it); a sent message keeps no body.
#[derive(Clone)]
pub struct OutgoingMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A token and the mail that carries it, queued together.
#[derive(Debug, Clone)]
pub struct TokenMail {
    pub token: NewAccountToken,
    pub mail: OutgoingMail,
}

/// A message a sender has claimed from the outbox.
#[derive(Clone, sqlx::FromRow)]
pub struct QueuedMail {
    pub id: Uuid,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// This attempt included.
    pub attempts: i32,
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Appends ` FROM users WHERE …`: the enabled account with this address, when `allowed`
/// (its mail budget had room). A statement with this source writes a row or none with the
/// same work either way, so a password reset request does the same whether or not the
/// address has an account.
fn from_enabled_account(sql: &mut Sql, email: &Email, allowed: bool) {
    sql.push(" FROM users WHERE email = ")
        .bind(Param::Text(email.as_str().to_owned()))
        .push(" AND disabled = ")
        .bind(Param::Bool(false))
        .push(" AND ")
        .bind(Param::Bool(allowed));
}

/// The id of the account, if its address is not verified yet.
pub fn unverified_account(d: Backend, user: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT id FROM users WHERE id = ")
        .bind(Param::Uuid(user))
        .push(" AND email_verified = ")
        .bind(Param::Bool(false));
    sql
}

/// Takes one mail from `email`'s budget, atomically: refused (`allowed = 0`, nothing
/// counted) within [`MAIL_MIN_INTERVAL`] of the last mail or past [`MAIL_PER_HOUR`] in the
/// window; a window older than an hour restarts. Returns `allowed`.
pub fn take_mail_budget(d: Backend, email: &str, now: OffsetDateTime) -> Sql {
    let now_p = Param::Time(now);
    let minute_ago = Param::Time(now - MAIL_MIN_INTERVAL);
    let hour_ago = Param::Time(now - time::Duration::HOUR);
    let max = Param::Int(MAIL_PER_HOUR);
    let mut sql = Sql::new(d);
    sql.push(
        "INSERT INTO mail_throttle (email, window_start, sent, last_sent_at, allowed) VALUES (",
    )
    .bind(Param::Text(email.to_owned()))
    .push(", ")
    .bind(now_p.clone())
    .push(", 1, ")
    .bind(now_p.clone())
    .push(", 1) ON CONFLICT (email) DO UPDATE SET ");
    // Every SET expression reads the row as it was: `recent`, `stale` and `room` below
    // describe the old row.
    let recent = |sql: &mut Sql| {
        sql.push("mail_throttle.last_sent_at > ")
            .bind(minute_ago.clone());
    };
    let stale = |sql: &mut Sql| {
        sql.push("mail_throttle.window_start <= ")
            .bind(hour_ago.clone());
    };
    let room = |sql: &mut Sql| {
        sql.push("mail_throttle.sent < ").bind(max.clone());
    };
    sql.push("allowed = CASE WHEN ");
    recent(&mut sql);
    sql.push(" THEN 0 WHEN ");
    stale(&mut sql);
    sql.push(" THEN 1 WHEN ");
    room(&mut sql);
    sql.push(" THEN 1 ELSE 0 END, sent = CASE WHEN ");
    recent(&mut sql);
    sql.push(" THEN mail_throttle.sent WHEN ");
    stale(&mut sql);
    sql.push(" THEN 1 WHEN ");
    room(&mut sql);
    sql.push(" THEN mail_throttle.sent + 1 ELSE mail_throttle.sent END, window_start = CASE WHEN ");
    recent(&mut sql);
    sql.push(" THEN mail_throttle.window_start WHEN ");
    stale(&mut sql);
    sql.push(" THEN ")
        .bind(now_p.clone())
        .push(" ELSE mail_throttle.window_start END, last_sent_at = CASE WHEN ");
    recent(&mut sql);
    sql.push(" THEN mail_throttle.last_sent_at WHEN ");
    stale(&mut sql);
    sql.push(" THEN ").bind(now_p.clone()).push(" WHEN ");
    room(&mut sql);
    sql.push(" THEN ")
        .bind(now_p)
        .push(" ELSE mail_throttle.last_sent_at END RETURNING allowed");
    sql
}

/// Issues `token` for `user` and `purpose`, replacing any earlier one (used or not): only
/// the newest token works.
pub fn replace_token(
    d: Backend,
    user: Uuid,
    purpose: TokenPurpose,
    token: &NewAccountToken,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO account_tokens (user_id, purpose, token_hash, created_at, expires_at, used_at) VALUES (");
    sql.bind_list([
        Param::Uuid(user),
        Param::Text(purpose.as_str().to_owned()),
        Param::Bytes(token.hash.to_vec()),
        Param::Time(now),
        Param::Time(token.expires_at),
    ]);
    sql.push(", NULL)").push(REPLACE_TOKEN);
    sql
}

/// Issues a password-reset `token` to the enabled account with `email`, when `allowed`
/// (no row otherwise), replacing any earlier one.
pub fn replace_reset_token(
    d: Backend,
    email: &Email,
    allowed: bool,
    token: &NewAccountToken,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO account_tokens (user_id, purpose, token_hash, created_at, expires_at, used_at) SELECT id, ");
    sql.bind_list([
        Param::Text(TokenPurpose::PasswordReset.as_str().to_owned()),
        Param::Bytes(token.hash.to_vec()),
        Param::Time(now),
        Param::Time(token.expires_at),
    ]);
    sql.push(", NULL");
    from_enabled_account(&mut sql, email, allowed);
    sql.push(REPLACE_TOKEN);
    sql
}

/// A new token replaces the user's earlier one of the same purpose, used or not.
const REPLACE_TOKEN: &str = " ON CONFLICT (user_id, purpose) DO UPDATE SET token_hash = excluded.token_hash, created_at = excluded.created_at, expires_at = excluded.expires_at, used_at = NULL";

/// Queues `mail`, due now.
pub fn insert_mail(d: Backend, mail: &OutgoingMail, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO mail_outbox (id, recipient, subject, body, created_at, attempts, next_attempt_at) VALUES (");
    sql.bind_list(outbox_values(mail, now));
    sql.push(")");
    sql
}

/// Queues `mail` if the token it carries was issued (no row otherwise): the mail follows
/// the token statement's own outcome, whatever other transactions did to the account
/// between the two statements.
pub fn insert_mail_for_token(
    d: Backend,
    token: &NewAccountToken,
    mail: &OutgoingMail,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("INSERT INTO mail_outbox (id, recipient, subject, body, created_at, attempts, next_attempt_at) SELECT ");
    sql.bind_list(outbox_values(mail, now));
    sql.push(" FROM account_tokens WHERE token_hash = ")
        .bind(Param::Bytes(token.hash.to_vec()));
    sql
}

fn outbox_values(mail: &OutgoingMail, now: OffsetDateTime) -> [Param; 7] {
    [
        Param::Uuid(mail.id),
        Param::Text(mail.recipient.clone()),
        Param::Text(mail.subject.clone()),
        Param::Text(mail.body.clone()),
        Param::Time(now),
        Param::Int(0),
        Param::Time(now),
    ]
}

/// Spends a live token of `purpose`, returning its user; no row for an unknown, used,
/// expired or replaced token. The conditional update decides: of concurrent uses of one
/// token, exactly one gets the row.
pub fn spend_token(
    d: Backend,
    purpose: TokenPurpose,
    token: &TokenHash,
    now: OffsetDateTime,
) -> Sql {
    let now = Param::Time(now);
    let mut sql = Sql::new(d);
    sql.push("UPDATE account_tokens SET used_at = ")
        .bind(now.clone())
        .push(" WHERE token_hash = ")
        .bind(Param::Bytes(token.to_vec()))
        .push(" AND purpose = ")
        .bind(Param::Text(purpose.as_str().to_owned()))
        .push(" AND used_at IS NULL AND expires_at > ")
        .bind(now)
        .push(" RETURNING user_id");
    sql
}

/// A reset password, which also ends every session of the user; only for an enabled
/// account. Returns the user's email.
pub fn reset_password(d: Backend, user: Uuid, hash: &str, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET password_hash = ")
        .bind(Param::Text(hash.to_owned()))
        .push(", updated_at = ")
        .bind(Param::Time(now))
        .push(", session_epoch = session_epoch + 1 WHERE id = ")
        .bind(Param::Uuid(user))
        .push(" AND disabled = ")
        .bind(Param::Bool(false))
        .push(" RETURNING email");
    sql
}

pub fn mark_verified(d: Backend, user: Uuid, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET email_verified = ")
        .bind(Param::Bool(true))
        .push(", updated_at = ")
        .bind(Param::Time(now))
        .push(" WHERE id = ")
        .bind(Param::Uuid(user));
    sql
}

/// Claims due messages for one attempt: `attempts` goes up and `next_attempt_at` moves to
/// `lease_end`, so no other sender takes them meanwhile (the outer conditions are checked
/// again on the row as it is when the update reaches it). `only`: just that message.
pub fn claim_mail(
    d: Backend,
    only: Option<Uuid>,
    now: OffsetDateTime,
    lease_end: OffsetDateTime,
    limit: u32,
) -> Sql {
    let now = Param::Time(now);
    let mut sql = Sql::new(d);
    sql.push("UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ")
        .bind(Param::Time(lease_end))
        .push(" WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL AND next_attempt_at <= ")
        .bind(now.clone())
        .push(" AND attempts < ")
        .bind(Param::Int(MAX_ATTEMPTS));
    if let Some(id) = only {
        sql.push(" AND id = ").bind(Param::Uuid(id));
    }
    sql.push(" ORDER BY next_attempt_at LIMIT ")
        .bind(Param::Int(i64::from(limit)))
        .push(") AND sent_at IS NULL AND next_attempt_at <= ")
        .bind(now)
        .push(" RETURNING id, recipient, subject, body, attempts");
    sql
}

/// Marks the message sent and drops its body (the token in it). Every outcome names the
/// attempt it records: a sender whose lease ran out and whose message another sender
/// claimed since records nothing.
pub fn mail_sent(d: Backend, id: Uuid, attempt: i32, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE mail_outbox SET sent_at = ")
        .bind(Param::Time(now))
        .push(", body = '', last_error = NULL WHERE id = ")
        .bind(Param::Uuid(id))
        .push(" AND attempts = ")
        .bind(Param::Int(i64::from(attempt)));
    sql
}

pub fn mail_failed(
    d: Backend,
    id: Uuid,
    attempt: i32,
    error: &str,
    retry_at: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE mail_outbox SET last_error = ")
        .bind(Param::Text(error.chars().take(500).collect()))
        .push(", next_attempt_at = ")
        .bind(Param::Time(retry_at))
        .push(" WHERE id = ")
        .bind(Param::Uuid(id))
        .push(" AND sent_at IS NULL AND attempts = ")
        .bind(Param::Int(i64::from(attempt)));
    sql
}

pub fn outbox_depth(d: Backend) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT count(*) FROM mail_outbox WHERE sent_at IS NULL");
    sql
}

// --- The repository ------------------------------------------------------------------

/// Within `tx`: takes one mail from `email`'s budget; `false` when it had no room.
async fn take_budget<D: Db>(
    tx: &mut Tx<'_, D>,
    email: &str,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let budget = take_mail_budget(D::KIND, email, now);
    let (allowed,): (i32,) = tx.one(&budget, "taking from a mail budget").await?;
    Ok(allowed == 1)
}

/// Within `tx`: replaces the user's token and queues the mail carrying it.
async fn issue_token_mail<D: Db>(
    tx: &mut Tx<'_, D>,
    user: Uuid,
    purpose: TokenPurpose,
    queued: &TokenMail,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let token = replace_token(D::KIND, user, purpose, &queued.token, now);
    tx.run(&token, "issuing an account token").await?;
    tx.run(&insert_mail(D::KIND, &queued.mail, now), "queueing a mail")
        .await?;
    Ok(())
}

/// Within `tx`: takes one mail from the recipient's budget and, if it had room, replaces
/// the user's token and queues the mail carrying it. `false`: over budget, nothing written.
pub(super) async fn queue_token_mail<D: Db>(
    tx: &mut Tx<'_, D>,
    user: Uuid,
    purpose: TokenPurpose,
    queued: &TokenMail,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    if !take_budget(tx, &queued.mail.recipient, now).await? {
        return Ok(false);
    }
    issue_token_mail(tx, user, purpose, queued, now).await?;
    Ok(true)
}

#[async_trait]
impl<D: Db> MailRepository for SqlStore<D> {
    async fn queue_password_reset(
        &self,
        email: &Email,
        queued: &TokenMail,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // The same three statements and a commit for every address, with an account or not
        // and within its budget or not: the budget first (unknown addresses are throttled
        // like known ones), then the token, written only for an enabled account within its
        // budget, and the mail, written only if the token was.
        let mut conn = self.conn().await?;
        let mut tx = conn
            .begin_write("beginning a password reset request")
            .await?;
        let allowed = take_budget(&mut tx, &queued.mail.recipient, now).await?;
        let token = replace_reset_token(D::KIND, email, allowed, &queued.token, now);
        tx.run(&token, "issuing a reset token").await?;
        let mail = insert_mail_for_token(D::KIND, &queued.token, &queued.mail, now);
        let queued = tx.run(&mail, "queueing a reset mail").await? == 1;
        tx.commit("committing a password reset request").await?;
        Ok(queued)
    }

    async fn queue_email_verification(
        &self,
        user: Uuid,
        queued: &TokenMail,
        now: OffsetDateTime,
    ) -> Result<Option<bool>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn
            .begin_write("beginning an email verification request")
            .await?;
        let unverified: Option<(Uuid,)> = tx
            .optional(
                &unverified_account(D::KIND, user),
                "finding an unverified account",
            )
            .await?;
        if unverified.is_none() {
            return Ok(None);
        }
        let queued =
            queue_token_mail(&mut tx, user, TokenPurpose::EmailVerification, queued, now).await?;
        tx.commit("committing an email verification request")
            .await?;
        Ok(Some(queued))
    }

    async fn reset_password(
        &self,
        token: &TokenHash,
        hash: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning a password reset").await?;
        let spent: Option<(Uuid,)> = tx
            .optional(
                &spend_token(d, TokenPurpose::PasswordReset, token, now),
                "spending a reset token",
            )
            .await?;
        let Some((user,)) = spent else {
            return Ok(false);
        };
        let reset: Option<(String,)> = tx
            .optional(&reset_password(d, user, hash, now), "resetting a password")
            .await?;
        let Some((email,)) = reset else {
            // Disabled since the token was mailed: the token is not spent either.
            return Ok(false);
        };
        let clear = super::admin::delete_login_state(d, &email);
        tx.run(&clear, "clearing the login throttle").await?;
        tx.commit("committing a password reset").await?;
        Ok(true)
    }

    async fn verify_email(
        &self,
        token: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning an email verification").await?;
        let spent: Option<(Uuid,)> = tx
            .optional(
                &spend_token(d, TokenPurpose::EmailVerification, token, now),
                "spending a verification token",
            )
            .await?;
        let Some((user,)) = spent else {
            return Ok(false);
        };
        tx.run(&mark_verified(d, user, now), "marking an email verified")
            .await?;
        tx.commit("committing an email verification").await?;
        Ok(true)
    }

    async fn claim_mail(
        &self,
        only: Option<Uuid>,
        now: OffsetDateTime,
        lease_end: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let sql = claim_mail(D::KIND, only, now, lease_end, limit);
        self.conn().await?.all(&sql, "claiming mail").await
    }

    async fn mail_sent(
        &self,
        id: Uuid,
        attempt: i32,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = mail_sent(D::KIND, id, attempt, now);
        self.conn()
            .await?
            .run(&sql, "recording a sent mail")
            .await?;
        Ok(())
    }

    async fn mail_failed(
        &self,
        id: Uuid,
        attempt: i32,
        error: &str,
        retry_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = mail_failed(D::KIND, id, attempt, error, retry_at);
        self.conn()
            .await?
            .run(&sql, "recording a failed mail")
            .await?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<i64, StoreError> {
        let (depth,): (i64,) = self
            .read_one(&outbox_depth(D::KIND), "counting the outbox")
            .await?;
        Ok(depth)
    }
}
