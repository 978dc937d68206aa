//! Tasks: the statements (ordinary functions returning a [`Sql`], the same text on both
//! backends) and, at the end of the file, the [`TaskRepository`] that runs them.
//!
//! A create is one transaction when it claims an idempotency key (key, task and recorded
//! answer commit together, so a duplicate racing the original waits and then replays) or
//! when it counts against `MAX_TASKS_PER_USER` (the owner is locked first). Updates and
//! deletes are one conditional statement each: the `If-Match` versions are part of the
//! `WHERE`, so the precondition is checked atomically with the write.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    IdempotencyClaim, StoreError, TaskRepository,
    db::{Db, SqlStore},
    sql::{Param, Search, Sql},
};
use crate::config::Backend;
use crate::domain::{self, CreateRefusal, Created, KeyRecord, WriteRefusal};
use crate::models::{NewTask, Precondition, SortKey, SortValue, Task, TaskPatch, TaskQuery, fold};

pub const TASK_COLUMNS: &str =
    "id, owner_id, title, description, completed, due_date, created_at, updated_at, version";

/// Inserts a task; with `max_tasks`, only while its owner has fewer (no row otherwise).
///
/// The cap reads the owner's `task_count`, which triggers keep (migration 0007), so this is
/// one statement however many tasks the owner has. Concurrent creates cannot pass the cap
/// together: on Postgres the statement locks the owner's row (`FOR NO KEY UPDATE`, which
/// does not block foreign-key checks) and a create that waited on it reads the count again
/// once it has it; on SQLite a writing statement holds the database's write lock.
pub fn insert(d: Backend, t: &NewTask, max_tasks: Option<u32>) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "INSERT INTO tasks (id, owner_id, title, title_folded, description, completed, due_date, created_at, updated_at, version) SELECT ",
    );
    sql.bind_list([
        Param::Uuid(t.id),
        Param::Uuid(t.owner_id),
        Param::Text(t.title.as_str().to_owned()),
        Param::Text(t.title.folded()),
        Param::OptText(t.description.as_ref().map(|d| d.as_str().to_owned())),
        Param::Bool(t.completed),
        Param::OptTime(t.due_date),
        Param::Time(t.now),
        Param::Time(t.now),
        Param::Int(1),
    ]);
    if let Some(max) = max_tasks {
        sql.push(" FROM users WHERE id = ")
            .bind(Param::Uuid(t.owner_id))
            .push(" AND task_count < ")
            .bind(Param::Int(i64::from(max)));
        if d.dialect().locks_rows {
            sql.push(" FOR NO KEY UPDATE");
        }
    }
    sql.push(&format!(" RETURNING {TASK_COLUMNS}"));
    sql
}

pub fn get(d: Backend, owner: Uuid, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE owner_id = "
    ))
    .bind(Param::Uuid(owner))
    .push(" AND id = ")
    .bind(Param::Uuid(id));
    sql
}

fn push_precondition(sql: &mut Sql, pre: &Precondition) {
    if let Precondition::Versions(versions) = pre {
        if versions.is_empty() {
            // An If-Match naming no usable version can match nothing.
            sql.push(" AND 1 = 0");
            return;
        }
        sql.push(" AND version IN (");
        sql.bind_list(versions.iter().map(|v| Param::Int(*v)));
        sql.push(")");
    }
}

