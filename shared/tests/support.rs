#![allow(clippy::unwrap_used)]

//! What the migration tests share: runs started at once, and a database's schema, to
//! compare two databases migrated different ways.

use shared::{
    store::{self, DynStore, migrations::MigrationReport},
    testing::{Backend, TestDb, test_config},
};

/// A store of its own on `db`, as each instance has.
pub fn store_on(db: &TestDb) -> DynStore {
    store::connect_lazy(&test_config(&db.url, &[]).db).unwrap()
}

/// `n` instances migrating `db` at once, as containers of a rolling deploy do: each one's
/// report (every run must succeed).
pub async fn migrate_at_once(db: &TestDb, n: usize) -> Vec<MigrationReport> {
    let stores: Vec<DynStore> = (0..n).map(|_| store_on(db)).collect();
    let runs: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| tokio::spawn(async move { s.migrate().await }))
        .collect();
    let mut reports = Vec::new();
    for run in runs {
        reports.push(run.await.unwrap().unwrap_or_else(|e| panic!("{e:?}")));
    }
    for s in &stores {
        s.close().await;
    }
    reports
}

/// Everything a migration makes, one line each, in an order of its own: tables' columns
/// (not their order), indexes (and any invalid one), constraints, triggers, functions,
/// statistics targets, and the recorded migrations with their checksums.
pub async fn schema(db: &TestDb) -> Vec<String> {
    let lines: Vec<(String,)> = match Backend::of(&db.url) {
        Backend::Postgres => {
            db.rows(
                "SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type \
                    || ' ' || is_nullable || ' ' || coalesce(column_default, '') \
                 FROM information_schema.columns WHERE table_schema = current_schema() \
                 UNION ALL \
                 SELECT 'index ' || indexname || ' ' \
                    || replace(indexdef, current_schema() || '.', '') \
                 FROM pg_indexes WHERE schemaname = current_schema() \
                 UNION ALL \
                 SELECT 'constraint ' || c.conrelid::regclass::text || ' ' || c.conname \
                    || ' ' || pg_get_constraintdef(c.oid) \
                 FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = current_schema() \
                 UNION ALL \
                 SELECT 'trigger ' || t.tgname || ' ' \
                    || replace(pg_get_triggerdef(t.oid), current_schema() || '.', '') \
                 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND NOT t.tgisinternal \
                 UNION ALL \
                 SELECT 'function ' || p.proname || ' ' || p.prosrc \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE n.nspname = current_schema() \
                 UNION ALL \
                 SELECT 'statistics ' || a.attrelid::regclass::text || '.' || a.attname \
                    || ' ' || a.attstattarget \
                 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND a.attnum > 0 \
                    AND NOT a.attisdropped AND a.attstattarget >= 0 \
                 UNION ALL \
                 SELECT 'invalid index ' || i.indexrelid::regclass::text FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND NOT i.indisvalid \
                 UNION ALL \
                 SELECT 'migration ' || version || ' ' || encode(checksum, 'hex') \
                 FROM _sqlx_migrations",
            )
            .await
        }
        // A rebuilt table's definition names it in quotes (`ALTER TABLE … RENAME TO`).
        Backend::Sqlite => db
            .rows::<(String,)>(
                "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' \
                 UNION ALL \
                 SELECT 'migration ' || version || ' ' || lower(hex(checksum)) \
                 FROM _sqlx_migrations",
            )
            .await
            .into_iter()
            .map(|(line,)| {
                (line
                    .replace('"', "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),)
            })
            .collect(),
    };
    let mut lines: Vec<String> = lines.into_iter().map(|(line,)| line).collect();
    lines.sort();
    lines
}

/// Fails, naming only the lines that differ, unless `got` and `want` are the same schema.
pub fn assert_same_schema(got: &[String], want: &[String], what: &str) {
    let missing: Vec<&String> = want.iter().filter(|l| !got.contains(l)).collect();
    let extra: Vec<&String> = got.iter().filter(|l| !want.contains(l)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:#?}, and more than expected {extra:#?}"
    );
}
