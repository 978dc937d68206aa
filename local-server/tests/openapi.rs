//! The OpenAPI document: generated from the code, committed as `openapi.json`, served at
//! `/openapi.json`, and describing exactly the methods the routers answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use shared::testing::{Backend, TestApp};

const COMMITTED: &str = include_str!("../../openapi.json");

#[test]
fn the_committed_openapi_json_is_what_the_code_generates() {
    let generated = local_server::openapi::document_json();
    if generated != COMMITTED {
        let line = generated
            .lines()
            .zip(COMMITTED.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "openapi.json is stale (first difference at {line}). Regenerate it with\n\
             \tcargo run -p local-server -- openapi > openapi.json\n\
             and commit it with the change to the routes or schemas."
        );
    }
}

#[test]
fn the_document_is_openapi_3_1_with_unique_operation_ids_and_a_bearer_scheme() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap_or_else(|| {
                panic!("{method} {path} has no operationId");
            });
            ids.push(id.to_owned());
            // Every error answer is documented as problem+json.
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    let response = match response["$ref"].as_str() {
                        Some(r) => {
                            &doc["components"]["responses"]
                                [r.trim_start_matches("#/components/responses/")]
                        }
                        None => response,
                    };
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not problem+json"
                    );
                }
            }
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds must be unique");
    // The API's 26 operations plus /openapi.json (/metrics is not on the API's port).
    assert_eq!(count, 27);
}

#[tokio::test]
async fn the_served_document_is_the_generated_one() {
    let app = TestApp::start(Backend::Sqlite, local_server::routes).await;
    let served = app.get("/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.body, COMMITTED.as_bytes());
}

/// Every route the routers declare is in the document: a route added without its
/// `#[utoipa::path]` (or without listing it in its crate's `ApiDoc`) fails here. The route
/// paths are read from the router sources, where each is one `.route("…", …)` call.
#[test]
fn every_declared_route_is_documented() {
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let sources = [
        include_str!("../../functions/auth/src/lib.rs"),
        include_str!("../../functions/tasks/src/lib.rs"),
        include_str!("../../functions/admin/src/lib.rs"),
        include_str!("../../functions/health/src/lib.rs"),
        include_str!("../src/lib.rs"),
    ];
    let mut declared = Vec::new();
    for source in sources {
        let mut rest = source;
        while let Some(at) = rest.find(".route(") {
            rest = &rest[at + ".route(".len()..];
            let path = rest.trim_start().trim_start_matches('"');
            let end = path.find('"').expect("a route path literal");
            declared.push(path[..end].to_owned());
        }
    }
    assert!(declared.len() >= 17, "found only {declared:?}");
    // `/metrics` is routed only by the private metrics listener's app, never on the API's
    // port, so it is not part of the API's document.
    for path in declared.into_iter().filter(|p| p != "/metrics") {
        assert!(
            doc["paths"].get(&path).is_some(),
            "route {path} is not in openapi.json"
        );
    }
}

/// Every documented operation reaches a handler (no router 404 or 405), and on every
/// documented path the undocumented methods are refused with 405: the document and the
/// routers describe the same methods.
#[tokio::test]
async fn documented_operations_are_routed_and_nothing_else_on_their_paths() {
    let app = TestApp::start(Backend::Sqlite, local_server::routes).await;
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let all = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for (template, item) in doc["paths"].as_object().unwrap() {
        let path = template.replace("{id}", "01a1fc78-0000-7000-8000-000000000000");
        for method in &all {
            let documented = item.get(method.as_str().to_ascii_lowercase()).is_some();
            let response = app
                .request(method.clone(), &path)
                .json(serde_json::json!({}))
                .await;
            let unrouted = response.status == 405
                || (response.status == 404 && response.json()["detail"] == "no such route");
            assert_eq!(
                !unrouted, documented,
                "{method} {template}: documented={documented}, answered {}",
                response.status
            );
        }
    }
}

/// The README's map from each route to its handler, store methods and a test names every
/// operation of the document, and every source file and test it names exists.
#[test]
fn the_readme_maps_every_route_to_its_handler_store_methods_and_a_test() {
    let readme = include_str!("../../README.md");
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path == "/openapi.json" {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let row = format!("| `{} {path}` |", method.to_uppercase());
            assert!(
                readme.contains(&row),
                "README's \"From a route to its SQL\" has no row {row}"
            );
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let section = readme
        .split("### From a route to its SQL")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has the section");
    for cell in section.split('`') {
        let Some((file, function)) = cell.split_once(".rs::") else {
            continue;
        };
        let file = root.join(format!("{file}.rs"));
        let source = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("README names {}: {e}", file.display()));
        assert!(
            source.contains(&format!("fn {function}(")),
            "README names {function} in {}, which has no such function",
            file.display()
        );
    }
}

/// `GatewayAuthorizer`'s JWT authorizer sits on exactly the template routes whose
/// operations need a bearer token: every such operation is guarded (a forged token never
/// invokes a function), and no public one is (nobody needs a token to log in).
#[test]
fn the_gateway_authorizer_guards_exactly_the_operations_that_need_a_bearer_token() {
    use shared::testing::template::{HttpApiRoutes, template};
    let template = template();
    let body = &template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"];
    let mut guarded = std::collections::BTreeSet::new();
    for (path, item) in body["paths"].as_hash().unwrap() {
        for (method, operation) in item.as_hash().unwrap() {
            // `!If [UseGatewayAuthorizer, [{BearerToken: []}], !Ref AWS::NoValue]`, the tag
            // dropped by the reader: the condition, then the requirement when it holds.
            let security = operation["security"].as_vec();
            let condition = security.and_then(|s| s.first()).and_then(|c| c.as_str());
            let scheme = security
                .and_then(|s| s.get(1))
                .and_then(|r| r[0].as_hash())
                .and_then(|r| r.keys().next())
                .and_then(|k| k.as_str());
            assert_eq!(
                (condition, scheme),
                (Some("UseGatewayAuthorizer"), Some("BearerToken")),
                "{path:?} {method:?}: the DefinitionBody route without the authorizer"
            );
            let method = match method.as_str().unwrap() {
                "x-amazon-apigateway-any-method" => "ANY".to_owned(),
                other => other.to_uppercase(),
            };
            guarded.insert(format!("{method} {}", path.as_str().unwrap()));
        }
    }
    let scheme = &body["components"]["securitySchemes"];
    assert_eq!(
        scheme
            .as_vec()
            .and_then(|s| s[1]["BearerToken"]["x-amazon-apigateway-authorizer"]["type"].as_str()),
        Some("jwt")
    );
    let routes = HttpApiRoutes::from_workspace_template();
    // Each guarded route is also a function's event (which gives it its integration).
    let events: std::collections::BTreeSet<_> =
        routes.routes().iter().map(|r| r.key.clone()).collect();
    for key in &guarded {
        assert!(
            events.contains(key),
            "{key} is guarded but no function's event"
        );
    }
    let doc: serde_json::Value = serde_json::from_str(COMMITTED).unwrap();
    let (mut public, mut bearer) = (0, 0);
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        for (method, operation) in item.as_object().unwrap() {
            let needs_token = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let Some(selected) = routes.select(&method.to_uppercase(), &concrete) else {
                panic!("{method} {path} has no route");
            };
            assert_eq!(
                guarded.contains(&selected.route_key),
                needs_token,
                "{method} {path} (route {}) needs a token: {needs_token}",
                selected.route_key
            );
            if needs_token {
                bearer += 1
            } else {
                public += 1
            }
        }
    }
    assert!(
        bearer >= 10 && public >= 10,
        "{bearer} bearer, {public} public"
    );
}
