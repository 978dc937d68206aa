//! Lambda entry point of the `health` function: config, state, router, run.

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    shared::lambda::serve(health::router).await
}
