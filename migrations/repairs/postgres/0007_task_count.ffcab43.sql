-- Repairs 0007_task_count.sql as it was at ffcab43, whose text had this checksum:
-- checksum: 91f7ad3a723f1e1efd8682a01b50f12b14646237c65aa993f90b68e75b34ebea003bb0a47118c881f1d2b08775365e4e
--
-- That text kept `users.task_count` with a row-level trigger; today's does it once per
-- statement. The count itself is the same. The old trigger goes and the new ones come in
-- one transaction, which holds writes to `tasks` back until it commits, so no write is
-- counted twice or missed.
DROP TRIGGER tasks_count_owner ON tasks;
DROP FUNCTION tasks_count_owner();

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
