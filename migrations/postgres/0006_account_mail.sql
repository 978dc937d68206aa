-- Account recovery and verified emails: one-use tokens mailed to the account's address,
-- and the mail itself, queued in the transaction that issues its token (an outbox), so a
-- crash between commit and delivery loses nothing.
--
-- Expand only: the previous release neither reads nor writes these, and `email_verified`
-- defaults to false for every existing account.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- At most one live token per user and purpose: issuing a new one replaces the row (the
-- conditional upsert in `store::mail`), so only the newest mailed token works. Only the
-- token's SHA-256 is stored.
CREATE TABLE account_tokens (
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text        NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    token_hash bytea       NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, purpose),
    CONSTRAINT account_tokens_expiry_after_issue CHECK (expires_at > created_at)
);
CREATE UNIQUE INDEX account_tokens_hash_key ON account_tokens (token_hash);
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- How much mail an address has been sent: at most one a minute and five an hour, decided
-- by one conditional upsert. Keyed by the address as typed (normalised): a reset request
-- takes from it whether or not the address has an account.
CREATE TABLE mail_throttle (
    email        text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    sent         integer     NOT NULL CHECK (sent >= 0),
    last_sent_at timestamptz NOT NULL,
    allowed      integer     NOT NULL CHECK (allowed IN (0, 1))
);
CREATE INDEX mail_throttle_window_start ON mail_throttle (window_start);

-- Mail waiting to be delivered. A sender claims a row by moving `next_attempt_at` past
-- its attempt, so concurrent senders never take the same message at once; a sent row
-- keeps no body.
CREATE TABLE mail_outbox (
    id              uuid        PRIMARY KEY,
    recipient       text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX mail_outbox_sent_at ON mail_outbox (sent_at) WHERE sent_at IS NOT NULL;
