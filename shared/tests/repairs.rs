//! Databases migrated with a text of `0005`–`0008` that was edited after it landed: the
//! runner repairs each known earlier text (`migrations/repairs/`) to the schema a fresh
//! database has, once however many instances start at once, and keeps the data; any other
//! text stays an error. From each earlier text's schema, on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::{
    store::migrations::Repaired,
    testing::{Backend, TestDb},
};

use crate::support::{schema, store_on};

/// The earlier text of a migration, as that commit had it (`tests/fixtures/`).
fn earlier_text(backend: Backend, file: &str) -> String {
    let dir = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let path = format!(
        "{}/tests/fixtures/edited-migrations/{dir}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A user with a session of two refresh tokens, and a task, written as an older release
/// would: straight into the tables, in the shape `0005` at `f90c324` gave them.
async fn an_older_releases_rows(db: &TestDb) {
    db.raw_statement(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES \
         (X'00000000000000000000000000000001', 'a@example.com', 'A', 'x', \
          '2026-11-30T00:00:00.000000Z', '2026-11-30T00:00:00.000000Z')",
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES \
         ('00000000-0000-0000-0000-000000000001', 'a@example.com', 'A', 'x', now(), now())",
    )
    .await;
    db.raw_statement(
        "INSERT INTO sessions (id, user_id, epoch, created_at) VALUES \
         (X'000000000000000000000000000000f1', X'00000000000000000000000000000001', 0, \
          '2026-11-30T00:00:00.000000Z')",
        "INSERT INTO sessions (id, user_id, epoch, created_at) VALUES \
         ('00000000-0000-0000-0000-0000000000f1', '00000000-0000-0000-0000-000000000001', 0, \
          now())",
    )
    .await;
    for (n, parent) in [(1, None), (2, Some(1))] {
        let parent_sqlite = parent.map_or("NULL".to_owned(), |p| {
            format!("X'0000000000000000000000000000000{p}'")
        });
        let parent_pg = parent.map_or("NULL".to_owned(), |p| {
            format!("'00000000-0000-0000-0000-00000000000{p}'")
        });
        db.raw_statement(
            &format!(
                "INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, \
                 issued_at, expires_at) VALUES (X'0000000000000000000000000000000{n}', \
                 X'00000000000000000000000000000001', X'000000000000000000000000000000f1', \
                 {parent_sqlite}, randomblob(32), '2026-11-30T00:00:00.000000Z', \
                 '2099-01-01T00:00:00.000000Z')"
            ),
            &format!(
                "INSERT INTO refresh_tokens (id, user_id, family_id, parent_id, token_hash, \
                 issued_at, expires_at) VALUES ('00000000-0000-0000-0000-00000000000{n}', \
                 '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-0000000000f1', \
                 {parent_pg}, sha256('{n}'), now(), now() + interval '30 days')"
            ),
        )
        .await;
    }
}

/// The rows [`an_older_releases_rows`] wrote, as today's schema has them: the session still
/// live (an expiry in the future), both of its tokens, no token revoked.
async fn the_older_releases_rows_are_kept(db: &TestDb) {
    let live: Vec<(i64,)> = db
        .rows(match Backend::of(&db.url) {
            Backend::Sqlite => {
                "SELECT count(*) FROM sessions \
                 WHERE expires_at > strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '+29 days') \
                 AND revoked_at IS NULL"
            }
            Backend::Postgres => {
                "SELECT count(*) FROM sessions \
                 WHERE expires_at > now() + interval '29 days' AND revoked_at IS NULL"
            }
        })
        .await;
    assert_eq!(live, [(1,)], "the session is live, for a full default age");
    let tokens: Vec<(i64,)> = db
        .rows("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        .await;
    assert_eq!(tokens, [(2,)], "both refresh tokens are kept, unrevoked");
}

/// A database that applied `file` (`<migration>.<commit>.sql`) in its earlier text, and the
/// migrations before it in today's, is repaired by four runs started at once: exactly one
/// repairs it, the later migrations are applied, and the schema is a fresh database's.
async fn repaired_from(backend: Backend, file: &'static str) {
    if !backend.available() {
        return;
    }
    let version: i64 = file[..4].parse().unwrap();
    let commit = file.rsplit('.').nth(1).unwrap();
    let fresh = TestDb::new(backend).await;
    store_on(&fresh).migrate().await.unwrap();
    let latest = schema(&fresh).await;

    let db = TestDb::new(backend).await;
    db.migrate_to_text(version, Some(&earlier_text(backend, file)))
        .await;
    assert_ne!(schema(&db).await, latest);
    if version == 5 {
        an_older_releases_rows(&db).await;
    }

    let reports = crate::support::migrate_at_once(&db, 4).await;
    let repaired: Vec<&Repaired> = reports.iter().flat_map(|r| &r.repaired).collect();
    assert_eq!(
        repaired,
        [&Repaired {
            version,
            text_of: commit
        }],
        "{backend:?} {file}: repaired once, by one run"
    );
    let report = reports.iter().find(|r| !r.repaired.is_empty()).unwrap();
    assert!(
        report.to_string().starts_with(&format!(
            "repaired migration {version} (applied in its text of {commit})"
        )),
        "{report}"
    );
    let mut applied: Vec<i64> = reports.iter().flat_map(|r| r.applied.clone()).collect();
    applied.sort_unstable();
    let newest = reports[0].version.unwrap();
    assert_eq!(applied, (version + 1..=newest).collect::<Vec<_>>());
    crate::support::assert_same_schema(
        &schema(&db).await,
        &latest,
        &format!("{backend:?} {file}: a fresh database's schema"),
    );
    if version == 5 {
        the_older_releases_rows_are_kept(&db).await;
    }

    // Repaired for good: the next run has nothing to do.
    let again = store_on(&db);
    let report = again.migrate().await.unwrap();
    assert!(
        report.repaired.is_empty() && report.applied.is_empty(),
        "{report}"
    );
    again.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_as_at_f90c324_are_repaired_sqlite() {
    repaired_from(Backend::Sqlite, "0005_sessions.f90c324.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_as_at_f90c324_are_repaired_postgres() {
    repaired_from(Backend::Postgres, "0005_sessions.f90c324.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_mail_as_at_2aa9c76_is_repaired_postgres() {
    repaired_from(Backend::Postgres, "0006_account_mail.2aa9c76.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_counts_as_at_ffcab43_are_repaired_postgres() {
    repaired_from(Backend::Postgres, "0007_task_count.ffcab43.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_indexes_as_at_5fcc702_are_repaired_postgres() {
    repaired_from(Backend::Postgres, "0008_list_indexes.5fcc702.sql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_indexes_as_at_0b49ab7_are_repaired_postgres() {
    repaired_from(Backend::Postgres, "0008_list_indexes.0b49ab7.sql").await;
}

/// Every earlier text kept here is the one its repair names: sqlx's checksum of the fixture
/// is the repair's `checksum:` line (CI checks the fixture's commit has that text too).
#[test]
fn each_fixture_is_the_text_its_repair_names() {
    let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
    for backend in ["postgres", "sqlite"] {
        let dir = format!("{root}/shared/tests/fixtures/edited-migrations/{backend}");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
            let migration = sqlx::migrate::Migration::new(
                1,
                "".into(),
                sqlx::migrate::MigrationType::Simple,
                text.into(),
                false,
            );
            let hex: String = migration
                .checksum
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let repair = format!("{root}/migrations/repairs/{backend}/{name}");
            let repair =
                std::fs::read_to_string(&repair).unwrap_or_else(|e| panic!("{repair}: {e}"));
            assert!(
                repair.lines().any(|l| l == format!("-- checksum: {hex}")),
                "{backend}/{name}: the repair names another text"
            );
            seen += 1;
        }
        assert!(seen > 0, "{dir} has the earlier texts");
    }
}

/// A text that is neither today's nor a known earlier one is still refused, and the
/// database is left as it was.
async fn an_unknown_text_is_still_refused(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = TestDb::new(backend).await;
    let edited = format!(
        "{}\n-- edited\n",
        earlier_text(backend, "0005_sessions.f90c324.sql")
    );
    db.migrate_to_text(5, Some(&edited)).await;
    let before = schema(&db).await;
    let s = store_on(&db);
    let err = s.migrate().await.unwrap_err();
    let reason = shared::error::chain(&err);
    assert!(
        reason.contains("migration 5 was previously applied but has been modified"),
        "{reason}"
    );
    s.close().await;
    assert_eq!(schema(&db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_text_is_still_refused_sqlite() {
    an_unknown_text_is_still_refused(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_text_is_still_refused_postgres() {
    an_unknown_text_is_still_refused(Backend::Postgres).await;
}
