//! The local line formats: JSON lines, compact text and pretty text.
//!
//! JSON and compact write one event as exactly one line; pretty writes one
//! line, plus a second, indented `in <span>{fields}` line when the event is
//! inside a span (it is meant for a person at a terminal: use JSON or
//! compact where a program reads the lines). Control characters inside
//! messages, fields and span names are escaped in every format: the C0
//! controls and DEL, the C1 controls (U+0080 to U+009F, U+009B being a
//! CSI that some terminals obey), the line and paragraph separators
//! (U+2028, U+2029) and the bidirectional formatting characters (U+061C,
//! U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), so that no value
//! can break a line, move the cursor or reorder what a person reads.
//!
//! Lines are bounded: every string value (message, field, span field) is
//! cut to the attribute value length limit, in characters, as for OTLP
//! (`OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, 32768 by default), and a line that
//! would still be longer than [`MAX_LINE_BYTES`] (64 KiB) is written again
//! with every value cut to [`SHORT_VALUE_CHARS`] (128) characters, the span
//! fields left out if they alone are longer than half of it, and the field
//! `otelwire.line_truncated=true`.
//!
//! Floating-point values are rounded for reading, in every format (JSON
//! keeps them numbers): to three decimals, or to three significant digits
//! below 0.1, then written in the shortest form that reads back as the
//! rounded value (`0.8952100000000001` → `0.895`, `12.34567` → `12.346`,
//! `0.000123456` → `0.000123`, `2.0` → `2.0`); a duration in milliseconds
//! keeps its microseconds. NaN and the infinities are written as `NaN`,
//! `inf` and `-inf` (strings in JSON). Only the local lines round: the
//! exported log records keep the exact value.
//!
//! Formatting writes straight into a reused byte buffer; nothing is
//! allocated per event.

use std::fmt::{self, Write as _};
use std::time::SystemTime;

use tracing::field::{Field, Visit};

use crate::config::LogFormat;
use crate::timestamp::write_rfc3339;

/// The longest local line, in bytes, newline included: a longer one is
/// written again with every value cut to [`SHORT_VALUE_CHARS`] characters,
/// the span fields left out if they alone are longer than half of it, and
/// the field `otelwire.line_truncated=true`.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What every value is cut to, in characters, when a line is written again
/// for being longer than [`MAX_LINE_BYTES`]. With at most 32 fields per
/// event (`tracing`'s limit), six bytes per escaped character at most, and
/// the span fields at most half the line, such a line always fits.
pub const SHORT_VALUE_CHARS: usize = 128;

/// The field that marks a line written again with shorter values.
const TRUNCATED_FIELD: &str = "otelwire.line_truncated";

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
    /// The longest string value, in characters.
    pub(crate) value_limit: usize,
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
        let start = out.len();
        self.write_once(out, scratch, header, record, scope, self.value_limit, false);
        if out.len() - start > MAX_LINE_BYTES {
            out.truncate(start);
            let short = Scope {
                span_fields: if scope.span_fields.len() <= MAX_LINE_BYTES / 2 {
                    scope.span_fields
                } else {
                    ""
                },
                ..*scope
            };
            let limit = self.value_limit.min(SHORT_VALUE_CHARS);
            self.write_once(out, scratch, header, record, &short, limit, true);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_once(
        &self,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
        header: &Header<'_>,
        record: &dyn Fn(&mut dyn Visit),
        scope: &Scope<'_>,
        limit: usize,
        truncated: bool,
    ) {
        let line = Line {
            limit,
            truncated,
            ansi: self.ansi,
            format: self.format,
        };
        match self.format {
            LogFormat::Json => write_json(out, scratch, header, record, scope, &line),
            LogFormat::Compact | LogFormat::Pretty => {
                write_text(out, scratch, header, record, scope, &line)
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
                limit: self.value_limit,
            }),
            _ => record(&mut TextFields {
                out: &mut buf,
                message: None,
                span_mode: true,
                limit: self.value_limit,
            }),
        }
        *out = String::from_utf8(buf).unwrap_or_default();
    }

    /// Appends one string field, `name` = `value`, to pre-rendered span
    /// fields (a baggage member copied onto the line).
    pub(crate) fn write_span_str(&self, out: &mut String, name: &str, value: &str) {
        let mut buf = std::mem::take(out).into_bytes();
        let value = cut(value, self.value_limit);
        match self.format {
            LogFormat::Json => {
                let mut f = JsonFields {
                    out: &mut buf,
                    skip_message: false,
                    message: None,
                    span_mode: true,
                    limit: self.value_limit,
                };
                if f.key_name(name) {
                    json_str(f.out, value);
                }
            }
            _ => {
                let mut f = TextFields {
                    out: &mut buf,
                    message: None,
                    span_mode: true,
                    limit: self.value_limit,
                };
                if f.key_name(name) {
                    f.quoted(value);
                }
            }
        }
        *out = String::from_utf8(buf).unwrap_or_default();
    }
}

