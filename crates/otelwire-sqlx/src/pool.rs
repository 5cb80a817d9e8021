//! A sqlx pool whose queries are instrumented, and its gauges.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use otelwire::opentelemetry::global::BoxedTracer;
use otelwire::opentelemetry::metrics::Meter;
use otelwire::opentelemetry::trace::Tracer;
use otelwire::opentelemetry::{InstrumentationScope, KeyValue};
use otelwire::opentelemetry_semantic_conventions::attribute::{
    DB_CLIENT_CONNECTION_POOL_NAME, DB_CLIENT_CONNECTION_STATE,
};
use otelwire::opentelemetry_semantic_conventions::metric::{
    DB_CLIENT_CONNECTION_COUNT, DB_CLIENT_CONNECTION_IDLE_MIN, DB_CLIENT_CONNECTION_MAX,
    DB_CLIENT_OPERATION_DURATION,
};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Either, Executor, Pool, Transaction};
use sqlx_core::executor::Execute;
use sqlx_core::sql_str::SqlStr;

use crate::config::{self, ConfigError, QueryText};
use crate::executor::Traced;
use crate::instrument::Shared;
use crate::system::DbSystem;

/// Bucket boundaries of `db.client.operation.duration`, in seconds (the
/// semantic conventions' advice).
const DURATION_BOUNDARIES: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
];

/// A [`sqlx::Pool`] whose queries are instrumented. `&InstrumentedPool` is
/// a sqlx [`Executor`], so queries run on it exactly as on `&Pool`:
///
/// ```
/// # async fn run(db: &otelwire_sqlx::InstrumentedPool<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE sku = $1")
///     .bind("widget")
///     .fetch_one(db)
///     .await?;
/// let mut tx = db.begin().await?;
/// sqlx::query("DELETE FROM orders").execute(db.on(&mut *tx)).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
///
/// Cloning is cheap (the pool and the instrumentation are shared).
pub struct InstrumentedPool<DB: Database> {
    /// Shared by the clones; the gauges hold it weakly, so that dropping
    /// every clone lets the pool go.
    pool: Arc<Pool<DB>>,
    shared: Arc<Shared>,
}

impl<DB: Database> Clone for InstrumentedPool<DB> {
    fn clone(&self) -> Self {
        InstrumentedPool {
            pool: self.pool.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("db.system.name", &self.shared.system)
            .field("db.namespace", &self.shared.target.namespace)
            .field("size", &self.pool.size())
            .field("num_idle", &self.pool.num_idle())
            .finish_non_exhaustive()
    }
}

impl<DB: DbSystem> InstrumentedPool<DB> {
    /// Instruments `pool` with the settings from the environment and the
    /// tracer and meter providers of the pipeline it is made under
    /// ([`otelwire::current`]: the global ones that [`otelwire::init`] sets,
    /// or the default dispatcher's under `Builder::build`); see
    /// [`builder`](Self::builder) for more.
    pub fn new(pool: Pool<DB>) -> Result<Self, ConfigError> {
        Self::builder(pool).build()
    }

    /// Configures the instrumentation of `pool`.
    pub fn builder(pool: Pool<DB>) -> Builder<DB> {
        Builder {
            pool,
            tracer: None,
            meter: None,
            query_text: None,
            slow_query: None,
            pool_name: None,
            env: Box::new(|k| std::env::var(k).ok()),
        }
    }
}

impl<DB: Database> InstrumentedPool<DB> {
    /// The pool itself (its queries are not instrumented).
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// `executor` (a `&mut` connection or `&mut *transaction`) with this
    /// pool's instrumentation.
    pub fn on<'c, X>(&'c self, executor: X) -> Traced<'c, X>
    where
        X: Executor<'c, Database = DB>,
    {
        Traced {
            inner: executor,
            shared: &self.shared,
        }
    }

    /// A connection from the pool; run queries on it with
    /// `db.on(&mut *conn)`.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        self.pool.acquire().await
    }

    /// Starts a transaction; run queries in it with `db.on(&mut *tx)`.
    pub async fn begin(&self) -> Result<Transaction<'static, DB>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Closes the pool (see [`Pool::close`]).
    pub async fn close(&self) {
        self.pool.close().await
    }

    /// The query-text mode in force.
    pub fn query_text(&self) -> QueryText {
        self.shared.settings.query_text
    }

    /// The slow-query threshold in force (`None`: no slow-query events).
    pub fn slow_query_threshold(&self) -> Option<Duration> {
        self.shared.settings.slow_query
    }
}

