//! The `migrate` binary as CloudFormation drives it on deploy: custom-resource requests
//! through the runtime-API emulator, its answers caught by a local HTTP server standing in
//! for the pre-signed `ResponseURL`, on a fresh Postgres schema per test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::put};
use serde_json::{Value, json};
use shared::testing::{
    Backend, TEST_JWT_SECRET, TEST_PEPPER, TestDb,
    lambda::{FunctionProcess, Outcome, RuntimeEmulator},
    template,
};

/// What CloudFormation received: one entry per `PUT`, answered or refused.
#[derive(Default)]
struct Received {
    bodies: Mutex<Vec<(HeaderMap, Value)>>,
    /// How many `PUT`s to refuse with a 500 before accepting.
    refuse: AtomicU32,
    puts: AtomicU32,
}

struct ResponseUrl {
    base: String,
    received: Arc<Received>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for ResponseUrl {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl ResponseUrl {
    async fn start(refuse: u32) -> Self {
        let received = Arc::new(Received::default());
        received.refuse.store(refuse, Ordering::SeqCst);
        let app = Router::new()
            .route("/{*path}", put(catch))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base,
            received,
            server,
        }
    }

    fn url(&self, request_id: &str) -> String {
        // Shaped like the real thing: a path and a signed query string.
        format!(
            "{}/arn%3Aaws%3Acloudformation/{request_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0f",
            self.base
        )
    }

    fn answers(&self) -> Vec<(HeaderMap, Value)> {
        self.received.bodies.lock().unwrap().clone()
    }
}

async fn catch(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    received.puts.fetch_add(1, Ordering::SeqCst);
    if received
        .refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
    }
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.bodies.lock().unwrap().push((headers, value));
    axum::http::StatusCode::OK
}

fn request(kind: &str, url: &str, request_id: &str, physical_id: Option<&str>) -> Value {
    request_for(
        migrate::MIGRATIONS_DIGEST,
        kind,
        url,
        request_id,
        physical_id,
    )
}

/// A request carrying `digest` as the template's `MigrationsDigest`.
fn request_for(
    digest: &str,
    kind: &str,
    url: &str,
    request_id: &str,
    physical_id: Option<&str>,
) -> Value {
    let mut event = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:task-api-MigrateFunction",
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/task-api/6e5f1c60",
        "RequestId": request_id,
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:task-api-MigrateFunction",
            "MigrationsDigest": digest
        }
    });
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = json!(id);
    }
    event
}

/// The migrate binary under its own emulator, configured as the template configures it.
struct Function {
    // Killed before its emulator goes away.
    _process: FunctionProcess,
    emulator: RuntimeEmulator,
}

impl Function {
    async fn start(env: &[(&str, &str)]) -> Self {
        let emulator = RuntimeEmulator::start().await;
        let mut all = vec![("RUST_LOG", "warn"), ("DB_ACQUIRE_TIMEOUT_MS", "2000")];
        all.extend_from_slice(env);
        let process = FunctionProcess::spawn(
            Path::new(env!("CARGO_BIN_EXE_migrate")),
            &emulator,
            "migrate",
            &all,
        );
        Self {
            _process: process,
            emulator,
        }
    }

    async fn on(db: &TestDb) -> Self {
        Self::start(&[
            ("DATABASE_URL", &db.url),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("PASSWORD_PEPPER", TEST_PEPPER),
        ])
        .await
    }

    /// Sends one request; what the function returned to the runtime.
    async fn invoke(&self, event: &Value) -> Value {
        Self::answer(self.emulator.invoke(event, Duration::from_secs(60)).await)
    }

    /// [`Self::invoke`] with `deadline` as the invocation's time (the function's Timeout).
    async fn invoke_within(&self, event: &Value, deadline: Duration) -> Value {
        Self::answer(self.emulator.invoke_within(event, deadline).await)
    }

    fn answer(outcome: Outcome) -> Value {
        match outcome {
            Outcome::Response(value) => value,
            Outcome::Error(error) => panic!("the function failed: {error}"),
        }
    }
}

async fn connect(db: &TestDb) -> sqlx::PgConnection {
    shared::testing::pg_connect(&db.url).await
}

