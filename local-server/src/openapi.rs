//! The OpenAPI 3.1 document of the whole API: each function crate's operations (described
//! beside their handlers), the local server's own `/openapi.json`, and what
//! the shared stack answers to every request. `openapi.json` at the repository root is a
//! copy that a test keeps equal to [`document`]; regenerate it with
//! `cargo run -p local-server -- openapi > openapi.json`.

use utoipa::{Modify as _, OpenApi};

use shared::openapi::StackResponses;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Task API",
        description = "Owner-scoped tasks with JWT auth, an admin surface and health probes. \
            The same contract is served by the AWS Lambda functions and the local server; \
            `/openapi.json` exists only on the local server and the container, which serve \
            Prometheus `/metrics` on a private listener of their own (`METRICS_ADDR`). \
            Every error is `application/problem+json`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(crate::openapi_json),
    components(schemas(shared::error::Problem)),
    tags(
        (name = "auth", description = "Registration, sessions and the caller's account."),
        (name = "tasks", description = "The caller's own tasks."),
        (name = "admin", description = "User management, stats and the audit log (admins only)."),
        (name = "health", description = "Probes; no authentication."),
        (name = "local server", description = "Only on the local server and the container."),
    ),
)]
struct LocalServer;

/// The whole document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut api = LocalServer::openapi();
    api.merge(auth::ApiDoc::openapi());
    api.merge(tasks::ApiDoc::openapi());
    api.merge(admin::ApiDoc::openapi());
    api.merge(health::ApiDoc::openapi());
    // After merging, so that every operation gets the stack's answers.
    StackResponses.modify(&mut api);
    api
}

/// The document as served and committed: pretty JSON with a final newline.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .unwrap_or_else(|_| unreachable!("the document is plain data and always serialises"));
    json.push('\n');
    json
}
