-- Each user's number of tasks, kept by the database itself (triggers), so a create under
-- `MAX_TASKS_PER_USER` is one statement that reads one row, not a count over all of the
-- owner's tasks under a lock held across a transaction.
--
-- Expand only: the previous release neither reads nor writes the column, and the triggers
-- keep it right for that release's writes too. The triggers are created first: that locks
-- `tasks` against writes until this migration commits, so the backfill counts exactly the
-- rows the triggers have not seen.
ALTER TABLE users ADD COLUMN task_count bigint NOT NULL DEFAULT 0 CHECK (task_count >= 0);

-- Per statement, not per row: an import of many tasks for one owner updates that owner's
-- row once. (Row by row, each update of the same row in one transaction walks every
-- version the earlier ones left: quadratic, a minute for 50,000 rows.)
CREATE FUNCTION tasks_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET task_count = task_count + added.n
    FROM (SELECT owner_id, count(*) AS n FROM inserted GROUP BY owner_id) AS added
    WHERE users.id = added.owner_id;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasks_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE users SET task_count = task_count - removed.n
    FROM (SELECT owner_id, count(*) AS n FROM deleted GROUP BY owner_id) AS removed
    WHERE users.id = removed.owner_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_inserted();
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION tasks_count_deleted();

UPDATE users SET task_count = counted.n
FROM (SELECT owner_id, count(*) AS n FROM tasks GROUP BY owner_id) AS counted
WHERE users.id = counted.owner_id;
