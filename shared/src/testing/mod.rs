//! Test support, behind the `testing` feature (dev-dependencies only): a fresh database per
//! test on either backend, and request helpers around `tower::ServiceExt::oneshot` on the
//! real routers with the real stack.
//!
//! SQLite tests get a database file in their own temporary directory. Postgres tests get
//! their own schema in the database named by `TEST_DATABASE_URL` (chosen by `search_path`
//! in the connection's startup `options`), dropped afterwards. Where `TEST_DATABASE_URL`
//! is a connection proxy that cannot pass `options` on (PgBouncer), each test gets a
//! database of its own through it instead (the proxy must route any database name: a `*`
//! entry in PgBouncer's `[databases]`). When
//! that variable is unset the Postgres variant of a test prints why and passes, except under
//! `CI=true`, where a missing Postgres fails the run.
//!
//! Panicking is how test support reports a broken set-up, hence the `expect`s.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use axum::{
    Router,
    body::{Body, Bytes},
    http::{HeaderMap, Method, Request, StatusCode},
};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

pub mod lambda;
mod logs;
pub mod otlp;
mod request;
pub mod smtp;
pub mod template;

pub use logs::capture_logs;
pub use request::TestRequest;

use crate::{
    config::{Config, Runtime},
    http::{StackConfig, stack},
    state::AppState,
    store::{
        self, DynStore,
        db::Db,
        sql::{Param, Sql},
    },
};

/// Fixed test secrets: long enough for production rules.
pub const TEST_JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123456789";
pub const TEST_PEPPER: &str = "test-pepper-0123456789abcdef0123456789abcd";
pub const POSTGRES_URL_VAR: &str = "TEST_DATABASE_URL";
/// The password of users made by [`TestApp::create_user`].
pub const TEST_PASSWORD: &str = "test password 0123456789";

/// A user made for a test, with a valid access token of a session of their own.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: uuid::Uuid,
    pub token: String,
    pub session_id: uuid::Uuid,
}

pub use crate::config::Backend;

impl Backend {
    /// Whether tests for this backend can run here; prints the reason when not.
    /// Panics under `CI=true` when Postgres is not configured.
    pub fn available(self) -> bool {
        match self {
            Backend::Sqlite => true,
            Backend::Postgres => {
                if std::env::var(POSTGRES_URL_VAR).is_ok_and(|v| !v.is_empty()) {
                    return true;
                }
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "{POSTGRES_URL_VAR} must be set when CI=true: Postgres tests may not skip in CI"
                    );
                }
                eprintln!("skipping Postgres variant: {POSTGRES_URL_VAR} is not set");
                false
            }
        }
    }
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { admin_url: String, schema: String },
    Database { admin_url: String, name: String },
}

/// How Postgres tests are kept apart on `TEST_DATABASE_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// A schema each, chosen by `search_path` in the startup `options` (then `public`,
    /// where pg_trgm is: [`ensure_trigram_extension`]).
    Schema,
    /// A database each: the server at the URL does not pass `options` on (a proxy).
    Database,
}

/// How tests are kept apart on `admin_url`, asked once per test process: whether a
/// connection there takes a `search_path` from its startup options (PgBouncer refuses the
/// parameter, or drops it when told to ignore it). Also notes whether `admin_url` is a
/// proxy at all ([`behind_proxy`]): one that refuses or drops the options, or whose server
/// listens on another port than the URL names.
async fn isolation(admin_url: &str) -> Isolation {
    static ISOLATION: tokio::sync::OnceCell<Isolation> = tokio::sync::OnceCell::const_new();
    *ISOLATION
        .get_or_init(|| async {
            let proxied = |why: &str| {
                eprintln!("TEST_DATABASE_URL is taken for a proxy: {why}");
                PROXIED.store(true, std::sync::atomic::Ordering::Relaxed);
            };
            let probe = with_param(admin_url, "options", "-c search_path=pg_temp");
            let Ok(mut conn) = try_pg_connect(&probe).await else {
                proxied("it refuses a search_path in the startup options");
                return Isolation::Database;
            };
            let row = sqlx::Executor::fetch_one(
                &mut conn,
                "SELECT current_setting('search_path'), inet_server_port()",
            )
            .await
            .expect("reading the search path");
            let (path, server_port): (String, Option<i32>) =
                (sqlx::Row::get(&row, 0), sqlx::Row::get(&row, 1));
            let url_port = admin_url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .expect("TEST_DATABASE_URL is a Postgres URL")
                .get_port();
            if server_port.is_some_and(|port| i64::from(port) != i64::from(url_port)) {
                proxied("the server behind it listens on another port than the URL names");
            }
            if path == "pg_temp" {
                Isolation::Schema
            } else {
                proxied("it drops a search_path in the startup options");
                Isolation::Database
            }
        })
        .await
}

