//! Abuse protection for the local server and container (Lambda relies on API Gateway's
//! throttling instead): a token bucket per client IP answered with 429, and a global cap on
//! requests in flight answered with 503. Both answer at once with `Retry-After` instead of
//! queueing, so a flood cannot build an unbounded backlog.
//!
//! The client is the TCP peer. `X-Forwarded-For` is believed only when `TRUST_PROXY` says
//! how many proxies in front of us append to it; otherwise anyone could pick their own
//! bucket. IPv6 clients are bucketed by /64, the block one subscriber usually holds.
//!
//! Health probes are exempt, so an orchestrator never restarts a container for being busy.
//!
//! A request's body is read whole (within `HTTP_BODY_TIMEOUT_SECS` of the request's start,
//! up to the 1 MiB limit) *before* the request takes a concurrency slot: a client that
//! trickles a body holds a connection, never a slot every other request needs, and gets
//! 408 `request_timeout` when the time is up.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, MatchedPath, Request},
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use crate::{
    config::{LimitsConfig, RateLimit},
    error::{ApiError, ErrorKind},
};

/// Routes never throttled or shed.
const EXEMPT_ROUTES: [&str; 2] = ["/health", "/ready"];
/// Routes that hash a password. They hold no global concurrency slot: the hashing queue
/// bounds them (a full queue answers 503 at once) and the per-client credential limit
/// counts them, so a login flood cannot take the slots every other request needs.
const HASHING_ROUTES: [&str; 3] = ["/v1/auth/login", "/v1/auth/register", "/v1/auth/password"];
/// Above this many tracked clients, full (idle) buckets are dropped.
const PRUNE_ABOVE: usize = 10_000;

/// The state of the limits middleware.
#[derive(Debug)]
pub struct Limiter {
    rate: Option<Buckets>,
    in_flight: Option<Arc<Semaphore>>,
    trusted_proxy_hops: usize,
    body_timeout: Option<Duration>,
}

impl Limiter {
    /// `None` when every limit is off, so the stack can leave the layer out.
    pub fn new(config: &LimitsConfig) -> Option<Self> {
        if config.rate.is_none() && config.concurrency.is_none() && config.body_timeout.is_none() {
            return None;
        }
        Some(Self {
            rate: config.rate.map(Buckets::new),
            in_flight: config.concurrency.map(|n| Arc::new(Semaphore::new(n))),
            trusted_proxy_hops: config.trusted_proxy_hops,
            body_timeout: config.body_timeout,
        })
    }
}

/// The limits as a layer: `Router::layer(LimitLayer(limiter))`.
#[derive(Debug, Clone)]
pub(super) struct LimitLayer(pub(super) Arc<Limiter>);

impl<S> Layer<S> for LimitLayer {
    type Service = Limit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Limit {
            inner,
            limiter: self.0.clone(),
        }
    }
}

/// Answers 429 or 503 itself, or calls `inner` holding a concurrency permit until the
/// response is ready. Written as a service rather than `middleware::from_fn`, which clones
/// and boxes the inner service on every request.
#[derive(Debug, Clone)]
pub(super) struct Limit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S> Service<Request> for Limit<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = super::ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A cheap handle: the path template is shared, not copied.
        let route = request.extensions().get::<MatchedPath>().cloned();
        if let Err(refusal) = self.limiter.check_rate(&request, route_of(route.as_ref())) {
            return Box::pin(std::future::ready(Ok(refusal.into_response())));
        }
        let bodiless = !has_body(&request);
        if bodiless || self.limiter.body_timeout.is_none() {
            // Nothing to wait for: take the slot and go, without an extra task.
            let permit = match self.limiter.take_slot(route_of(route.as_ref())) {
                Ok(permit) => permit,
                Err(refusal) => return Box::pin(std::future::ready(Ok(refusal.into_response()))),
            };
            let response = self.inner.call(request);
            return Box::pin(async move {
                let response = response.await;
                drop(permit);
                response
            });
        }
        // The clone that was made ready is the one that gets called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.limiter.clone();
        Box::pin(async move {
            let request = match read_body(request, limiter.body_timeout).await {
                Ok(request) => request,
                Err(refusal) => return Ok(refusal.into_response()),
            };
            let permit = match limiter.take_slot(route_of(route.as_ref())) {
                Ok(permit) => permit,
                Err(refusal) => return Ok(refusal.into_response()),
            };
            let response = inner.call(request).await;
            drop(permit);
            response
        })
    }
}

fn route_of(route: Option<&MatchedPath>) -> Option<&str> {
    route.map(MatchedPath::as_str)
}