/// One conditional statement: the precondition is checked atomically with the write.
pub fn update(
    d: Backend,
    owner: Uuid,
    id: Uuid,
    patch: &TaskPatch,
    pre: &Precondition,
    now: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE tasks SET ");
    if let Some(title) = &patch.title {
        sql.push("title = ")
            .bind(Param::Text(title.as_str().to_owned()))
            .push(", title_folded = ")
            .bind(Param::Text(title.folded()))
            .push(", ");
    }
    if let Some(description) = &patch.description {
        sql.push("description = ")
            .bind(Param::OptText(
                description.as_ref().map(|d| d.as_str().to_owned()),
            ))
            .push(", ");
    }
    if let Some(completed) = patch.completed {
        sql.push("completed = ")
            .bind(Param::Bool(completed))
            .push(", ");
    }
    if let Some(due) = patch.due_date {
        sql.push("due_date = ").bind(Param::OptTime(due)).push(", ");
    }
    sql.push("version = version + 1, updated_at = ")
        .bind(Param::Time(now))
        .push(" WHERE owner_id = ")
        .bind(Param::Uuid(owner))
        .push(" AND id = ")
        .bind(Param::Uuid(id));
    push_precondition(&mut sql, pre);
    sql.push(&format!(" RETURNING {TASK_COLUMNS}"));
    sql
}

pub fn delete(d: Backend, owner: Uuid, id: Uuid, pre: &Precondition) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM tasks WHERE owner_id = ")
        .bind(Param::Uuid(owner))
        .push(" AND id = ")
        .bind(Param::Uuid(id));
    push_precondition(&mut sql, pre);
    sql
}

pub fn exists(d: Backend, owner: Uuid, id: Uuid) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("SELECT 1 AS present FROM tasks WHERE owner_id = ")
        .bind(Param::Uuid(owner))
        .push(" AND id = ")
        .bind(Param::Uuid(id));
    sql
}

/// A page of the owner's tasks: filters, then the keyset condition, then the order.
///
/// Orders (ties always broken by id in the same direction):
/// `created_at`: by creation time; `title`: by case-folded title in byte order;
/// `due_date`: by due date, tasks without one last in both directions.
/// One page of an owner's tasks. Every shape is a bounded range scan of one index of
/// migration 0008 (the plan tests in `functions/tasks/tests/plans.rs` hold each to it):
/// the owner (and `completed`, when filtered) is an equality, the sort key and the cursor
/// a range, and the order is the index's. With `q`, the trigram index finds the matching
/// titles instead.
pub fn list(d: Backend, owner: Uuid, q: &TaskQuery) -> Sql {
    let dialect = d.dialect();
    let folded = q.search.as_deref().map(fold);
    let search = folded.as_deref().map(|term| {
        let trigrams = dialect.search == Search::Fts5Trigram && term.chars().count() >= 3;
        (term, trigrams)
    });
    let mut sql = Sql::new(d);
    // SQLite: with the trigram index, the matches lead and the owner is a filter (`+`
    // keeps it off the owner's indexes); a rare term then reads only its few matches.
    let owner_column = if matches!(search, Some((_, true))) {
        "+owner_id"
    } else {
        "owner_id"
    };
    sql.push(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE {owner_column} = "
    ))
    .bind(Param::Uuid(owner));
    if let Some(completed) = q.completed {
        sql.push(" AND completed = ").bind(Param::Bool(completed));
    }
    match search {
        None => {}
        Some((term, true)) => {
            // An FTS5 string: the term as one literal phrase (quotes doubled).
            sql.push(" AND rowid IN (SELECT rowid FROM tasks_title_trigrams WHERE tasks_title_trigrams MATCH ")
                .bind(Param::Text(format!("\"{}\"", term.replace('"', "\"\""))))
                .push(")");
        }
        Some((term, false)) if dialect.search == Search::Like => {
            let literal = term
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            sql.push(" AND title_folded LIKE ")
                .bind(Param::Text(format!("%{literal}%")));
        }
        Some((term, false)) => {
            let position = dialect.position_fn;
            sql.push(&format!(" AND {position}(title_folded, "))
                .bind(Param::Text(term.to_owned()))
                .push(") > 0");
        }
    }
    let (cmp, dir) = if q.sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let collate = dialect.binary_collation;
    let title = format!("title_folded{collate}");
    // The sort key as its index holds it, and (due dates) the key of an undated task.
    let (key, undated) = match q.sort.key {
        SortKey::CreatedAt => ("created_at", None),
        SortKey::Title => (title.as_str(), None),
        SortKey::DueDate if q.sort.descending => (dialect.due_last.0, Some(dialect.due_last.1)),
        SortKey::DueDate => (dialect.due_first.0, Some(dialect.due_first.1)),
    };
    // The due-date filters: on the sort key itself when sorting by due date (a range of
    // its index that leaves the undated tasks out), else on the column.
    let due = undated.map_or("due_date", |_| key);
    if let Some(before) = q.due_before {
        sql.push(&format!(" AND {due} < "))
            .bind(Param::Time(before));
    }
    if let Some(after) = q.due_after {
        sql.push(&format!(" AND {due} > ")).bind(Param::Time(after));
    }
    if let Some(undated) = undated.filter(|_| q.due_before.is_some() || q.due_after.is_some()) {
        let excluded = if q.sort.descending { ">" } else { "<" };
        sql.push(&format!(" AND {key} {excluded} {undated}"));
    }
    if let Some(after) = &q.after {
        // Past the cursor: the key beyond or equal to its value (the range), then ties by
        // id (a row comparison, which Postgres also uses as the range).
        let value = |sql: &mut Sql| {
            match &after.value {
                SortValue::Time(t) => sql.bind(Param::Time(*t)),
                SortValue::Text(s) => sql.bind(Param::Text(s.clone())),
                SortValue::NoDueDate => sql.push(undated.unwrap_or("NULL")),
            };
        };
        sql.push(&format!(" AND {key} {cmp}= "));
        value(&mut sql);
        sql.push(&format!(" AND ({key}, id) {cmp} ("));
        value(&mut sql);
        sql.push(", ").bind(Param::Uuid(after.id)).push(")");
    }
    sql.push(&format!(" ORDER BY {key} {dir}, id {dir} LIMIT "))
        .bind(Param::Int(i64::from(q.fetch)));
    sql
}

