//! Connections to Postgres where they are scarce.
//!
//! Behind a connection proxy that pools by transaction (PgBouncer's transaction mode, RDS
//! Proxy), a server connection serves whichever client has a transaction open, so nothing a
//! request does may outlive its transaction there. `DB_STATEMENT_CACHE_CAPACITY=0` tells the
//! store it is behind one. (CI also runs the whole suite through a real PgBouncer, and the
//! scale benchmark hundreds of function instances through it.)
//!
//! Straight to Postgres, a burst of instances can run the server out of connections: the
//! requests that get none answer 503 with `Retry-After`, write nothing, and the instance
//! serves again once connections free up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use shared::{
    models::Role,
    store::{Store as _, postgres::PgStore},
    testing::{Backend, TestApp, TestDb, test_config},
};

/// The prepared statements left on the server connection after a request of every kind,
/// with the statement cache at `capacity` and a pool of one connection (so the one the
/// requests used is the one looked at).
async fn statements_left_with_cache(db: Arc<TestDb>, capacity: &str) -> Vec<String> {
    statements_left(
        db.clone(),
        &db.url,
        capacity,
        &[("DB_STATEMENT_CACHE_CAPACITY", capacity)],
    )
    .await
}

/// [`statements_left_with_cache`] with the application on `url` and `env`; `name` tells the
/// runs apart.
async fn statements_left(
    db: Arc<TestDb>,
    url: &str,
    name: &str,
    env: &[(&str, &str)],
) -> Vec<String> {
    let config = test_config(url, &[&[("DB_MAX_CONNECTIONS", "1")], env].concat());
    let store = PgStore::connect_lazy(&config.db).unwrap();
    store.migrate().await.unwrap();
    let app = TestApp::from_parts(config, Arc::new(store.clone()), tasks::router, db);
    let user = app
        .create_user(&format!("cache-{name}@example.com"), Role::User)
        .await;
    let created = app
        .post("/v1/tasks")
        .bearer(&user.token)
        .header("idempotency-key", format!("key-{name}"))
        .json(json!({"title": "behind a proxy"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let path = format!("/v1/tasks/{}", created.json()["id"].as_str().unwrap());
    let listed = app.get("/v1/tasks?q=proxy").bearer(&user.token).await;
    assert_eq!(listed.status, StatusCode::OK);
    let patched = app
        .patch(&path)
        .bearer(&user.token)
        .if_match("\"1\"")
        .json(json!({"completed": true}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    let deleted = app.delete(&path).bearer(&user.token).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);

    let mut conn = store.pool().acquire().await.unwrap();
    // A simple-protocol query: it prepares nothing itself.
    let rows = sqlx::Executor::fetch_all(&mut *conn, "SELECT name FROM pg_prepared_statements")
        .await
        .unwrap();
    rows.iter().map(|row| sqlx::Row::get(row, 0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_statement_cache_off_no_prepared_statement_outlives_a_request() {
    if !Backend::Postgres.available() {
        return;
    }
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    if shared::testing::behind_proxy() {
        eprintln!("skipped: behind a proxy, the server connection looked at is not ours");
        return;
    }
    // sqlx's default keeps statements prepared on the connection (named `sqlx_s_N`): what
    // collides on a proxy's server connection, which the setting turns off.
    let cached = statements_left_with_cache(db.clone(), "100").await;
    assert!(
        cached.iter().any(|name| name.starts_with("sqlx_s_")),
        "{cached:?}"
    );
    let left = statements_left_with_cache(db.clone(), "0").await;
    assert_eq!(left, Vec::<String>::new());
    // sqlx's own URL parameter for it means the same.
    let url = shared::testing::with_param(&db.url, "statement-cache-capacity", "0");
    let left = statements_left(db.clone(), &url, "url", &[]).await;
    assert_eq!(left, Vec::<String>::new());
}

/// A role of its own that may not connect at all (`CONNECTION LIMIT 0`: Postgres refuses
/// it with "too many connections", SQLSTATE 53300, as when `max_connections` is reached),
/// then may.
#[test]
fn out_of_connections_answers_503_writes_nothing_and_recovers_by_itself() {
    if !Backend::Postgres.available() {
        return;
    }
    let (ran, logs) = shared::testing::capture_logs(out_of_connections());
    if ran {
        assert!(
            logs.contains("the database accepted no new connection in time"),
            "the log says why: {logs}"
        );
    }
}

/// The scenario; false when skipped.
async fn out_of_connections() -> bool {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    if shared::testing::behind_proxy() {
        eprintln!("skipped: the proxy knows only its own users");
        return false;
    }
    let owner = TestApp::start_on(db.clone(), tasks::router).await;
    let user = owner.create_user("scarce@example.com", Role::User).await;

    let role = format!("scarce_{}", uuid::Uuid::new_v4().simple());
    let (schema,): (String,) = db.rows("SELECT current_schema()::text").await.remove(0);
    for statement in [
        format!("CREATE ROLE {role} LOGIN CONNECTION LIMIT 0"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"),
    ] {
        db.raw_statement("", &statement).await;
    }
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(url, db.url, "the test URL names the postgres user");
    let config = test_config(&url, &[("DB_ACQUIRE_TIMEOUT_MS", "300")]);
    let store = shared::store::connect_lazy(&config.db).unwrap();
    let limited = TestApp::from_parts(config, store, tasks::router, db.clone());

    let listed = limited.get("/v1/tasks").bearer(&user.token).await;
    let created = limited
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(json!({"title": "while full"}))
        .await;
    for answer in [&listed, &created] {
        answer.assert_problem(503, "service_unavailable");
        assert_eq!(answer.header("retry-after"), Some("1"));
    }
    let tasks: Vec<(i64,)> = db.rows("SELECT count(*) FROM tasks").await;
    assert_eq!(tasks, [(0,)], "nothing was written");

    // Connections free up: the same instance serves again, with nothing restarted.
    db.raw_statement("", &format!("ALTER ROLE {role} CONNECTION LIMIT -1"))
        .await;
    let created = limited
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(json!({"title": "after"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let listed = limited.get("/v1/tasks").bearer(&user.token).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.json()["items"].as_array().unwrap().len(), 1);

    limited.state.store.close().await;
    owner.state.store.close().await;
    for statement in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        db.raw_statement("", &statement).await;
    }
    true
}

/// The template's optional RDS Proxy: made only when given a database, the functions then
/// connect through it with its secret's credentials and the statement cache off, and the
/// migrations wait until it has its target; `MigrationsDatabaseUrl` reaches the migrate
/// function. (`cfn-lint` and `sam validate --lint` check the template's syntax and types in
/// CI; this checks what it means.)
#[test]
fn the_template_puts_an_optional_rds_proxy_in_front_with_the_statement_cache_off() {
    let template = shared::testing::template::template();
    // Short-form tags read as their plain values: `!If [c, a, b]` is `[c, a, b]`.
    let branch = |value: &shared::testing::template::Yaml, index: usize| {
        value[index].as_str().map(str::to_owned).unwrap_or_default()
    };
    let env = &template["Globals"]["Function"]["Environment"]["Variables"];
    let cache = &env["DB_STATEMENT_CACHE_CAPACITY"];
    assert_eq!(
        [branch(cache, 0), branch(cache, 1), branch(cache, 2)],
        ["MakeDbProxy", "0", "DbStatementCacheCapacity"]
    );
    let url = &env["DATABASE_URL"];
    assert_eq!(branch(url, 0), "MakeDbProxy");
    assert!(
        branch(url, 1).contains("@${DbProxy.Endpoint}:5432/"),
        "{url:?}"
    );
    assert!(branch(url, 1).contains("${ProxySecretArn}:SecretString:username"));
    let password = &env["DATABASE_PASSWORD"];
    assert_eq!(branch(password, 0), "MakeDbProxy");
    assert!(branch(password, 1).contains("${ProxySecretArn}:SecretString:password"));

    let resources = &template["Resources"];
    for name in ["DbProxyRole", "DbProxy", "DbProxyTargetGroup"] {
        assert_eq!(
            resources[name]["Condition"].as_str(),
            Some("MakeDbProxy"),
            "{name}"
        );
    }
    let proxy = &resources["DbProxy"]["Properties"];
    assert_eq!(proxy["EngineFamily"].as_str(), Some("POSTGRESQL"));
    assert_eq!(proxy["Auth"][0]["AuthScheme"].as_str(), Some("SECRETS"));
    assert_eq!(proxy["RequireTLS"].as_bool(), Some(true));
    let targets = &resources["DbProxyTargetGroup"]["Properties"];
    assert_eq!(
        branch(&targets["DBInstanceIdentifiers"], 0),
        "ProxyToInstance"
    );
    assert_eq!(
        branch(&targets["DBClusterIdentifiers"], 0),
        "ProxyToCluster"
    );
    assert_eq!(
        branch(&resources["Migrations"]["Properties"]["DbProxyTarget"], 1),
        "DbProxyTargetGroup"
    );
    assert_eq!(
        resources["MigrateFunction"]["Properties"]["Environment"]["Variables"]
            ["MIGRATIONS_DATABASE_URL"]
            .as_str(),
        Some("MigrationsDatabaseUrl")
    );
    let conditions = &template["Conditions"]["MakeDbProxy"];
    assert_eq!(
        [branch(conditions, 0), branch(conditions, 1)],
        ["ProxyToInstance", "ProxyToCluster"]
    );
}
