//! Metrics otelwire records by itself: the process (CPU, memory, threads,
//! uptime) and the telemetry pipeline (exported, dropped, failures per signal).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use crate::config::Signal;
use crate::health::Pipeline;

/// Registers the pipeline's own counters: `otelwire.telemetry.exported`,
/// `otelwire.telemetry.dropped` and `otelwire.telemetry.export.failures`,
/// each with a `signal` attribute.
pub(crate) fn register_pipeline(meter: &Meter, pipeline: &Arc<Pipeline>) {
    type Read = fn(&crate::health::SignalStats) -> u64;
    let series: [(&'static str, &'static str, Read); 3] = [
        (
            "otelwire.telemetry.exported",
            "Items (spans, log records, metric points) delivered to the exporter's endpoint.",
            |s| s.exported.load(Ordering::Relaxed),
        ),
        (
            "otelwire.telemetry.dropped",
            "Items lost: queue full or export failed after retries.",
            |s| s.dropped(),
        ),
        (
            "otelwire.telemetry.export.failures",
            "Export calls that failed.",
            |s| s.failures.load(Ordering::Relaxed),
        ),
    ];
    for (name, description, read) in series {
        let p = Arc::downgrade(pipeline);
        meter
            .u64_observable_counter(name)
            .with_description(description)
            .with_unit("{item}")
            .with_callback(move |obs| {
                let Some(p) = p.upgrade() else { return };
                for signal in Signal::ALL {
                    obs.observe(
                        read(p.stats(signal)),
                        &[KeyValue::new("signal", signal.as_str())],
                    );
                }
            })
            .build();
    }
}

/// Registers `process.cpu.time`, `process.memory.usage`,
/// `process.thread.count` and `process.uptime` (OpenTelemetry process
/// semantic conventions). CPU, memory and threads are read from `/proc` and
/// are reported only on Linux; uptime everywhere.
pub(crate) fn register_process(meter: &Meter) {
    let started = Instant::now();
    meter
        .f64_observable_gauge("process.uptime")
        .with_unit("s")
        .with_description("The time the process has been running.")
        .with_callback(move |obs| obs.observe(started.elapsed().as_secs_f64(), &[]))
        .build();
    if !cfg!(target_os = "linux") {
        return;
    }
    meter
        .f64_observable_counter("process.cpu.time")
        .with_unit("s")
        .with_description("Total CPU seconds broken down by mode.")
        .with_callback(|obs| {
            if let Some((user, system)) = cpu_times() {
                obs.observe(user, &[KeyValue::new("cpu.mode", "user")]);
                obs.observe(system, &[KeyValue::new("cpu.mode", "system")]);
            }
        })
        .build();
    meter
        .i64_observable_up_down_counter("process.memory.usage")
        .with_unit("By")
        .with_description("The amount of physical memory in use (resident set size).")
        .with_callback(|obs| {
            if let Some(rss) = status_field("VmRSS:") {
                obs.observe(rss as i64 * 1024, &[]);
            }
        })
        .build();
    meter
        .i64_observable_up_down_counter("process.thread.count")
        .with_unit("{thread}")
        .with_description("Process threads count.")
        .with_callback(|obs| {
            if let Some(n) = status_field("Threads:") {
                obs.observe(n as i64, &[]);
            }
        })
        .build();
}

/// User and system CPU seconds from `/proc/self/stat` (fields 14 and 15, in
/// clock ticks of 1/100 s, the value of `CLK_TCK` on every Linux platform
/// Rust supports).
fn cpu_times() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<(f64, f64)> {
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime as f64 / 100.0, stime as f64 / 100.0))
}

/// A numeric field of `/proc/self/status` (`VmRSS:` is in KiB).
fn status_field(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_field(&status, name)
}

fn parse_status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_the_name() {
        let stat = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_stat(stat), Some((2.5, 0.75)));
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tx\nVmRSS:\t   2048 kB\nThreads:\t7\n";
        assert_eq!(parse_status_field(status, "VmRSS:"), Some(2048));
        assert_eq!(parse_status_field(status, "Threads:"), Some(7));
        assert_eq!(parse_status_field(status, "Nope:"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        assert!(cpu_times().is_some());
        assert!(status_field("VmRSS:").unwrap() > 0);
    }
}
