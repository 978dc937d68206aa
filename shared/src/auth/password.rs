//! Argon2id password hashing with a server-side pepper.
//!
//! Hashing is CPU- and memory-heavy by design, so it never runs on the async workers: each
//! hash or verification runs in `spawn_blocking`, and a semaphore caps how many run at once
//! (each holds ~19 MiB) so a login storm queues instead of exhausting memory or starving
//! other requests.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::{OnceCell, Semaphore};

use crate::{config::Argon2Config, error::ApiError};

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses weaker parameters than the current configuration.
    pub needs_rehash: bool,
}

pub struct PasswordHasher {
    params: Params,
    pepper: Arc<SecretString>,
    permits: Arc<Semaphore>,
    /// A real hash of a random password: unknown-email logins verify against it so their
    /// timing matches a wrong password for a real account.
    dummy: OnceCell<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(config: &Argon2Config, pepper: &SecretString) -> Result<Self, argon2::Error> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )?;
        // Fail now, not on the first login, if the pepper is unusable as an Argon2 secret.
        Argon2::new_with_secret(
            pepper.expose_secret().as_bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            params.clone(),
        )?;
        Ok(Self {
            params,
            pepper: Arc::new(pepper.clone()),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            dummy: OnceCell::new(),
        })
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = SecretString::from(password.to_owned());
        self.blocking(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| {
                    ApiError::internal(std::io::Error::other(format!("hashing a password: {e}")))
                })
        })
        .await?
    }

    /// Checks `password` against the stored PHC string.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verification, ApiError> {
        let password = SecretString::from(password.to_owned());
        let stored = stored.to_owned();
        let current = self.params.clone();
        self.blocking(move |argon| {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a PHC string");
                return Verification {
                    matches: false,
                    needs_rehash: true,
                };
            };
            let matches = argon
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok();
            Verification {
                matches,
                needs_rehash: is_weaker(&parsed, &current),
            }
        })
        .await
    }

    /// Spends the time of one verification for an account that does not exist.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), ApiError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async {
                let random: [u8; 24] = rand::random();
                self.hash(&format!("{random:?}")).await
            })
            .await?
            .clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'_>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(ApiError::internal)?;
        let pepper = self.pepper.clone();
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let argon = Argon2::new_with_secret(
                pepper.expose_secret().as_bytes(),
                Algorithm::Argon2id,
                Version::V0x13,
                params,
            )
            .map_err(|e| {
                ApiError::internal(std::io::Error::other(format!("argon2 set-up: {e}")))
            })?;
            Ok(work(&argon))
        })
        .await
        .map_err(ApiError::internal)?
    }
}

fn is_weaker(stored: &PasswordHash<'_>, current: &Params) -> bool {
    if stored.algorithm != argon2::ARGON2ID_IDENT {
        return true;
    }
    match Params::try_from(stored) {
        Ok(p) => {
            p.m_cost() < current.m_cost()
                || p.t_cost() < current.t_cost()
                || p.p_cost() < current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &str, memory_kib: u32) -> PasswordHasher {
        PasswordHasher::new(
            &Argon2Config {
                memory_kib,
                iterations: 2,
                parallelism: 1,
                concurrency: 2,
            },
            &SecretString::from(pepper.to_owned()),
        )
        .unwrap()
    }

    const PEPPER_A: &str = "pepper-a-0123456789abcdef0123456789abcdef";
    const PEPPER_B: &str = "pepper-b-0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn hash_is_argon2id_with_configured_parameters_and_verifies() {
        let h = hasher(PEPPER_A, 19 * 1024);
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let ok = h.verify("correct horse battery", &phc).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!h.verify("wrong horse battery", &phc).await.unwrap().matches);
    }

    #[tokio::test]
    async fn the_pepper_changes_the_hash() {
        let a = hasher(PEPPER_A, 19 * 1024);
        let b = hasher(PEPPER_B, 19 * 1024);
        let phc = a.hash("correct horse battery").await.unwrap();
        assert!(
            !b.verify("correct horse battery", &phc)
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn weaker_stored_parameters_ask_for_a_rehash() {
        let old = hasher(PEPPER_A, 19 * 1024);
        let stronger = hasher(PEPPER_A, 32 * 1024);
        let phc = old.hash("correct horse battery").await.unwrap();
        let v = stronger
            .verify("correct horse battery", &phc)
            .await
            .unwrap();
        assert!(v.matches && v.needs_rehash);
    }

    #[tokio::test]
    async fn dummy_verification_never_matches() {
        let h = hasher(PEPPER_A, 19 * 1024);
        h.verify_dummy("anything at all").await.unwrap();
    }
}
