//! The local output: [`LineFormatter`] turns events into otelwire's local
//! lines (every line inside a span carrying the exported span's `trace_id`
//! and `span_id`); the console layer writes them to standard output (or any
//! writer), and other outputs (such as `otelwire-files`) format with the
//! same formatter so that their lines are identical.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::TraceContextExt;
use tracing::field::Visit;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::baggage::BaggageAttributes;
use crate::config::LogFormat;
use crate::format::{Header, LineFormat, Scope};

/// The fields of a span (and its ancestors), rendered once when recorded so
/// that each event inside it only copies them. One slot per rendering (JSON,
/// text); the formatter that created a slot keeps it up to date, the others
/// of the same rendering only read it.
#[derive(Default)]
struct SpanFields {
    json: Option<Rendered>,
    text: Option<Rendered>,
    /// The span's `otel.name`: the name it is exported under, which the
    /// local lines show too (`GET /orders/{id}` rather than `HTTP request`).
    otel_name: Option<String>,
}

/// The field that renames a span for OpenTelemetry (tracing-opentelemetry's
/// convention).
const OTEL_NAME: &str = "otel.name";

/// Finds `otel.name` among a span's values.
#[derive(Default)]
struct OtelName(Option<String>);

impl Visit for OtelName {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == OTEL_NAME {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == OTEL_NAME {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

struct Rendered {
    owner: usize,
    fields: String,
}

impl SpanFields {
    fn slot(&self, json: bool) -> &Option<Rendered> {
        if json { &self.json } else { &self.text }
    }

    fn slot_mut(&mut self, json: bool) -> &mut Option<Rendered> {
        if json { &mut self.json } else { &mut self.text }
    }
}

static NEXT_FORMATTER: AtomicUsize = AtomicUsize::new(1);

/// Formats `tracing` events as otelwire's local lines, exactly as the
/// console writes them: one line per event in JSON and compact (pretty
/// adds a second, indented `in <span>{fields}` line inside a span: it is
/// for people, not for log shippers), with the enclosing span's name and
/// fields, and `trace_id`/`span_id` inside spans.
///
/// The span's name is the one it is exported under: its `otel.name` when it
/// has one (otelwire-axum's `HTTP request` span shows as `GET /orders/{id}`,
/// otelwire-tonic's `gRPC call` as its method), else the name it was
/// created with; a line and its span are found by the same name.
///
/// Floating-point field values are rounded for reading, in every format
/// (JSON keeps them numbers): to three decimals, or to three significant
/// digits below 0.1, written in the shortest form that reads back as the
/// rounded value (`0.8952100000000001` → `0.895`, `12.34567` → `12.346`,
/// `0.000123456` → `0.000123`, `2.0` → `2.0`). A duration in milliseconds
/// keeps microseconds. The exported log records keep the exact value.
///
/// Control characters in messages, fields and span fields are escaped in
/// every format: C0 and DEL (`\n`, `\x1b`; `\u001b` in JSON), C1
/// (`\u{9b}`), the line and paragraph separators (`\u{2028}`) and the
/// bidirectional formatting characters (`\u{202e}`). Lines are bounded:
/// every string value is cut to the attribute value length limit (in
/// characters, as for OTLP), and a line still longer than
/// [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES) is written again with values
/// of at most [`SHORT_VALUE_CHARS`](crate::SHORT_VALUE_CHARS) characters,
/// without the span fields if they alone take half of it, and with
/// `otelwire.line_truncated=true`.
///
/// The lines of [audit and security events](crate::audit) carry the span's
/// name and ids but not its fields: the event's fields are masked, and a
/// span field (a request span's `client.address`) must not bring back what
/// the masking policy dropped or truncated.
///
/// For layers that write lines somewhere else: call
/// [`on_new_span`](Self::on_new_span) and [`on_record`](Self::on_record)
/// from the layer's methods of the same name, and
/// [`format_event`](Self::format_event) from `on_event`.
///
/// ```
/// use otelwire::{LineFormatter, LogFormat};
/// use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
/// use tracing_subscriber::registry::LookupSpan;
///
/// use std::sync::{Arc, Mutex};
///
/// struct Lines(LineFormatter, Arc<Mutex<Vec<u8>>>);
///
/// impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Lines {
///     fn on_new_span(&self, a: &tracing::span::Attributes<'_>, id: &tracing::span::Id, cx: Context<'_, S>) {
///         self.0.on_new_span(a, id, &cx);
///     }
///     fn on_record(&self, id: &tracing::span::Id, v: &tracing::span::Record<'_>, cx: Context<'_, S>) {
///         self.0.on_record(id, v, &cx);
///     }
///     fn on_event(&self, e: &tracing::Event<'_>, cx: Context<'_, S>) {
///         self.0.format_event(e, &cx, &mut self.1.lock().unwrap());
///     }
/// }
///
/// let out = Arc::new(Mutex::new(Vec::new()));
/// let layer = Lines(LineFormatter::new(LogFormat::Json), out.clone());
/// let subscriber = tracing_subscriber::registry().with(layer);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info_span!("checkout", order.id = 7).in_scope(|| tracing::info!(items = 3, "placed"));
/// });
/// let line = String::from_utf8(out.lock().unwrap().clone()).unwrap();
/// assert!(line.contains(r#""message":"placed","items":3,"span":{"name":"checkout","order.id":7}"#), "{line}");
/// ```
#[derive(Debug)]
pub struct LineFormatter {
    format: LineFormat,
    /// Whether to look for the OTel span's ids (off when no tracer exists).
    trace_ids: bool,
    /// The baggage members written with the span's fields.
    baggage: BaggageAttributes,
    id: usize,
}

impl Clone for LineFormatter {
    fn clone(&self) -> Self {
        // A clone is another formatter: it must not take over span slots.
        LineFormatter {
            format: self.format,
            trace_ids: self.trace_ids,
            baggage: self.baggage.clone(),
            id: NEXT_FORMATTER.fetch_add(1, Ordering::Relaxed),
        }
    }
}

thread_local! {
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> =
        RefCell::new((Vec::with_capacity(512), Vec::with_capacity(256)));
}

impl LineFormatter {
    /// A formatter for `format`, without colours. ([`LogFormat::None`]
    /// formats nothing.)
    pub fn new(format: LogFormat) -> Self {
        Self::with_options(format, false, true)
    }

