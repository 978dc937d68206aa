//! Request metrics: requests by method, route template and status; a latency histogram by
//! method and route template; requests in flight; the database pool's size and idle
//! connections.
//!
//! The local server keeps them in a [`Metrics`] registry and renders Prometheus text at
//! `/metrics`. A Lambda instance has no endpoint to scrape, so it writes each request as one
//! CloudWatch Embedded Metric Format (EMF) line on stdout instead, which CloudWatch Logs turns
//! into the same measurements.
//!
//! Labels are always the matched route *template* (`/v1/tasks/{id}`), never the raw path,
//! and unknown methods collapse into `OTHER`, so a caller cannot grow the label space.
//!
//! Every measurement also goes through the [`metrics`] facade, under the same names and
//! labels, to whatever recorder the process installs (`metrics::set_global_recorder`:
//! OTLP, StatsD, Datadog, …); without one that costs next to nothing. [`describe`] gives
//! such a recorder the help texts.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::Write as _,
    sync::{
        Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::Method;

use crate::store::PoolStats;

/// Upper bounds of the latency histogram buckets, in seconds.
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Each metric's name and help text, as `/metrics` shows them and [`describe`] hands them
/// to a recorder installed through the facade.
pub mod names {
    pub const REQUESTS: (&str, &str) = (
        "http_requests_total",
        "Requests answered, by method, route template and status.",
    );
    pub const DURATION: (&str, &str) = (
        "http_request_duration_seconds",
        "Time to answer, by method and route template.",
    );
    pub const IN_FLIGHT: (&str, &str) = ("http_requests_in_flight", "Requests being handled now.");
    pub const POOL_SIZE: (&str, &str) = ("db_pool_size", "Open database connections.");
    pub const POOL_IDLE: (&str, &str) = ("db_pool_idle", "Open database connections not in use.");
    pub const MAIL_SENT: (&str, &str) =
        ("mail_sent_total", "Account mail handed to the mail server.");
    pub const MAIL_FAILED: (&str, &str) = (
        "mail_failed_total",
        "Failed attempts to deliver account mail (each is retried).",
    );
    pub const OUTBOX_DEPTH: (&str, &str) = (
        "mail_outbox_depth",
        "Account mail not yet delivered, as last counted.",
    );
}

/// Gives the recorder installed through the `metrics` facade each metric's help text and
/// unit. Call it once, after installing the recorder.
pub fn describe() {
    use metrics::Unit;
    use names::*;
    for (name, help) in [REQUESTS, MAIL_SENT, MAIL_FAILED] {
        metrics::describe_counter!(name, Unit::Count, help);
    }
    metrics::describe_histogram!(DURATION.0, Unit::Seconds, DURATION.1);
    for (name, help) in [IN_FLIGHT, POOL_SIZE, POOL_IDLE, OUTBOX_DEPTH] {
        metrics::describe_gauge!(name, Unit::Count, help);
    }
}

/// Where measurements go.
enum Sink {
    /// Aggregated in memory, rendered on demand.
    Prometheus,
    /// One EMF line per request on stdout.
    Emf { namespace: String, function: String },
}

type PoolProbe = Box<dyn Fn() -> PoolStats + Send + Sync>;

/// The registry of one process. Cheap to record into: one short lock per request.
pub struct Metrics {
    sink: Sink,
    pool: PoolProbe,
    in_flight: AtomicI64,
    /// Account mail handed to the mail server, attempts that failed, and the outbox depth
    /// as last counted.
    mail_sent: AtomicU64,
    mail_failed: AtomicU64,
    outbox_depth: AtomicI64,
    /// route → method → stats. Kept sorted so the rendering is stable.
    routes: Mutex<BTreeMap<String, BTreeMap<&'static str, RouteStats>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct RouteStats {
    statuses: BTreeMap<u16, u64>,
    /// Per bucket, not cumulative; rendering accumulates.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub method: &'a Method,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
}

impl Metrics {
    /// A registry rendered as Prometheus text (the local server and container).
    pub fn prometheus(pool: impl Fn() -> PoolStats + Send + Sync + 'static) -> Self {
        Self::with_sink(Sink::Prometheus, Box::new(pool))
    }

    /// Writes one EMF line per request to stdout (Lambda).
    pub fn emf(
        namespace: impl Into<String>,
        function: impl Into<String>,
        pool: impl Fn() -> PoolStats + Send + Sync + 'static,
    ) -> Self {
        let sink = Sink::Emf {
            namespace: namespace.into(),
            function: function.into(),
        };
        Self::with_sink(sink, Box::new(pool))
    }

    fn with_sink(sink: Sink, pool: PoolProbe) -> Self {
        Self {
            sink,
            pool,
            in_flight: AtomicI64::new(0),
            mail_sent: AtomicU64::new(0),
            mail_failed: AtomicU64::new(0),
            outbox_depth: AtomicI64::new(0),
            routes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts a request as in flight until the guard is dropped (also when the request is
    /// cancelled half-way).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(names::IN_FLIGHT.0).increment(1.0);
        InFlight(self)
    }

    pub fn record(&self, sample: Sample<'_>) {
        self.to_facade(sample);
        match &self.sink {
            Sink::Prometheus => self.aggregate(sample),
            Sink::Emf {
                namespace,
                function,
            } => {
                let line = self.emf_line(namespace, function, sample, unix_millis());
                // One write per line, so concurrent log lines cannot split it.
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
        }
    }

    /// The request to the recorder installed through the facade, if any.
    fn to_facade(&self, sample: Sample<'_>) {
        let method = method_label(sample.method);
        let route = metrics::SharedString::from(sample.route.to_owned());
        let status = metrics::SharedString::from(sample.status.to_string());
        metrics::counter!(names::REQUESTS.0, "method" => method, "route" => route.clone(), "status" => status)
            .increment(1);
        metrics::histogram!(names::DURATION.0, "method" => method, "route" => route)
            .record(sample.latency.as_secs_f64());
        let pool = (self.pool)();
        metrics::gauge!(names::POOL_SIZE.0).set(pool.size);
        metrics::gauge!(names::POOL_IDLE.0).set(pool.idle);
    }

    /// One delivery of account mail: `sent`, or a failed attempt; `outbox_depth`, the
    /// messages still waiting when it was counted. On Lambda, one EMF line.
    pub fn record_mail(&self, sent: bool, outbox_depth: Option<i64>) {
        let (name, counter) = if sent {
            (names::MAIL_SENT.0, &self.mail_sent)
        } else {
            (names::MAIL_FAILED.0, &self.mail_failed)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(name).increment(1);
        if let Some(depth) = outbox_depth {
            #[allow(clippy::cast_precision_loss)] // a queue's length, far below 2^52
            metrics::gauge!(names::OUTBOX_DEPTH.0).set(depth as f64);
        }
        if let Some(depth) = outbox_depth {
            self.outbox_depth.store(depth, Ordering::Relaxed);
        }
        if let Sink::Emf {
            namespace,
            function,
        } = &self.sink
        {
            let document = serde_json::json!({
                "_aws": {
                    "Timestamp": unix_millis(),
                    "CloudWatchMetrics": [{
                        "Namespace": namespace,
                        "Dimensions": [["Function"]],
                        "Metrics": [
                            {"Name": "MailSent", "Unit": "Count"},
                            {"Name": "MailFailed", "Unit": "Count"},
                            {"Name": "MailOutboxDepth", "Unit": "Count"},
                        ],
                    }],
                },
                "Function": function,
                "MailSent": u8::from(sent),
                "MailFailed": u8::from(!sent),
                "MailOutboxDepth": self.outbox_depth.load(Ordering::Relaxed),
            });
            let line = format!("{document}\n");
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
    }

    fn aggregate(&self, sample: Sample<'_>) {
        let seconds = sample.latency.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let by_method = match routes.get_mut(sample.route) {
            Some(by_method) => by_method,
            None => routes.entry(sample.route.to_owned()).or_default(),
        };
        let stats = by_method.entry(method_label(sample.method)).or_default();
        *stats.statuses.entry(sample.status).or_default() += 1;
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|le| seconds <= *le) {
            stats.buckets[bucket] += 1;
        }
        stats.count += 1;
        stats.sum_seconds += seconds;
    }

    /// The Prometheus text exposition (format 0.0.4) of everything recorded so far.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());

        family(&mut out, names::REQUESTS, "counter");
        for (route, by_method) in routes.iter() {
            let route = escape_label(route);
            for (method, stats) in by_method {
                for (status, count) in &stats.statuses {
                    let _ = writeln!(
                        out,
                        "http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                    );
                }
            }
        }

        family(&mut out, names::DURATION, "histogram");
        for (route, by_method) in routes.iter() {
            let route = escape_label(route);
            for (method, stats) in by_method {
                let labels = format!("method=\"{method}\",route=\"{route}\"");
                let mut cumulative = 0;
                for (le, in_bucket) in LATENCY_BUCKETS.iter().zip(stats.buckets) {
                    cumulative += in_bucket;
                    let _ = writeln!(
                        out,
                        "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                     http_request_duration_seconds_sum{{{labels}}} {}\n\
                     http_request_duration_seconds_count{{{labels}}} {}",
                    stats.count, stats.sum_seconds, stats.count
                );
            }
        }
        drop(routes);

        let pool = (self.pool)();
        let singles = [
            (
                names::IN_FLIGHT,
                "gauge",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (names::POOL_SIZE, "gauge", i64::from(pool.size)),
            (names::POOL_IDLE, "gauge", i64::from(pool.idle)),
            (names::MAIL_SENT, "counter", counter(&self.mail_sent)),
            (names::MAIL_FAILED, "counter", counter(&self.mail_failed)),
            (
                names::OUTBOX_DEPTH,
                "gauge",
                self.outbox_depth.load(Ordering::Relaxed),
            ),
        ];
        for (metric, kind, value) in singles {
            family(&mut out, metric, kind);
            let _ = writeln!(out, "{} {value}", metric.0);
        }
        out
    }

    /// One EMF document: the request's dimensions and values, and the `_aws` metadata that
    /// tells CloudWatch which members are metrics.
    fn emf_line(&self, namespace: &str, function: &str, sample: Sample<'_>, millis: u64) -> String {
        let pool = (self.pool)();
        let document = serde_json::json!({
            "_aws": {
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [
                        ["Function", "Method", "Route", "Status"],
                        ["Function", "Method", "Route"],
                    ],
                    "Metrics": [
                        {"Name": "Requests", "Unit": "Count"},
                        {"Name": "Latency", "Unit": "Milliseconds"},
                        {"Name": "InFlight", "Unit": "Count"},
                        {"Name": "DbPoolSize", "Unit": "Count"},
                        {"Name": "DbPoolIdle", "Unit": "Count"},
                    ],
                }],
            },
            "Function": function,
            "Method": method_label(sample.method),
            "Route": sample.route,
            "Status": sample.status.to_string(),
            "Requests": 1,
            "Latency": sample.latency.as_secs_f64() * 1000.0,
            "InFlight": self.in_flight.load(Ordering::Relaxed),
            "DbPoolSize": pool.size,
            "DbPoolIdle": pool.idle,
        });
        let mut line = document.to_string();
        line.push('\n');
        line
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!(names::IN_FLIGHT.0).decrement(1.0);
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, (name, help): (&str, &str), kind: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn counter(value: &AtomicU64) -> i64 {
    i64::try_from(value.load(Ordering::Relaxed)).unwrap_or(i64::MAX)
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolStats {
        PoolStats { size: 3, idle: 2 }
    }

    fn sample<'a>(method: &'a Method, route: &'a str, status: u16, ms: u64) -> Sample<'a> {
        Sample {
            method,
            route,
            status,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn counts_are_kept_per_method_route_and_status() {
        let metrics = Metrics::prometheus(pool);
        let get = Method::GET;
        metrics.record(sample(&get, "/v1/tasks/{id}", 200, 2));
        metrics.record(sample(&get, "/v1/tasks/{id}", 200, 2));
        metrics.record(sample(&get, "/v1/tasks/{id}", 404, 2));
        metrics.record(sample(&Method::DELETE, "/v1/tasks/{id}", 204, 2));
        let text = metrics.render_prometheus();
        for line in [
            r#"http_requests_total{method="GET",route="/v1/tasks/{id}",status="200"} 2"#,
            r#"http_requests_total{method="GET",route="/v1/tasks/{id}",status="404"} 1"#,
            r#"http_requests_total{method="DELETE",route="/v1/tasks/{id}",status="204"} 1"#,
            "db_pool_size 3",
            "db_pool_idle 2",
            "http_requests_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_the_count() {
        let metrics = Metrics::prometheus(pool);
        let get = Method::GET;
        for ms in [0, 3, 3, 40, 20_000] {
            metrics.record(sample(&get, "/health", 200, ms));
        }
        let text = metrics.render_prometheus();
        let bucket = |le: &str| {
            let prefix = format!(
                r#"http_request_duration_seconds_bucket{{method="GET",route="/health",le="{le}"}} "#
            );
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
                .to_owned()
        };
        assert_eq!(bucket("0.001"), "1");
        assert_eq!(bucket("0.005"), "3");
        assert_eq!(bucket("0.05"), "4");
        assert_eq!(bucket("10"), "4");
        assert_eq!(bucket("+Inf"), "5");
        assert!(
            text.contains(r#"http_request_duration_seconds_count{method="GET",route="/health"} 5"#)
        );
        let sum: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    r#"http_request_duration_seconds_sum{method="GET",route="/health"} "#,
                )
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!((sum - 20.046).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn in_flight_follows_the_guards() {
        let metrics = Metrics::prometheus(pool);
        let first = metrics.start();
        let second = metrics.start();
        assert!(
            metrics
                .render_prometheus()
                .contains("\nhttp_requests_in_flight 2\n")
        );
        drop(first);
        drop(second);
        assert!(
            metrics
                .render_prometheus()
                .contains("\nhttp_requests_in_flight 0\n")
        );
    }

    #[test]
    fn unknown_methods_and_odd_routes_cannot_grow_or_break_labels() {
        let metrics = Metrics::prometheus(pool);
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics.record(sample(&odd, "a\"b\\c", 405, 1));
        let text = metrics.render_prometheus();
        assert!(
            text.contains(r#"http_requests_total{method="OTHER",route="a\"b\\c",status="405"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn emf_line_declares_its_metrics_and_carries_the_dimensions() {
        let metrics = Metrics::emf("TaskApi", "tasks-fn", pool);
        let line = metrics.emf_line(
            "TaskApi",
            "tasks-fn",
            sample(&Method::PATCH, "/v1/tasks/{id}", 412, 7),
            1_700_000_000_000,
        );
        assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
        let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "TaskApi");
        // Every declared metric and dimension is a member of the document.
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "metric {name} missing");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for dimension in set.as_array().unwrap() {
                let name = dimension.as_str().unwrap();
                assert!(doc[name].is_string(), "dimension {name} missing");
            }
        }
        assert_eq!(doc["Route"], "/v1/tasks/{id}");
        assert_eq!(doc["Method"], "PATCH");
        assert_eq!(doc["Status"], "412");
        assert_eq!(doc["Latency"], 7.0);
        assert_eq!(doc["DbPoolSize"], 3);
    }
}
