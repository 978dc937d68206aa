//! A Lambda runtime-API emulator for tests, on loopback: just enough of the API that AWS's
//! runtime serves to a function process (`GET …/invocation/next`, `POST …/{id}/response`,
//! `POST …/{id}/error`, `POST …/init/error`) to run the compiled function binaries as child
//! processes, feed them events and read what they answer.
//!
//! It also records when the first `/next` arrives, which is how cold-start tests and
//! benchmarks see that a binary finished its init.
//!
//! - [`emulator`]: the runtime API itself; [`process`]: a function binary as a child
//!   process; [`events`]: the events a function is fed and the responses it returns;
//! - here: [`LambdaFunction`] (one binary on a fresh schema) and [`Gateway`] (the template's
//!   HTTP API in front of all of them).

mod emulator;
mod events;
mod process;

pub use emulator::{Outcome, RuntimeEmulator, UNTRACED};
pub use events::{HttpRequestSpec, LambdaResponse, http_api_event};
pub use process::FunctionProcess;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};

/// A compiled function binary under the emulator, on a fresh migrated Postgres schema
/// (the Lambda binaries carry Postgres only).
pub struct LambdaFunction {
    // Fields drop in order: the process is killed before its emulator goes away, so it never
    // sees the runtime API vanish under a pending `/next`.
    pub process: FunctionProcess,
    pub emulator: RuntimeEmulator,
    pub db: Arc<super::TestDb>,
}

impl std::fmt::Debug for LambdaFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaFunction").finish_non_exhaustive()
    }
}

impl LambdaFunction {
    /// A fresh migrated Postgres schema for functions to share.
    /// Call only after `Backend::Postgres.available()`.
    pub async fn database() -> Arc<super::TestDb> {
        let db = super::TestDb::new(super::Backend::Postgres).await;
        let config = super::test_config(&db.url, &[]);
        let store = crate::store::connect_lazy(&config.db).expect("building the store");
        store.migrate().await.expect("migrating the test schema");
        store.close().await;
        Arc::new(db)
    }

    /// Starts `binary` on a database of its own.
    /// Call only after `Backend::Postgres.available()`.
    pub async fn start(binary: &Path, function_name: &str, extra_env: &[(&str, &str)]) -> Self {
        Self::start_on(Self::database().await, binary, function_name, extra_env).await
    }

    /// Starts `binary` on `db` (shared with other functions).
    pub async fn start_on(
        db: Arc<super::TestDb>,
        binary: &Path,
        function_name: &str,
        extra_env: &[(&str, &str)],
    ) -> Self {
        let emulator = RuntimeEmulator::start().await;
        let mut env: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", db.url.as_str()),
            ("JWT_SECRET", super::TEST_JWT_SECRET),
            ("PASSWORD_PEPPER", super::TEST_PEPPER),
            ("RUST_LOG", "warn"),
        ];
        env.extend_from_slice(super::database_env());
        env.extend_from_slice(extra_env);
        let process = FunctionProcess::spawn(binary, &emulator, function_name, &env);
        Self {
            process,
            emulator,
            db,
        }
    }

    /// Creates a user in the function's database, with a token the function accepts.
    pub async fn create_user(&self, email: &str, role: crate::models::Role) -> super::TestUser {
        let state = crate::AppState::new(super::test_config(&self.db.url, &[]))
            .expect("building a state for the function's database");
        let user = super::create_user(&state, email, role).await;
        state.store.close().await;
        user
    }

    /// Sends one HTTP API (v2) request through the function.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> LambdaResponse {
        let event = http_api_event(method, path, headers, body);
        self.invoke(&event).await
    }

    /// Sends any event through the function and reads its HTTP answer.
    pub async fn invoke(&self, event: &Value) -> LambdaResponse {
        LambdaResponse::from_outcome(self.emulator.invoke(event, Duration::from_secs(30)).await)
    }

    /// [`invoke`](Self::invoke) in the X-Ray trace `trace` (`Lambda-Runtime-Trace-Id`).
    pub async fn invoke_traced(&self, event: &Value, trace: &str) -> LambdaResponse {
        LambdaResponse::from_outcome(
            self.emulator
                .invoke_traced(event, trace, Duration::from_secs(30))
                .await,
        )
    }
}

/// The template's HTTP API in front of the function binaries: one instance of each routed
/// function on one database, requests routed as API Gateway routes them
/// ([`super::template::HttpApiRoutes`]).
pub struct Gateway {
    routes: super::template::HttpApiRoutes,
    functions: BTreeMap<String, LambdaFunction>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("functions", &self.functions.keys())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Starts every function `template.yaml` routes to, on `db`; `binary` gives the path
    /// of a function's compiled binary from its name.
    pub async fn start_on(db: Arc<super::TestDb>, binary: impl Fn(&str) -> PathBuf) -> Self {
        Self::start_with(db, binary, &[]).await
    }

    /// [`Self::start_on`], every function with the extra variables `env`.
    pub async fn start_with(
        db: Arc<super::TestDb>,
        binary: impl Fn(&str) -> PathBuf,
        env: &[(&str, &str)],
    ) -> Self {
        let routes = super::template::HttpApiRoutes::from_workspace_template();
        let routed: BTreeSet<String> = routes
            .routes()
            .iter()
            .map(|r| r.function.clone())
            .chain(routes.default_function().map(str::to_owned))
            .collect();
        let mut functions = BTreeMap::new();
        for name in routed {
            let function = LambdaFunction::start_on(db.clone(), &binary(&name), &name, env).await;
            functions.insert(name, function);
        }
        Self { routes, functions }
    }

    /// Sends one request through the HTTP API: to the function of the route API Gateway
    /// would select (with its route key and path parameters in the event), or, when no
    /// route matches, API Gateway's own 404.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> LambdaResponse {
        let raw_path = path.split_once('?').map_or(path, |(p, _)| p);
        let Some(selected) = self.routes.select(method, raw_path) else {
            let (status, body) = super::template::gateway_not_found();
            return LambdaResponse {
                status,
                headers: HashMap::from([(
                    "content-type".to_owned(),
                    "application/json".to_owned(),
                )]),
                body: body.to_string(),
            };
        };
        let mut event = http_api_event(method, path, headers, body);
        event["routeKey"] = Value::String(selected.route_key.clone());
        event["requestContext"]["routeKey"] = Value::String(selected.route_key);
        if !selected.path_parameters.is_empty() {
            event["pathParameters"] = json!(selected.path_parameters);
        }
        self.functions[&selected.function].invoke(&event).await
    }
}