    pub(crate) fn with_options(format: LogFormat, ansi: bool, trace_ids: bool) -> Self {
        LineFormatter {
            format: LineFormat {
                format,
                ansi,
                value_limit: crate::config::DEFAULT_VALUE_LENGTH_LIMIT,
            },
            trace_ids,
            baggage: BaggageAttributes::default(),
            id: NEXT_FORMATTER.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Cuts every string value of a line (message, fields, span fields) to
    /// `limit` characters (default
    /// [`DEFAULT_VALUE_LENGTH_LIMIT`](crate::DEFAULT_VALUE_LENGTH_LIMIT);
    /// the console takes the log records' attribute value length limit).
    /// Whatever the limit, a line longer than
    /// [`MAX_LINE_BYTES`](crate::MAX_LINE_BYTES) is written again with
    /// short values.
    #[must_use]
    pub fn value_length_limit(mut self, limit: usize) -> Self {
        self.format.value_limit = limit;
        self
    }

    /// Writes the named members of the current context's baggage with the
    /// span fields of every line inside a span (see [`crate::baggage`];
    /// otelwire sets this on its console and passes it to outputs).
    #[must_use]
    pub fn baggage_attributes(mut self, names: BaggageAttributes) -> Self {
        self.baggage = names;
        self
    }

    /// The format this formatter writes.
    pub fn format(&self) -> LogFormat {
        self.format.format
    }

    fn json(&self) -> bool {
        self.format.format == LogFormat::Json
    }

    /// Keeps the new span's fields for the lines of the events inside it.
    pub fn on_new_span<S>(&self, attrs: &Attributes<'_>, id: &Id, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let json = self.json();
        let otel_name = if attrs.metadata().fields().field(OTEL_NAME).is_some() {
            let mut v = OtelName::default();
            attrs.record(&mut v);
            v.0
        } else {
            None
        };
        if let Some(f) = span.extensions_mut().get_mut::<SpanFields>()
            && f.slot(json).is_some()
        {
            // Another formatter of this rendering keeps the fields.
            if otel_name.is_some() {
                f.otel_name = otel_name;
            }
            return;
        }
        let mut fields = span
            .parent()
            .and_then(|p| {
                p.extensions()
                    .get::<SpanFields>()
                    .and_then(|f| f.slot(json).as_ref().map(|r| r.fields.clone()))
            })
            .unwrap_or_default();
        self.format
            .write_span_fields(&mut fields, &|v: &mut dyn Visit| attrs.record(v));
        let mut ext = span.extensions_mut();
        let rendered = Rendered {
            owner: self.id,
            fields,
        };
        match ext.get_mut::<SpanFields>() {
            Some(f) => {
                *f.slot_mut(json) = Some(rendered);
                if otel_name.is_some() {
                    f.otel_name = otel_name;
                }
            }
            None => {
                let mut f = SpanFields {
                    otel_name,
                    ..SpanFields::default()
                };
                *f.slot_mut(json) = Some(rendered);
                ext.insert(f);
            }
        }
    }

    /// Adds fields recorded on a span after its creation.
    pub fn on_record<S>(&self, id: &Id, values: &Record<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(f) = ext.get_mut::<SpanFields>() else {
            return;
        };
        if let Some(field) = span.fields().field(OTEL_NAME)
            && values.contains(&field)
        {
            let mut v = OtelName::default();
            values.record(&mut v);
            if v.0.is_some() {
                f.otel_name = v.0;
            }
        }
        if let Some(r) = f.slot_mut(self.json())
            && r.owner == self.id
        {
            self.format
                .write_span_fields(&mut r.fields, &|v: &mut dyn Visit| values.record(v));
        }
    }

    /// Appends the event's line, newline included, to `out`.
    pub fn format_event<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>, out: &mut Vec<u8>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.event_span(event);
        let ext = span.as_ref().map(|s| s.extensions());
        let fields = ext.as_ref().and_then(|e| e.get::<SpanFields>());
        // An audit or security event carries its own, masked, fields: the
        // enclosing spans' fields (a request span's full `client.address`,
        // say) must not bring back what the event masked.
        let audit = is_audit_target(event.metadata().target());
        let mut span_fields = if audit {
            ""
        } else {
            fields
                .and_then(|f| f.slot(self.json()).as_ref())
                .map(|r| r.fields.as_str())
                .unwrap_or("")
        };
        let with_baggage;
        if !audit && span.is_some() && !self.baggage.is_empty() {
            let mut all: Option<String> = None;
            self.baggage.for_each_current(|name, value| {
                let all = all.get_or_insert_with(|| span_fields.to_owned());
                self.format
                    .write_span_str(all, name.as_str(), value.as_str());
            });
            if let Some(all) = all {
                with_baggage = all;
                span_fields = &with_baggage;
            }
        }
        let (trace_id, span_id) = if self.trace_ids && span.is_some() {
            current_ids()
        } else {
            (None, None)
        };
        let scope = Scope {
            // The name the span is exported under, so that a line and its
            // span in the trace backend are found by the same name.
            span_name: fields
                .and_then(|f| f.otel_name.as_deref())
                .or_else(|| span.as_ref().map(|s| s.name())),
            span_fields,
            trace_id,
            span_id,
        };
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let header = Header {
            time: SystemTime::now(),
            level: meta.level(),
            target: meta.target(),
        };
        let record = |v: &mut dyn Visit| event.record(v);
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => {
                let scratch = &mut bufs.1;
                self.format
                    .write_event(out, scratch, &header, &record, &scope);
                if scratch.capacity() > 64 * 1024 {
                    *scratch = Vec::with_capacity(256);
                }
            }
            // Re-entered from inside a formatting call: a fresh buffer.
            Err(_) => self
                .format
                .write_event(out, &mut Vec::new(), &header, &record, &scope),
        });
    }
}

/// Whether `target` is the audit or the security target, whose events'
/// lines leave the span fields out.
#[inline]
pub(crate) fn is_audit_target(target: &str) -> bool {
    target == crate::audit::AUDIT_TARGET || target == crate::audit::SECURITY_TARGET
}

/// Writes each event's line (two for pretty inside a span).
pub(crate) struct LocalLayer {
    formatter: LineFormatter,
    writer: BoxMakeWriter,
}

impl fmt::Debug for LocalLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLayer")
            .field("formatter", &self.formatter)
            .finish()
    }
}

thread_local! {
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

impl LocalLayer {
    pub(crate) fn new(formatter: LineFormatter, writer: BoxMakeWriter) -> Self {
        LocalLayer { formatter, writer }
    }
}

/// The current OTel span's ids, when tracing-opentelemetry activated one.
fn current_ids() -> (Option<[u8; 16]>, Option<[u8; 8]>) {
    opentelemetry::Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            (
                Some(sc.trace_id().to_bytes()),
                Some(sc.span_id().to_bytes()),
            )
        } else {
            (None, None)
        }
    })
}

impl<S> Layer<S> for LocalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.formatter.on_new_span(attrs, id, &ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.formatter.on_record(id, values, &ctx);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let emit = |out: &mut Vec<u8>| {
            out.clear();
            self.formatter.format_event(event, &ctx, out);
            let normalized = event.normalized_metadata();
            let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
            let mut w = self.writer.make_writer_for(meta);
            // A broken stdout must never take the service down.
            let _ = w.write_all(out);
        };
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut out) => {
                emit(&mut out);
                if out.capacity() > 64 * 1024 {
                    *out = Vec::with_capacity(512);
                }
            }
            // Re-entered from inside a write: use a fresh buffer.
            Err(_) => emit(&mut Vec::new()),
        });
    }
}
