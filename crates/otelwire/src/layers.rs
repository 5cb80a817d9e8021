//! The `tracing` side: how the subscriber is assembled.

use arc_swap::ArcSwap;
use opentelemetry::logs::AnyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, StringValue};
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{SdkLogRecord, SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber, span};
use tracing_log::NormalizeEvent;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::{EnvFilter, Filtered, Targets};
use tracing_subscriber::layer::{Context, Filter, Layer, Layered};
use tracing_subscriber::registry::LookupSpan;

/// The subscriber under every layer: the registry behind the filter gate.
/// Layers given to [`Builder::with_layer`](crate::Builder::with_layer)
/// are layers of this type.
pub type BaseSubscriber = Layered<FilterLayer, Registry>;

/// The filter gate in front of every layer: an event passes when the log
/// filter (`RUST_LOG`, [`Telemetry::set_filter`](crate::Telemetry::set_filter))
/// enables it; a span when the log filter or the traces filter
/// (`OTELWIRE_TRACES_FILTER`) does, so that the registry creates the spans
/// that only traces want and events inside them still find their span.
///
/// The filters in force are read without a lock (an atomic pointer load);
/// a change swaps them and rebuilds `tracing`'s callsite interest cache.
#[derive(Debug)]
pub struct FilterLayer {
    state: Arc<FilterState>,
    /// The pipeline's providers, for [`crate::current`].
    providers: Arc<crate::current::Providers>,
}

/// A `RUST_LOG`-syntax filter: a static [`Targets`] filter when the
/// directives only name targets and levels (the common case, with no
/// per-span cost), an [`EnvFilter`] when they also match span names or
/// fields.
#[derive(Debug)]
pub(crate) enum FilterKind {
    Targets(Targets),
    Env(Box<EnvFilter>),
}

impl FilterKind {
    fn is_env(&self) -> bool {
        matches!(self, FilterKind::Env(_))
    }

    fn register_callsite<S>(&self, metadata: &'static Metadata<'static>) -> Interest
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            FilterKind::Targets(t) => Layer::<S>::register_callsite(t, metadata),
            FilterKind::Env(e) => Layer::<S>::register_callsite(&**e, metadata),
        }
    }

    fn enabled<S>(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            FilterKind::Targets(t) => Layer::<S>::enabled(t, metadata, ctx),
            FilterKind::Env(e) => Layer::<S>::enabled(&**e, metadata, ctx),
        }
    }

    fn max_level_hint<S>(&self) -> Option<LevelFilter>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        match self {
            FilterKind::Targets(t) => Layer::<S>::max_level_hint(t),
            FilterKind::Env(e) => Layer::<S>::max_level_hint(&**e),
        }
    }
}

/// The two filters in force, built together and swapped together.
#[derive(Debug)]
pub(crate) struct Filters {
    /// The log filter's directives as set (normalized, without the
    /// directives otelwire adds).
    pub(crate) logs_spec: String,
    /// The traces filter's directives (normalized).
    pub(crate) traces_spec: String,
    /// Whether the traces filter was given (`OTELWIRE_TRACES_FILTER`,
    /// [`Builder::traces_filter`](crate::Builder::traces_filter)) rather
    /// than derived from the log filter.
    pub(crate) traces_explicit: bool,
    logs: FilterKind,
    traces: FilterKind,
}

impl Filters {
    /// `logs` and `traces` must have been validated ([`validate`]);
    /// `traces: None` derives the traces filter from `logs`.
    pub(crate) fn new(logs: &str, traces: Option<&str>) -> Self {
        let logs_spec = normalize_directives(logs);
        let traces_spec = match traces {
            Some(t) => normalize_directives(t),
            None => traces_from_logs(&logs_spec),
        };
        Filters {
            logs: env_filter(&logs_spec),
            traces: env_filter(&traces_spec),
            logs_spec,
            traces_spec,
            traces_explicit: traces.is_some(),
        }
    }

    fn has_env(&self) -> bool {
        self.logs.is_env() || self.traces.is_env()
    }
}

/// The filters in force, shared by the gate, the trace layer's filter and
/// every [`FilterHandle`](crate::FilterHandle).
pub(crate) struct FilterState {
    current: ArcSwap<Filters>,
    /// Serialises changes (never taken on the event path).
    writer: Mutex<()>,
    /// Whether an [`EnvFilter`] was ever in force: then each span keeps the
    /// filters that saw it created, for its enter, exit and close.
    env_seen: AtomicBool,
}

