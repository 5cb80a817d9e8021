//! The local line formats: JSON lines, compact text and pretty text.
//!
//! Every format writes one event as exactly one line: control characters
//! and newlines inside messages and fields are escaped. Formatting writes
//! straight into a reused byte buffer; nothing is allocated per event.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};

use crate::config::LogFormat;
use crate::timestamp::write_rfc3339;

/// Keys the JSON format writes itself; an event field with one of these
/// names is written as `fields.<name>` instead of clobbering it.
const RESERVED: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "span",
    "trace_id",
    "span_id",
];

/// What the line needs to know about the enclosing span and trace.
#[derive(Debug, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) span_name: Option<&'a str>,
    /// Pre-rendered fields of the span and its ancestors, in the line's format.
    pub(crate) span_fields: &'a str,
    pub(crate) trace_id: Option<[u8; 16]>,
    pub(crate) span_id: Option<[u8; 8]>,
}

/// Event header data, already normalised (log records carry their own).
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub(crate) time: SystemTime,
    pub(crate) level: &'a tracing::Level,
    pub(crate) target: &'a str,
}

/// Writes events of one format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineFormat {
    pub(crate) format: LogFormat,
    pub(crate) ansi: bool,
}

impl LineFormat {
    /// Formats one event line (with the trailing newline) into `out`.
    /// `scratch` is a second reused buffer for fields seen before the message.
    pub(crate) fn write_event(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        header: &Header<'_>,
        record: &dyn Fn(&mut dyn Visit),
        scope: &Scope<'_>,
    ) {
        match self.format {
            LogFormat::Json => write_json(out, scratch, header, record, scope),
            LogFormat::Compact | LogFormat::Pretty => {
                write_text(out, scratch, header, record, scope, self.ansi, self.format)
            }
            LogFormat::None => {}
        }
    }

    /// Renders fields for a span's stored fragment (appended to `out`).
    pub(crate) fn write_span_fields(&self, out: &mut String, record: &dyn Fn(&mut dyn Visit)) {
        let mut buf = std::mem::take(out).into_bytes();
        match self.format {
            LogFormat::Json => record(&mut JsonFields {
                out: &mut buf,
                skip_message: false,
                message: None,
                span_mode: true,
            }),
            _ => record(&mut TextFields {
                out: &mut buf,
                message: None,
                span_mode: true,
            }),
        }
        *out = String::from_utf8(buf).unwrap_or_default();
    }
}

