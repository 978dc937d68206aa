//! One JSON object per log line, written straight into the line buffer.
//!
//! tracing-subscriber's own JSON format keeps each span's fields as a JSON document and, on
//! every event and every `Span::record`, parses it back into a map to write it out again.
//! The access log records three fields and logs once per request, so that round trip was
//! most of the cost of a request to `/health` (`bench/profile`). Here a span's fields are
//! kept as a ready-made fragment (`"k":v,"k2":v2`): recording a field appends to it, and an
//! event copies it.
//!
//! Records of the `log` crate (through tracing-log) are written under their own target,
//! without the `log.*` bookkeeping fields, as tracing-subscriber writes them.
//!
//! A line: `{"timestamp":…,"level":…,<event fields>,"target":…,"span":{<fields>,"name":…}}`,
//! with `span` the innermost span, as `fmt::layer().json().flatten_event(true)
//! .with_current_span(true)` writes it. A line inside a request that is part of a trace also
//! carries `trace_id`, `span_id` and, under Lambda, `xray_trace_id` ([`LogTrace`]), so logs
//! and traces join.

use std::fmt::{self, Write as _};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::{
    field::RecordFields,
    fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, format::Writer},
    registry::LookupSpan,
};

/// The trace a request's log lines belong to: kept on its span (an extension) by the HTTP
/// stack, written by [`JsonLines`] on every line inside it.
#[derive(Debug, Clone, Default)]
pub struct LogTrace {
    /// 32 hex digits.
    pub trace_id: Option<String>,
    /// 16 hex digits: the request's server span, when traces are exported.
    pub span_id: Option<String>,
    /// The invocation's X-Ray trace header root, `1-5759e988-bd862e3fe1be46a994272793`.
    pub xray_trace_id: Option<String>,
}

impl LogTrace {
    /// Keeps `self` on `span`, for the lines logged inside it.
    pub fn attach(self, span: &tracing::Span) {
        span.with_subscriber(|(id, dispatch)| {
            if let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>()
                && let Some(span) = registry.span(id)
            {
                span.extensions_mut().insert(self);
            }
        });
    }
}

/// Span fields as a JSON object's members, without the braces.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonFields;

