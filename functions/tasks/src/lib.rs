//! The `tasks` function: owner-scoped CRUD, filtered keyset-paginated lists, ETag /
//! If-Match optimistic concurrency and idempotent create (README, "API"; the `tasks` operations of `openapi.json`). Every route
//! takes [`AuthUser`](shared::auth::AuthUser), so every route needs a bearer token, and
//! every query is scoped to its owner: another user's task is a 404, like a missing one.

mod create;
mod item;
mod list;

use axum::{Router, http::header, routing::get};
use shared::AppState;

/// This function's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create::create, list::list, item::get, item::patch, item::delete),
    modifiers(&PATCH_IS_NON_EMPTY)
)]
pub struct ApiDoc;

const PATCH_IS_NON_EMPTY: shared::openapi::NonEmptyBody =
    shared::openapi::NonEmptyBody("PatchTask");

/// The routes of this function, with state applied.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/tasks", get(list::list).post(create::create))
        .route(
            "/v1/tasks/{id}",
            get(item::get).patch(item::patch).delete(item::delete),
        )
        .with_state(state)
}

/// The strong ETag of a task version: `"3"`. (A header pair of strings: axum converts it
/// to a header value when the response is built.)
fn etag(version: i64) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}
