//! What every operation of the OpenAPI document shares: the problem+json schema, the bearer
//! security scheme, and the answers the middleware stack can give to any request.
//!
//! Each function crate describes its own operations with `#[utoipa::path]` beside the
//! handlers, listing only what the handler itself answers; [`StackResponses`] then adds what
//! the stack and the extractors answer (429, 500, 503, 504 everywhere; 401 on secured
//! operations; 400 and 404 with an id in the path; 400 with query parameters; 400, 413, 415
//! and 422 with a JSON body), so those are written once. The local server assembles the
//! whole document. Nothing here is reachable from a Lambda binary at run time.

use utoipa::{
    Modify,
    openapi::{
        ContentBuilder, Object, ObjectBuilder, OpenApi, RefOr, Response, ResponseBuilder, Schema,
        Type,
        header::HeaderBuilder,
        path::{Operation, ParameterIn},
        schema::Ref,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::error::PROBLEM_JSON;

/// The name of the bearer security scheme, as operations reference it.
pub const BEARER: &str = "bearer";

/// The problem+json responses shared by many operations, by component name.
pub mod responses {
    pub const BAD_REQUEST: &str = "BadRequest";
    pub const UNAUTHORIZED: &str = "Unauthorized";
    pub const NOT_FOUND: &str = "NotFound";
    pub const PAYLOAD_TOO_LARGE: &str = "PayloadTooLarge";
    pub const REQUEST_TIMEOUT: &str = "RequestTimeout";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
    pub const VALIDATION_FAILED: &str = "ValidationFailed";
    pub const TOO_MANY_REQUESTS: &str = "TooManyRequests";
    pub const INTERNAL: &str = "Internal";
    pub const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
    pub const TIMEOUT: &str = "Timeout";
}

/// Adds the security scheme, the shared responses, and the stack's answers to every operation.
#[derive(Debug, Clone, Copy)]
pub struct StackResponses;

impl Modify for StackResponses {
    fn modify(&self, api: &mut OpenApi) {
        use responses::*;
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from `POST /v1/auth/login` or `/v1/auth/refresh`.",
                    ))
                    .build(),
            ),
        );
        let retry_after = || {
            HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("Seconds to wait before trying again."))
                .build()
        };
        let shared: [(&str, Response); 11] = [
            (
                BAD_REQUEST,
                problem("`malformed_json` (body is not JSON), `invalid_query` or `invalid_path`."),
            ),
            (
                UNAUTHORIZED,
                problem_builder(
                    "`unauthorized`: missing, malformed, expired or forged bearer token, or its user is disabled or gone.",
                )
                .header(
                    "WWW-Authenticate",
                    HeaderBuilder::new()
                        .schema(Object::with_type(Type::String))
                        .build(),
                )
                .build(),
            ),
            (
                NOT_FOUND,
                problem("`not_found`: no such resource visible to the caller."),
            ),
            (
                PAYLOAD_TOO_LARGE,
                problem("`payload_too_large`: the body is over 1 MiB."),
            ),
            (
                UNSUPPORTED_MEDIA_TYPE,
                problem("`unsupported_media_type`: the body was not sent as JSON."),
            ),
            (
                REQUEST_TIMEOUT,
                problem("`request_timeout`: the body did not arrive whole within `HTTP_BODY_TIMEOUT_SECS` (local server and container)."),
            ),
            (
                VALIDATION_FAILED,
                problem("`validation_failed`: well-formed JSON with invalid, missing or unknown fields; `errors` lists them."),
            ),
            (
                TOO_MANY_REQUESTS,
                problem_builder("`too_many_requests`: throttled.")
                    .header("Retry-After", retry_after())
                    .build(),
            ),
            (INTERNAL, problem("`internal`: a bug; logged with the request id.")),
            (
                SERVICE_UNAVAILABLE,
                problem_builder(
                    "`service_unavailable`: the database is unreachable or the server is at capacity.",
                )
                .header("Retry-After", retry_after())
                .build(),
            ),
            (TIMEOUT, problem("`timeout`: the request exceeded the server's time budget.")),
        ];
        for (name, response) in shared {
            components
                .responses
                .insert(name.to_owned(), RefOr::T(response));
        }

        for item in api.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_stack_responses(operation);
            }
        }
    }
}

fn add_stack_responses(operation: &mut Operation) {
    use responses::*;
    let secured = operation
        .security
        .as_ref()
        .is_some_and(|requirements| !requirements.is_empty());
    let has_body = operation.request_body.is_some();
    let (path_params, query_params) =
        operation
            .parameters
            .iter()
            .flatten()
            .fold((false, false), |(path, query), p| match p.parameter_in {
                ParameterIn::Path => (true, query),
                ParameterIn::Query => (path, true),
                _ => (path, query),
            });
    let mut add = |status: &str, name: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    // An id in the path: unparsable is 400 `invalid_path`, unknown or not the caller's is 404.
    if path_params {
        add("400", BAD_REQUEST);
        add("404", NOT_FOUND);
    }
    if query_params {
        add("400", BAD_REQUEST);
    }
    if has_body {
        add("400", BAD_REQUEST);
        add("408", REQUEST_TIMEOUT);
        add("413", PAYLOAD_TOO_LARGE);
        add("415", UNSUPPORTED_MEDIA_TYPE);
        add("422", VALIDATION_FAILED);
    }
    if secured {
        add("401", UNAUTHORIZED);
    }
    add("429", TOO_MANY_REQUESTS);
    add("500", INTERNAL);
    add("503", SERVICE_UNAVAILABLE);
    add("504", TIMEOUT);
}

/// Marks the named body schema as needing at least one property (a PATCH body that changes
/// nothing is a 422). utoipa 5.5's `#[schema(min_properties = …)]` emits `maxProperties`
/// instead, so this is set here.
#[derive(Debug, Clone, Copy)]
pub struct NonEmptyBody(pub &'static str);

impl Modify for NonEmptyBody {
    fn modify(&self, api: &mut OpenApi) {
        let schema = api
            .components
            .as_mut()
            .and_then(|c| c.schemas.get_mut(self.0));
        match schema {
            Some(RefOr::T(Schema::Object(object))) => object.min_properties = Some(1),
            _ => unreachable!("BUG: no object schema named {} to mark non-empty", self.0),
        }
    }
}

/// A string schema that accepts exactly `values`, for `schema_with` on parameters that the
/// handler reads as text.
pub fn one_of_strings(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

fn problem_builder(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

fn problem(description: &str) -> Response {
    problem_builder(description).build()
}
