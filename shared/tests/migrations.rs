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
