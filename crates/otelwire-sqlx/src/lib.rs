//! sqlx instrumentation for otelwire: a client span per query with the
//! database semantic conventions, query text without its literals, one
//! WARN event per slow query, the `db.client.operation.duration` histogram
//! and the pool's connection gauges.
//!
//! No database is on by default; turn on the one the service uses, so a
//! SQLite service does not compile PostgreSQL:
//!
//! ```toml
//! [dependencies]
//! otelwire-sqlx = { version = "0.1", features = ["sqlite"] }
//! ```
//!
//! # Features
//!
//! | Feature | Default | What it adds |
//! |---|---|---|
//! | `sqlite` | off | [`DbSystem`] for `sqlx::Sqlite` (`db.system.name = "sqlite"`); sqlx's `sqlite` |
//! | `postgres` | off | [`DbSystem`] for `sqlx::Postgres` (`db.system.name = "postgresql"`, `server.address`, `server.port`); sqlx's `postgres` |
//! | `offline` | off | nothing any more; kept so manifests that name it still build |
//!
//! sqlx's own features are yours to choose, its defaults included: sqlx's
//! `macros` (on in its defaults) makes sqlx require every executor to
//! implement a hidden `describe` method, and this crate always implements
//! it (it turns on sqlx's `offline` in sqlx-core and in the drivers of the
//! features above). Another database of yours (a [`DbSystem`] for MySQL)
//! then needs sqlx's `macros`, or `sqlx-mysql/offline`, too.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! # rt.block_on(async {
//! use otelwire_sqlx::InstrumentedPool;
//!
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let db = InstrumentedPool::new(pool)?;
//!
//! // `&db` is a sqlx executor: every query is a span named
//! // `{operation} {table}`, `INSERT orders` here.
//! sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, sku TEXT)").execute(&db).await?;
//! sqlx::query("INSERT INTO orders (sku) VALUES ($1)").bind("widget").execute(&db).await?;
//!
//! // Transactions and single connections: `db.on(...)`.
//! let mut tx = db.begin().await?;
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE sku = 'widget'")
//!     .fetch_one(db.on(&mut *tx))
//!     .await?;
//! tx.commit().await?;
//! assert_eq!(n, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(()) })
//! # }
//! ```
//!
//! # The API, and what it costs
//!
//! [`InstrumentedPool`] wraps a [`sqlx::Pool`]; `&InstrumentedPool` is a
//! sqlx [`Executor`](sqlx::Executor), so `query(..).fetch_all(&db)` and the
//! rest of sqlx work unchanged. [`InstrumentedPool::on`] instruments any
//! other executor (`&mut *transaction`, `&mut *connection`) with the same
//! settings, returning a [`Traced`] executor. A wrapper, rather than an
//! extension trait on queries, so that no call site can forget it: code
//! that is handed the pool gets instrumented queries.
//!
//! Per query this costs one OpenTelemetry span, built whole when the
//! query ends (see below), two small allocations (the boxed result future
//! or stream sqlx already makes has one more layer, and a slot for the
//! query text), a look-up of the parsed text in a per-pool cache (a text is
//! sanitised and parsed once, not per query, and its strings are shared by
//! every span), and one histogram record on an instrument bound to the
//! query's attributes: about 5.5k instructions, over half of them the
//! span's way through the OpenTelemetry SDK, otelwire's span gate and the
//! batch exporter's thread. Against in-memory SQLite (25k instructions for
//! `SELECT 1`, 37k for a two-bind `INSERT`) that is 1.22× and 1.15×;
//! `BENCHMARKS.md` has the figures.
//!
//! # The span, the `tracing` filter and the tracer
//!
//! The query span is made with the OpenTelemetry API, not as a `tracing`
//! span: when the query starts, the instrumentation notes the clocks and
//! the current OpenTelemetry context (which tracing-opentelemetry, as set
//! up by otelwire, makes the context of the entered `tracing` span, so the
//! query span is a child of the request's span); when it ends, the span is
//! built in one go with its name, start time, attributes and status, and
//! ended. `tracing` layers therefore do not see it (there is no `db.query`
//! span in local output), and nothing the query does is lost: the span is
//! made on completion, on error, and when the future or stream is dropped
//! early.
//!
//! The spans still follow the `tracing` filter by target and level: with
//! `RUST_LOG=info,otelwire_sqlx=off` (or a maximum level above `INFO`)
//! queries make no spans, while the histogram is still recorded. The check
//! reads `tracing`'s cached per-callsite verdict, so directives that
//! decide per span (on span names or fields) do not turn the query spans
//! off.
//!
//! The spans go to the tracer provider of the pipeline the pool is made
//! under (scope `otelwire-sqlx`, see [`otelwire::current`]): the global one
//! that [`otelwire::init`] sets (build the pool after it), or, with a
//! pipeline that is not installed globally (`otelwire::Builder::build`, as
//! in tests), the one whose dispatcher is the default when the pool is
//! made. [`Builder::tracer`]`(telemetry.tracer("otelwire-sqlx"))` names
//! one outright, as [`Builder::meter`] does for the meter.
//!
//! # What is recorded
//!
//! The span (kind client, a child of the current span) is named
//! `{db.operation.name} {db.collection.name}`, or the operation alone
//! when the query touches no single table, and has `db.system.name`
//! (`sqlite`, `postgresql`), `db.namespace` (the database,
//! or the SQLite file name), `db.operation.name`, `db.collection.name`,
//! `db.query.text`, `db.response.returned_rows`, `server.address` and
//! `server.port` (PostgreSQL), and on failure `error.type` (the database's
//! error code, such as `23505`, else the kind of error such as
//! `pool_timed_out`), `db.response.status_code` and an error status
//! described as `{db.system.name} error {error.type}` (the database's own
//! message can quote values, so it is shown only with the `full` query
//! text). Errors are recorded and returned unchanged.
//!
//! A query taking at least the slow-query threshold logs one WARN event
//! (target `otelwire_sqlx`) with `db.query.text` (always sanitised),
//! `duration_ms` and `threshold_ms`. A query that never got a connection
//! (`PoolTimedOut`, `PoolClosed`: the database is unreachable or the pool
//! exhausted) is not a slow query, however long it waited: it is recorded
//! as an error only (`error.type` `pool_timed_out` or `pool_closed`). It is a `tracing` event of the current
//! span, so it reaches every output and carries the span fields otelwire
//! copies onto log records (such as `request.id`); while it is emitted the
//! query span's context is the current OpenTelemetry context, so its log
//! record (and its local output line) carries the query span's trace and
//! span ids.
//!
//! Metrics: `db.client.operation.duration` (seconds, by system, namespace,
//! operation, collection and `error.type`), and per pool
//! `db.client.connection.count{db.client.connection.state=idle|used}`,
//! `db.client.connection.max` and `db.client.connection.idle.min`, by
//! `db.client.connection.pool.name`. sqlx does not expose how many tasks
//! wait for a connection, so `db.client.connection.pending_requests` is not
//! reported.
//!
//! sqlx logs every statement itself (target `sqlx::query`, DEBUG, and WARN
//! past one second). [`InstrumentedPool`] turns that off on the connections
//! the pool opens from then on, so each query is told once: wrap the pool
//! before it has opened connections (`SqlitePool::connect` opens one: use
//! [`PoolOptions::connect_lazy_with`](sqlx::pool::PoolOptions::connect_lazy_with)
//! or the `*_lazy` constructors, or accept that the first connection still
//! logs at DEBUG).
//!
//! # Configuration
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `OTELWIRE_SQLX_QUERY_TEXT` | `sanitized` | `db.query.text`: `full` (as written), `sanitized` (string and number literals replaced by `?`, comments removed) or `off` |
//! | `OTELWIRE_SQLX_SLOW_QUERY_MS` | `500` | queries at least this long log a WARN event; `off` for none |
//!
//! [`Builder`] methods win over the variables.

mod config;
mod executor;
mod instrument;
mod pool;
mod sanitize;
mod system;

pub use config::{ConfigError, DEFAULT_SLOW_QUERY, QUERY_TEXT_VAR, QueryText, SLOW_QUERY_VAR};
pub use executor::Traced;
pub use instrument::TARGET;
pub use pool::{Builder, InstrumentedPool};
pub use sanitize::sanitize;
pub use system::{ConnectionTarget, DbSystem};

pub use sqlx;

/// The README's examples, compiled as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
