-- Repairs 0005_sessions.sql as it was at f90c324, whose text had this checksum:
-- checksum: ab39d782f5ed84bfbac1335f70cebc4a29b20539cde60cb2e67db78592eb4b59501470098f9d6f8d242d3fd8fbc2cab3
--
-- That text gave sessions no stored expiry and indexed them by creation, and rebuilt
-- refresh_tokens with a foreign key to sessions and without `revoked_at`. Today's text
-- stores `expires_at`, and keeps refresh tokens as 0002 made them (expand only). SQLite can
-- neither drop a foreign key nor add a NOT NULL column without a default, so both tables
-- are rebuilt, with today's definitions: refresh_tokens first, so that dropping the old
-- sessions table cascades to nothing.
CREATE TABLE refresh_tokens_repaired (
    id          BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL,
    parent_id   BLOB REFERENCES refresh_tokens_repaired (id) ON DELETE SET NULL,
    token_hash  BLOB NOT NULL CHECK (length(token_hash) = 32),
    issued_at   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    spent_at    TEXT,
    revoked_at  TEXT,
    CONSTRAINT refresh_tokens_expiry_after_issue CHECK (expires_at > issued_at)
) STRICT;
INSERT INTO refresh_tokens_repaired (id, user_id, family_id, parent_id, token_hash, issued_at, expires_at, spent_at)
SELECT id, user_id, family_id, parent_id, token_hash, issued_at, expires_at, spent_at FROM refresh_tokens;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_repaired RENAME TO refresh_tokens;
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_parent ON refresh_tokens (parent_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- Sessions get a full default age from the repair on, as today's 0005 gives the sessions it
-- makes from refresh-token families: nobody is signed out by the repair itself.
CREATE TABLE sessions_repaired (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch      INTEGER NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    revoked_at TEXT,
    CONSTRAINT sessions_expiry_after_start CHECK (expires_at > created_at)
) STRICT;
INSERT INTO sessions_repaired (id, user_id, epoch, created_at, expires_at, revoked_at)
SELECT id, user_id, epoch, created_at,
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '+30 days'), revoked_at
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_repaired RENAME TO sessions;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