fn write_json(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    header: &Header<'_>,
    record: &dyn Fn(&mut dyn Visit),
    scope: &Scope<'_>,
) {
    out.extend_from_slice(b"{\"timestamp\":\"");
    write_rfc3339(out, header.time);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(header.level.as_str().as_bytes());
    out.extend_from_slice(b"\",\"target\":");
    json_str(out, header.target);

    scratch.clear();
    let mut message = Vec::new();
    std::mem::swap(&mut message, out);
    {
        let mut v = JsonFields {
            out: scratch,
            skip_message: true,
            message: Some(&mut message),
            span_mode: false,
        };
        record(&mut v);
    }
    std::mem::swap(&mut message, out);
    // `out` now holds the header and, if there was one, `,"message":"..."`.
    if !scratch.is_empty() {
        out.push(b',');
        out.extend_from_slice(scratch);
    }
    if let Some(name) = scope.span_name {
        out.extend_from_slice(b",\"span\":{\"name\":");
        json_str(out, name);
        if !scope.span_fields.is_empty() {
            out.push(b',');
            out.extend_from_slice(scope.span_fields.as_bytes());
        }
        out.push(b'}');
    }
    if let (Some(t), Some(s)) = (scope.trace_id, scope.span_id) {
        out.extend_from_slice(b",\"trace_id\":\"");
        hex(out, &t);
        out.extend_from_slice(b"\",\"span_id\":\"");
        hex(out, &s);
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

fn write_text(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    header: &Header<'_>,
    record: &dyn Fn(&mut dyn Visit),
    scope: &Scope<'_>,
    ansi: bool,
    format: LogFormat,
) {
    let paint = |out: &mut Vec<u8>, code: &str| {
        if ansi {
            out.extend_from_slice(b"\x1b[");
            out.extend_from_slice(code.as_bytes());
            out.push(b'm');
        }
    };
    paint(out, "2");
    write_rfc3339(out, header.time);
    paint(out, "0");
    out.push(b' ');
    let (level, color) = match *header.level {
        tracing::Level::ERROR => ("ERROR", "31"),
        tracing::Level::WARN => (" WARN", "33"),
        tracing::Level::INFO => (" INFO", "32"),
        tracing::Level::DEBUG => ("DEBUG", "34"),
        tracing::Level::TRACE => ("TRACE", "35"),
    };
    paint(out, color);
    out.extend_from_slice(level.as_bytes());
    paint(out, "0");
    out.push(b' ');
    paint(out, "2");
    text_escaped(out, header.target);
    out.push(b':');
    paint(out, "0");

    scratch.clear();
    let mut message = Vec::new();
    {
        let mut v = TextFields {
            out: scratch,
            message: Some(&mut message),
            span_mode: false,
        };
        record(&mut v);
    }
    if !message.is_empty() {
        out.push(b' ');
        out.extend_from_slice(&message);
    }
    if !scratch.is_empty() {
        paint(out, "3");
        out.extend_from_slice(scratch);
        paint(out, "0");
    }
    let pretty = format == LogFormat::Pretty;
    if let Some(name) = scope.span_name {
        if pretty {
            out.extend_from_slice(b"\n    ");
            paint(out, "2");
            out.extend_from_slice(b"in ");
        } else {
            out.extend_from_slice(b" span=");
        }
        text_escaped(out, name);
        if !scope.span_fields.is_empty() {
            out.push(b'{');
            out.extend_from_slice(scope.span_fields.trim_start().as_bytes());
            out.push(b'}');
        }
    }
    if let (Some(t), Some(s)) = (scope.trace_id, scope.span_id) {
        out.extend_from_slice(b" trace_id=");
        hex(out, &t);
        out.extend_from_slice(b" span_id=");
        hex(out, &s);
    }
    if pretty && scope.span_name.is_some() {
        paint(out, "0");
    }
    out.push(b'\n');
}

/// Lowercase hex, as the W3C trace context spells ids.
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xf) as usize]);
    }
}

/// Appends `s` as a JSON string literal.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_escaped(out, s);
    out.push(b'"');
}

fn json_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                hex(out, &[b]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `s` with control characters escaped, for the text formats.
fn text_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\x");
                hex(out, &[b]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `fmt::Write` into a byte buffer, escaping as JSON string content.
struct JsonEscape<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        json_escaped(self.0, s);
        Ok(())
    }
}

/// `fmt::Write` into a byte buffer, escaping control characters.
struct TextEscape<'a>(&'a mut Vec<u8>);

impl fmt::Write for TextEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        text_escaped(self.0, s);
        Ok(())
    }
}

fn is_log_metadata(name: &str) -> bool {
    // tracing-log carries a `log` record's metadata in these fields; the
    // header already shows it.
    name.starts_with("log.")
        && matches!(
            name,
            "log.target" | "log.module_path" | "log.file" | "log.line"
        )
}

fn skip_in_span(name: &str) -> bool {
    // tracing-opentelemetry's control fields are not data.
    name.starts_with("otel.")
}

struct JsonFields<'a, 'm> {
    out: &'a mut Vec<u8>,
    skip_message: bool,
    /// When set, the message goes here as `,"message":"..."`.
    message: Option<&'m mut Vec<u8>>,
    span_mode: bool,
}

impl JsonFields<'_, '_> {
    /// Writes `"key":` (with a separating comma), or returns false to skip.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if is_log_metadata(name) || (self.span_mode && skip_in_span(name)) {
            return false;
        }
        if !self.out.is_empty() {
            self.out.push(b',');
        }
        if RESERVED.contains(&name) {
            self.out.extend_from_slice(b"\"fields.");
            json_escaped(self.out, name);
            self.out.push(b'"');
        } else {
            json_str(self.out, name);
        }
        self.out.push(b':');
        true
    }

    fn message_target(&mut self, field: &Field) -> Option<&mut Vec<u8>> {
        if field.name() == "message" && self.skip_message {
            self.message.as_deref_mut()
        } else {
            None
        }
    }
}

