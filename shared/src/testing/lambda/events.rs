//! Events as API Gateway (HTTP API payload 2.0), Function URLs and ALB hand them to a
//! function, and the response a function returns.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde_json::{Value, json};

use super::Outcome;

/// An API Gateway HTTP API (payload 2.0) event, as API Gateway builds it.
pub fn http_api_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let header_map: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String((*v).to_owned())))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "emulated",
            "domainName": "emulated.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "emulated",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "task-api-tests"
            },
            "requestId": format!("apigw-{}", uuid::Uuid::now_v7()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:10:15:00 +0000",
            "timeEpoch": 1_795_255_700_000_u64
        },
        "body": body,
        "isBase64Encoded": false
    })
}

/// An HTTP response as a function returns it to API Gateway.
#[derive(Debug, Clone)]
pub struct LambdaResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl LambdaResponse {
    /// Reads the function's answer; panics on a function error.
    pub fn from_outcome(outcome: Outcome) -> Self {
        let value = match outcome {
            Outcome::Response(v) => v,
            Outcome::Error(e) => panic!("the function reported an error: {e}"),
        };
        let status = value["statusCode"].as_u64().expect("statusCode") as u16;
        let mut headers = HashMap::new();
        if let Some(map) = value["headers"].as_object() {
            for (k, v) in map {
                headers.insert(k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_owned());
            }
        }
        if let Some(map) = value["multiValueHeaders"].as_object() {
            for (k, v) in map {
                let joined = v
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                headers.entry(k.to_ascii_lowercase()).or_insert(joined);
            }
        }
        let raw = value["body"].as_str().unwrap_or("").to_owned();
        let body = if value["isBase64Encoded"].as_bool().unwrap_or(false) {
            String::from_utf8(STANDARD.decode(raw).expect("base64 body")).expect("UTF-8 body")
        } else {
            raw
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP request, to be rendered as any of the event formats API Gateway, Function URLs
/// and ALB hand to a function.
#[derive(Debug, Clone, Default)]
pub struct HttpRequestSpec {
    pub method: String,
    pub path: String,
    /// In order; a key may repeat.
    pub query: Vec<(String, String)>,
    /// In order; a name may repeat.
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<String>,
    pub body: Option<Vec<u8>>,
    pub base64: bool,
}

impl HttpRequestSpec {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            ..Self::default()
        }
    }

    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookies.push(cookie.to_owned());
        self
    }

    pub fn json(mut self, body: &Value, base64: bool) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self.base64 = base64;
        self.header("content-type", "application/json")
    }

    fn body_field(&self) -> Value {
        match &self.body {
            None => Value::Null,
            Some(b) if self.base64 => Value::String(STANDARD.encode(b)),
            Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        }
    }

    fn raw_query(&self) -> String {
        self.query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// Single-value maps join repeated values with commas, as API Gateway v2 does.
    fn joined(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            match map.get_mut(k) {
                Some(Value::String(existing)) => {
                    existing.push(',');
                    existing.push_str(v);
                }
                _ => {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        map
    }

    /// Multi-value maps, as REST APIs and ALB (in multi-value mode) send them.
    fn multi(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        for (k, v) in pairs {
            let entry = map.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(values) = entry {
                values.push(Value::String(v.clone()));
            }
        }
        map
    }

    fn last_values(pairs: &[(String, String)]) -> serde_json::Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }

    /// API Gateway HTTP API, payload format 2.0, on `stage`.
    pub fn to_http_api(&self, stage: &str) -> Value {
        let path = if stage == "$default" {
            self.path.clone()
        } else {
            format!("/{stage}{}", self.path)
        };
        let mut event = http_api_event(&self.method, &path, &[], None);
        event["rawQueryString"] = Value::String(self.raw_query());
        if !self.query.is_empty() {
            event["queryStringParameters"] = Value::Object(Self::joined(&self.query));
        }
        event["headers"] = Value::Object(Self::joined(&self.headers));
        if !self.cookies.is_empty() {
            event["cookies"] = json!(self.cookies);
        }
        event["requestContext"]["stage"] = Value::String(stage.to_owned());
        event["body"] = self.body_field();
        event["isBase64Encoded"] = Value::Bool(self.base64);
        event
    }

    /// A Lambda Function URL event (payload 2.0, no stage).
    pub fn to_function_url(&self) -> Value {
        let mut event = self.to_http_api("$default");
        event["requestContext"]["domainName"] =
            Value::String("abcdefg.lambda-url.us-east-1.on.aws".into());
        event["requestContext"]["domainPrefix"] = Value::String("abcdefg".into());
        event["requestContext"]["apiId"] = Value::String("abcdefg".into());
        event
    }

    /// API Gateway REST API (payload 1.0) on a named `stage`, the stage in the path.
    pub fn to_rest_api(&self, stage: &str) -> Value {
        let mut headers = self.headers.clone();
        if !self.cookies.is_empty() {
            headers.push(("cookie".into(), self.cookies.join("; ")));
        }
        let staged = format!("/{stage}{}", self.path);
        json!({
            "resource": "/{proxy+}",
            "path": staged,
            "httpMethod": self.method,
            "headers": Self::last_values(&headers),
            "multiValueHeaders": Self::multi(&headers),
            "queryStringParameters": if self.query.is_empty() { Value::Null } else { Value::Object(Self::last_values(&self.query)) },
            "multiValueQueryStringParameters": if self.query.is_empty() { Value::Null } else { Value::Object(Self::multi(&self.query)) },
            "pathParameters": {"proxy": self.path.trim_start_matches('/')},
            "stageVariables": null,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "restapi",
                "resourceId": "abc123",
                "resourcePath": "/{proxy+}",
                "httpMethod": self.method,
                "path": staged,
                "stage": stage,
                "requestId": format!("rest-{}", uuid::Uuid::now_v7()),
                "protocol": "HTTP/1.1",
                "requestTimeEpoch": 1_795_255_700_000_u64,
                "identity": {"sourceIp": "127.0.0.1", "userAgent": "task-api-tests"}
            },
            "body": self.body_field(),
            "isBase64Encoded": self.base64
        })
    }

    /// An Application Load Balancer event, multi-value headers enabled.
    pub fn to_alb(&self) -> Value {
        let mut headers = self.headers.clone();
        if !self.cookies.is_empty() {
            headers.push(("cookie".into(), self.cookies.join("; ")));
        }
        headers.push(("host".into(), "alb.example.com".into()));
        json!({
            "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/task-api/0123456789abcdef"}},
            "httpMethod": self.method,
            "path": self.path,
            "multiValueQueryStringParameters": Self::multi(&self.query),
            "multiValueHeaders": Self::multi(&headers),
            "body": self.body_field().as_str().unwrap_or(""),
            "isBase64Encoded": self.base64
        })
    }
}

/// Percent-encodes a query component.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
