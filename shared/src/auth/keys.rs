//! Asymmetric access-token keys (`JWT_ALGORITHM` = `EdDSA`, `ES256` or `RS256`): reading them from
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
        Ed25519KeyPair, KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair,
        UnparsedPublicKey,
    },
};
use rustls_pki_types::pem::SectionKind;
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::{Digest as _, Sha256};

/// The algorithms that sign with a private key and publish the public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8037).
    EdDsa,
    /// ECDSA on P-256 with SHA-256, signatures as `r ‖ s` (RFC 7518 §3.4).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 4096 bits: the one family API
    /// Gateway's HTTP API JWT authorizer verifies.
    Rs256,
}

impl KeyAlgorithm {
    /// The JOSE name (`alg`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
        }
    }

    fn key_kind(self) -> &'static str {
        match self {
            Self::EdDsa => "an Ed25519 key",
            Self::Es256 => "a P-256 key",
            Self::Rs256 => "an RSA key of 2048 to 4096 bits",
        }
    }

    /// The DER that precedes the key in a SubjectPublicKeyInfo of this algorithm, and the
    /// key's length: the SPKI of each is fixed apart from the key (RFC 8410 §4; RFC 5480,
    /// uncompressed points only). RSA's is not: [`rsa_spki`].
    fn spki_prefix(self) -> (&'static [u8], usize) {
        match self {
            Self::Rs256 => (&[], 0),
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
/// the 65-byte uncompressed point; RSA: the DER RSAPublicKey) and its thumbprint.
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
            KeyAlgorithm::Rs256 => {
                let (n, e) = key.rsa();
                format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#)
            }
        };
        key.kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        key
    }

    /// The key id tokens signed by the matching private key carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as jsonwebtoken's `DecodingKey::from_ed_der` / `from_ec_der` /
    /// `from_rsa_der` hold it for the provider in [`super::jwt`].
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn x(&self) -> String {
        match self.algorithm {
            KeyAlgorithm::EdDsa => URL_SAFE_NO_PAD.encode(&self.raw),
            KeyAlgorithm::Es256 => URL_SAFE_NO_PAD.encode(&self.raw[1..33]),
            KeyAlgorithm::Rs256 => String::new(),
        }
    }

    fn y(&self) -> Option<String> {
        match self.algorithm {
            KeyAlgorithm::Es256 => Some(URL_SAFE_NO_PAD.encode(&self.raw[33..65])),
            KeyAlgorithm::EdDsa | KeyAlgorithm::Rs256 => None,
        }
    }

    /// An RSA key's modulus and exponent, base64url (its `n` and `e`).
    fn rsa(&self) -> (String, String) {
        rsa_components(&self.raw).map_or_else(Default::default, |(n, e)| {
            (URL_SAFE_NO_PAD.encode(n), URL_SAFE_NO_PAD.encode(e))
        })
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
            KeyAlgorithm::Rs256 => {
                let (n, e) = self.rsa();
                serde_json::json!({"kty": "RSA", "n": n, "e": e})
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
        KeyAlgorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(algorithm, raw)
        .verify(message, signature)
        .is_ok()
}

/// The private key that signs tokens: its PKCS#8 DER (never in `Debug` output) and its
/// public half. The process holds it for its whole life (jsonwebtoken's `EncodingKey`
/// keeps a copy), as it does `JWT_SECRET`.
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
    /// `None` for RSA, which ring does not generate.
    pub fn generate(algorithm: KeyAlgorithm) -> Option<String> {
        let rng = SystemRandom::new();
        let document = match algorithm {
            KeyAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
            KeyAlgorithm::Es256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            KeyAlgorithm::Rs256 => return None,
        }
        // ring fails only when the system's random source does.
        .unwrap_or_else(|_| panic!("the system's random source failed"));
        Some(pem("PRIVATE KEY", document.as_ref()))
    }
}