// --- Idempotency records -------------------------------------------------------------

/// Removes the user's expired records (lazy clean-up, no scheduler).
pub fn delete_expired_keys(d: Backend, user: Uuid, now: OffsetDateTime) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("DELETE FROM idempotency_keys WHERE user_id = ")
        .bind(Param::Uuid(user))
        .push(" AND expires_at <= ")
        .bind(Param::Time(now));
    sql
}

/// Claims the key; affects no row when it is already claimed.
pub fn claim_key(
    d: Backend,
    user: Uuid,
    key: &str,
    fingerprint: &[u8],
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, status_code, response_body, created_at, expires_at) VALUES (",
    );
    sql.bind_list([
        Param::Uuid(user),
        Param::Text(key.to_owned()),
        Param::Bytes(fingerprint.to_vec()),
    ]);
    sql.push(", NULL, NULL, ");
    sql.bind_list([Param::Time(now), Param::Time(expires_at)]);
    sql.push(") ON CONFLICT (user_id, key) DO NOTHING");
    sql
}

pub fn read_key(d: Backend, user: Uuid, key: &str) -> Sql {
    let mut sql = Sql::new(d);
    sql.push(
        "SELECT fingerprint, status_code AS status, response_body AS body FROM idempotency_keys WHERE user_id = ",
    )
    .bind(Param::Uuid(user))
    .push(" AND key = ")
    .bind(Param::Text(key.to_owned()));
    sql
}

pub fn store_response(d: Backend, user: Uuid, key: &str, status: u16, body: &str) -> Sql {
    let mut sql = Sql::new(d);
    sql.push("UPDATE idempotency_keys SET status_code = ")
        .bind(Param::Int(i64::from(status)))
        .push(", response_body = ")
        .bind(Param::Text(body.to_owned()))
        .push(" WHERE user_id = ")
        .bind(Param::Uuid(user))
        .push(" AND key = ")
        .bind(Param::Text(key.to_owned()));
    sql
}

// --- The repository ------------------------------------------------------------------

