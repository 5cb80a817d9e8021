//! One query's span, duration and slow-query event.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use futures_core::Stream;
use otelwire::opentelemetry::global::{BoxedSpan, BoxedTracer};
use otelwire::opentelemetry::metrics::{BoundHistogram, Histogram};
use otelwire::opentelemetry::trace::{
    Span as _, SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use otelwire::opentelemetry::{self, KeyValue};
use otelwire::opentelemetry_semantic_conventions::attribute::{
    DB_COLLECTION_NAME, DB_NAMESPACE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_RESPONSE_RETURNED_ROWS,
    DB_RESPONSE_STATUS_CODE, DB_SYSTEM_NAME, ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT,
};
use sqlx::Database;
use sqlx::Either;
use sqlx_core::executor::Execute;
use sqlx_core::sql_str::SqlStr;
use tracing_core::callsite::DefaultCallsite;
use tracing_core::field::FieldSet;
use tracing_core::metadata::Kind;
use tracing_core::{Level, Metadata};

use crate::config::{QueryText, Settings};
use crate::sanitize;
use crate::system::ConnectionTarget;

/// The target of the slow-query event, and the target whose `INFO` level
/// turns the query spans on and off in the `tracing` filter (`RUST_LOG`).
pub const TARGET: &str = "otelwire_sqlx";

/// Parsed query texts kept per instrumentation; past this many distinct
/// texts the cache starts over (queries with inlined values would
/// otherwise grow it without bound).
const CACHE_LIMIT: usize = 1024;

/// What every query of one pool shares: its target, its settings, the
/// tracer, the duration histogram and the parsed-text cache.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) system: &'static str,
    pub(crate) target: ConnectionTarget,
    pub(crate) settings: Settings,
    pub(crate) duration: Histogram<f64>,
    tracer: BoxedTracer,
    /// `db.system.name`, `db.namespace`, `server.address`, `server.port`:
    /// the attributes every span and measurement has.
    base: Vec<KeyValue>,
    cache: Mutex<HashMap<SqlStr, Arc<QueryInfo>, TextHash>>,
}

/// What a query text tells, computed once per distinct text. The strings
/// are shared (`Arc<str>`), so that a query's span copies no text.
#[derive(Debug)]
pub(crate) struct QueryInfo {
    /// The span name.
    name: Cow<'static, str>,
    operation: Option<Arc<str>>,
    collection: Option<Arc<str>>,
    /// For the slow-query event (never the full text).
    sanitized: Option<Arc<str>>,
    /// The span's attributes but the outcome: the base ones,
    /// `db.operation.name`, `db.collection.name` and `db.query.text` as the
    /// settings want it.
    span_attributes: Vec<KeyValue>,
    /// The duration's attributes for a success.
    attributes: Vec<KeyValue>,
    /// The histogram bound to `attributes`.
    success: BoundHistogram<f64>,
}

impl Shared {
    pub(crate) fn new(
        system: &'static str,
        target: ConnectionTarget,
        settings: Settings,
        duration: Histogram<f64>,
        tracer: BoxedTracer,
    ) -> Shared {
        let mut base = vec![KeyValue::new(DB_SYSTEM_NAME, system)];
        if let Some(ns) = &target.namespace {
            base.push(KeyValue::new(DB_NAMESPACE, Arc::<str>::from(ns.as_str())));
        }
        if let Some(addr) = &target.server_address {
            base.push(KeyValue::new(
                SERVER_ADDRESS,
                Arc::<str>::from(addr.as_str()),
            ));
        }
        if let Some(port) = target.server_port {
            base.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
        Shared {
            system,
            target,
            settings,
            duration,
            tracer,
            base,
            cache: Mutex::new(HashMap::with_hasher(TextHash::new())),
        }
    }

    fn info(&self, sql: &SqlStr) -> Arc<QueryInfo> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(info) = cache.get(sql.as_str()) {
            return info.clone();
        }
        let info = Arc::new(self.describe(sql.as_str()));
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(sql.clone(), info.clone());
        info
    }

