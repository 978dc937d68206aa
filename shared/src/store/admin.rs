//! Admin: the statements (ordinary functions returning a [`Sql`], the same text on both
//! backends) and, after them, the [`AdminRepository`] that runs them.
//!
//! The last-admin guard is decided inside the writing transaction: it locks the enabled
//! admins (`FOR UPDATE` on Postgres; on SQLite the transaction holds the database's write
//! lock from `BEGIN IMMEDIATE`), re-checks that the actor is still one of them, and refuses
//! a change that would leave none. Two admins demoting each other at once are serialised,
//! and the second finds itself no longer an admin or the last one.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    AdminRepository, StoreError,
    db::{Db, SqlStore, Tx},
    sql::{Param, Sql},
};
use crate::config::Backend;
use crate::domain::{self, AdminRefusal};
use crate::models::{
    AuditAction, AuditEntry, Role, Stats, User, UserChange, UserDetail, UserQuery,
};

/// The columns of a [`User`](crate::models::User): what every user a request returns is read
/// with. The password hash is read only for credential checks ([`CREDENTIAL_COLUMNS`]).
pub const USER_COLUMNS: &str =
    "id, email, name, role, disabled, email_verified, created_at, updated_at";

/// A user with their password hash and session epoch, for credential checks only.
pub const CREDENTIAL_COLUMNS: &str = "id, email, name, role, disabled, email_verified, created_at, updated_at, password_hash, session_epoch";

/// The ids of enabled admins, locked until the transaction ends.
pub fn lock_enabled_admins(d: Backend) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT id FROM users WHERE role = ")
        .bind(Param::Text(Role::Admin.as_str().to_owned()))
        .push(" AND disabled = ")
        .bind(Param::Bool(false));
    if sql.dialect.locks_rows {
        sql.push(" ORDER BY id FOR UPDATE");
    }
    sql
}

pub fn user_for_update(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "))
        .bind(Param::Uuid(id));
    if sql.dialect.locks_rows {
        sql.push(" FOR UPDATE");
    }
    sql
}

pub fn update_user(d: Backend, id: Uuid, change: &UserChange, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET ");
    if let Some(role) = change.role {
        sql.push("role = ")
            .bind(Param::Text(role.as_str().to_owned()))
            .push(", ");
    }
    if let Some(disabled) = change.disabled {
        sql.push("disabled = ")
            .bind(Param::Bool(disabled))
            .push(", ");
    }
    sql.push("updated_at = ")
        .bind(Param::Time(now))
        .push(" WHERE id = ")
        .bind(Param::Uuid(id))
        .push(&format!(" RETURNING {USER_COLUMNS}"));
    sql
}

/// Ends every session of `user` (their refresh tokens and access tokens stop working).
pub fn end_all_sessions(d: Backend, user: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ")
        .bind(Param::Uuid(user));
    sql
}

pub fn delete_user(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM users WHERE id = ")
        .bind(Param::Uuid(id));
    sql
}

pub fn delete_tasks_of(d: Backend, owner: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM tasks WHERE owner_id = ")
        .bind(Param::Uuid(owner));
    sql
}

pub fn delete_login_state(d: Backend, email: &str) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM login_attempts WHERE email = ")
        .bind(Param::Text(email.to_owned()));
    sql
}

pub fn insert_audit(
    d: Backend,
    actor: Option<Uuid>,
    action: AuditAction,
    target: Uuid,
    details: &serde_json::Value,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "INSERT INTO audit_log (id, actor_id, action, target_id, details, created_at) VALUES (",
    );
    sql.bind_list([
        Param::Uuid(Uuid::now_v7()),
        Param::OptUuid(actor),
        Param::Text(action.as_str().to_owned()),
        Param::Uuid(target),
        Param::Text(details.to_string()),
        Param::Time(now),
    ]);
    sql.push(")");
    sql
}

