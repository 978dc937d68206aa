//! Admin statements, shared by both backends (see [`super::sql`]), and the transactional
//! flows built from them ([`admin_repository!`]).
//!
//! The last-admin guard is decided inside the writing transaction: it locks the enabled
//! admins (`FOR UPDATE` on Postgres; on SQLite the transaction holds the database's write
//! lock from `BEGIN IMMEDIATE`), re-checks that the actor is still one of them, and refuses
//! a change that would leave none. Two admins demoting each other at once are serialised,
//! and the second finds itself no longer an admin or the last one.

use time::OffsetDateTime;
use uuid::Uuid;

use super::sql::{Param, Sql};
use crate::config::Backend;
use crate::models::{AuditAction, Role, UserChange, UserQuery};

/// The columns of a [`User`](crate::models::User): what every user a request returns is read
/// with. The password hash is read only for credential checks ([`CREDENTIAL_COLUMNS`]).
pub const USER_COLUMNS: &str = "id, email, name, role, disabled, created_at, updated_at";

/// A user with their password hash and session epoch, for credential checks only.
pub const CREDENTIAL_COLUMNS: &str =
    "id, email, name, role, disabled, created_at, updated_at, password_hash, session_epoch";

/// The ids of enabled admins, locked until the transaction ends.
pub fn lock_enabled_admins(d: Backend) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT id FROM users WHERE role = ")
        .bind(Param::Text(Role::Admin.as_str().to_owned()))
        .push(" AND disabled = ")
        .bind(Param::Bool(false));
    if d == Backend::Postgres {
        sql.push(" ORDER BY id FOR UPDATE");
    }
    sql
}

