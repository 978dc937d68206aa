-- Sessions and throttles that hold under concurrency: see the Postgres migration for the
-- model. Same shape, SQLite types.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

CREATE TABLE sessions (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    revoked_at TEXT,
    CONSTRAINT sessions_expiry_after_start CHECK (expires_at > created_at)
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

INSERT INTO sessions (id, user_id, epoch, created_at, expires_at, revoked_at)
SELECT family_id, user_id, 0, min(issued_at),
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '+30 days'), max(revoked_at)
FROM refresh_tokens
GROUP BY family_id, user_id;

CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX login_attempts_window_start ON login_attempts (window_start);

ALTER TABLE login_attempts ADD COLUMN allowed INTEGER NOT NULL DEFAULT 1 CHECK (allowed IN (0, 1));

CREATE TABLE client_throttle (
    client  TEXT    PRIMARY KEY NOT NULL,
    tat_us  INTEGER NOT NULL,
    allowed INTEGER NOT NULL CHECK (allowed IN (0, 1))
) STRICT;
CREATE INDEX client_throttle_tat ON client_throttle (tat_us);