/// Set once `TEST_DATABASE_URL` is found to be a proxy ([`Isolation::Database`]).
static PROXIED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// What the application needs to be told about the test database: behind a proxy that
/// pools by transaction, `DB_STATEMENT_CACHE_CAPACITY=0` ([`crate::store::db::Statements`]).
/// Part of [`test_config`]; a function process started by a test gets it too.
pub fn database_env() -> &'static [(&'static str, &'static str)] {
    if behind_proxy() {
        &[("DB_STATEMENT_CACHE_CAPACITY", "0")]
    } else {
        &[]
    }
}

/// Whether the test database is reached through a proxy (known once a [`TestDb`] was made):
/// a server connection's identity (`pg_backend_pid()`) is then the proxy's to choose.
pub fn behind_proxy() -> bool {
    PROXIED.load(std::sync::atomic::Ordering::Relaxed)
}

/// `url` with the query parameter `name` set to `value` (percent-encoded).
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    let value = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
    format!("{url}{separator}{name}={value}")
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}/test.db", dir.path().display());
                Self {
                    url,
                    cleanup: Cleanup::Dir(dir),
                }
            }
            Backend::Postgres => {
                let admin_url = std::env::var(POSTGRES_URL_VAR)
                    .expect("Backend::available() is checked before creating a Postgres TestDb");
                let name = format!("test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = try_pg_connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
                match isolation(&admin_url).await {
                    Isolation::Schema => {
                        run_admin(&mut conn, &format!("CREATE SCHEMA {name}")).await;
                        ensure_trigram_extension(&mut conn).await;
                        let url = with_param(
                            &admin_url,
                            "options",
                            &format!("-c search_path={name},public"),
                        );
                        Self {
                            url,
                            cleanup: Cleanup::Schema {
                                admin_url,
                                schema: name,
                            },
                        }
                    }
                    Isolation::Database => {
                        run_admin(&mut conn, &format!("CREATE DATABASE {name}")).await;
                        Self {
                            url: with_database(&admin_url, &name),
                            cleanup: Cleanup::Database { admin_url, name },
                        }
                    }
                }
            }
        }
    }
}

