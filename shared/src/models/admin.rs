//! What the admin function reads and changes.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Role, User};

/// A change an admin asks for; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Case-folded substring of email or name.
    pub search: Option<String>,
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Where the previous page ended: (created_at, id).
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub fetch: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub user: User,
    pub task_count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Stats {
    pub users: i64,
    pub admins: i64,
    pub disabled_users: i64,
    pub tasks: i64,
    pub completed_tasks: i64,
}

/// The audited admin actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    RoleChanged,
    Disabled,
    Enabled,
    Deleted,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoleChanged => "user.role_changed",
            Self::Disabled => "user.disabled",
            Self::Enabled => "user.enabled",
            Self::Deleted => "user.deleted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    /// `null` when the change came from the command line.
    #[schema(required = true)]
    pub actor_id: Option<Uuid>,
    /// `user.role_changed`, `user.disabled`, `user.enabled` or `user.deleted`.
    pub action: String,
    pub target_id: Uuid,
    /// What changed, e.g. `{"from": "user", "to": "admin"}`.
    #[schema(value_type = Object)]
    #[sqlx(try_from = "JsonText")]
    pub details: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// JSON stored as text (the audit log's `details`), read back with
/// `#[sqlx(try_from = "JsonText")]`.
#[derive(Debug, sqlx::Type)]
#[sqlx(transparent)]
pub struct JsonText(String);

impl TryFrom<JsonText> for serde_json::Value {
    type Error = serde_json::Error;

    fn try_from(text: JsonText) -> Result<Self, Self::Error> {
        serde_json::from_str(&text.0)
    }
}
