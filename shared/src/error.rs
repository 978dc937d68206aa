//! Errors as RFC 9457 problem details (`application/problem+json`), exactly as API.md lists
//! them. Every failure a client can see — handler errors, extractor rejections, router
//! 404/405, body limit, timeout, panic — ends up as a [`Problem`].
//!
//! [`ApiError`] renders its own body; the HTTP stack's problem layer then adds the request
//! id and converts any error response that did not come from here (the router's 405, the
//! body-limit layer's 413, …) into the same shape. Server-side errors keep their cause for
//! the log and show the client nothing but `internal`.

use std::{borrow::Cow, error::Error as StdError, fmt};

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The stable error classes of API.md. Status, `code` and `title` come from one table.
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
    Forbidden,
    AccountDisabled,
    NotFound,
    MethodNotAllowed,
    EmailTaken,
    LastAdmin,
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
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            MalformedJson | InvalidQuery | InvalidPath | BadRequest => StatusCode::BAD_REQUEST,
            Unauthorized | InvalidCredentials | InvalidRefreshToken | RefreshTokenReused => {
                StatusCode::UNAUTHORIZED
            }
            Forbidden | AccountDisabled => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            EmailTaken | LastAdmin | IdempotencyInProgress | TaskLimitReached => {
                StatusCode::CONFLICT
            }
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ValidationFailed | IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            MalformedJson => "malformed_json",
            InvalidQuery => "invalid_query",
            InvalidPath => "invalid_path",
            BadRequest => "bad_request",
            Unauthorized => "unauthorized",
            InvalidCredentials => "invalid_credentials",
            InvalidRefreshToken => "invalid_refresh_token",
            RefreshTokenReused => "refresh_token_reused",
            Forbidden => "forbidden",
            AccountDisabled => "account_disabled",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            EmailTaken => "email_taken",
            LastAdmin => "last_admin",
            IdempotencyInProgress => "idempotency_request_in_progress",
            TaskLimitReached => "task_limit_reached",
            RequestTimeout => "request_timeout",
            PreconditionFailed => "precondition_failed",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            ValidationFailed => "validation_failed",
            IdempotencyKeyReused => "idempotency_key_reused",
            TooManyRequests => "too_many_requests",
            Internal => "internal",
            ServiceUnavailable => "service_unavailable",
            Timeout => "timeout",
        }
    }

    pub fn title(self) -> &'static str {
        use ErrorKind::*;
        match self {
            MalformedJson => "Malformed JSON",
            InvalidQuery => "Invalid query",
            InvalidPath => "Invalid path",
            BadRequest => "Bad request",
            Unauthorized => "Unauthorized",
            InvalidCredentials => "Invalid credentials",
            InvalidRefreshToken => "Invalid refresh token",
            RefreshTokenReused => "Refresh token reused",
            Forbidden => "Forbidden",
            AccountDisabled => "Account disabled",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            EmailTaken => "Email taken",
            LastAdmin => "Last admin",
            IdempotencyInProgress => "Idempotent request in progress",
            TaskLimitReached => "Task limit reached",
            RequestTimeout => "Request timeout",
            PreconditionFailed => "Precondition failed",
            PayloadTooLarge => "Payload too large",
            UnsupportedMediaType => "Unsupported media type",
            ValidationFailed => "Validation failed",
            IdempotencyKeyReused => "Idempotency key reused",
            TooManyRequests => "Too many requests",
            Internal => "Internal server error",
            ServiceUnavailable => "Service unavailable",
            Timeout => "Timeout",
        }
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

// ---------------------------------------------------------------------------------------
// Extractors whose rejections are problems.
// ---------------------------------------------------------------------------------------

/// `Json<T>` that answers 415 for a missing JSON content type, 413 over the body limit,
/// 400 `malformed_json` for broken syntax and 422 with a field path for a body of the wrong
/// shape. Messages never name Rust types.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::new(ErrorKind::UnsupportedMediaType)
                .with_detail("expected a body with content-type application/json"));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn has_json_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorKind::PayloadTooLarge).with_detail("the body is larger than 1 MiB")
    } else {
        ApiError::new(ErrorKind::BadRequest).with_detail("the request body could not be read")
    }
}

