//! One query's span, duration and slow-query event.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::Histogram;
use otelwire::opentelemetry_semantic_conventions::attribute::{
    DB_COLLECTION_NAME, DB_NAMESPACE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_RESPONSE_RETURNED_ROWS,
    DB_RESPONSE_STATUS_CODE, DB_SYSTEM_NAME, ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT,
};
use sqlx::Database;
use sqlx::Either;
use sqlx_core::executor::Execute;
use sqlx_core::sql_str::SqlStr;
use tracing::field::Empty;

use crate::config::{QueryText, Settings};
use crate::sanitize;
use crate::system::ConnectionTarget;

/// The target of the query spans and of the slow-query event.
pub const TARGET: &str = "otelwire_sqlx";

/// Parsed query texts kept per instrumentation; past this many distinct
/// texts the cache starts over (queries with inlined values would
/// otherwise grow it without bound).
const CACHE_LIMIT: usize = 1024;

/// What every query of one pool shares: its target, its settings, the
/// duration histogram and the parsed-text cache.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) system: &'static str,
    pub(crate) target: ConnectionTarget,
    pub(crate) settings: Settings,
    pub(crate) duration: Histogram<f64>,
    cache: Mutex<HashMap<SqlStr, Arc<QueryInfo>>>,
}

/// What a query text tells, computed once per distinct text.
#[derive(Debug)]
pub(crate) struct QueryInfo {
    name: String,
    operation: Option<String>,
    collection: Option<String>,
    /// `db.query.text` as the settings want it.
    text: Option<String>,
    /// For the slow-query event (never the full text).
    sanitized: Option<String>,
    /// The duration's attributes for a success.
    attributes: Vec<KeyValue>,
}

impl Shared {
    pub(crate) fn new(
        system: &'static str,
        target: ConnectionTarget,
        settings: Settings,
        duration: Histogram<f64>,
    ) -> Shared {
        Shared {
            system,
            target,
            settings,
            duration,
            cache: Mutex::new(HashMap::new()),
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
        let name = match (&parsed.operation, &parsed.collection) {
            (Some(op), Some(coll)) => format!("{op} {coll}"),
            (Some(op), None) => op.clone(),
            _ => self.system.to_owned(),
        };
        let text = match self.settings.query_text {
            QueryText::Full => Some(sql.to_owned()),
            QueryText::Sanitized => Some(parsed.sanitized.clone()),
            QueryText::Off => None,
        };
        let sanitized = (self.settings.query_text != QueryText::Off).then_some(parsed.sanitized);
        let mut attributes = self.base_attributes();
        if let Some(op) = &parsed.operation {
            attributes.push(KeyValue::new(DB_OPERATION_NAME, op.clone()));
        }
        if let Some(coll) = &parsed.collection {
            attributes.push(KeyValue::new(DB_COLLECTION_NAME, coll.clone()));
        }
        QueryInfo {
            name,
            operation: parsed.operation,
            collection: parsed.collection,
            text,
            sanitized,
            attributes,
        }
    }

    fn base_attributes(&self) -> Vec<KeyValue> {
        let mut a = vec![KeyValue::new(DB_SYSTEM_NAME, self.system)];
        if let Some(ns) = &self.target.namespace {
            a.push(KeyValue::new(DB_NAMESPACE, ns.clone()));
        }
        if let Some(addr) = &self.target.server_address {
            a.push(KeyValue::new(SERVER_ADDRESS, addr.clone()));
        }
        if let Some(port) = self.target.server_port {
            a.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
        a
    }

    /// Starts a query: its span (a child of the current span) and clock.
    pub(crate) fn start(&self) -> Call<'_> {
        let span = tracing::info_span!(
            target: TARGET,
            "db.query",
            otel.name = self.system,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            { DB_SYSTEM_NAME } = self.system,
            { DB_NAMESPACE } = self.target.namespace.as_deref(),
            { DB_OPERATION_NAME } = Empty,
            { DB_COLLECTION_NAME } = Empty,
            { DB_QUERY_TEXT } = Empty,
            { DB_RESPONSE_RETURNED_ROWS } = Empty,
            { DB_RESPONSE_STATUS_CODE } = Empty,
            { ERROR_TYPE } = Empty,
            { SERVER_ADDRESS } = self.target.server_address.as_deref(),
            { SERVER_PORT } = self.target.server_port.map(i64::from),
        );
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

/// A query under way; finished exactly once, on completion or drop.
///
/// Its span is never entered while the query runs: tracing-opentelemetry
/// starts the OpenTelemetry span at the first entry and ignores a new
/// `otel.name` after that, and the name is known only once the driver has
/// read the query's text.
pub(crate) struct Call<'a> {
    shared: &'a Shared,
    pub(crate) span: tracing::Span,
    started: Instant,
    /// Filled by [`Probe`] when the driver takes the query's text.
    sql: Arc<OnceLock<SqlStr>>,
    rows: i64,
    done: bool,
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

    /// Records the outcome on the span and the histogram, and the
    /// slow-query event when due.
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
            (kind, code, description)
        });
        self.record(info.as_deref(), failure.as_ref());
        let mut attributes;
        let attrs: &[KeyValue] = match (&info, &failure) {
            (Some(info), None) => &info.attributes,
            (info, failure) => {
                attributes = match info {
                    Some(info) => info.attributes.clone(),
                    None => shared.base_attributes(),
                };
                if let Some((kind, code, _)) = failure {
                    attributes.push(KeyValue::new(ERROR_TYPE, kind.clone()));
                    if let Some(code) = code {
                        attributes.push(KeyValue::new(DB_RESPONSE_STATUS_CODE, code.clone()));
                    }
                }
                &attributes
            }
        };
        shared.duration.record(elapsed.as_secs_f64(), attrs);
        if let Some(threshold) = shared.settings.slow_query
            && elapsed >= threshold
        {
            slow_query(
                &self.span,
                info.as_deref(),
                shared.system,
                elapsed,
                threshold,
            );
        }
    }

    /// Records the outcome on the span in one call: every `record` goes
    /// through each layer of the subscriber, so one call instead of six
    /// saves most of the cost of finishing a query.
    fn record(&self, info: Option<&QueryInfo>, failure: Option<&(String, Option<String>, String)>) {
        let span = &self.span;
        let Some(meta) = span.metadata() else {
            return;
        };
        let fields = meta.fields();
        let f = FIELDS.get_or_init(|| SpanFields::of(fields));
        let rows = self.rows;
        let name = info.map(|i| i.name.as_str());
        let operation = info.and_then(|i| i.operation.as_deref());
        let collection = info.and_then(|i| i.collection.as_deref());
        let text = info.and_then(|i| i.text.as_deref());
        let kind = failure.map(|(k, _, _)| k.as_str());
        let code = failure.and_then(|(_, c, _)| c.as_deref());
        let status = failure.map(|_| "ERROR");
        let description = failure.map(|(_, _, d)| d.as_str());
        fn v<'a>(x: &'a Option<&str>) -> Option<&'a dyn tracing::Value> {
            x.as_ref().map(|s| s as &dyn tracing::Value)
        }
        let values: [(&tracing::field::Field, Option<&dyn tracing::Value>); 9] = [
            (&f.rows, Some(&rows as &dyn tracing::Value)),
            (&f.name, v(&name)),
            (&f.operation, v(&operation)),
            (&f.collection, v(&collection)),
            (&f.text, v(&text)),
            (&f.error_type, v(&kind)),
            (&f.status_code, v(&code)),
            (&f.otel_status, v(&status)),
            (&f.otel_description, v(&description)),
        ];
        span.record_all(&fields.value_set(&values));
    }
}

