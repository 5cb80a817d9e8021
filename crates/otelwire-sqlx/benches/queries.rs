//! What the instrumentation costs per query: the same queries on the same
//! in-memory SQLite database through a plain `sqlx::Pool` and through an
//! `InstrumentedPool`, in the same run, both under an otelwire pipeline
//! that exports to no-op exporters (so the figure is the instrumentation's
//! own cost: the span, the text look-up, the histogram).
//!
//! ```text
//! cargo bench -p otelwire-sqlx --bench queries
//! ```

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use otelwire::opentelemetry_sdk::error::OTelSdkResult;
use otelwire::opentelemetry_sdk::logs::{LogBatch, LogExporter};
use otelwire::opentelemetry_sdk::metrics::Temporality;
use otelwire::opentelemetry_sdk::metrics::data::ResourceMetrics;
use otelwire::opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use otelwire::opentelemetry_sdk::trace::{SpanData, SpanExporter};
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_sqlx::InstrumentedPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

#[derive(Debug)]
struct NoopSpans;
impl SpanExporter for NoopSpans {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        Ok(())
    }
}

#[derive(Debug)]
struct NoopLogs;
impl LogExporter for NoopLogs {
    async fn export(&self, _batch: LogBatch<'_>) -> OTelSdkResult {
        Ok(())
    }
}

#[derive(Debug)]
struct NoopMetrics;
impl PushMetricExporter for NoopMetrics {
    async fn export(&self, _metrics: &ResourceMetrics) -> OTelSdkResult {
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

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

fn queries(c: &mut Criterion) {
    let telemetry = telemetry();
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The pools start their maintenance tasks on the current runtime.
    let _runtime = rt.enter();
    let plain = pool();
    let instrumented = InstrumentedPool::builder(pool())
        .env_source(|_| None)
        .meter(telemetry.meter("otelwire-sqlx"))
        .build()
        .expect("default settings");
    rt.block_on(async {
        for p in [&plain, instrumented.pool()] {
            sqlx::query("CREATE TABLE items (id INTEGER PRIMARY KEY, sku TEXT, qty INTEGER)")
                .execute(p)
                .await
                .expect("the table is created");
        }
    });

    let mut select = c.benchmark_group("select_1");
    select.bench_function("plain", |b| {
        b.to_async(&rt).iter(|| async {
            let n: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&plain)
                .await
                .expect("SELECT 1");
            black_box(n)
        })
    });
    select.bench_function("instrumented", |b| {
        b.to_async(&rt).iter(|| async {
            let n: i32 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&instrumented)
                .await
                .expect("SELECT 1");
            black_box(n)
        })
    });
    select.finish();

    let mut insert = c.benchmark_group("insert");
    insert.bench_function("plain", |b| {
        b.to_async(&rt).iter(|| async {
            sqlx::query("INSERT INTO items (sku, qty) VALUES ($1, $2)")
                .bind("widget")
                .bind(black_box(3_i64))
                .execute(&plain)
                .await
                .expect("insert")
        })
    });
    insert.bench_function("instrumented", |b| {
        b.to_async(&rt).iter(|| async {
            sqlx::query("INSERT INTO items (sku, qty) VALUES ($1, $2)")
                .bind("widget")
                .bind(black_box(3_i64))
                .execute(&instrumented)
                .await
                .expect("insert")
        })
    });
    insert.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = queries
}
criterion_main!(benches);
