//! Opaque, tamper-evident keyset cursors.
//!
//! A cursor is `base64url(payload) "." base64url(HMAC-SHA256(payload))`, where the payload
//! names the list and sort it belongs to and where the last page ended. The key is derived
//! from the JWT secret, so a cursor made by one instance is accepted by every other, and a
//! modified or foreign cursor is a 400 `invalid_query`, never a database error or someone
//! else's data.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac as _, digest::KeyInit};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest as _, Sha256};

use crate::error::{ApiError, ErrorKind};

/// Smallest and largest page size; the default.
pub const MIN_LIMIT: u32 = 1;
pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 20;

/// A page of a list, as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` fetched rows: the extra row only tells that there is
    /// more, and the cursor is made from the last row kept.
    pub fn from_fetched(mut rows: Vec<T>, limit: u32, cursor: impl FnOnce(&T) -> String) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor)
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

pub struct CursorSigner {
    /// HMAC-SHA256 keyed once; each cursor clones it.
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSigner([REDACTED])")
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    /// Which list (and sort) the cursor belongs to.
    l: String,
    p: T,
}

impl CursorSigner {
    /// Derives the cursor key from `secret` (domain-separated from its use for JWTs).
    pub fn new(secret: &SecretString) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"task-api cursor key v1\0");
        hasher.update(secret.expose_secret().as_bytes());
        // HMAC pads a key shorter than the hash's block to the block with zeros; padding
        // it here gives the same MAC through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&hasher.finalize());
        Self {
            mac: <Hmac<Sha256> as KeyInit>::new(&block.into()),
        }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    /// Encodes `position` for the list named `list` (e.g. `tasks:-created_at`).
    pub fn encode<T: Serialize>(&self, list: &str, position: &T) -> String {
        let payload = serde_json::to_vec(&Envelope {
            l: list.to_owned(),
            p: position,
        })
        .unwrap_or_default();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(self.mac(&payload))
        )
    }

    /// Decodes a cursor made by [`encode`](Self::encode) for the same `list`.
    /// A list's `cursor` parameter: absent or empty starts at the beginning.
    pub fn decode_param<T: DeserializeOwned>(
        &self,
        list: &str,
        cursor: Option<&str>,
    ) -> Result<Option<T>, ApiError> {
        cursor
            .filter(|c| !c.is_empty())
            .map(|c| self.decode(list, c))
            .transpose()
    }

    pub fn decode<T: DeserializeOwned>(&self, list: &str, cursor: &str) -> Result<T, ApiError> {
        let invalid = || ApiError::new(ErrorKind::InvalidQuery).with_detail("cursor is invalid");
        let (payload, tag) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| invalid())?;
        let mut mac = self.mac.clone();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| invalid())?;
        let envelope: Envelope<T> = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if envelope.l != list {
            return Err(ApiError::new(ErrorKind::InvalidQuery)
                .with_detail("cursor belongs to another list or sort order"));
        }
        Ok(envelope.p)
    }
}

/// Parses `limit`: absent is the default, anything but 1..=100 is `invalid_query`.
pub fn parse_limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (MIN_LIMIT..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::new(ErrorKind::InvalidQuery).with_detail(format!(
                    "limit must be a whole number from {MIN_LIMIT} to {MAX_LIMIT}"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::Mac;

    fn signer(secret: &str) -> CursorSigner {
        CursorSigner::new(&SecretString::from(secret.to_owned()))
    }

    /// The block-padded key gives the MAC of the 32-byte key itself, so cursors issued
    /// before the signer was keyed this way still verify.
    #[test]
    fn the_padded_key_is_the_same_hmac_key() {
        let secret = "a cursor secret of enough length, at least 32 bytes";
        let mut hasher = Sha256::new();
        hasher.update(b"task-api cursor key v1\0");
        hasher.update(secret.as_bytes());
        let key: [u8; 32] = hasher.finalize().into();
        let mut expected = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        expected.update(b"payload");
        assert_eq!(
            signer(secret).mac(b"payload"),
            expected.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn cursors_round_trip_for_their_own_list_only() {
        let s = signer("cursor-secret-0123456789abcdef0123456789");
        let c = s.encode("tasks:title", &("abc", 7));
        assert_eq!(
            s.decode::<(String, i32)>("tasks:title", &c).unwrap(),
            ("abc".into(), 7)
        );
        assert_eq!(
            s.decode::<(String, i32)>("tasks:-title", &c)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidQuery
        );
    }

    #[test]
    fn tampered_or_foreign_cursors_are_invalid_query() {
        let s = signer("cursor-secret-0123456789abcdef0123456789");
        let c = s.encode("tasks:title", &("abc", 7));
        let (payload, tag) = c.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"l":"tasks:title","p":["abd",7]}"#);
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            "garbage".to_owned(),
            String::new(),
            format!("{payload}."),
        ] {
            let err = s.decode::<(String, i32)>("tasks:title", &bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidQuery, "{bad}");
        }
        let other = signer("another-secret-0123456789abcdef01234567");
        assert!(other.decode::<(String, i32)>("tasks:title", &c).is_err());
    }

    #[test]
    fn a_page_has_a_cursor_only_when_more_rows_were_fetched() {
        let page = Page::from_fetched(vec![1, 2, 3], 2, |last| format!("after {last}"));
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_cursor.as_deref(), Some("after 2"));
        let last = Page::from_fetched(vec![1, 2], 2, |_| unreachable!("no next page"));
        assert_eq!(last.items, vec![1, 2]);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn limits_outside_one_to_a_hundred_are_refused() {
        assert_eq!(parse_limit(None).unwrap(), 20);
        assert_eq!(parse_limit(Some("1")).unwrap(), 1);
        assert_eq!(parse_limit(Some("100")).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", "", "1.5"] {
            assert!(parse_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
