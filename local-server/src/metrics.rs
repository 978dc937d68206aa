//! `/metrics`: each app's measurements ([`shared::metrics`]) also go to a
//! `metrics-exporter-prometheus` recorder of its own ([`Prometheus`]), so two apps in one
//! process never mix. The counting and the text format are the exporter's. It lists families
//! and series in hash order, and gives `# HELP` only to a family a recorder described: a
//! scraper does not care, but a person reading or diffing two scrapes does, so [`in_order`]
//! puts them in a stable order.

use std::sync::atomic::{AtomicU32, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use shared::{
    AppState,
    metrics::{Exporter, LATENCY_BUCKETS, names},
};

/// Has `state`'s measurements also counted for `/metrics` (once per app: later calls keep
/// the first recorder).
pub fn export(state: &AppState) {
    state.metrics.export_to(|| Box::new(Prometheus::new()));
}

/// An app's Prometheus recorder.
pub struct Prometheus {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    since_fold: AtomicU32,
}

/// Histogram samples wait in the recorder until folded into their buckets (at a scrape, or
/// here every this many requests), so an unscraped server holds at most this many.
const FOLD_EVERY: u32 = 1024;

impl Prometheus {
    pub fn new() -> Self {
        #[allow(clippy::expect_used)] // a fixed, non-empty list of bounds
        let recorder = PrometheusBuilder::new()
            .set_buckets(&LATENCY_BUCKETS)
            .expect("BUG: the latency buckets were refused")
            .build_recorder();
        // The series without labels are listed from the start, at zero.
        metrics::with_local_recorder(&recorder, || {
            for (name, _) in [names::IN_FLIGHT, names::OUTBOX_DEPTH] {
                let _ = metrics::gauge!(name);
            }
            for (name, _) in [names::MAIL_SENT, names::MAIL_FAILED] {
                let _ = metrics::counter!(name);
            }
        });
        let handle = recorder.handle();
        Self {
            recorder,
            handle,
            since_fold: AtomicU32::new(0),
        }
    }
}

impl Default for Prometheus {
    fn default() -> Self {
        Self::new()
    }
}

impl Exporter for Prometheus {
    fn recorder(&self) -> &dyn metrics::Recorder {
        &self.recorder
    }

    /// Folds the histograms every [`FOLD_EVERY`] requests.
    fn recorded(&self) {
        if self.since_fold.fetch_add(1, Ordering::Relaxed) + 1 >= FOLD_EVERY {
            self.since_fold.store(0, Ordering::Relaxed);
            self.handle.run_upkeep();
        }
    }

    fn render(&self) -> String {
        self.handle.render()
    }
}

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

/// The exporter's `text` in a stable order: each family of [`FAMILIES`] with its help and
/// type (also before its first sample), then its series sorted by route, method and status.
/// A histogram's lines of one series stay together, in bucket order.
pub fn in_order(text: &str) -> String {
    let mut samples: Vec<_> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|(n, line)| {
            let name = &line[..line.find(['{', ' ']).unwrap_or(line.len())];
            let family = FAMILIES.iter().position(|((family, _), kind)| {
                name.strip_prefix(family).is_some_and(|suffix| {
                    suffix.is_empty()
                        || (*kind == "histogram" && matches!(suffix, "_bucket" | "_sum" | "_count"))
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
/// without it. The labels are what lies between the first `{` and the last `}`, so a route
/// template's braces stay in its value. Only for sorting: a value with a comma in it sorts
/// by its first part.
fn label_value<'a>(line: &'a str, label: &str) -> &'a str {
    line.split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map_or("", |(labels, _)| labels)
        .split(',')
        .find_map(|part| part.strip_prefix(label)?.strip_prefix("=\""))
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::Method;
    use shared::{
        metrics::{Metrics, Sample},
        store::PoolStats,
    };

    use super::*;

    /// Measurements with a Prometheus recorder of their own, as the local server's.
    fn prometheus() -> Metrics {
        let metrics = Metrics::new(pool);
        metrics.export_to(|| Box::new(Prometheus::new()));
        metrics
    }

    fn scrape(metrics: &Metrics) -> String {
        metrics.render().unwrap()
    }

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
    fn series_are_listed_by_route_method_and_status_whatever_the_recording_order() {
        let metrics = prometheus();
        for (method, route, status) in [
            (Method::POST, "/v1/tasks", 201),
            (Method::GET, "/v1/tasks", 200),
            (Method::GET, "/health", 503),
            (Method::GET, "/health", 200),
            (Method::DELETE, "/v1/auth/sessions", 204),
        ] {
            metrics.record(sample(&method, route, status, 1));
        }
        let text = in_order(&scrape(&metrics));
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
    fn counts_are_kept_per_method_route_and_status() {
        let metrics = prometheus();
        let get = Method::GET;
        metrics.record(sample(&get, "/v1/tasks/{id}", 200, 2));
        metrics.record(sample(&get, "/v1/tasks/{id}", 200, 2));
        metrics.record(sample(&get, "/v1/tasks/{id}", 404, 2));
        metrics.record(sample(&Method::DELETE, "/v1/tasks/{id}", 204, 2));
        let text = scrape(&metrics);
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
        let metrics = prometheus();
        let get = Method::GET;
        for ms in [0, 3, 3, 40, 20_000] {
            metrics.record(sample(&get, "/health", 200, ms));
        }
        let text = scrape(&metrics);
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
        let metrics = prometheus();
        // Three times the fold interval, and a bit: the folds and the scrape both count.
        for n in 0..3_100_u64 {
            metrics.record(sample(&Method::GET, "/health", 200, n % 2 * 30));
        }
        let text = scrape(&metrics);
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
    fn a_fresh_scrape_lists_the_unlabelled_series_at_zero_and_mail_moves_them() {
        let metrics = prometheus();
        let text = scrape(&metrics);
        for line in [
            "http_requests_in_flight 0",
            "mail_sent_total 0",
            "mail_failed_total 0",
            "mail_outbox_depth 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
        metrics.record_mail(false, Some(2));
        metrics.record_mail(true, Some(1));
        metrics.record_mail(true, None);
        let text = scrape(&metrics);
        for line in [
            "mail_sent_total 2",
            "mail_failed_total 1",
            "mail_outbox_depth 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[test]
    fn an_exporter_given_late_starts_from_the_current_gauges() {
        let metrics = Metrics::new(pool);
        let busy = metrics.start();
        metrics.record_mail(false, Some(4));
        metrics.export_to(|| Box::new(Prometheus::new()));
        // The first exporter given wins.
        metrics.export_to(|| unreachable!("a second exporter is never made"));
        let text = scrape(&metrics);
        assert!(
            text.lines().any(|l| l == "http_requests_in_flight 1"),
            "{text}"
        );
        assert!(text.lines().any(|l| l == "mail_outbox_depth 4"), "{text}");
        drop(busy);
        assert!(
            scrape(&metrics)
                .lines()
                .any(|l| l == "http_requests_in_flight 0")
        );
    }

    #[test]
    fn in_flight_follows_the_guards() {
        let metrics = prometheus();
        let first = metrics.start();
        let second = metrics.start();
        assert!(scrape(&metrics).contains("\nhttp_requests_in_flight 2\n"));
        drop(first);
        drop(second);
        assert!(scrape(&metrics).contains("\nhttp_requests_in_flight 0\n"));
    }

    #[test]
    fn unknown_methods_and_odd_routes_cannot_grow_or_break_labels() {
        let metrics = prometheus();
        let odd = Method::from_bytes(b"BREW").unwrap();
        metrics.record(sample(&odd, "a\"b\\c", 405, 1));
        let text = scrape(&metrics);
        assert!(
            text.contains(r#"http_requests_total{method="OTHER",route="a\"b\\c",status="405"} 1"#),
            "{text}"
        );
    }
}
