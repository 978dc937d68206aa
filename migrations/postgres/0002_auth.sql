-- Refresh tokens: opaque to clients, stored only as SHA-256 hashes. Tokens of one login
-- form a family (each rotation's token points at its parent); reuse of a spent token
-- revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   uuid        NOT NULL,
    parent_id   uuid        REFERENCES refresh_tokens (id) ON DELETE SET NULL,
    token_hash  bytea       NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    spent_at    timestamptz,
    revoked_at  timestamptz,
    CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    CONSTRAINT refresh_tokens_expiry_after_issue CHECK (expires_at > issued_at)
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);

-- Failed-login throttling per normalised email, shared by every instance. Not tied to
-- users: unknown emails are throttled too, so the throttle is no existence oracle.
CREATE TABLE login_attempts (
    email        text        PRIMARY KEY,
    window_start timestamptz NOT NULL,
    failures     integer     NOT NULL CHECK (failures >= 0)
);
