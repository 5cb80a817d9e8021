//! The load: threads that each, per operation, open and close a span, emit
//! one `tracing` event inside it (a log record through otelwire's bridge),
//! add 1 to a counter and record a value in a histogram.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use otelwire::opentelemetry::KeyValue;
use otelwire::opentelemetry::metrics::{Counter, Histogram, Meter};

use crate::collector::{COUNTER, HISTOGRAM};

/// How far a paced load thread lets its schedule run ahead before it
/// sleeps: it then makes a tick's worth of operations in a burst.
const TICK: Duration = Duration::from_millis(1);

/// Which signals the load produces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signals {
    pub(crate) traces: bool,
    pub(crate) logs: bool,
    pub(crate) metrics: bool,
}

/// What the load threads did, counted by them (not by otelwire).
#[derive(Debug, Default)]
pub(crate) struct Emitted {
    pub(crate) spans: AtomicU64,
    pub(crate) logs: AtomicU64,
    /// Counter additions plus histogram recordings.
    pub(crate) measurements: AtomicU64,
    pub(crate) counter_adds: AtomicU64,
    pub(crate) histogram_records: AtomicU64,
}

/// Runs `threads` load threads until `stop` is set; `rate` operations per
/// second in total (0: as fast as they can).
pub(crate) fn start(
    threads: usize,
    rate: u64,
    signals: Signals,
    meter: &Meter,
    dispatch: Option<&tracing::Dispatch>,
    stop: &Arc<AtomicBool>,
    emitted: &Arc<Emitted>,
) -> Vec<std::thread::JoinHandle<()>> {
    let counter = meter.u64_counter(COUNTER).build();
    let histogram = meter
        .f64_histogram(HISTOGRAM)
        .with_boundaries(vec![1.0, 10.0, 100.0, 1000.0])
        .build();
    // Each thread's share of the rate, as the time between operations.
    let interval = (rate > 0).then(|| Duration::from_secs_f64(threads as f64 / rate as f64));
    (0..threads)
        .map(|worker| {
            let (stop, emitted) = (stop.clone(), emitted.clone());
            let (counter, histogram) = (counter.clone(), histogram.clone());
            let dispatch = dispatch.cloned();
            std::thread::Builder::new()
                .name(format!("stress-{worker}"))
                .spawn(move || match dispatch {
                    Some(d) => tracing::dispatcher::with_default(&d, || {
                        run(
                            worker, interval, signals, &counter, &histogram, &stop, &emitted,
                        )
                    }),
                    None => run(
                        worker, interval, signals, &counter, &histogram, &stop, &emitted,
                    ),
                })
                .expect("spawn a load thread")
        })
        .collect()
}

/// One load thread's loop: operations until `stop`, then its counts.
fn run(
    worker: usize,
    interval: Option<Duration>,
    signals: Signals,
    counter: &Counter<u64>,
    histogram: &Histogram<f64>,
    stop: &AtomicBool,
    emitted: &Emitted,
) {
    let attributes = [KeyValue::new("worker", worker as i64)];
    let worker = worker as u64;
    let started = Instant::now();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(every) = interval {
            // Paced in bursts: when ahead of schedule, sleep until a tick's
            // worth of operations is due. A sleep per operation (every
            // 40 µs at 50,000/s) cost more CPU in context switches than the
            // telemetry itself, and starved the export thread.
            let due = started + every.mul_f64(n as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now + TICK);
            }
        }
        if signals.traces {
            let span = tracing::info_span!("stress.operation", worker, n);
            let _entered = span.enter();
            if signals.logs {
                tracing::info!(worker, n, "stress operation done");
            }
        } else if signals.logs {
            tracing::info!(worker, n, "stress operation done");
        }
        if signals.metrics {
            counter.add(1, &attributes);
            histogram.record((n % 2000) as f64, &attributes);
        }
        n += 1;
    }
    if signals.traces {
        emitted.spans.fetch_add(n, Ordering::Relaxed);
    }
    if signals.logs {
        emitted.logs.fetch_add(n, Ordering::Relaxed);
    }
    if signals.metrics {
        emitted.counter_adds.fetch_add(n, Ordering::Relaxed);
        emitted.histogram_records.fetch_add(n, Ordering::Relaxed);
        emitted.measurements.fetch_add(2 * n, Ordering::Relaxed);
    }
}
