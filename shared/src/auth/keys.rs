//! Asymmetric access-token keys (`JWT_ALGORITHM` = `EdDSA` or `ES256`): reading them from
//! PEM, their public halves as JWKs (RFC 7517) and their key ids (RFC 7638 thumbprints).
//!
//! The cryptography is ring's, already linked into every function by rustls; PEM armour is
//! read by rustls-pki-types, also already there. Nothing here depends on the rest of the
//! crate, so configuration can check keys at start-up.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
        Ed25519KeyPair, KeyPair as _, UnparsedPublicKey,
    },
};
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer, pem::PemObject as _};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::{Digest as _, Sha256};

/// The algorithms that sign with a private key and publish the public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256, signatures as `r ‖ s` (RFC 7518 §3.4).
    Es256,
}

impl KeyAlgorithm {
    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    fn key_kind(self) -> &'static str {
        match self {
            Self::EdDsa => "an Ed25519 key",
            Self::Es256 => "a P-256 key",
        }
    }

    /// The DER that precedes the key in a SubjectPublicKeyInfo of this algorithm, and the
    /// key's length: the SPKI of each is fixed apart from the key (RFC 8410 §4; RFC 5480,
    /// uncompressed points only).
    fn spki_prefix(self) -> (&'static [u8], usize) {
        match self {
            Self::EdDsa => (
                &[
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ],
                32,
            ),
            Self::Es256 => (
                &[
                    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
                ],
                65,
            ),
        }
    }
}

/// A public key that verifies tokens: the key as ring takes it (Ed25519: 32 bytes; P-256:
/// the 65-byte uncompressed point) and its thumbprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub algorithm: KeyAlgorithm,
    raw: Vec<u8>,
    kid: String,
}

impl PublicKey {
    fn new(algorithm: KeyAlgorithm, raw: Vec<u8>) -> Self {
        let mut key = Self {
            algorithm,
            raw,
            kid: String::new(),
        };
        // RFC 7638: SHA-256 of the required members, in lexicographic order, no spaces.
        let canonical = match algorithm {
            KeyAlgorithm::EdDsa => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, key.x())
            }
            KeyAlgorithm::Es256 => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                key.x(),
                key.y().unwrap_or_default()
            ),
        };
        key.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        key
    }

    /// The key id tokens signed by the matching private key carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as jsonwebtoken's `DecodingKey::from_ed_der` / `from_ec_der` hold it for
    /// the provider in [`super::jwt`].
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn x(&self) -> String {
        match self.algorithm {
            KeyAlgorithm::EdDsa => URL_SAFE_NO_PAD.encode(&self.raw),
            KeyAlgorithm::Es256 => URL_SAFE_NO_PAD.encode(&self.raw[1..33]),
        }
    }

    fn y(&self) -> Option<String> {
        match self.algorithm {
            KeyAlgorithm::EdDsa => None,
            KeyAlgorithm::Es256 => Some(URL_SAFE_NO_PAD.encode(&self.raw[33..65])),
        }
    }

    /// The key as a JWK (RFC 7517), for the JWKS document.
    pub fn jwk(&self) -> serde_json::Value {
        let mut jwk = match self.algorithm {
            KeyAlgorithm::EdDsa => {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": self.x()})
            }
            KeyAlgorithm::Es256 => {
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": self.x(), "y": self.y()})
            }
        };
        jwk["kid"] = self.kid.clone().into();
        jwk["alg"] = self.algorithm.name().into();
        jwk["use"] = "sig".into();
        jwk
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        verify(self.algorithm, &self.raw, message, signature)
    }
}

/// Checks `signature` over `message` with the raw public key `raw` of `algorithm`.
pub fn verify(algorithm: KeyAlgorithm, raw: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let algorithm: &dyn ring::signature::VerificationAlgorithm = match algorithm {
        KeyAlgorithm::EdDsa => &ED25519,
        KeyAlgorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
    };
    UnparsedPublicKey::new(algorithm, raw)
        .verify(message, signature)
        .is_ok()
}

