//! Admin on SQLite: audit row decoding; statements and flows are shared (`store::admin`).

use sqlx::{Row as _, sqlite::SqliteRow};

use super::{SqliteStore, parse_ts, users::user_from_row};
use crate::{config::Backend, models::AuditEntry};

fn audit_from_row(row: &SqliteRow) -> Result<AuditEntry, sqlx::Error> {
    let details: String = row.try_get("details")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        actor_id: row.try_get("actor_id")?,
        action: row.try_get("action")?,
        target_id: row.try_get("target_id")?,
        details: serde_json::from_str(&details).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: parse_ts(row.try_get("created_at")?)?,
    })
}

crate::store::admin::admin_repository!(
    SqliteStore,
    sqlx::Sqlite,
    Backend::Sqlite,
    super::query,
    user_from_row,
    audit_from_row
);
