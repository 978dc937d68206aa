-- Sessions and throttles that hold under concurrency: see the Postgres migration for the
-- model. Same shape, SQLite types; refresh_tokens is rebuilt because SQLite cannot add a
-- foreign key to an existing table.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sessions (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    revoked_at TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_created_at ON sessions (created_at);

INSERT INTO sessions (id, user_id, epoch, created_at, revoked_at)
SELECT family_id, user_id, 0, min(issued_at), max(revoked_at)
FROM refresh_tokens
GROUP BY family_id, user_id;

-- The parent reference names the new table, which the rename below carries over.
CREATE TABLE refresh_tokens_new (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    parent_id   BLOB REFERENCES refresh_tokens_new (id) ON DELETE SET NULL,
    token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    spent_at    TEXT,
    CONSTRAINT refresh_tokens_expiry_after_issue CHECK (expires_at > issued_at)
) STRICT;
INSERT INTO refresh_tokens_new (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at, spent_at)
SELECT id, user_id, family_id, parent_id, token_hash, issued_at, expires_at, spent_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_new RENAME TO refresh_tokens;
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE INDEX login_attempts_window_start ON login_attempts (window_start);

CREATE TABLE client_throttle (
    client  TEXT    PRIMARY KEY NOT NULL,
    tat_us  INTEGER NOT NULL,
    allowed INTEGER NOT NULL CHECK (allowed IN (0, 1))
) STRICT;
CREATE INDEX client_throttle_tat ON client_throttle (tat_us);

ALTER TABLE login_attempts ADD COLUMN allowed INTEGER NOT NULL DEFAULT 1 CHECK (allowed IN (0, 1));