/// Whether the request says a body follows (a non-zero length, or chunks).
fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0")
}

/// Reads the whole body within `deadline` (up to the stack's body limit, which the body
/// already enforces), and hands the request on with the bytes in memory.
async fn read_body(request: Request, deadline: Option<Duration>) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let reading = axum::body::to_bytes(body, usize::MAX);
    let read = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, reading).await.map_err(|_| {
            ApiError::new(ErrorKind::RequestTimeout)
                .with_detail("the request body did not arrive in time")
        })?,
        None => reading.await,
    };
    let bytes = read.map_err(|error| {
        // The body limit's error (a chunked body past 1 MiB), somewhere in the chain.
        let too_large =
            std::iter::successors(Some(&error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.to_string().contains("length limit exceeded"));
        if too_large {
            ApiError::new(ErrorKind::PayloadTooLarge).with_detail("the body is larger than 1 MiB")
        } else {
            ApiError::new(ErrorKind::BadRequest).with_detail("the request body could not be read")
        }
    })?;
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

impl Limiter {
    /// Counts the request against its client's rate, or gives the answer that refuses it.
    fn check_rate(&self, request: &Request, route: Option<&str>) -> Result<(), ApiError> {
        if route.is_some_and(|route| EXEMPT_ROUTES.contains(&route)) {
            return Ok(());
        }
        if let (Some(buckets), Some(client)) =
            (&self.rate, client_ip(request, self.trusted_proxy_hops))
        {
            if let Err(wait) = buckets.take(bucket_key(client), Instant::now()) {
                return Err(ApiError::new(ErrorKind::TooManyRequests)
                    .with_detail("too many requests from this client; slow down")
                    .with_retry_after(wait.as_secs_f64().ceil() as u64));
            }
        }
        Ok(())
    }

    /// The request's concurrency permit (none for exempt and hashing routes, or with that
    /// limit off), or the 503 that sheds it.
    fn take_slot(&self, route: Option<&str>) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
        if route
            .is_some_and(|route| EXEMPT_ROUTES.contains(&route) || HASHING_ROUTES.contains(&route))
        {
            return Ok(None);
        }
        match &self.in_flight {
            None => Ok(None),
            Some(semaphore) => match semaphore.clone().try_acquire_owned() {
                Ok(permit) => Ok(Some(permit)),
                Err(_) => {
                    tracing::warn!("concurrency limit reached: shedding a request");
                    Err(ApiError::new(ErrorKind::ServiceUnavailable)
                        .with_detail("the server is at capacity; retry shortly")
                        .with_retry_after(1))
                }
            },
        }
    }
}

/// The client address the platform vouches for (API Gateway's `sourceIp` under Lambda),
/// put on the request by the Lambda adapter; it wins over anything the request says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformSourceIp(pub IpAddr);

/// The client of a request as every per-client limit counts it: the platform's source IP
/// under Lambda; otherwise the TCP peer, or with `TRUST_PROXY` the address the trusted
/// proxies recorded. IPv6 is taken by /64. `None` when nothing says (an in-process test
/// request): per-client limits then do not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S> axum::extract::FromRequestParts<S> for ClientAddr
where
    crate::state::AppState: axum::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let state = <crate::state::AppState as axum::extract::FromRef<S>>::from_ref(state);
        let hops = state.config.http.limits.trusted_proxy_hops;
        let ip = match parts.extensions.get::<PlatformSourceIp>() {
            Some(PlatformSourceIp(ip)) => Some(*ip),
            None => client_ip_of(&parts.headers, &parts.extensions, hops),
        };
        Ok(Self(ip.map(bucket_key)))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

/// The platform's source IP under Lambda, else [`client_ip_of`].
pub(super) fn client_ip(request: &Request, hops: usize) -> Option<IpAddr> {
    match request.extensions().get::<PlatformSourceIp>() {
        Some(PlatformSourceIp(ip)) => Some(*ip),
        None => client_ip_of(request.headers(), request.extensions(), hops),
    }
}

/// The client's address: the peer, or with `hops` trusted proxies in front, the entry that
/// the outermost of them appended to `X-Forwarded-For` (the `hops`-th from the right).
/// Without enough entries the peer is used, as a caller could have written the rest.
fn client_ip_of(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    hops: usize,
) -> Option<IpAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if hops == 0 {
        return peer;
    }
    // Walked from the right, lazily: the work is `hops` entries however long the list a
    // caller sends.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','))
        .map(str::trim)
        .nth(hops - 1)
        .and_then(|entry| entry.parse::<IpAddr>().ok())
        .or(peer)
}

