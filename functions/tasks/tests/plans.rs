//! Every task-list query shape reads one index range, on both databases: the plan of each
//! (every sort, both directions, with and without the `completed` filter, the due-date
//! filters, a cursor in the dated and in the undated tasks, `q`) is read from the database
//! and must not scan the table or sort the owner's tasks. A future shape that loses its
//! index fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use shared::{
    models::{SortKey, SortValue, TaskPosition, TaskQuery, TaskSort},
    store::{self, db::Db, sql::Sql, tasks::list},
    testing::{Backend, TestDb, test_config},
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const OWNER: Uuid = Uuid::from_u128(1);
const OTHER: Uuid = Uuid::from_u128(2);
/// The owner's tasks: enough that a planner prefers an index to a scan only where it
/// fits, and a rare term's trigrams to reading the owner's tasks in order. The other
/// user's few keep the owner's rows a part of the table.
const TASKS: u32 = 50_000;
const OTHER_TASKS: u32 = 1_000;

/// A database with the owner's `TASKS` tasks and another user's: a third completed, a
/// quarter undated.
async fn seeded(backend: Backend) -> TestDb {
    let db = TestDb::new(backend).await;
    let s = store::connect_lazy(&test_config(&db.url, &[]).db).unwrap();
    s.migrate().await.unwrap();
    s.close().await;
    for (user, email, tasks) in [
        (OWNER, "plan@example.com", TASKS),
        (OTHER, "other@example.com", OTHER_TASKS),
    ] {
        let hex = user.simple();
        db.raw_statement(
            &format!(
                "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
                 VALUES (X'{hex}', '{email}', 'P', 'x', '2026-01-01T00:00:00.000000Z', \
                 '2026-01-01T00:00:00.000000Z')"
            ),
            &format!(
                "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) \
                 VALUES ('{user}', '{email}', 'P', 'x', now(), now())"
            ),
        )
        .await;
        db.raw_statement(
            &format!(
                "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {tasks}) \
                 INSERT INTO tasks (id, owner_id, title, title_folded, completed, due_date, created_at, updated_at) \
                 SELECT randomblob(16), X'{hex}', 'number ' || n, 'number ' || n, n % 3 = 0, \
                 CASE WHEN n % 4 = 0 THEN NULL ELSE strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2027-01-01', '+' || n || ' minutes') END, \
                 strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2026-01-01', '+' || n || ' seconds'), \
                 strftime('%Y-%m-%dT%H:%M:%S.000000Z', '2026-01-01', '+' || n || ' seconds') FROM g"
            ),
            &format!(
                "INSERT INTO tasks (id, owner_id, title, title_folded, completed, due_date, created_at, updated_at) \
                 SELECT gen_random_uuid(), '{user}', 'number ' || n, 'number ' || n, n % 3 = 0, \
                 CASE WHEN n % 4 = 0 THEN NULL ELSE '2027-01-01'::timestamptz + n * interval '1 minute' END, \
                 '2026-01-01'::timestamptz + n * interval '1 second', \
                 '2026-01-01'::timestamptz + n * interval '1 second' \
                 FROM generate_series(1, {tasks}) AS n"
            ),
        )
        .await;
    }
    // Postgres plans from statistics, which autovacuum would gather soon after such an
    // import; SQLite plans without any unless `ANALYZE` is run, which the app does not do.
    db.raw_statement("SELECT 1", "ANALYZE tasks").await;
    db
}

/// Every query shape a list request can produce, named for the failure message.
fn shapes() -> Vec<(String, TaskQuery)> {
    let at = OffsetDateTime::from_unix_timestamp(1_798_800_000).unwrap(); // 2027-01-01
    let mut shapes = Vec::new();
    for key in [SortKey::CreatedAt, SortKey::Title, SortKey::DueDate] {
        for descending in [false, true] {
            let sort = TaskSort { key, descending };
            let mut cursors = vec![None];
            cursors.push(Some(match key {
                SortKey::CreatedAt => SortValue::Time(at - Duration::days(200)),
                SortKey::Title => SortValue::Text("number 5".to_owned()),
                SortKey::DueDate => SortValue::Time(at + Duration::days(3)),
            }));
            if key == SortKey::DueDate {
                cursors.push(Some(SortValue::NoDueDate));
            }
            for completed in [None, Some(true), Some(false)] {
                for cursor in &cursors {
                    let query = TaskQuery {
                        completed,
                        due_before: None,
                        due_after: None,
                        search: None,
                        sort,
                        after: cursor.clone().map(|value| TaskPosition {
                            value,
                            id: Uuid::from_u128(u128::MAX / 2),
                        }),
                        fetch: 21,
                    };
                    shapes.push((format!("{sort:?} {completed:?} after {cursor:?}"), query));
                }
            }
            // The due-date filters: a range of the sort key's index under a due-date sort;
            // under another sort, checked on the rows read in that order.
            for (before, after) in [
                (Some(at + Duration::days(5)), None),
                (None, Some(at + Duration::days(5))),
                (Some(at + Duration::days(9)), Some(at + Duration::days(2))),
            ] {
                for completed in [None, Some(false)] {
                    let query = TaskQuery {
                        completed,
                        due_before: before,
                        due_after: after,
                        search: None,
                        sort,
                        after: None,
                        fetch: 21,
                    };
                    let name = format!("{sort:?} {completed:?} due {before:?}..{after:?}");
                    shapes.push((name, query));
                }
            }
        }
    }
    shapes
}