/// The event format; use it with [`JsonFields`].
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut members = Members::new(&mut writer, true);
        fields.record(&mut members);
        members.result
    }

    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut members = Members::new(&mut current.fields, first);
        fields.record(&mut members);
        members.result
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        let now = OffsetDateTime::now_utc();
        match now.format(&Rfc3339) {
            Ok(stamp) => writer.write_str(&stamp)?,
            Err(_) => write!(writer, "{}", now.unix_timestamp())?,
        }
        write!(writer, "\",\"level\":\"{}\"", meta.level())?;
        if let Some(span) = ctx.lookup_current() {
            for span in span.scope() {
                let extensions = span.extensions();
                let Some(trace) = extensions.get::<LogTrace>() else {
                    continue;
                };
                for (name, value) in [
                    ("trace_id", &trace.trace_id),
                    ("span_id", &trace.span_id),
                    ("xray_trace_id", &trace.xray_trace_id),
                ] {
                    if let Some(value) = value {
                        write!(writer, ",\"{name}\":")?;
                        string(&mut writer, value)?;
                    }
                }
                break;
            }
        }
        let mut members = Members::new(&mut writer, false);
        members.skip_log_fields = normalized.is_some();
        event.record(&mut members);
        members.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        if let Some(span) = ctx.lookup_current() {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            let fields = extensions
                .get::<FormattedFields<JsonFields>>()
                .map_or("", |f| f.fields.as_str());
            if !fields.is_empty() {
                writer.write_str(fields)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes visited fields as `"name":value` members, comma-separated.
struct Members<'a, W: fmt::Write> {
    out: &'a mut W,
    first: bool,
    /// The event came from the `log` crate: its `log.*` fields are already in the metadata.
    skip_log_fields: bool,
    result: fmt::Result,
}

impl<'a, W: fmt::Write> Members<'a, W> {
    fn new(out: &'a mut W, first: bool) -> Self {
        Self {
            out,
            first,
            skip_log_fields: false,
            result: Ok(()),
        }
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_err() || (self.skip_log_fields && field.name().starts_with("log.")) {
            return;
        }
        self.result = (|| {
            if !std::mem::take(&mut self.first) {
                self.out.write_char(',')?;
            }
            string(self.out, field.name())?;
            self.out.write_char(':')?;
            value(self.out)
        })();
    }
}

impl<W: fmt::Write> Visit for Members<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |out| string(out, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.member(field, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value}")?;
            out.write_char('"')
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.member(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |out| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity. Rust's `Display` for f64 never uses an exponent.
        self.member(field, |out| {
            if value.is_finite() {
                write!(out, "{value}")
            } else {
                out.write_str("null")
            }
        });
    }
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped.
fn string(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// Escapes what is written through it for use inside a JSON string.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean = 0;
        for (i, byte) in s.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x00..=0x1f | 0x7f => "",
                _ => continue,
            };
            self.0.write_str(&s[clean..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            clean = i + 1;
        }
        self.0.write_str(&s[clean..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::{fmt, prelude::*};

    use super::*;

    /// Runs `work` under the JSON format and returns the lines it logged, parsed.
    fn lines(work: impl FnOnce()) -> Vec<Value> {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            fmt::layer()
                .fmt_fields(JsonFields)
                .event_format(JsonLines)
                .with_writer(move || writer.clone()),
        );
        tracing::subscriber::with_default(subscriber, work);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn events_carry_their_fields_and_the_current_span() {
        let logged = lines(|| {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                route = "/v1/tasks",
                status = tracing::field::Empty,
                user_id = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("status", 201_u16);
            span.record("user_id", tracing::field::display("u-1"));
            tracing::info!(
                latency_ms = 1.5,
                ok = true,
                count = -3_i64,
                "request completed"
            );
        });
        assert_eq!(logged.len(), 1);
        let line = &logged[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request completed");
        assert_eq!(line["latency_ms"], 1.5);
        assert_eq!(line["ok"], true);
        assert_eq!(line["count"], -3);
        assert_eq!(line["target"], module_path!());
        assert_eq!(
            line["span"],
            json!({"request_id": "r-1", "route": "/v1/tasks", "status": 201, "user_id": "u-1",
                   "name": "request"})
        );
        let stamp = line["timestamp"].as_str().unwrap();
        assert!(OffsetDateTime::parse(stamp, &Rfc3339).is_ok(), "{stamp}");
    }

    #[test]
    fn strings_are_escaped_and_odd_numbers_stay_valid_json() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é ✓";
        let logged = lines(|| {
            tracing::warn!(nasty, debug = ?nasty, nan = f64::NAN, big = u64::MAX, "{nasty}");
        });
        let line = &logged[0];
        assert_eq!(line["nasty"], nasty);
        assert_eq!(line["message"], nasty);
        assert_eq!(line["debug"], format!("{nasty:?}"));
        assert_eq!(line["nan"], Value::Null);
        assert_eq!(line["big"], u64::MAX);
        assert!(line.get("span").is_none(), "no span was entered: {line}");
    }

    #[test]
    fn a_span_without_fields_still_names_itself() {
        let logged = lines(|| {
            let _entered = tracing::info_span!("work").entered();
            tracing::error!("failed");
        });
        assert_eq!(logged[0]["span"], json!({"name": "work"}));
        assert_eq!(logged[0]["level"], "ERROR");
    }

    #[test]
    fn log_crate_records_keep_their_target_and_drop_the_bookkeeping() {
        let logged = lines(|| {
            let record = log::Record::builder()
                .target("sqlx::query")
                .level(log::Level::Warn)
                .args(format_args!("slow statement"))
                .module_path(Some("sqlx_core::logger"))
                .file(Some("logger.rs"))
                .line(Some(7))
                .build();
            tracing_log::format_trace(&record).unwrap();
        });
        let line = &logged[0];
        assert_eq!(line["target"], "sqlx::query", "{line}");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "slow statement");
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|k| !k.starts_with("log.")), "{line}");
    }
}