pub fn user_for_update(d: Backend, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "))
        .bind(Param::Uuid(id));
    if d == Backend::Postgres {
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
        let position = sql.position_fn();
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

/// Implements [`AdminRepository`](super::AdminRepository) for a backend from the
/// statements above, for the sqlx database `$db`. `$store` must have `begin_write()`, which starts a transaction that
/// may write (SQLite: `BEGIN IMMEDIATE`, so the write lock is held from the start).
macro_rules! admin_repository {
    ($store:ty, $db:ty, $dialect:expr, $query:path, $user_from_row:path, $audit_from_row:path) => {
        #[async_trait::async_trait]
        impl $crate::store::AdminRepository for $store {
            async fn change_user(
                &self,
                actor: Option<uuid::Uuid>,
                target: uuid::Uuid,
                change: &$crate::models::UserChange,
                now: time::OffsetDateTime,
            ) -> Result<
                Result<$crate::models::User, $crate::domain::AdminRefusal>,
                $crate::store::StoreError,
            > {
                use $crate::domain::{self, AdminRefusal};
                use $crate::models::AuditAction;
                use $crate::store::{SqlxResultExt as _, admin};
                let mut tx = self.begin_write().await.context("beginning an admin change")?;
                let admins = Self::lock_enabled_admins(&mut tx).await?;
                if let Err(refusal) = domain::admit_actor(actor, &admins) {
                    return Ok(Err(refusal));
                }
                let Some(row) = $query(&admin::user_for_update($dialect, target))
                    .fetch_optional(&mut *tx)
                    .await
                    .context("loading the target user")?
                else {
                    return Ok(Err(AdminRefusal::NotFound));
                };
                let before = $user_from_row(&row).context("reading the target user")?;
                let effective = match domain::plan_user_change(&before, change, &admins) {
                    Err(refusal) => return Ok(Err(refusal)),
                    Ok(None) => {
                        tx.commit().await.context("ending a no-op admin change")?;
                        return Ok(Ok(before));
                    }
                    Ok(Some(effective)) => effective,
                };
                let row = $query(&admin::update_user($dialect, target, &effective, now))
                    .fetch_one(&mut *tx)
                    .await
                    .context("updating a user")?;
                let after = $user_from_row(&row).context("reading the updated user")?;
                if let Some(role) = effective.role {
                    let details = serde_json::json!({"from": before.role, "to": role});
                    $query(&admin::insert_audit($dialect, actor, AuditAction::RoleChanged, target, &details, now))
                        .execute(&mut *tx)
                        .await
                        .context("auditing a role change")?;
                }
                if let Some(disabled) = effective.disabled {
                    let action = if disabled { AuditAction::Disabled } else { AuditAction::Enabled };
                    if disabled {
                        $query(&admin::end_all_sessions($dialect, target))
                            .execute(&mut *tx)
                            .await
                            .context("ending a disabled user's sessions")?;
                    }
                    $query(&admin::insert_audit($dialect, actor, action, target, &serde_json::json!({}), now))
                        .execute(&mut *tx)
                        .await
                        .context("auditing a disable or enable")?;
                }
                tx.commit().await.context("committing an admin change")?;
                Ok(Ok(after))
            }

            async fn delete_user(
                &self,
                actor: uuid::Uuid,
                target: uuid::Uuid,
                now: time::OffsetDateTime,
            ) -> Result<Result<(), $crate::domain::AdminRefusal>, $crate::store::StoreError> {
                use $crate::domain::{self, AdminRefusal};
                use $crate::models::AuditAction;
                use $crate::store::{SqlxResultExt as _, admin};
                let mut tx = self.begin_write().await.context("beginning a user deletion")?;
                let admins = Self::lock_enabled_admins(&mut tx).await?;
                if let Err(refusal) = domain::admit_actor(Some(actor), &admins) {
                    return Ok(Err(refusal));
                }
                let Some(row) = $query(&admin::user_for_update($dialect, target))
                    .fetch_optional(&mut *tx)
                    .await
                    .context("loading the target user")?
                else {
                    return Ok(Err(AdminRefusal::NotFound));
                };
                let user = $user_from_row(&row).context("reading the target user")?;
                if let Err(refusal) = domain::check_deletion(actor, &user, &admins) {
                    return Ok(Err(refusal));
                }
                // Tasks, refresh tokens and idempotency records go by ON DELETE CASCADE.
                $query(&admin::delete_user($dialect, target))
                    .execute(&mut *tx)
                    .await
                    .context("deleting a user")?;
                $query(&admin::delete_login_state($dialect, &user.email))
                    .execute(&mut *tx)
                    .await
                    .context("deleting a user's login state")?;
                let details = serde_json::json!({"email": user.email, "role": user.role});
                $query(&admin::insert_audit($dialect, Some(actor), AuditAction::Deleted, target, &details, now))
                    .execute(&mut *tx)
                    .await
                    .context("auditing a deletion")?;
                tx.commit().await.context("committing a user deletion")?;
                Ok(Ok(()))
            }

            async fn list_users(
                &self,
                query: &$crate::models::UserQuery,
            ) -> Result<Vec<$crate::models::User>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, admin};
                let rows = $query(&admin::list_users($dialect, query))
                    .fetch_all(self.pool())
                    .await
                    .context("listing users")?;
                rows.iter()
                    .map($user_from_row)
                    .collect::<Result<_, _>>()
                    .context("reading users")
            }

            async fn user_detail(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<$crate::models::UserDetail>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{SqlxResultExt as _, admin};
                let Some(row) = $query(&admin::user_detail($dialect, id))
                    .fetch_optional(self.pool())
                    .await
                    .context("loading a user's detail")?
                else {
                    return Ok(None);
                };
                Ok(Some($crate::models::UserDetail {
                    user: $user_from_row(&row).context("reading a user")?,
                    task_count: row.try_get("task_count").context("reading a task count")?,
                }))
            }

            async fn stats(&self) -> Result<$crate::models::Stats, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{SqlxResultExt as _, admin};
                let row = $query(&admin::stats($dialect))
                    .fetch_one(self.pool())
                    .await
                    .context("counting for stats")?;
                let get = |name: &str| row.try_get::<i64, _>(name);
                Ok($crate::models::Stats {
                    users: get("users").context("reading stats")?,
                    admins: get("admins").context("reading stats")?,
                    disabled_users: get("disabled_users").context("reading stats")?,
                    tasks: get("tasks").context("reading stats")?,
                    completed_tasks: get("completed_tasks").context("reading stats")?,
                })
            }

            async fn list_audit(
                &self,
                before: Option<uuid::Uuid>,
                fetch: u32,
            ) -> Result<Vec<$crate::models::AuditEntry>, $crate::store::StoreError> {
                use $crate::store::{SqlxResultExt as _, admin};
                let rows = $query(&admin::list_audit($dialect, before, fetch))
                    .fetch_all(self.pool())
                    .await
                    .context("listing the audit log")?;
                rows.iter()
                    .map($audit_from_row)
                    .collect::<Result<_, _>>()
                    .context("reading audit entries")
            }
        }

        impl $store {
            /// The ids of the enabled admins, locked until `tx` ends: the last-admin guard
            /// decides against this set.
            async fn lock_enabled_admins(
                tx: &mut sqlx::Transaction<'static, $db>,
            ) -> Result<Vec<uuid::Uuid>, $crate::store::StoreError> {
                use sqlx::Row as _;
                use $crate::store::{SqlxResultExt as _, admin};
                $query(&admin::lock_enabled_admins($dialect))
                    .fetch_all(&mut **tx)
                    .await
                    .context("locking the enabled admins")?
                    .iter()
                    .map(|r| r.try_get("id"))
                    .collect::<Result<_, _>>()
                    .context("reading admin ids")
            }
        }
    };
}
pub(crate) use admin_repository;

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
