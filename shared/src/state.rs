//! The application state: one `Clone` struct built once at start-up and handed to every
//! router. Handlers take the parts they need through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::{
    auth::{JwtKeys, PasswordHasher, throttle::KnownRefusals},
    config::{Config, Runtime},
    mail::Mailer,
    metrics::Metrics,
    pagination::CursorSigner,
    store::{self, DynStore, StoreError},
};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: DynStore,
    pub jwt: Arc<JwtKeys>,
    pub passwords: Arc<PasswordHasher>,
    pub cursors: Arc<CursorSigner>,
    pub metrics: Arc<Metrics>,
    /// Account mail (`SMTP_URL`, or files in development).
    pub mailer: Arc<Mailer>,
    /// The per-client credential limit's refusals, remembered until they pass.
    pub client_refusals: Arc<KnownRefusals>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("env", &self.config.env)
            .field("store", &self.store.kind())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state without touching the database (the pool connects on first use).
    pub fn new(config: Config) -> Result<Self, StoreError> {
        let store = store::connect_lazy(&config.db)?;
        Ok(Self::with_store(config, store))
    }

    pub fn with_store(config: Config, store: DynStore) -> Self {
        let jwt = Arc::new(JwtKeys::new(&config.jwt));
        // The configuration has already bounded every Argon2 parameter; `new` can only fail
        // on values outside those bounds.
        #[allow(clippy::expect_used)]
        let passwords = Arc::new(
            PasswordHasher::new(&config.argon2, &config.password_pepper)
                .expect("BUG: validated Argon2 parameters were refused"),
        );
        let cursors = Arc::new(CursorSigner::new(&config.jwt.secret));
        let pool = store.clone();
        let pool = move || pool.pool_stats();
        let metrics = Arc::new(match config.runtime {
            // `/metrics`'s recorder is the local server's to give (`export_to`).
            Runtime::LocalServer => Metrics::new(pool),
            Runtime::Lambda => Metrics::emf(
                config.metrics_namespace.clone(),
                config
                    .function_name
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned()),
                pool,
            ),
        });
        let mailer = Arc::new(Mailer::new(&config.mail).unwrap_or_else(|error| {
            // Only TLS set-up for the SMTP host can fail here (the URL was checked when the
            // configuration was read); the mail endpoints then answer 503.
            tracing::error!(%error, "account mail cannot be sent");
            Mailer::unavailable(&config.mail)
        }));
        Self {
            config: Arc::new(config),
            store,
            jwt,
            passwords,
            cursors,
            metrics,
            mailer,
            client_refusals: Arc::new(KnownRefusals::default()),
        }
    }
}

impl FromRef<AppState> for DynStore {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

impl FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        state.config.clone()
    }
}
