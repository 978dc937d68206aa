-- Tasks: see the Postgres migration. Text comparison in SQLite is binary, which orders
-- `title_folded` exactly as Postgres's "C" collation does.
CREATE TABLE tasks (
    id           BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    owner_id     BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT    NOT NULL,
    title_folded TEXT    NOT NULL,
    description  TEXT,
    completed    INTEGER NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    due_date     TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    version      INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT tasks_title_length CHECK (length(title) BETWEEN 1 AND 200),
    CONSTRAINT tasks_description_length CHECK (description IS NULL OR length(description) <= 10000),
    CONSTRAINT tasks_version_positive CHECK (version >= 1)
) STRICT;
CREATE INDEX tasks_owner_created ON tasks (owner_id, created_at, id);
CREATE INDEX tasks_owner_due ON tasks (owner_id, due_date, id);
CREATE INDEX tasks_owner_title ON tasks (owner_id, title_folded, id);

CREATE TABLE idempotency_keys (
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    fingerprint   BLOB    NOT NULL,
    status_code   INTEGER,
    response_body TEXT,
    created_at    TEXT    NOT NULL,
    expires_at    TEXT    NOT NULL,
    PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_key_length CHECK (length(key) BETWEEN 1 AND 255)
) STRICT;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
