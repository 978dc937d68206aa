//! Request metrics: requests by method, route template and status; a latency histogram by
//! method and route template; requests in flight; the database pool's size and idle
//! connections.
//!
//! The local server aggregates them with `metrics-exporter-prometheus` (a recorder of its
//! own per [`Metrics`], so two apps in one process never mix) and renders Prometheus text at
//! `/metrics`, in a stable order. A Lambda instance has no endpoint to scrape, so it writes each request as one
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
    io::Write as _,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use http::Method;
use metrics::{Key, Label, Level, Metadata, Recorder, SharedString};

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
    /// Aggregated by the Prometheus exporter's recorder, rendered on demand.
    #[cfg(feature = "prometheus")]
    Prometheus(Box<prometheus::Exporter>),
    /// One EMF line per request on stdout.
    Emf { namespace: String, function: String },
    /// Nowhere else: a local server built without the `prometheus` feature.
    #[cfg_attr(feature = "prometheus", allow(dead_code))]
    FacadeOnly,
}

type PoolProbe = Box<dyn Fn() -> PoolStats + Send + Sync>;

/// The registry of one process.
pub struct Metrics {
    sink: Sink,
    pool: PoolProbe,
    in_flight: AtomicI64,
    /// Account mail handed to the mail server, attempts that failed, and the outbox depth
    /// as last counted.
    mail_sent: AtomicU64,
    mail_failed: AtomicU64,
    outbox_depth: AtomicI64,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What a recorder is told about where a measurement comes from.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One finished request.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    pub method: &'a Method,
    pub route: &'a str,
    pub status: u16,
    pub latency: Duration,
}

impl Metrics {
    /// A registry rendered as Prometheus text (the local server and container). Built
    /// without the `prometheus` feature, it only feeds the facade.
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
            mail_sent: AtomicU64::new(0),
            mail_failed: AtomicU64::new(0),
            outbox_depth: AtomicI64::new(0),
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
        let method = SharedString::const_str(method_label(sample.method));
        let route = SharedString::from(sample.route.to_owned());
        let requests = Key::from_parts(
            names::REQUESTS.0,
            vec![
                Label::from_static_parts("method", method_label(sample.method)),
                Label::new("route", route.clone()),
                Label::new("status", sample.status.to_string()),
            ],
        );
        let duration = Key::from_parts(
            names::DURATION.0,
            vec![Label::new("method", method), Label::new("route", route)],
        );
        let seconds = sample.latency.as_secs_f64();
        let count = |recorder: &dyn Recorder| {
            recorder.register_counter(&requests, &METADATA).increment(1);
            recorder
                .register_histogram(&duration, &METADATA)
                .record(seconds);
        };
        metrics::with_recorder(count);
        let pool = (self.pool)();
        metrics::gauge!(names::POOL_SIZE.0).set(pool.size);
        metrics::gauge!(names::POOL_IDLE.0).set(pool.idle);
        match &self.sink {
            #[cfg(feature = "prometheus")]
            Sink::Prometheus(exporter) => exporter.record(count),
            Sink::Emf {
                namespace,
                function,
            } => {
                let line = self.emf_line(namespace, function, sample, unix_millis());
                // One write per line, so concurrent log lines cannot split it.
                let _ = std::io::stdout().lock().write_all(line.as_bytes());
            }
            Sink::FacadeOnly => {}
        }
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

