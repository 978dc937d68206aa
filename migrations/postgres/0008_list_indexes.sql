-- Every page of a task list is a bounded index range scan, however many tasks the owner
-- has: each sort order, with and without the `completed` filter, has an index that holds
-- the owner's tasks in exactly that order, and a keyset cursor is one row comparison on it.
--
-- "Tasks without a due date sort last", in both directions, is a sort key of its own:
-- `COALESCE(due_date, 'infinity')` ascending, `COALESCE(due_date, '-infinity')`
-- descending (no due date the API accepts is infinite). They replace `tasks_owner_due`,
-- which could not serve `ORDER BY (due_date IS NULL), due_date`.
--
-- Substring search (`q`) is served by a trigram index on the folded title: GiST with
-- 64-byte signatures, which finds a rare title made of common trigrams ("number 12345"
-- among 300,000 "number …") in about 2 ms, where GIN intersects each trigram's list of
-- every row, about 17 ms (measured at 300,000 rows, bench row 15). pg_trgm ships
-- with Postgres and managed services (RDS, Aurora, Cloud SQL, Azure) offer it; it is a
-- trusted extension, so the database's owner may create it.
--
-- Expand only: the previous release's queries still find an index for each of its shapes.
CREATE INDEX tasks_owner_due_first ON tasks (owner_id, (COALESCE(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_owner_due_last ON tasks (owner_id, (COALESCE(due_date, '-infinity'::timestamptz)), id);
CREATE INDEX tasks_owner_done_created ON tasks (owner_id, completed, created_at, id);
CREATE INDEX tasks_owner_done_title ON tasks (owner_id, completed, title_folded COLLATE "C", id);
CREATE INDEX tasks_owner_done_due_first ON tasks (owner_id, completed, (COALESCE(due_date, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_owner_done_due_last ON tasks (owner_id, completed, (COALESCE(due_date, '-infinity'::timestamptz)), id);

-- Whether a term is rare enough for the trigram index or common enough to read the owner's
-- tasks in order is the planner's estimate from the titles' statistics: a finer histogram
-- than the default makes that estimate hold for terms a few in a thousand titles match.
ALTER TABLE tasks ALTER COLUMN title_folded SET STATISTICS 1000;

CREATE EXTENSION IF NOT EXISTS pg_trgm;
-- The operator class lives in whichever schema holds the extension.
DO $$
BEGIN
    EXECUTE format(
        'CREATE INDEX tasks_title_trigrams ON tasks USING gist (title_folded %I.gist_trgm_ops (siglen = 64))',
        (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_trgm'));
END
$$;

-- Last: dropping an index locks the table against reads until the migration commits, so
-- it comes after the builds (which only hold writes back).
DROP INDEX tasks_owner_due;
