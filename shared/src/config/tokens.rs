//! Access and refresh tokens: the signing keys, the claims' issuer and audience, lifetimes.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError,
    values::{Lookup, MIN_SECRET_BYTES, Secrets, parse_num},
};
use crate::auth::keys::{self, KeyAlgorithm, PublicKey, SigningKey};

#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// HS256's signing key; with every algorithm, the key of the pagination cursors' MACs.
    pub secret: SecretString,
    /// HS256 keys that still verify tokens but never sign: for rotation.
    pub previous_secrets: Vec<SecretString>,
    /// `JWT_ALGORITHM` = `EdDSA`, `ES256` or `RS256`: the key that signs and the public keys that
    /// still verify. `None`: HS256 with [`Self::secret`].
    pub keys: Option<AsymmetricKeys>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// `JWT_SIGNING_KEY` and `JWT_VERIFY_KEYS`, for an asymmetric `JWT_ALGORITHM`.
#[derive(Debug, Clone)]
pub struct AsymmetricKeys {
    pub signing: SigningKey,
    /// Keys that still verify but never sign: the previous signing keys, for rotation.
    pub verifying: Vec<PublicKey>,
}

impl AsymmetricKeys {
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.signing.public().algorithm
    }

    /// Every key that verifies, the signing key's first: what the JWKS document lists.
    pub fn public_keys(&self) -> impl Iterator<Item = &PublicKey> {
        std::iter::once(self.signing.public()).chain(&self.verifying)
    }
}

/// `JWT_ALGORITHM`: `None` for HS256 (the default).
fn parse_algorithm(get: &impl Lookup) -> Result<Option<KeyAlgorithm>, ConfigError> {
    match get("JWT_ALGORITHM").as_deref().map(str::trim) {
        None | Some("HS256") => Ok(None),
        Some("EdDSA") => Ok(Some(KeyAlgorithm::EdDsa)),
        Some("ES256") => Ok(Some(KeyAlgorithm::Es256)),
        Some("RS256") => Ok(Some(KeyAlgorithm::Rs256)),
        Some(other) => Err(ConfigError::new(
            "JWT_ALGORITHM",
            format!("must be `HS256`, `EdDSA`, `ES256` or `RS256`, got `{other}`"),
        )),
    }
}

/// `JWT_ALGORITHM`, `JWT_SIGNING_KEY` (generated in development, like the other secrets)
/// and `JWT_VERIFY_KEYS`. A key set for an algorithm that does not use it is refused: it
/// would be silently ignored.
fn parse_keys(
    secrets: &mut Secrets,
    get: &impl Lookup,
) -> Result<Option<AsymmetricKeys>, ConfigError> {
    let Some(algorithm) = parse_algorithm(get)? else {
        for name in ["JWT_SIGNING_KEY", "JWT_VERIFY_KEYS"] {
            if get(name).is_some() {
                return Err(ConfigError::new(
                    name,
                    "is set, but JWT_ALGORITHM is HS256 (set it to EdDSA, ES256 or RS256)",
                ));
            }
        }
        return Ok(None);
    };
    if get("JWT_PREVIOUS_SECRETS").is_some() {
        return Err(ConfigError::new(
            "JWT_PREVIOUS_SECRETS",
            format!(
                "verifies HS256 tokens only; with {} list previous public keys in JWT_VERIFY_KEYS",
                algorithm.name()
            ),
        ));
    }
    let signing = match get("JWT_SIGNING_KEY") {
        Some(text) => keys::parse_signing_key(algorithm, &text)
            .map_err(|problem| ConfigError::new("JWT_SIGNING_KEY", problem))?,
        None if secrets.production => {
            return Err(ConfigError::new(
                "JWT_SIGNING_KEY",
                format!(
                    "is required in production with JWT_ALGORITHM={} (a PKCS#8 PEM private key)",
                    algorithm.name()
                ),
            ));
        }
        None => {
            let Some(generated) = SigningKey::generate(algorithm) else {
                return Err(ConfigError::new(
                    "JWT_SIGNING_KEY",
                    "is required with RS256, even in development (make one with \
                     `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)",
                ));
            };
            secrets.generated.push("JWT_SIGNING_KEY");
            keys::parse_signing_key(algorithm, &generated)
                .map_err(|problem| ConfigError::new("JWT_SIGNING_KEY", problem))?
        }
    };
    let mut verifying = match get("JWT_VERIFY_KEYS") {
        Some(text) => keys::parse_public_keys(algorithm, &text)
            .map_err(|problem| ConfigError::new("JWT_VERIFY_KEYS", problem))?,
        None => Vec::new(),
    };
    // The signing key's own public key, or one listed twice, is published once.
    let mut seen = vec![signing.public().kid().to_owned()];
    verifying.retain(|key| {
        let new = !seen.iter().any(|kid| kid == key.kid());
        seen.push(key.kid().to_owned());
        new
    });
    Ok(Some(AsymmetricKeys { signing, verifying }))
}

/// `JWT_PREVIOUS_SECRETS`, `JWT_ISSUER`, `JWT_AUDIENCE`, the TTLs and the asymmetric keys
/// ([`parse_keys`]), around `secret` (`JWT_SECRET`, read first with the other required
/// secret).
pub(super) fn parse(
    secret: SecretString,
    secrets: &mut Secrets,
    get: &impl Lookup,
) -> Result<JwtConfig, ConfigError> {
    let keys = parse_keys(secrets, get)?;
    let previous_secrets = match get("JWT_PREVIOUS_SECRETS") {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.len() >= MIN_SECRET_BYTES {
                    Ok(SecretString::from(s.to_owned()))
                } else {
                    Err(ConfigError::new(
                        "JWT_PREVIOUS_SECRETS",
                        format!("every key must be at least {MIN_SECRET_BYTES} bytes"),
                    ))
                }
            })
            .collect::<Result<_, _>>()?,
    };
    let access_secs = parse_num(get, "ACCESS_TOKEN_TTL_SECS", 900u64, 1..=86_400)?;
    let refresh_secs = parse_num(get, "REFRESH_TOKEN_TTL_SECS", 1_209_600u64, 60..=31_536_000)?;
    Ok(JwtConfig {
        secret,
        previous_secrets,
        keys,
        issuer: get("JWT_ISSUER").unwrap_or_else(|| "task-api".to_owned()),
        audience: get("JWT_AUDIENCE").unwrap_or_else(|| "task-api".to_owned()),
        access_ttl: Duration::from_secs(access_secs),
        refresh_ttl: Duration::from_secs(refresh_secs),
    })
}

/// `SESSION_MAX_AGE_SECS`: a session's absolute age, past which no refresh succeeds.
pub(super) fn parse_session_max_age(get: &impl Lookup) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(parse_num(
        get,
        "SESSION_MAX_AGE_SECS",
        30 * 86_400u64,
        1..=366 * 86_400,
    )?))
}