/// IPv4 addresses as they are; IPv6 by /64; IPv4-mapped IPv6 as IPv4.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[derive(Debug)]
struct Buckets {
    limit: RateLimit,
    state: Mutex<BucketMap>,
}

#[derive(Debug)]
struct BucketMap {
    buckets: HashMap<IpAddr, Bucket>,
    last_prune: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Buckets {
    fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            state: Mutex::new(BucketMap {
                buckets: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    fn take(&self, key: IpAddr, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(self.limit.burst);
        let rate = f64::from(self.limit.per_second);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.buckets.len() > PRUNE_ABOVE
            && state
                .last_prune
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
        {
            // A bucket that has refilled completely says nothing a fresh one wouldn't.
            let refill = Duration::from_secs_f64(burst / rate);
            state
                .buckets
                .retain(|_, b| now.saturating_duration_since(b.updated) < refill);
            state.last_prune = Some(now);
        }
        let bucket = state.buckets.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn buckets(per_second: u32, burst: u32) -> Buckets {
        Buckets::new(RateLimit { per_second, burst })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_until_it_refills() {
        let b = buckets(2, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.take(ip("10.0.0.1"), t0).is_ok());
        }
        let wait = b.take(ip("10.0.0.1"), t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another client has its own bucket.
        assert!(b.take(ip("10.0.0.2"), t0).is_ok());
        // Half a second refills one token at 2/s.
        assert!(
            b.take(ip("10.0.0.1"), t0 + Duration::from_millis(500))
                .is_ok()
        );
        assert!(
            b.take(ip("10.0.0.1"), t0 + Duration::from_millis(500))
                .is_err()
        );
        // Refilling never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.take(ip("10.0.0.1"), later).is_ok());
        }
        assert!(b.take(ip("10.0.0.1"), later).is_err());
    }

    #[test]
    fn idle_buckets_are_pruned_once_many_clients_are_tracked() {
        let b = buckets(1000, 1);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            b.take(IpAddr::from(i.to_be_bytes()), t0).unwrap();
        }
        b.take(ip("192.0.2.1"), t0 + Duration::from_secs(1))
            .unwrap();
        let state = b.state.lock().unwrap();
        assert_eq!(state.buckets.len(), 1);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_v4_is_v4() {
        assert_eq!(
            bucket_key(ip("2001:db8:1:2:aaaa::1")),
            bucket_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            bucket_key(ip("2001:db8:1:2::1")),
            bucket_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(bucket_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    fn request_from(peer: &str, forwarded: &[&str]) -> Request {
        let mut builder = Request::builder().uri("/v1/tasks");
        for value in forwarded {
            builder = builder.header("x-forwarded-for", *value);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        let peer: SocketAddr = format!("{peer}:40000").parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[test]
    fn forwarded_for_is_ignored_unless_proxies_are_trusted() {
        let request = request_from("10.1.1.1", &["203.0.113.9"]);
        assert_eq!(client_ip(&request, 0), Some(ip("10.1.1.1")));
        assert_eq!(client_ip(&request, 1), Some(ip("203.0.113.9")));
    }

    #[test]
    fn with_trusted_proxies_the_entry_they_appended_counts_not_the_callers() {
        // The caller forged "1.1.1.1"; our one proxy appended the address it saw.
        let request = request_from("10.1.1.1", &["1.1.1.1, 203.0.113.9"]);
        assert_eq!(client_ip(&request, 1), Some(ip("203.0.113.9")));
        // Two proxies: the outer one wrote the client, the inner one the outer proxy.
        let request = request_from("10.1.1.1", &["198.51.100.4", "10.0.0.5"]);
        assert_eq!(client_ip(&request, 2), Some(ip("198.51.100.4")));
        // Fewer entries than proxies, or garbage: fall back to the peer.
        assert_eq!(
            client_ip(&request_from("10.1.1.1", &[]), 1),
            Some(ip("10.1.1.1"))
        );
        assert_eq!(
            client_ip(&request_from("10.1.1.1", &["not-an-ip"]), 1),
            Some(ip("10.1.1.1"))
        );
        // A long forged list: the entry the proxy appended is still the one that counts.
        let forged = format!("{}203.0.113.9", "1.1.1.1,".repeat(200_000));
        let request = request_from("10.1.1.1", &[&forged, "198.51.100.1"]);
        assert_eq!(client_ip(&request, 2), Some(ip("203.0.113.9")));
    }
}