impl Visit for JsonFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(m) = self.message_target(field) {
            m.extend_from_slice(b",\"message\":");
            json_str(m, value);
            return;
        }
        if self.key(field) {
            json_str(self.out, value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if let Some(m) = self.message_target(field) {
            m.extend_from_slice(b",\"message\":\"");
            let _ = write!(JsonEscape(m), "{value:?}");
            m.push(b'"');
            return;
        }
        if self.key(field) {
            self.out.push(b'"');
            let _ = write!(JsonEscape(self.out), "{value:?}");
            self.out.push(b'"');
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            self.out.push(b'"');
            let _ = write!(JsonEscape(self.out), "{value}");
            self.out.push(b'"');
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.key(field) {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.key(field) {
            self.out
                .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                self.out
                    .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
            } else {
                // NaN and infinities are not JSON numbers: a string.
                self.out.push(b'"');
                let _ = write!(JsonEscape(self.out), "{value}");
                self.out.push(b'"');
            }
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.out
                .extend_from_slice(if value { b"true" } else { b"false" });
        }
    }
}

struct TextFields<'a, 'm> {
    out: &'a mut Vec<u8>,
    message: Option<&'m mut Vec<u8>>,
    span_mode: bool,
}

impl TextFields<'_, '_> {
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if is_log_metadata(name) || (self.span_mode && skip_in_span(name)) {
            return false;
        }
        self.out.push(b' ');
        text_escaped(self.out, name);
        self.out.push(b'=');
        true
    }

    fn quoted(&mut self, value: &str) {
        let needs_quotes = value.is_empty()
            || value
                .bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'=' || b == 0x7f);
        if needs_quotes {
            self.out.push(b'"');
            for part in value.split('"') {
                text_escaped(self.out, part);
                self.out.extend_from_slice(b"\\\"");
            }
            self.out.truncate(self.out.len() - 2);
            self.out.push(b'"');
        } else {
            text_escaped(self.out, value);
        }
    }
}

impl Visit for TextFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message"
            && let Some(m) = self.message.as_deref_mut()
        {
            text_escaped(m, value);
            return;
        }
        if self.key(field) {
            self.quoted(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message"
            && let Some(m) = self.message.as_deref_mut()
        {
            let _ = write!(TextEscape(m), "{value:?}");
            return;
        }
        if self.key(field) {
            let _ = write!(TextEscape(self.out), "{value:?}");
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            let s = value.to_string();
            self.quoted(&s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_keeps_one_line() {
        let mut out = Vec::new();
        json_str(&mut out, "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\re\tf\u0001g\u007fh é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\re\tf\u{1}g\u{7f}h é");
    }

    /// Found by the `json_line` fuzz target: a NaN field came out as
    /// `\"NaN\"`, which is not JSON.
    #[test]
    fn non_finite_numbers_are_json_strings() {
        for (value, shown) in [
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            let mut out = Vec::new();
            let record = |v: &mut dyn Visit| {
                let fields =
                    tracing::field::FieldSet::new(&["x"], tracing::callsite::Identifier(&CALLSITE));
                v.record_f64(&fields.field("x").unwrap(), value);
            };
            record(&mut JsonFields {
                out: &mut out,
                skip_message: false,
                message: None,
                span_mode: false,
            });
            let line = format!("{{{}}}", String::from_utf8(out).unwrap());
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert_eq!(v["x"], shown, "{line}");
        }
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("only the identity is used")
        }
    }

    #[test]
    fn text_escaping_keeps_one_line() {
        let mut out = Vec::new();
        text_escaped(&mut out, "line1\nline2\r\x1b[31m");
        assert_eq!(String::from_utf8(out).unwrap(), "line1\\nline2\\r\\x1b[31m");
    }
}
