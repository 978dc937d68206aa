//! Authentication shared by every function: password hashing ([`password`]), access tokens
//! ([`jwt`]), refresh-token material ([`refresh`]) and the [`AuthUser`] extractor that tasks
//! and admin handlers take to say "a signed-in, enabled user is required".

pub mod extractor;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod security;
pub mod throttle;

pub use extractor::{AdminUser, AuthUser};
pub use jwt::{Claims, JwtKeys};
pub use password::{PasswordHasher, Verification};
