//! Tasks on SQLite: binding and row decoding; the statements and flows are shared
//! (`store::tasks`).

use sqlx::{
    Row as _, Sqlite,
    query::Query,
    sqlite::{SqliteArguments, SqliteRow},
};

use super::{SqliteStore, parse_ts, ts};
use crate::{
    models::Task,
    store::sql::{Dialect, Param, Sql},
};

/// Builds a query from shared SQL; timestamps become fixed-width text.
pub(super) fn query(sql: &Sql) -> Query<'_, Sqlite, SqliteArguments<'_>> {
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
            Param::OptText(v) => q.bind(v.clone()),
            Param::Time(v) => q.bind(ts(*v)),
            Param::OptTime(v) => q.bind(v.map(ts)),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.clone()),
        })
}

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

crate::store::tasks::task_repository!(SqliteStore, Dialect::Sqlite, query, task_from_row);
