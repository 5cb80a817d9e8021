//! What the instrumentation costs per query: the same queries on the same
//! in-memory SQLite database through a plain `sqlx::Pool` and through an
//! `InstrumentedPool`, in the same run, both under an otelwire pipeline
//! that exports to no-op exporters (so the figure is the instrumentation's
//! own cost: the span, the text look-up, the histogram).
//!
//! ```text
//! cargo bench -p otelwire-sqlx --bench queries
//! ```
//!
//! Time on a shared machine drifts; instructions do not. For instruction
//! counts, run one variant n times under callgrind (see [`count`]) and
//! take the difference between two counts per extra query.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_sqlx::InstrumentedPool;
use otelwire_test::noop::{NoopLogs, NoopMetrics, NoopSpans};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

fn telemetry() -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("sqlx-bench")
        .log_format(LogFormat::None)
        .process_metrics(false)
        .max_queue_size(Signal::Traces, 1 << 16)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .span_exporter(NoopSpans)
        .log_exporter(NoopLogs)
        .metric_exporter(NoopMetrics)
        .build()
        .expect("otelwire builds")
}

fn pool() -> sqlx::SqlitePool {
    let options: SqliteConnectOptions = "sqlite::memory:".parse().expect("a SQLite URL");
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_lazy_with(options)
}

/// The runtime, the pipeline and both pools, each with the table.
struct Setup {
    rt: tokio::runtime::Runtime,
    telemetry: Telemetry,
    plain: sqlx::SqlitePool,
    instrumented: InstrumentedPool<sqlx::Sqlite>,
}

impl Setup {
    fn new() -> Setup {
        let telemetry = telemetry();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // The pools start their maintenance tasks on the current runtime.
        let (plain, instrumented) = {
            let _runtime = rt.enter();
            let plain = pool();
            let instrumented = InstrumentedPool::builder(pool())
                .env_source(|_| None)
                .tracer(telemetry.tracer("otelwire-sqlx"))
                .meter(telemetry.meter("otelwire-sqlx"))
                .build()
                .expect("default settings");
            (plain, instrumented)
        };
        rt.block_on(async {
            for p in [&plain, instrumented.pool()] {
                sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER)")
                    .execute(p)
                    .await
                    .expect("the table is created");
            }
        });
        Setup {
            rt,
            telemetry,
            plain,
            instrumented,
        }
    }
}

async fn select_1<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(db: E) -> i32 {
    sqlx::query_scalar("SELECT 1")
        .fetch_one(db)
        .await
        .expect("SELECT 1")
}

async fn insert<'c, E: sqlx::Executor<'c, Database = sqlx::Sqlite>>(db: E) -> u64 {
    sqlx::query("INSERT INTO items (sku, qty) VALUES ($1, $2)")
        .bind("widget")
        .bind(black_box(3_i64))
        .execute(db)
        .await
        .expect("insert")
        .rows_affected()
}

fn queries(c: &mut Criterion) {
    let s = Setup::new();
    let _default = tracing::dispatcher::set_default(s.telemetry.dispatch());
    let (plain, instrumented) = (&s.plain, &s.instrumented);
    let mut group = c.benchmark_group("select_1");
    group.bench_function("plain", |b| b.to_async(&s.rt).iter(|| select_1(plain)));
    group.bench_function("instrumented", |b| {
        b.to_async(&s.rt).iter(|| select_1(instrumented))
    });
    group.finish();
    let mut group = c.benchmark_group("insert");
    group.bench_function("plain", |b| b.to_async(&s.rt).iter(|| insert(plain)));
    group.bench_function("instrumented", |b| {
        b.to_async(&s.rt).iter(|| insert(instrumented))
    });
    group.finish();
}

/// `OTELWIRE_SQLX_BENCH_COUNT=<select_1|insert>/<plain|instrumented>:<n>`
/// runs that query n times and nothing else, for instruction counts under
/// `valgrind --tool=callgrind` (which, unlike time, other work on the
/// machine does not change).
fn count(spec: &str) {
    let (what, n) = spec.split_once(':').expect("<bench>/<variant>:<n>");
    let n: u64 = n.parse().expect("a count");
    let s = Setup::new();
    let _default = tracing::dispatcher::set_default(s.telemetry.dispatch());
    s.rt.block_on(async {
        for _ in 0..n {
            match what {
                "select_1/plain" => drop(select_1(&s.plain).await),
                "select_1/instrumented" => drop(select_1(&s.instrumented).await),
                "insert/plain" => drop(insert(&s.plain).await),
                "insert/instrumented" => drop(insert(&s.instrumented).await),
                other => panic!("unknown bench {other}"),
            }
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = queries
}

fn main() {
    match std::env::var("OTELWIRE_SQLX_BENCH_COUNT") {
        Ok(spec) => count(&spec),
        Err(_) => {
            benches();
            Criterion::default().configure_from_args().final_summary();
        }
    }
}
