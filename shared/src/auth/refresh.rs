//! Refresh-token material: 256 random bits, base64url without padding (43 characters).
//! Only the SHA-256 of a token is ever stored.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};

pub type TokenHash = [u8; 32];

/// A fresh token and its hash.
pub fn generate() -> (String, TokenHash) {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = digest(&token);
    (token, hash)
}

/// The hash to look a presented token up by, or `None` when it cannot be one of ours
/// (so garbage never reaches the database).
pub fn hash_presented(token: &str) -> Option<TokenHash> {
    let decoded = URL_SAFE_NO_PAD.decode(token.as_bytes()).ok()?;
    (decoded.len() == 32).then(|| digest(token))
}

fn digest(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_base64url_chars_and_hash_back() {
        let (token, hash) = generate();
        assert_eq!(token.len(), 43);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(hash_presented(&token), Some(hash));
        assert_ne!(generate().0, token);
    }

    #[test]
    fn garbage_is_not_a_token() {
        assert_eq!(hash_presented(""), None);
        assert_eq!(hash_presented("not a token"), None);
        assert_eq!(hash_presented(&"A".repeat(44)), None);
    }
}
