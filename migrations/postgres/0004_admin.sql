-- Admin search matches a case-folded name written by the application (as for task
-- titles), so search behaves the same on both backends. Existing rows are folded here.
ALTER TABLE users ADD COLUMN name_folded text NOT NULL DEFAULT '';
UPDATE users SET name_folded = lower(name);

-- The audit log. No foreign keys: an entry outlives the users it names.
CREATE TABLE audit_log (
    id         uuid        PRIMARY KEY,
    actor_id   uuid,
    action     text        NOT NULL,
    target_id  uuid        NOT NULL,
    details    text        NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    CONSTRAINT audit_log_action_valid CHECK (
        action IN ('user.role_changed', 'user.disabled', 'user.enabled', 'user.deleted')
    )
);
-- Ids are UUIDv7 (time-ordered): newest-first paging is by id alone.
CREATE INDEX audit_log_target ON audit_log (target_id);
