//! `local-server`: the task API in one process.
//!
//! ```text
//! local-server [--host H] [--port P] [serve]   serve the API (default)
//! local-server migrate                         apply migrations to DATABASE_URL and exit
//! local-server prune                           delete expired sessions, tokens, throttle rows
//! local-server send-mail                       deliver the account mail waiting in the outbox
//! local-server create-admin --email E --name N create an admin (password on stdin)
//! local-server create-admin --email E --promote  make an existing user an admin
//! local-server openapi                         print the OpenAPI document
//! ```

use std::{net::SocketAddr, path::Path, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::{
    AppState,
    config::{self, Config, Runtime},
    telemetry,
};

#[derive(Debug, Parser)]
#[command(name = "local-server", version, about = "The task API in one process")]
struct Cli {
    /// Address to bind (overrides HOST).
    #[arg(long, global = true)]
    host: Option<std::net::IpAddr>,
    /// Port to bind; 0 picks a free one (overrides PORT).
    #[arg(long, global = true)]
    port: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default). Migrations are applied first unless --no-migrate.
    Serve {
        /// Do not apply pending migrations at start-up.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Apply pending migrations to DATABASE_URL and exit.
    Migrate,
    /// Delete sessions, refresh tokens and throttle rows that can never be used again
    /// (expired, revoked, past SESSION_MAX_AGE_SECS), in bounded batches, and exit. Safe to
    /// run at any time and as often as you like; schedule it (cron, an EventBridge rule).
    Prune,
    /// Deliver the account mail waiting in the outbox (mail whose attempt after its request
    /// failed, e.g. while SMTP was down) and exit; prints how many were sent and failed.
    /// The running server does this every 30 s as well; schedule it where no server runs.
    SendMail,
    /// Exit 0 when the server on this machine answers `GET /health` with 200 (for container
    /// health checks; needs no configuration, opens no database).
    Healthcheck,
    /// Print the OpenAPI 3.1 document (what `GET /openapi.json` serves) and exit.
    Openapi,
    /// Create an admin (password read from standard input), or promote an existing user.
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// Display name of the new admin (not needed with --promote).
        #[arg(long)]
        name: Option<String>,
        /// Make the existing user with this email an enabled admin instead of creating one.
        #[arg(long)]
        promote: bool,
    },
}

/// The static (musl) build's allocator: musl's own serialises concurrent allocations.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where development mode keeps the SQLite file and its generated secrets.
const DATA_DIR: &str = "data";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck) => return healthcheck(cli.port),
        Some(Command::Openapi) => {
            use std::io::Write as _;
            let written =
                std::io::stdout().write_all(local_server::openapi::document_json().as_bytes());
            return match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("error: writing the document: {err}");
                    ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A plain HTTP/1.1 GET of `/health` on loopback, bounded to 3 seconds.
fn healthcheck(port: Option<u16>) -> ExitCode {
    use std::io::{Read as _, Write as _};
    let port = port
        .or_else(|| std::env::var("PORT").ok().and_then(|p| p.parse().ok()))
        .unwrap_or(3000);
    let timeout = std::time::Duration::from_secs(3);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let result = (|| -> std::io::Result<bool> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("unhealthy: /health did not answer 200");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("unhealthy: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::from_env(Runtime::LocalServer)?;
    if let Some(host) = cli.host {
        config.http.host = host;
    }
    if let Some(port) = cli.port {
        config.http.port = port;
    }
    config::persist_dev_secrets(&mut config, Path::new(DATA_DIR))
        .context("keeping development secrets in ./data")?;
    telemetry::init(&config);
    if !config.is_production() {
        tracing::info!(
            database = %config.database_kind(),
            generated_secrets = ?config.generated_secrets,
            "development mode: not for production (set APP_ENV=production and real secrets)"
        );
    }
    let addr = SocketAddr::new(config.http.host, config.http.port);
    let state = AppState::new(config).context("opening the database")?;

    match cli.command.unwrap_or(Command::Serve { no_migrate: false }) {
        Command::Migrate => {
            let report = shared::store::migrate(&state.store, &state.config.db)
                .await
                .context("applying migrations")?;
            tracing::info!(database = %state.store.kind(), "{report}");
            state.store.close().await;
            Ok(())
        }
        Command::Prune => {
            let pruned = state.store.tokens().prune(shared::models::now()).await;
            state.store.close().await;
            let mut out = std::io::stdout().lock();
            for (what, count) in pruned.context("pruning expired rows")? {
                std::io::Write::write_fmt(&mut out, format_args!("pruned {count} {what}\n"))
                    .context("writing the summary")?;
            }
            Ok(())
        }
        Command::SendMail => {
            // Everything due now; an hour is far more than any backlog takes.
            let stop_by = tokio::time::Instant::now() + std::time::Duration::from_secs(3_600);
            let total = shared::mail::deliver_due(
                &state.store,
                &state.mailer,
                &state.metrics,
                u32::MAX,
                stop_by,
            )
            .await;
            state.store.close().await;
            std::io::Write::write_fmt(
                &mut std::io::stdout().lock(),
                format_args!("sent {} mail, {} failed\n", total.sent, total.failed),
            )
            .context("writing the summary")?;
            Ok(())
        }
        Command::Healthcheck | Command::Openapi => {
            unreachable!("handled before configuration is loaded")
        }
        Command::CreateAdmin {
            email,
            name,
            promote,
        } => {
            shared::store::migrate(&state.store, &state.config.db)
                .await
                .context("applying migrations")?;
            let outcome = local_server::bootstrap::create_admin(
                &state,
                &email,
                name.as_deref(),
                promote,
                std::io::stdin().lock(),
            )
            .await;
            state.store.close().await;
            tracing::info!("{}", outcome?);
            Ok(())
        }
        Command::Serve { no_migrate } => {
            if !no_migrate {
                let report = shared::store::migrate(&state.store, &state.config.db)
                    .await
                    .context("applying migrations")?;
                tracing::info!(database = %state.store.kind(), "{report}");
            }
            local_server::serve::serve(state, addr).await
        }
    }
}
