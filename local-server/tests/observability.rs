//! Metrics of the local server, through the real app (all four routers, the whole stack)
//! and the private metrics app that serves `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{body::Body, http::Method};
use serde_json::json;
use shared::{
    backend_tests,
    models::Role,
    testing::{Backend, TestApp, TestResponse, request, send},
};

/// A scrape, on the metrics listener's app (the API's port has no `/metrics`).
async fn scrape(app: &TestApp) -> TestResponse {
    let metrics = local_server::metrics_app(app.state.clone());
    send(
        &metrics,
        request(Method::GET, "/metrics")
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn metrics_show_exact_counts_per_route_template(backend: Backend) {
    let app = TestApp::start(backend, local_server::routes).await;
    let user = app.create_user("metrics@example.com", Role::User).await;

    // The script: 2 probes, 2 creates, 3 reads of two different ids, one missing task,
    // one unknown route, one wrong method.
    for _ in 0..2 {
        assert_eq!(app.get("/health").await.status, 200);
    }
    let mut ids = Vec::new();
    for title in ["one", "two"] {
        let created = app
            .post("/v1/tasks")
            .bearer(&user.token)
            .json(json!({"title": title}))
            .await;
        assert_eq!(created.status, 201);
        ids.push(created.json()["id"].as_str().unwrap().to_owned());
    }
    for id in [&ids[0], &ids[1], &ids[0]] {
        let r = app
            .get(&format!("/v1/tasks/{id}"))
            .bearer(&user.token)
            .await;
        assert_eq!(r.status, 200);
    }
    let missing = uuid::Uuid::now_v7();
    let r = app
        .get(&format!("/v1/tasks/{missing}"))
        .bearer(&user.token)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(app.get("/no/such/route").await.status, 404);
    let r = app.put("/health").json(json!({})).await;
    assert_eq!(r.status, 405);

    let metrics = scrape(&app).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        metrics.header("content-type")
    );
    let text = String::from_utf8(metrics.body.to_vec()).unwrap();
    let counts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect();
    assert_eq!(
        counts,
        [
            r#"http_requests_total{method="GET",route="/health",status="200"} 2"#,
            r#"http_requests_total{method="PUT",route="/health",status="405"} 1"#,
            r#"http_requests_total{method="POST",route="/v1/tasks",status="201"} 2"#,
            r#"http_requests_total{method="GET",route="/v1/tasks/{id}",status="200"} 3"#,
            r#"http_requests_total{method="GET",route="/v1/tasks/{id}",status="404"} 1"#,
            r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        ],
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{method="GET",route="/v1/tasks/{id}"} 4"#
        ),
        "{text}"
    );
    // The /metrics request itself is in flight while it renders.
    assert!(
        text.lines().any(|l| l == "http_requests_in_flight 1"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("db_pool_size ")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("db_pool_idle ")),
        "{text}"
    );
    // Ids and raw paths never become label values.
    for id in ids
        .iter()
        .map(String::as_str)
        .chain([missing.to_string().as_str()])
    {
        assert!(!text.contains(id), "{id} leaked into\n{text}");
    }
    assert!(!text.contains("/no/such/route"));

    // And the scrape itself is counted afterwards.
    let again = String::from_utf8(scrape(&app).await.body.to_vec()).unwrap();
    assert!(again.contains(r#"http_requests_total{method="GET",route="/metrics",status="200"} 1"#));
}

async fn the_api_port_answers_metrics_with_the_404_problem(backend: Backend) {
    let app = TestApp::start(backend, local_server::routes).await;
    let public = app.get("/metrics").await;
    let body = public.assert_problem(404, "not_found");
    assert!(
        !String::from_utf8_lossy(&public.body).contains("http_requests_total"),
        "{body}"
    );
}

/// A recorder of the kind an operator installs through the `metrics` facade (an OTLP or
/// StatsD exporter would do the same): it keeps every series it is handed.
#[derive(Default)]
struct Seen {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<Samples>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

#[derive(Default)]
struct Samples(Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

/// `name{label=value,…}`, labels in the order given.
fn series(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl metrics::Recorder for Seen {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut counters = self.counters.lock().unwrap();
        metrics::Counter::from_arc(counters.entry(series(key)).or_default().clone())
    }

    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let mut gauges = self.gauges.lock().unwrap();
        metrics::Gauge::from_arc(gauges.entry(series(key)).or_default().clone())
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let mut histograms = self.histograms.lock().unwrap();
        metrics::Histogram::from_arc(histograms.entry(series(key)).or_default().clone())
    }
}

// One thread, so the recorder installed for this thread sees everything the stack records.
#[tokio::test(flavor = "current_thread")]
async fn a_recorder_installed_through_the_metrics_facade_receives_the_request_metrics() {
    let seen = Seen::default();
    let _installed = metrics::set_default_local_recorder(&seen);
    let app = TestApp::start(Backend::Sqlite, local_server::routes).await;
    let user = app.create_user("facade@example.com", Role::User).await;
    let created = app
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(json!({"title": "seen"}))
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(
            app.get(&format!("/v1/tasks/{id}"))
                .bearer(&user.token)
                .await
                .status,
            200
        );
    }
    assert_eq!(app.get("/nowhere").await.status, 404);

    let counters = seen.counters.lock().unwrap();
    let count = |series: &str| counters.get(series).map(|c| c.load(Ordering::Relaxed));
    // The same names and labels as `/metrics`: route templates, never raw paths.
    assert_eq!(
        count("http_requests_total{method=POST,route=/v1/tasks,status=201}"),
        Some(1)
    );
    assert_eq!(
        count("http_requests_total{method=GET,route=/v1/tasks/{id},status=200}"),
        Some(2)
    );
    assert_eq!(
        count("http_requests_total{method=GET,route=unmatched,status=404}"),
        Some(1)
    );
    assert!(
        counters.keys().all(|k| !k.contains(&id)),
        "{counters:?}",
        counters = counters.keys()
    );
    drop(counters);

    let histograms = seen.histograms.lock().unwrap();
    let latencies = histograms["http_request_duration_seconds{method=GET,route=/v1/tasks/{id}}"]
        .0
        .lock()
        .unwrap()
        .clone();
    assert_eq!(latencies.len(), 2);
    assert!(
        latencies.iter().all(|s| *s > 0.0 && *s < 10.0),
        "{latencies:?}"
    );
    drop(histograms);

    // Nothing is in flight any more; the pool gauges are there.
    let gauges = seen.gauges.lock().unwrap();
    let gauge = |name: &str| {
        gauges
            .get(name)
            .map(|g| f64::from_bits(g.load(Ordering::Relaxed)))
    };
    assert_eq!(gauge("http_requests_in_flight{}"), Some(0.0));
    assert!(gauge("db_pool_size{}").is_some_and(|size| size >= 1.0));
}

backend_tests!(
    metrics_show_exact_counts_per_route_template,
    the_api_port_answers_metrics_with_the_404_problem,
);
