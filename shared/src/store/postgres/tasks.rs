//! Tasks on Postgres: binding and row decoding; the statements and flows are shared
//! (`store::tasks`).

use sqlx::{
    Postgres, Row as _,
    postgres::{PgArguments, PgRow},
    query::Query,
};

use super::PgStore;
use crate::{
    models::Task,
    store::sql::{Dialect, Param, Sql},
};

/// Builds a query from shared SQL, binding each value in Postgres's own type.
pub(super) fn query(sql: &Sql) -> Query<'_, Postgres, PgArguments> {
    sql.params
        .iter()
        .fold(sqlx::query(&sql.text), |q, p| match p {
            Param::Uuid(v) => q.bind(*v),
            Param::Text(v) => q.bind(v.clone()),
            Param::OptText(v) => q.bind(v.clone()),
            Param::Time(v) => q.bind(*v),
            Param::OptTime(v) => q.bind(*v),
            Param::Bool(v) => q.bind(*v),
            Param::Int(v) => q.bind(*v),
            Param::Bytes(v) => q.bind(v.clone()),
        })
}

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

crate::store::tasks::task_repository!(PgStore, Dialect::Postgres, query, task_from_row);
