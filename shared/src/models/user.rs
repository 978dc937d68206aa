//! Users and the values that make them up.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// A normalised (trimmed, lower-cased) email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let len = email.chars().count();
        if !(3..=254).contains(&len) {
            return Err("must be 3 to 254 characters".into());
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an email address".into());
        };
        let valid = !local.is_empty()
            && local.chars().count() <= 64
            && !domain.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && email.chars().all(|c| !c.is_whitespace() && !c.is_control())
            // Mail syntax (display names, routes, quoting, comments, groups) is not an
            // address: `x<victim@example.com>` would be mailed to someone else.
            && !email.contains(['<', '>', '(', ')', '[', ']', ',', ';', ':', '"', '\\']);
        if valid {
            Ok(Self(email))
        } else {
            Err("must be an email address".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A display name: 1..=100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(1..=100).contains(&len) {
            return Err("must be 1 to 100 characters".into());
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plaintext password of acceptable length (12..=128 characters). Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 128;

    /// Checks the length before any hashing happens.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let len = raw.chars().count();
        if (Self::MIN_CHARS..=Self::MAX_CHARS).contains(&len) {
            Ok(Self(SecretString::from(raw.to_owned())))
        } else {
            Err(format!(
                "must be {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ))
        }
    }

    /// For hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([REDACTED])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "user" => Ok(Role::User),
            "admin" => Ok(Role::Admin),
            _ => Err("must be `user` or `admin`".into()),
        }
    }
}

/// How a stored role is read back (`#[sqlx(try_from = "String")]` on [`User::role`]).
impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

/// A user as the API shows it (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub disabled: bool,
    /// The address has been proven to reach its owner (`POST /v1/auth/email/verify`).
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What the store needs to create a user. Its `Debug` leaves the password hash out.
#[derive(Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: Email,
    pub name: UserName,
    pub password_hash: String,
    pub role: Role,
    /// Already proven (an admin made on the command line); otherwise a verification mail
    /// goes out.
    pub email_verified: bool,
    pub now: OffsetDateTime,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("email_verified", &self.email_verified)
            .field("now", &self.now)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_user_never_shows_the_password_hash() {
        let user = NewUser {
            id: Uuid::nil(),
            email: Email::parse("a@example.com").unwrap(),
            name: UserName::parse("A").unwrap(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            role: Role::User,
            email_verified: false,
            now: crate::models::now(),
        };
        let shown = format!("{user:?}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(shown.contains("a@example.com"), "{shown}");
    }

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "alice@example.com"
        );
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "a",
            "no-at-sign.example",
            "@example.com",
            "a@",
            "a@b",
            "a@b@c.com",
            "a b@example.com",
            "a@.example.com",
            "a@example..com",
            // Mail syntax that would name another recipient.
            "x<victim@example.com>",
            "\"a b\"@example.com",
            "a@example.com,b@example.com",
            "a(comment)@example.com",
            "a@[127.0.0.1]",
            "a;b@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(Password::parse(&"x".repeat(11)).is_err());
        assert!(Password::parse(&"x".repeat(12)).is_ok());
        assert!(Password::parse(&"é".repeat(12)).is_ok());
        assert!(Password::parse(&"x".repeat(128)).is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn password_debug_never_shows_the_secret() {
        let p = Password::parse("correct horse battery").unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::parse("  Ada ").unwrap().as_str(), "Ada");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"n".repeat(101)).is_err());
        assert!(UserName::parse(&"n".repeat(100)).is_ok());
        assert!(UserName::parse("a\u{0}b").is_err());
    }
}
