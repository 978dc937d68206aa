//! Test support, behind the `testing` feature (dev-dependencies only): a fresh database per
//! test on either backend, and request helpers around `tower::ServiceExt::oneshot` on the
//! real routers with the real stack.
//!
//! SQLite tests get a database file in their own temporary directory. Postgres tests get
//! their own schema in the database named by `TEST_DATABASE_URL`, dropped afterwards. When
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
                let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("creating the test schema");
                ensure_trigram_extension(&mut conn).await;
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
                Self {
                    url,
                    cleanup: Cleanup::Schema { admin_url, schema },
                }
            }
        }
    }
}

/// pg_trgm in `public`, once per database, before any test schema migrates: created by
/// the first migration instead, it would land in that test's schema, go when the schema
/// is dropped, and take every other test's trigram index with it. Concurrent test
/// processes may race to create it; the loser finds it there.
async fn ensure_trigram_extension(conn: &mut sqlx::PgConnection) {
    let create = "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public";
    if sqlx::query(create).execute(&mut *conn).await.is_err() {
        sqlx::query(create)
            .execute(&mut *conn)
            .await
            .expect("creating the pg_trgm extension for the tests");
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
/// foreign keys, as the app's do: sqlx's default).
async fn execute_raw(url: &str, sql: &Sql) {
    async fn on<D: Db>(url: &str, sql: &Sql) {
        let mut conn = <D::Connection as sqlx::Connection>::connect(url)
            .await
            .expect("connecting to the test database");
        D::execute(&mut conn, sql)
            .await
            .expect("running a raw statement");
    }
    match Backend::of(url) {
        Backend::Sqlite => on::<sqlx::Sqlite>(url, sql).await,
        Backend::Postgres => on::<sqlx::Postgres>(url, sql).await,
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Schema { admin_url, schema } = &self.cleanup {
            let (admin_url, schema) = (admin_url.clone(), schema.clone());
            // Drop runs inside the test's runtime; do the async clean-up on a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("building a clean-up runtime");
                rt.block_on(async {
                    if let Ok(mut conn) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await
                    {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
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
        let db = TestDb::new(backend).await;
        let config = test_config(&db.url, extra);
        let store: DynStore = store::connect_lazy(&config.db).expect("building the store");
        store.migrate().await.expect("migrating the test database");
        Self::from_parts(config, store, routes, Arc::new(db))
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

    fn from_parts(
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

/// Creates a user with [`TEST_PASSWORD`] through `state`'s store and signs a token for them.
pub async fn create_user(state: &AppState, email: &str, role: crate::models::Role) -> TestUser {
    let hash = state
        .passwords
        .hash(TEST_PASSWORD)
        .await
        .expect("hashing a test password");
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