impl<'p, DB> Executor<'p> for &'p InstrumentedPool<DB>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.on(&*self.pool).fetch_many(query)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        self.on(&*self.pool).fetch_optional(query)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        (&*self.pool).prepare_with(sql, parameters)
    }

    // Required by sqlx-core's `offline` feature, which this crate always
    // turns on (sqlx's `macros` does too): see Cargo.toml.
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx_core::describe::Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        (&*self.pool).describe(sql)
    }
}

/// Where settings not given in code are read from.
type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Configures an [`InstrumentedPool`]. Every setting left alone comes from
/// the environment (see the [crate docs](crate#configuration)).
pub struct Builder<DB: Database> {
    pool: Pool<DB>,
    tracer: Option<BoxedTracer>,
    meter: Option<Meter>,
    query_text: Option<QueryText>,
    slow_query: Option<Option<Duration>>,
    pool_name: Option<String>,
    env: EnvLookup,
}

impl<DB: Database> fmt::Debug for Builder<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("query_text", &self.query_text)
            .field("slow_query", &self.slow_query)
            .field("pool_name", &self.pool_name)
            .finish_non_exhaustive()
    }
}

impl<DB: DbSystem> Builder<DB> {
    /// The tracer for the query spans (default: the tracer provider of the
    /// pipeline the pool is made under, [`otelwire::current::tracer`], with
    /// the scope `otelwire-sqlx` and this crate's version). Any OpenTelemetry tracer will
    /// do (an SDK tracer, a [`BoxedTracer`]).
    #[must_use]
    pub fn tracer<T>(mut self, tracer: T) -> Self
    where
        T: Tracer + Send + Sync + 'static,
        T::Span: Send + Sync + 'static,
    {
        // A `BoxedTracer` is kept as it is rather than boxed once more
        // (which would cost a second allocation per span).
        let mut slot = Some(tracer);
        let boxed = match (&mut slot as &mut dyn Any).downcast_mut::<Option<BoxedTracer>>() {
            Some(boxed) => boxed.take(),
            None => slot.map(|t| BoxedTracer::new(Box::new(t))),
        };
        self.tracer = boxed;
        self
    }

    /// The meter for `db.client.operation.duration` and the pool gauges
    /// (default: the `otelwire-sqlx` meter of the pipeline the pool is made
    /// under, see [`otelwire::current`]).
    #[must_use]
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// How `db.query.text` is recorded (else `OTELWIRE_SQLX_QUERY_TEXT`,
    /// else sanitised).
    #[must_use]
    pub fn query_text(mut self, mode: QueryText) -> Self {
        self.query_text = Some(mode);
        self
    }

    /// Queries taking at least this long log one WARN event (else
    /// `OTELWIRE_SQLX_SLOW_QUERY_MS`, else 500 ms); `None` turns the event
    /// off.
    #[must_use]
    pub fn slow_query_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.slow_query = Some(threshold);
        self
    }

    /// `db.client.connection.pool.name` on the pool gauges (default: the
    /// database name, else `db.system.name`).
    #[must_use]
    pub fn pool_name(mut self, name: impl Into<String>) -> Self {
        self.pool_name = Some(name.into());
        self
    }

    /// Reads the settings from `lookup` instead of the process environment.
    #[must_use]
    pub fn env_source<F>(mut self, lookup: F) -> Self
    where
        F: Fn(&str) -> Option<String> + Send + Sync + 'static,
    {
        self.env = Box::new(lookup);
        self
    }

    /// Instruments the pool: from now on, connections it opens keep sqlx's
    /// own statement logging off (the spans replace it), and its gauges are
    /// reported until it is dropped.
    pub fn build(self) -> Result<InstrumentedPool<DB>, ConfigError> {
        let settings = config::resolve(self.query_text, self.slow_query, &*self.env)?;
        let options = self.pool.connect_options();
        let target = DB::target(&options);
        self.pool.set_connect_options(DB::quiet((*options).clone()));
        let tracer = self.tracer.unwrap_or_else(|| {
            // The pipeline the pool is made under (see `otelwire::current`).
            otelwire::current::tracer(
                InstrumentationScope::builder("otelwire-sqlx")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            )
        });
        let meter = self
            .meter
            .unwrap_or_else(|| otelwire::current::meter("otelwire-sqlx"));
        let duration = meter
            .f64_histogram(DB_CLIENT_OPERATION_DURATION)
            .with_unit("s")
            .with_description("Duration of database client operations.")
            .with_boundaries(DURATION_BOUNDARIES.to_vec())
            .build();
        let pool_name = self
            .pool_name
            .or_else(|| target.namespace.clone())
            .unwrap_or_else(|| DB::SYSTEM_NAME.to_owned());
        let pool = Arc::new(self.pool);
        register_gauges(&meter, &pool, pool_name);
        Ok(InstrumentedPool {
            pool,
            shared: Arc::new(Shared::new(
                DB::SYSTEM_NAME,
                target,
                settings,
                duration,
                tracer,
            )),
        })
    }
}

