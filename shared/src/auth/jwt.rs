//! Access tokens: JWT with `typ: at+jwt` so no other kind of JWT signed with the same key
//! can pass as one, and a `kid` naming the key so keys can rotate: the current key signs;
//! it and the previous ones verify. One algorithm at a time (`JWT_ALGORITHM`): HS256 with
//! `JWT_SECRET` (and `JWT_PREVIOUS_SECRETS`), or EdDSA / ES256 / RS256 with `JWT_SIGNING_KEY` (and
//! `JWT_VERIFY_KEYS`), whose public keys [`JwtKeys::jwks`] publishes. A token of any other
//! algorithm is refused before its signature is looked at.
//!
//! `jsonwebtoken` is built without its crypto backends: both link RSA, ECDSA and EdDSA
//! (the algorithm is chosen at run time, so none of it is dropped), which was most of a
//! Lambda binary's size over the floor. [`provider::PROVIDER`] is installed instead:
//! HMAC-SHA256 on `hmac`/`sha2`, and EdDSA, ES256 and RS256 on ring, which rustls links
//! anyway.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::keys::KeyAlgorithm;
use crate::{config::JwtConfig, error::ApiError, models::Role};

/// The `typ` header of our access tokens (RFC 9068).
pub const TOKEN_TYPE: &str = "at+jwt";
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session (refresh family) the token belongs to: it stops working when that
    /// session ends (logout, reuse, password change, disable), not at `exp`. Every token
    /// this release issues has one; a token without (issued before sessions existed) is
    /// taken as belonging to the user's first epoch, so it stops at their first password
    /// change or disable, and otherwise at its `exp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Why a token was refused; logged at debug, never shown (the client always gets one 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token header is unreadable")]
    Header,
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error("the token type is not {TOKEN_TYPE}")]
    Type,
    #[error("no configured key has this kid")]
    UnknownKey,
    #[error("verification failed: {0}")]
    Invalid(String),
    #[error("issued in the future")]
    IssuedInTheFuture,
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

pub struct JwtKeys {
    /// The one algorithm tokens are signed and accepted with.
    algorithm: Algorithm,
    signing: EncodingKey,
    signing_kid: String,
    verifying: Vec<VerifyingKey>,
    validation: Validation,
    /// Asymmetric keys only: tokens that already passed every check ([`Verified`]).
    verified: Option<Verified>,
    issuer: String,
    audience: String,
    ttl: Duration,
    /// The JWKS document (RFC 7517) of the public keys that verify: `{"keys":[]}` with HS256.
    jwks: serde_json::Value,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .field(
                "verifying_kids",
                &self.verifying.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A key's id: a short fingerprint that says which secret signed, and nothing about it.
fn kid_of(secret: &SecretString) -> String {
    let digest = Sha256::digest(secret.expose_secret().as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

impl JwtKeys {
    pub fn new(config: &JwtConfig) -> Self {
        provider::install();
        let (algorithm, signing, signing_kid, verifying, published) = match &config.keys {
            None => (
                Algorithm::HS256,
                EncodingKey::from_secret(config.secret.expose_secret().as_bytes()),
                kid_of(&config.secret),
                std::iter::once(&config.secret)
                    .chain(&config.previous_secrets)
                    .map(|secret| VerifyingKey {
                        kid: kid_of(secret),
                        key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                    })
                    .collect(),
                Vec::new(),
            ),
            Some(keys) => {
                type Decoding = fn(&[u8]) -> DecodingKey;
                type Encoding = fn(&[u8]) -> EncodingKey;
                let (algorithm, encoding, decoding): (_, Encoding, Decoding) =
                    match keys.algorithm() {
                        KeyAlgorithm::EdDsa => (
                            Algorithm::EdDSA,
                            EncodingKey::from_ed_der,
                            DecodingKey::from_ed_der,
                        ),
                        KeyAlgorithm::Es256 => (
                            Algorithm::ES256,
                            EncodingKey::from_ec_der,
                            DecodingKey::from_ec_der,
                        ),
                        KeyAlgorithm::Rs256 => (
                            Algorithm::RS256,
                            EncodingKey::from_rsa_der,
                            DecodingKey::from_rsa_der,
                        ),
                    };
                (
                    algorithm,
                    encoding(keys.signing.pkcs8()),
                    keys.signing.public().kid().to_owned(),
                    keys.public_keys()
                        .map(|key| VerifyingKey {
                            kid: key.kid().to_owned(),
                            key: decoding(key.raw()),
                        })
                        .collect(),
                    keys.public_keys().map(|key| key.jwk()).collect(),
                )
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        // RFC 7519 §4.1.5: a token must not be accepted before its `nbf` (when present).
        validation.validate_nbf = true;
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            algorithm,
            signing,
            signing_kid,
            verifying,
            verified: (algorithm != Algorithm::HS256).then(Verified::default),
            validation,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: config.access_ttl,
            jwks: serde_json::json!({ "keys": published }),
        }
    }

    /// The JWKS document: the public keys that verify access tokens, the signing key's
    /// first (`{"keys":[]}` with HS256, whose key is secret).
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// The JOSE name of the one algorithm tokens are signed and accepted with.
    pub fn algorithm_name(&self) -> &'static str {
        match self.algorithm {
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
            _ => "HS256",
        }
    }

    /// The `iss` of the tokens this issues and accepts.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Lifetime of the tokens this issues, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs()
    }

    /// Signs an access token for `user_id` in session `session_id`.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let iat = now.unix_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user_id,
            role,
            iat,
            exp: iat + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            jti: Uuid::now_v7(),
            sid: Some(session_id),
        };
        let mut header = Header::new(self.algorithm);
        header.typ = Some(TOKEN_TYPE.to_owned());
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing).map_err(ApiError::internal)
    }

