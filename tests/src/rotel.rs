//! `rotel`, a third-party OTLP receiver (`pip install rotel`, which ships
//! `rotel-agent`), run for a test: what it printed of the spans it received
//! is read back, so that a test sees the wire through a program that is
//! not ours.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::programs::{Process, free_port, tools_required, wait_until};

/// `rotel-agent`: `ROTEL_AGENT`, else on `PATH`, else inside the `rotel`
/// Python package. When it cannot be found: a panic under
/// `OTELWIRE_REQUIRE_TOOLS`, otherwise a notice and `None`.
pub fn agent() -> Option<PathBuf> {
    let found = std::env::var_os("ROTEL_AGENT")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("rotel-agent"))
                .find(|p| p.is_file())
        })
        .or_else(|| {
            let script = "import os, rotel; \
                          print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))";
            let out = Command::new("python3").args(["-c", script]).output().ok()?;
            let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            (out.status.success() && p.is_file()).then_some(p)
        });
    match found {
        Some(p) => Some(p),
        None if tools_required() => {
            panic!("rotel-agent not found: `pip install rotel` (or set ROTEL_AGENT)")
        }
        None => {
            eprintln!("SKIPPED: rotel-agent not found (pip install rotel)");
            None
        }
    }
}

/// A running `rotel-agent` that prints every span, log record and metric
/// it receives and exports nothing further; dropping it stops it.
#[derive(Debug)]
pub struct Rotel {
    process: Process,
    /// Its OTLP/gRPC port on 127.0.0.1.
    pub grpc_port: u16,
    /// Its OTLP/HTTP port on 127.0.0.1.
    pub http_port: u16,
}

/// A span as rotel printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotelSpan {
    /// The resource's `service.name`.
    pub service: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The span's name.
    pub name: String,
    /// `SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, …
    pub kind: String,
}

impl Rotel {
    /// Starts `agent` on two free ports, its output in `dir`, and waits
    /// until both ports answer.
    pub fn start(agent: &Path, dir: &Path) -> Rotel {
        let (grpc_port, http_port) = (free_port(), free_port());
        let mut cmd = Command::new(agent);
        cmd.args(["start", "--exporter", "blackhole"])
            .args(["--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc_port}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http_port}")])
            .args(["--debug-log", "traces", "--debug-log", "logs"])
            .args([
                "--debug-log",
                "metrics",
                "--debug-log-verbosity",
                "detailed",
            ])
            .env("NO_COLOR", "1");
        let mut rotel = Rotel {
            process: Process::start("rotel-agent", cmd, &dir.join("rotel.log")),
            grpc_port,
            http_port,
        };
        wait_until("rotel-agent listening", Duration::from_secs(15), || {
            rotel.process.assert_running();
            let up = [grpc_port, http_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            up.then_some(()).ok_or_else(|| rotel.process.output())
        });
        rotel
    }

    /// Its OTLP/gRPC endpoint, `http://127.0.0.1:port`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// Its OTLP/HTTP endpoint, `http://127.0.0.1:port`.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// What it printed so far, without terminal colours.
    pub fn output(&self) -> String {
        strip_ansi(&self.process.output())
    }

    /// Waits until what it printed satisfies `ok`, and returns that; panics
    /// after `timeout` with its output.
    pub fn wait_for_output(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        wait_until(what, timeout, || {
            let out = self.output();
            if ok(&out) { Ok(out.clone()) } else { Err(out) }
        })
    }

    /// The spans it printed so far.
    pub fn spans(&self) -> Vec<RotelSpan> {
        parse_spans(&self.output())
    }

    /// Waits until the spans it printed satisfy `ok`; panics after
    /// `timeout` with its output.
    pub fn wait_for_spans(
        &self,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&[RotelSpan]) -> bool,
    ) -> Vec<RotelSpan> {
        wait_until(what, timeout, || {
            let spans = self.spans();
            if ok(&spans) {
                Ok(spans)
            } else {
                Err(self.output())
            }
        })
    }
}

