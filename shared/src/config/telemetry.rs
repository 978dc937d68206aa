//! Logs: their format and filter. Traces: their exporter, propagators and sampler.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    ConfigError, Runtime,
    values::{Lookup, parse_num},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `LOG_FORMAT`, else Lambda's `AWS_LAMBDA_LOG_FORMAT`, else JSON under Lambda and pretty
/// text locally.
pub(super) fn parse_format(runtime: Runtime, get: &impl Lookup) -> Result<LogFormat, ConfigError> {
    let default = match runtime {
        Runtime::Lambda => LogFormat::Json,
        Runtime::LocalServer => LogFormat::Pretty,
    };
    match get("LOG_FORMAT").as_deref().map(str::trim) {
        None => match get("AWS_LAMBDA_LOG_FORMAT").as_deref() {
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(LogFormat::Json),
            _ => Ok(default),
        },
        Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::new(
            "LOG_FORMAT",
            format!("must be `pretty` or `json`, got `{other}`"),
        )),
    }
}

/// The log filter: `RUST_LOG`, else Lambda's `AWS_LAMBDA_LOG_LEVEL` (the template's
/// `LogLevel`), else `info`. `get` yields only non-empty values. Also for processes that log
/// before, or without, a whole [`Config`] (the `migrate` function).
pub fn log_filter(get: impl Fn(&str) -> Option<String>) -> String {
    get("RUST_LOG")
        .or_else(|| get("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|| "info".to_owned())
}

/// Traces: where they go, if anywhere, and how a request's trace context is read. From the
/// OpenTelemetry SDK's standard variables.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// `None` (no OTLP endpoint set): no exporter is built and no span is recorded.
    pub export: Option<OtlpExport>,
    /// `OTEL_PROPAGATORS`: which headers carry an incoming trace context.
    pub propagators: Vec<Propagator>,
    /// `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: Sampler,
    /// `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES` (which the SDK
    /// reads), else the Lambda function's name, else `task-api`.
    pub service_name: Option<String>,
    /// `OTEL_LAMBDA_FLUSH_TIMEOUT_MS` (default 50): how long, at most, a Lambda invocation
    /// waits after its answer for its spans to reach the collector before the answer goes.
    pub flush_timeout: Duration,
}

/// An OTLP/HTTP (protobuf) trace endpoint.
#[derive(Clone)]
pub struct OtlpExport {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `/v1/traces` appended, as the OTLP specification says. `http://` only.
    pub traces_url: String,
    /// `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS`: `key=value`
    /// pairs, comma-separated, values percent-decoded. They often carry an API key: secret.
    pub headers: Vec<(String, SecretString)>,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT` (ms, default
    /// 10 000): one export's bound.
    pub timeout: Duration,
}

impl std::fmt::Debug for OtlpExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("OtlpExport")
            .field("traces_url", &self.traces_url)
            .field("header_names", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// AWS `X-Amzn-Trace-Id`.
    Xray,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    AlwaysOn,
    AlwaysOff,
    TraceIdRatio(f64),
    ParentBasedAlwaysOn,
    ParentBasedAlwaysOff,
    ParentBasedTraceIdRatio(f64),
}

pub(super) fn parse_tracing(get: &impl Lookup) -> Result<TracingConfig, ConfigError> {
    check_sdk_settings(get)?;
    Ok(TracingConfig {
        export: parse_export(get)?,
        propagators: parse_propagators(get)?,
        sampler: parse_sampler(get)?,
        service_name: get("OTEL_SERVICE_NAME")
            .map(|s| s.trim().to_owned())
            .or_else(|| {
                // The SDK reads the rest of OTEL_RESOURCE_ATTRIBUTES itself.
                get("OTEL_RESOURCE_ATTRIBUTES")?
                    .split(',')
                    .find_map(|kv| kv.trim().strip_prefix("service.name="))
                    .map(|name| {
                        percent_encoding::percent_decode_str(name.trim())
                            .decode_utf8_lossy()
                            .into_owned()
                    })
            }),
        // The SDK's own flush gives up after 5 s.
        flush_timeout: Duration::from_millis(parse_num(
            get,
            "OTEL_LAMBDA_FLUSH_TIMEOUT_MS",
            50u64,
            1..=5_000,
        )?),
    })
}

/// What the OpenTelemetry SDK and exporter read from the environment themselves, checked
/// here so that a value they would misuse (a queue of a billion spans, a timer of zero, a
/// protocol or compression this build cannot speak) stops the process naming it.
fn check_sdk_settings(get: &impl Lookup) -> Result<(), ConfigError> {
    for (name, max) in [
        ("OTEL_BSP_SCHEDULE_DELAY", 600_000u64),
        ("OTEL_BSP_EXPORT_TIMEOUT", 600_000),
        ("OTEL_BSP_MAX_QUEUE_SIZE", 65_536),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 65_536),
    ] {
        parse_num(get, name, 1, 1..=max)?;
    }
    for name in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    ] {
        if get(name).is_some_and(|p| p.trim() != "http/protobuf") {
            return Err(ConfigError::new(
                name,
                "must be `http/protobuf`: the only protocol this build exports with",
            ));
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    ] {
        if get(name).is_some_and(|c| c.trim() != "none") {
            return Err(ConfigError::new(
                name,
                "must be `none`: this build does not compress exports",
            ));
        }
    }
    Ok(())
}

fn parse_export(get: &impl Lookup) -> Result<Option<OtlpExport>, ConfigError> {
    let (variable, url) = match (
        get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        get("OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim().to_owned()),
        (None, Some(base)) => (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{}/v1/traces", base.trim().trim_end_matches('/')),
        ),
        (None, None) => return Ok(None),
    };
    let uri: http::Uri = url
        .parse()
        .map_err(|_| ConfigError::new(variable, "must be an http:// URL"))?;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // A password in the URL would show wherever the URL does; headers carry credentials.
        return Err(ConfigError::new(
            variable,
            "must not hold credentials: send them in OTEL_EXPORTER_OTLP_HEADERS",
        ));
    }
    match uri.scheme_str() {
        Some("http") if uri.host().is_some() => {}
        Some("https") => {
            return Err(ConfigError::new(
                variable,
                "must be an http:// URL: this build exports without TLS; send to a collector \
                 beside the process (the OpenTelemetry Collector or ADOT Lambda layer listens \
                 on http://localhost:4318) and let it forward over TLS",
            ));
        }
        _ => return Err(ConfigError::new(variable, "must be an http:// URL")),
    }
    let (headers_variable, raw_headers) = match get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
        Some(h) => ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", Some(h)),
        None => (
            "OTEL_EXPORTER_OTLP_HEADERS",
            get("OTEL_EXPORTER_OTLP_HEADERS"),
        ),
    };
    let headers = match raw_headers {
        Some(raw) => parse_headers(&raw).ok_or_else(|| {
            ConfigError::new(
                headers_variable,
                "must be `key=value` pairs separated by commas, with header names for keys",
            )
        })?,
        None => Vec::new(),
    };
    let timeout_variable = if get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").is_some() {
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
    } else {
        "OTEL_EXPORTER_OTLP_TIMEOUT"
    };
    let timeout = parse_num(get, timeout_variable, 10_000u64, 1..=600_000)?;
    Ok(Some(OtlpExport {
        traces_url: url,
        headers,
        timeout: Duration::from_millis(timeout),
    }))
}

/// `key1=value1,key2=value2`, values percent-decoded (the OTLP exporter's format).
fn parse_headers(raw: &str) -> Option<Vec<(String, SecretString)>> {
    raw.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=')?;
            let key = key.trim();
            http::HeaderName::from_bytes(key.as_bytes()).ok()?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?;
            http::HeaderValue::from_str(&value).ok()?;
            Some((
                key.to_ascii_lowercase(),
                SecretString::from(value.into_owned()),
            ))
        })
        .collect()
}

fn parse_propagators(get: &impl Lookup) -> Result<Vec<Propagator>, ConfigError> {
    let Some(raw) = get("OTEL_PROPAGATORS") else {
        return Ok(vec![Propagator::TraceContext, Propagator::Baggage]);
    };
    let mut chosen = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let propagator = match name {
            "tracecontext" => Propagator::TraceContext,
            "baggage" => Propagator::Baggage,
            // AWS's name for X-Ray in Lambda: the same header, here always read per
            // invocation.
            "xray" | "xray-lambda" => Propagator::Xray,
            "none" => continue,
            other => {
                return Err(ConfigError::new(
                    "OTEL_PROPAGATORS",
                    format!("must list `tracecontext`, `baggage`, `xray` or `none`, got `{other}`"),
                ));
            }
        };
        if !chosen.contains(&propagator) {
            chosen.push(propagator);
        }
    }
    Ok(chosen)
}

fn parse_sampler(get: &impl Lookup) -> Result<Sampler, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match get("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(raw) => match raw.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    "must be a ratio from 0 to 1",
                )),
            },
        }
    };
    Ok(match get("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
        None | Some("parentbased_always_on") => Sampler::ParentBasedAlwaysOn,
        Some("parentbased_always_off") => Sampler::ParentBasedAlwaysOff,
        Some("parentbased_traceidratio") => Sampler::ParentBasedTraceIdRatio(ratio()?),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatio(ratio()?),
        Some(other) => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                format!(
                    "must be always_on, always_off, traceidratio, parentbased_always_on, \
                         parentbased_always_off or parentbased_traceidratio, got `{other}`"
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret as _;

    use super::*;

    fn tracing_of(vars: &[(&str, &str)]) -> Result<TracingConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_tracing(&|k: &str| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_means_no_export_w3c_propagation_and_parent_based_sampling() {
        let config = tracing_of(&[]).unwrap();
        assert!(config.export.is_none());
        assert_eq!(
            config.propagators,
            [Propagator::TraceContext, Propagator::Baggage]
        );
        assert_eq!(config.sampler, Sampler::ParentBasedAlwaysOn);
        assert_eq!(config.flush_timeout, Duration::from_millis(50));
        assert_eq!(config.service_name, None);
    }

    #[test]
    fn the_endpoint_gains_the_traces_path_and_the_traces_endpoint_is_taken_as_is() {
        let base =
            tracing_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318/")]).unwrap();
        assert_eq!(
            base.export.unwrap().traces_url,
            "http://localhost:4318/v1/traces"
        );
        let full = tracing_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://collector:9999/custom",
            ),
        ])
        .unwrap();
        let export = full.export.unwrap();
        assert_eq!(export.traces_url, "http://collector:9999/custom");
        assert_eq!(export.timeout, Duration::from_secs(10));
    }

    #[test]
    fn headers_are_decoded_kept_secret_and_never_in_debug_output() {
        let config = tracing_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=s3cr%3Dt,X-Team = blue",
            ),
        ])
        .unwrap();
        let export = config.export.unwrap();
        let headers: Vec<(&str, &str)> = export
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        assert_eq!(headers, [("x-api-key", "s3cr=t"), ("x-team", "blue")]);
        let shown = format!("{export:?}");
        assert!(
            !shown.contains("s3cr") && shown.contains("x-api-key"),
            "{shown}"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (vars, variable) in [
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "localhost:4318")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "a=b,broken"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "bad header=x"),
                ],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                vec![
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-1"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            ),
            (vec![("OTEL_PROPAGATORS", "b3")], "OTEL_PROPAGATORS"),
            (
                vec![(
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "http://user:pw@collector:4318",
                )],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (vec![("OTEL_TRACES_SAMPLER", "xray")], "OTEL_TRACES_SAMPLER"),
            (
                vec![
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (
                vec![("OTEL_LAMBDA_FLUSH_TIMEOUT_MS", "5001")],
                "OTEL_LAMBDA_FLUSH_TIMEOUT_MS",
            ),
            (
                vec![("OTEL_BSP_SCHEDULE_DELAY", "0")],
                "OTEL_BSP_SCHEDULE_DELAY",
            ),
            (
                vec![("OTEL_BSP_MAX_QUEUE_SIZE", "4000000000")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")],
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            ),
        ] {
            let err = tracing_of(&vars).expect_err(&format!("{vars:?} was accepted"));
            assert_eq!(err.variable, variable, "{vars:?}");
        }
    }

    #[test]
    fn samplers_propagators_and_the_service_name_are_read() {
        let config = tracing_of(&[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_PROPAGATORS", "xray, tracecontext,xray"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,service.name=task%20api",
            ),
        ])
        .unwrap();
        assert_eq!(config.sampler, Sampler::ParentBasedTraceIdRatio(0.25));
        assert_eq!(
            config.propagators,
            [Propagator::Xray, Propagator::TraceContext]
        );
        assert_eq!(config.service_name.as_deref(), Some("task api"));
        let named = tracing_of(&[
            ("OTEL_SERVICE_NAME", "tasks-eu"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=api"),
        ])
        .unwrap();
        assert_eq!(named.service_name.as_deref(), Some("tasks-eu"));
        assert!(
            tracing_of(&[("OTEL_PROPAGATORS", "none")])
                .unwrap()
                .propagators
                .is_empty()
        );
    }
}
