//! The floor for cold start and binary size: `lambda_http` serving one axum route, nothing
//! else. Built with the same profile and crate versions as the functions, and on the same
//! current-thread runtime, so the ratio counts only the functions' own work.

#[path = "../hello.rs"]
mod hello;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(hello::router()).await
}
