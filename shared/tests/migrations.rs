//! The migration runner every caller shares (`local-server migrate` and `serve`, the
//! `migrate` function on deploy): concurrent runs, a database ahead of the build, on both
//! backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::{
    store,
    testing::{Backend, TestDb, test_config},
};

use crate::support::store_on;

async fn concurrent_runs_apply_each_migration_once(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = TestDb::new(backend).await;
    // Four instances starting at once on an empty database.
    let reports = crate::support::migrate_at_once(&db, 4).await;
    let mut applied: Vec<i64> = reports.iter().flat_map(|r| r.applied.clone()).collect();
    applied.sort_unstable();
    let latest = reports[0].version.unwrap();
    assert_eq!(
        applied,
        (1..=latest).collect::<Vec<_>>(),
        "{backend:?}: every version applied by exactly one run"
    );
    assert!(reports.iter().all(|r| r.version == Some(latest)));
    assert!(reports.iter().all(|r| r.unknown.is_empty()));

    // Again: nothing to do, and it says so.
    let again = store_on(&db);
    let report = again.migrate().await.unwrap();
    assert!(report.applied.is_empty());
    assert_eq!(
        report.to_string(),
        format!("no pending migration; schema at version {latest}")
    );
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_apply_each_migration_once_sqlite() {
    concurrent_runs_apply_each_migration_once(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_apply_each_migration_once_postgres() {
    concurrent_runs_apply_each_migration_once(Backend::Postgres).await;
}

async fn a_newer_schema_is_left_alone(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = TestDb::new(backend).await;
    let s = store_on(&db);
    s.migrate().await.unwrap();
    s.close().await;
    // A newer release applied a migration this build does not have.
    db.record_newer_migration(9999).await;
    let s = store_on(&db);
    let report = s
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("{backend:?}: {e:?}"));
    assert_eq!(report.unknown, [9999]);
    assert_eq!(report.version, Some(9999));
    assert!(report.to_string().contains("from a newer release: 9999"));
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_left_alone_sqlite() {
    a_newer_schema_is_left_alone(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_schema_is_left_alone_postgres() {
    a_newer_schema_is_left_alone(Backend::Postgres).await;
}

/// Each user's `task_count`, by email.
async fn task_counts(db: &TestDb) -> Vec<(String, i64)> {
    db.rows("SELECT email, task_count FROM users ORDER BY email")
        .await
}

async fn task_counts_are_backfilled_then_kept_by_the_database(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = TestDb::new(backend).await;
    db.migrate_to(6).await;
    // An older release's data: three tasks for one user, none for the other.
    db.raw_statement(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES \
         (X'00000000000000000000000000000001', 'a@example.com', 'A', 'x', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'), \
         (X'00000000000000000000000000000002', 'b@example.com', 'B', 'x', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES \
         ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A', 'x', now(), now()), \
         ('00000000-0000-0000-0000-000000000002', 'b@example.com', 'B', 'x', now(), now())",
    )
    .await;
    let tasks_of_a = |n: u8| {
        (
            format!(
                "INSERT INTO tasks (id, owner_id, title, title_folded, created_at, updated_at) \
                 VALUES (randomblob(16), X'00000000000000000000000000000001', 't{n}', 't{n}', \
                 '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"
            ),
            format!(
                "INSERT INTO tasks (id, owner_id, title, title_folded, created_at, updated_at) \
                 VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 't{n}', \
                 't{n}', now(), now())"
            ),
        )
    };
    for n in 0..3 {
        let (sqlite, postgres) = tasks_of_a(n);
        db.raw_statement(&sqlite, &postgres).await;
    }

    let s = store_on(&db);
    let report = s.migrate().await.unwrap();
    assert!(report.applied.contains(&7), "{report}");
    s.close().await;
    let a = || "a@example.com".to_owned();
    let b = || "b@example.com".to_owned();
    assert_eq!(task_counts(&db).await, [(a(), 3), (b(), 0)]);

    // From then on the database keeps the count, whoever writes.
    let (sqlite, postgres) = tasks_of_a(3);
    db.raw_statement(&sqlite, &postgres).await;
    assert_eq!(task_counts(&db).await, [(a(), 4), (b(), 0)]);
    db.raw_statement(
        "DELETE FROM tasks WHERE title IN ('t0', 't1')",
        "DELETE FROM tasks WHERE title IN ('t0', 't1')",
    )
    .await;
    assert_eq!(task_counts(&db).await, [(a(), 2), (b(), 0)]);
    // Deleting the owner takes the tasks with it; the count goes with the row.
    db.raw_statement(
        "DELETE FROM users WHERE email = 'a@example.com'",
        "DELETE FROM users WHERE email = 'a@example.com'",
    )
    .await;
    assert_eq!(task_counts(&db).await, [(b(), 0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_counts_are_backfilled_then_kept_by_the_database_sqlite() {
    task_counts_are_backfilled_then_kept_by_the_database(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_counts_are_backfilled_then_kept_by_the_database_postgres() {
    task_counts_are_backfilled_then_kept_by_the_database(Backend::Postgres).await;
}

/// A database that sqlx's own runner migrated (an earlier release, `sqlx migrate run`) is
/// taken as it is: same bookkeeping table, same checksums, nothing applied again. And the
/// other way round, a database ours migrated, through the plans (`migrations/plans/`), has
/// the schema the texts make, and sqlx's runner (as in every release) takes it for its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_migrated_by_sqlx_itself_is_up_to_date_postgres() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    if shared::testing::behind_proxy() {
        eprintln!("skipped: sqlx's runner holds a session lock, which a proxy cannot keep");
        return;
    }
    let migrator = sqlx::migrate!("../migrations/postgres");
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    migrator.run(&pool).await.unwrap();
    pool.close().await;
    let report = store_on(&db).migrate().await.unwrap();
    assert!(report.applied.is_empty(), "{report}");
    assert_eq!(report.version, migrator.iter().map(|m| m.version).max());

    let ours = TestDb::new(Backend::Postgres).await;
    let s = store_on(&ours);
    s.migrate().await.unwrap();
    s.close().await;
    crate::support::assert_same_schema(
        &crate::support::schema(&ours).await,
        &crate::support::schema(&db).await,
        "the plans make the texts' schema",
    );
    let pool = sqlx::PgPool::connect(&ours.url).await.unwrap();
    migrator
        .run(&pool)
        .await
        .expect("sqlx's runner takes a database migrated through the plans for its own");
    pool.close().await;
}

/// Runs of sqlx's runner and of ours exclude each other: in a database's `public` schema,
/// where sqlx's runner keeps its table, ours waits on the same advisory lock (here until its
/// lock timeout), and proceeds once it is free. (A database of its own: test schemas lock
/// apart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_sqlx_runners_lock_postgres() {
    use sqlx::migrate::Migrate as _;
    let Some(db) = direct_postgres().await else {
        return;
    };
    let admin = std::env::var(shared::testing::POSTGRES_URL_VAR).unwrap();
    let name = format!("locks_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = shared::testing::pg_connect(&admin).await;
    sqlx::Executor::execute(&mut admin_conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");

    let mut holder = shared::testing::pg_connect(&url).await;
    holder.lock().await.unwrap();
    let store = store::postgres::PgStore::connect_lazy(&test_config(&url, &[]).db).unwrap();
    let bounds = store::migrations::Bounds {
        statement_timeout: std::time::Duration::from_secs(10),
        lock_timeout: std::time::Duration::from_millis(300),
    };
    let err = store.migrate_bounded(bounds).await.unwrap_err();
    let reason = shared::error::chain(&err);
    assert!(reason.contains("lock timeout"), "{reason}");
    assert!(reason.contains("taking the migration lock"), "{reason}");
    holder.unlock().await.unwrap();
    let report = store.migrate_bounded(bounds).await.unwrap();
    assert!(!report.applied.is_empty(), "{report}");

    store.pool().close().await;
    drop(holder);
    drop(db);
    sqlx::Executor::execute(
        &mut admin_conn,
        format!("DROP DATABASE {name} WITH (FORCE)").as_str(),
    )
    .await
    .unwrap();
}

/// A migration set of the test's own, written to a temporary directory: `(file name, SQL)`.
async fn migrator_of(files: &[(&str, &str)]) -> (tempfile::TempDir, sqlx::migrate::Migrator) {
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in files {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    (dir, migrator)
}

/// A Postgres test database straight to Postgres, or `None` (with why) when the suite runs
/// behind a proxy: these tests need sessions of their own.
async fn direct_postgres() -> Option<TestDb> {
    if !Backend::Postgres.available() {
        return None;
    }
    let db = TestDb::new(Backend::Postgres).await;
    if shared::testing::behind_proxy() {
        eprintln!("skipped: a migration outside a transaction needs a session");
        return None;
    }
    Some(db)
}

fn pg_store(db: &TestDb, extra: &[(&str, &str)]) -> store::postgres::PgStore {
    store::postgres::PgStore::connect_lazy(&test_config(&db.url, extra).db).unwrap()
}

const TABLE: (&str, &str) = (
    "0001_items.sql",
    "CREATE TABLE items (id int PRIMARY KEY, v text NOT NULL);
     INSERT INTO items SELECT g, 'v' || (g % 10) FROM generate_series(1, 1000) g;",
);

/// A migration that builds an index on `items` concurrently.
const INDEX: (&str, &str) = (
    "0002_items_v.sql",
    "-- no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_v ON items (v);\n",
);

/// Runs `build` (a migration that builds indexes on `table` concurrently) while an older
/// snapshot is kept open, which a concurrent build waits for before it finishes; meanwhile
/// `insert` into the table must finish at once (a plain `CREATE INDEX` would hold it back
/// until the build is done). Returns the build's report.
async fn writes_go_on_while_it_builds(
    db: &TestDb,
    table: &str,
    insert: &str,
    build: impl std::future::Future<
        Output = Result<store::migrations::MigrationReport, store::StoreError>,
    > + Send
    + 'static,
) -> store::migrations::MigrationReport {
    let mut old = shared::testing::pg_connect(&db.url).await;
    sqlx::Executor::execute(
        &mut old,
        format!("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM {table}").as_str(),
    )
    .await
    .unwrap();
    let building = tokio::spawn(build);
    let mut writer = shared::testing::pg_connect(&db.url).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let row = sqlx::Executor::fetch_one(
            &mut writer,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%CREATE INDEX CONCURRENTLY%' \
             AND state = 'active' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
        if sqlx::Row::get::<i64, _>(&row, 0) > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the build never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sqlx::Executor::execute(
        &mut writer,
        format!("SET lock_timeout = '2s'; {insert}").as_str(),
    )
    .await
    .expect("a write while the index builds concurrently");
    assert!(!building.is_finished(), "the build was still waiting");
    sqlx::Executor::execute(&mut old, "COMMIT").await.unwrap();
    building.await.unwrap().unwrap()
}

/// An index built concurrently (`-- no-transaction`) lets writes to its table go on while
/// it builds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_an_index_builds_concurrently_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    let (_dir, first) = migrator_of(&[TABLE]).await;
    let (_dir2, both) = migrator_of(&[TABLE, INDEX]).await;
    assert!(both.iter().any(|m| m.no_tx), "sqlx reads the marker");
    let store = pg_store(&db, &[]);
    store.migrate_with(&first, None).await.unwrap();
    let build = {
        let store = store.clone();
        async move { store.migrate_with(&both, None).await }
    };
    let report = writes_go_on_while_it_builds(
        &db,
        "items",
        "INSERT INTO items VALUES (5000, 'during the build')",
        build,
    )
    .await;
    assert_eq!(report.applied, [2]);
    let valid: Vec<(bool,)> = db
        .rows("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('items_v')")
        .await;
    assert_eq!(valid, [(true,)]);
}

/// `0008`'s indexes on `tasks`, which has rows when it runs, build concurrently through its
/// plan (`migrations/plans/`): tasks are written meanwhile, and afterwards every index is there and valid, the one it replaces
/// gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_written_while_0008_builds_its_indexes_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    db.migrate_to(7).await;
    let owner = "'00000000-0000-0000-0000-000000000001'";
    db.raw_statement(
        "",
        &format!(
            "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
             VALUES ({owner}, 'a@example.com', 'A', 'x', now(), now())"
        ),
    )
    .await;
    let task = |title: &str| {
        format!(
            "INSERT INTO tasks (id, owner_id, title, title_folded, created_at, updated_at) \
             VALUES (gen_random_uuid(), {owner}, '{title}', '{title}', now(), now())"
        )
    };
    db.raw_statement("", &task("before")).await;
    let store = store_on(&db);
    let build = {
        let store = store.clone();
        async move { store.migrate().await }
    };
    let report = writes_go_on_while_it_builds(&db, "tasks", &task("during"), build).await;
    assert_eq!(report.applied, [8]);
    store.close().await;
    let indexes: Vec<(String, bool)> = db
        .rows(
            "SELECT c.relname::text, i.indisvalid FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = to_regclass('tasks') \
             AND (c.relname LIKE 'tasks_owner_d%' OR c.relname = 'tasks_title_trigrams') \
             ORDER BY 1",
        )
        .await;
    let valid = |name: &str| (name.to_owned(), true);
    assert_eq!(
        indexes,
        [
            valid("tasks_owner_done_created"),
            valid("tasks_owner_done_due_first"),
            valid("tasks_owner_done_due_last"),
            valid("tasks_owner_done_title"),
            valid("tasks_owner_due_first"),
            valid("tasks_owner_due_last"),
            valid("tasks_title_trigrams"),
        ],
        "every index built and valid; tasks_owner_due dropped"
    );
    let counted: Vec<(i64,)> = db.rows("SELECT task_count FROM users").await;
    assert_eq!(counted, [(2,)], "both tasks written, and counted");
}

/// A plan that fails half-way takes every index it built away again: the text it stands for
/// is still pending, and a release with that text (0.1.0, which builds the same indexes in
/// a transaction, without `IF NOT EXISTS`), or sqlx's runner, must still be able to apply
/// it. Here 0008's plan fails at its last build, the trigram index, because pg_trgm's
/// schema is not on the search path, after six indexes were built.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_that_fails_half_way_leaves_the_text_applicable_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    db.migrate_to(7).await;
    let schema: Vec<(String,)> = db.rows("SELECT current_schema()::text").await;
    let admin = std::env::var(shared::testing::POSTGRES_URL_VAR).unwrap();
    let url = shared::testing::with_param(
        &admin,
        "options",
        &format!("-c search_path={}", schema[0].0),
    );
    let store = store::connect_lazy(&test_config(&url, &[]).db).unwrap();
    let err = store.migrate().await.unwrap_err();
    store.close().await;
    let reason = shared::error::chain(&err);
    assert!(reason.contains("migration 8"), "{reason}");
    assert!(reason.contains("gist_trgm_ops"), "{reason}");
    let left: Vec<(String,)> = db
        .rows(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indrelid = to_regclass('tasks') AND c.relname LIKE 'tasks_owner_d%' \
             ORDER BY 1",
        )
        .await;
    assert_eq!(
        left,
        [("tasks_owner_due".to_owned(),)],
        "the six indexes built before the failure are gone, the old one kept"
    );

    // What 0.1.0 or `sqlx migrate run` does next: the text, in a transaction.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::migrate!("../migrations/postgres")
        .run(&pool)
        .await
        .expect("the text applies after the failed plan");
    pool.close().await;
}

/// A concurrent build that fails leaves no invalid index behind (which `IF NOT EXISTS`
/// would take for built), and the migration is applied once the cause is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_concurrent_build_leaves_no_invalid_index_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    let unique = (
        "0002_items_v_key.sql",
        "-- no-transaction\n-- v repeats: this fails until it does not\n\
         CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_v_key ON items (v);\n",
    );
    let (_dir, migrator) = migrator_of(&[TABLE, unique]).await;
    let store = pg_store(&db, &[]);
    let err = store.migrate_with(&migrator, None).await.unwrap_err();
    assert!(shared::error::chain(&err).contains("migration 2"), "{err}");
    let left: Vec<(bool,)> = db.rows("SELECT to_regclass('items_v_key') IS NULL").await;
    assert_eq!(left, [(true,)], "no index left behind");
    let recorded: Vec<(i64,)> = db.rows("SELECT version FROM _sqlx_migrations").await;
    assert_eq!(recorded, [(1,)]);

    db.raw_statement("", "DELETE FROM items WHERE id > 10")
        .await;
    let report = store.migrate_with(&migrator, None).await.unwrap();
    assert_eq!(report.applied, [2]);
    let valid: Vec<(bool,)> = db
        .rows("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('items_v_key')")
        .await;
    assert_eq!(valid, [(true,)]);
}

/// Behind a proxy that pools by transaction there is no session to build in: such a
/// migration's indexes are built in its transaction instead (holding writes back), and it
/// is recorded once like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_a_migration_outside_a_transaction_builds_in_one_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    let (_dir, migrator) = migrator_of(&[TABLE, INDEX]).await;
    let proxied = pg_store(&db, &[("DB_STATEMENT_CACHE_CAPACITY", "0")]);
    let report = proxied.migrate_with(&migrator, None).await.unwrap();
    assert_eq!(report.applied, [1, 2]);
    let valid: Vec<(bool,)> = db
        .rows("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('items_v')")
        .await;
    assert_eq!(valid, [(true,)]);
    let again = proxied.migrate_with(&migrator, None).await.unwrap();
    assert!(again.applied.is_empty(), "{again}");
}

/// A migration outside a transaction that the runner could not clean up after or run again
/// (no `IF NOT EXISTS` here) is refused before any of it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_outside_a_transaction_must_be_a_rerunnable_index_build_postgres() {
    let Some(db) = direct_postgres().await else {
        return;
    };
    let index = (
        "0002_items_v.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY items_v ON items (v);\n",
    );
    let (_dir, migrator) = migrator_of(&[TABLE, index]).await;
    let err = pg_store(&db, &[])
        .migrate_with(&migrator, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("IF NOT EXISTS"), "{err}");
    let built: Vec<(bool,)> = db.rows("SELECT to_regclass('items_v') IS NULL").await;
    assert_eq!(built, [(true,)], "nothing of it ran");
}