    /// Verifies signature, algorithm, type, key id, issuer, audience, expiry, `nbf` and
    /// that `iat` is not in the future (beyond the leeway).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, OffsetDateTime::now_utc())
    }

    fn verify_at(&self, token: &str, now: OffsetDateTime) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        if header.alg != self.algorithm {
            return Err(TokenError::Algorithm(header.alg));
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(TokenError::Type);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self
            .verifying
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let digest: Option<[u8; 32]> = self
            .verified
            .as_ref()
            .map(|_| Sha256::digest(token.as_bytes()).into());
        if let (Some(verified), Some(digest)) = (&self.verified, &digest) {
            if let Some(claims) = verified.get(digest) {
                // The only check whose answer changes with time for a token that passed
                // them all: its `nbf` and `iat` were behind it then, and still are (unless
                // the clock steps back by more than the leeway).
                let earliest = now
                    .unix_timestamp()
                    .saturating_sub(i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX));
                if claims.exp < earliest {
                    return Err(TokenError::Invalid("expired".to_owned()));
                }
                return Ok(claims);
            }
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))?;
        let latest = now
            .unix_timestamp()
            .saturating_add(i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX));
        if claims.iat > latest {
            return Err(TokenError::IssuedInTheFuture);
        }
        if let (Some(verified), Some(digest)) = (&self.verified, digest) {
            verified.insert(digest, &claims);
        }
        Ok(claims)
    }
}

/// Tokens that passed every check, by the SHA-256 of their bytes, with their claims: a
/// token presented again costs a digest instead of an Ed25519, P-256 or RSA verification
/// (tens of microseconds, a third of a cheap request's cost; `bench/run --only tokens`,
/// README "Performance", row 18). A hit means these exact bytes were verified under keys
/// that cannot have changed since (they are fixed for the process's life), so only `exp`
/// is checked again. Only a token that passed is entered, so a forger cannot fill it; at
/// [`Verified::CAPACITY`] it is emptied and fills again. HS256 needs none: its MAC costs
/// about what the digest would.
#[derive(Default)]
struct Verified(std::sync::Mutex<std::collections::HashMap<[u8; 32], Claims>>);

