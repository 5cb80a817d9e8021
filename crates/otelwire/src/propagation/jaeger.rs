//! Jaeger's `uber-trace-id` and `uberctx-{key}` headers, as Jaeger's
//! client-library documentation ("Propagation Format") specifies them and
//! the OpenTelemetry specification lists them (`OTEL_PROPAGATORS=jaeger`,
//! deprecated in favour of W3C Trace Context). No maintained crate
//! implements it for OpenTelemetry 0.33, hence this one.

use super::b3::{Decision, decision, with_decision};
use super::trim_ows;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, StringValue};
use std::fmt::Write as _;
use std::sync::OnceLock;

const UBER_TRACE_ID: &str = "uber-trace-id";
const UBERCTX: &str = "uberctx-";
const FLAG_SAMPLED: u8 = 0x01;
const FLAG_DEBUG: u8 = 0x02;

/// The most `uberctx-` headers read or written: the W3C Baggage limit the
/// context's [`Baggage`] keeps to as well.
pub const MAX_JAEGER_BAGGAGE_ITEMS: usize = 64;

/// Jaeger propagation: `uber-trace-id` for the span context and
/// `uberctx-{key}` headers for baggage.
///
/// `uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}`
///
/// - the trace id is 1 to 32 hex characters, the span id 1 to 16,
///   left-padded with zeros ("Receivers MUST accept hex-strings shorter
///   than 32 characters and 0-pad them on the left"); all-zero ids, or
///   anything but hex, are no span context;
/// - the parent span id is deprecated: read (it must be hex) but ignored,
///   and sent as `0`;
/// - flags are one or two hex digits: `0x01` sampled, `0x02` debug (which
///   implies sampled, and is kept in the context and sent on as `3`); other
///   bits (`0x08` firehose) are not kept;
/// - the value may arrive URL-encoded (`%3A` for `:`).
///
/// Each `uberctx-{key}: {value}` header is one baggage member, added to
/// the context's baggage on extract (values URL-decoded, when they decode);
/// inject writes each member of the context's baggage (at most
/// [`MAX_JAEGER_BAGGAGE_ITEMS`], keys that are HTTP tokens, in key order)
/// as `uberctx-{key}` with its value percent-encoded. Those header names
/// depend on the baggage, so [`fields`](TextMapPropagator::fields) lists
/// `uber-trace-id` alone.
///
/// ```
/// use otelwire::opentelemetry::baggage::BaggageExt;
/// use otelwire::opentelemetry::propagation::TextMapPropagator;
/// use otelwire::opentelemetry::trace::TraceContextExt;
/// use otelwire::propagation::JaegerPropagator;
/// use std::collections::HashMap;
///
/// let headers = HashMap::from([
///     ("uber-trace-id".to_owned(), "4bf92f3577b34da6a3ce929d0e0e4736%3A00f067aa0ba902b7%3A0%3A1".to_owned()),
///     ("uberctx-key1".to_owned(), "value%201%20%2F%20blah".to_owned()),
/// ]);
/// let cx = JaegerPropagator::new().extract(&headers);
/// assert!(cx.span().span_context().is_sampled());
/// assert_eq!(cx.baggage().get("key1").unwrap().as_str(), "value 1 / blah");
///
/// let mut out = HashMap::new();
/// JaegerPropagator::new().inject_context(&cx, &mut out);
/// assert_eq!(out["uber-trace-id"], "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1");
/// assert_eq!(out["uberctx-key1"], "value%201%20%2F%20blah");
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct JaegerPropagator {
    _private: (),
}

impl JaegerPropagator {
    /// The propagator.
    pub fn new() -> Self {
        Self::default()
    }
}