/// The fields of the query span recorded at its end (there is one span
/// call site, so they are looked up once).
struct SpanFields {
    rows: tracing::field::Field,
    name: tracing::field::Field,
    operation: tracing::field::Field,
    collection: tracing::field::Field,
    text: tracing::field::Field,
    error_type: tracing::field::Field,
    status_code: tracing::field::Field,
    otel_status: tracing::field::Field,
    otel_description: tracing::field::Field,
}

static FIELDS: OnceLock<SpanFields> = OnceLock::new();

impl SpanFields {
    fn of(fields: &tracing::field::FieldSet) -> SpanFields {
        let f = |name: &str| {
            fields
                .field(name)
                .unwrap_or_else(|| unreachable!("the query span declares {name}"))
        };
        SpanFields {
            rows: f(DB_RESPONSE_RETURNED_ROWS),
            name: f("otel.name"),
            operation: f(DB_OPERATION_NAME),
            collection: f(DB_COLLECTION_NAME),
            text: f(DB_QUERY_TEXT),
            error_type: f(ERROR_TYPE),
            status_code: f(DB_RESPONSE_STATUS_CODE),
            otel_status: f("otel.status_code"),
            otel_description: f("otel.status_description"),
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        // A stream dropped before its end (the caller had enough rows) or
        // a cancelled future: what ran is still recorded.
        self.finish(None);
    }
}

fn slow_query(
    span: &tracing::Span,
    info: Option<&QueryInfo>,
    system: &'static str,
    elapsed: Duration,
    threshold: Duration,
) {
    let operation = info.and_then(|i| i.operation.as_deref());
    let collection = info.and_then(|i| i.collection.as_deref());
    let text = info.and_then(|i| i.sanitized.as_deref());
    let name = info.map_or(system, |i| i.name.as_str());
    let ms = elapsed.as_secs_f64() * 1000.0;
    let message = format!(
        "slow query: {name} took {ms:.1} ms (threshold {} ms)",
        threshold.as_millis()
    );
    span.in_scope(|| {
        tracing::warn!(
            target: TARGET,
            duration_ms = ms,
            threshold_ms = threshold.as_millis() as i64,
            "db.system.name" = system,
            "db.operation.name" = operation,
            "db.collection.name" = collection,
            "db.query.text" = text,
            "{message}"
        )
    });
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