impl std::fmt::Debug for FilterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cur = self.current.load();
        f.debug_struct("FilterState")
            .field("logs", &cur.logs_spec)
            .field("traces", &cur.traces_spec)
            .finish()
    }
}

impl FilterState {
    pub(crate) fn new(filters: Filters) -> Arc<Self> {
        Arc::new(FilterState {
            env_seen: AtomicBool::new(filters.has_env()),
            current: ArcSwap::from_pointee(filters),
            writer: Mutex::new(()),
        })
    }

    /// The filters in force now.
    pub(crate) fn current(&self) -> Arc<Filters> {
        self.current.load_full()
    }

    /// Puts `logs` (validated) in force, with the traces filter derived from
    /// it unless one was given; returns the filters it replaced.
    pub(crate) fn replace_logs(&self, logs: &str) -> Arc<Filters> {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.current.load_full();
        let traces = old.traces_explicit.then_some(old.traces_spec.as_str());
        let new = Filters::new(logs, traces);
        if new.has_env() {
            self.env_seen.store(true, Ordering::Release);
        }
        self.current.store(Arc::new(new));
        // Cached `Interest::always`/`never` answers came from the old
        // filters: every callsite is asked again, and the global maximum
        // level recomputed.
        tracing::callsite::rebuild_interest_cache();
        old
    }

    pub(crate) fn gate(self: &Arc<Self>, providers: Arc<crate::current::Providers>) -> FilterLayer {
        FilterLayer {
            state: self.clone(),
            providers,
        }
    }
}

/// The filters that saw a span created (kept only while an [`EnvFilter`]
/// is or was in force: its per-span state must see the span's whole life).
struct SpanFilters(Arc<Filters>);

/// Either interest may enable the callsite.
fn union(a: Interest, b: Interest) -> Interest {
    if a.is_always() || b.is_always() {
        Interest::always()
    } else if a.is_never() && b.is_never() {
        Interest::never()
    } else {
        Interest::sometimes()
    }
}

impl FilterLayer {
    /// The providers of the pipeline this gate belongs to.
    pub(crate) fn providers(&self) -> &crate::current::Providers {
        &self.providers
    }

    fn span_filters<S>(&self, id: &span::Id, ctx: &Context<'_, S>) -> Option<Arc<Filters>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if !self.state.env_seen.load(Ordering::Acquire) {
            return None;
        }
        let span = ctx.span(id)?;
        let ext = span.extensions();
        ext.get::<SpanFilters>().map(|f| f.0.clone())
    }
}

impl<S> Layer<S> for FilterLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        let f = self.state.current.load();
        let logs = f.logs.register_callsite::<S>(metadata);
        if !metadata.is_span() {
            return logs;
        }
        union(logs, f.traces.register_callsite::<S>(metadata))
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        let f = self.state.current.load();
        if metadata.is_span() {
            f.logs.enabled(metadata, ctx.clone()) || f.traces.enabled(metadata, ctx)
        } else {
            f.logs.enabled(metadata, ctx)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        let f = self.state.current.load();
        Some(
            f.logs
                .max_level_hint::<S>()?
                .max(f.traces.max_level_hint::<S>()?),
        )
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !self.state.env_seen.load(Ordering::Acquire) {
            return;
        }
        let f = self.state.current.load_full();
        for kind in [&f.logs, &f.traces] {
            if let FilterKind::Env(e) = kind {
                Layer::<S>::on_new_span(&**e, attrs, id, ctx.clone());
            }
        }
        if f.has_env()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(SpanFilters(f));
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(f) = self.span_filters(id, &ctx) {
            for kind in [&f.logs, &f.traces] {
                if let FilterKind::Env(e) = kind {
                    Layer::<S>::on_record(&**e, id, values, ctx.clone());
                }
            }
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(f) = self.span_filters(id, &ctx) {
            for kind in [&f.logs, &f.traces] {
                if let FilterKind::Env(e) = kind {
                    Layer::<S>::on_enter(&**e, id, ctx.clone());
                }
            }
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        if let Some(f) = self.span_filters(id, &ctx) {
            for kind in [&f.logs, &f.traces] {
                if let FilterKind::Env(e) = kind {
                    Layer::<S>::on_exit(&**e, id, ctx.clone());
                }
            }
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if let Some(f) = self.span_filters(&id, &ctx) {
            for kind in [&f.logs, &f.traces] {
                if let FilterKind::Env(e) = kind {
                    Layer::<S>::on_close(&**e, id.clone(), ctx.clone());
                }
            }
        }
    }
}

/// The trace layer's own filter: spans the traces filter enables (never
/// the transport's), and, of the events the gate let through, ERROR ones
/// (they mark their span as failed).
#[derive(Debug)]
pub(crate) struct TraceFilter {
    state: Arc<FilterState>,
}

/// An event the trace layer takes: an ERROR one, not from the transport.
fn traced_event(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::ERROR && !is_transport_target(metadata.target())
}

impl<S> Filter<S> for TraceFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, metadata: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if !metadata.is_span() {
            return traced_event(metadata);
        }
        !is_transport_target(metadata.target())
            && self
                .state
                .current
                .load()
                .traces
                .enabled(metadata, cx.clone())
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        if !metadata.is_span() {
            return if traced_event(metadata) {
                Interest::always()
            } else {
                Interest::never()
            };
        }
        if is_transport_target(metadata.target()) {
            return Interest::never();
        }
        self.state
            .current
            .load()
            .traces
            .register_callsite::<S>(metadata)
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
    // Called for every span and event: match the crate name at once rather
    // than try each prefix in turn.
    let end = target
        .bytes()
        .position(|b| b == b':')
        .unwrap_or(target.len());
    let krate = &target[..end];
    match krate {
        "otelwire" => TRANSPORT_TARGETS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        }),
        _ => TRANSPORT_TARGETS.contains(&krate),
    }
}

