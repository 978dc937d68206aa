-- Refresh tokens: see the Postgres migration for the model. Same shape, SQLite types.
CREATE TABLE refresh_tokens (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    parent_id   BLOB REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    spent_at    TEXT,
    revoked_at  TEXT,
    CONSTRAINT refresh_tokens_expiry_after_issue CHECK (expires_at > issued_at)
) STRICT;
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);

CREATE TABLE login_attempts (
    email        TEXT    PRIMARY KEY NOT NULL,
    window_start TEXT    NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures >= 0)
) STRICT;
