//! The `tracing` side: how the subscriber is assembled.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::{EnvFilter, Filtered, Targets};
use tracing_subscriber::layer::{Context, Layer, Layered};
use tracing_subscriber::registry::LookupSpan;

/// The subscriber under every layer: the registry behind the `RUST_LOG`
/// filter. Layers given to [`Builder::with_layer`](crate::Builder::with_layer)
/// are layers of this type.
pub type BaseSubscriber = Layered<FilterLayer, Registry>;

/// The `RUST_LOG` filter: a static [`Targets`] filter when the directives
/// only name targets and levels (the common case, with no per-span cost),
/// an [`EnvFilter`] when they also match span names or fields.
#[derive(Debug)]
pub struct FilterLayer(FilterKind);

#[derive(Debug)]
enum FilterKind {
    Targets(Targets),
    Env(Box<EnvFilter>),
}

impl<S> Layer<S> for FilterLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        match &self.0 {
            FilterKind::Targets(t) => Layer::<S>::register_callsite(t, metadata),
            FilterKind::Env(e) => Layer::<S>::register_callsite(&**e, metadata),
        }
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>, ctx: Context<'_, S>) -> bool {
        match &self.0 {
            FilterKind::Targets(t) => Layer::<S>::enabled(t, metadata, ctx),
            FilterKind::Env(e) => Layer::<S>::enabled(&**e, metadata, ctx),
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        match &self.0 {
            FilterKind::Targets(t) => Layer::<S>::max_level_hint(t),
            FilterKind::Env(e) => Layer::<S>::max_level_hint(&**e),
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if let FilterKind::Env(e) = &self.0 {
            Layer::<S>::on_new_span(&**e, attrs, id, ctx)
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let FilterKind::Env(e) = &self.0 {
            Layer::<S>::on_record(&**e, id, values, ctx)
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if let FilterKind::Env(e) = &self.0 {
            Layer::<S>::on_enter(&**e, id, ctx)
        }
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        if let FilterKind::Env(e) = &self.0 {
            Layer::<S>::on_exit(&**e, id, ctx)
        }
    }

    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if let FilterKind::Env(e) = &self.0 {
            Layer::<S>::on_close(&**e, id, ctx)
        }
    }
}

/// A boxed layer over [`BaseSubscriber`].
pub type BoxedLayer = Box<dyn Layer<BaseSubscriber> + Send + Sync + 'static>;

/// Crates whose events come from the exporters' own transport (or from
/// otelwire's export reporting): they never feed the OTel log bridge, or
/// exporting would make telemetry that needs exporting.
pub(crate) const TRANSPORT_TARGETS: &[&str] = &[
    "hyper",
    "hyper_util",
    "h2",
    "tonic",
    "tower",
    "reqwest",
    "rustls",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry-otlp",
    "opentelemetry_otlp",
    "opentelemetry-http",
    "opentelemetry-appender-tracing",
    "tracing-opentelemetry",
    "otelwire::export",
];

pub(crate) fn is_transport_target(target: &str) -> bool {
    TRANSPORT_TARGETS.iter().any(|t| {
        target
            .strip_prefix(t)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// Directives added to `RUST_LOG` unless it already names the target:
/// the transport crates stay quiet at `warn`, the OpenTelemetry SDK's own
/// diagnostics are off (otelwire counts and reports export failures itself,
/// once a minute instead of once per batch), and audit and security events
/// are kept at `info` whatever the general level (`RUST_LOG=warn` must not
/// lose a successful login from the audit trail).
const QUIET: &[(&str, &str)] = &[
    ("otelwire::audit", "info"),
    ("otelwire::security", "info"),
    ("h2", "warn"),
    ("hyper", "warn"),
    ("tonic", "warn"),
    ("tower", "warn"),
    ("reqwest", "warn"),
    ("rustls", "warn"),
    ("opentelemetry", "off"),
];

pub(crate) fn env_filter(filter: &str) -> FilterLayer {
    let mut spec = filter.trim().to_owned();
    for (target, level) in QUIET {
        if !spec.contains(target) {
            if !spec.is_empty() {
                spec.push(',');
            }
            spec.push_str(target);
            spec.push('=');
            spec.push_str(level);
        }
    }
    // Span-name and field directives (`[span{field=x}]=debug`) need the
    // EnvFilter; plain `target=level` lists do not.
    if !spec.contains(['[', '{'])
        && let Ok(targets) = spec.parse::<Targets>()
    {
        return FilterLayer(FilterKind::Targets(targets));
    }
    // Validated when the configuration was resolved.
    FilterLayer(FilterKind::Env(Box::new(
        EnvFilter::builder()
            .parse(&spec)
            .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_FILTER)),
    )))
}

/// Spans, plus ERROR events (which mark their span as failed and become
/// exception events); other events travel as log records instead of also
/// being copied into span events. The transport's own spans are left out,
/// or exporting spans would make spans to export.
pub(crate) fn trace_layer(
    provider: &SdkTracerProvider,
) -> Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<BaseSubscriber, opentelemetry_sdk::trace::Tracer>,
    tracing_subscriber::filter::FilterFn,
    BaseSubscriber,
> {
    let scope = opentelemetry::InstrumentationScope::builder("otelwire")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let tracer = provider.tracer_with_scope(scope);
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Busy/idle times and thread ids cost a clock read and an
        // allocation per span; async tasks hop threads anyway.
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            (m.is_span() || *m.level() == Level::ERROR) && !is_transport_target(m.target())
        }))
}

