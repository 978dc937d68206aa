//! The `auth` function. Its routes arrive with their issue; until then the router is empty
//! and every path answers the stack's 404 problem.

use axum::Router;
use shared::AppState;

/// The routes of this function, with state applied.
pub fn router(state: AppState) -> Router {
    Router::new().with_state(state)
}
