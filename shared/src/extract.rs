//! Extractors whose rejections are problems (see [`crate::error`]): JSON bodies, query
//! strings and path parameters. A client never sees axum's plain-text rejections or the
//! names of Rust types.

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorKind, FieldError};

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

/// Parses a JSON body, mapping serde failures onto the API's 400/422 split (README, "API").
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
    use axum::http::HeaderValue;

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        title: String,
        done: bool,
    }

    #[test]
    fn query_strings_must_decode_to_utf8() {
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
}
