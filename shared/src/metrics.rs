//! Request metrics: requests by method, route template and status; a latency histogram by
//! method and route template; requests in flight; the database pool's size and idle
//! connections; account mail sent, failed and waiting.
//!
//! Every measurement goes through the [`metrics`] facade to whatever recorder the process
//! installs (`metrics::set_global_recorder`: OTLP, StatsD, Datadog, …; without one that
//! costs next to nothing; [`describe`] gives it the help texts), and to this app's own sink:
//! - the local server's is a `metrics-exporter-prometheus` recorder of its own per
//!   [`Metrics`], so two apps in one process never mix; `/metrics` renders it;
//! - a Lambda instance has no endpoint to scrape, so it writes each request as one
//!   CloudWatch Embedded Metric Format (EMF) line on stdout, which CloudWatch Logs turns
//!   into the same measurements.
//!
//! Labels are always the matched route *template* (`/v1/tasks/{id}`), never the raw path,
//! and unknown methods collapse into `OTHER`, so a caller cannot grow the label space.

use std::{
    io::Write as _,
    sync::atomic::{AtomicI64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::Method;
use metrics::{counter, gauge, histogram};
use serde_json::{Value, json};

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

/// Where measurements go, besides the facade's recorder.
enum Sink {
    /// Aggregated by this app's Prometheus recorder, rendered on demand.
    #[cfg(feature = "prometheus")]
    Prometheus(Box<Prometheus>),
    /// One EMF line per request on stdout.
    Emf { namespace: String, function: String },
    /// Nowhere else: a local server built without the `prometheus` feature.
    #[cfg_attr(feature = "prometheus", allow(dead_code))]
    FacadeOnly,
}

type PoolProbe = Box<dyn Fn() -> PoolStats + Send + Sync>;

/// The measurements of one app.
pub struct Metrics {
    sink: Sink,
    pool: PoolProbe,
    /// Requests in flight and the outbox depth as last counted, for the EMF lines.
    in_flight: AtomicI64,
    outbox_depth: AtomicI64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
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
    /// Measurements for `/metrics` (the local server and container). Built without the
    /// `prometheus` feature, they only feed the facade.
    pub fn prometheus(pool: impl Fn() -> PoolStats + Send + Sync + 'static) -> Self {
        #[cfg(feature = "prometheus")]
        let sink = Sink::Prometheus(Box::default());
        #[cfg(not(feature = "prometheus"))]
        let sink = Sink::FacadeOnly;
        Self::with_sink(sink, Box::new(pool))
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
            outbox_depth: AtomicI64::new(0),
        }
    }

    /// Runs `measure` (facade macros) against the facade's recorder, then again against
    /// this app's own, if it has one.
    fn each(&self, measure: impl Fn()) {
        measure();
        #[cfg(feature = "prometheus")]
        if let Sink::Prometheus(own) = &self.sink {
            metrics::with_local_recorder(&own.recorder, &measure);
        }
    }

    /// Counts a request as in flight until the guard is dropped (also when the request is
    /// cancelled half-way).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.each(|| gauge!(names::IN_FLIGHT.0).increment(1.0));
        InFlight(self)
    }

    pub fn record(&self, sample: Sample<'_>) {
        let (method, route) = (method_label(sample.method), sample.route);
        let status = sample.status.to_string();
        let pool = (self.pool)();
        self.each(|| {
            let requests = counter!(names::REQUESTS.0,
                "method" => method, "route" => route.to_owned(), "status" => status.clone());
            requests.increment(1);
            histogram!(names::DURATION.0, "method" => method, "route" => route.to_owned())
                .record(sample.latency.as_secs_f64());
            set_pool(pool);
        });
        match &self.sink {
            #[cfg(feature = "prometheus")]
            Sink::Prometheus(own) => own.recorded(),
            Sink::Emf {
                namespace,
                function,
            } => emit(&self.emf_line(namespace, function, sample, unix_millis())),
            Sink::FacadeOnly => {}
        }
    }

    /// One delivery of account mail: `sent`, or a failed attempt; `outbox_depth`, the
    /// messages still waiting when it was counted. On Lambda, one EMF line.
    pub fn record_mail(&self, sent: bool, outbox_depth: Option<i64>) {
        let name = if sent {
            names::MAIL_SENT
        } else {
            names::MAIL_FAILED
        }
        .0;
        if let Some(depth) = outbox_depth {
            self.outbox_depth.store(depth, Ordering::Relaxed);
        }
        self.each(|| {
            counter!(name).increment(1);
            if let Some(depth) = outbox_depth {
                #[allow(clippy::cast_precision_loss)] // a queue's length, far below 2^52
                gauge!(names::OUTBOX_DEPTH.0).set(depth as f64);
            }
        });
        if let Sink::Emf {
            namespace,
            function,
        } = &self.sink
        {
            emit(&emf_document(
                namespace,
                unix_millis(),
                json!([["Function"]]),
                &[
                    ("MailSent", "Count"),
                    ("MailFailed", "Count"),
                    ("MailOutboxDepth", "Count"),
                ],
                json!({
                    "Function": function,
                    "MailSent": u8::from(sent),
                    "MailFailed": u8::from(!sent),
                    "MailOutboxDepth": self.outbox_depth.load(Ordering::Relaxed),
                }),
            ));
        }
    }

    /// Everything recorded so far as Prometheus text (format 0.0.4), as the exporter renders
    /// it: families and series in no particular order (`/metrics` sorts them).
    #[cfg(feature = "prometheus")]
    pub fn render_prometheus(&self) -> String {
        let Sink::Prometheus(own) = &self.sink else {
            return String::new();
        };
        let pool = (self.pool)();
        metrics::with_local_recorder(&own.recorder, || set_pool(pool));
        own.handle.render()
    }

    /// A request's EMF document: its dimensions (two sets) and values.
    fn emf_line(&self, namespace: &str, function: &str, sample: Sample<'_>, millis: u64) -> String {
        let pool = (self.pool)();
        emf_document(
            namespace,
            millis,
            json!([
                ["Function", "Method", "Route", "Status"],
                ["Function", "Method", "Route"],
            ]),
            &[
                ("Requests", "Count"),
                ("Latency", "Milliseconds"),
                ("InFlight", "Count"),
                ("DbPoolSize", "Count"),
                ("DbPoolIdle", "Count"),
            ],
            json!({
                "Function": function,
                "Method": method_label(sample.method),
                "Route": sample.route,
                "Status": sample.status.to_string(),
                "Requests": 1,
                "Latency": sample.latency.as_secs_f64() * 1000.0,
                "InFlight": self.in_flight.load(Ordering::Relaxed),
                "DbPoolSize": pool.size,
                "DbPoolIdle": pool.idle,
            }),
        )
    }
}

