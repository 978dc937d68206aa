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

use super::sql::{Dialect, Param, Sql};
use crate::models::{AuditAction, Role, UserChange, UserQuery};

pub const USER_COLUMNS: &str =
    "id, email, name, role, disabled, created_at, updated_at, password_hash, session_epoch";

/// The ids of enabled admins, locked until the transaction ends.
pub fn lock_enabled_admins(d: Dialect) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT id FROM users WHERE role = ")
        .bind(Param::Text(Role::Admin.as_str().to_owned()))
        .push(" AND disabled = ")
        .bind(Param::Bool(false));
    if d == Dialect::Postgres {
        sql.push(" ORDER BY id FOR UPDATE");
    }
    sql
}

pub fn user_for_update(d: Dialect, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = "))
        .bind(Param::Uuid(id));
    if d == Dialect::Postgres {
        sql.push(" FOR UPDATE");
    }
    sql
}

pub fn update_user(d: Dialect, id: Uuid, change: &UserChange, now: OffsetDateTime) -> Sql {
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
pub fn end_all_sessions(d: Dialect, user: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ")
        .bind(Param::Uuid(user));
    sql
}

pub fn delete_user(d: Dialect, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM users WHERE id = ")
        .bind(Param::Uuid(id));
    sql
}

pub fn delete_login_state(d: Dialect, email: &str) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM login_attempts WHERE email = ")
        .bind(Param::Text(email.to_owned()));
    sql
}

pub fn insert_audit(
    d: Dialect,
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

pub fn list_users(d: Dialect, q: &UserQuery) -> Sql {
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

pub fn user_detail(d: Dialect, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {USER_COLUMNS}, (SELECT count(*) FROM tasks WHERE owner_id = users.id) AS task_count FROM users WHERE id = "
    ))
    .bind(Param::Uuid(id));
    sql
}

pub fn stats(d: Dialect) -> Sql {
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

pub fn list_audit(d: Dialect, before: Option<Uuid>, fetch: u32) -> Sql {
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
            ) -> Result<$crate::store::AdminOutcome<$crate::models::User>, $crate::store::StoreError>
            {
                use $crate::models::{AuditAction, Role};
                use $crate::store::{AdminOutcome, SqlxResultExt as _, admin};
                let mut tx = self.begin_write().await.context("beginning an admin change")?;
                let admins = Self::lock_enabled_admins(&mut tx).await?;
                if let Some(actor) = actor {
                    if !admins.contains(&actor) {
                        return Ok(AdminOutcome::Forbidden);
                    }
                }
                let Some(row) = $query(&admin::user_for_update($dialect, target))
                    .fetch_optional(&mut *tx)
                    .await
                    .context("loading the target user")?
                else {
                    return Ok(AdminOutcome::NotFound);
                };
                let before = $user_from_row(&row).context("reading the target user")?;
                let role_changes = change.role.filter(|r| *r != before.role);
                let disabled_changes = change.disabled.filter(|d| *d != before.disabled);
                let enabled_admin = before.role == Role::Admin && !before.disabled;
                let loses_admin =
                    role_changes == Some(Role::User) || disabled_changes == Some(true);
                if enabled_admin && loses_admin && admins.len() <= 1 {
                    return Ok(AdminOutcome::LastAdmin);
                }
                if role_changes.is_none() && disabled_changes.is_none() {
                    tx.commit().await.context("ending a no-op admin change")?;
                    return Ok(AdminOutcome::Done(before));
                }
                let effective = $crate::models::UserChange {
                    role: role_changes,
                    disabled: disabled_changes,
                };
                let row = $query(&admin::update_user($dialect, target, &effective, now))
                    .fetch_one(&mut *tx)
                    .await
                    .context("updating a user")?;
                let after = $user_from_row(&row).context("reading the updated user")?;
                if let Some(role) = role_changes {
                    let details = serde_json::json!({"from": before.role, "to": role});
                    $query(&admin::insert_audit($dialect, actor, AuditAction::RoleChanged, target, &details, now))
                        .execute(&mut *tx)
                        .await
                        .context("auditing a role change")?;
                }
                if let Some(disabled) = disabled_changes {
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
                Ok(AdminOutcome::Done(after))
            }

            async fn delete_user(
                &self,
                actor: uuid::Uuid,
                target: uuid::Uuid,
                now: time::OffsetDateTime,
            ) -> Result<$crate::store::AdminOutcome<()>, $crate::store::StoreError> {
                use $crate::models::{AuditAction, Role};
                use $crate::store::{AdminOutcome, SqlxResultExt as _, admin};
                let mut tx = self.begin_write().await.context("beginning a user deletion")?;
                let admins = Self::lock_enabled_admins(&mut tx).await?;
                if !admins.contains(&actor) {
                    return Ok(AdminOutcome::Forbidden);
                }
                if actor == target {
                    return Ok(AdminOutcome::SelfDeletion);
                }
                let Some(row) = $query(&admin::user_for_update($dialect, target))
                    .fetch_optional(&mut *tx)
                    .await
                    .context("loading the target user")?
                else {
                    return Ok(AdminOutcome::NotFound);
                };
                let user = $user_from_row(&row).context("reading the target user")?;
                if user.role == Role::Admin && !user.disabled && admins.len() <= 1 {
                    return Ok(AdminOutcome::LastAdmin);
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
                Ok(AdminOutcome::Done(()))
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