/// The OTel log bridge, minus the transport's own events.
pub(crate) struct Bridge {
    inner: OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>,
    /// The span fields copied onto log records; spans with none of them
    /// skip the bridge's per-span work.
    span_fields: Vec<String>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bridge")
    }
}

impl Bridge {
    /// `span_fields`: fields of the enclosing spans copied onto every log
    /// record emitted inside them (such as `request.id`).
    pub(crate) fn new(provider: &SdkLoggerProvider, span_fields: &[String]) -> Self {
        let mut b = OpenTelemetryTracingBridge::builder(provider);
        if !span_fields.is_empty() {
            b = b.with_tracing_span_attributes(
                opentelemetry_appender_tracing::layer::TracingSpanAttributes::allowlist(
                    span_fields.iter().cloned(),
                ),
            );
        }
        Bridge {
            inner: b.build(),
            span_fields: span_fields.to_vec(),
        }
    }

    fn copies(&self, field: &tracing::field::Field) -> bool {
        self.span_fields.iter().any(|f| f == field.name())
    }
}

/// The most fields a `tracing` callsite has (the macros' limit).
const MAX_FIELDS: usize = 32;

/// Copied fields captured per span at most (more: the bridge sees them all).
const MAX_CAPTURED: usize = 4;

/// A span field value the bridge copies onto log records.
#[derive(Default)]
enum Captured {
    #[default]
    Unset,
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl Captured {
    fn value(&self) -> Option<&dyn tracing::Value> {
        match self {
            Captured::Unset => None,
            Captured::Str(v) => Some(v),
            Captured::I64(v) => Some(v),
            Captured::U64(v) => Some(v),
            Captured::F64(v) => Some(v),
            Captured::Bool(v) => Some(v),
        }
    }
}

/// Captures the copied fields of a span with their field index.
struct Capture<'a> {
    bridge: &'a Bridge,
    found: [(usize, Captured); MAX_CAPTURED],
    len: usize,
    overflow: bool,
}

impl Capture<'_> {
    fn set(&mut self, field: &tracing::field::Field, value: impl FnOnce() -> Captured) {
        if !self.bridge.copies(field) {
            return;
        }
        match self.found.get_mut(self.len) {
            Some(slot) => {
                *slot = (field.index(), value());
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }
}

impl tracing::field::Visit for Capture<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.set(field, || Captured::Str(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.set(field, || Captured::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.set(field, || Captured::I64(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.set(field, || Captured::U64(value));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.set(field, || Captured::F64(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.set(field, || Captured::Bool(value));
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.set(field, || Captured::Str(value.to_string()));
    }
}

impl<S> Layer<S> for Bridge
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        // The bridge hashes every field of every span against its
        // allow-list: skip spans with none of the fields, and show it only
        // the copied fields of the others.
        let meta = attrs.metadata();
        if is_transport_target(meta.target()) || !meta.fields().iter().any(|f| self.copies(&f)) {
            return;
        }
        let fields = meta.fields();
        let mut capture = Capture {
            bridge: self,
            found: Default::default(),
            len: 0,
            overflow: false,
        };
        attrs.record(&mut capture);
        if capture.overflow || fields.len() > MAX_FIELDS {
            return self.inner.on_new_span(attrs, id, ctx);
        }
        let mut values: [Option<&dyn tracing::Value>; MAX_FIELDS] = [None; MAX_FIELDS];
        for (i, v) in &capture.found[..capture.len] {
            if let Some(slot) = values.get_mut(*i) {
                *slot = v.value();
            }
        }
        let set = fields.value_set_all(&values[..fields.len()]);
        self.inner
            .on_new_span(&tracing::span::Attributes::new(meta, &set), id, ctx)
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        let copied = ctx.metadata(id).is_some_and(|meta| {
            meta.fields()
                .iter()
                .any(|f| self.copies(&f) && values.contains(&f))
        });
        if copied {
            self.inner.on_record(id, values, ctx)
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if is_transport_target(meta.target()) {
            return;
        }
        self.inner.on_event(event, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_targets_match_whole_crate_names() {
        for t in [
            "hyper",
            "hyper::proto::h1",
            "hyper_util::client",
            "h2::codec",
            "tonic::transport",
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "otelwire::export",
        ] {
            assert!(is_transport_target(t), "{t}");
        }
        for t in [
            "tower_http::trace",
            "hyperion",
            "orders_api",
            "otelwire",
            "h2o",
        ] {
            assert!(!is_transport_target(t), "{t}");
        }
    }

    #[test]
    fn quiet_directives_are_added_unless_named() {
        let show = |f: FilterLayer| match f.0 {
            FilterKind::Targets(t) => format!("targets {t}"),
            FilterKind::Env(e) => format!("env {e}"),
        };
        let f = show(env_filter("info"));
        assert!(f.starts_with("targets "), "{f}");
        assert!(f.contains("h2=warn"), "{f}");
        assert!(f.contains("opentelemetry=off"), "{f}");
        let f = show(env_filter("debug,h2=trace"));
        assert!(f.contains("h2=trace"), "{f}");
        assert!(!f.contains("h2=warn"), "{f}");
        assert!(f.contains("otelwire::audit=info"), "{f}");
        let f = show(env_filter("warn,otelwire::audit=off"));
        assert!(f.contains("otelwire::audit=off"), "{f}");
        assert!(!f.contains("otelwire::audit=info"), "{f}");
        assert!(f.contains("otelwire::security=info"), "{f}");
        let f = show(env_filter("info,[checkout{order=7}]=trace"));
        assert!(f.starts_with("env "), "{f}");
    }
}
