//! Tracing set-up: human-readable lines locally, one JSON object per line under Lambda or
//! with `LOG_FORMAT=json`. Call once per process.

mod json;

use tracing_subscriber::{filter::Targets, fmt, prelude::*};

pub use json::{JsonFields, JsonLines};

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. A second call (tests) is a no-op.
pub fn init(config: &Config) {
    init_with(config.log_format, &config.log_filter);
}

pub fn init_with(format: LogFormat, filter: &str) {
    // `Targets` reads what RUST_LOG is used for here (`warn`, `info,sqlx=warn`,
    // `shared::http=debug`) without linking a regex engine, as `EnvFilter` would.
    let filter = parse_filter(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt::layer().fmt_fields(JsonFields).event_format(JsonLines))
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout())),
            )
            .try_init(),
    };
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
