-- Repairs 0005_sessions.sql as it was at f90c324, whose text had this checksum:
-- checksum: f287923e0ea379981a154bbc2db342067734a3be7ad8e719be0c732218eced367dd2bcf777b6079078b3921940735b3c
--
-- That text gave sessions no stored expiry and indexed them by creation, tied refresh
-- tokens to their session with a foreign key, and dropped `refresh_tokens.revoked_at`.
-- Today's text stores `expires_at`, and keeps refresh tokens as 0002 made them (expand only).
--
-- Sessions get a full default age from the repair on, as today's 0005 gives the sessions it
-- makes from refresh-token families: nobody is signed out by the repair itself.
ALTER TABLE sessions ADD COLUMN expires_at timestamptz;
UPDATE sessions SET expires_at = greatest(now(), created_at) + interval '30 days';
ALTER TABLE sessions ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_expiry_after_start CHECK (expires_at > created_at);
DROP INDEX sessions_created_at;
CREATE INDEX sessions_expires_at ON sessions (expires_at);

ALTER TABLE refresh_tokens DROP CONSTRAINT refresh_tokens_session_fkey;
ALTER TABLE refresh_tokens ADD COLUMN revoked_at timestamptz;
