//! Security events: one structured `warn` line under the `security` target for each thing an
//! operator watching for attacks wants to see (a failed login, a lockout, a refused
//! password-change guess, a client over the credential limit, a reused refresh token, an
//! admin route refused). The line sits in the request's span, so it carries the request id;
//! it names the client address and the user id when one is known, and never an email in
//! clear: an unknown account is named by a keyed hash of its normalised email, which joins
//! repeated attempts on one address without revealing it.

use hmac::{Hmac, Mac as _, digest::KeyInit};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use crate::http::ClientAddr;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityEvent {
    LoginFailed,
    /// The failure that spent an email's budget: logins for it are refused until the window passes.
    LoginLockedOut,
    /// A login or password change refused because the email's budget was spent.
    LoginThrottled,
    PasswordChangeFailed,
    /// A client over the per-client limit of the credential endpoints.
    ClientThrottled,
    RefreshTokenReused,
    AdminRouteRefused,
}

impl SecurityEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginFailed => "login_failed",
            Self::LoginLockedOut => "login_locked_out",
            Self::LoginThrottled => "login_throttled",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::ClientThrottled => "client_throttled",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::AdminRouteRefused => "admin_route_refused",
        }
    }
}

/// Who the event is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    User(Uuid),
    /// An email that may belong to no account: logged as [`email_tag`].
    Email(&'a str),
    Nobody,
}

/// A keyed hash of a normalised email: 16 hex digits of HMAC-SHA256 under the pepper, so
/// the same address gives the same tag across instances and restarts but cannot be
/// reversed or guessed without the pepper.
pub fn email_tag(pepper: &SecretString, email: &str) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(pepper.expose_secret().as_bytes())
    else {
        return "unavailable".to_owned();
    };
    mac.update(b"security-event-email:");
    mac.update(email.as_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes one security event line.
pub fn record(
    event: SecurityEvent,
    client: ClientAddr,
    subject: Subject<'_>,
    pepper: &SecretString,
) {
    let event = event.as_str();
    match subject {
        Subject::User(user_id) => {
            tracing::warn!(target: "security", event, client = %client, user_id = %user_id, "security event");
        }
        Subject::Email(email) => {
            let email_hash = email_tag(pepper, email);
            tracing::warn!(target: "security", event, client = %client, email_hash, "security event");
        }
        Subject::Nobody => {
            tracing::warn!(target: "security", event, client = %client, "security event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_tags_are_stable_keyed_and_reveal_nothing() {
        let a = SecretString::from("pepper-a-0123456789abcdef0123456789abcdef".to_owned());
        let b = SecretString::from("pepper-b-0123456789abcdef0123456789abcdef".to_owned());
        let tag = email_tag(&a, "ada@example.com");
        assert_eq!(tag.len(), 16);
        assert!(tag.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(tag, email_tag(&a, "ada@example.com"));
        assert_ne!(tag, email_tag(&a, "bob@example.com"));
        assert_ne!(tag, email_tag(&b, "ada@example.com"));
        assert!(!tag.contains("ada"));
    }
}
