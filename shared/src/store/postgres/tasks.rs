//! Tasks on Postgres: binding and row decoding; the statements and flows are shared
//! (`store::tasks`).

use sqlx::{Row as _, postgres::PgRow};

use super::PgStore;
use crate::{config::Backend, models::Task};

fn task_from_row(row: &PgRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        completed: row.try_get("completed")?,
        due_date: row.try_get("due_date")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        version: row.try_get("version")?,
    })
}

crate::store::tasks::task_repository!(PgStore, Backend::Postgres, super::query, task_from_row);
