-- See the Postgres migration.
ALTER TABLE users ADD COLUMN name_folded TEXT NOT NULL DEFAULT '';
UPDATE users SET name_folded = lower(name);

CREATE TABLE audit_log (
    id         BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    actor_id   BLOB,
    action     TEXT NOT NULL,
    target_id  BLOB NOT NULL,
    details    TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    CONSTRAINT audit_log_action_valid CHECK (
        action IN ('user.role_changed', 'user.disabled', 'user.enabled', 'user.deleted')
    )
) STRICT;
CREATE INDEX audit_log_target ON audit_log (target_id);