/// Directives added to `RUST_LOG` unless it already names the target:
/// the transport crates stay quiet at `warn`, the OpenTelemetry SDK's own
/// diagnostics are off (otelwire counts and reports export failures itself,
/// once a minute instead of once per batch), and audit and security events
/// are kept at `info` whatever the general level (`RUST_LOG=warn` must not
/// lose a successful login from the audit trail), and so is the panic hook's
/// record at `error`.
const QUIET: &[(&str, &str)] = &[
    ("otelwire::audit", "info"),
    ("otelwire::panic", "error"),
    ("otelwire::security", "info"),
    ("h2", "warn"),
    ("hyper", "warn"),
    ("tonic", "warn"),
    ("tower", "warn"),
    ("reqwest", "warn"),
    ("rustls", "warn"),
    ("opentelemetry", "off"),
];

/// `filter` (normalized) with otelwire's additions, as the filter to run.
pub(crate) fn env_filter(filter: &str) -> FilterKind {
    let mut spec = filter.to_owned();
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
        return FilterKind::Targets(targets);
    }
    // Validated when the configuration was resolved (or before a change).
    FilterKind::Env(Box::new(
        EnvFilter::builder()
            .parse(&spec)
            .unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_FILTER)),
    ))
}

/// One parser decides what `RUST_LOG` means: [`EnvFilter`]'s, which
/// validates it. The fast path's [`Targets`] parser read an empty
/// directive (`info,`, `warn,,`) differently, as one that silences
/// everything; so spaces around directives are trimmed (`info, app=debug`),
/// empty directives dropped, and every other one written back as
/// `EnvFilter` understood it, before either parser sees the list.
/// Span-name and field directives (`[`, `{`, whose commas are not
/// separators) are left to `EnvFilter` as given.
pub(crate) fn normalize_directives(filter: &str) -> String {
    if filter.contains(['[', '{']) {
        return filter.trim().to_owned();
    }
    let directives: Vec<String> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<tracing_subscriber::filter::Directive>()
                .map_or_else(|_| d.to_owned(), |d| d.to_string())
        })
        .collect();
    directives.join(",")
}

/// A filter's directives that do not parse, as [`EnvFilter`] reads them
/// (the parser init validates `RUST_LOG` with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadDirective {
    /// The first directive that does not parse (the whole list when no
    /// single one is to blame).
    pub(crate) directive: String,
    /// The parser's reason.
    pub(crate) reason: String,
}

/// Validates `filter` exactly as init validates `RUST_LOG`: the
/// normalized list ([`normalize_directives`]) through [`EnvFilter`]'s
/// parser. On error, the first directive that does not parse alone is
/// named.
pub(crate) fn validate(filter: &str) -> Result<(), BadDirective> {
    let Err(e) = EnvFilter::builder().parse(normalize_directives(filter)) else {
        return Ok(());
    };
    let directive = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find(|d| d.parse::<tracing_subscriber::filter::Directive>().is_err())
        .unwrap_or(filter.trim())
        .to_owned();
    Err(BadDirective {
        directive,
        reason: e.to_string(),
    })
}