/// How one line is written.
struct Line {
    /// The longest string value, in characters.
    limit: usize,
    /// Whether this is the line written again with short values.
    truncated: bool,
    ansi: bool,
    format: LogFormat,
}

fn write_json(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    header: &Header<'_>,
    record: &dyn Fn(&mut dyn Visit),
    scope: &Scope<'_>,
    line: &Line,
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
            limit: line.limit,
        };
        record(&mut v);
    }
    std::mem::swap(&mut message, out);
    // `out` now holds the header and, if there was one, `,"message":"..."`.
    if !scratch.is_empty() {
        out.push(b',');
        out.extend_from_slice(scratch);
    }
    if line.truncated {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(TRUNCATED_FIELD.as_bytes());
        out.extend_from_slice(b"\":true");
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
    line: &Line,
) {
    let (ansi, format) = (line.ansi, line.format);
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
            limit: line.limit,
        };
        record(&mut v);
    }
    if !message.is_empty() {
        out.push(b' ');
        out.extend_from_slice(&message);
    }
    if line.truncated {
        scratch.push(b' ');
        scratch.extend_from_slice(TRUNCATED_FIELD.as_bytes());
        scratch.extend_from_slice(b"=true");
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

/// The Unicode control or formatting character (beyond C0 and DEL) that
/// starts at `bytes[i]`, whose first byte is `0xC2`, `0xD8` or `0xE2`: its
/// code point and its length in bytes. Only non-ASCII text gets here.
#[cold]
fn unicode_control(bytes: &[u8], i: usize) -> Option<(u32, usize)> {
    match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
        // C1 controls, U+0080 to U+009F.
        (0xC2, Some(&b @ 0x80..=0x9F), _) => Some((u32::from(b), 2)),
        // U+061C ARABIC LETTER MARK.
        (0xD8, Some(0x9C), _) => Some((0x061C, 2)),
        // U+200E, U+200F (marks), U+2028, U+2029 (separators),
        // U+202A to U+202E (embeddings and overrides).
        (0xE2, Some(0x80), Some(&b @ (0x8E | 0x8F | 0xA8..=0xAE))) => {
            Some((0x2000 + u32::from(b - 0x80), 3))
        }
        // U+2066 to U+2069 (isolates).
        (0xE2, Some(0x81), Some(&b @ 0xA6..=0xA9)) => Some((0x2040 + u32::from(b - 0x80), 3)),
        _ => None,
    }
}

/// Writes a code point as four hex digits (the controls escaped here are
/// all below U+10000).
fn hex4(out: &mut Vec<u8>, cp: u32) {
    hex(out, &[(cp >> 8) as u8, cp as u8]);
}

/// Writes a code point in lowercase hex without leading zeros, as Rust's
/// `\u{…}` escapes spell it.
fn hex_min(out: &mut Vec<u8>, cp: u32) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [20u32, 16, 12, 8, 4, 0] {
        let d = ((cp >> shift) & 0xf) as usize;
        if started || d != 0 || shift == 0 {
            started = true;
            out.push(DIGITS[d]);
        }
    }
}

