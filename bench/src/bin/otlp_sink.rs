//! A trace collector that keeps up: an OTLP/HTTP receiver that takes every export (200, an
//! empty protobuf answer) and counts its bytes, so a traced run measures the exporter, not a
//! slow collector, and shares the cores with the server as little as a receiver can. It
//! prints `listening url=…` on stderr, and when its stdin closes, the bytes it took on
//! stdout, then leaves.

#![allow(clippy::print_stdout)] // a measuring tool: its output is the point

use std::{
    io::Read as _,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::{Router, body::Bytes, extract::DefaultBodyLimit, routing::post};

static RECEIVED: AtomicU64 = AtomicU64::new(0);

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|body: Bytes| async move {
                RECEIVED.fetch_add(body.len() as u64, Ordering::Relaxed);
                ([("content-type", "application/x-protobuf")], "")
            }),
        )
        .layer(DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // The harness reads the endpoint from this line.
    eprintln!("listening url=http://{addr}");
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        println!("{}", RECEIVED.load(Ordering::Relaxed));
        std::process::exit(0);
    });
    axum::serve(listener, app).await
}
