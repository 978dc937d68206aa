-- Account recovery and verified emails: see the Postgres migration. Same shape, SQLite
-- types.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1));

CREATE TABLE account_tokens (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    token_hash BLOB NOT NULL CHECK (length(token_hash) = 32),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    PRIMARY KEY (user_id, purpose),
    CONSTRAINT account_tokens_expiry_after_issue CHECK (expires_at > created_at)
) STRICT;
CREATE UNIQUE INDEX account_tokens_hash_key ON account_tokens (token_hash);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

CREATE TABLE mail_throttle (
    email        TEXT    PRIMARY KEY NOT NULL,
    window_start TEXT    NOT NULL,
    sent         INTEGER NOT NULL CHECK (sent >= 0),
    last_sent_at TEXT    NOT NULL,
    allowed      INTEGER NOT NULL CHECK (allowed IN (0, 1))
) STRICT;
CREATE INDEX mail_throttle_window_start ON mail_throttle (window_start);

CREATE TABLE mail_outbox (
    id              BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    recipient       TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TEXT    NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
) STRICT;
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX mail_outbox_sent_at ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
