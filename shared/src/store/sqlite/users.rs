//! Users, refresh tokens and login throttling on SQLite: row decoding; statements and
//! flows are shared (`store::accounts`).

use sqlx::{Row as _, sqlite::SqliteRow};
use time::OffsetDateTime;

use super::{SqliteStore, parse_ts};
use crate::{
    config::Backend,
    models::{Role, User},
    store::Credentials,
};

pub(super) fn user_from_row(row: &SqliteRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: Role::parse(&role).map_err(|e| sqlx::Error::Decode(e.into()))?,
        disabled: row.try_get("disabled")?,
        created_at: parse_ts(row.try_get("created_at")?)?,
        updated_at: parse_ts(row.try_get("updated_at")?)?,
    })
}

fn credentials_from_row(row: &SqliteRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: user_from_row(row)?,
        password_hash: row.try_get("password_hash")?,
        session_epoch: row.try_get("session_epoch")?,
    })
}

fn time_of(row: &SqliteRow, column: &str) -> Result<OffsetDateTime, sqlx::Error> {
    parse_ts(row.try_get(column)?)
}

crate::store::accounts::account_repository!(
    SqliteStore,
    Backend::Sqlite,
    super::query,
    user_from_row,
    credentials_from_row,
    time_of
);