/// The text of each log record in rotel's output whose body is `body`.
pub fn log_records<'a>(out: &'a str, body: &str) -> Vec<&'a str> {
    let needle = format!("Body: Str({body})");
    out.split("LogRecord #")
        .filter(|rec| rec.contains(&needle))
        .collect()
}

/// `s` without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The spans of rotel's `--debug-log-verbosity detailed` output, each with
/// the `service.name` of the resource it came under.
pub fn parse_spans(out: &str) -> Vec<RotelSpan> {
    let mut spans: Vec<RotelSpan> = Vec::new();
    let mut service = String::new();
    let mut current: Option<RotelSpan> = None;
    let mut in_spans = false;
    for line in out.lines() {
        let line = line.trim();
        if line.starts_with("ResourceSpans #") {
            spans.extend(current.take());
            service.clear();
            in_spans = true;
        } else if line.starts_with("ResourceLog") || line.starts_with("ResourceMetrics") {
            // Log records and data points have `Trace ID` lines too: they
            // end the last span instead of overwriting its fields.
            spans.extend(current.take());
            in_spans = false;
        } else if !in_spans {
            // Between a log or metrics block's lines: nothing of a span.
        } else if let Some(v) = line.strip_prefix("-> service.name: Str(") {
            if current.is_none() {
                service = v.trim_end_matches(')').to_owned();
            }
        } else if line.starts_with("Span #") {
            spans.extend(current.take());
            current = Some(RotelSpan {
                service: service.clone(),
                trace_id: String::new(),
                parent_id: String::new(),
                span_id: String::new(),
                name: String::new(),
                kind: String::new(),
            });
        } else if let (Some(span), Some((key, value))) = (current.as_mut(), line.split_once(':')) {
            let value = value.trim().to_owned();
            match key.trim() {
                "Trace ID" => span.trace_id = value,
                "Parent ID" => span.parent_id = value,
                "ID" => span.span_id = value,
                "Name" => span.name = value,
                "Kind" => span.kind = value,
                _ => {}
            }
        }
    }
    spans.extend(current);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_spans_under_their_resource() {
        let out = "\
ResourceSpans #0
Resource attributes:
     -> service.name: Str(svc-a)
ScopeSpans #0
Span #0
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : eee19b7ec3c1b173
    ID             : eee19b7ec3c1b174
    Name           : GET /items/{sku}
    Kind           : SPAN_KIND_SERVER
Attributes:
     -> service.name: Str(not-a-resource)
Span #1
    Trace ID       : 5b8efff798038103d269b633813fc60c
    Parent ID      : 
    ID             : eee19b7ec3c1b173
    Name           : root
    Kind           : SPAN_KIND_CLIENT
ResourceSpans #1
Resource attributes:
     -> service.name: Str(svc-b)
Span #0
    Trace ID       : 00000000000000000000000000000001
    Parent ID      : 
    ID             : 0000000000000001
    Name           : pricing.v1.Pricing/Quote
    Kind           : SPAN_KIND_SERVER
ResourceLog #0
Resource attributes:
     -> service.name: Str(svc-b)
ScopeLogs #0
LogRecord #0
ObservedTimestamp: 1796647985444185143
SeverityText: INFO
    Trace ID       : 2d9ef678802abf834c413dc42b989c35
    Span ID        : 0000000000000009
    Name           : not a span
";
        let spans = parse_spans(out);
        let summary: Vec<(&str, &str, &str, &str)> = spans
            .iter()
            .map(|s| {
                (
                    s.service.as_str(),
                    s.name.as_str(),
                    s.parent_id.as_str(),
                    s.kind.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "svc-a",
                    "GET /items/{sku}",
                    "eee19b7ec3c1b173",
                    "SPAN_KIND_SERVER"
                ),
                ("svc-a", "root", "", "SPAN_KIND_CLIENT"),
                ("svc-b", "pricing.v1.Pricing/Quote", "", "SPAN_KIND_SERVER"),
            ]
        );
        assert_eq!(spans[0].span_id, "eee19b7ec3c1b174");
        assert_eq!(spans[0].trace_id, "5b8efff798038103d269b633813fc60c");
        // The log record after the last span leaves it as it was.
        assert_eq!(spans[2].trace_id, "00000000000000000000000000000001");
    }
}