/// Parses a JSON body, mapping serde failures onto API.md's 400/422 split.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de);
    if value.is_ok() {
        // Trailing characters after a complete value are a syntax error.
        de.end().map_err(|e| {
            ApiError::new(ErrorKind::MalformedJson)
                .with_detail(format!("the body is not valid JSON: {e}"))
        })?;
    }
    value.map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let field = if field == "." {
                    "body".to_owned()
                } else {
                    field
                };
                ApiError::validation(vec![FieldError::new(field, scrub_serde_message(&inner))])
            }
            _ => ApiError::new(ErrorKind::MalformedJson).with_detail(format!(
                "the body is not valid JSON: {}",
                scrub_serde_message(&inner)
            )),
        }
    })
}

/// serde's messages are useful ("missing field `title`", "invalid type: string, expected a
/// boolean"); drop serde_json's trailing position for data errors, and any Rust type name.
fn scrub_serde_message(err: &serde_json::Error) -> String {
    let mut message = err.to_string();
    if err.classify() == serde_json::error::Category::Data {
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
    }
    scrub_type_names(&message)
}

/// Replaces "struct CreateTask" / "enum Role" (serde's wording) with words that name no
/// Rust type: error bodies never show internal type names.
fn scrub_type_names(message: &str) -> String {
    let mut out = Vec::new();
    let mut words = message.split(' ');
    while let Some(word) = words.next() {
        match word {
            "struct" | "enum" | "tuple" | "variant" => {
                words.next();
                out.push(if word == "struct" {
                    "an object"
                } else {
                    "one of the allowed values"
                });
            }
            other => out.push(other),
        }
    }
    out.join(" ")
}

/// `Query<T>` whose rejection is 400 `invalid_query`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if !decodes_to_utf8(query) {
            // The form decoder would replace the bytes with U+FFFD and search for that.
            return Err(ApiError::new(ErrorKind::InvalidQuery)
                .with_detail("the query string is not UTF-8 once percent-decoded"));
        }
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| {
                ApiError::new(ErrorKind::InvalidQuery).with_detail(format!(
                    "invalid query string: {}",
                    scrub_type_names(&e.to_string())
                ))
            })
    }
}

/// Whether every name and value of a query string is UTF-8 once percent-decoded (`+` is a
/// space and cannot break it). A `%` not followed by two hex digits stays as it is, as the
/// form decoder leaves it.
fn decodes_to_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}

/// `Path<T>` whose rejection is 400 `invalid_path`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|_| {
                ApiError::new(ErrorKind::InvalidPath).with_detail("the path contains an invalid id")
            })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_strings_must_decode_to_utf8() {
        use super::decodes_to_utf8;
        for good in [
            "",
            "q=abc",
            "q=%C3%A9t%C3%A9",
            "q=100%",
            "q=%zz",
            "a=1&b=%2B+2",
            "q=%e2%82%ac",
        ] {
            assert!(decodes_to_utf8(good), "{good}");
        }
        for bad in ["q=%FF", "q=%C3", "q=ok&r=%FE%FF", "%80=1", "q=%e2%82"] {
            assert!(!decodes_to_utf8(bad), "{bad}");
        }
    }

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        title: String,
        done: bool,
    }

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
    fn syntax_error_is_malformed_json() {
        let err = parse_json::<Sample>(b"{\"title\": ").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedJson);
    }

    #[test]
    fn trailing_garbage_is_malformed_json() {
        let err = parse_json::<Sample>(br#"{"title":"a","done":true} x"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MalformedJson);
    }

    #[test]
    fn wrong_type_is_422_naming_the_field_not_the_rust_type() {
        let err = parse_json::<Sample>(br#"{"title": "a", "done": "yes"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValidationFailed);
        assert_eq!(err.field_errors()[0].field, "done");

        let err = parse_json::<Sample>(b"5").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValidationFailed);
        let message = &err.field_errors()[0].message;
        assert!(!message.contains("Sample"), "{message}");
        assert!(message.contains("an object"), "{message}");
    }

    #[test]
    fn unknown_and_missing_fields_are_422() {
        let err = parse_json::<Sample>(br#"{"title":"a","done":true,"owner_id":1}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValidationFailed);
        assert!(err.field_errors()[0].message.contains("owner_id"));

        let err = parse_json::<Sample>(br#"{"title":"a"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValidationFailed);
        assert!(err.field_errors()[0].message.contains("done"));
    }

    #[test]
    fn content_type_check_accepts_json_and_suffixes_only() {
        let mut headers = http::HeaderMap::new();
        assert!(!has_json_content_type(&headers));
        for (value, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("Application/JSON", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(has_json_content_type(&headers), ok, "{value}");
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