/// Decrements the in-flight gauge when dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.each(|| gauge!(names::IN_FLIGHT.0).decrement(1.0));
    }
}

fn set_pool(pool: PoolStats) {
    gauge!(names::POOL_SIZE.0).set(pool.size);
    gauge!(names::POOL_IDLE.0).set(pool.idle);
}

/// One EMF document, on one line: `members` (dimensions and values) and the `_aws` metadata
/// that tells CloudWatch which members are metrics.
fn emf_document(
    namespace: &str,
    millis: u64,
    dimensions: Value,
    metrics: &[(&str, &str)],
    mut members: Value,
) -> String {
    let metrics: Vec<Value> = metrics
        .iter()
        .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    members["_aws"] = json!({
        "Timestamp": millis,
        "CloudWatchMetrics": [{"Namespace": namespace, "Dimensions": dimensions, "Metrics": metrics}],
    });
    let mut line = members.to_string();
    line.push('\n');
    line
}

/// Writes an EMF line to stdout in one write, so concurrent log lines cannot split it.
fn emit(line: &str) {
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
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

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The local server's sink: `metrics-exporter-prometheus`'s recorder, one per [`Metrics`].
#[cfg(feature = "prometheus")]
struct Prometheus {
    recorder: metrics_exporter_prometheus::PrometheusRecorder,
    handle: metrics_exporter_prometheus::PrometheusHandle,
    since_fold: std::sync::atomic::AtomicU32,
}

/// Histogram samples wait in the recorder until folded into their buckets (at a scrape, or
/// here every this many requests), so an unscraped server holds at most this many.
#[cfg(feature = "prometheus")]
const FOLD_EVERY: u32 = 1024;

#[cfg(feature = "prometheus")]
impl Default for Prometheus {
    fn default() -> Self {
        #[allow(clippy::expect_used)] // a fixed, non-empty list of bounds
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("BUG: the latency buckets were refused")
            .build_recorder();
        // The series without labels are listed from the start, at zero.
        metrics::with_local_recorder(&recorder, || {
            for (name, _) in [names::IN_FLIGHT, names::OUTBOX_DEPTH] {
                let _ = gauge!(name);
            }
            for (name, _) in [names::MAIL_SENT, names::MAIL_FAILED] {
                let _ = counter!(name);
            }
        });
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            since_fold: Default::default(),
        }
    }
}

#[cfg(feature = "prometheus")]
impl Prometheus {
    /// Counts a recorded request; folds the histograms every [`FOLD_EVERY`].
    fn recorded(&self) {
        if self.since_fold.fetch_add(1, Ordering::Relaxed) + 1 >= FOLD_EVERY {
            self.since_fold.store(0, Ordering::Relaxed);
            self.handle.run_upkeep();
        }
    }
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
    fn no_sample_is_lost_when_the_histograms_are_folded_between_scrapes() {
        let metrics = Metrics::prometheus(pool);
        // Three times the fold interval, and a bit: the folds and the scrape both count.
        for n in 0..3_100_u64 {
            metrics.record(sample(&Method::GET, "/health", 200, n % 2 * 30));
        }
        let text = metrics.render_prometheus();
        for line in [
            r#"http_request_duration_seconds_count{method="GET",route="/health"} 3100"#,
            r#"http_request_duration_seconds_bucket{method="GET",route="/health",le="0.001"} 1550"#,
            r#"http_request_duration_seconds_bucket{method="GET",route="/health",le="0.05"} 3100"#,
            r#"http_requests_total{method="GET",route="/health",status="200"} 3100"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
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
