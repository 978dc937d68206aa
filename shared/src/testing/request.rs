//! The one way tests build a request to a [`TestApp`]:
//!
//! ```ignore
//! app.patch(&path).bearer(&user.token).if_match("\"2\"").json(json!({"completed": true})).await
//! ```
//!
//! A builder is sent when awaited (it is `IntoFuture`), so `app.get("/health").await` reads
//! as before.

use std::{future::IntoFuture, pin::Pin};

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request, header},
};

use super::{TestApp, TestResponse};

/// A request to a [`TestApp`], sent when awaited.
#[must_use = "a test request is sent only when awaited"]
pub struct TestRequest<'a> {
    app: &'a TestApp,
    builder: axum::http::request::Builder,
    body: Body,
}

impl<'a> TestRequest<'a> {
    pub(super) fn new(app: &'a TestApp, method: Method, path: &str) -> Self {
        Self {
            app,
            builder: Request::builder().method(method).uri(path),
            body: Body::empty(),
        }
    }

    /// `Authorization: Bearer {token}`.
    pub fn bearer(self, token: &str) -> Self {
        self.header(header::AUTHORIZATION, format!("Bearer {token}"))
    }

    /// `Authorization: Bearer {token}` when there is one.
    pub fn maybe_bearer(self, token: Option<&str>) -> Self {
        match token {
            Some(token) => self.bearer(token),
            None => self,
        }
    }

    /// As if from TCP peer `ip` (what the per-client limits see); without it a request
    /// has no peer address, as behind an unknown proxy.
    pub fn from_client(mut self, ip: &str) -> Self {
        let ip: std::net::IpAddr = ip.parse().expect("a test client IP address");
        self.builder =
            self.builder
                .extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                    ip, 40000,
                )));
        self
    }

    /// [`from_client`](Self::from_client) when there is one.
    pub fn maybe_from_client(self, ip: Option<&str>) -> Self {
        match ip {
            Some(ip) => self.from_client(ip),
            None => self,
        }
    }

    /// `If-Match: {etag}` (an ETag as the API writes it, quotes included, or `*`).
    pub fn if_match(self, etag: &str) -> Self {
        self.header(header::IF_MATCH, etag)
    }

    /// Any header; a value that is not a valid header value panics (tests build them).
    pub fn header<K, V>(mut self, name: K, value: V) -> Self
    where
        HeaderName: TryFrom<K>,
        <HeaderName as TryFrom<K>>::Error: Into<axum::http::Error>,
        HeaderValue: TryFrom<V>,
        <HeaderValue as TryFrom<V>>::Error: Into<axum::http::Error>,
    {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Every `(name, value)` of `headers`.
    pub fn headers(self, headers: &[(&str, &str)]) -> Self {
        headers
            .iter()
            .fold(self, |request, (name, value)| request.header(*name, *value))
    }

    /// A JSON body, with its content type.
    pub fn json(self, body: serde_json::Value) -> Self {
        self.header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
    }

    /// A JSON body when there is one.
    pub fn maybe_json(self, body: Option<serde_json::Value>) -> Self {
        match body {
            Some(body) => self.json(body),
            None => self,
        }
    }

    /// Raw body bytes, content type left to the caller.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    pub async fn send(self) -> TestResponse {
        let request = self.builder.body(self.body).expect("a valid test request");
        self.app.send(request).await
    }
}

impl<'a> IntoFuture for TestRequest<'a> {
    type Output = TestResponse;
    type IntoFuture = Pin<Box<dyn Future<Output = TestResponse> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl TestApp {
    /// A request of any method; see the shortcuts below.
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest::new(self, method, path)
    }

    pub fn get(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> TestRequest<'_> {
        self.request(Method::DELETE, path)
    }
}