/// A private key ready to sign: parsed from PKCS#8 once, then used for many messages.
pub enum KeyPair {
    EdDsa(Ed25519KeyPair),
    Es256(EcdsaKeyPair, SystemRandom),
    Rs256(RsaKeyPair, SystemRandom),
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
            KeyAlgorithm::Rs256 => RsaKeyPair::from_pkcs8(pkcs8)
                .ok()
                .filter(|pair| (256..=512).contains(&pair.public().modulus_len()))
                .map(|pair| Self::Rs256(pair, SystemRandom::new())),
        }
    }

    /// The public key, as [`PublicKey`] holds it.
    fn public_key(&self) -> Vec<u8> {
        match self {
            Self::EdDsa(pair) => pair.public_key().as_ref().to_vec(),
            Self::Es256(pair, _) => pair.public_key().as_ref().to_vec(),
            Self::Rs256(pair, _) => pair.public_key().as_ref().to_vec(),
        }
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::EdDsa(_) => KeyAlgorithm::EdDsa,
            Self::Es256(..) => KeyAlgorithm::Es256,
            Self::Rs256(..) => KeyAlgorithm::Rs256,
        }
    }

    /// The signature of `message` (Ed25519: 64 bytes; ES256: `r ‖ s`, 64 bytes; RS256:
    /// the modulus's length). `None` only when the system's random source fails (ECDSA's
    /// nonce, RSA's blinding).
    pub fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::EdDsa(pair) => Some(pair.sign(message).as_ref().to_vec()),
            Self::Es256(pair, rng) => pair.sign(rng, message).ok().map(|s| s.as_ref().to_vec()),
            Self::Rs256(pair, rng) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
                    .ok()
                    .map(|()| signature)
            }
        }
    }
}

/// Reads `JWT_SIGNING_KEY`: one PKCS#8 PEM private key of `algorithm`. `Err` says what is
/// wrong without quoting the key.
pub fn parse_signing_key(algorithm: KeyAlgorithm, text: &str) -> Result<SigningKey, String> {
    let convert = "must be one PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----; \
                   `openssl pkcs8 -topk8 -nocrypt` converts other forms)";
    let mut sections = pem_sections(&unescape_newlines(text))?;
    let der = match (sections.pop(), sections.is_empty()) {
        (Some((SectionKind::PrivateKey, der)), true) => der,
        _ => return Err(convert.to_owned()),
    };
    let der = SecretSlice::from(der);
    let wrong = || format!("must be {} for {}", algorithm.key_kind(), algorithm.name());
    let public = KeyPair::from_pkcs8(algorithm, der.expose_secret())
        .ok_or_else(wrong)?
        .public_key();
    Ok(SigningKey {
        pkcs8: std::sync::Arc::new(der),
        public: PublicKey::new(algorithm, public),
    })
}

/// Reads `JWT_VERIFY_KEYS`: PEM public keys (`-----BEGIN PUBLIC KEY-----`) of `algorithm`,
/// separated by commas (or simply one after another).
pub fn parse_public_keys(algorithm: KeyAlgorithm, text: &str) -> Result<Vec<PublicKey>, String> {
    // A PEM has no commas: each separates two keys, as a line break does.
    let text = unescape_newlines(text).replace(',', "\n");
    let mut keys = Vec::new();
    for (kind, der) in pem_sections(&text)? {
        let number = keys.len() + 1;
        match kind {
            SectionKind::PublicKey => {}
            SectionKind::PrivateKey | SectionKind::EcPrivateKey | SectionKind::RsaPrivateKey => {
                return Err(format!(
                    "holds a private key (key {number}): list public keys only \
                     (`openssl pkey -pubout` makes one), and treat that private key as exposed"
                ));
            }
            _ => {
                return Err(format!(
                    "must hold public keys only (key {number} is not one)"
                ));
            }
        }
        let (prefix, len) = algorithm.spki_prefix();
        let raw = match algorithm {
            KeyAlgorithm::Rs256 => rsa_spki(&der),
            _ => der.strip_prefix(prefix).filter(|raw| raw.len() == len),
        };
        match raw {
            Some(raw) if algorithm != KeyAlgorithm::Es256 || raw[0] == 4 => {
                keys.push(PublicKey::new(algorithm, raw.to_vec()));
            }
            _ => {
                return Err(format!(
                    "must hold public keys of {} for {} (key {number} is not)",
                    algorithm.key_kind(),
                    algorithm.name(),
                ));
            }
        }
    }
    Ok(keys)
}

