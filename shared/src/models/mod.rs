//! Domain types. Values are parsed once at the handler edge (`parse` constructors that
//! return the API's field errors); past that edge they are known-good.

mod admin;
mod task;
mod user;

pub use admin::{AuditAction, AuditEntry, Stats, UserChange, UserDetail, UserQuery};
pub use task::{
    NewTask, Precondition, SortKey, SortValue, Task, TaskDescription, TaskPatch, TaskPosition,
    TaskQuery, TaskSort, TaskTitle, fold, parse_timestamp, search_term,
};
pub use user::{Email, NewUser, Password, Role, User, UserName};

use time::OffsetDateTime;

/// The current time, truncated to microseconds: the precision both databases keep, so a
/// value reads back exactly as it was written on either backend.
pub fn now() -> OffsetDateTime {
    truncate_to_micros(OffsetDateTime::now_utc())
}

/// Microseconds since the Unix epoch (saturating far outside any real clock's range).
pub fn unix_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// For PATCH bodies: with `#[serde(default, deserialize_with = "present")]` on an
/// `Option<Option<T>>` field, an absent field is `None`, `null` is `Some(None)` and a value
/// is `Some(Some(v))`.
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Collects field errors while parsing a request, so one response lists all of them.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<crate::error::FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the value, or records the error under `field` and yields `None`.
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.0.push(crate::error::FieldError::new(field, message));
                None
            }
        }
    }

    /// `Err(422)` if anything was recorded.
    pub fn finish(self) -> Result<(), crate::error::ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(crate::error::ApiError::validation(self.0))
        }
    }

    /// `Err(422)` if anything was recorded, else the parsed `values` (combine them with
    /// `Option::zip`): every value [`check`](Self::check) did not record an error for is
    /// present, so the 500 below is never answered; it is there instead of a panic.
    pub fn finish_with<T>(self, values: Option<T>) -> Result<T, crate::error::ApiError> {
        self.finish()?;
        values.ok_or_else(|| {
            crate::error::ApiError::internal(std::io::Error::other(
                "a field was neither parsed nor refused",
            ))
        })
    }
}