#[async_trait]
impl<D: Db> TaskRepository for SqlStore<D> {
    async fn create(
        &self,
        task: &NewTask,
        idempotency: Option<&IdempotencyClaim>,
        max_tasks: Option<u32>,
    ) -> Result<Result<Created, CreateRefusal>, StoreError> {
        let d = D::KIND;
        let refused = || {
            Ok(Err(CreateRefusal::LimitReached {
                max: max_tasks.unwrap_or_default(),
            }))
        };
        let Some(claim) = idempotency else {
            // No key to claim with it: one statement, no transaction.
            let inserted = self
                .conn()
                .await?
                .optional(&insert(d, task, max_tasks), "inserting a task")
                .await?;
            return inserted.map_or_else(refused, |created| Ok(Ok(Created::New(created))));
        };
        let mut conn = self.conn().await?;
        let mut tx = conn.begin("beginning a task insert").await?;
        // Writes first, so SQLite takes its write lock at the start.
        let expired = delete_expired_keys(d, task.owner_id, task.now);
        tx.run(&expired, "clearing expired idempotency keys")
            .await?;
        let claim_sql = claim_key(
            d,
            task.owner_id,
            &claim.key,
            &claim.fingerprint,
            task.now,
            claim.expires_at,
        );
        let claimed = tx.run(&claim_sql, "claiming an idempotency key").await? == 1;
        if !claimed {
            let record: Option<KeyRecord> = tx
                .optional(
                    &read_key(d, task.owner_id, &claim.key),
                    "reading an idempotency key",
                )
                .await?;
            tx.commit("ending an idempotent replay").await?;
            return Ok(domain::replay(&claim.fingerprint, record));
        }
        let Some(created): Option<Task> = tx
            .optional(&insert(d, task, max_tasks), "inserting a task")
            .await?
        else {
            // Dropping the transaction rolls back the key's claim too.
            return refused();
        };
        let body = serde_json::to_string(&created)
            .map_err(|_| StoreError::Unsupported("serialising a task"))?;
        let record = store_response(d, task.owner_id, &claim.key, 201, &body);
        tx.run(&record, "recording an idempotent answer").await?;
        tx.commit("committing a task insert").await?;
        Ok(Ok(Created::New(created)))
    }

    async fn get(&self, owner: Uuid, id: Uuid) -> Result<Option<Task>, StoreError> {
        self.read_optional(&get(D::KIND, owner, id), "loading a task")
            .await
    }

    async fn list(&self, owner: Uuid, query: &TaskQuery) -> Result<Vec<Task>, StoreError> {
        self.read(&list(D::KIND, owner, query), "listing tasks")
            .await
    }

    async fn update(
        &self,
        owner: Uuid,
        id: Uuid,
        patch: &TaskPatch,
        precondition: &Precondition,
        now: OffsetDateTime,
    ) -> Result<Result<Task, WriteRefusal>, StoreError> {
        let sql = update(D::KIND, owner, id, patch, precondition, now);
        // Bound first: the connection goes back to the pool before `unwritten` takes one.
        let updated: Option<Task> = self.conn().await?.optional(&sql, "updating a task").await?;
        match updated {
            Some(task) => Ok(Ok(task)),
            None => Ok(Err(self.unwritten(owner, id).await?)),
        }
    }

    async fn delete(
        &self,
        owner: Uuid,
        id: Uuid,
        precondition: &Precondition,
    ) -> Result<Result<(), WriteRefusal>, StoreError> {
        let sql = delete(D::KIND, owner, id, precondition);
        if self.conn().await?.run(&sql, "deleting a task").await? == 1 {
            Ok(Ok(()))
        } else {
            Ok(Err(self.unwritten(owner, id).await?))
        }
    }
}

impl<D: Db> SqlStore<D> {
    /// Why a conditional write touched no row: the task is missing (or another user's), or
    /// the precondition failed.
    async fn unwritten(&self, owner: Uuid, id: Uuid) -> Result<WriteRefusal, StoreError> {
        let present: Option<(i32,)> = self
            .read_optional(&exists(D::KIND, owner, id), "checking a task exists")
            .await?;
        Ok(domain::unwritten(present.is_some()))
    }
}