/// Every PEM section of `text`, with nothing left out: a block of a kind the reader does
/// not know, or any text outside the blocks, is an error rather than skipped (it would be
/// a key silently not read).
fn pem_sections(text: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    let unreadable = || "holds a PEM block that cannot be read".to_owned();
    let mut rest = text.as_bytes();
    let mut sections = Vec::new();
    while let Some(section) =
        rustls_pki_types::pem::from_buf(&mut rest).map_err(|_| unreadable())?
    {
        sections.push(section);
    }
    // Lines as the reader splits them (at CR or LF), armour lines whole and from their
    // first column: anything else outside a block, or any `-----` inside one, is refused.
    let mut inside = false;
    let mut begins = 0;
    for line in text
        .split(['\r', '\n'])
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
    {
        let armour = |word: &str| line.starts_with(word) && line.ends_with("-----");
        if armour("-----BEGIN ") && !inside {
            inside = true;
            begins += 1;
        } else if armour("-----END ") && inside {
            inside = false;
        } else if !inside || line.contains("-----") {
            return Err("must be PEM (-----BEGIN …-----), keys separated by commas".to_owned());
        }
    }
    if begins != sections.len() {
        return Err(unreadable());
    }
    Ok(sections)
}

/// The rsaEncryption algorithm identifier's contents: its OID and a NULL.
const RSA_ENCRYPTION: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

/// One DER element at the start of `input`: its tag, its contents and what follows.
/// Definite lengths of up to two bytes, in their shortest form (DER's rule).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81 => {
            let (&len, rest) = rest.split_first()?;
            (len >= 0x80).then_some((usize::from(len), rest))?
        }
        0x82 => {
            let (len, rest) = rest.split_at_checked(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            (len >= 0x100).then_some((len, rest))?
        }
        _ => return None,
    };
    let (contents, rest) = rest.split_at_checked(len)?;
    Some((tag, contents, rest))
}

/// The RSAPublicKey inside an RSA SubjectPublicKeyInfo (RFC 3279 §2.3.1), checked whole:
/// the rsaEncryption algorithm with its NULL, a modulus of 2048 to 4096 bits, nothing after.
fn rsa_spki(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, body, []) = der(spki)? else {
        return None;
    };
    let (0x30, RSA_ENCRYPTION, rest) = der(body)? else {
        return None;
    };
    let (0x03, [0, key @ ..], []) = der(rest)? else {
        return None;
    };
    let (n, _) = rsa_components(key)?;
    (256..=512).contains(&n.len()).then_some(key)
}

/// The modulus and exponent of a DER RSAPublicKey, without their sign bytes, held to what
/// ring verifies with (so a key accepted here is never one every token then fails under):
/// positive INTEGERs in their shortest form, an odd modulus, and an odd exponent from 3 to
/// 2³³ − 1.
fn rsa_components(key: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, body, []) = der(key)? else {
        return None;
    };
    let (0x02, n, rest) = der(body)? else {
        return None;
    };
    let (0x02, e, []) = der(rest)? else {
        return None;
    };
    let (n, e) = (unsigned(n)?, unsigned(e)?);
    let odd = |i: &[u8]| i.last().is_some_and(|b| b & 1 == 1);
    let exponent = e.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    (odd(n) && odd(e) && e.len() <= 5 && (3..1 << 33).contains(&exponent)).then_some((n, e))
}

/// A positive DER INTEGER's magnitude, without the zero byte that keeps it positive; `None`
/// for an empty, negative or not minimally encoded one.
fn unsigned(integer: &[u8]) -> Option<&[u8]> {
    match integer {
        [] | [0x80..=0xff, ..] | [0, 0..=0x7f, ..] => None,
        [0, rest @ ..] => Some(rest),
        _ => Some(integer),
    }
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
    let spki = match key.algorithm {
        KeyAlgorithm::Rs256 => {
            let bits = der_element(0x03, &[&[0], key.raw.as_slice()].concat());
            der_element(0x30, &[der_element(0x30, RSA_ENCRYPTION), bits].concat())
        }
        _ => [key.algorithm.spki_prefix().0, &key.raw].concat(),
    };
    pem("PUBLIC KEY", &spki)
}

