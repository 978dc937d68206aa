//! Serving over TCP with graceful shutdown: on SIGINT or SIGTERM the listener stops
//! accepting, in-flight requests get up to the grace period to finish, then the pool closes.
//!
//! Connections are served by hyper directly, not `axum::serve`, for the connection hygiene
//! `axum::serve` does not offer:
//! - a **header-read timeout** (`HTTP_HEADER_TIMEOUT_SECS`): a connection must deliver a
//!   request's headers within it, counted from when it opened or finished its previous
//!   request, so it is also the keep-alive idle timeout. A client that trickles header
//!   bytes, or sends nothing, is closed (slowloris);
//! - a **cap on open connections** (`HTTP_MAX_CONNECTIONS`): at the cap the server stops
//!   accepting, and new connections wait in the kernel's backlog until one closes;
//! - accept errors (out of file descriptors) are logged and retried after a pause, never
//!   fatal.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{Router, extract::ConnectInfo};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

use shared::{AppState, config::MetricsListener};

/// How long in-flight requests may run on after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Pause after a failed `accept` (typically: no file descriptor left) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn of(state: &AppState) -> Self {
        Self {
            header_timeout: state.config.http.header_timeout,
            max_connections: state.config.http.max_connections,
        }
    }
}

pub async fn serve(state: AppState, addr: SocketAddr) -> anyhow::Result<()> {
    let signalled = shutdown_signal();
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(url = %format!("http://{local}"), "listening");

    // Built first: it gives the app its `/metrics` recorder before anything is measured
    // (the mail retries below count too).
    let app = crate::app(state.clone());
    let store = state.store.clone();
    let limits = ConnectionLimits::of(&state);
    let metrics = metrics_listener(&state).await?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let metrics_server = metrics.map(|listener| {
        let app = crate::metrics_app(state.clone());
        tokio::spawn(serve_app(listener, app, limits, stopped()))
    });
    let mail = tokio::spawn(retry_mail(state, stopped()));
    let api = serve_app(listener, app, limits, stopped());
    let signal = async {
        signalled.await;
        let _ = stop.send(true);
    };
    let (served, ()) = tokio::join!(api, signal);
    served?;
    if let Some(metrics_server) = metrics_server {
        metrics_server.await.context("the metrics listener")??;
    }
    let _ = mail.await;
    store.close().await;
    // The spans of the last requests, if traces are exported.
    shared::telemetry::otel::shutdown(Duration::from_secs(5)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Every [`MAIL_RETRY_EVERY`], delivers the account mail whose earlier attempts failed
/// (requests that send mail take a bounded share of it too; `local-server send-mail` all
/// of it at once). Stops with the server.
async fn retry_mail(state: AppState, stopped: impl std::future::Future<Output = ()>) {
    if !state.mailer.is_configured() {
        return;
    }
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return,
            () = tokio::time::sleep(MAIL_RETRY_EVERY) => {}
        }
        shared::mail::deliver(&state.store, &state.mailer, &state.metrics, None, 50).await;
    }
}

/// How often the local server retries account mail.
pub const MAIL_RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Binds the private `/metrics` listener, if there is to be one. An address set in
/// `METRICS_ADDR` must bind; the default may be taken by another local server on the same
/// machine, and then this one runs without metrics rather than not at all.
async fn metrics_listener(state: &AppState) -> anyhow::Result<Option<TcpListener>> {
    let (addr, explicit) = match state.config.http.metrics {
        MetricsListener::Off => return Ok(None),
        MetricsListener::Default(addr) => (addr, false),
        MetricsListener::At(addr) => (addr, true),
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let bound = listener
                .local_addr()
                .context("reading the metrics address")?;
            // Not a URL on purpose: tools read the API's address from the first URL logged.
            tracing::info!(metrics_addr = %bound, "metrics listener: GET /metrics");
            Ok(Some(listener))
        }
        Err(error) if !explicit => {
            tracing::warn!(%error, metrics_addr = %addr, "the default metrics address is taken: serving without /metrics (set METRICS_ADDR)");
            Ok(None)
        }
        Err(error) => Err(error).with_context(|| format!("binding METRICS_ADDR {addr}")),
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish for up to [`SHUTDOWN_GRACE`].
pub async fn serve_app(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        // At the cap, wait for a connection to close before accepting another: the ones
        // arriving meanwhile queue in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.context("the connection cap closed")?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed; retrying shortly");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or times out ends its connection; nothing to report.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    tracing::info!("shutdown signal received: finishing in-flight requests");
    drop(listener);
    // Graceful, but bounded: a stuck request must not keep the process alive for ever.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: dropping the remaining requests");
    }
    Ok(())
}

/// SIGTERM or SIGINT (Ctrl-C). Registered when called, not when first awaited: `serve` calls
/// it before it says it listens, so a signal that comes once a client can know the port is
/// always a graceful shutdown, never the signal's default action (exit on the spot).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            let terminate = async {
                match terminate {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match interrupt {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = terminate => {},
                () = interrupt => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
