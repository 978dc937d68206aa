//! Tasks on SQLite: binding and row decoding; the statements and flows are shared
//! (`store::tasks`).

use sqlx::{Row as _, sqlite::SqliteRow};

use super::{SqliteStore, parse_ts};
use crate::{config::Backend, models::Task};

fn task_from_row(row: &SqliteRow) -> Result<Task, sqlx::Error> {
    let due: Option<String> = row.try_get("due_date")?;
    Ok(Task {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        completed: row.try_get("completed")?,
        due_date: due.as_deref().map(parse_ts).transpose()?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
    })
}

crate::store::tasks::task_repository!(SqliteStore, Backend::Sqlite, super::query, task_from_row);
