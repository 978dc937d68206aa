-- Every page of a task list is a bounded index range scan: see the Postgres migration.
-- Timestamps are fixed-width text here, so "no due date" sorts last through '~' (after
-- every digit) ascending and '' descending.
CREATE INDEX tasks_owner_due_first ON tasks (owner_id, COALESCE(due_date, '~'), id);
CREATE INDEX tasks_owner_due_last ON tasks (owner_id, COALESCE(due_date, ''), id);
CREATE INDEX tasks_owner_done_created ON tasks (owner_id, completed, created_at, id);
CREATE INDEX tasks_owner_done_title ON tasks (owner_id, completed, title_folded, id);
CREATE INDEX tasks_owner_done_due_first ON tasks (owner_id, completed, COALESCE(due_date, '~'), id);
CREATE INDEX tasks_owner_done_due_last ON tasks (owner_id, completed, COALESCE(due_date, ''), id);
DROP INDEX tasks_owner_due;

-- Substring search (`q`): an FTS5 index of the folded title's trigrams (the bundled SQLite
-- has FTS5 and its trigram tokenizer), kept in step with `tasks` by triggers. The titles
-- are folded already, so it compares them as they are.
CREATE VIRTUAL TABLE tasks_title_trigrams USING fts5(
    title_folded, content = 'tasks', content_rowid = 'rowid', tokenize = 'trigram case_sensitive 1'
);
INSERT INTO tasks_title_trigrams (tasks_title_trigrams) VALUES ('rebuild');

CREATE TRIGGER tasks_title_trigrams_insert AFTER INSERT ON tasks
BEGIN
    INSERT INTO tasks_title_trigrams (rowid, title_folded) VALUES (NEW.rowid, NEW.title_folded);
END;

CREATE TRIGGER tasks_title_trigrams_delete AFTER DELETE ON tasks
BEGIN
    INSERT INTO tasks_title_trigrams (tasks_title_trigrams, rowid, title_folded)
    VALUES ('delete', OLD.rowid, OLD.title_folded);
END;

CREATE TRIGGER tasks_title_trigrams_update AFTER UPDATE OF title_folded ON tasks
BEGIN
    INSERT INTO tasks_title_trigrams (tasks_title_trigrams, rowid, title_folded)
    VALUES ('delete', OLD.rowid, OLD.title_folded);
    INSERT INTO tasks_title_trigrams (rowid, title_folded) VALUES (NEW.rowid, NEW.title_folded);
END;
