//! Lambda entry point of the `auth` function: config, state, router, run.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(auth::router).await
}