async fn applied(db: &TestDb) -> Vec<(i64, String)> {
    let exists: Vec<(bool,)> = db
        .rows("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .await;
    if !exists[0].0 {
        return Vec::new();
    }
    db.rows(
        "SELECT version, installed_on::text FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .await
}

async fn columns(db: &TestDb, table: &'static str) -> Vec<String> {
    let rows: Vec<(String,)> = db
        .rows(&format!(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = '{table}' \
             ORDER BY column_name"
        ))
        .await;
    rows.into_iter().map(|(c,)| c).collect()
}

/// The versions of `migrations/postgres`, as the binary embeds them.
fn embedded_versions() -> Vec<i64> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    let mut versions: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// A fresh schema, the `ResponseURL` stand-in (refusing its first `refuse` answers) and the
/// function configured for that schema; `None` where the Postgres tests are skipped.
async fn deployment(refuse: u32) -> Option<(TestDb, ResponseUrl, Function)> {
    if !Backend::Postgres.available() {
        return None;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let cfn = ResponseUrl::start(refuse).await;
    let function = Function::on(&db).await;
    Some((db, cfn, function))
}

/// With `MIGRATIONS_DATABASE_URL`, the migrations go there and not to `DATABASE_URL` (here
/// a closed port: had the function used it, the answer would be FAILED).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_go_to_migrations_database_url_when_it_is_set() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let cfn = ResponseUrl::start(0).await;
    let function = Function::start(&[
        ("DATABASE_URL", "postgres://api@127.0.0.1:1/unreachable"),
        ("MIGRATIONS_DATABASE_URL", &db.url),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", TEST_PEPPER),
    ])
    .await;
    let answer = function
        .invoke(&request("Create", &cfn.url("m"), "m", None))
        .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    let versions = embedded_versions();
    let applied: Vec<i64> = applied(&db).await.into_iter().map(|(v, _)| v).collect();
    assert_eq!(applied, versions);
}

/// [`deployment`] after CloudFormation's `Create`, which succeeded.
async fn migrated_deployment() -> Option<(TestDb, ResponseUrl, Function)> {
    let (db, cfn, function) = deployment(0).await?;
    let create = function
        .invoke(&request("Create", &cfn.url("c"), "c", None))
        .await;
    assert_eq!(create["Status"], "SUCCESS", "{create}");
    Some((db, cfn, function))
}

/// Something in the way of the last migration, which first adds a column to `users` and
/// then creates `sessions`.
async fn squat_sessions(db: &TestDb) {
    db.raw_statement("", "CREATE TABLE sessions (squatter int)")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_migrates_update_is_a_no_op_and_delete_keeps_everything() {
    let Some((db, cfn, function)) = deployment(0).await else {
        return;
    };
    let versions = embedded_versions();
    let latest = versions.last().unwrap().to_string();
    let all = versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");

    let returned = function
        .invoke(&request("Create", &cfn.url("create-1"), "create-1", None))
        .await;
    let answers = cfn.answers();
    assert_eq!(answers.len(), 1, "one answer per request");
    let (headers, answer) = &answers[0];
    assert_eq!(answer, &returned, "the function returns what it sent");
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_eq!(answer["RequestId"], "create-1");
    assert_eq!(answer["LogicalResourceId"], "Migrations");
    assert_eq!(
        answer["StackId"],
        "arn:aws:cloudformation:us-east-1:123456789012:stack/task-api/6e5f1c60"
    );
    assert_eq!(answer["PhysicalResourceId"], migrate::PHYSICAL_RESOURCE_ID);
    assert_eq!(answer["Data"]["Applied"], all, "{answer}");
    assert_eq!(answer["Data"]["Version"], latest, "{answer}");
    assert!(
        headers.get("content-type").is_none(),
        "the pre-signed URL signs an empty content type: {headers:?}"
    );
    assert!(headers.get("content-length").is_some());
    let after_create = applied(&db).await;
    assert_eq!(
        after_create.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        versions
    );
    assert!(
        columns(&db, "users")
            .await
            .contains(&"session_epoch".into())
    );

    // A repeated Update (same migrations): nothing applied, nothing touched.
    let physical = answer["PhysicalResourceId"].as_str().unwrap().to_owned();
    let update = function
        .invoke(&request(
            "Update",
            &cfn.url("update-1"),
            "update-1",
            Some(&physical),
        ))
        .await;
    assert_eq!(update["Status"], "SUCCESS", "{update}");
    assert_eq!(update["Data"]["Applied"], "", "{update}");
    assert_eq!(
        update["PhysicalResourceId"], physical,
        "an Update keeps the id"
    );
    assert_eq!(
        update["Reason"],
        format!("no pending migration; schema at version {latest}")
    );
    assert_eq!(applied(&db).await, after_create, "installed_on unchanged");

    // Delete: the stack goes away, the data stays.
    let delete = function
        .invoke(&request(
            "Delete",
            &cfn.url("delete-1"),
            "delete-1",
            Some(&physical),
        ))
        .await;
    assert_eq!(delete["Status"], "SUCCESS", "{delete}");
    assert_eq!(applied(&db).await, after_create);
    assert!(!columns(&db, "tasks").await.is_empty(), "tables kept");
    assert_eq!(cfn.answers().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_migration_answers_failed_with_the_reason_and_leaves_no_trace() {
    let Some((db, cfn, function)) = deployment(0).await else {
        return;
    };
    squat_sessions(&db).await;
    let answer = function
        .invoke(&request("Create", &cfn.url("broken"), "broken", None))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(
        reason.contains("sessions") && reason.contains("already exists"),
        "the reason names the failure: {reason}"
    );
    assert_eq!(answer["PhysicalResourceId"], migrate::PHYSICAL_RESOURCE_ID);
    assert_eq!(cfn.answers().len(), 1);

    // The migrations before the failing one (0005, which creates `sessions`) are in; of it,
    // and of any after it, nothing.
    let versions = embedded_versions();
    let before_last: Vec<i64> = versions.iter().copied().filter(|v| *v < 5).collect();
    assert_eq!(
        applied(&db)
            .await
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>(),
        before_last
    );
    assert!(
        !columns(&db, "users")
            .await
            .contains(&"session_epoch".into()),
        "the failing migration's first statement was rolled back"
    );
    assert_eq!(columns(&db, "sessions").await, ["squatter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_an_older_release_leaves_a_newer_schema_alone() {
    let Some((db, cfn, function)) = migrated_deployment().await else {
        return;
    };
    // A newer release applied a migration this build does not have.
    db.record_newer_migration(9999).await;
    let rollback = function
        .invoke(&request(
            "Update",
            &cfn.url("r"),
            "r",
            Some(migrate::PHYSICAL_RESOURCE_ID),
        ))
        .await;
    assert_eq!(rollback["Status"], "SUCCESS", "{rollback}");
    assert_eq!(rollback["Data"]["Version"], "9999");
    assert!(
        rollback["Reason"]
            .as_str()
            .unwrap()
            .contains("from a newer release: 9999"),
        "{rollback}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_and_an_unreachable_database_are_failed_answers() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = TestDb::new(Backend::Postgres).await;
    let cfn = ResponseUrl::start(0).await;
    // The pepper is missing: the same rule as the API functions, but an answer, not a
    // process that never starts.
    let function =
        Function::start(&[("DATABASE_URL", &db.url), ("JWT_SECRET", TEST_JWT_SECRET)]).await;
    let answer = function
        .invoke(&request("Create", &cfn.url("conf"), "conf", None))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    let reason = answer["Reason"].as_str().unwrap();
    assert!(reason.contains("PASSWORD_PEPPER"), "{reason}");
    assert!(!reason.contains(TEST_JWT_SECRET), "no secret in the reason");
    assert!(applied(&db).await.is_empty(), "nothing migrated");
    assert!(function.emulator.init_error().is_none());

    // Nothing listens on the database port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("postgres://app:s3cret-pw@127.0.0.1:{port}/app");
    let function = Function::start(&[
        ("DATABASE_URL", &url),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", TEST_PEPPER),
    ])
    .await;
    let answer = function
        .invoke(&request("Create", &cfn.url("down"), "down", None))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        !answer["Reason"].as_str().unwrap().contains("s3cret-pw"),
        "{answer}"
    );

    // A URL the driver cannot read, password and all: named, never echoed.
    let function = Function::start(&[
        (
            "DATABASE_URL",
            "postgres://app:s3cret-pw@127.0.0.1:notaport/app",
        ),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", TEST_PEPPER),
    ])
    .await;
    let answer = function
        .invoke(&request("Create", &cfn.url("bad"), "bad", None))
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        !answer["Reason"].as_str().unwrap().contains("s3cret-pw"),
        "{answer}"
    );
    assert_eq!(cfn.answers().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_after_a_failed_migration_succeeds_without_migrating_again() {
    let Some((db, cfn, function)) = deployment(0).await else {
        return;
    };
    squat_sessions(&db).await;
    let id = Some(migrate::PHYSICAL_RESOURCE_ID);
    // The deploy: an Update to this build's migrations, which fails.
    let update = function
        .invoke(&request("Update", &cfn.url("u"), "u", id))
        .await;
    assert_eq!(update["Status"], "FAILED", "{update}");
    let after_failure = applied(&db).await;
    // CloudFormation rolls back: the same resource, its previous properties, answered by
    // this (new) function. Migrating again would fail again and wedge the stack.
    let previous = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let rollback = function
        .invoke(&request_for(previous, "Update", &cfn.url("r"), "r", id))
        .await;
    assert_eq!(rollback["Status"], "SUCCESS", "{rollback}");
    assert!(
        rollback["Reason"].as_str().unwrap().contains("rollback"),
        "{rollback}"
    );
    assert_eq!(
        rollback["PhysicalResourceId"],
        migrate::PHYSICAL_RESOURCE_ID
    );
    assert_eq!(applied(&db).await, after_failure, "nothing was run");
    assert_eq!(columns(&db, "sessions").await, ["squatter"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_waiting_on_a_busy_table_gives_up_instead_of_blocking_the_api() {
    let Some((db, cfn, function)) = migrated_deployment().await else {
        return;
    };

    // Another session holds the table the migrator must read, as a long transaction of
    // the API would hold one a migration alters.
    let mut holder = connect(&db).await;
    // Simple-protocol statements: one message each, so also through a proxy.
    sqlx::Executor::execute(&mut holder, "BEGIN").await.unwrap();
    sqlx::Executor::execute(
        &mut holder,
        "LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE",
    )
    .await
    .unwrap();
    // A short invocation: the lock timeout is bounded by the time the function has (half its
    // statement timeout, which is the deadline less the answer's margin and 5 s), here about
    // 2 s rather than LOCK_TIMEOUT.
    let deadline = migrate::ANSWER_MARGIN + Duration::from_secs(9);
    let bound = (deadline - migrate::ANSWER_MARGIN - Duration::from_secs(5)) / 2;
    let started = std::time::Instant::now();
    let update = function
        .invoke_within(
            &request(
                "Update",
                &cfn.url("u"),
                "u",
                Some(migrate::PHYSICAL_RESOURCE_ID),
            ),
            deadline,
        )
        .await;
    let waited = started.elapsed();
    sqlx::Executor::execute(&mut holder, "ROLLBACK")
        .await
        .unwrap();
    assert_eq!(update["Status"], "FAILED", "{update}");
    assert!(
        update["Reason"].as_str().unwrap().contains("lock timeout"),
        "{update}"
    );
    // At the bound (less the few milliseconds the function took to start), and well before
    // LOCK_TIMEOUT: the bound follows the function's time.
    assert!(
        waited >= bound - Duration::from_millis(500) && waited < migrate::LOCK_TIMEOUT,
        "gave up after {waited:?}, the bound being {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_answer_is_sent_again() {
    let Some((_db, cfn, function)) = deployment(2).await else {
        return;
    };
    let answer = function
        .invoke(&request("Delete", &cfn.url("d"), "d", Some("x")))
        .await;
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(cfn.received.puts.load(Ordering::SeqCst), 3);
    assert_eq!(cfn.answers().len(), 1);
}

#[test]
fn the_template_runs_migrations_on_deploy_before_the_api_functions_change() {
    let template = template::template();
    let resources = &template["Resources"];
    let migrations = &resources["Migrations"];
    assert_eq!(migrations["Type"].as_str(), Some("Custom::Migrations"));

    let digest = migrate::MIGRATIONS_DIGEST;
    assert_eq!(
        migrations["Properties"]["MigrationsDigest"].as_str(),
        Some(digest),
        "template.yaml's Migrations.MigrationsDigest must be the digest of migrations/postgres, \
         so that a deploy with a new migration runs the migrate function: set it to {digest}"
    );

    let function = &resources["MigrateFunction"];
    assert_eq!(
        function["Metadata"]["BuildProperties"]["Binary"].as_str(),
        Some("migrate")
    );
    assert!(
        function["Properties"]["Events"].is_badvalue(),
        "the migrate function has no route"
    );
    assert_eq!(
        function["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"].as_i64(),
        Some(0),
        "CloudFormation invokes asynchronously: Lambda must not run a migration again on its own"
    );
    let timeout = function["Properties"]["Timeout"].as_i64().unwrap();
    let service_timeout = migrations["Properties"]["ServiceTimeout"].as_i64().unwrap();
    assert!(
        service_timeout > timeout,
        "CloudFormation waits longer ({service_timeout} s) than the function may run ({timeout} s)"
    );

    let routes = template::HttpApiRoutes::from_template(&template);
    assert!(routes.functions().contains("migrate"));
    assert!(routes.routes().iter().all(|r| r.function != "migrate"));
    for (name, resource) in resources.as_hash().unwrap() {
        let routed = resource["Properties"]["Events"].as_hash().is_some();
        if routed {
            assert_eq!(
                resource["DependsOn"].as_str(),
                Some("Migrations"),
                "{name:?} must go live only after the migrations"
            );
        }
    }
}
