//! The local server's HTTP side: where it listens, the request budget, CORS, the abuse
//! limits and the metrics listener.

use std::{net::IpAddr, time::Duration};

use super::{
    ConfigError, Runtime,
    values::{Lookup, parse_num},
};

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub host: IpAddr,
    pub port: u16,
    /// Whole-request budget; a slower request is answered 504.
    pub request_timeout: Duration,
    /// Exact origins allowed by CORS. Empty in production means no cross-origin access.
    pub cors_allowed_origins: Vec<String>,
    /// Abuse protection; always off under Lambda, where API Gateway throttles.
    pub limits: LimitsConfig,
    /// A connection must deliver a request's headers within this, counted from when it
    /// opened or finished its previous request (so also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// Where `/metrics` is served, never on the API's port; `None`: nowhere.
    pub metrics: MetricsListener,
}

/// The private listener of `/metrics` (`METRICS_ADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListener {
    Off,
    /// The default address: if it is taken (another local server on this machine), the
    /// server runs without metrics and says so, rather than failing to start.
    Default(std::net::SocketAddr),
    /// Set explicitly: failing to bind it stops the start-up.
    At(std::net::SocketAddr),
}

impl MetricsListener {
    pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);
}

/// Per-client rate limit and global concurrency limit of the local server and container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Token bucket per client IP; `None` turns it off (`RATE_LIMIT_PER_SECOND=0`).
    pub rate: Option<RateLimit>,
    /// Requests handled at once before the rest are shed with 503; `None` turns it off.
    pub concurrency: Option<usize>,
    /// How many proxies in front of us append to `X-Forwarded-For`; 0 means the peer
    /// address is the client and forwarded headers are ignored.
    pub trusted_proxy_hops: usize,
    /// A request body must arrive whole within this of the request's start, and is read
    /// before the request takes a concurrency slot; `None` under Lambda, where bodies arrive
    /// whole with the event.
    pub body_timeout: Option<Duration>,
}

impl LimitsConfig {
    /// No rate limit, no concurrency limit, forwarded headers ignored.
    pub const OFF: Self = Self {
        rate: None,
        concurrency: None,
        trusted_proxy_hops: 0,
        body_timeout: None,
    };
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// `HOST`, `PORT`, `REQUEST_TIMEOUT_MS`, `CORS_ALLOWED_ORIGINS`, the limits (local server
/// only), `HTTP_*` and `METRICS_ADDR`.
pub(super) fn parse(runtime: Runtime, get: &impl Lookup) -> Result<HttpConfig, ConfigError> {
    let host = match get("HOST") {
        None => IpAddr::from([127, 0, 0, 1]),
        Some(h) => h
            .trim()
            .parse()
            .map_err(|_| ConfigError::new("HOST", "must be an IP address"))?,
    };
    let port = parse_num(get, "PORT", 3000u16, 0..=u16::MAX)?;
    let timeout_ms = parse_num(get, "REQUEST_TIMEOUT_MS", 25_000u64, 1..=900_000)?;
    let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
        .map(|list| {
            list.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let limits = match runtime {
        Runtime::Lambda => LimitsConfig::OFF,
        Runtime::LocalServer => parse_limits(get)?,
    };
    Ok(HttpConfig {
        host,
        port,
        request_timeout: Duration::from_millis(timeout_ms),
        cors_allowed_origins,
        limits,
        header_timeout: Duration::from_secs(parse_num(
            get,
            "HTTP_HEADER_TIMEOUT_SECS",
            10u64,
            1..=3600,
        )?),
        max_connections: parse_num(get, "HTTP_MAX_CONNECTIONS", 1000usize, 1..=1_000_000)?,
        metrics: match get("METRICS_ADDR").as_deref().map(str::trim) {
            None => MetricsListener::Default(MetricsListener::DEFAULT_ADDR.into()),
            Some("off") => MetricsListener::Off,
            Some(addr) => MetricsListener::At(addr.parse().map_err(|_| {
                ConfigError::new(
                    "METRICS_ADDR",
                    "must be an address with a port (127.0.0.1:9464) or `off`",
                )
            })?),
        },
    })
}

/// Defaults are generous: a person or a well-behaved client never meets them; a flood does.
fn parse_limits(get: &impl Lookup) -> Result<LimitsConfig, ConfigError> {
    let per_second = parse_num(get, "RATE_LIMIT_PER_SECOND", 500u32, 0..=1_000_000)?;
    let burst = parse_num(
        get,
        "RATE_LIMIT_BURST",
        per_second.saturating_mul(2),
        0..=10_000_000,
    )?;
    let rate = match (per_second, burst) {
        (0, _) => None,
        (_, 0) => {
            return Err(ConfigError::new(
                "RATE_LIMIT_BURST",
                "must be at least 1 while RATE_LIMIT_PER_SECOND is on",
            ));
        }
        (per_second, burst) => Some(RateLimit { per_second, burst }),
    };
    let concurrency = parse_num(get, "CONCURRENCY_LIMIT", 512usize, 0..=1_000_000)?;
    let trusted_proxy_hops = match get("TRUST_PROXY").as_deref().map(str::trim) {
        None | Some("false") => 0,
        Some("true") => 1,
        Some(hops) => hops
            .parse::<usize>()
            .ok()
            .filter(|h| *h <= 10)
            .ok_or_else(|| {
                ConfigError::new(
                    "TRUST_PROXY",
                    "must be `true`, `false` or the number of proxies in front (0 to 10)",
                )
            })?,
    };
    Ok(LimitsConfig {
        rate,
        concurrency: (concurrency > 0).then_some(concurrency),
        trusted_proxy_hops,
        body_timeout: Some(Duration::from_secs(parse_num(
            get,
            "HTTP_BODY_TIMEOUT_SECS",
            10u64,
            1..=3600,
        )?)),
    })
}