/// Runs a statement without parameters on the admin connection, as one simple-protocol
/// message (which a transaction-pooling proxy passes whole to one server connection).
async fn run_admin(conn: &mut sqlx::PgConnection, statement: &str) {
    use sqlx::Executor as _;
    conn.execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// pg_trgm in `public`, once per database, before any test schema migrates: created by
/// the first migration instead, it would land in that test's schema, go when the schema
/// is dropped, and take every other test's trigram index with it. Concurrent test
/// processes may race to create it; the loser finds it there.
async fn ensure_trigram_extension(conn: &mut sqlx::PgConnection) {
    use sqlx::Executor as _;
    let create = "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public";
    if conn.execute(create).await.is_err() {
        run_admin(conn, create).await;
    }
}

impl TestDb {
    /// Records `version` as applied, as a newer release's migration this build does not
    /// know (a rollback, or an older instance still running): for the migration runner's
    /// tests.
    pub async fn record_newer_migration(&self, version: i64) {
        let sql = Sql::raw(
            Backend::of(&self.url),
            "INSERT INTO _sqlx_migrations \
             (version, description, success, checksum, execution_time) \
             VALUES ($1, 'from a newer release', true, $2, 1)",
            vec![Param::Int(version), Param::Bytes(vec![0])],
        );
        execute_raw(&self.url, &sql).await;
    }

    /// The rows of one hand-written read without parameters, straight from this database
    /// (unnamed and in a transaction, so also through a proxy).
    pub async fn rows<T: crate::store::db::Record>(&self, select: &str) -> Vec<T> {
        async fn on<D: Db, T: crate::store::db::Record>(
            mut conn: D::Connection,
            sql: &Sql,
        ) -> Vec<T> {
            use sqlx::Connection as _;
            let mut tx = conn.begin().await.expect("beginning a read");
            let rows = D::fetch_all(&mut tx, sql, false).await.expect("reading");
            tx.commit().await.expect("ending a read");
            rows
        }
        let backend = Backend::of(&self.url);
        let sql = Sql::raw(backend, select, Vec::new());
        match backend {
            Backend::Sqlite => on::<sqlx::Sqlite, T>(sqlite_connect(&self.url).await, &sql).await,
            Backend::Postgres => on::<sqlx::Postgres, T>(pg_connect(&self.url).await, &sql).await,
        }
    }

    /// Applies the migrations up to `version` only, as an older release left the database.
    pub async fn migrate_to(&self, version: i64) {
        self.migrate_to_text(version, None).await;
    }

    /// [`Self::migrate_to`], with migration `version` in an earlier text `text` (as a
    /// database migrated before that migration was edited has it).
    pub async fn migrate_to_text(&self, version: i64, text: Option<&str>) {
        let config = test_config(&self.url, &[]);
        let older = |embedded: &sqlx::migrate::Migrator| sqlx::migrate::Migrator {
            migrations: embedded
                .iter()
                .filter(|m| m.version <= version)
                .map(|m| match text {
                    Some(text) if m.version == version => sqlx::migrate::Migration::new(
                        m.version,
                        m.description.clone(),
                        m.migration_type,
                        text.to_owned().into(),
                        text.starts_with("-- no-transaction"),
                    ),
                    _ => m.clone(),
                })
                .collect::<Vec<_>>()
                .into(),
            ..*embedded
        };
        match Backend::of(&self.url) {
            Backend::Sqlite => {
                let store = crate::store::sqlite::SqliteStore::connect_lazy(&config.db)
                    .expect("opening the test database");
                older(<sqlx::Sqlite as crate::store::db::Driver>::migrator())
                    .run(store.pool())
                    .await
                    .expect("migrating to an older version");
                store.pool().close().await;
            }
            Backend::Postgres => {
                let store = crate::store::postgres::PgStore::connect_lazy(&config.db)
                    .expect("opening the test database");
                let embedded = older(<sqlx::Postgres as crate::store::db::Driver>::migrator());
                store
                    .migrate_with(&embedded, None)
                    .await
                    .expect("migrating to an older version");
                store.pool().close().await;
            }
        }
    }

    /// Runs one hand-written statement without parameters straight on this database,
    /// bypassing the store: `sqlite` or `postgres` by backend.
    pub async fn raw_statement(&self, sqlite: &str, postgres: &str) {
        let backend = Backend::of(&self.url);
        let text = match backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        execute_raw(&self.url, &Sql::raw(backend, text, Vec::new())).await;
    }
}

/// Runs `sql` once, on a connection of its own to `url` (SQLite connections enforce
/// foreign keys, as the app's do: sqlx's default), unnamed and in a transaction, as the
/// store does behind a proxy.
async fn execute_raw(url: &str, sql: &Sql) {
    async fn on<D: Db>(mut conn: D::Connection, sql: &Sql) {
        use sqlx::Connection as _;
        let mut tx = conn.begin().await.expect("beginning a raw statement");
        D::execute(&mut tx, sql, false)
            .await
            .expect("running a raw statement");
        tx.commit().await.expect("committing a raw statement");
    }
    match Backend::of(url) {
        Backend::Sqlite => on::<sqlx::Sqlite>(sqlite_connect(url).await, sql).await,
        Backend::Postgres => on::<sqlx::Postgres>(pg_connect(url).await, sql).await,
    }
}

async fn sqlite_connect(url: &str) -> sqlx::SqliteConnection {
    <sqlx::SqliteConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connecting to the test database")
}

/// A connection of a test's own to a Postgres URL. It sends no `extra_float_digits`, as
/// the application sends none: PgBouncer refuses a startup parameter it was not told to
/// ignore.
pub async fn try_pg_connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    let options = url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .extra_float_digits(None);
    sqlx::Connection::connect_with(&options).await
}