/// The private key that signs tokens: its PKCS#8 DER (kept secret, wiped when dropped)
/// and its public half.
#[derive(Clone)]
pub struct SigningKey {
    pkcs8: std::sync::Arc<SecretSlice<u8>>,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.public.algorithm)
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The PKCS#8 DER, as jsonwebtoken's `EncodingKey` holds it for the provider.
    pub fn pkcs8(&self) -> &[u8] {
        self.pkcs8.expose_secret()
    }

    /// A fresh key, as a PKCS#8 PEM (development mode generates one when none is set).
    pub fn generate(algorithm: KeyAlgorithm) -> String {
        let rng = SystemRandom::new();
        let document = match algorithm {
            KeyAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
            KeyAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
        }
        // ring fails only when the system's random source does.
        .unwrap_or_else(|_| panic!("the system's random source failed"));
        pem("PRIVATE KEY", document.as_ref())
    }
}

/// A private key ready to sign: parsed from PKCS#8 once, then used for many messages.
pub enum KeyPair {
    EdDsa(Ed25519KeyPair),
    Es256(EcdsaKeyPair, SystemRandom),
}

impl KeyPair {
    /// `None` when `pkcs8` is not a key of `algorithm` (configuration checked it already).
    pub fn from_pkcs8(algorithm: KeyAlgorithm, pkcs8: &[u8]) -> Option<Self> {
        match algorithm {
            KeyAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .ok()
                .map(Self::EdDsa),
            KeyAlgorithm::Es256 => {
                let rng = SystemRandom::new();
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                    .ok()
                    .map(|pair| Self::Es256(pair, rng))
            }
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::EdDsa(_) => KeyAlgorithm::EdDsa,
            Self::Es256(..) => KeyAlgorithm::Es256,
        }
    }

    /// The signature of `message` (Ed25519: 64 bytes; ES256: `r ‖ s`, 64 bytes). `None`
    /// only when the system's random source fails (ECDSA's nonce).
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::EdDsa(pair) => Some(pair.sign(message).as_ref().to_vec()),
            Self::Es256(pair, rng) => pair.sign(rng, message).ok().map(|s| s.as_ref().to_vec()),
        }
    }
}

/// Reads `JWT_SIGNING_KEY`: one PKCS#8 PEM private key of `algorithm`. `Err` says what is
/// wrong without quoting the key.
pub fn parse_signing_key(algorithm: KeyAlgorithm, text: &str) -> Result<SigningKey, String> {
    let text = unescape_newlines(text);
    let der = PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes()).map_err(|_| {
        "must be a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----; \
         `openssl pkcs8 -topk8 -nocrypt` converts other forms)"
            .to_owned()
    })?;
    let der = der.secret_pkcs8_der();
    let wrong = || format!("must be {} for {}", algorithm.key_kind(), algorithm.name());
    let public = match algorithm {
        KeyAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| wrong())?
            .public_key()
            .as_ref()
            .to_vec(),
        KeyAlgorithm::Es256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &SystemRandom::new())
                .map_err(|_| wrong())?
                .public_key()
                .as_ref()
                .to_vec()
        }
    };
    Ok(SigningKey {
        pkcs8: std::sync::Arc::new(SecretSlice::from(der.to_vec())),
        public: PublicKey::new(algorithm, public),
    })
}

/// Reads `JWT_VERIFY_KEYS`: PEM public keys (`-----BEGIN PUBLIC KEY-----`) of `algorithm`,
/// separated by commas (or simply one after another).
pub fn parse_public_keys(algorithm: KeyAlgorithm, text: &str) -> Result<Vec<PublicKey>, String> {
    // A PEM has no commas: each separates two keys, as a line break does.
    let text = unescape_newlines(text).replace(',', "\n");
    let mut keys = Vec::new();
    for block in SubjectPublicKeyInfoDer::pem_slice_iter(text.as_bytes()) {
        let der = block.map_err(|_| "holds a PEM block that cannot be read".to_owned())?;
        let (prefix, len) = algorithm.spki_prefix();
        match der.strip_prefix(prefix) {
            Some(raw) if raw.len() == len && (algorithm == KeyAlgorithm::EdDsa || raw[0] == 4) => {
                keys.push(PublicKey::new(algorithm, raw.to_vec()));
            }
            _ => {
                return Err(format!(
                    "must hold public keys of {} for {} (key {} is not)",
                    algorithm.key_kind(),
                    algorithm.name(),
                    keys.len() + 1
                ));
            }
        }
    }
    // Text outside the PEM blocks is a key that was not read: refuse it rather than skip it.
    let mut inside = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.starts_with("-----BEGIN ") {
            inside = true;
        } else if line.starts_with("-----END ") {
            inside = false;
        } else if !inside {
            return Err(
                "must be PEM public keys (-----BEGIN PUBLIC KEY-----), separated by commas"
                    .to_owned(),
            );
        }
    }
    Ok(keys)
}