    /// The Prometheus text exposition (format 0.0.4) of everything recorded so far: the
    /// families in a fixed order, each with its `# HELP` and `# TYPE` even before its first
    /// sample, and the series sorted by route, method and status.
    #[cfg(feature = "prometheus")]
    pub fn render_prometheus(&self) -> String {
        let Sink::Prometheus(exporter) = &self.sink else {
            return String::new();
        };
        let pool = (self.pool)();
        let now = [
            (names::IN_FLIGHT, self.in_flight.load(Ordering::Relaxed)),
            (names::POOL_SIZE, i64::from(pool.size)),
            (names::POOL_IDLE, i64::from(pool.idle)),
            (
                names::OUTBOX_DEPTH,
                self.outbox_depth.load(Ordering::Relaxed),
            ),
        ];
        let totals = [
            (names::MAIL_SENT, self.mail_sent.load(Ordering::Relaxed)),
            (names::MAIL_FAILED, self.mail_failed.load(Ordering::Relaxed)),
        ];
        exporter.render(&now, &totals)
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

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The local server's sink: `metrics-exporter-prometheus`'s recorder, one per [`Metrics`].
#[cfg(feature = "prometheus")]
mod prometheus {
    use std::sync::atomic::{AtomicU32, Ordering};

    use metrics::{Key, Recorder};
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

    use super::{LATENCY_BUCKETS, METADATA, names};

    /// Histogram samples wait in the recorder until folded into their buckets (at a scrape,
    /// or here every this many requests), so an unscraped server holds at most this many.
    const FOLD_EVERY: u32 = 1024;

    /// Families in the order `/metrics` lists them, with their Prometheus type.
    const FAMILIES: [((&str, &str), &str); 8] = [
        (names::REQUESTS, "counter"),
        (names::DURATION, "histogram"),
        (names::IN_FLIGHT, "gauge"),
        (names::POOL_SIZE, "gauge"),
        (names::POOL_IDLE, "gauge"),
        (names::MAIL_SENT, "counter"),
        (names::MAIL_FAILED, "counter"),
        (names::OUTBOX_DEPTH, "gauge"),
    ];

    pub(super) struct Exporter {
        recorder: PrometheusRecorder,
        handle: PrometheusHandle,
        since_fold: AtomicU32,
    }

    impl Default for Exporter {
        fn default() -> Self {
            #[allow(clippy::expect_used)] // a fixed, non-empty list of bounds
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .expect("BUG: the latency buckets were refused")
                .build_recorder();
            let handle = recorder.handle();
            Self {
                recorder,
                handle,
                since_fold: AtomicU32::new(0),
            }
        }
    }

    impl Exporter {
        /// Lets `count` record a request into this sink's recorder.
        pub(super) fn record(&self, count: impl FnOnce(&dyn Recorder)) {
            count(&self.recorder);
            if self.since_fold.fetch_add(1, Ordering::Relaxed) + 1 >= FOLD_EVERY {
                self.since_fold.store(0, Ordering::Relaxed);
                self.handle.run_upkeep();
            }
        }

        /// Sets the values read at scrape time (`now`: gauges, `totals`: counters), then
        /// renders everything in [`FAMILIES`] order.
        pub(super) fn render(
            &self,
            now: &[((&'static str, &str), i64)],
            totals: &[((&'static str, &str), u64)],
        ) -> String {
            for ((name, _), value) in now {
                #[allow(clippy::cast_precision_loss)] // counts of connections and messages
                self.recorder
                    .register_gauge(&Key::from_static_name(name), &METADATA)
                    .set(*value as f64);
            }
            for ((name, _), value) in totals {
                self.recorder
                    .register_counter(&Key::from_static_name(name), &METADATA)
                    .absolute(*value);
            }
            in_order(&self.handle.render())
        }
    }

    /// The exporter's text (families and series in hash order, `# HELP` only where
    /// described) in a stable order: each family of [`FAMILIES`] with its help and type,
    /// then its series sorted by route, method and status. A histogram's lines of one series
    /// stay together, in bucket order.
    fn in_order(text: &str) -> String {
        let mut samples: Vec<_> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|(n, line)| {
                let name = &line[..line.find(['{', ' ']).unwrap_or(line.len())];
                let family = FAMILIES.iter().position(|((family, _), kind)| {
                    name.strip_prefix(family).is_some_and(|suffix| {
                        suffix.is_empty()
                            || (*kind == "histogram"
                                && matches!(suffix, "_bucket" | "_sum" | "_count"))
                    })
                })?;
                let order = ["route", "method", "status"].map(|label| label_value(line, label));
                Some(((family, order, n), line))
            })
            .collect();
        samples.sort_unstable_by_key(|(key, _)| *key);
        let mut out = String::with_capacity(text.len() + 1024);
        let mut samples = samples.into_iter().peekable();
        for (family, ((name, help), kind)) in FAMILIES.iter().enumerate() {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            while let Some((_, line)) = samples.next_if(|((f, ..), _)| *f == family) {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The value of `label` in a sample line (still escaped, with its closing quote), or ""
    /// without it. The labels are what lies between the first `{` and the last `}`, so a
    /// route template's braces stay in its value. Only for sorting: a value with a comma in
    /// it sorts by its first part.
    fn label_value<'a>(line: &'a str, label: &str) -> &'a str {
        line.split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map_or("", |(labels, _)| labels)
            .split(',')
            .find_map(|part| part.strip_prefix(label)?.strip_prefix("=\""))
            .unwrap_or("")
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
    fn series_are_listed_by_route_method_and_status_whatever_the_recording_order() {
        let metrics = Metrics::prometheus(pool);
        for (method, route, status) in [
            (Method::POST, "/v1/tasks", 201),
            (Method::GET, "/v1/tasks", 200),
            (Method::GET, "/health", 503),
            (Method::GET, "/health", 200),
            (Method::DELETE, "/v1/auth/sessions", 204),
        ] {
            metrics.record(sample(&method, route, status, 1));
        }
        let text = metrics.render_prometheus();
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_requests_total{"))
            .collect();
        assert_eq!(
            counts,
            [
                r#"http_requests_total{method="GET",route="/health",status="200"} 1"#,
                r#"http_requests_total{method="GET",route="/health",status="503"} 1"#,
                r#"http_requests_total{method="DELETE",route="/v1/auth/sessions",status="204"} 1"#,
                r#"http_requests_total{method="GET",route="/v1/tasks",status="200"} 1"#,
                r#"http_requests_total{method="POST",route="/v1/tasks",status="201"} 1"#,
            ],
            "{text}"
        );
        // A histogram's series stay whole: 13 buckets, +Inf, sum, count, by route then
        // method.
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_request_duration_seconds"))
            .map(|l| &l[l.find("method=").unwrap()..l.find('}').unwrap()])
            .map(|labels| labels.split(",le=").next().unwrap())
            .collect();
        assert_eq!(series.len(), 4 * 16);
        for (n, chunk) in series.chunks(16).enumerate() {
            assert!(chunk.iter().all(|l| *l == chunk[0]), "{text}");
            let expected = [
                r#"method="GET",route="/health""#,
                r#"method="DELETE",route="/v1/auth/sessions""#,
                r#"method="GET",route="/v1/tasks""#,
                r#"method="POST",route="/v1/tasks""#,
            ][n];
            assert_eq!(chunk[0], expected, "{text}");
        }
        // Every family has its help and type, samples or not.
        for (name, _) in [names::MAIL_SENT, names::OUTBOX_DEPTH, names::POOL_IDLE] {
            assert!(text.contains(&format!("# HELP {name} ")), "{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{text}");
        }
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