/// [`try_pg_connect`], for a database that must be there.
pub async fn pg_connect(url: &str) -> sqlx::PgConnection {
    try_pg_connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test database: {e}"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, statement) = match &self.cleanup {
            Cleanup::Dir(_) => return,
            Cleanup::Schema { admin_url, schema } => (
                admin_url.clone(),
                format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
            ),
            // Connections a proxy keeps to it are ended with it.
            Cleanup::Database { admin_url, name } => (
                admin_url.clone(),
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ),
        };
        // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("building a clean-up runtime");
            rt.block_on(async {
                if let Ok(mut conn) = try_pg_connect(&admin_url).await {
                    let _ = sqlx::Executor::execute(&mut conn, statement.as_str()).await;
                }
            });
        })
        .join();
    }
}

/// Configuration for tests: production rules, fixed secrets, `extra` on top.
pub fn test_config(database_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("APP_ENV".into(), "production".into()),
        ("DATABASE_URL".into(), database_url.into()),
        ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
        ("PASSWORD_PEPPER".into(), TEST_PEPPER.into()),
    ];
    vars.extend(
        database_env()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Config::from_lookup(Runtime::LocalServer, |name| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("test configuration is valid")
}

/// A router under test: the real `routes(state)` behind the real stack, on a fresh database.
pub struct TestApp {
    pub state: AppState,
    pub app: Router,
    pub db: Arc<TestDb>,
}

impl TestApp {
    pub async fn start(backend: Backend, routes: fn(AppState) -> Router) -> Self {
        Self::start_with(backend, routes, &[]).await
    }

    /// Like [`TestApp::start`], with extra configuration variables.
    pub async fn start_with(
        backend: Backend,
        routes: fn(AppState) -> Router,
        extra: &[(&str, &str)],
    ) -> Self {
        let db = Arc::new(TestDb::new(backend).await);
        let config = test_config(&db.url, extra);
        let store: DynStore = store::connect_lazy(&config.db).expect("building the store");
        store.migrate().await.expect("migrating the test database");
        Self::from_parts(config, store, routes, db)
    }

    /// An app on `db` (shared with other apps), migrated.
    pub async fn start_on(db: Arc<TestDb>, routes: fn(AppState) -> Router) -> Self {
        let config = test_config(&db.url, &[]);
        let store: DynStore = store::connect_lazy(&config.db).expect("building the store");
        store.migrate().await.expect("migrating the test database");
        Self::from_parts(config, store, routes, db)
    }

    /// A second app ("another instance") on the same database.
    pub fn another_instance(&self, routes: fn(AppState) -> Router) -> Self {
        self.another_instance_with(routes, &[])
    }

    /// A second app on the same database, with extra configuration.
    pub fn another_instance_with(
        &self,
        routes: fn(AppState) -> Router,
        extra: &[(&str, &str)],
    ) -> Self {
        let config = test_config(&self.db.url, extra);
        let store = store::connect_lazy(&config.db).expect("building the store");
        Self::from_parts(config, store, routes, self.db.clone())
    }

    /// Marks a user disabled straight in the database, bypassing any API.
    pub async fn disable_user(&self, id: uuid::Uuid) {
        self.raw_user_statement(
            "UPDATE users SET disabled = 1 WHERE id = ?1",
            "UPDATE users SET disabled = true WHERE id = $1",
            id,
        )
        .await;
    }

    /// Deletes a user straight in the database, bypassing any API.
    pub async fn delete_user_row(&self, id: uuid::Uuid) {
        self.raw_user_statement(
            "DELETE FROM users WHERE id = ?1",
            "DELETE FROM users WHERE id = $1",
            id,
        )
        .await;
    }

    /// [`TestDb::raw_statement`] on the app's database.
    pub async fn raw_statement(&self, sqlite: &str, postgres: &str) {
        self.db.raw_statement(sqlite, postgres).await;
    }

    /// Like [`Self::raw_statement`], with `id` bound as the statement's one parameter.
    pub async fn raw_user_statement(&self, sqlite: &str, postgres: &str, id: uuid::Uuid) {
        let backend = Backend::of(&self.db.url);
        let text = match backend {
            Backend::Sqlite => sqlite,
            Backend::Postgres => postgres,
        };
        let sql = Sql::raw(backend, text, vec![Param::Uuid(id)]);
        execute_raw(&self.db.url, &sql).await;
    }
    /// Creates a user straight in the store and signs an access token for them, for tests
    /// of routers that do not include the auth function.
    pub async fn create_user(&self, email: &str, role: crate::models::Role) -> TestUser {
        create_user(&self.state, email, role).await
    }

    /// An app over `store` (built by the caller, e.g. as a concrete backend store) on `db`.
    pub fn from_parts(
        config: Config,
        store: DynStore,
        routes: fn(AppState) -> Router,
        db: Arc<TestDb>,
    ) -> Self {
        let state = AppState::with_store(config, store);
        let stack_config = StackConfig::new(&state);
        let app = stack(routes(state.clone()), &stack_config);
        Self { state, app, db }
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send(&self.app, request).await
    }
}

/// [`TEST_PASSWORD`] hashed by `state`'s hasher, once per test process for each pepper and
/// set of Argon2 parameters: a PHC string carries its own salt and parameters, so one hash
/// verifies for every user that shares them. Made users are fixtures, not what a test
/// checks; hashing each one anew was over a third of the suite's CPU time.
async fn test_password_hash(state: &AppState) -> String {
    use secrecy::ExposeSecret as _;
    type Key = (String, u32, u32, u32);
    static HASHES: std::sync::Mutex<Vec<(Key, String)>> = std::sync::Mutex::new(Vec::new());
    let argon2 = &state.config.argon2;
    let key = (
        state.config.password_pepper.expose_secret().to_owned(),
        argon2.memory_kib,
        argon2.iterations,
        argon2.parallelism,
    );
    let known = |hashes: &[(Key, String)]| {
        hashes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, hash)| hash.clone())
    };
    if let Some(hash) = known(&HASHES.lock().unwrap()) {
        return hash;
    }
    let hash = state
        .passwords
        .hash(TEST_PASSWORD)
        .await
        .expect("hashing a test password");
    let mut hashes = HASHES.lock().unwrap();
    if let Some(first) = known(&hashes) {
        return first;
    }
    hashes.push((key, hash.clone()));
    hash
}

