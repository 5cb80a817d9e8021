//! Faults: a collector that goes away and comes back, one that never
//! answers, one that refuses and then recovers, and values far too large.
//! Whatever the collector does, the service's own calls stay fast, nothing
//! panics, and every item is either exported or counted as dropped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, Mode};
use tracing::{info, info_span};

/// Configuration from a fixed map instead of the process environment.
fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Send + Sync + 'static {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn builder(endpoint: &str, protocol: Protocol) -> otelwire::Builder {
    otelwire::builder()
        .env_source(env(&[]))
        .service_name("faults")
        .endpoint(endpoint)
        .protocol(protocol)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(50))
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .metric_export_interval(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
        .process_metrics(false)
}

/// Waits until `cond` holds, or fails naming `what`.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Emits a span with a log record inside and a counter update, numbered,
/// until stopped; returns how many it emitted.
fn emitter(
    telemetry: &Telemetry,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicI64>,
) -> std::thread::JoinHandle<i64> {
    let dispatch = telemetry.dispatch().clone();
    let counter = telemetry
        .meter("faults")
        .u64_counter("faults.items")
        .build();
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            while !stop.load(Ordering::Relaxed) {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                info_span!("item", seq = n).in_scope(|| info!(seq = n, "item"));
                counter.add(1, &[]);
                // A steady stream, not a flood: the point is the outage.
                std::thread::sleep(Duration::from_micros(500));
            }
        });
        seq.load(Ordering::Relaxed)
    })
}

fn collector_stopped_and_restarted(protocol: Protocol) {
    let collector = Collector::start().unwrap();
    let endpoint = match protocol {
        Protocol::Grpc => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let telemetry = builder(&endpoint, protocol).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicI64::new(0));
    let handle = emitter(&telemetry, stop.clone(), seq.clone());

    collector
        .wait_for_spans_blocking(20, |s| s.name == "item", Duration::from_secs(10))
        .unwrap();
    collector.stop();
    // Exports fail while it is down: every signal notices.
    wait_until(
        "every signal fails while the collector is down",
        Duration::from_secs(10),
        || {
            let h = telemetry.health();
            [Signal::Traces, Signal::Logs, Signal::Metrics]
                .iter()
                .all(|s| h.signal(*s).failures > 0)
        },
    );
    collector.restart().unwrap();
    let after_restart = seq.load(Ordering::Relaxed);
    // Export resumes: items emitted after the restart arrive.
    collector
        .wait_for_spans_blocking(
            1,
            |s| {
                s.attributes
                    .get_i64("seq")
                    .is_some_and(|n| n > after_restart)
            },
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{protocol:?}: export did not resume: {e:?}"));
    collector
        .wait_for_logs_blocking(
            1,
            |l| {
                l.attributes
                    .get_i64("seq")
                    .is_some_and(|n| n > after_restart)
            },
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{protocol:?}: log export did not resume: {e:?}"));
    stop.store(true, Ordering::Relaxed);
    let emitted = handle.join().expect("the emitter never panics") as u64;

    let report = telemetry.shutdown_blocking();
    assert!(report.completed, "{report}");
    let traces = report.signal(Signal::Traces);
    assert_eq!(traces.emitted, emitted, "{protocol:?}: {report}");
    for s in &report.signals {
        assert_eq!(
            s.exported + s.dropped,
            s.emitted,
            "{protocol:?} {}: exported + dropped == emitted: {report}",
            s.signal
        );
    }
    assert!(
        traces.dropped > 0,
        "{protocol:?}: the outage lost nothing? {report}"
    );
    // What the collector holds is what the pipeline says it exported (a
    // batch cut off by the stop may have been stored and still counted as
    // dropped, never the other way round).
    let received: HashSet<i64> = collector
        .spans_named("item")
        .iter()
        .filter_map(|s| s.attributes.get_i64("seq"))
        .collect();
    assert!(
        received.len() as u64 >= traces.exported,
        "{protocol:?}: {} received, {report}",
        received.len()
    );
    assert!(
        received.len() as u64 <= traces.emitted,
        "{protocol:?}: {report}"
    );
}

#[test]
fn a_collector_stopped_and_restarted_mid_stream_loses_nothing_uncounted_over_grpc() {
    collector_stopped_and_restarted(Protocol::Grpc);
}

#[test]
fn a_collector_stopped_and_restarted_mid_stream_loses_nothing_uncounted_over_http() {
    collector_stopped_and_restarted(Protocol::HttpProtobuf);
}

#[test]
fn a_collector_that_never_answers_never_blocks_the_emitting_code() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let collector = Collector::start().unwrap();
        collector.set_mode(Mode::Hang);
        let endpoint = match protocol {
            Protocol::Grpc => collector.grpc_endpoint(),
            _ => collector.http_endpoint(),
        };
        let deadline = Duration::from_secs(2);
        let telemetry = builder(&endpoint, protocol)
            .timeout(Duration::from_secs(1))
            .max_queue_size(Signal::Traces, 256)
            .max_queue_size(Signal::Logs, 256)
            .shutdown_timeout(deadline)
            .build()
            .unwrap();
        let counter = telemetry
            .meter("faults")
            .u64_counter("faults.items")
            .build();
        let mut worst = Duration::ZERO;
        let started = Instant::now();
        let mut n = 0_i64;
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            // Long enough for several export attempts to hang and time out.
            while started.elapsed() < Duration::from_millis(2500) {
                let t = Instant::now();
                info_span!("item", seq = n).in_scope(|| info!(seq = n, "item"));
                counter.add(1, &[]);
                worst = worst.max(t.elapsed());
                n += 1;
                if n % 64 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        assert!(collector.requests().grpc_requests + collector.requests().http_requests == 0);
        eprintln!("{protocol:?}: {n} calls, the worst took {worst:?}");
        assert!(
            worst < Duration::from_millis(50),
            "{protocol:?}: an emitting call blocked for {worst:?}"
        );
        let report = telemetry.shutdown_blocking();
        assert!(
            report.elapsed < deadline + Duration::from_millis(1000),
            "{protocol:?}: shutdown took {:?} with a {deadline:?} deadline",
            report.elapsed
        );
        for s in &report.signals {
            assert_eq!(s.exported, 0, "{protocol:?}: {report}");
            assert_eq!(s.exported + s.dropped, s.emitted, "{protocol:?}: {report}");
        }
        assert!(report.signal(Signal::Traces).dropped > 0, "{report}");
    }
}

#[test]
fn a_collector_that_refuses_then_recovers_gets_the_batches_through_retries() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let collector = Collector::start().unwrap();
        collector.set_mode(Mode::Refuse);
        let endpoint = match protocol {
            Protocol::Grpc => collector.grpc_endpoint(),
            _ => collector.http_endpoint(),
        };
        let telemetry = builder(&endpoint, protocol).metrics(false).build().unwrap();
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            for n in 0..10_i64 {
                info_span!("refused", seq = n).in_scope(|| info!(seq = n, "refused"));
            }
        });
        // The first attempts are refused (503 / UNAVAILABLE)...
        collector
            .wait_for_requests_blocking(|r| r.refused >= 2, Duration::from_secs(10))
            .unwrap();
        // ...then the collector recovers before the retries run out.
        collector.set_mode(Mode::Accept);
        collector
            .wait_for_spans_blocking(10, |s| s.name == "refused", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{protocol:?}: the retries did not deliver: {e:?}"));
        collector
            .wait_for_logs_blocking(
                10,
                |l| l.body_str() == Some("refused"),
                Duration::from_secs(10),
            )
            .unwrap();
        let report = telemetry.shutdown_blocking();
        assert_eq!(report.dropped(), 0, "{protocol:?}: {report}");
        assert_eq!(
            collector.spans_named("refused").len(),
            10,
            "{protocol:?}: delivered once"
        );
    }
}

