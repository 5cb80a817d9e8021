//! Queries on SQLite (in memory) and PostgreSQL (the server named by
//! `OTELWIRE_TEST_POSTGRES_URL`), exported to an in-process collector: the
//! spans, the slow-query event, the duration histogram and the pool gauges
//! as they arrive.
//!
//! Without `OTELWIRE_TEST_POSTGRES_URL` the PostgreSQL tests are skipped
//! with a notice, unless `OTELWIRE_REQUIRE_TOOLS` is set (CI), where they
//! fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_sqlx::{DbSystem, InstrumentedPool, QueryText};
use otelwire_test::{Collector, PointValue, SpanKind, StatusCode};
use sqlx::pool::PoolOptions;
use sqlx::{Database, Executor, IntoArguments};
use tracing::Instrument;

const WAIT: Duration = Duration::from_secs(10);

fn telemetry(collector: &Collector, service: &str) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name(service)
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        // sqlx's own statement lines would show up here if it still logged.
        .filter("info,sqlx=debug")
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .scheduled_delay(Signal::Logs, Duration::from_millis(100))
        .metric_export_interval(Duration::from_millis(200))
        .process_metrics(false)
        .build()
        .unwrap()
}

/// A table name no other test (or earlier run) uses.
fn table(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The secret-looking literals the sanitised text must never show.
const LITERALS: [&str; 3] = ["s3cr3t-literal", "4242", "17.5"];

/// Creates a table, inserts with literals inlined and with bound
/// parameters, reads back, fails once; then checks what arrived.
async fn query_spans<DB>(db: &InstrumentedPool<DB>, collector: &Collector, system: &str)
where
    DB: DbSystem,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> <DB as Database>::Arguments: IntoArguments<DB>,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Decode<'a, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    let t = table("spans");
    let parent = tracing::info_span!("request");
    let missing = table("missing");
    let err = async {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY, note TEXT, price REAL)"
        )))
        .execute(db)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {t} (id, note, price) VALUES (4242, 's3cr3t-literal', 17.5)"
        )))
        .execute(db)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {t} (id, note) VALUES ($1, $2)"
        )))
        .bind(7_i64)
        .bind("bound value")
        .execute(db)
        .await
        .unwrap();
        let n: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {t} WHERE note <> 'x' ORDER BY id"
        )))
        .fetch_all(db)
        .await
        .unwrap();
        assert_eq!(n, [7, 4242]);
        // Inside a transaction, through `on`.
        let mut tx = db.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {t} WHERE id = 7")))
            .execute(db.on(&mut *tx))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        // The error reaches the caller, and the span.
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {missing}")))
            .fetch_optional(db)
            .await
            .err()
            .expect("a query on a missing table fails")
    }
    .instrument(parent.clone())
    .await;
    assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
    drop(parent);

    let insert_name = format!("INSERT {t}");
    let spans = collector
        .wait_for_spans(2, |s| s.name == insert_name, WAIT)
        .await
        .unwrap();
    let request = collector
        .wait_for_spans(1, |s| s.name == "request", WAIT)
        .await
        .unwrap()
        .remove(0);
    for span in &spans {
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(request.span_id.as_str())
        );
        assert_eq!(span.attributes.get_str("db.system.name"), Some(system));
        assert_eq!(span.attributes.get_str("db.operation.name"), Some("INSERT"));
        assert_eq!(
            span.attributes.get_str("db.collection.name"),
            Some(t.as_str())
        );
        assert_eq!(
            span.attributes.get_i64("db.response.returned_rows"),
            Some(0)
        );
        let text = span.attributes.get_str("db.query.text").unwrap();
        assert!(
            text.starts_with(&format!("INSERT INTO {t} (id, note")),
            "{text}"
        );
        for literal in LITERALS {
            assert!(!text.contains(literal), "{literal} in {text}");
        }
    }
    let texts: Vec<&str> = spans
        .iter()
        .filter_map(|s| s.attributes.get_str("db.query.text"))
        .collect();
    assert!(
        texts.contains(&format!("INSERT INTO {t} (id, note, price) VALUES (?, ?, ?)").as_str()),
        "{texts:?}"
    );

    let select = format!("SELECT {t}");
    let select = collector
        .wait_for_spans(1, |s| s.name == select, WAIT)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        select.attributes.get_i64("db.response.returned_rows"),
        Some(2)
    );
    assert_eq!(
        select.attributes.get_str("db.query.text"),
        Some(format!("SELECT id FROM {t} WHERE note <> ? ORDER BY id").as_str())
    );
    let delete = format!("DELETE {t}");
    collector
        .wait_for_spans(
            1,
            |s| s.name == delete && s.trace_id == request.trace_id,
            WAIT,
        )
        .await
        .unwrap();

    let failed = format!("SELECT {missing}");
    let failed = collector
        .wait_for_spans(1, |s| s.name == failed, WAIT)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(failed.status.code, StatusCode::Error);
    let error_type = failed.attributes.get_str("error.type").unwrap();
    assert!(!error_type.is_empty());
    assert_eq!(
        failed.attributes.get_str("db.response.status_code"),
        Some(error_type)
    );
    // The database's message can quote values: not shown unless the query
    // text is shown in full.
    assert_eq!(
        failed.status.message,
        format!("{system} error {error_type}")
    );

    // The duration histogram, by operation and table, errors apart.
    let t2 = t.clone();
    collector
        .wait_for_metric(
            "db.client.operation.duration",
            move |p| {
                p.attributes.get_str("db.collection.name") == Some(t2.as_str())
                    && p.attributes.get_str("db.operation.name") == Some("INSERT")
                    && matches!(p.value, PointValue::Histogram { count: 2.., .. })
            },
            WAIT,
        )
        .await
        .unwrap();
    let missing2 = missing.clone();
    collector
        .wait_for_metric(
            "db.client.operation.duration",
            move |p| {
                p.attributes.get_str("db.collection.name") == Some(missing2.as_str())
                    && p.attributes.get_str("error.type").is_some()
            },
            WAIT,
        )
        .await
        .unwrap();

    // sqlx said nothing of its own about these queries.
    let sqlx_lines: Vec<String> = collector
        .logs()
        .into_iter()
        .filter(|l| l.scope.name == "sqlx::query")
        .filter_map(|l| l.body_str().map(str::to_owned))
        .collect();
    assert!(sqlx_lines.is_empty(), "{sqlx_lines:?}");

    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .execute(db.pool())
        .await
        .unwrap();
}