pub fn list_users(d: Backend, q: &UserQuery) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
    if let Some(search) = &q.search {
        let position = sql.dialect.position_fn;
        sql.push(&format!(" AND ({position}(email, "))
            .bind(Param::Text(search.clone()))
            .push(&format!(") > 0 OR {position}(name_folded, "))
            .bind(Param::Text(search.clone()))
            .push(") > 0)");
    }
    if let Some(role) = q.role {
        sql.push(" AND role = ")
            .bind(Param::Text(role.as_str().to_owned()));
    }
    if let Some(disabled) = q.disabled {
        sql.push(" AND disabled = ").bind(Param::Bool(disabled));
    }
    if let Some((created_at, id)) = q.after {
        sql.push(" AND (created_at > ")
            .bind(Param::Time(created_at))
            .push(" OR (created_at = ")
            .bind(Param::Time(created_at))
            .push(" AND id > ")
            .bind(Param::Uuid(id))
            .push("))");
    }
    sql.push(" ORDER BY created_at ASC, id ASC LIMIT ")
        .bind(Param::Int(i64::from(q.fetch)));
    sql
}

pub fn user_detail(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {USER_COLUMNS}, (SELECT count(*) FROM tasks WHERE owner_id = users.id) AS task_count FROM users WHERE id = "
    ))
    .bind(Param::Uuid(id));
    sql
}

pub fn stats(d: Backend) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM users WHERE role = ")
        .bind(Param::Text(Role::Admin.as_str().to_owned()))
        .push(") AS admins, (SELECT count(*) FROM users WHERE disabled = ")
        .bind(Param::Bool(true))
        .push(") AS disabled_users, (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM tasks WHERE completed = ")
        .bind(Param::Bool(true))
        .push(") AS completed_tasks");
    sql
}

pub fn list_audit(d: Backend, before: Option<Uuid>, fetch: u32) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT id, actor_id, action, target_id, details, created_at FROM audit_log");
    if let Some(id) = before {
        sql.push(" WHERE id < ").bind(Param::Uuid(id));
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .bind(Param::Int(i64::from(fetch)));
    sql
}

// --- The repository ------------------------------------------------------------------

#[async_trait]
impl<D: Db> AdminRepository for SqlStore<D> {
    async fn change_user(
        &self,
        actor: Option<Uuid>,
        target: Uuid,
        change: &UserChange,
        now: OffsetDateTime,
    ) -> Result<Result<User, AdminRefusal>, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning an admin change").await?;
        let (admins, before) = match lock_target(&mut tx, actor, target).await? {
            Ok(locked) => locked,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let effective = match domain::plan_user_change(&before, change, &admins) {
            Err(refusal) => return Ok(Err(refusal)),
            Ok(None) => {
                tx.commit("ending a no-op admin change").await?;
                return Ok(Ok(before));
            }
            Ok(Some(effective)) => effective,
        };
        let after: User = tx
            .one(&update_user(d, target, &effective, now), "updating a user")
            .await?;
        if let Some(role) = effective.role {
            let details = serde_json::json!({"from": before.role, "to": role});
            let audit = insert_audit(d, actor, AuditAction::RoleChanged, target, &details, now);
            tx.run(&audit, "auditing a role change").await?;
        }
        if let Some(disabled) = effective.disabled {
            let action = if disabled {
                tx.run(
                    &end_all_sessions(d, target),
                    "ending a disabled user's sessions",
                )
                .await?;
                AuditAction::Disabled
            } else {
                AuditAction::Enabled
            };
            let audit = insert_audit(d, actor, action, target, &serde_json::json!({}), now);
            tx.run(&audit, "auditing a disable or enable").await?;
        }
        tx.commit("committing an admin change").await?;
        Ok(Ok(after))
    }

