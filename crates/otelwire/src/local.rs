//! The local output layer: console (or any writer) in the configured format,
//! every line inside a span carrying the exported span's `trace_id` and `span_id`.

use std::cell::RefCell;
use std::fmt;
use std::io::Write;
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

use crate::format::{Header, LineFormat, Scope};

/// The fields of a span (and its ancestors), rendered once when recorded so
/// that each event inside it only copies them.
struct SpanFields {
    rendered: String,
}

/// Writes each event as one line.
pub(crate) struct LocalLayer {
    format: LineFormat,
    writer: BoxMakeWriter,
    /// Whether the OTel layer is active, so trace ids can be read.
    trace_ids: bool,
}

impl fmt::Debug for LocalLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLayer")
            .field("format", &self.format)
            .field("trace_ids", &self.trace_ids)
            .finish()
    }
}

thread_local! {
    static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> =
        RefCell::new((Vec::with_capacity(512), Vec::with_capacity(256)));
}

impl LocalLayer {
    pub(crate) fn new(format: LineFormat, writer: BoxMakeWriter, trace_ids: bool) -> Self {
        LocalLayer {
            format,
            writer,
            trace_ids,
        }
    }

    fn write_line(&self, event: &Event<'_>, scope: &Scope<'_>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        let header = Header {
            time: SystemTime::now(),
            level: meta.level(),
            target: meta.target(),
        };
        let record = |v: &mut dyn Visit| event.record(v);
        let emit = |out: &mut Vec<u8>, scratch: &mut Vec<u8>| {
            out.clear();
            self.format
                .write_event(out, scratch, &header, &record, scope);
            let mut w = self.writer.make_writer_for(meta);
            // A broken stdout must never take the service down.
            let _ = w.write_all(out);
        };
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => {
                let (out, scratch) = &mut *bufs;
                emit(out, scratch);
                if out.capacity() > 64 * 1024 {
                    *out = Vec::with_capacity(512);
                }
            }
            // Re-entered from inside a write: use fresh buffers.
            Err(_) => emit(&mut Vec::new(), &mut Vec::new()),
        });
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
        let Some(span) = ctx.span(id) else { return };
        let mut rendered = span
            .parent()
            .and_then(|p| {
                p.extensions()
                    .get::<SpanFields>()
                    .map(|f| f.rendered.clone())
            })
            .unwrap_or_default();
        self.format
            .write_span_fields(&mut rendered, &|v: &mut dyn Visit| attrs.record(v));
        span.extensions_mut().insert(SpanFields { rendered });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            self.format
                .write_span_fields(&mut fields.rendered, &|v: &mut dyn Visit| values.record(v));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = ctx.event_span(event);
        let ext = span.as_ref().map(|s| s.extensions());
        let span_fields = ext
            .as_ref()
            .and_then(|e| e.get::<SpanFields>())
            .map(|f| f.rendered.as_str())
            .unwrap_or("");
        let (trace_id, span_id) = if self.trace_ids && span.is_some() {
            current_ids()
        } else {
            (None, None)
        };
        let scope = Scope {
            span_name: span.as_ref().map(|s| s.name()),
            span_fields,
            trace_id,
            span_id,
        };
        self.write_line(event, &scope);
    }
}