/// The traces filter when none is given: the log filter's directives,
/// each at least `info`, with `info` for every target the list does not
/// name (`warn` → `info`, `warn,app=debug` → `info,app=debug`,
/// `app=debug` → `info,app=debug`). A target turned `off` stays off
/// (`info,otelwire_sqlx=off` is how a service drops the query spans); a
/// default level of `off` becomes `info`, as `warn` does.
pub(crate) fn traces_from_logs(logs: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut has_default = false;
    for d in logs.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // `Directive`'s display always ends with its level, after an `=`
        // unless the directive is a level alone.
        let shown = d
            .parse::<tracing_subscriber::filter::Directive>()
            .map_or_else(|_| d.to_owned(), |d| d.to_string());
        let (head, level) = match shown.rsplit_once('=') {
            Some((head, level)) => (Some(head), level),
            None => {
                has_default = true;
                (None, shown.as_str())
            }
        };
        let level = match level.parse::<LevelFilter>() {
            Ok(LevelFilter::OFF) if head.is_some() => level,
            Ok(l) if l < LevelFilter::INFO => "info",
            _ => level,
        };
        out.push(match head {
            Some(head) => format!("{head}={level}"),
            None => level.to_owned(),
        });
    }
    if !has_default {
        out.insert(0, "info".to_owned());
    }
    out.join(",")
}

/// The trace layer: tracing-opentelemetry behind [`TraceFilter`] (spans
/// that the traces filter enables, plus ERROR events, which mark their
/// span as failed and become exception events; other events travel as
/// log records instead of also being copied into span events). The
/// transport's own spans are left out, or exporting spans would make
/// spans to export.
pub(crate) fn trace_layer(
    provider: &SdkTracerProvider,
    state: &Arc<FilterState>,
) -> Filtered<
    tracing_opentelemetry::OpenTelemetryLayer<BaseSubscriber, opentelemetry_sdk::trace::Tracer>,
    TraceFilter,
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
        .with_filter(TraceFilter {
            state: state.clone(),
        })
}

/// The OTel log bridge, minus the transport's own events, plus the copy of
/// chosen span fields (such as `request.id`) onto every log record emitted
/// inside the span.
///
/// The copy is otelwire's own rather than the appender's
/// `with_tracing_span_attributes`, which hashes every field of every span
/// against its allow-list and keeps an owned copy per span and per record:
/// here a span's copied fields are captured once as log attributes (strings
/// shared, not copied), and each record gets them through the log gate
/// ([`take_span_fields`]) on the emitting thread.
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

/// The copied fields of one span, as log record attributes.
struct SpanLogFields(Vec<(Key, AnyValue)>);

thread_local! {
    /// The enclosing spans' copied fields of the event being bridged on this
    /// thread, for the log gate to add to the record it is handed.
    static PENDING: RefCell<Vec<(Key, AnyValue)>> = const { RefCell::new(Vec::new()) };
}

/// Adds the copied span fields of the event being bridged on this thread
/// to `record` (called by the log gate, inside the bridge's call).
pub(crate) fn take_span_fields(record: &mut SdkLogRecord) {
    use opentelemetry::logs::LogRecord as _;
    PENDING.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut()
            && !p.is_empty()
        {
            record.add_attributes(p.drain(..));
        }
    })
}

impl Bridge {
    /// `span_fields`: fields of the enclosing spans copied onto every log
    /// record emitted inside them (such as `request.id`).
    pub(crate) fn new(provider: &SdkLoggerProvider, span_fields: &[String]) -> Self {
        Bridge {
            inner: OpenTelemetryTracingBridge::new(provider),
            span_fields: span_fields.to_vec(),
        }
    }

    fn copies(&self, field: &tracing::field::Field) -> bool {
        self.span_fields.iter().any(|f| f == field.name())
    }

    /// The copied fields among `record`'s values.
    fn capture(&self, record: impl FnOnce(&mut Capture<'_>)) -> Vec<(Key, AnyValue)> {
        let mut capture = Capture {
            bridge: self,
            fields: Vec::new(),
        };
        record(&mut capture);
        capture.fields
    }
}

/// Captures the copied fields of a span as log attributes.
struct Capture<'a> {
    bridge: &'a Bridge,
    fields: Vec<(Key, AnyValue)>,
}

impl Capture<'_> {
    fn set(&mut self, field: &tracing::field::Field, value: impl FnOnce() -> AnyValue) {
        if self.bridge.copies(field) {
            self.fields
                .push((Key::from_static_str(field.name()), value()));
        }
    }
}

