-- Sessions and throttles that hold under concurrency (auth hardening).
--
-- A session is one login: its refresh tokens form a family whose id is the session id,
-- and every access token carries it (`sid`). A session is live while it is not revoked
-- (logout, refresh-token reuse) and its epoch equals its user's `session_epoch`. A
-- password change or a disable bumps the user's epoch, which ends every session of the
-- user in one row write: a session inserted by a login that raced the change carries the
-- epoch that login read, so it is dead on arrival whatever the commit order.
ALTER TABLE users ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0;

CREATE TABLE sessions (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch      bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_created_at ON sessions (created_at);

-- Every existing family becomes a session; a family with a revoked token was revoked whole.
INSERT INTO sessions (id, user_id, epoch, created_at, revoked_at)
SELECT family_id, user_id, 0, min(issued_at), max(revoked_at)
FROM refresh_tokens
GROUP BY family_id, user_id;

ALTER TABLE refresh_tokens
    ADD CONSTRAINT refresh_tokens_session_fkey
    FOREIGN KEY (family_id) REFERENCES sessions (id) ON DELETE CASCADE;
-- Revocation is the session's now.
ALTER TABLE refresh_tokens DROP COLUMN revoked_at;
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE INDEX login_attempts_window_start ON login_attempts (window_start);

-- Per-client limit of the endpoints that hash (login, register, password change): a GCRA
-- bucket per client address, shared by every instance. `tat_us` is the theoretical arrival
-- time in microseconds since the Unix epoch; `allowed` is the last decision, so one upsert
-- both decides and reports it.
CREATE TABLE client_throttle (
    client  text    PRIMARY KEY,
    tat_us  bigint  NOT NULL,
    allowed integer NOT NULL CHECK (allowed IN (0, 1))
);
CREATE INDEX client_throttle_tat ON client_throttle (tat_us);

-- The login budget's last decision, so the reserving upsert can report it (see
-- `store::accounts::reserve_attempt`): a refused reservation counts nothing.
ALTER TABLE login_attempts ADD COLUMN allowed integer NOT NULL DEFAULT 1 CHECK (allowed IN (0, 1));