fn json_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
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
                i += 1;
                start = i;
                continue;
            }
            0xC2 | 0xD8 | 0xE2 => {
                if let Some((cp, len)) = unicode_control(bytes, i) {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(b"\\u");
                    hex4(out, cp);
                    i += len;
                    start = i;
                } else {
                    i += 1;
                }
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `s` with control characters escaped, for the text formats
/// (`\n`, `\x1b`, `\u{9b}`, `\u{202e}`).
fn text_escaped(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let esc: &[u8] = match b {
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\x");
                hex(out, &[b]);
                i += 1;
                start = i;
                continue;
            }
            0xC2 | 0xD8 | 0xE2 => {
                if let Some((cp, len)) = unicode_control(bytes, i) {
                    out.extend_from_slice(&bytes[start..i]);
                    out.extend_from_slice(b"\\u{");
                    hex_min(out, cp);
                    out.push(b'}');
                    i += len;
                    start = i;
                } else {
                    i += 1;
                }
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `s` cut to its first `limit` characters (one comparison when it has at
/// most `limit` bytes).
#[inline]
fn cut(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    cut_slow(s, limit)
}

#[cold]
fn cut_slow(s: &str, limit: usize) -> &str {
    match s.char_indices().nth(limit) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// `fmt::Write` into a byte buffer, escaping as JSON string content, at
/// most `left` characters (then it fails, which stops the formatting).
struct JsonEscape<'a> {
    out: &'a mut Vec<u8>,
    left: usize,
}

impl fmt::Write for JsonEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let s = take(&mut self.left, s)?;
        json_escaped(self.out, s);
        Ok(())
    }
}

/// `fmt::Write` into a byte buffer, escaping control characters, at most
/// `left` characters.
struct TextEscape<'a> {
    out: &'a mut Vec<u8>,
    left: usize,
}

impl fmt::Write for TextEscape<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let s = take(&mut self.left, s)?;
        text_escaped(self.out, s);
        Ok(())
    }
}

/// The part of `s` that fits in `left` characters, `left` reduced by it;
/// an error once nothing more fits (the value is cut there).
#[inline]
fn take<'s>(left: &mut usize, s: &'s str) -> Result<&'s str, fmt::Error> {
    if *left == 0 {
        return Err(fmt::Error);
    }
    if s.len() <= *left {
        *left -= if s.is_ascii() {
            s.len()
        } else {
            s.chars().count()
        };
        return Ok(s);
    }
    let part = cut_slow(s, *left);
    *left -= part.chars().count();
    Ok(part)
}

/// Exact powers of ten, `10^0` to `10^22` (the largest exact in an `f64`).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `value` rounded as a person reads it: three decimals, or three
/// significant digits below 0.1 (so that a small value never becomes 0).
/// Values too large to carry three decimals, or too small for an exact
/// power of ten, are left as they are.
fn readable(value: f64) -> f64 {
    let magnitude = value.abs();
    if magnitude == 0.0 || magnitude >= 1e12 {
        return value;
    }
    // A whole number (a count, `3.0`) has nothing to round: two conversions
    // instead of the rounding below (measured in `event_instructions`).
    if value == (value as i64) as f64 {
        return value;
    }
    let decimals = if magnitude >= 0.1 {
        3
    } else {
        2 - magnitude.log10().floor() as i32
    };
    match POW10.get(decimals as usize) {
        Some(&scale) => round_half_away(value * scale) / scale,
        None => value,
    }
}

/// `x.round()` for |x| below 2^53 (always so here: below 1e12 × 1e3, or
/// a small value scaled to three digits), without the `libm` call.
fn round_half_away(x: f64) -> f64 {
    let whole = x as i64;
    let rest = x - whole as f64;
    let rounded = if rest >= 0.5 {
        whole + 1
    } else if rest <= -0.5 {
        whole - 1
    } else {
        whole
    };
    rounded as f64
}

/// Writes a finite `value`, rounded by [`readable`], in the shortest form
/// that reads back as the rounded value.
fn write_float(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(ryu::Buffer::new().format_finite(readable(value)).as_bytes());
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
    /// The longest string value, in characters.
    limit: usize,
}

impl JsonFields<'_, '_> {
    /// Writes `"key":` (with a separating comma), or returns false to skip.
    fn key(&mut self, field: &Field) -> bool {
        self.key_name(field.name())
    }

