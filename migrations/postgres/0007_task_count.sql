-- Each user's number of tasks, kept by the database itself (triggers), so a create under
-- `MAX_TASKS_PER_USER` is one statement that reads one row, not a count over all of the
-- owner's tasks under a lock held across a transaction.
--
-- Expand only: the previous release neither reads nor writes the column, and the triggers
-- keep it right for that release's writes too. The triggers are created first: that locks
-- `tasks` against writes until this migration commits, so the backfill counts exactly the
-- rows the triggers have not seen.
ALTER TABLE users ADD COLUMN task_count bigint NOT NULL DEFAULT 0 CHECK (task_count >= 0);

CREATE FUNCTION tasks_count_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE users SET task_count = task_count + 1 WHERE id = NEW.owner_id;
    ELSE
        UPDATE users SET task_count = task_count - 1 WHERE id = OLD.owner_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_count_owner AFTER INSERT OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_count_owner();

UPDATE users SET task_count = counted.n
FROM (SELECT owner_id, count(*) AS n FROM tasks GROUP BY owner_id) AS counted
WHERE users.id = counted.owner_id;
