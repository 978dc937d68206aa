//! What a database's schema is, to compare two databases migrated different ways.

use shared::testing::{Backend, TestDb};

/// Everything a migration makes, one line each, in an order of its own: tables' columns
/// (not their order), indexes, constraints, triggers, functions, and the recorded
/// migrations with their checksums.
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