/// A query past the threshold logs one WARN with its sanitised text: a
/// `tracing` event of the request's span (so it carries the request's
/// copied fields, `request.id`), whose log record carries the query span's
/// trace and span ids.
async fn slow_query<DB>(db: &InstrumentedPool<DB>, collector: &Collector, slow_sql: &'static str)
where
    DB: DbSystem,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'a> <DB as Database>::Arguments: IntoArguments<DB>,
{
    let threshold = db.slow_query_threshold().unwrap();
    let started = std::time::Instant::now();
    let request = tracing::info_span!("slow-request", request.id = "req-slow-1");
    sqlx::query(slow_sql)
        .execute(db)
        .instrument(request.clone())
        .await
        .unwrap();
    drop(request);
    assert!(started.elapsed() >= threshold, "the query was not slow");
    let warns = collector
        .wait_for_logs(
            1,
            |l| l.body_str().is_some_and(|b| b.starts_with("slow query: ")),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(warns.len(), 1, "one event per slow query: {warns:?}");
    let warn = &warns[0];
    assert_eq!(warn.severity_text, "WARN");
    let text = warn.attributes.get_str("db.query.text").unwrap();
    assert_eq!(text, otelwire_sqlx::sanitize(slow_sql));
    for digit in ["0.05", "100000"] {
        assert!(!text.contains(digit), "{text}");
    }
    assert!(warn.attributes.get_f64("duration_ms").unwrap() >= threshold.as_millis() as f64);
    assert_eq!(
        warn.attributes.get_i64("threshold_ms"),
        Some(threshold.as_millis() as i64)
    );
    // The request's copied field, from the span the event was emitted in.
    assert_eq!(warn.attributes.get_str("request.id"), Some("req-slow-1"));
    // The record points at the query's span, a child of the request's.
    let request = collector
        .wait_for_spans(1, |s| s.name == "slow-request", WAIT)
        .await
        .unwrap()
        .remove(0);
    let span = collector
        .wait_for_spans(
            1,
            |s| Some(s.span_id.as_str()) == warn.span_id.as_deref(),
            WAIT,
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(
        span.parent_span_id.as_deref(),
        Some(request.span_id.as_str())
    );
    assert_eq!(warn.trace_id.as_deref(), Some(request.trace_id.as_str()));
    assert_eq!(span.trace_id, request.trace_id);
}

/// The pool's gauges reach the collector.
async fn pool_gauges(collector: &Collector, pool_name: &str, max: i64) {
    for state in ["idle", "used"] {
        collector
            .wait_for_metric(
                "db.client.connection.count",
                |p| {
                    p.attributes.get_str("db.client.connection.pool.name") == Some(pool_name)
                        && p.attributes.get_str("db.client.connection.state") == Some(state)
                },
                WAIT,
            )
            .await
            .unwrap();
    }
    let points = collector
        .wait_for_metric(
            "db.client.connection.max",
            |p| p.attributes.get_str("db.client.connection.pool.name") == Some(pool_name),
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!(points[0].value, PointValue::Int(max));
    let idle = collector
        .wait_for_metric(
            "db.client.connection.count",
            |p| {
                p.attributes.get_str("db.client.connection.pool.name") == Some(pool_name)
                    && p.attributes.get_str("db.client.connection.state") == Some("idle")
                    && matches!(p.value, PointValue::Int(n) if n >= 1)
            },
            WAIT,
        )
        .await;
    assert!(
        idle.is_ok(),
        "an idle connection after the queries: {idle:?}"
    );
}

// ---------------------------------------------------------------- SQLite

async fn sqlite(t: &Telemetry, slow: Option<Duration>) -> InstrumentedPool<sqlx::Sqlite> {
    let options: sqlx::sqlite::SqliteConnectOptions = "sqlite::memory:".parse().unwrap();
    let pool = PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(3)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options);
    InstrumentedPool::builder(pool)
        .tracer(t.tracer("otelwire-sqlx"))
        .meter(t.meter("otelwire-sqlx"))
        .env_source(|_| None)
        .slow_query_threshold(slow)
        .pool_name("sqlite-test")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_query_spans_metrics_and_gauges() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-sqlite");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let db = sqlite(&t, None).await;
    assert_eq!(db.query_text(), QueryText::Sanitized);
    query_spans(&db, &collector, "sqlite").await;
    pool_gauges(&collector, "sqlite-test", 3).await;
    assert_eq!(collector.logs_with_body("slow query").len(), 0);
    db.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_slow_query_logs_one_warning() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-sqlite-slow");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let db = sqlite(&t, Some(Duration::from_millis(5))).await;
    slow_query(
        &db,
        &collector,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
         SELECT count(*) FROM c WHERE x > 0.05",
    )
    .await;
    db.close().await;
    t.shutdown().await;
}

/// A stream dropped before its end, and a future dropped after its first
/// poll, still make their spans, with what they read.
#[tokio::test(flavor = "current_thread")]
async fn sqlite_dropped_queries_still_make_spans() {
    use futures_util::{FutureExt, StreamExt};

    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-dropped");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let db = sqlite(&t, None).await;
    let union = "SELECT 'early' UNION ALL SELECT 'drop' UNION ALL SELECT 'x'";
    let mut rows = sqlx::query(union).fetch(&db);
    rows.next().await.unwrap().unwrap();
    drop(rows);
    let early = collector
        .wait_for_spans(
            1,
            |s| {
                s.attributes.get_str("db.query.text")
                    == Some("SELECT ? UNION ALL SELECT ? UNION ALL SELECT ?")
            },
            WAIT,
        )
        .await
        .unwrap()
        .remove(0);
    assert_eq!(early.name, "SELECT");
    assert_eq!(
        early.attributes.get_i64("db.response.returned_rows"),
        Some(1)
    );
    assert_eq!(early.status.code, StatusCode::Unset);
    // Polled once (the worker thread has not answered yet, or has: either
    // way the query ends here), then dropped.
    let _ = sqlx::query("SELECT 'cancelled'")
        .fetch_one(&db)
        .now_or_never();
    collector
        .wait_for_spans(
            1,
            |s| {
                s.attributes.get_str("db.system.name") == Some("sqlite")
                    && (s.name == "sqlite"
                        || s.attributes.get_str("db.query.text") == Some("SELECT ?"))
            },
            WAIT,
        )
        .await
        .unwrap();
    db.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn query_text_full_and_off() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-modes");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    for (mode, expected) in [
        (QueryText::Full, Some("SELECT 'full-mode', 31")),
        (QueryText::Off, None),
    ] {
        let pool = PoolOptions::<sqlx::Sqlite>::new()
            .connect_lazy_with("sqlite::memory:".parse().unwrap());
        let db = InstrumentedPool::builder(pool)
            .tracer(t.tracer("otelwire-sqlx"))
            .meter(t.meter("otelwire-sqlx"))
            .env_source(move |k| (k == otelwire_sqlx::QUERY_TEXT_VAR).then(|| mode.to_string()))
            .build()
            .unwrap();
        let sql = if mode == QueryText::Full {
            "SELECT 'full-mode', 31"
        } else {
            "SELECT 'off-mode', 32"
        };
        sqlx::query(sql).fetch_one(&db).await.unwrap();
        let marker = if mode == QueryText::Full {
            "full"
        } else {
            "off"
        };
        let span = collector
            .wait_for_spans(
                1,
                |s| {
                    s.name == "SELECT"
                        && s.attributes
                            .get_str("db.query.text")
                            .map(|t| t.contains(marker))
                            .unwrap_or(
                                mode == QueryText::Off
                                    && !s.attributes.contains_key("db.query.text"),
                            )
                },
                WAIT,
            )
            .await
            .unwrap();
        assert_eq!(span[0].attributes.get_str("db.query.text"), expected);
        db.close().await;
    }
    t.shutdown().await;
}

// ---------------------------------------------------------------- PostgreSQL

/// The server's URL, or `None` (with a notice) when there is none and
/// the environment does not require one.
async fn postgres_url() -> Option<String> {
    // Set to anything but empty, `0` or `false` (as the tests crate reads it).
    let required = std::env::var("OTELWIRE_REQUIRE_TOOLS")
        .is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"));
    let url = match std::env::var("OTELWIRE_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => u,
        _ => {
            if required {
                panic!(
                    "OTELWIRE_TEST_POSTGRES_URL is not set: .ci/run starts a PostgreSQL server and sets it"
                );
            }
            eprintln!("SKIPPED: OTELWIRE_TEST_POSTGRES_URL is not set (.ci/run starts a server)");
            return None;
        }
    };
    match sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
    {
        Ok(pool) => {
            pool.close().await;
            Some(url)
        }
        Err(e) if required => {
            panic!("PostgreSQL at OTELWIRE_TEST_POSTGRES_URL is unreachable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: PostgreSQL at OTELWIRE_TEST_POSTGRES_URL is unreachable: {e}");
            None
        }
    }
}

async fn postgres(
    t: &Telemetry,
    url: &str,
    slow: Option<Duration>,
) -> InstrumentedPool<sqlx::Postgres> {
    let pool = PoolOptions::<sqlx::Postgres>::new()
        .max_connections(4)
        .min_connections(1)
        .connect_lazy(url)
        .unwrap();
    InstrumentedPool::builder(pool)
        .tracer(t.tracer("otelwire-sqlx"))
        .meter(t.meter("otelwire-sqlx"))
        .env_source(|_| None)
        .slow_query_threshold(slow)
        .pool_name("pg-test")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_query_spans_metrics_and_gauges() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-postgres");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let db = postgres(&t, &url, None).await;
    query_spans(&db, &collector, "postgresql").await;
    let span = collector
        .spans()
        .into_iter()
        .find(|s| s.name.starts_with("INSERT"))
        .unwrap();
    assert_eq!(span.attributes.get_str("db.namespace"), Some("postgres"));
    assert_eq!(span.attributes.get_str("server.address"), Some("127.0.0.1"));
    assert!(span.attributes.get_i64("server.port").is_some());
    pool_gauges(&collector, "pg-test", 4).await;
    db.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_slow_query_logs_one_warning() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector, "sqlx-postgres-slow");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let db = postgres(&t, &url, Some(Duration::from_millis(20))).await;
    slow_query(&db, &collector, "SELECT pg_sleep(0.05), 100000").await;
    db.close().await;
    t.shutdown().await;
}