    fn describe(&self, sql: &str) -> QueryInfo {
        let parsed = sanitize::parse(sql);
        let operation: Option<Arc<str>> = parsed.operation.as_deref().map(Arc::from);
        let collection: Option<Arc<str>> = parsed.collection.as_deref().map(Arc::from);
        let name = match (&parsed.operation, &parsed.collection) {
            (Some(op), Some(coll)) => span_name(format!("{op} {coll}")),
            (Some(op), None) => span_name(op.clone()),
            _ => Cow::Borrowed(self.system),
        };
        let sanitized: Option<Arc<str>> =
            (self.settings.query_text != QueryText::Off).then(|| Arc::from(parsed.sanitized));
        let text = match self.settings.query_text {
            QueryText::Full => Some(Arc::from(sql)),
            QueryText::Sanitized => sanitized.clone(),
            QueryText::Off => None,
        };
        let mut attributes = self.base.clone();
        if let Some(op) = &operation {
            attributes.push(KeyValue::new(DB_OPERATION_NAME, op.clone()));
        }
        if let Some(coll) = &collection {
            attributes.push(KeyValue::new(DB_COLLECTION_NAME, coll.clone()));
        }
        let mut span_attributes = attributes.clone();
        if let Some(text) = text {
            span_attributes.push(KeyValue::new(DB_QUERY_TEXT, text));
        }
        let success = self.duration.bind(&attributes);
        QueryInfo {
            name,
            operation,
            collection,
            sanitized,
            span_attributes,
            attributes,
            success,
        }
    }

    /// Starts a query: its clock, and unless the `tracing` filter turns
    /// the query spans off, its parent (the current OpenTelemetry context,
    /// which tracing-opentelemetry sets to the entered span's) and its
    /// wall-clock start.
    pub(crate) fn start(&self) -> Call<'_> {
        let span = spans_enabled().then(|| (opentelemetry::Context::current(), SystemTime::now()));
        Call {
            shared: self,
            span,
            started: Instant::now(),
            sql: Arc::new(OnceLock::new()),
            rows: 0,
            done: false,
        }
    }
}

/// Span names kept for the life of the process at most (they are
/// `{operation} {table}`, so few in a given service); past this many,
/// names are allocated per span.
const NAME_LIMIT: usize = 1024;

/// `name` as a span name: a `&'static str` shared by every span of that
/// name, so that making and exporting a span copies no name.
fn span_name(name: String) -> Cow<'static, str> {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(name.as_str()) {
        return Cow::Borrowed(known);
    }
    if names.len() >= NAME_LIMIT {
        return Cow::Owned(name);
    }
    let name: &'static str = Box::leak(name.into_boxed_str());
    names.insert(name);
    Cow::Borrowed(name)
}

/// Whether query spans are wanted: `tracing`'s maximum level allows `INFO`
/// and the subscribers' filters do not rule out spans of target
/// [`TARGET`] at `INFO` (as `RUST_LOG=info,otelwire_sqlx=off` does). Both
/// answers are cached by `tracing` (and recomputed when a filter changes),
/// so this costs two loads where asking the subscriber about each query
/// (`tracing::span_enabled!`) would cost about 500 instructions. Filters
/// that decide per span rather than per target and level (directives on
/// span names or fields) do not apply: with those, the spans stay on.
fn spans_enabled() -> bool {
    static META: Metadata<'static> = Metadata::new(
        "db.query",
        TARGET,
        Level::INFO,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(&[], tracing_core::identify_callsite!(&CALLSITE)),
        Kind::SPAN,
    );
    static CALLSITE: DefaultCallsite = DefaultCallsite::new(&META);
    tracing::level_enabled!(Level::INFO) && !CALLSITE.interest().is_never()
}

/// The hasher of the parsed-text cache: a multiply-rotate hash of the
/// text's words (several times cheaper than SipHash on query texts),
/// seeded at random per pool.
#[derive(Debug, Clone)]
struct TextHash(u64);

