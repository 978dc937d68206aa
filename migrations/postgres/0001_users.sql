-- Users. Emails are normalised (trimmed, lower-cased) by the application before they get
-- here; the check constraint makes sure nothing else slips in, so the plain unique index
-- is a case-insensitive one in effect.
CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    name          text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL DEFAULT 'user',
    disabled      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)) AND char_length(email) BETWEEN 3 AND 254),
    CONSTRAINT users_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT users_role_valid CHECK (role IN ('user', 'admin'))
);

CREATE UNIQUE INDEX users_email_key ON users (email);
-- Serves the admin listing (keyset on created_at, id) and the last-admin count.
CREATE INDEX users_created_at_id ON users (created_at, id);
CREATE INDEX users_enabled_admins ON users (id) WHERE role = 'admin' AND NOT disabled;
