//! Errors as RFC 9457 problem details (`application/problem+json`), exactly as the README's "API" section lists
//! them. Every failure a client can see — handler errors, extractor rejections, router
//! 404/405, body limit, timeout, panic — ends up as a [`Problem`].
//!
//! [`ApiError`] renders its own body; the HTTP stack's problem layer then adds the request
//! id and converts any error response that did not come from here (the router's 405, the
//! body-limit layer's 413, …) into the same shape. Server-side errors keep their cause for
//! the log and show the client nothing but `internal`.

use std::{borrow::Cow, error::Error as StdError, fmt};

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable error classes of the API (README, "API"). Status, `code` and `title` come from one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    MalformedJson,
    InvalidQuery,
    InvalidPath,
    BadRequest,
    Unauthorized,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    InvalidToken,
    Forbidden,
    AccountDisabled,
    EmailNotVerified,
    NotFound,
    MethodNotAllowed,
    EmailTaken,
    LastAdmin,
    EmailAlreadyVerified,
    IdempotencyInProgress,
    TaskLimitReached,
    RequestTimeout,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    IdempotencyKeyReused,
    TooManyRequests,
    Internal,
    ServiceUnavailable,
    Timeout,
}

impl ErrorKind {
    /// The table: each kind's status, `code` and `title`, once.
    fn describe(self) -> (StatusCode, &'static str, &'static str) {
        use ErrorKind::*;
        match self {
            MalformedJson => (StatusCode::BAD_REQUEST, "malformed_json", "Malformed JSON"),
            InvalidQuery => (StatusCode::BAD_REQUEST, "invalid_query", "Invalid query"),
            InvalidPath => (StatusCode::BAD_REQUEST, "invalid_path", "Invalid path"),
            BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "Bad request"),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            ),
            InvalidRefreshToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_refresh_token",
                "Invalid refresh token",
            ),
            RefreshTokenReused => (
                StatusCode::UNAUTHORIZED,
                "refresh_token_reused",
                "Refresh token reused",
            ),
            InvalidToken => (StatusCode::BAD_REQUEST, "invalid_token", "Invalid token"),
            Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            EmailNotVerified => (
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Email not verified",
            ),
            AccountDisabled => (
                StatusCode::FORBIDDEN,
                "account_disabled",
                "Account disabled",
            ),
            NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            EmailTaken => (StatusCode::CONFLICT, "email_taken", "Email taken"),
            LastAdmin => (StatusCode::CONFLICT, "last_admin", "Last admin"),
            EmailAlreadyVerified => (
                StatusCode::CONFLICT,
                "email_already_verified",
                "Email already verified",
            ),
            IdempotencyInProgress => (
                StatusCode::CONFLICT,
                "idempotency_request_in_progress",
                "Idempotent request in progress",
            ),
            TaskLimitReached => (
                StatusCode::CONFLICT,
                "task_limit_reached",
                "Task limit reached",
            ),
            RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "Request timeout",
            ),
            PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "Precondition failed",
            ),
            PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ValidationFailed => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                "Validation failed",
            ),
            IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "Idempotency key reused",
            ),
            TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
            ),
            Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
            ServiceUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "Service unavailable",
            ),
            Timeout => (StatusCode::GATEWAY_TIMEOUT, "timeout", "Timeout"),
        }
    }

    pub fn status(self) -> StatusCode {
        self.describe().0
    }

    pub fn code(self) -> &'static str {
        self.describe().1
    }

    pub fn title(self) -> &'static str {
        self.describe().2
    }

    /// The class of an error response produced outside this module (router, tower layers).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT => Self::RequestTimeout,
            StatusCode::GATEWAY_TIMEOUT => Self::Timeout,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => Self::TooManyRequests,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServiceUnavailable,
            StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationFailed,
            s if s.is_client_error() => Self::BadRequest,
            _ => Self::Internal,
        }
    }

    fn type_uri(self) -> String {
        format!("/problems/{}", self.code().replace('_', "-"))
    }
}

