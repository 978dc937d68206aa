-- Users. Ids are UUIDs stored as 16-byte blobs; timestamps are fixed-width RFC 3339 text in
-- UTC with microseconds ('2026-11-21T10:15:00.000000Z'), written by the application, so
-- they sort as text in time order.
CREATE TABLE users (
    id            BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    email         TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'user',
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL,
    CONSTRAINT users_email_normalised CHECK (email = lower(trim(email)) AND length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_name_length CHECK (length(name) BETWEEN 1 AND 100),
    CONSTRAINT users_role_valid CHECK (role IN ('user', 'admin'))
) STRICT;

CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at_id ON users (created_at, id);
CREATE INDEX users_enabled_admins ON users (id) WHERE role = 'admin' AND disabled = 0;
