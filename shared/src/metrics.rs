//! Request metrics: requests by method, route template and status; a latency histogram by
//! method and route template; requests in flight; the database pool's size and idle
//! connections; account mail sent, failed and waiting.
//!
//! Every measurement goes through the [`metrics`] facade to whatever recorder the process
//! installs (`metrics::set_global_recorder`: OTLP, StatsD, Datadog, …; without one that
//! costs next to nothing; [`describe`] gives it the help texts), and to this app's own:
//! - the local server gives each app an [`Exporter`] of its own (`metrics-exporter-prometheus`,
//!   in `local-server`), so two apps in one process never mix; `/metrics` renders it;
//! - a Lambda instance has no endpoint to scrape, so it writes each request as one
//!   CloudWatch Embedded Metric Format (EMF) line on stdout, which CloudWatch Logs turns
//!   into the same measurements.
//!
//! Labels are always the matched route *template* (`/v1/tasks/{id}`), never the raw path,
//! and unknown methods collapse into `OTHER`, so a caller cannot grow the label space.

use std::{
    io::Write as _,
    sync::{
        OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::Method;
use metrics::{Recorder, counter, gauge, histogram};
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

/// A recorder of one app's own, which it can also show: the local server's `/metrics`.
pub trait Exporter: Send + Sync {
    /// Where the app's measurements go, besides the facade's recorder.
    fn recorder(&self) -> &dyn Recorder;
    /// Told after each request is recorded.
    fn recorded(&self) {}
    /// Everything recorded so far, as text.
    fn render(&self) -> String;
}

/// Where a Lambda function's EMF lines say they come from.
struct Emf {
    namespace: String,
    function: String,
}

/// The measurements of one app.
pub struct Metrics {
    /// One EMF line per request on stdout, under Lambda.
    emf: Option<Emf>,
    /// The app's own recorder, once given ([`export_to`](Self::export_to)).
    own: OnceLock<Box<dyn Exporter>>,
    pool: Box<dyn Fn() -> PoolStats + Send + Sync>,
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
    /// Measurements for the facade's recorder, and for an app's own once it is given one
    /// ([`export_to`](Self::export_to)): the local server and container.
    pub fn new(pool: impl Fn() -> PoolStats + Send + Sync + 'static) -> Self {
        Self {
            emf: None,
            own: OnceLock::new(),
            pool: Box::new(pool),
            in_flight: AtomicI64::new(0),
            outbox_depth: AtomicI64::new(0),
        }
    }

    /// Writes one EMF line per request to stdout (Lambda).
    pub fn emf(
        namespace: impl Into<String>,
        function: impl Into<String>,
        pool: impl Fn() -> PoolStats + Send + Sync + 'static,
    ) -> Self {
        let emf = Emf {
            namespace: namespace.into(),
            function: function.into(),
        };
        Self {
            emf: Some(emf),
            ..Self::new(pool)
        }
    }

    /// Runs `measure` (facade macros) against the facade's recorder, then again against
    /// this app's own, if it has one.
    fn each(&self, measure: impl Fn()) {
        measure();
        if let Some(own) = self.own.get() {
            metrics::with_local_recorder(own.recorder(), &measure);
        }
    }

    /// Gives this app a recorder of its own, made by `exporter` on the first call: the first
    /// one given wins. Give it before the app serves; what was counted before is not in it,
    /// but the gauges start from their current values.
    pub fn export_to(&self, exporter: impl FnOnce() -> Box<dyn Exporter>) {
        let mut made = false;
        let own = self.own.get_or_init(|| {
            made = true;
            exporter()
        });
        if made {
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            let (in_flight, depth) = (
                self.in_flight.load(Ordering::Relaxed) as f64,
                self.outbox_depth.load(Ordering::Relaxed) as f64,
            );
            metrics::with_local_recorder(own.recorder(), || {
                gauge!(names::IN_FLIGHT.0).set(in_flight);
                gauge!(names::OUTBOX_DEPTH.0).set(depth);
            });
        }
    }

    /// What the app's own recorder holds, the pool's gauges brought up to date; `None`
    /// without one.
    pub fn render(&self) -> Option<String> {
        let own = self.own.get()?;
        let pool = (self.pool)();
        metrics::with_local_recorder(own.recorder(), || set_pool(pool));
        Some(own.render())
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
            counter!(names::REQUESTS.0,
                "method" => method, "route" => route.to_owned(), "status" => status.clone())
            .increment(1);
            histogram!(names::DURATION.0, "method" => method, "route" => route.to_owned())
                .record(sample.latency.as_secs_f64());
            set_pool(pool);
        });
        if let Some(own) = self.own.get() {
            own.recorded();
        }
        if let Some(Emf {
            namespace,
            function,
        }) = &self.emf
        {
            emit(&self.emf_line(namespace, function, sample, unix_millis()));
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
        if let Some(Emf {
            namespace,
            function,
        }) = &self.emf
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