/// Creates a user with [`TEST_PASSWORD`] through `state`'s store and signs a token for them.
pub async fn create_user(state: &AppState, email: &str, role: crate::models::Role) -> TestUser {
    let hash = test_password_hash(state).await;
    let now = crate::models::now();
    let user = state
        .store
        .users()
        .create(
            &crate::models::NewUser {
                id: uuid::Uuid::now_v7(),
                email: crate::models::Email::parse(email).expect("a valid test email"),
                name: crate::models::UserName::parse("Test User").expect("a valid name"),
                password_hash: hash,
                role,
                email_verified: false,
                now,
            },
            None,
        )
        .await
        .expect("creating a test user");
    let session = crate::store::NewSession {
        id: uuid::Uuid::now_v7(),
        user_id: user.id,
        epoch: 0,
        created_at: now,
        expires_at: now + state.config.session_max_age,
    };
    let first = crate::store::NextRefreshToken {
        id: uuid::Uuid::now_v7(),
        hash: crate::auth::refresh::generate().1,
        expires_at: now + state.config.jwt.refresh_ttl,
    };
    let started = state
        .store
        .tokens()
        .start_session(&session, &first)
        .await
        .expect("starting a test session");
    assert!(started, "a new user's session starts");
    let token = state
        .jwt
        .issue(user.id, user.role, session.id, now)
        .expect("signing a test token");
    TestUser {
        id: user.id,
        token,
        session_id: session.id,
    }
}

pub fn request(method: Method, path: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(path)
}

/// Sends one request through `app` with `oneshot`.
pub async fn send(app: &Router, request: Request<Body>) -> TestResponse {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("reading the response body")
        .to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the problem+json contract (README, "API") for an error response and returns the body.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> serde_json::Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "error responses are problem+json"
        );
        let body = self.json();
        assert_eq!(body["status"], status, "{body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["type"].is_string() && body["title"].is_string(),
            "{body}"
        );
        let header_id = self.header("x-request-id").expect("x-request-id header");
        assert_eq!(
            body["request_id"], header_id,
            "request_id matches the header"
        );
        body
    }
}

/// Runs each listed `async fn case(backend: Backend)` once per backend.
///
/// ```ignore
/// shared::backend_tests!(ready_answers_200, health_is_ok);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::testing::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::testing::Backend::Postgres.available() {
                        super::$name($crate::testing::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}