impl Verified {
    const CAPACITY: usize = 4096;

    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], Claims>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Claims> {
        self.map().get(digest).cloned()
    }

    fn insert(&self, digest: [u8; 32], claims: &Claims) {
        let mut map = self.map();
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(digest, claims.clone());
    }
}

/// The only cryptography `jsonwebtoken` gets: HMAC-SHA256, Ed25519, ECDSA P-256 and
/// RSASSA-PKCS1-v1_5 with SHA-256.
mod provider {
    use hmac::{Hmac, Mac as _};
    use jsonwebtoken::{
        Algorithm, AlgorithmFamily, DecodingKey, EncodingKey,
        crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier},
        errors::{Error, ErrorKind},
        signature,
    };
    use sha2::Sha256;

    use crate::auth::keys::{self, KeyAlgorithm, KeyPair};

    pub(super) static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory: signer,
        verifier_factory: verifier,
        // We never read JWKs.
        jwk_utils: JwkUtils::new_unimplemented(),
    };

    /// Makes [`PROVIDER`] the process default. Idempotent: a second call finds it set.
    pub(super) fn install() {
        let _ = PROVIDER.install_default();
    }

    /// The asymmetric algorithm `algorithm` names, if it is one we sign with and `family`
    /// (the key's) is the one it needs.
    fn asymmetric(algorithm: Algorithm, family: AlgorithmFamily) -> Result<KeyAlgorithm, Error> {
        let (which, needed) = match algorithm {
            Algorithm::EdDSA => (KeyAlgorithm::EdDsa, AlgorithmFamily::Ed),
            Algorithm::ES256 => (KeyAlgorithm::Es256, AlgorithmFamily::Ec),
            Algorithm::RS256 => (KeyAlgorithm::Rs256, AlgorithmFamily::Rsa),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        if family != needed {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        Ok(which)
    }

    fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
        if *algorithm == Algorithm::HS256 {
            return Ok(Box::new(Hs256::new(*algorithm, key.try_get_hmac_secret())?));
        }
        let which = asymmetric(*algorithm, key.family())?;
        let pair = KeyPair::from_pkcs8(which, key.inner()).ok_or(ErrorKind::InvalidKeyFormat)?;
        Ok(Box::new(Asymmetric(pair, *algorithm)))
    }

    fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
        if *algorithm == Algorithm::HS256 {
            return Ok(Box::new(Hs256::new(*algorithm, key.try_get_hmac_secret())?));
        }
        let which = asymmetric(*algorithm, key.family())?;
        Ok(Box::new(PublicKey(
            which,
            key.as_bytes().to_vec(),
            *algorithm,
        )))
    }

    /// A MAC keyed with one secret; cloned per use, so the key schedule runs once.
    struct Hs256(Hmac<Sha256>);

    impl Hs256 {
        fn new(algorithm: Algorithm, secret: Result<&[u8], Error>) -> Result<Self, Error> {
            if algorithm != Algorithm::HS256 {
                return Err(ErrorKind::InvalidAlgorithm.into());
            }
            Hmac::new_from_slice(secret?)
                .map(Self)
                .map_err(|_| ErrorKind::InvalidKeyFormat.into())
        }

        fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
            let mut mac = self.0.clone();
            mac.update(message);
            mac
        }
    }

    impl signature::Signer<Vec<u8>> for Hs256 {
        fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
            Ok(self.mac(message).finalize().into_bytes().to_vec())
        }
    }

    impl signature::Verifier<Vec<u8>> for Hs256 {
        fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
            // `verify_slice` compares in constant time.
            self.mac(message)
                .verify_slice(tag)
                .map_err(|_| signature::Error::new())
        }
    }

    impl JwtSigner for Hs256 {
        fn algorithm(&self) -> Algorithm {
            Algorithm::HS256
        }
    }

    impl JwtVerifier for Hs256 {
        fn algorithm(&self) -> Algorithm {
            Algorithm::HS256
        }
    }

    /// An Ed25519, P-256 or RSA private key.
    struct Asymmetric(KeyPair, Algorithm);

    impl signature::Signer<Vec<u8>> for Asymmetric {
        fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
            self.0.sign(message).ok_or_else(signature::Error::new)
        }
    }

    impl JwtSigner for Asymmetric {
        fn algorithm(&self) -> Algorithm {
            self.1
        }
    }

    /// An Ed25519, P-256 or RSA public key, as ring takes it.
    struct PublicKey(KeyAlgorithm, Vec<u8>, Algorithm);

    impl signature::Verifier<Vec<u8>> for PublicKey {
        fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
            if keys::verify(self.0, &self.1, message, signature) {
                Ok(())
            } else {
                Err(signature::Error::new())
            }
        }
    }

    impl JwtVerifier for PublicKey {
        fn algorithm(&self) -> Algorithm {
            self.2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(secret: &str, previous: &[&str]) -> JwtConfig {
        JwtConfig {
            secret: SecretString::from(secret.to_owned()),
            previous_secrets: previous
                .iter()
                .map(|s| SecretString::from((*s).to_owned()))
                .collect(),
            keys: None,
            issuer: "task-api".into(),
            audience: "task-api".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
        }
    }

    const OLD: &str = "old-secret-0123456789abcdef0123456789abcdef";
    const NEW: &str = "new-secret-0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let keys = JwtKeys::new(&config(NEW, &[]));
        let id = Uuid::now_v7();
        let token = keys
            .issue(id, Role::Admin, Uuid::now_v7(), OffsetDateTime::now_utc())
            .unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.sub, id);
        assert_eq!(claims.role, Role::Admin);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn previous_keys_verify_but_removed_keys_do_not() {
        let old_keys = JwtKeys::new(&config(OLD, &[]));
        let token = old_keys
            .issue(
                Uuid::now_v7(),
                Role::User,
                Uuid::now_v7(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        let rotating = JwtKeys::new(&config(NEW, &[OLD]));
        assert!(rotating.verify(&token).is_ok());
        let rotated = JwtKeys::new(&config(NEW, &[]));
        assert_eq!(rotated.verify(&token), Err(TokenError::UnknownKey));
    }

    #[test]
    fn expired_tokens_are_refused_beyond_the_leeway() {
        let keys = JwtKeys::new(&config(NEW, &[]));
        let long_ago = OffsetDateTime::now_utc() - time::Duration::seconds(900 + 31);
        let token = keys
            .issue(Uuid::now_v7(), Role::User, Uuid::now_v7(), long_ago)
            .unwrap();
        assert!(matches!(keys.verify(&token), Err(TokenError::Invalid(_))));
        let within = OffsetDateTime::now_utc() - time::Duration::seconds(900 + 5);
        let token = keys
            .issue(Uuid::now_v7(), Role::User, Uuid::now_v7(), within)
            .unwrap();
        assert!(keys.verify(&token).is_ok());
    }

    #[test]
    fn a_token_issued_in_the_future_is_refused_beyond_the_leeway() {
        let keys = JwtKeys::new(&config(NEW, &[]));
        let now = OffsetDateTime::now_utc();
        let early = keys
            .issue(
                Uuid::now_v7(),
                Role::User,
                Uuid::now_v7(),
                now + time::Duration::seconds(120),
            )
            .unwrap();
        assert_eq!(
            keys.verify_at(&early, now),
            Err(TokenError::IssuedInTheFuture)
        );
        let skewed = keys
            .issue(
                Uuid::now_v7(),
                Role::User,
                Uuid::now_v7(),
                now + time::Duration::seconds(10),
            )
            .unwrap();
        assert!(keys.verify_at(&skewed, now).is_ok());
    }

    #[test]
    fn a_future_nbf_is_refused_and_a_past_one_accepted() {
        let keys = JwtKeys::new(&config(NEW, &[]));
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let sign = |nbf: i64| {
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(TOKEN_TYPE.to_owned());
            header.kid = Some(keys.signing_kid.clone());
            let claims = serde_json::json!({
                "iss": "task-api", "aud": "task-api", "sub": Uuid::now_v7(), "role": "user",
                "iat": now, "exp": now + 600, "jti": Uuid::now_v7(), "sid": Uuid::now_v7(),
                "nbf": nbf,
            });
            jsonwebtoken::encode(&header, &claims, &keys.signing).unwrap()
        };
        assert!(matches!(
            keys.verify(&sign(now + 300)),
            Err(TokenError::Invalid(_))
        ));
        assert!(keys.verify(&sign(now - 5)).is_ok());
    }

    fn eddsa() -> JwtKeys {
        use crate::auth::keys::{KeyAlgorithm, SigningKey, parse_signing_key};
        let pem = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
        JwtKeys::new(&JwtConfig {
            keys: Some(crate::config::AsymmetricKeys {
                signing: parse_signing_key(KeyAlgorithm::EdDsa, &pem).unwrap(),
                verifying: Vec::new(),
            }),
            ..config(NEW, &[])
        })
    }

    #[test]
    fn a_token_verified_before_is_still_refused_once_expired_and_its_neighbours_are_checked() {
        let keys = eddsa();
        let now = OffsetDateTime::now_utc();
        let token = keys
            .issue(Uuid::now_v7(), Role::User, Uuid::now_v7(), now)
            .unwrap();
        let first = keys.verify_at(&token, now).unwrap();
        assert_eq!(keys.verify_at(&token, now), Ok(first.clone()));
        // Remembered, yet refused once `exp` and the leeway are past.
        let later = now + time::Duration::seconds(900 + 31);
        assert!(matches!(
            keys.verify_at(&token, later),
            Err(TokenError::Invalid(_))
        ));
        // Other bytes are other tokens: a changed signature or payload is checked in full.
        let (message, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let forged = format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(matches!(
            keys.verify_at(&forged, now),
            Err(TokenError::Invalid(_))
        ));
        let claims = serde_json::json!({
            "iss": "task-api", "aud": "task-api", "sub": Uuid::now_v7(), "role": "admin",
            "iat": now.unix_timestamp(), "exp": now.unix_timestamp() + 600,
            "jti": first.jti, "sid": first.sid,
        });
        let (header, _) = message.split_once('.').unwrap();
        let swapped = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert!(matches!(
            keys.verify_at(&swapped, now),
            Err(TokenError::Invalid(_))
        ));
        // Unchanged, the first still passes.
        assert_eq!(keys.verify_at(&token, now), Ok(first));
    }

    #[test]
    fn a_secret_key_serves_hs256_and_no_other_algorithm() {
        use jsonwebtoken::{DecodingKey, EncodingKey, crypto};
        provider::install();
        let (message, secret) = (b"what do ya want for nothing?", b"Jefe");
        // RFC 4231, test case 2.
        let tag =
            crypto::sign(message, &EncodingKey::from_secret(secret), Algorithm::HS256).unwrap();
        assert_eq!(tag, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
        let verify = |message: &[u8], secret: &[u8], algorithm| {
            crypto::verify(&tag, message, &DecodingKey::from_secret(secret), algorithm)
        };
        assert_eq!(verify(message, secret, Algorithm::HS256).ok(), Some(true));
        assert_eq!(
            verify(b"what do ya want for something?", secret, Algorithm::HS256).ok(),
            Some(false)
        );
        assert_eq!(verify(message, b"Jeff", Algorithm::HS256).ok(), Some(false));
        for other in [
            Algorithm::HS384,
            Algorithm::HS512,
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::EdDSA,
        ] {
            assert!(
                crypto::sign(message, &EncodingKey::from_secret(secret), other).is_err(),
                "{other:?}"
            );
            assert!(verify(message, secret, other).is_err(), "{other:?}");
        }
    }
}
