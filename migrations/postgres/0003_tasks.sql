-- Tasks, owned by one user each. `title_folded` is the title case-folded by the
-- application: case-insensitive search and title sorting use it, identically on both
-- backends. `version` is bumped by every change and checked by If-Match.
CREATE TABLE tasks (
    id           uuid        PRIMARY KEY,
    owner_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        text        NOT NULL,
    title_folded text        NOT NULL,
    description  text,
    completed    boolean     NOT NULL DEFAULT false,
    due_date     timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    version      bigint      NOT NULL DEFAULT 1,
    CONSTRAINT tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT tasks_description_length CHECK (description IS NULL OR char_length(description) <= 10000),
    CONSTRAINT tasks_version_positive CHECK (version >= 1)
);
-- Keyset pagination: owner first, then the sort key, then id, for every sort order.
CREATE INDEX tasks_owner_created ON tasks (owner_id, created_at, id);
CREATE INDEX tasks_owner_due ON tasks (owner_id, due_date, id);
CREATE INDEX tasks_owner_title ON tasks (owner_id, title_folded COLLATE "C", id);

-- Idempotent creates: one record per (user, key) with the request's fingerprint and the
-- response that was sent, kept for 24 hours.
CREATE TABLE idempotency_keys (
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key           text        NOT NULL,
    fingerprint   bytea       NOT NULL,
    status_code   bigint,
    response_body text,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (user_id, key),
    CONSTRAINT idempotency_key_length CHECK (char_length(key) BETWEEN 1 AND 255)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
