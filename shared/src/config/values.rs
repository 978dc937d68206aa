//! How a variable's text becomes a value: whole numbers within a range, and secrets.

use std::fmt;

use base64::Engine as _;
use secrecy::SecretString;

use super::ConfigError;

/// Reads a variable; unset (or blank) is `None`.
pub(super) trait Lookup: Fn(&str) -> Option<String> {}
impl<F: Fn(&str) -> Option<String>> Lookup for F {}

/// Minimum length of the JWT secret and the password pepper.
pub const MIN_SECRET_BYTES: usize = 32;

pub(super) fn parse_num<T>(
    get: &impl Lookup,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    Ok(parse_optional_num(get, name, range)?.unwrap_or(default))
}

/// [`parse_num`] for a variable whose default is not known at start-up: `None` when unset.
pub(super) fn parse_optional_num<T>(
    get: &impl Lookup,
    name: &'static str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Option<T>, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let Some(raw) = get(name) else {
        return Ok(None);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(ConfigError::new(
            name,
            format!(
                "must be a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// The secrets of one configuration: required in production; in development a missing one
/// is generated (and named in `generated`, so start-up can say so and keep it).
pub(super) struct Secrets {
    pub production: bool,
    pub generated: Vec<&'static str>,
}

impl Secrets {
    pub fn read(
        &mut self,
        get: &impl Lookup,
        name: &'static str,
    ) -> Result<SecretString, ConfigError> {
        match get(name) {
            Some(value) if value.len() >= MIN_SECRET_BYTES => Ok(SecretString::from(value)),
            Some(_) => Err(ConfigError::new(
                name,
                format!("must be at least {MIN_SECRET_BYTES} bytes"),
            )),
            None if self.production => Err(ConfigError::new(
                name,
                format!("is required in production (at least {MIN_SECRET_BYTES} bytes)"),
            )),
            None => {
                self.generated.push(name);
                Ok(generate_secret())
            }
        }
    }
}

/// 32 random bytes, base64url: 43 characters, above the minimum.
fn generate_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
