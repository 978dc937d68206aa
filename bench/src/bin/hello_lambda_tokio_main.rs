//! The hello world as most Lambda examples write it: `#[tokio::main]`, a multi-thread
//! runtime with a worker per core. `bench/run` reports the functions against it too, to
//! show what the current-thread runtime (one request at a time per instance) is worth.

#[path = "../hello.rs"]
mod hello;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::run(hello::router()).await
}