/// 1 to `max` hex digits (either case), as a number.
fn hex(s: &str, max: usize) -> Option<u128> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// The trace id, span id and flags of an `uber-trace-id` value.
fn parse(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let decoded;
    let value = if value.contains('%') {
        decoded = percent_decode(value)?;
        &decoded
    } else {
        value
    };
    let mut parts = trim_ows(value).split(':');
    let trace = hex(parts.next()?, 32)?;
    let span = hex(parts.next()?, 16)?;
    hex(parts.next()?, 16)?;
    let flags = hex(parts.next()?, 2)?;
    if parts.next().is_some() || trace == 0 || span == 0 {
        return None;
    }
    let span = u64::try_from(span).ok()?;
    let flags = u8::try_from(flags).ok()?;
    Some((TraceId::from(trace), SpanId::from(span), flags))
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not
/// UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = hex_value(*b.get(i + 1)?)?;
            let lo = hex_value(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Every byte but the URL-unreserved `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An HTTP field-name token (RFC 9110 `tchar`).
fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `prefix` matched without regard to ASCII case, and what follows it.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `cx`'s baggage with the `uberctx-` headers' members added, or `None`
/// when there are none.
fn extract_baggage(cx: &Context, extractor: &dyn Extractor) -> Option<Baggage> {
    let mut members = extractor
        .keys()
        .into_iter()
        .filter_map(|header| {
            let key = strip_prefix_ignore_case(header, UBERCTX).filter(|k| !k.is_empty())?;
            let raw = extractor.get(header)?;
            let value = percent_decode(raw).unwrap_or_else(|| raw.to_owned());
            Some((key.to_owned(), value))
        })
        .take(MAX_JAEGER_BAGGAGE_ITEMS)
        .peekable();
    members.peek()?;
    let mut baggage: Baggage = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| (k.clone(), (v.clone(), m.clone())))
        .collect();
    for (key, value) in members {
        baggage.insert(key, StringValue::from(value));
    }
    Some(baggage)
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = if decision(cx, sc.trace_id()) == Some(Decision::Debug) {
                FLAG_DEBUG | FLAG_SAMPLED
            } else if sc.is_sampled() {
                FLAG_SAMPLED
            } else {
                0
            };
            injector.set(
                UBER_TRACE_ID,
                format!("{}:{}:0:{flags:x}", sc.trace_id(), sc.span_id()),
            );
        }
        let mut members: Vec<_> = cx
            .baggage()
            .iter()
            .filter(|(k, _)| token(k.as_str()))
            .collect();
        members.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (key, (value, _)) in members.into_iter().take(MAX_JAEGER_BAGGAGE_ITEMS) {
            injector.set(
                &format!("{UBERCTX}{}", key.as_str()),
                percent_encode(value.as_str()),
            );
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = match extract_baggage(cx, extractor) {
            Some(baggage) => cx.with_baggage(baggage),
            None => cx.clone(),
        };
        if let Some((trace, span, flags)) = extractor.get(UBER_TRACE_ID).and_then(parse) {
            let debug = flags & FLAG_DEBUG != 0;
            let sampled = debug || flags & FLAG_SAMPLED != 0;
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            let sc = SpanContext::new(trace, span, flags, true, TraceState::default());
            out = out.with_remote_span_context(sc);
            if debug {
                out = with_decision(out, trace, Decision::Debug);
            }
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        static NAMES: OnceLock<[String; 1]> = OnceLock::new();
        FieldIter::new(NAMES.get_or_init(|| [UBER_TRACE_ID.to_owned()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propagation::remote_ids as ids;
    use opentelemetry::KeyValue;
    use std::collections::HashMap;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn extract(pairs: &[(&str, &str)]) -> Context {
        let headers: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_lowercase(), (*v).to_owned()))
            .collect();
        JaegerPropagator::new().extract(&headers)
    }

    fn inject(cx: &Context) -> HashMap<String, String> {
        let mut out = HashMap::new();
        JaegerPropagator::new().inject_context(cx, &mut out);
        out
    }

    fn spec_ids(sampled: bool) -> Option<(String, String, bool)> {
        Some((TRACE.to_owned(), SPAN.to_owned(), sampled))
    }

    #[test]
    fn uber_trace_id_byte_for_byte() {
        let value = format!("{TRACE}:{SPAN}:0:1");
        let cx = extract(&[("uber-trace-id", &value)]);
        assert_eq!(ids(&cx), spec_ids(true));
        assert_eq!(
            inject(&cx),
            HashMap::from([(
                "uber-trace-id".to_owned(),
                "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1".to_owned()
            )])
        );
        let cx = extract(&[("Uber-Trace-Id", &format!("{TRACE}:{SPAN}:0:0"))]);
        assert_eq!(ids(&cx), spec_ids(false));
        assert_eq!(inject(&cx)["uber-trace-id"], format!("{TRACE}:{SPAN}:0:0"));
    }

    #[test]
    fn flags_sampled_and_debug() {
        for (flags, sampled, debug, sent) in [
            ("0", false, false, "0"),
            ("1", true, false, "1"),
            ("01", true, false, "1"),
            ("00", false, false, "0"),
            ("3", true, true, "3"),
            ("03", true, true, "3"),
            ("2", true, true, "3"),
            ("9", true, false, "1"),
            ("8", false, false, "0"),
            ("ff", true, true, "3"),
        ] {
            let cx = extract(&[("uber-trace-id", &format!("{TRACE}:{SPAN}:0:{flags}"))]);
            assert_eq!(ids(&cx), spec_ids(sampled), "flags {flags}");
            let trace = TraceId::from_hex(TRACE).unwrap();
            assert_eq!(
                decision(&cx, trace) == Some(Decision::Debug),
                debug,
                "{flags}"
            );
            assert_eq!(
                inject(&cx)["uber-trace-id"],
                format!("{TRACE}:{SPAN}:0:{sent}")
            );
        }
    }

    #[test]
    fn short_ids_are_left_padded_and_the_parent_is_ignored() {
        let cx = extract(&[(
            "uber-trace-id",
            "269daf90c4589ce1:5c44cd976d8f8cd9:39e8e549de678267:1",
        )]);
        assert_eq!(
            ids(&cx),
            Some((
                "0000000000000000269daf90c4589ce1".to_owned(),
                "5c44cd976d8f8cd9".to_owned(),
                true
            ))
        );
        assert_eq!(
            inject(&cx)["uber-trace-id"],
            "0000000000000000269daf90c4589ce1:5c44cd976d8f8cd9:0:1",
            "the parent is sent as 0"
        );
        let cx = extract(&[("uber-trace-id", "a:b:0:1")]);
        assert_eq!(
            ids(&cx),
            Some((format!("{:032x}", 0xa), format!("{:016x}", 0xb), true))
        );
        let cx = extract(&[(
            "uber-trace-id",
            &format!("{}:{}:0:1", TRACE.to_uppercase(), SPAN.to_uppercase()),
        )]);
        assert_eq!(ids(&cx), spec_ids(true), "base16 in either case");
    }

    #[test]
    fn url_encoded_values() {
        for value in [
            format!("{TRACE}%3A{SPAN}%3A0%3A1"),
            format!("{TRACE}%3a{SPAN}%3a0%3a1"),
            format!("{TRACE}:{SPAN}%3A0:1"),
        ] {
            assert_eq!(
                ids(&extract(&[("uber-trace-id", &value)])),
                spec_ids(true),
                "{value}"
            );
        }
        assert_eq!(
            ids(&extract(&[(
                "uber-trace-id",
                &format!("{TRACE}%3{SPAN}:0:1")
            )])),
            None
        );
    }

    #[test]
    fn invalid_values_are_no_span_context() {
        for value in [
            String::new(),
            ":::".to_owned(),
            format!("{TRACE}:{SPAN}:0"),
            format!("{TRACE}:{SPAN}:0:1:"),
            format!("{TRACE}:{SPAN}::1"),
            format!("{TRACE}:{SPAN}:0:"),
            format!("{TRACE}:{SPAN}:0:100"),
            format!("{TRACE}:{SPAN}:x:1"),
            format!("{TRACE}:{SPAN}:0:x"),
            format!(":{SPAN}:0:1"),
            format!("{TRACE}::0:1"),
            format!("0{TRACE}:{SPAN}:0:1"),
            format!("{TRACE}:0{SPAN}:0:1"),
            format!("{}:{SPAN}:0:1", "0".repeat(32)),
            format!("0:{SPAN}:0:1"),
            format!("{TRACE}:{}:0:1", "0".repeat(16)),
            format!("{TRACE}:0:0:1"),
            format!("{TRACE}-{SPAN}-0-1"),
            format!("+{}:{SPAN}:0:1", &TRACE[1..]),
            format!("{TRACE}:{SPAN}:0:+1"),
        ] {
            assert_eq!(ids(&extract(&[("uber-trace-id", &value)])), None, "{value}");
        }
    }

    #[test]
    fn uberctx_headers_are_baggage() {
        // Jaeger's documentation: `span.SetBaggageItem("key1", "value 1 / blah")`
        // "will result in the following HTTP header".
        let cx = Context::new().with_baggage([KeyValue::new("key1", "value 1 / blah")]);
        assert_eq!(
            inject(&cx),
            HashMap::from([(
                "uberctx-key1".to_owned(),
                "value%201%20%2F%20blah".to_owned()
            )]),
            "baggage goes without a span context"
        );
        let cx = extract(&[
            ("uberctx-key1", "value%201%20%2F%20blah"),
            ("UBERCTX-key2", "value2"),
            ("uberctx-", "no key"),
            ("uberctx-raw", "100%"),
            ("x-uberctx-other", "no"),
        ]);
        let b = cx.baggage();
        assert_eq!(b.get("key1").map(|v| v.as_str()), Some("value 1 / blah"));
        assert_eq!(b.get("key2").map(|v| v.as_str()), Some("value2"));
        assert_eq!(
            b.get("raw").map(|v| v.as_str()),
            Some("100%"),
            "kept as sent"
        );
        assert_eq!(b.len(), 3);
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn extracted_baggage_is_added_to_the_context_s() {
        let cx =
            Context::new().with_baggage([KeyValue::new("kept", "1"), KeyValue::new("key1", "old")]);
        let headers = HashMap::from([("uberctx-key1".to_owned(), "new".to_owned())]);
        let cx = JaegerPropagator::new().extract_with_context(&cx, &headers);
        assert_eq!(cx.baggage().get("kept").map(|v| v.as_str()), Some("1"));
        assert_eq!(cx.baggage().get("key1").map(|v| v.as_str()), Some("new"));
    }

    #[test]
    fn baggage_is_bounded() {
        let headers: HashMap<String, String> = (0..200)
            .map(|i| (format!("uberctx-k{i}"), "v".to_owned()))
            .collect();
        let cx = JaegerPropagator::new().extract(&headers);
        assert_eq!(cx.baggage().len(), MAX_JAEGER_BAGGAGE_ITEMS);
        assert_eq!(inject(&cx).len(), MAX_JAEGER_BAGGAGE_ITEMS);
    }

    #[test]
    fn percent_encoding_round_trips() {
        for s in ["", "plain-._~", "a b/c:d%e", "é ü 日本", "\u{0}\u{7f}"] {
            assert_eq!(percent_decode(&percent_encode(s)).as_deref(), Some(s));
            assert!(percent_encode(s).bytes().all(|b| b.is_ascii_graphic()));
        }
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
        assert_eq!(percent_decode("%g0"), None);
    }

    #[test]
    fn inject_then_extract_round_trips_any_valid_context() {
        let mut rng = super::super::composite::tests::Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..2000 {
            let sc = rng.span_context(case);
            let debug = case.is_multiple_of(5);
            let mut cx = Context::new().with_remote_span_context(sc.clone());
            if debug {
                cx = with_decision(cx, sc.trace_id(), Decision::Debug);
            }
            let value = format!("v {case}/%:{}", rng.next() % 1000);
            cx = cx.with_baggage([KeyValue::new(format!("k{case}"), value.clone())]);
            let back = JaegerPropagator::new().extract(&inject(&cx));
            let span = back.span();
            let got = span.span_context();
            assert_eq!(got.trace_id(), sc.trace_id(), "{sc:?}");
            assert_eq!(got.span_id(), sc.span_id(), "{sc:?}");
            assert_eq!(got.is_sampled(), sc.is_sampled() || debug, "{sc:?}");
            assert!(got.is_remote());
            assert_eq!(
                decision(&back, sc.trace_id()) == Some(Decision::Debug),
                debug
            );
            let key = format!("k{case}");
            assert_eq!(
                back.baggage().get(key.as_str()).map(|v| v.as_str()),
                Some(value.as_str())
            );
        }
    }

    #[test]
    fn fields() {
        let f: Vec<_> = JaegerPropagator::new()
            .fields()
            .map(str::to_owned)
            .collect();
        assert_eq!(f, ["uber-trace-id"]);
    }
}
