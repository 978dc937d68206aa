//! `template.yaml` as tests read it, and API Gateway's HTTP API routing from it, for tests
//! that send requests to the function binaries the way the deployed stack does.
//!
//! The routes are the template's own: every `HttpApi` event of every
//! `AWS::Serverless::Function` (its `Path` and `Method`; an event with neither is the
//! `$default` route) and the function's binary (`Metadata.BuildProperties.Binary`). A
//! template change that breaks routing therefore fails the tests that route through this.
//!
//! Selection follows API Gateway's rules for HTTP APIs: a route whose path matches exactly
//! (path variables matching one segment each) wins over a greedy `{proxy+}` route, a longer
//! greedy prefix over a shorter one, a route for the method over `ANY`; when nothing
//! matches, the `$default` route; without one, API Gateway itself answers
//! `404 {"message":"Not Found"}` and no function sees the request.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
pub use yaml_rust2::Yaml;
use yaml_rust2::YamlLoader;

/// The `$default` route key.
pub const DEFAULT_ROUTE: &str = "$default";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: exactly one segment.
    Variable(String),
    /// `{name+}`: one or more segments, the rest of the path.
    Greedy(String),
}

/// One route of the HTTP API.
#[derive(Debug, Clone)]
pub struct Route {
    /// As API Gateway writes it: `GET /health`, `ANY /v1/tasks/{proxy+}`.
    pub key: String,
    /// `None` for `ANY`.
    method: Option<String>,
    segments: Vec<Segment>,
    /// The binary of the function the route invokes.
    pub function: String,
}

impl Route {
    fn greedy(&self) -> bool {
        matches!(self.segments.last(), Some(Segment::Greedy(_)))
    }

    /// The path parameters when `path` matches this route's path.
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let mut params = BTreeMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(i) != Some(&literal.as_str()) {
                        return None;
                    }
                }
                Segment::Variable(name) => {
                    let part = parts.get(i).filter(|p| !p.is_empty())?;
                    params.insert(name.clone(), (*part).to_owned());
                }
                Segment::Greedy(name) => {
                    let rest = parts.get(i..).map(|rest| rest.join("/"))?;
                    if rest.is_empty() {
                        return None;
                    }
                    params.insert(name.clone(), rest);
                    return Some(params);
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub route_key: String,
    pub function: String,
    pub path_parameters: BTreeMap<String, String>,
}

/// The routes of the template's HTTP API.
#[derive(Debug, Clone)]
pub struct HttpApiRoutes {
    routes: Vec<Route>,
    default: Option<String>,
    functions: BTreeSet<String>,
}

/// The workspace's `template.yaml`.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .join("template.yaml")
}

/// The workspace's template, parsed. CloudFormation's short-form tags (`!Ref`, `!If`, …)
/// are read as their plain values, which is all routing needs.
pub fn template() -> Yaml {
    let path = template_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
        .into_iter()
        .next()
        .expect("a YAML document")
}

impl HttpApiRoutes {
    /// The routes `template.yaml` declares.
    pub fn from_workspace_template() -> Self {
        Self::from_template(&template())
    }

    /// The routes of a parsed template. Panics on what it cannot route: an HTTP API event
    /// with a path but no method (or the reverse), two `$default` routes, a duplicate route
    /// key, or a function without a binary.
    pub fn from_template(template: &Yaml) -> Self {
        let mut routes = Vec::new();
        let mut default = None;
        let mut functions = BTreeSet::new();
        let resources = template["Resources"]
            .as_hash()
            .expect("the template has Resources");
        for (name, resource) in resources {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let name = name.as_str().unwrap_or("?");
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} names no binary"))
                .to_owned();
            functions.insert(binary.clone());
            let Some(events) = resource["Properties"]["Events"].as_hash() else {
                continue;
            };
            for (event_name, event) in events {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let properties = &event["Properties"];
                match (properties["Path"].as_str(), properties["Method"].as_str()) {
                    (None, None) => {
                        assert!(
                            default.replace(binary.clone()).is_none(),
                            "two $default routes"
                        );
                    }
                    (Some(path), Some(method)) => {
                        let route = parse_route(path, method, &binary);
                        assert!(
                            routes.iter().all(|r: &Route| r.key != route.key),
                            "route {} declared twice",
                            route.key
                        );
                        routes.push(route);
                    }
                    _ => panic!(
                        "{name}.{event_name:?}: an HttpApi event needs Path and Method, or neither"
                    ),
                }
            }
        }
        Self {
            routes,
            default,
            functions,
        }
    }

    /// Every function binary the template builds, routed or not.
    pub fn functions(&self) -> &BTreeSet<String> {
        &self.functions
    }

    /// The function serving the `$default` route, if any.
    pub fn default_function(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// The routes, in template order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Where API Gateway sends `method path`; `None` when it answers 404 itself.
    pub fn select(&self, method: &str, path: &str) -> Option<Selected> {
        let method = method.to_ascii_uppercase();
        let best = self
            .routes
            .iter()
            .filter(|r| r.method.as_deref().is_none_or(|m| m == method))
            .filter_map(|r| r.matches(path).map(|params| (r, params)))
            .min_by_key(|(r, _)| {
                // Exact paths first, then the longest greedy prefix; the method over ANY.
                let literal = r
                    .segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                (r.greedy(), usize::MAX - literal, r.method.is_none())
            });
        if let Some((route, params)) = best {
            return Some(Selected {
                route_key: route.key.clone(),
                function: route.function.clone(),
                path_parameters: params,
            });
        }
        self.default.as_ref().map(|function| Selected {
            route_key: DEFAULT_ROUTE.to_owned(),
            function: function.clone(),
            path_parameters: BTreeMap::new(),
        })
    }
}