/// This process's resident memory, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

#[test]
fn huge_values_are_cut_to_the_limit_and_memory_stays_bounded() {
    const MIB: usize = 1024 * 1024;
    let huge = "x".repeat(10 * MIB);
    let collector = Collector::start().unwrap();
    let telemetry = builder(&collector.http_endpoint(), Protocol::HttpProtobuf)
        .env_source(env(&[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "1000")]))
        .metrics(false)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        info_span!("huge", payload = huge.as_str()).in_scope(|| {
            info!(payload = huge.as_str(), "{huge}");
        });
    });
    let span = collector
        .wait_for_spans_blocking(1, |s| s.name == "huge", Duration::from_secs(10))
        .unwrap()
        .remove(0);
    assert_eq!(span.attributes.get_str("payload").map(str::len), Some(1000));
    let log = collector
        .wait_for_logs_blocking(
            1,
            |l| l.attributes.contains_key("payload"),
            Duration::from_secs(10),
        )
        .unwrap()
        .remove(0);
    assert_eq!(log.body_str().map(str::len), Some(1000), "the message");
    assert_eq!(log.attributes.get_str("payload").map(str::len), Some(1000));
    assert_eq!(telemetry.shutdown_blocking().dropped(), 0);
    let zero = otelwire::builder()
        .env_source(env(&[]))
        .attribute_value_length_limit(0)
        .build()
        .expect_err("a limit of 0 is refused");
    assert!(
        zero.to_string().contains("attribute_value_length_limit"),
        "{zero}"
    );

    // A collector that never answers: whatever is queued stays queued. A
    // hundred 10 MiB values would hold a gigabyte; cut, they hold little.
    let hung = Collector::start().unwrap();
    hung.set_mode(Mode::Hang);
    let telemetry = builder(&hung.http_endpoint(), Protocol::HttpProtobuf)
        .timeout(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_millis(500))
        .metrics(false)
        .build()
        .unwrap();
    let before = resident_bytes();
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        for _ in 0..100 {
            info_span!("huge", payload = huge.as_str()).in_scope(|| info!("{huge}"));
        }
    });
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown < 256 * MIB as u64,
        "resident memory grew by {} MiB for 100 spans and logs of 10 MiB each",
        grown / MIB as u64
    );
    let report = telemetry.shutdown_blocking();
    for s in &report.signals {
        assert_eq!(s.exported + s.dropped, s.emitted, "{report}");
    }
}