/// A string shared between the span and every record it is copied onto.
fn shared(s: &str) -> AnyValue {
    AnyValue::String(StringValue::from(std::sync::Arc::<str>::from(s)))
}

impl tracing::field::Visit for Capture<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.set(field, || shared(&format!("{value:?}")));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.set(field, || shared(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.set(field, || AnyValue::Int(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.set(field, || match i64::try_from(value) {
            Ok(v) => AnyValue::Int(v),
            Err(_) => shared(&value.to_string()),
        });
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.set(field, || AnyValue::Double(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.set(field, || AnyValue::Boolean(value));
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        self.set(field, || shared(&value.to_string()));
    }
}

/// Whether a record sets any copied field.
struct Probe<'a> {
    bridge: &'a Bridge,
    copied: bool,
}

impl tracing::field::Visit for Probe<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, _: &dyn std::fmt::Debug) {
        self.copied |= self.bridge.copies(field);
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
        let meta = attrs.metadata();
        if is_transport_target(meta.target()) || !meta.fields().iter().any(|f| self.copies(&f)) {
            return;
        }
        let fields = self.capture(|c| attrs.record(c));
        if !fields.is_empty()
            && let Some(span) = ctx.span(id)
        {
            span.extensions_mut().insert(SpanLogFields(fields));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        // Only the recorded fields are visited: no registry look-up.
        let mut probe = Probe {
            bridge: self,
            copied: false,
        };
        values.record(&mut probe);
        if !probe.copied {
            return;
        }
        let fields = self.capture(|c| values.record(c));
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        match ext.get_mut::<SpanLogFields>() {
            Some(stored) => {
                for (k, v) in fields {
                    match stored.0.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => stored.0.push((k, v)),
                    }
                }
            }
            None => ext.insert(SpanLogFields(fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if is_transport_target(meta.target()) {
            return;
        }
        let mut staged = false;
        if !self.span_fields.is_empty()
            && let Some(scope) = ctx.event_scope(event)
        {
            PENDING.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.clear();
                    // Leaf to root: no collecting of the scope to reverse it
                    // (the order of the attributes on the record is not
                    // meaningful).
                    // An audit or security event's own fields are masked:
                    // a copied span field of the same name (the request's
                    // full `client.address`) must not bring it back.
                    let audit = crate::local::is_audit_target(meta.target());
                    let fields = meta.fields();
                    for span in scope {
                        if let Some(stored) = span.extensions().get::<SpanLogFields>() {
                            p.extend(
                                stored
                                    .0
                                    .iter()
                                    .filter(|(k, _)| !audit || fields.field(k.as_str()).is_none())
                                    .cloned(),
                            );
                        }
                    }
                    staged = !p.is_empty();
                }
            });
        }
        self.inner.on_event(event, ctx);
        if staged {
            // Not taken when the record was not emitted.
            PENDING.with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.clear();
                }
            });
        }
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
        let show = |f: FilterKind| match f {
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

    #[test]
    fn the_derived_traces_filter_is_never_quieter_than_info() {
        assert_eq!(traces_from_logs("warn"), "info");
        assert_eq!(traces_from_logs("error"), "info");
        assert_eq!(traces_from_logs("off"), "info");
        assert_eq!(traces_from_logs("info"), "info");
        assert_eq!(traces_from_logs("debug"), "debug");
        assert_eq!(
            traces_from_logs("warn,orders_api=debug,sqlx=off"),
            "info,orders_api=debug,sqlx=off"
        );
        assert_eq!(traces_from_logs("warn,sqlx=error"), "info,sqlx=info");
        assert_eq!(
            traces_from_logs("orders_api=debug"),
            "info,orders_api=debug"
        );
        assert_eq!(traces_from_logs("orders_api"), "info,orders_api=trace");
        assert_eq!(
            traces_from_logs("warn,[checkout{order=7}]=error"),
            "info,[checkout{order=7}]=info"
        );
    }

    #[test]
    fn a_bad_directive_is_named() {
        assert_eq!(validate("info, orders_api=debug,"), Ok(()));
        let e = validate("info,orders_api=loud").unwrap_err();
        assert_eq!(e.directive, "orders_api=loud");
        assert!(!e.reason.is_empty());
        let e = validate("info,[unclosed=debug").unwrap_err();
        assert_eq!(e.directive, "[unclosed=debug");
    }
}
