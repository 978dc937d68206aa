//! `/metrics` in a stable order. The counting and the text format are
//! `metrics-exporter-prometheus`'s ([`shared::metrics`]); the exporter lists families and
//! series in hash order, and gives `# HELP` only to a family a recorder described. A scraper
//! does not care, but a person reading or diffing two scrapes does.

use shared::metrics::names;

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
        let text = in_order(&metrics.render_prometheus());
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
}
