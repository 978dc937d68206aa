-- no-transaction
-- The plan for 0008_list_indexes.sql, released in 0.1.0, whose text has this checksum:
-- checksum: e3ac9b3fc1266ecece1ebf07e0166a8a8252f68f50a29975d10e642edb54a557c427dcc81c4562960a6a24c41a678b65
--
-- That text builds its indexes on `tasks` in a transaction, which holds every write to the
-- table back until it commits. This plan makes the same schema with every index built
-- CONCURRENTLY, so the release still serving goes on writing meanwhile; the runner applies
-- it in place of the text and records the text's checksum (migrations/plans/README.md).
-- Each statement is safe to run again, so a run that fails half-way is finished by the
-- next one. pg_trgm's schema must be on the migrating role's search_path (public, where it
-- goes by default, is): the text's DO block found it anywhere, but an index cannot be built
-- concurrently from one.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- (Setting it again sets the same value: squawk cannot tell it is safe to run again.)
-- squawk-ignore prefer-robust-stmts
ALTER TABLE tasks ALTER COLUMN title_folded SET STATISTICS 1000;

CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_due_first ON tasks (owner_id, (COALESCE(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_due_last ON tasks (owner_id, (COALESCE(due_date, '-infinity'::timestamptz)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_done_created ON tasks (owner_id, completed, created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_done_title ON tasks (owner_id, completed, title_folded COLLATE "C", id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_done_due_first ON tasks (owner_id, completed, (COALESCE(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_owner_done_due_last ON tasks (owner_id, completed, (COALESCE(due_date, '-infinity'::timestamptz)), id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_title_trigrams ON tasks USING gist (title_folded gist_trgm_ops (siglen = 64));

-- Last: the previous release's queries use it until the new indexes are there.
DROP INDEX CONCURRENTLY IF EXISTS tasks_owner_due;