/// The shapes with `q`: rare terms (a trigram index finds their few matches) and a
/// two-character one (no trigram: found in the owner's tasks in sort order).
fn searches() -> Vec<(String, TaskQuery, bool)> {
    [
        ("number 12345", true),
        ("zebra", true),
        ("19999", true),
        ("12", false),
    ]
    .into_iter()
    .map(|(term, trigrams)| {
        let query = TaskQuery {
            completed: None,
            due_before: None,
            due_after: None,
            search: Some(term.to_owned()),
            sort: TaskSort::DEFAULT,
            after: None,
            fetch: 21,
        };
        (format!("q={term}"), query, trigrams)
    })
    .collect()
}

async fn plan(db: &TestDb, backend: Backend, sql: &Sql) -> Vec<String> {
    match backend {
        Backend::Postgres => {
            let mut conn = shared::testing::pg_connect(&db.url).await;
            // In a transaction: the statement is unnamed, so also through a proxy.
            let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
            let explain = Sql::raw(
                backend,
                &format!("EXPLAIN {}", sql.text),
                sql.params.clone(),
            );
            let rows: Vec<(String,)> = sqlx::Postgres::fetch_all(&mut tx, &explain, false)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            rows.into_iter().map(|(line,)| line).collect()
        }
        Backend::Sqlite => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db.url)
                .await
                .unwrap();
            let explain = Sql::raw(
                backend,
                &format!("EXPLAIN QUERY PLAN {}", sql.text),
                sql.params.clone(),
            );
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::Sqlite::fetch_all(&mut conn, &explain, false)
                    .await
                    .unwrap();
            rows.into_iter().map(|(.., detail)| detail).collect()
        }
    }
}

/// Whether `plan` reads only a range of one of the owner's indexes, in the query's order.
fn violations(backend: Backend, plan: &[String], cursor: bool) -> Vec<&'static str> {
    let mut found = Vec::new();
    let text = plan.join("\n");
    match backend {
        Backend::Postgres => {
            if text.contains("Seq Scan") {
                found.push("a sequential scan");
            }
            if plan
                .iter()
                .any(|l| l.trim_start_matches([' ', '-', '>']).starts_with("Sort"))
            {
                found.push("a sort");
            }
            if plan
                .iter()
                .any(|l| l.contains("Filter:") && l.contains("owner_id"))
            {
                found.push("the owner as a filter");
            }
            if cursor && !text.contains("ROW(") {
                found.push("the cursor as a filter, not the index range");
            }
        }
        Backend::Sqlite => {
            if plan
                .iter()
                .any(|l| l == "SCAN tasks" || l.starts_with("SCAN tasks "))
            {
                found.push("a scan of the table or a whole index");
            }
            if text.contains("TEMP B-TREE") {
                found.push("a sort");
            }
            if cursor && !(text.contains(">?") || text.contains("<?")) {
                found.push("the cursor as a filter, not the index range");
            }
        }
    }
    found
}

async fn every_list_shape_reads_one_index_range(backend: Backend) {
    if !backend.available() {
        return;
    }
    let db = seeded(backend).await;
    for (name, query) in shapes() {
        let sql = list(backend, OWNER, &query);
        let plan = plan(&db, backend, &sql).await;
        let bad = violations(backend, &plan, query.after.is_some());
        assert!(
            bad.is_empty(),
            "{backend:?}, {name}: {bad:?}\n{}\n{}",
            sql.text,
            plan.join("\n")
        );
    }
    for (name, query, trigrams) in searches() {
        let sql = list(backend, OWNER, &query);
        let plan = plan(&db, backend, &sql).await;
        let text = plan.join("\n");
        let by_trigrams = text.contains("tasks_title_trigrams");
        // A term with trigrams is found through them: its few matches are then checked for
        // the owner and sorted. One without reads the owner's tasks in order, like any list.
        let bad: Vec<_> = violations(backend, &plan, false)
            .into_iter()
            .filter(|v| !(by_trigrams && matches!(*v, "a sort" | "the owner as a filter")))
            .collect();
        assert!(
            bad.is_empty() && (!trigrams || by_trigrams),
            "{backend:?}, {name}: {bad:?}, trigram index used: {by_trigrams}\n{}\n{text}",
            sql.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_shape_reads_one_index_range_sqlite() {
    every_list_shape_reads_one_index_range(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_shape_reads_one_index_range_postgres() {
    every_list_shape_reads_one_index_range(Backend::Postgres).await;
}
