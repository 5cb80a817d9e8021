//! The collector in a process of its own: the child side (`stress collector`)
//! and the parent's handle on it.
//!
//! The child runs an `otelwire-test` collector on the ports it is given,
//! prints `ready`, drains what arrives every 100 ms (so its memory stays
//! bounded however long the run), and when its standard input closes stops
//! listening and prints one `received …` line with the totals.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use otelwire_test::{Collector, PointValue};

/// The counter and histogram the load threads update.
pub(crate) const COUNTER: &str = "stress.operations";
pub(crate) const HISTOGRAM: &str = "stress.value";

/// What one collector process received over its life.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Received {
    pub(crate) spans: u64,
    pub(crate) logs: u64,
    pub(crate) metric_points: u64,
    pub(crate) requests: u64,
    /// The last cumulative value of [`COUNTER`], summed over its series.
    pub(crate) counter_total: u64,
    /// The last cumulative count of [`HISTOGRAM`], summed over its series.
    pub(crate) histogram_count: u64,
    /// CPU seconds the collector process used.
    pub(crate) cpu_seconds: f64,
}

impl Received {
    fn line(&self) -> String {
        format!(
            "received spans={} logs={} metric_points={} requests={} counter_total={} histogram_count={} cpu_seconds={:.2}",
            self.spans,
            self.logs,
            self.metric_points,
            self.requests,
            self.counter_total,
            self.histogram_count,
            self.cpu_seconds
        )
    }

    fn parse(line: &str) -> Option<Received> {
        let rest = line.trim().strip_prefix("received ")?;
        let mut r = Received::default();
        for pair in rest.split(' ') {
            let (k, v) = pair.split_once('=')?;
            match k {
                "cpu_seconds" => r.cpu_seconds = v.parse().ok()?,
                _ => {
                    let v: u64 = v.parse().ok()?;
                    match k {
                        "spans" => r.spans = v,
                        "logs" => r.logs = v,
                        "metric_points" => r.metric_points = v,
                        "requests" => r.requests = v,
                        "counter_total" => r.counter_total = v,
                        "histogram_count" => r.histogram_count = v,
                        _ => return None,
                    }
                }
            }
        }
        Some(r)
    }

    /// Totals over several collector lives: counts add up; the cumulative
    /// metric values are the latest life's when it received any.
    pub(crate) fn then(self, later: Received) -> Received {
        let later_has_metrics = later.counter_total > 0 || later.histogram_count > 0;
        Received {
            spans: self.spans + later.spans,
            logs: self.logs + later.logs,
            metric_points: self.metric_points + later.metric_points,
            requests: self.requests + later.requests,
            counter_total: if later_has_metrics {
                later.counter_total
            } else {
                self.counter_total
            },
            histogram_count: if later_has_metrics {
                later.histogram_count
            } else {
                self.histogram_count
            },
            cpu_seconds: self.cpu_seconds + later.cpu_seconds,
        }
    }
}

/// The child: `stress collector GRPC_PORT HTTP_PORT`.
pub(crate) fn serve(grpc_port: u16, http_port: u16) -> ExitCode {
    let collector = match Collector::builder()
        .grpc_port(grpc_port)
        .http_port(http_port)
        .start()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stress collector: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();

    let (eof_tx, eof_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = eof_tx.send(());
    });
    let mut total = Received::default();
    // Per series (its attributes, printed): the latest cumulative value.
    let mut counter = std::collections::BTreeMap::<String, u64>::new();
    let mut histogram = std::collections::BTreeMap::<String, u64>::new();
    let mut take = |collector: &Collector| {
        let got = collector.drain();
        total.spans += got.requests.spans;
        total.logs += got.requests.logs;
        total.metric_points += got.requests.metric_points;
        total.requests += got.requests.grpc_requests + got.requests.http_requests;
        for p in &got.metrics {
            let series = format!("{:?}", p.attributes);
            // Cumulative: the largest value seen is the latest.
            match (&*p.name, &p.value) {
                (COUNTER, PointValue::Int(v)) => {
                    let e = counter.entry(series).or_default();
                    *e = (*e).max(*v as u64);
                }
                (HISTOGRAM, PointValue::Histogram { count, .. }) => {
                    let e = histogram.entry(series).or_default();
                    *e = (*e).max(*count);
                }
                _ => {}
            }
        }
    };
    while let Err(mpsc::RecvTimeoutError::Timeout) = eof_rx.recv_timeout(Duration::from_millis(100))
    {
        take(&collector);
    }
    collector.stop();
    take(&collector);
    drop(collector);
    total.counter_total = counter.values().sum();
    total.histogram_count = histogram.values().sum();
    total.cpu_seconds = crate::process::cpu_seconds();
    let _ = writeln!(out, "{}", total.line());
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// The parent's handle on a running collector process.
#[derive(Debug)]
pub(crate) struct CollectorProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl CollectorProcess {
    /// Starts `stress collector` on these ports and waits until it listens.
    pub(crate) fn spawn(grpc_port: u16, http_port: u16) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args(["collector", &grpc_port.to_string(), &http_port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the collector process: {e}"))?;
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        if line.trim() != "ready" {
            let _ = child.wait();
            return Err(format!(
                "the collector process did not start on ports {grpc_port}/{http_port}"
            ));
        }
        Ok(CollectorProcess { child, stdout })
    }

    /// Closes its standard input, waits for it to stop listening and exit,
    /// and returns what it received.
    pub(crate) fn stop(mut self) -> Result<Received, String> {
        drop(self.child.stdin.take());
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        let _ = self.child.wait();
        Received::parse(&line)
            .ok_or_else(|| format!("unexpected last line from the collector process: {line:?}"))
    }
}

/// Two ports nothing listens on right now (bound to port 0, then released).
pub(crate) fn free_ports() -> Result<(u16, u16), String> {
    let bind = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("cannot find a free port: {e}"))
    };
    let a = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let grpc = a.local_addr().map_err(|e| e.to_string())?.port();
    let http = bind()?;
    drop(a);
    Ok((grpc, http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_received_line_round_trips() {
        let r = Received {
            spans: 3,
            logs: 4,
            metric_points: 5,
            requests: 6,
            counter_total: 7,
            histogram_count: 8,
            cpu_seconds: 1.25,
        };
        assert_eq!(Received::parse(&r.line()), Some(r));
        assert_eq!(Received::parse("ready"), None);
    }
}