impl TextHash {
    fn new() -> TextHash {
        TextHash(RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for TextHash {
    type Hasher = TextHasher;

    fn build_hasher(&self) -> TextHasher {
        TextHasher(self.0)
    }
}

struct TextHasher(u64);

impl TextHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for TextHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        // Fold the high bits, which the multiplication mixes best, into the
        // low ones the table indexes by.
        self.0 ^ (self.0 >> 32)
    }
}

/// A query under way; finished exactly once, on completion or drop.
///
/// Its span is made whole at the end, with the OpenTelemetry API: the
/// name, the attributes and the outcome are all known only then (the
/// driver reads the query's text after the query has started), and one
/// span built in one go costs far less than a `tracing` span recorded and
/// closed.
pub(crate) struct Call<'a> {
    shared: &'a Shared,
    /// The parent context and the wall-clock start, when the span is on.
    span: Option<(opentelemetry::Context, SystemTime)>,
    started: Instant,
    /// Filled by [`Probe`] when the driver takes the query's text.
    sql: Arc<OnceLock<SqlStr>>,
    rows: i64,
    done: bool,
}

/// A failed query's `error.type`, database code and status description.
struct Failure {
    kind: String,
    code: Option<String>,
    description: String,
}

impl Call<'_> {
    /// Wraps the query so that its text is seen when the driver reads it.
    pub(crate) fn probe<E>(&self, query: E) -> Probe<E> {
        Probe {
            inner: query,
            slot: self.sql.clone(),
        }
    }

    pub(crate) fn row(&mut self) {
        self.rows += 1;
    }

    /// Makes the span, records the histogram, and logs the slow-query
    /// event when due.
    pub(crate) fn finish(&mut self, error: Option<&sqlx::Error>) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = self.started.elapsed();
        let shared = self.shared;
        let info = self.sql.get().map(|sql| shared.info(sql));
        let failure = error.map(|e| {
            let (kind, code) = classify(e);
            // A database's message can quote the offending value
            // (`invalid input syntax for type integer: "…"`): only with the
            // full query text are values shown.
            let description = match shared.settings.query_text {
                QueryText::Full => e.to_string(),
                _ => format!("{} error {kind}", shared.system),
            };
            Failure {
                kind,
                code,
                description,
            }
        });
        // A query that never got a connection (the pool timed out or was
        // closed) did not run: its wait is no slow query, only an error.
        let slow = shared
            .settings
            .slow_query
            .filter(|threshold| elapsed >= *threshold)
            .filter(|_| !error.is_some_and(never_ran));
        // The query span's context, for the slow-query event.
        let mut context = None;
        if let Some((parent, start)) = self.span.take() {
            let span = self.export_span(&parent, start, elapsed, info.as_deref(), failure.as_ref());
            if slow.is_some() {
                context = Some(parent.with_remote_span_context(span.span_context().clone()));
            }
        }
        match (&info, &failure) {
            (Some(info), None) => info.success.record(elapsed.as_secs_f64()),
            (info, failure) => {
                let mut attributes = match info {
                    Some(info) => info.attributes.clone(),
                    None => shared.base.clone(),
                };
                if let Some(f) = failure {
                    attributes.push(KeyValue::new(ERROR_TYPE, f.kind.clone()));
                    if let Some(code) = &f.code {
                        attributes.push(KeyValue::new(DB_RESPONSE_STATUS_CODE, code.clone()));
                    }
                }
                shared.duration.record(elapsed.as_secs_f64(), &attributes);
            }
        }
        if let Some(threshold) = slow {
            slow_query(context, info.as_deref(), shared.system, elapsed, threshold);
        }
    }

    /// Builds, starts and ends the query's span in one go; returns it
    /// (ended: only its context is of use).
    fn export_span(
        &self,
        parent: &opentelemetry::Context,
        start: SystemTime,
        elapsed: Duration,
        info: Option<&QueryInfo>,
        failure: Option<&Failure>,
    ) -> BoxedSpan {
        let shared = self.shared;
        let (name, fixed) = match info {
            Some(info) => (info.name.clone(), info.span_attributes.as_slice()),
            None => (Cow::Borrowed(shared.system), shared.base.as_slice()),
        };
        let mut attributes = Vec::with_capacity(fixed.len() + 3);
        attributes.extend_from_slice(fixed);
        attributes.push(KeyValue::new(DB_RESPONSE_RETURNED_ROWS, self.rows));
        if let Some(f) = failure {
            attributes.push(KeyValue::new(ERROR_TYPE, f.kind.clone()));
            if let Some(code) = &f.code {
                attributes.push(KeyValue::new(DB_RESPONSE_STATUS_CODE, code.clone()));
            }
        }
        let builder = SpanBuilder {
            name,
            span_kind: Some(SpanKind::Client),
            start_time: Some(start),
            attributes: Some(attributes),
            ..SpanBuilder::default()
        };
        let mut span = shared.tracer.build_with_context(builder, parent);
        if let Some(f) = failure {
            span.set_status(Status::error(f.description.clone()));
        }
        span.end_with_timestamp(start + elapsed);
        span
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        // A stream dropped before its end (the caller had enough rows) or
        // a cancelled future: what ran is still recorded.
        self.finish(None);
    }
}

