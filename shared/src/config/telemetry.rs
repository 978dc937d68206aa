//! Logs: their format and filter.

use super::{ConfigError, Runtime, values::Lookup};

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
