//! The migration runner every caller shares (`local-server migrate` and `serve`, the
//! `migrate` function on deploy): concurrent runs, a database ahead of the build, on both
//! backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::{
    store::{self, DynStore},
    testing::{Backend, TestDb, test_config},
};

fn store_on(db: &TestDb) -> DynStore {
    store::connect_lazy(&test_config(&db.url, &[]).db).unwrap()
}

async fn concurrent_runs_apply_each_migration_once(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = TestDb::new(backend).await;
    // Four instances starting at once on an empty database, as containers of a rolling
    // deploy do.
    let stores: Vec<DynStore> = (0..4).map(|_| store_on(&db)).collect();
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    let mut reports = Vec::new();
    for run in runs {
        reports.push(
            run.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{backend:?}: {e:?}")),
        );
    }
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
    for s in &stores {
        s.close().await;
    }

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
/// taken as it is: same bookkeeping table, same checksums, nothing applied again.
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
}

/// Runs of sqlx's runner and of ours exclude each other: ours waits on the same advisory
/// lock (here until its `lock_timeout`), and proceeds once it is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_sqlx_runners_lock_postgres() {
    use sqlx::migrate::Migrate as _;
    if !Backend::Postgres.available() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    if shared::testing::behind_proxy() {
        eprintln!("skipped: sqlx's runner holds a session lock, which a proxy cannot keep");
        return;
    }
    let mut holder = shared::testing::pg_connect(&db.url).await;
    holder.lock().await.unwrap();
    let store = store::postgres::PgStore::connect_lazy(&test_config(&db.url, &[]).db).unwrap();
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
}
