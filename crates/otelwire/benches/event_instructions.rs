//! Instructions per event, for callgrind: `event_3_fields` of the overhead
//! bench (an `info!` with three fields inside an entered span, no-op
//! exporters) run a fixed number of times, so that two runs with different
//! counts give the cost of one event as the difference of their totals,
//! free of start-up and of wall-clock noise.
//!
//! ```text
//! cargo bench -p otelwire --bench event_instructions --no-run
//! EVENTS=0 valgrind --tool=callgrind <the bench binary>
//! EVENTS=20000 valgrind --tool=callgrind <the bench binary>
//! ```
//!
//! Without `EVENTS`, it runs 1000 events (a smoke run under `cargo bench`).
//!
//! With `SPANS=N` instead, it makes N root spans (created, entered, exited,
//! closed, exported to the no-op exporter): the span path's cost, counted
//! the same way.

use std::hint::black_box;
use std::time::Duration;

use otelwire::{LogFormat, Signal};
use otelwire_test::noop::{NoopLogs, NoopSpans};

/// Larger than any count run, so that no event takes the queue-full path.
const QUEUE: usize = 1 << 16;

fn main() {
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    assert!(events < QUEUE, "EVENTS must stay below {QUEUE}");
    let telemetry = otelwire::builder()
        .env_source(|_| None)
        .metrics(false)
        .process_metrics(false)
        .writer(std::io::sink)
        .max_queue_size(Signal::Traces, QUEUE)
        .max_queue_size(Signal::Logs, QUEUE)
        // No export while counting: the events' own cost only.
        .scheduled_delay(Signal::Traces, Duration::from_secs(3600))
        .scheduled_delay(Signal::Logs, Duration::from_secs(3600))
        .span_exporter(NoopSpans)
        .log_exporter(NoopLogs)
        .log_format(LogFormat::Json)
        .build()
        .expect("otelwire init");
    let spans: Option<usize> = std::env::var("SPANS").ok().and_then(|v| v.parse().ok());
    if let Some(spans) = spans {
        assert!(spans < QUEUE, "SPANS must stay below {QUEUE}");
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            for _ in 0..spans {
                let span = tracing::info_span!("request", id = black_box(7));
                drop(span.enter());
            }
        });
        telemetry.shutdown_blocking();
        return;
    }
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        let span = tracing::info_span!("request", id = 7);
        let _entered = span.enter();
        for _ in 0..events {
            tracing::info!(a = black_box(1), b = "two", c = 3.0, "message");
        }
    });
    telemetry.shutdown_blocking();
}