/// One invalid field of a request body or query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The RFC 9457 body. `request_id` is filled in by the HTTP stack.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(
    description = "RFC 9457 problem details. Extension members (such as `checks` on `/ready`) may appear."
)]
pub struct Problem {
    /// A relative URI naming the problem type, e.g. `/problems/validation-failed`.
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    /// The HTTP status, repeated.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, nullable = false)]
    pub detail: Option<Cow<'static, str>>,
    /// Stable and machine-readable, e.g. `validation_failed`.
    pub code: &'static str,
    /// Equal to the `x-request-id` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub request_id: Option<String>,
    /// Present on validation failures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    pub errors: Vec<FieldError>,
    /// RFC 9457 extension members (e.g. `/ready`'s `checks`).
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            type_uri: kind.type_uri(),
            title: kind.title(),
            status: kind.status().as_u16(),
            detail: None,
            code: kind.code(),
            request_id: None,
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
        }
    }

    pub fn to_body(&self) -> Bytes {
        // Serializing a struct of strings and numbers cannot fail; fall back to a fixed body
        // rather than panicking inside the error path.
        serde_json::to_vec(self)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(br#"{"status":500,"code":"internal"}"#))
    }
}

/// The error type of every handler and extractor.
pub struct ApiError {
    kind: ErrorKind,
    detail: Option<Cow<'static, str>>,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    extensions: serde_json::Map<String, serde_json::Value>,
    /// Server-side cause, logged and never shown.
    source: Option<Box<dyn StdError + Send + Sync>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            detail: None,
            errors: Vec::new(),
            retry_after: None,
            extensions: serde_json::Map::new(),
            source: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// Adds an RFC 9457 extension member to the body.
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    /// 422 `validation_failed` listing every invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{} {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self {
            errors,
            ..Self::new(ErrorKind::ValidationFailed).with_detail(detail)
        }
    }

    /// 500 `internal`; `source` goes to the log with the request id, never to the client.
    pub fn internal(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(ErrorKind::Internal)
        }
    }

    /// 503 `service_unavailable` (database down or pool exhausted).
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(ErrorKind::ServiceUnavailable)
                .with_detail("a dependency is unavailable; retry shortly")
                .with_retry_after(1)
        }
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound).with_detail("no such resource")
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorKind::Unauthorized).with_detail("a valid bearer token is required")
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn field_errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub fn problem(&self) -> Problem {
        let mut problem = Problem::new(self.kind);
        problem.detail = self.detail.clone();
        problem.errors = self.errors.clone();
        problem.extensions = self.extensions.clone();
        problem
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("kind", &self.kind)
            .field("detail", &self.detail)
            .field("errors", &self.errors)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.code())?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<ErrorKind> for ApiError {
    fn from(kind: ErrorKind) -> Self {
        Self::new(kind)
    }
}

/// Formats an error with its whole cause chain, for logs.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            let cause = chain(source.as_ref());
            if self.kind == ErrorKind::Internal {
                tracing::error!(error = %cause, "request failed");
            } else {
                tracing::warn!(code = self.kind.code(), error = %cause, "request failed");
            }
        }
        let problem = self.problem();
        let mut response = problem_response(&problem);
        let headers = response.headers_mut();
        if self.kind == ErrorKind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(problem);
        response
    }
}

/// A complete problem+json response for `problem` (the stack adds the request id later).
pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, problem.to_body()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_consistent_problem() {
        let kinds = [
            ErrorKind::MalformedJson,
            ErrorKind::NotFound,
            ErrorKind::ValidationFailed,
            ErrorKind::Timeout,
            ErrorKind::IdempotencyInProgress,
        ];
        for kind in kinds {
            let problem = Problem::new(kind);
            assert_eq!(problem.status, kind.status().as_u16());
            assert_eq!(problem.code, kind.code());
            assert!(problem.type_uri.starts_with("/problems/"));
        }
    }

    #[test]
    fn internal_error_hides_its_cause_from_the_client() {
        let err = ApiError::internal(std::io::Error::other("SELECT * FROM users: password=x"));
        let problem = err.problem();
        let body = String::from_utf8(problem.to_body().to_vec()).unwrap();
        assert!(!body.contains("SELECT"), "{body}");
        assert_eq!(problem.code, "internal");
    }
}
