-- Each user's number of tasks, kept by the database itself (triggers), so a create under
-- `MAX_TASKS_PER_USER` reads one row, not a count over all of the owner's tasks.
--
-- Expand only: the previous release neither reads nor writes the column, and the triggers
-- keep it right for that release's writes too. The migration runs under SQLite's write
-- lock, so no write lands between the backfill and the triggers.
ALTER TABLE users ADD COLUMN task_count INTEGER NOT NULL DEFAULT 0 CHECK (task_count >= 0);

UPDATE users SET task_count = (SELECT count(*) FROM tasks WHERE tasks.owner_id = users.id);

CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks
BEGIN
    UPDATE users SET task_count = task_count + 1 WHERE id = NEW.owner_id;
END;

CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks
BEGIN
    UPDATE users SET task_count = task_count - 1 WHERE id = OLD.owner_id;
END;
