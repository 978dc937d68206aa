//! Serving over TCP with graceful shutdown: on SIGINT or SIGTERM the listener stops
//! accepting, in-flight requests get up to the grace period to finish, then the pool closes.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context as _;
use tokio::net::TcpListener;

use shared::AppState;

/// How long in-flight requests may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

pub async fn serve(state: AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(url = %format!("http://{local}"), "listening");

    let store = state.store.clone();
    let app = crate::app(state);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received: finishing in-flight requests");
        let _ = signalled_tx.send(());
    });

    // Graceful, but bounded: a stuck request must not keep the process alive for ever.
    let outcome = tokio::select! {
        result = server => result.context("serving HTTP"),
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("grace period over: dropping the remaining requests");
            Ok(())
        }
    };
    store.close().await;
    tracing::info!("stopped");
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
