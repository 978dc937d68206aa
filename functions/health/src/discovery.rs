//! Key discovery: the public keys that verify access tokens (RFC 7517) and the metadata
//! that points to them (OpenID Connect Discovery's `issuer` and `jwks_uri`), so another
//! service, or API Gateway's JWT authorizer, can check a token without holding a secret.

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, Uri, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shared::auth::JwtKeys;
use utoipa::ToSchema;

/// How long a client may cache either document. A rotation waits this long between
/// publishing the next key (in `JWT_VERIFY_KEYS`) and signing with it, and keeps the old
/// key for the access-token lifetime plus this before removing it (README, "Tokens other
/// services can check").
pub const MAX_AGE_SECS: u32 = 300;

/// The path of the key set (the router's route).
const JWKS_PATH: &str = "/.well-known/jwks.json";

/// `body` with `Cache-Control: {scope}, max-age=`[`MAX_AGE_SECS`].
fn cached(body: impl IntoResponse, scope: &str) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("{scope}, max-age={MAX_AGE_SECS}"))
            .unwrap_or(HeaderValue::from_static("no-store")),
    );
    response
}

/// The key set (RFC 7517): one JWK per public key that verifies access tokens, the signing
/// key's first, each with `kid` (its RFC 7638 thumbprint), `alg` and `use`. Empty with
/// HS256, whose key is a secret.
#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "jwks", tag = "health",
    responses((status = 200, description = "The public keys that verify access tokens.",
        body = Object, headers(("Cache-Control" = String, description = "`public, max-age=300`.")))))]
pub async fn jwks(State(keys): State<Arc<JwtKeys>>) -> Response {
    cached(Json(keys.jwks().clone()), "public")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Discovery {
    /// The `iss` of every access token (`JWT_ISSUER`).
    issuer: String,
    /// Where the key set is: under the issuer when it is a URL, else under this request's
    /// own host.
    jwks_uri: String,
    /// The algorithms access tokens may be signed with: the configured one.
    id_token_signing_alg_values_supported: [&'static str; 1],
}

/// Discovery metadata: the issuer and where its keys are.
#[utoipa::path(get, path = "/.well-known/openid-configuration", operation_id = "openid_configuration",
    tag = "health",
    responses((status = 200, description = "`issuer` and `jwks_uri`.", body = Discovery,
        headers(("Cache-Control" = String,
            description = "`public, max-age=300`; `private` when `jwks_uri` is built from the request.")))))]
pub async fn openid_configuration(
    State(keys): State<Arc<JwtKeys>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let issuer = keys.issuer();
    let (base, scope) = if issuer.starts_with("https://") || issuer.starts_with("http://") {
        (issuer.trim_end_matches('/').to_owned(), "public")
    } else {
        // Built from what the client sent: for this client only, never a shared cache's.
        (request_origin(&uri, &headers), "private")
    };
    cached(
        Json(Discovery {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{base}{JWKS_PATH}"),
            id_token_signing_alg_values_supported: [keys.algorithm_name()],
        }),
        scope,
    )
}

/// `scheme://host` of this request: the absolute URI's (Lambda's requests carry one), else
/// the `Host` header's over http (the local server). A host that is not a plain name, IPv4
/// or bracketed IPv6 address with a port is left out rather than echoed.
fn request_origin(uri: &Uri, headers: &HeaderMap) -> String {
    let plain = |host: &str| {
        !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    };
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        if plain(authority.as_str()) && matches!(scheme, "http" | "https") {
            return format!("{scheme}://{authority}");
        }
    }
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) if plain(host) => format!("http://{host}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_the_absolute_uri_s_else_the_host_s_and_never_a_strange_host() {
        let headers = |host: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            h
        };
        let absolute: Uri =
            "https://abc.execute-api.us-east-1.amazonaws.com/.well-known/openid-configuration"
                .parse()
                .unwrap();
        assert_eq!(
            request_origin(&absolute, &headers("other")),
            "https://abc.execute-api.us-east-1.amazonaws.com"
        );
        let relative: Uri = "/.well-known/openid-configuration".parse().unwrap();
        assert_eq!(
            request_origin(&relative, &headers("127.0.0.1:3000")),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            request_origin(&relative, &headers("[::1]:3000")),
            "http://[::1]:3000"
        );
        for strange in ["evil.com/x?", "a b", "host\"><", ""] {
            let mut h = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(strange) {
                h.insert(header::HOST, value);
            }
            assert_eq!(request_origin(&relative, &h), "", "{strange:?}");
        }
    }
}
