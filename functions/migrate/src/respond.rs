//! The answer to CloudFormation: one `PUT` of the response JSON to the request's pre-signed
//! `ResponseURL`, an S3 URL over HTTPS on an AWS domain. Nothing else is accepted but plain
//! HTTP to a loopback address (the tests' stand-in), so whoever may invoke the function
//! cannot make it send requests to other hosts, inside the VPC or outside.
//!
//! No `Content-Type` is sent: the URL's signature covers an empty one. The `PUT` is tried
//! three times, since a lost answer leaves the stack waiting for the resource's
//! `ServiceTimeout`.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use crate::CustomResourceResponse;

const ATTEMPTS: u32 = 3;

/// The domains of S3's endpoints, where CloudFormation's pre-signed URLs point.
const AWS_DOMAINS: [&str; 2] = [".amazonaws.com", ".amazonaws.com.cn"];

/// `url` when it is HTTPS to an AWS domain, or HTTP to a loopback host.
fn response_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("the ResponseURL is not a URL: {e}"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") if AWS_DOMAINS.iter().any(|d| host.ends_with(d)) => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err("the ResponseURL must be an https:// URL on an AWS domain".to_owned()),
    }
}
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Delivers `response` to `url`; the last attempt's error when none succeeded.
pub async fn send(url: &str, response: &CustomResourceResponse) -> Result<(), String> {
    let uri = response_uri(url)?;
    let body = Bytes::from(serde_json::to_vec(response).map_err(|e| e.to_string())?);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt - 1))).await;
        }
        let request = Request::put(uri.clone())
            .header(header::CONTENT_LENGTH, body.len())
            .body(Full::new(body.clone()))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(request)).await {
            Ok(Ok(answer)) if answer.status().is_success() => return Ok(()),
            Ok(Ok(answer)) => last_error = format!("the ResponseURL answered {}", answer.status()),
            Ok(Err(err)) => {
                last_error = format!("sending to the ResponseURL: {}", shared::error::chain(&err))
            }
            Err(_) => {
                last_error = format!(
                    "the ResponseURL did not answer within {} s",
                    ATTEMPT_TIMEOUT.as_secs()
                )
            }
        }
        tracing::warn!(attempt, error = %last_error, "answering CloudFormation failed");
    }
    Err(last_error)
}

#[cfg(test)]
mod tests {
    use super::response_uri;

    #[test]
    fn only_https_or_loopback_http_is_answered() {
        for ok in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?X-Amz-Signature=1",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/a",
            "http://127.0.0.1:4000/x",
            "http://localhost/x",
            "http://[::1]:9/x",
        ] {
            assert!(response_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "http://example.com/x",
            "https://example.com/x",
            "https://internal.service.local/x",
            "https://amazonaws.com.evil.example/x",
            "ftp://example.com/x",
            "https:///nohost",
            "not a url",
            "",
        ] {
            assert!(response_uri(bad).is_err(), "{bad}");
        }
    }
}