/// A PEM's line breaks written as `\n`, as one-line settings (a `.env` file, a console
/// field) often carry them, made real.
fn unescape_newlines(text: &str) -> String {
    text.replace("\\n", "\n")
}

/// `der` in PEM armour with `label`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// `key` as the PKCS#8 PEM it was read from (development mode stores its generated key).
pub fn pkcs8_pem(key: &SigningKey) -> String {
    pem("PRIVATE KEY", key.pkcs8())
}

/// The public half of `key` as a PEM SubjectPublicKeyInfo, as `JWT_VERIFY_KEYS` takes it.
pub fn public_pem(key: &PublicKey) -> String {
    let (prefix, _) = key.algorithm.spki_prefix();
    pem("PUBLIC KEY", &[prefix, &key.raw].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_sign_and_verify_for_both_algorithms() {
        for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
            let key = parse_signing_key(algorithm, &SigningKey::generate(algorithm)).unwrap();
            let signature = KeyPair::from_pkcs8(algorithm, key.pkcs8())
                .unwrap()
                .sign(b"message")
                .unwrap();
            assert!(key.public().verify(b"message", &signature));
            assert!(!key.public().verify(b"massage", &signature));
            let published = parse_public_keys(algorithm, &public_pem(key.public())).unwrap();
            assert_eq!(published, vec![key.public().clone()]);
            assert_eq!(key.public().kid().len(), 43);
        }
    }

    #[test]
    fn a_key_of_the_other_algorithm_is_refused_with_the_reason_and_without_the_key() {
        let ed = SigningKey::generate(KeyAlgorithm::EdDsa);
        let error = parse_signing_key(KeyAlgorithm::Es256, &ed).unwrap_err();
        assert_eq!(error, "must be a P-256 key for ES256");
        let es = parse_signing_key(
            KeyAlgorithm::Es256,
            &SigningKey::generate(KeyAlgorithm::Es256),
        )
        .unwrap();
        let error = parse_public_keys(KeyAlgorithm::EdDsa, &public_pem(es.public())).unwrap_err();
        assert!(error.contains("Ed25519"), "{error}");
        assert!(parse_signing_key(KeyAlgorithm::EdDsa, "not a key").is_err());
        assert!(parse_public_keys(KeyAlgorithm::EdDsa, "not a key").is_err());
        assert!(
            !format!("{:?}", parse_signing_key(KeyAlgorithm::EdDsa, &ed).unwrap())
                .contains(&ed[30..60])
        );
    }

    #[test]
    fn keys_written_on_one_line_and_lists_separated_by_commas_are_read() {
        let keys: Vec<_> = (0..2)
            .map(|_| {
                let key = SigningKey::generate(KeyAlgorithm::EdDsa);
                public_pem(
                    parse_signing_key(KeyAlgorithm::EdDsa, &key)
                        .unwrap()
                        .public(),
                )
            })
            .collect();
        let one_line = keys.join(",").replace('\n', "\\n");
        assert_eq!(
            parse_public_keys(KeyAlgorithm::EdDsa, &one_line)
                .unwrap()
                .len(),
            2
        );
        assert!(
            parse_public_keys(KeyAlgorithm::EdDsa, " , ")
                .unwrap()
                .is_empty()
        );
        let with_junk = format!("{},junk", keys[0]);
        assert!(parse_public_keys(KeyAlgorithm::EdDsa, &with_junk).is_err());
    }

    /// RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = PublicKey::new(KeyAlgorithm::EdDsa, x);
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
