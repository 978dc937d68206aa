//! Lambda entry point of the `auth` function: config, state, router, run.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(auth::router).await
}