/// Whether a query failed with `e` before reaching the database: the
/// pool gave it no connection.
fn never_ran(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)
}

/// Logs the slow-query WARN event: a `tracing` event in the current span
/// (so that it reaches every output and carries the span's copied fields,
/// such as `request.id`), with the query span's context attached while it
/// is emitted, so that its log record (and its console line) carries the
/// query span's trace and span ids.
fn slow_query(
    context: Option<opentelemetry::Context>,
    info: Option<&QueryInfo>,
    system: &'static str,
    elapsed: Duration,
    threshold: Duration,
) {
    let operation = info.and_then(|i| i.operation.as_deref());
    let collection = info.and_then(|i| i.collection.as_deref());
    let text = info.and_then(|i| i.sanitized.as_deref());
    let name = info.map_or(system, |i| &*i.name);
    let ms = elapsed.as_secs_f64() * 1000.0;
    let message = format!(
        "slow query: {name} took {ms:.1} ms (threshold {} ms)",
        threshold.as_millis()
    );
    let _attached = context.map(opentelemetry::Context::attach);
    tracing::warn!(
        target: TARGET,
        duration_ms = ms,
        threshold_ms = threshold.as_millis() as i64,
        "db.system.name" = system,
        "db.operation.name" = operation,
        "db.collection.name" = collection,
        "db.query.text" = text,
        "{message}"
    );
}

/// `error.type` and, for database errors, the database's own code.
fn classify(e: &sqlx::Error) -> (String, Option<String>) {
    use sqlx::Error as E;
    let kind = match e {
        E::Database(db) => {
            let code = db.code().map(|c| c.into_owned());
            return (code.clone().unwrap_or_else(|| "database".into()), code);
        }
        E::Configuration(_) => "configuration",
        E::InvalidArgument(_) => "invalid_argument",
        E::Io(_) => "io",
        E::Tls(_) => "tls",
        E::Protocol(_) => "protocol",
        E::RowNotFound => "row_not_found",
        E::TypeNotFound { .. } => "type_not_found",
        E::ColumnIndexOutOfBounds { .. } => "column_index_out_of_bounds",
        E::ColumnNotFound(_) => "column_not_found",
        E::ColumnDecode { .. } => "column_decode",
        E::Encode(_) => "encode",
        E::Decode(_) => "decode",
        E::PoolTimedOut => "pool_timed_out",
        E::PoolClosed => "pool_closed",
        E::WorkerCrashed => "worker_crashed",
        _ => "other",
    };
    (kind.to_owned(), None)
}

/// A query that tells the instrumentation its text when the driver reads it.
#[derive(Debug)]
pub(crate) struct Probe<E> {
    inner: E,
    slot: Arc<OnceLock<SqlStr>>,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Probe<E> {
    fn sql(self) -> SqlStr {
        let sql = self.inner.sql();
        let _ = self.slot.set(sql.clone());
        sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.inner.statement()
    }

    fn take_arguments(
        &mut self,
    ) -> Result<Option<<DB as Database>::Arguments>, sqlx_core::error::BoxDynError> {
        self.inner.take_arguments()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }
}

/// The driver's stream of results, counted and finished by a [`Call`].
pub(crate) struct Counted<'e, S> {
    pub(crate) inner: S,
    pub(crate) call: Call<'e>,
}

impl<'e, S, R, Q> Stream for Counted<'e, S>
where
    S: Stream<Item = Result<Either<Q, R>, sqlx::Error>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(Either::Right(_)))) => this.call.row(),
            Poll::Ready(Some(Err(e))) => this.call.finish(Some(e)),
            Poll::Ready(None) => this.call.finish(None),
            _ => {}
        }
        polled
    }
}
