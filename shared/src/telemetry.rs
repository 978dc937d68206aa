//! Tracing set-up: logs as human-readable lines locally, one JSON object per line under
//! Lambda or with `LOG_FORMAT=json`; traces over OTLP when an endpoint is configured
//! ([`otel`]). Call once per process.

mod json;
pub mod otel;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::{Layer as _, filter::Targets, fmt, prelude::*};

pub use json::{JsonFields, JsonLines, LogTrace};

use crate::config::{Config, LogFormat, Runtime};

/// Installs the global subscriber, and the trace exporter when one is configured. A second
/// call (tests) is a no-op. Call inside the tokio runtime.
pub fn init(config: &Config) {
    let service = match config.runtime {
        Runtime::Lambda => config.function_name.as_deref().unwrap_or("task-api"),
        Runtime::LocalServer => "task-api",
    };
    let tracer = otel::install(&config.tracing, config.runtime, service);
    install(config.log_format, &config.log_filter, tracer);
}

/// Logs only (no traces), for a process without a whole [`Config`] (the `migrate` function).
pub fn init_with(format: LogFormat, filter: &str) {
    install(format, filter, None);
}

fn install(format: LogFormat, filter: &str, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) {
    // `Targets` reads what RUST_LOG is used for here (`warn`, `info,sqlx=warn`,
    // `shared::http=debug`) without linking a regex engine, as `EnvFilter` would. Spans meant
    // for traces are never logs.
    let filter = parse_filter(filter).with_target(otel::SPAN, LevelFilter::OFF);
    let Some(tracer) = tracer else {
        // No traces: one global filter, as cheap as it gets, and every trace span is off at
        // its call site.
        let registry = tracing_subscriber::registry().with(filter);
        let _ = match format {
            LogFormat::Json => registry.with(json_layer()).try_init(),
            LogFormat::Pretty => registry.with(pretty_layer()).try_init(),
        };
        return;
    };
    // Traces: each layer filters for itself, so RUST_LOG never silences a trace, and the
    // trace layer sees only the trace spans.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        // Nothing here reads OpenTelemetry's current context (the spans' parents come from
        // `tracing`, and `OpenTelemetrySpanExt::context` reads the span itself), so entering a
        // span, at every poll of an instrumented future, need not attach one.
        .with_context_activation(false)
        .with_filter(Targets::new().with_target(otel::SPAN, LevelFilter::INFO));
    let registry = tracing_subscriber::registry().with(traces);
    let _ = match format {
        LogFormat::Json => registry.with(json_layer().with_filter(filter)).try_init(),
        LogFormat::Pretty => registry.with(pretty_layer().with_filter(filter)).try_init(),
    };
}

fn json_layer<S>() -> fmt::Layer<S, JsonFields, JsonLines>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer().fmt_fields(JsonFields).event_format(JsonLines)
}

fn pretty_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fmt::layer()
        .compact()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
}

/// A `RUST_LOG`-style filter: a default level and `target=level` overrides. Unreadable input
/// falls back to `info` rather than silencing the process.
pub fn parse_filter(filter: &str) -> Targets {
    filter
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::{Level, level_filters::LevelFilter};

    use super::parse_filter;

    #[test]
    fn filters_read_levels_and_per_target_overrides() {
        let f = parse_filter("warn,shared::http=debug");
        assert!(f.would_enable("shared::http", &Level::DEBUG));
        assert!(!f.would_enable("shared::http", &Level::TRACE));
        assert!(!f.would_enable("sqlx::query", &Level::INFO));
        assert!(f.would_enable("sqlx::query", &Level::WARN));
        assert_eq!(parse_filter("off").default_level(), Some(LevelFilter::OFF));
    }

    #[test]
    fn an_unreadable_filter_means_info() {
        let f = parse_filter("info,sqlx=loud");
        assert!(f.would_enable("anything", &Level::INFO));
        assert!(!f.would_enable("anything", &Level::DEBUG));
    }
}
