-- Sessions and throttles that hold under concurrency (auth hardening).
--
-- A session is one login: its refresh tokens form a family whose id is the session id,
-- and every access token carries it (`sid`). A session is live while it is not revoked
-- (logout, refresh-token reuse), has not reached `expires_at` (the absolute age fixed at
-- login), and its epoch equals its user's `session_epoch`. A password change or a disable
-- bumps the user's epoch, which ends every session of the user in one row write: a session
-- inserted by a login that raced the change carries the epoch that login read, so it is
-- dead on arrival whatever the commit order.
--
-- Expand only: nothing the previous release reads or writes is removed or constrained, so
-- instances of it still running during a deploy keep working. `refresh_tokens.revoked_at`
-- is still honoured (a revocation by an old instance counts) and can be dropped by a
-- later migration once no old instance is left.
ALTER TABLE users ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0;

CREATE TABLE sessions (
    id         uuid        PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    epoch      bigint      NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CONSTRAINT sessions_expiry_after_start CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Every existing family becomes a session (revoked when any of its tokens was), with a
-- full default age from now, so nobody is signed out by the upgrade itself.
INSERT INTO sessions (id, user_id, epoch, created_at, expires_at, revoked_at)
SELECT family_id, user_id, 0, min(issued_at), now() + interval '30 days', max(revoked_at)
FROM refresh_tokens
GROUP BY family_id, user_id;

CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);
CREATE INDEX login_attempts_window_start ON login_attempts (window_start);

-- The login budget's last decision, so the reserving upsert can report it (see
-- `store::accounts::reserve_attempt`): a refused reservation counts nothing.
ALTER TABLE login_attempts ADD COLUMN allowed integer NOT NULL DEFAULT 1 CHECK (allowed IN (0, 1));

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