    async fn delete_user(
        &self,
        actor: Uuid,
        target: Uuid,
        now: OffsetDateTime,
    ) -> Result<Result<(), AdminRefusal>, StoreError> {
        let d = D::KIND;
        let mut conn = self.conn().await?;
        let mut tx = conn.begin_write("beginning a user deletion").await?;
        // The user's tasks go first, so this takes the task rows before the user's row, in
        // the order a task's own delete does (its row, then the owner's count): the other
        // order deadlocks with a concurrent task delete on Postgres. A refusal below rolls
        // the tasks back with the rest.
        tx.run(&delete_tasks_of(d, target), "deleting a user's tasks")
            .await?;
        let (admins, user) = match lock_target(&mut tx, Some(actor), target).await? {
            Ok(locked) => locked,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if let Err(refusal) = domain::check_deletion(actor, &user, &admins) {
            return Ok(Err(refusal));
        }
        // Refresh tokens and idempotency records go by ON DELETE CASCADE.
        tx.run(&delete_user(d, target), "deleting a user").await?;
        tx.run(
            &delete_login_state(d, &user.email),
            "deleting a user's login state",
        )
        .await?;
        let details = serde_json::json!({"email": user.email, "role": user.role});
        let audit = insert_audit(d, Some(actor), AuditAction::Deleted, target, &details, now);
        tx.run(&audit, "auditing a deletion").await?;
        tx.commit("committing a user deletion").await?;
        Ok(Ok(()))
    }

    async fn list_users(&self, query: &UserQuery) -> Result<Vec<User>, StoreError> {
        self.read(&list_users(D::KIND, query), "listing users")
            .await
    }

    async fn user_detail(&self, id: Uuid) -> Result<Option<UserDetail>, StoreError> {
        self.read_optional(&user_detail(D::KIND, id), "loading a user's detail")
            .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.read_one(&stats(D::KIND), "counting for stats").await
    }

    async fn list_audit(
        &self,
        before: Option<Uuid>,
        fetch: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(&list_audit(D::KIND, before, fetch), "listing the audit log")
            .await
    }
}

/// The first steps of every admin change, in its transaction: lock the enabled admins (the
/// set the last-admin guard decides against, held until `tx` ends), check that `actor` is
/// still one of them, and load and lock the target user.
async fn lock_target<D: Db>(
    tx: &mut Tx<'_, D>,
    actor: Option<Uuid>,
    target: Uuid,
) -> Result<Result<(Vec<Uuid>, User), AdminRefusal>, StoreError> {
    let ids: Vec<(Uuid,)> = tx
        .all(&lock_enabled_admins(D::KIND), "locking the enabled admins")
        .await?;
    let admins: Vec<Uuid> = ids.into_iter().map(|(id,)| id).collect();
    if let Err(refusal) = domain::admit_actor(actor, &admins) {
        return Ok(Err(refusal));
    }
    let user: Option<User> = tx
        .optional(&user_for_update(D::KIND, target), "loading the target user")
        .await?;
    Ok(user
        .map(|user| (admins, user))
        .ok_or(AdminRefusal::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::accounts;

    /// Every statement whose rows become a `User` (admin lists and details, the bearer check,
    /// a user by id) leaves the password hash in the database; only the credential checks
    /// read it.
    #[test]
    fn only_credential_checks_read_the_password_hash() {
        let id = Uuid::now_v7();
        for d in [Backend::Postgres, Backend::Sqlite] {
            let query = UserQuery {
                search: Some("a".into()),
                role: Some(Role::User),
                disabled: Some(false),
                after: Some((crate::models::now(), id)),
                fetch: 10,
            };
            let without = [
                list_users(d, &query),
                user_detail(d, id),
                user_for_update(d, id),
                accounts::user_by_id(d, id),
                accounts::user_for_token(d, id, Some(id)),
                accounts::user_for_token(d, id, None),
            ];
            for sql in without {
                assert!(!sql.text.contains("password_hash"), "{}", sql.text);
            }
            let email = crate::models::Email::parse("a@example.com").unwrap();
            for sql in [
                accounts::credentials_by_id(d, id),
                accounts::credentials_by_email(d, &email),
            ] {
                assert!(sql.text.contains("password_hash"), "{}", sql.text);
            }
        }
    }
}