fn parse_route(path: &str, method: &str, function: &str) -> Route {
    assert!(
        path.starts_with('/'),
        "route path {path:?} must start with /"
    );
    let segments: Vec<Segment> = path[1..]
        .split('/')
        .map(
            |part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy.to_owned()),
                    None => Segment::Variable(name.to_owned()),
                },
                None => Segment::Literal(part.to_owned()),
            },
        )
        .collect();
    let greedy_at = segments
        .iter()
        .position(|s| matches!(s, Segment::Greedy(_)));
    assert!(
        greedy_at.is_none_or(|i| i + 1 == segments.len()),
        "{path}: a greedy variable must be the last segment"
    );
    let method = method.to_ascii_uppercase();
    Route {
        key: format!("{method} {path}"),
        method: (method != "ANY").then_some(method),
        segments,
        function: function.to_owned(),
    }
}

/// What API Gateway answers itself when no route matches and there is no `$default` route.
pub fn gateway_not_found() -> (u16, Value) {
    (404, json!({"message": "Not Found"}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(yaml: &str) -> HttpApiRoutes {
        HttpApiRoutes::from_template(&YamlLoader::load_from_str(yaml).unwrap()[0])
    }

    const TEMPLATE: &str = r"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Tasks:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: tasks
    Properties:
      Events:
        Collection:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: /v1/tasks, Method: ANY}
        Item:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: '/v1/tasks/{proxy+}', Method: any}
        One:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: '/v1/tasks/{id}', Method: GET}
  Health:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: health
    Properties:
      Events:
        Health:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Path: /health, Method: GET}
  Fallback:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fallback
    Properties:
      Events:
        Rest:
          Type: HttpApi
          Properties: {ApiId: !Ref Api}
  Migrate:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: migrate
";

    fn to(r: &HttpApiRoutes, method: &str, path: &str) -> (String, String) {
        let s = r.select(method, path).unwrap();
        (s.route_key, s.function)
    }

    #[test]
    fn selection_follows_api_gateway_precedence() {
        let r = routes(TEMPLATE);
        let pair = |k: &str, f: &str| (k.to_owned(), f.to_owned());
        assert_eq!(
            to(&r, "GET", "/health"),
            pair("GET /health", "health"),
            "exact match"
        );
        assert_eq!(
            to(&r, "PUT", "/health"),
            pair("$default", "fallback"),
            "another method falls through"
        );
        assert_eq!(
            to(&r, "DELETE", "/v1/tasks"),
            pair("ANY /v1/tasks", "tasks")
        );
        assert_eq!(
            to(&r, "GET", "/v1/tasks/abc"),
            pair("GET /v1/tasks/{id}", "tasks"),
            "a path variable beats a greedy one"
        );
        assert_eq!(
            to(&r, "PATCH", "/v1/tasks/abc"),
            pair("ANY /v1/tasks/{proxy+}", "tasks")
        );
        let deep = r.select("GET", "/v1/tasks/a/b").unwrap();
        assert_eq!(deep.route_key, "ANY /v1/tasks/{proxy+}");
        assert_eq!(deep.path_parameters["proxy"], "a/b");
        for path in ["/v1/tasksx", "/v1/tasks/", "/nope", "/", "/health/x"] {
            assert_eq!(to(&r, "GET", path), pair("$default", "fallback"), "{path}");
        }
        assert_eq!(
            r.functions().iter().collect::<Vec<_>>(),
            ["fallback", "health", "migrate", "tasks"]
        );
    }

    #[test]
    fn without_a_default_route_the_gateway_answers_itself() {
        let r = routes(&TEMPLATE.replace("Properties: {ApiId: !Ref Api}", "Properties: {}"));
        // An event with no Path and no Method is still the $default route.
        assert!(r.select("GET", "/nope").is_some());
        let without = routes(&TEMPLATE.replace(
            "        Rest:\n          Type: HttpApi\n          Properties: {ApiId: !Ref Api}\n",
            "",
        ));
        assert_eq!(without.select("GET", "/nope"), None);
        assert_eq!(without.select("PUT", "/health"), None);
    }

    #[test]
    fn the_workspace_template_parses() {
        let r = HttpApiRoutes::from_workspace_template();
        assert!(!r.routes().is_empty());
        assert!(r.functions().contains("health"));
    }
}