/// `db.client.connection.count{state=idle|used}`, `db.client.connection.max`
/// and `db.client.connection.idle.min`, read from the pool at each export.
/// sqlx does not tell how many tasks wait for a connection, so
/// `db.client.connection.pending_requests` is not reported.
fn register_gauges<DB: Database>(meter: &Meter, pool: &Arc<Pool<DB>>, name: String) {
    let weak = PoolRef::new(pool);
    let name_kv = KeyValue::new(DB_CLIENT_CONNECTION_POOL_NAME, name);
    {
        let pool = weak.clone();
        let idle = [
            name_kv.clone(),
            KeyValue::new(DB_CLIENT_CONNECTION_STATE, "idle"),
        ];
        let used = [
            name_kv.clone(),
            KeyValue::new(DB_CLIENT_CONNECTION_STATE, "used"),
        ];
        meter
            .i64_observable_up_down_counter(DB_CLIENT_CONNECTION_COUNT)
            .with_unit("{connection}")
            .with_description("The number of connections in the pool, by state.")
            .with_callback(move |obs| {
                if let Some((size, n_idle)) = pool.sizes() {
                    obs.observe(n_idle, &idle);
                    obs.observe(size - n_idle, &used);
                }
            })
            .build();
    }
    {
        let pool = weak.clone();
        let attrs = [name_kv.clone()];
        meter
            .i64_observable_up_down_counter(DB_CLIENT_CONNECTION_MAX)
            .with_unit("{connection}")
            .with_description("The maximum number of open connections allowed.")
            .with_callback(move |obs| {
                if let Some(max) = pool.max() {
                    obs.observe(max, &attrs);
                }
            })
            .build();
    }
    let pool = weak;
    let attrs = [name_kv];
    meter
        .i64_observable_up_down_counter(DB_CLIENT_CONNECTION_IDLE_MIN)
        .with_unit("{connection}")
        .with_description("The minimum number of idle open connections allowed.")
        .with_callback(move |obs| {
            if let Some(min) = pool.min() {
                obs.observe(min, &attrs);
            }
        })
        .build();
}

/// A pool seen from a metrics callback: reports nothing once every
/// [`InstrumentedPool`] clone is gone or the pool is closed.
struct PoolRef<DB: Database>(Weak<Pool<DB>>);

impl<DB: Database> Clone for PoolRef<DB> {
    fn clone(&self) -> Self {
        PoolRef(self.0.clone())
    }
}

impl<DB: Database> PoolRef<DB> {
    fn new(pool: &Arc<Pool<DB>>) -> Self {
        PoolRef(Arc::downgrade(pool))
    }

    fn open(&self) -> Option<Arc<Pool<DB>>> {
        self.0.upgrade().filter(|p| !p.is_closed())
    }

    fn sizes(&self) -> Option<(i64, i64)> {
        self.open()
            .map(|p| (i64::from(p.size()), p.num_idle() as i64))
    }

    fn max(&self) -> Option<i64> {
        self.open()
            .map(|p| i64::from(p.options().get_max_connections()))
    }

    fn min(&self) -> Option<i64> {
        self.open()
            .map(|p| i64::from(p.options().get_min_connections()))
    }
}