    fn key_name(&mut self, name: &str) -> bool {
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
        let value = cut(value, self.limit);
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
        let left = self.limit;
        if let Some(m) = self.message_target(field) {
            m.extend_from_slice(b",\"message\":\"");
            let _ = write!(JsonEscape { out: m, left }, "{value:?}");
            m.push(b'"');
            return;
        }
        if self.key(field) {
            self.out.push(b'"');
            let _ = write!(
                JsonEscape {
                    out: self.out,
                    left
                },
                "{value:?}"
            );
            self.out.push(b'"');
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let left = self.limit;
        if self.key(field) {
            self.out.push(b'"');
            let _ = write!(
                JsonEscape {
                    out: self.out,
                    left
                },
                "{value}"
            );
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
                write_float(self.out, value);
            } else {
                // NaN and infinities are not JSON numbers: a string.
                self.out.push(b'"');
                let _ = write!(
                    JsonEscape {
                        out: self.out,
                        left: usize::MAX
                    },
                    "{value}"
                );
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
    /// The longest string value, in characters.
    limit: usize,
}

impl TextFields<'_, '_> {
    fn key(&mut self, field: &Field) -> bool {
        self.key_name(field.name())
    }

    fn key_name(&mut self, name: &str) -> bool {
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
        let value = cut(value, self.limit);
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
        let left = self.limit;
        if field.name() == "message"
            && let Some(m) = self.message.as_deref_mut()
        {
            let _ = write!(TextEscape { out: m, left }, "{value:?}");
            return;
        }
        if self.key(field) {
            let _ = write!(
                TextEscape {
                    out: self.out,
                    left
                },
                "{value:?}"
            );
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            let s = value.to_string();
            self.quoted(cut(&s, self.limit));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            if value.is_finite() {
                write_float(self.out, value);
            } else {
                let _ = write!(
                    TextEscape {
                        out: self.out,
                        left: usize::MAX
                    },
                    "{value:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baggage_member_is_written_as_a_span_field_in_each_format() {
        let format = |f| LineFormat {
            format: f,
            ansi: false,
            value_limit: 8,
        };
        let mut json = String::new();
        format(LogFormat::Json).write_span_str(&mut json, "tenant.id", "acme");
        format(LogFormat::Json).write_span_str(&mut json, "user.tier", "gold \"plus\" tier");
        assert_eq!(json, r#""tenant.id":"acme","user.tier":"gold \"pl""#);

        let mut text = String::new();
        format(LogFormat::Compact).write_span_str(&mut text, "tenant.id", "acme");
        format(LogFormat::Compact).write_span_str(&mut text, "user.tier", "gold tier");
        assert_eq!(text, r#" tenant.id=acme user.tier="gold tie""#);

        // A name the line itself uses is renamed, as a span field is.
        let mut json = String::new();
        format(LogFormat::Json).write_span_str(&mut json, "level", "x");
        assert_eq!(json, r#""fields.level":"x""#);
    }

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
                limit: usize::MAX,
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
    fn rounding_without_libm_is_f64_round() {
        let mut x = 0.123_456_789_f64;
        for i in 0..200_000 {
            // Values across magnitudes, halves and negatives included.
            let v = x * 10f64.powi(i % 16) * if i % 2 == 0 { 1.0 } else { -1.0 };
            let halves = (i as f64) + 0.5;
            for v in [v, halves, -halves] {
                assert_eq!(round_half_away(v), v.round(), "{v:?}");
            }
            x = (x * 1.618_033_988_7 + 0.314_159) % 1.0;
        }
    }

    #[test]
    fn floats_are_rounded_for_reading() {
        for (value, shown) in [
            (0.8952100000000001, "0.895"),
            (12.34567, "12.346"),
            (-12.34567, "-12.346"),
            (0.0123456, "0.0123"),
            (0.000123456, "0.000123"),
            (1e-7, "1e-7"),
            (2.0, "2.0"),
            (0.1, "0.1"),
            (1234567.891234, "1234567.891"),
            (0.0, "0.0"),
            (3.0, "3.0"),
            (-7.0, "-7.0"),
            (2.5, "2.5"),
            (0.0005, "0.0005"),
            (1.0005, "1.001"),
            (-1.0005, "-1.001"),
            (999.9996, "1000.0"),
        ] {
            let mut out = Vec::new();
            write_float(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), shown, "{value:?}");
        }
    }

    #[test]
    fn text_escaping_keeps_one_line() {
        let mut out = Vec::new();
        text_escaped(&mut out, "line1\nline2\r\x1b[31m");
        assert_eq!(String::from_utf8(out).unwrap(), "line1\\nline2\\r\\x1b[31m");
    }
}
