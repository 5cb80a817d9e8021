//! The hardening trial (issue 19), examples group, as `otelwire-sqlx` sees
//! it: a query that waits for a connection the pool never gives (the
//! database unreachable, or the pool exhausted) is an error, never a
//! "slow query" warning, however long it waited.

use std::time::Duration;

use otelwire::LogFormat;
use otelwire_sqlx::InstrumentedPool;
use otelwire_test::Console;
use sqlx::pool::PoolOptions;
use tracing::Instrument;

/// Item 18: the pool's only connection is taken, a query waits past the
/// acquire timeout (300 ms, six times the 50 ms slow-query threshold):
/// it fails with `PoolTimedOut` and no slow-query line is written.
#[tokio::test]
async fn a_pool_timeout_is_not_a_slow_query() {
    let console = Console::default();
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .sdk_disabled(true)
        .log_format(LogFormat::Json)
        .writer(console.clone())
        .build()
        .unwrap();
    let _default = tracing::dispatcher::set_default(telemetry.dispatch());
    let pool = PoolOptions::<sqlx::Sqlite>::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let db = InstrumentedPool::builder(pool)
        .env_source(|_| None)
        .slow_query_threshold(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    // A query that is slow for real is still reported, as the control.
    sqlx::query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c")
        .execute(&db)
        .instrument(tracing::info_span!("control"))
        .await
        .unwrap();
    let held = db.acquire().await.unwrap();
    let err = sqlx::query("SELECT 1")
        .execute(&db)
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap_err();
    drop(held);
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err}");
    let out = console.text();
    let slow: Vec<&str> = out.lines().filter(|l| l.contains("slow query")).collect();
    assert_eq!(slow.len(), 1, "only the control query is slow: {out}");
    assert!(slow[0].contains(r#""span":{"name":"control"}"#), "{out}");
}