/// `contents` as one DER element of `tag`. Lengths up to 65535 bytes: a public key here is
/// at most about 550.
fn der_element(tag: u8, contents: &[u8]) -> Vec<u8> {
    debug_assert!(contents.len() <= usize::from(u16::MAX));
    let len = contents.len();
    let mut out = vec![tag];
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        Ok(byte) => out.extend([0x81, byte]),
        Err(_) => {
            out.push(0x82);
            out.extend(u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend_from_slice(contents);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_sign_and_verify_for_both_algorithms() {
        for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
            let key =
                parse_signing_key(algorithm, &SigningKey::generate(algorithm).unwrap()).unwrap();
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
        let ed = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
        let error = parse_signing_key(KeyAlgorithm::Es256, &ed).unwrap_err();
        assert_eq!(error, "must be a P-256 key for ES256");
        let es = parse_signing_key(
            KeyAlgorithm::Es256,
            &SigningKey::generate(KeyAlgorithm::Es256).unwrap(),
        )
        .unwrap();
        let error = parse_public_keys(KeyAlgorithm::EdDsa, &public_pem(es.public())).unwrap_err();
        assert!(error.contains("Ed25519"), "{error}");
        assert!(parse_signing_key(KeyAlgorithm::EdDsa, "not a key").is_err());
        assert!(parse_public_keys(KeyAlgorithm::EdDsa, "not a key").is_err());
        let key = parse_signing_key(KeyAlgorithm::EdDsa, &ed).unwrap();
        assert_eq!(
            format!("{key:?}"),
            format!(
                "SigningKey {{ algorithm: EdDsa, kid: {:?}, .. }}",
                key.public().kid()
            )
        );
        // A private key where public ones go is refused, and said to be exposed.
        let error = parse_public_keys(KeyAlgorithm::EdDsa, &ed).unwrap_err();
        assert!(error.contains("private key"), "{error}");
        // Two keys where one goes, another kind of block, a block the reader cannot name.
        let two = format!("{ed}{ed}");
        assert!(parse_signing_key(KeyAlgorithm::EdDsa, &two).is_err());
        let certificate = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert!(parse_public_keys(KeyAlgorithm::EdDsa, certificate).is_err());
        let unknown = ed.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert!(parse_signing_key(KeyAlgorithm::EdDsa, &unknown).is_err());
        assert!(parse_public_keys(KeyAlgorithm::EdDsa, &unknown).is_err());
    }

    #[test]
    fn keys_written_on_one_line_and_lists_separated_by_commas_are_read() {
        let keys: Vec<_> = (0..2)
            .map(|_| {
                let key = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
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

    /// Keys as `openssl genpkey` writes them (Ed25519: PKCS#8 v1 without the public key)
    /// and their public halves as `openssl pkey -pubout` does: made for this test only.
    #[test]
    fn keys_made_by_openssl_are_read_and_match_their_public_pems() {
        let cases = [
            (
                KeyAlgorithm::EdDsa,
                "-----BEGIN PRIVATE KEY-----\n\
                 MC4CAQAwBQYDK2VwBCIEIKDUrXpvH4j6H7r0h36UcLtF/FFocFhcyDirjJ8eVdaC\n\
                 -----END PRIVATE KEY-----\n",
                "-----BEGIN PUBLIC KEY-----\n\
                 MCowBQYDK2VwAyEAZZGBTvetP8L4/RMEij6s6Bm9wl8Kghapx9eFdOKdojo=\n\
                 -----END PUBLIC KEY-----\n",
            ),
            (
                KeyAlgorithm::Es256,
                "-----BEGIN PRIVATE KEY-----\n\
                 MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg3iOx71QEmPzMzZUc\n\
                 RrPAqRGuannwZY/PoJ7kgkWyqwWhRANCAAT9IGQgJwI+5ywyQ0bxuInOCn+kpWOu\n\
                 GFhLol38DiQafWNjokiqEFe2NOUhahfjnnAFEDc1cReaRBF/nijBRast\n\
                 -----END PRIVATE KEY-----\n",
                "-----BEGIN PUBLIC KEY-----\n\
                 MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE/SBkICcCPucsMkNG8biJzgp/pKVj\n\
                 rhhYS6Jd/A4kGn1jY6JIqhBXtjTlIWoX455wBRA3NXEXmkQRf54owUWrLQ==\n\
                 -----END PUBLIC KEY-----\n",
            ),
            (
                KeyAlgorithm::Rs256,
                "-----BEGIN PRIVATE KEY-----\n\
                 MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDog4wtiEFBVdjo\n\
                 KRjy8oXhxcpzd7S53WB/FVXmojjwPYywyWCPLmTROj5qCmvvY1btPtKD1K/7JgYy\n\
                 MTwK1GIN6qKOn4PoHMoT8HoMzMo+2lBiVTghY/InjFnCUlCg8FAL64AB7q7Mcd9m\n\
                 xsM4SeIhDxXeqjXGh2lG5pKKlEdso8D2vv9age/7W3HbceU2fA4UqnK+8NjHAwai\n\
                 +SpaefkFfS/WRd/lU7qUcKVj7KK9EThWaJV0Y3XMyhLmK9zLdQvW+tpdp1uDHFzR\n\
                 VMnelFQEo4Jeh10+udyqaVXL4R0rRW+g/QTln2gaqzAViIdF/n/I0sq1QfYXbj8D\n\
                 DflUH0VZAgMBAAECggEAAhH1xAwEBLhmc362LaeSIJX5vPhyX/tEGi2O87w7BIyP\n\
                 vZ01YmD33dMGbjxEhL+eLQOTrT/OB07p3DWLAs+sRdJyexGZg44KEI5iD84c+N1J\n\
                 vO5kTwvMQqThwbSo6h3poImKvLmqzcAvzIL1hwFFZaT0PWTHkMpw2gRAhsJWNnXk\n\
                 b/rI4Seirq4Gyj7MLU4iULSHwc/1AVBEf1aEHo+BG+1vPsOJC+2HNu2vK0khVgyz\n\
                 AbaZis3a0vhXsRiSg6+g/sLflrRwm5XMRzVWrLIj1gEcGeENq8gogE+8Jv8u8fpT\n\
                 l+dIqmlUbBDQ66FyjjtEL1GOZbJF8f/ljFwbYsJsmQKBgQD5Z2FauLi7njvvg43v\n\
                 dLg43Y9y9oibdE60jrDTnIGORQfIfhrNC2pCHiZmVr45rsPVT1LFH657g6PP4YV/\n\
                 f2d4M2qo1bUPPWqiOUx19TGeY93b2pAjkABSxNamg0e3toQlHHLDIdA1ufuV12m2\n\
                 BVVDrhrmuegWn8EnrsWveaZIXQKBgQDuqc/GcNxcXpEnaBXKRwDDhGPYXbOP58Do\n\
                 TG8vcSNWmZyYLQyqOtbDEMScE2ldyhBg31VRXDXomAxOO5hGzvOcrl6uwTA9yHpK\n\
                 DnBbyzHG5QTIFVZoes9Z3nMcpT5iiJkdqotSyixH6+D3RvP1lrsKRWOPMh4kqtuT\n\
                 YLfWhonxLQKBgQDv+zblSbuP5Mk9RbPMht5A8Yh3kZuPIdId0PN7GyxajjfYBueZ\n\
                 B3PeXQ6MCMmPzYdoeKRnQ33sIZX9kL6ZGSmhsq/d94z6NhmmMUZOdnmhM+0mAOAT\n\
                 KBv3iKoWnVnj/36WCxKuipnDKMtZumZgnC8YKa5+9sHJCz2cBoL3vzFujQKBgQCy\n\
                 LdURMfFShMeZw/uAqMHJNm3UeyAzr7I1u9rGcJERdl2Svw9Vh9gOidY/L77aZqET\n\
                 sajgtRcKL3oAbj2hn6AAua22ikSZ27Jw15bK8UiYVSLcvhFkr0terNUD7dpFdfXa\n\
                 UBj0Fjw49cFe23oHQCEj6eoKXkBi36xOu0aEwqz5gQKBgQDRQv1ABJg/OIeCHO9z\n\
                 S7UoOXcH2JA5iXoTtZIi486pt3Y/n1IlcnOwloawv4lg8f54kZ9ZWWpKWcdeI+1n\n\
                 zQoMDbA+Aks5qoO62v8M4N9CKWkOSxczzzYY7IHWDbLHoCAzEWXvMbJKnkH1j0hS\n\
                 h+47nPUYVXTjPn3EV5UjNKrBTA==\n\
                 -----END PRIVATE KEY-----\n",
                "-----BEGIN PUBLIC KEY-----\n\
                 MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6IOMLYhBQVXY6CkY8vKF\n\
                 4cXKc3e0ud1gfxVV5qI48D2MsMlgjy5k0To+agpr72NW7T7Sg9Sv+yYGMjE8CtRi\n\
                 Deqijp+D6BzKE/B6DMzKPtpQYlU4IWPyJ4xZwlJQoPBQC+uAAe6uzHHfZsbDOEni\n\
                 IQ8V3qo1xodpRuaSipRHbKPA9r7/WoHv+1tx23HlNnwOFKpyvvDYxwMGovkqWnn5\n\
                 BX0v1kXf5VO6lHClY+yivRE4VmiVdGN1zMoS5ivcy3UL1vraXadbgxxc0VTJ3pRU\n\
                 BKOCXoddPrncqmlVy+EdK0VvoP0E5Z9oGqswFYiHRf5/yNLKtUH2F24/Aw35VB9F\n\
                 WQIDAQAB\n\
                 -----END PUBLIC KEY-----\n",
            ),
        ];
        for (algorithm, private, public) in cases {
            let key = parse_signing_key(algorithm, private).unwrap();
            assert_eq!(
                parse_public_keys(algorithm, public).unwrap(),
                vec![key.public().clone()]
            );
            assert_eq!(public_pem(key.public()), public);
            let signature = KeyPair::from_pkcs8(algorithm, key.pkcs8())
                .unwrap()
                .sign(b"message")
                .unwrap();
            assert!(key.public().verify(b"message", &signature), "{algorithm:?}");
            assert!(
                !key.public().verify(b"massage", &signature),
                "{algorithm:?}"
            );
        }
        // The RSA key's JWK carries the modulus `openssl rsa -modulus` prints, and e = 65537.
        let rsa = parse_signing_key(KeyAlgorithm::Rs256, cases[2].1).unwrap();
        let jwk = rsa.public().jwk();
        assert_eq!(
            jwk["n"],
            "6IOMLYhBQVXY6CkY8vKF4cXKc3e0ud1gfxVV5qI48D2MsMlgjy5k0To-agpr72NW7T7Sg9Sv-yYGMjE8CtRiDeqijp-D6BzKE_B6DMzKPtpQYlU4IWPyJ4xZwlJQoPBQC-uAAe6uzHHfZsbDOEniIQ8V3qo1xodpRuaSipRHbKPA9r7_WoHv-1tx23HlNnwOFKpyvvDYxwMGovkqWnn5BX0v1kXf5VO6lHClY-yivRE4VmiVdGN1zMoS5ivcy3UL1vraXadbgxxc0VTJ3pRUBKOCXoddPrncqmlVy-EdK0VvoP0E5Z9oGqswFYiHRf5_yNLKtUH2F24_Aw35VB9FWQ"
        );
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kty"], "RSA");
    }

    /// The RSA reader takes what ring verifies with and nothing else: a key it let through
    /// that ring refuses would be published, then fail every token under its kid.
    #[test]
    fn rsa_public_keys_are_held_to_what_ring_verifies_with() {
        let integer = |bytes: &[u8]| der_element(0x02, bytes);
        let rsa_key = |n: &[u8], e: &[u8]| der_element(0x30, &[integer(n), integer(e)].concat());
        let spki = |algorithm: &[u8], unused: u8, key: &[u8]| {
            let bits = der_element(0x03, &[&[unused], key].concat());
            der_element(0x30, &[der_element(0x30, algorithm), bits].concat())
        };
        let modulus = |bytes: usize| {
            let mut n = vec![0xc5; bytes];
            n.insert(0, 0); // the sign byte a modulus with its top bit set needs
            n
        };
        let good = rsa_key(&modulus(256), &[1, 0, 1]);
        assert!(rsa_spki(&spki(RSA_ENCRYPTION, 0, &good)).is_some());
        assert!(rsa_spki(&spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(512), &[3]))).is_some());
        let refused = [
            (
                "1024 bits",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(128), &[1, 0, 1])),
            ),
            (
                "8192 bits",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(1024), &[1, 0, 1])),
            ),
            (
                "a negative modulus",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(256)[1..], &[1, 0, 1])),
            ),
            (
                "an even modulus",
                spki(
                    RSA_ENCRYPTION,
                    0,
                    &rsa_key(&[&modulus(256)[..256], &[0xc4]].concat(), &[1, 0, 1]),
                ),
            ),
            (
                "e = 1",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(256), &[1])),
            ),
            (
                "an even e",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(256), &[1, 0, 0])),
            ),
            (
                "e of 6 bytes",
                spki(
                    RSA_ENCRYPTION,
                    0,
                    &rsa_key(&modulus(256), &[1, 0, 0, 0, 0, 1]),
                ),
            ),
            (
                "e not minimal",
                spki(RSA_ENCRYPTION, 0, &rsa_key(&modulus(256), &[0, 1, 0, 1])),
            ),
            ("no NULL", spki(&RSA_ENCRYPTION[..11], 0, &good)),
            ("unused bits", spki(RSA_ENCRYPTION, 1, &good)),
            (
                "data after the key",
                spki(RSA_ENCRYPTION, 0, &[good.as_slice(), &[0]].concat()),
            ),
            (
                "data after the SPKI",
                [spki(RSA_ENCRYPTION, 0, &good), vec![0]].concat(),
            ),
        ];
        for (what, der) in refused {
            assert!(rsa_spki(&der).is_none(), "{what}");
        }
        // Lengths in their long forms only when needed, never indefinite.
        assert_eq!(der(&[0x02, 0x81, 0x05, 1, 2, 3, 4, 5]), None);
        assert_eq!(der(&[0x02, 0x80, 1, 0, 0]), None);
        assert_eq!(der(&[0x02, 0x82, 0x00, 0x81]), None);
        assert_eq!(
            der(&[0x02, 0x01, 7, 9]),
            Some((0x02, &[7u8][..], &[9u8][..]))
        );
    }

    #[test]
    fn armour_must_start_its_line_and_stand_alone() {
        let key = public_pem(
            parse_signing_key(
                KeyAlgorithm::EdDsa,
                &SigningKey::generate(KeyAlgorithm::EdDsa).unwrap(),
            )
            .unwrap()
            .public(),
        );
        assert_eq!(
            parse_public_keys(KeyAlgorithm::EdDsa, &key).unwrap().len(),
            1
        );
        let crlf = key.replace('\n', "\r\n");
        assert_eq!(
            parse_public_keys(KeyAlgorithm::EdDsa, &crlf).unwrap().len(),
            1
        );
        for bent in [
            format!(" {key}"),
            key.replace("-----END PUBLIC KEY-----", "-----END PUBLIC KEY----- x"),
            format!("{}A\r{key}", key.replace("-----END PUBLIC KEY-----\n", "")),
        ] {
            assert!(
                parse_public_keys(KeyAlgorithm::EdDsa, &bent).is_err(),
                "{bent:?}"
            );
        }
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
