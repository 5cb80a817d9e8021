//! `set_filter` on the global pipeline of `init` (issue 18, section 1): with
//! one dispatcher `tracing` caches `Interest::never` per callsite and a
//! maximum level for the process; a change must reach both. `init` is once
//! per process, hence this test binary of its own.

use std::time::Duration;

use otelwire::{LogFormat, Signal};
use otelwire_test::Collector;
use tracing::level_filters::LevelFilter;

fn debug_line(n: u32) {
    tracing::debug!(n, "cached callsite {n}");
}

#[test]
fn a_change_reaches_callsites_whose_interest_was_cached() {
    let collector = Collector::start().unwrap();
    let endpoint = collector.http_endpoint();
    let telemetry = otelwire::builder()
        .env_source(move |k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            _ => None,
        })
        .service_name("live-filter-init")
        .filter("warn")
        .metrics(false)
        .process_metrics(false)
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Logs, Duration::from_millis(50))
        .init()
        .unwrap();

    for n in 0..3 {
        debug_line(n);
    }
    telemetry.set_filter("debug").unwrap();
    assert!(LevelFilter::current() >= LevelFilter::DEBUG);
    debug_line(7);
    telemetry.set_filter("warn").unwrap();
    debug_line(8);
    tracing::warn!("the end");

    collector
        .wait_for_logs_blocking(
            1,
            |l| l.body_str() == Some("the end"),
            Duration::from_secs(10),
        )
        .unwrap();
    let seen: Vec<String> = collector
        .logs()
        .iter()
        .filter_map(|l| l.body_str().map(str::to_owned))
        .filter(|b| b.starts_with("cached callsite"))
        .collect();
    assert_eq!(seen, ["cached callsite 7"]);
    telemetry.shutdown_blocking();
}
