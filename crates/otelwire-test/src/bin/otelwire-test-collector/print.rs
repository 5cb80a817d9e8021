//! What the collector prints: one line per span, log record and metric
//! point, for a person (`key=value`) or a script (JSON lines).

use std::io::Write;

use otelwire_test::{
    Attributes, LogRecord, MetricKind, MetricPoint, PointValue, Received, Span, SpanKind,
    StatusCode, Value,
};
use serde_json::{Map, Value as Json, json};

/// How items are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `key=value` lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Which signals are printed item by item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct What {
    spans: bool,
    logs: bool,
    metrics: bool,
}

impl What {
    pub(crate) const ALL: What = What {
        spans: true,
        logs: true,
        metrics: true,
    };

    /// `spans,logs,metrics` (any of them, in any order), or `all`.
    pub(crate) fn parse(list: &str) -> Result<What, String> {
        let mut what = What {
            spans: false,
            logs: false,
            metrics: false,
        };
        for word in list.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "spans" | "span" => what.spans = true,
                "logs" | "log" => what.logs = true,
                "metrics" | "metric" => what.metrics = true,
                "all" => what = What::ALL,
                other => {
                    return Err(format!(
                        "--print takes spans, logs, metrics or all, comma-separated, not {other:?}"
                    ));
                }
            }
        }
        if what
            == (What {
                spans: false,
                logs: false,
                metrics: false,
            })
        {
            return Err("--print needs at least one of spans, logs, metrics".into());
        }
        Ok(what)
    }
}

/// Writes what arrives, and keeps the totals for the summary line.
pub(crate) struct Printer<W: Write> {
    out: W,
    format: Format,
    what: Option<What>,
    totals: [u64; 3],
    printed_totals: [u64; 3],
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, format: Format, what: Option<What>) -> Self {
        Printer {
            out,
            format,
            what,
            totals: [0; 3],
            printed_totals: [0; 3],
        }
    }

    /// `grpc http://127.0.0.1:4317`.
    pub(crate) fn endpoint(&mut self, protocol: &str, url: &str) {
        let line = match self.format {
            Format::Human => format!("{protocol} {url}"),
            Format::Json => {
                json!({"type": "endpoint", "protocol": protocol, "url": url}).to_string()
            }
        };
        self.line(&line);
        let _ = self.out.flush();
    }

    /// Prints what was received (per [`What`]) and adds it to the totals.
    pub(crate) fn received(&mut self, r: &Received) {
        self.totals[0] += r.spans.len() as u64;
        self.totals[1] += r.logs.len() as u64;
        self.totals[2] += r.metrics.len() as u64;
        let Some(what) = self.what else { return };
        let mut lines = Vec::new();
        if what.spans {
            lines.extend(r.spans.iter().map(|s| self.span(s)));
        }
        if what.logs {
            lines.extend(r.logs.iter().map(|l| self.log(l)));
        }
        if what.metrics {
            lines.extend(r.metrics.iter().map(|m| self.metric(m)));
        }
        for line in &lines {
            self.line(line);
        }
        if !lines.is_empty() {
            let _ = self.out.flush();
        }
    }

    /// `spans=N logs=N metric_points=N`, when the totals changed since the
    /// last one; whether it printed.
    pub(crate) fn summary(&mut self) -> bool {
        if self.totals == self.printed_totals {
            return false;
        }
        self.printed_totals = self.totals;
        let [spans, logs, points] = self.totals;
        let line = match self.format {
            Format::Human => format!("spans={spans} logs={logs} metric_points={points}"),
            Format::Json => {
                json!({"type": "summary", "spans": spans, "logs": logs, "metric_points": points})
                    .to_string()
            }
        };
        self.line(&line);
        let _ = self.out.flush();
        true
    }

    fn line(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    fn span(&self, s: &Span) -> String {
        let service = service(&s.resource);
        let kind = kind(s.kind);
        let status = status(s.status.code);
        match self.format {
            Format::Human => {
                let mut line = format!(
                    "span trace_id={} span_id={} parent={} service={} name={} kind={kind} status={status}",
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id.as_deref().unwrap_or("-"),
                    quote(service),
                    quote(&s.name),
                );
                if !s.status.message.is_empty() {
                    line.push_str(&format!(" status_message={}", quote(&s.status.message)));
                }
                line.push_str(&format!(" duration={}", duration(s.duration_nanos())));
                line
            }
            Format::Json => json!({
                "type": "span",
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "parent_span_id": s.parent_span_id,
                "service": service,
                "name": s.name,
                "kind": kind,
                "status": status,
                "status_message": s.status.message,
                "start_time_unix_nano": s.start_time_unix_nano,
                "end_time_unix_nano": s.end_time_unix_nano,
                "duration_ns": s.duration_nanos(),
                "scope": s.scope.name,
                "attributes": attributes(&s.attributes),
            })
            .to_string(),
        }
    }

    fn log(&self, l: &LogRecord) -> String {
        let service = service(&l.resource);
        let time = if l.time_unix_nano != 0 {
            l.time_unix_nano
        } else {
            l.observed_time_unix_nano
        };
        let severity = if l.severity_text.is_empty() {
            l.severity_number.to_string()
        } else {
            l.severity_text.clone()
        };
        match self.format {
            Format::Human => {
                let mut line = format!(
                    "log time={} severity={severity} service={}",
                    rfc3339(time),
                    quote(service)
                );
                if let (Some(t), Some(s)) = (&l.trace_id, &l.span_id) {
                    line.push_str(&format!(" trace_id={t} span_id={s}"));
                }
                if !l.event_name.is_empty() {
                    line.push_str(&format!(" event={}", quote(&l.event_name)));
                }
                let body = l.body.as_ref().map(human).unwrap_or_else(|| "-".into());
                line.push_str(&format!(" body={body}"));
                push_attributes(&mut line, &l.attributes);
                line
            }
            Format::Json => json!({
                "type": "log",
                "time_unix_nano": time,
                "severity": severity,
                "severity_number": l.severity_number,
                "service": service,
                "trace_id": l.trace_id,
                "span_id": l.span_id,
                "event_name": l.event_name,
                "body": l.body.as_ref().map(json_value),
                "scope": l.scope.name,
                "attributes": attributes(&l.attributes),
            })
            .to_string(),
        }
    }

    fn metric(&self, m: &MetricPoint) -> String {
        let service = service(&m.resource);
        let kind = metric_kind(m.kind);
        match self.format {
            Format::Human => {
                let mut line = format!(
                    "metric time={} service={} name={} kind={kind} unit={} {}",
                    rfc3339(m.time_unix_nano),
                    quote(service),
                    quote(&m.name),
                    quote(&m.unit),
                    human_point(&m.value),
                );
                push_attributes(&mut line, &m.attributes);
                line
            }
            Format::Json => {
                let mut o = Map::new();
                o.insert("type".into(), "metric".into());
                o.insert("time_unix_nano".into(), m.time_unix_nano.into());
                o.insert("service".into(), service.into());
                o.insert("name".into(), m.name.clone().into());
                o.insert("kind".into(), kind.into());
                o.insert("unit".into(), m.unit.clone().into());
                json_point(&mut o, &m.value);
                o.insert("scope".into(), m.scope.name.clone().into());
                o.insert("attributes".into(), attributes(&m.attributes));
                Json::Object(o).to_string()
            }
        }
    }
}

fn service(resource: &Attributes) -> &str {
    resource.get_str("service.name").unwrap_or("")
}

fn kind(k: SpanKind) -> &'static str {
    match k {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn status(c: StatusCode) -> &'static str {
    match c {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

fn metric_kind(k: MetricKind) -> &'static str {
    match k {
        MetricKind::Gauge => "gauge",
        MetricKind::Sum {
            monotonic: true, ..
        } => "counter",
        MetricKind::Sum { .. } => "sum",
        MetricKind::Histogram { .. } => "histogram",
        MetricKind::ExponentialHistogram => "exponential_histogram",
        MetricKind::Summary => "summary",
    }
}

/// A string as a JSON string literal: quoted, escaped, one line.
fn quote(s: &str) -> String {
    Json::from(s).to_string()
}

fn human(v: &Value) -> String {
    match v {
        Value::String(s) => quote(s),
        other => json_value(other).to_string(),
    }
}

fn json_value(v: &Value) -> Json {
    match v {
        Value::String(s) => s.clone().into(),
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Double(d) => Json::from(*d),
        Value::Bytes(b) => b
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
            .into(),
        Value::Array(a) => a.iter().map(json_value).collect(),
        Value::Map(kvs) => Json::Object(
            kvs.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        ),
    }
}

/// Attributes as a JSON object (a repeated key keeps its last value).
fn attributes(a: &Attributes) -> Json {
    Json::Object(
        a.iter()
            .map(|(k, v)| (k.to_owned(), json_value(v)))
            .collect(),
    )
}

fn push_attributes(line: &mut String, a: &Attributes) {
    for (k, v) in a.iter() {
        line.push_str(&format!(" {k}={}", human(v)));
    }
}

fn human_point(v: &PointValue) -> String {
    match v {
        PointValue::Int(i) => format!("value={i}"),
        PointValue::Double(d) => format!("value={d}"),
        PointValue::Histogram {
            count,
            sum,
            min,
            max,
            ..
        } => {
            let mut s = format!("count={count}");
            for (name, x) in [("sum", sum), ("min", min), ("max", max)] {
                if let Some(x) = x {
                    s.push_str(&format!(" {name}={x}"));
                }
            }
            s
        }
        PointValue::ExponentialHistogram { count, sum } => match sum {
            Some(sum) => format!("count={count} sum={sum}"),
            None => format!("count={count}"),
        },
        PointValue::Summary { count, sum } => format!("count={count} sum={sum}"),
    }
}

fn json_point(o: &mut Map<String, Json>, v: &PointValue) {
    match v {
        PointValue::Int(i) => {
            o.insert("value".into(), (*i).into());
        }
        PointValue::Double(d) => {
            o.insert("value".into(), Json::from(*d));
        }
        PointValue::Histogram {
            count,
            sum,
            bucket_counts,
            explicit_bounds,
            min,
            max,
        } => {
            o.insert("count".into(), (*count).into());
            o.insert("sum".into(), json!(sum));
            o.insert("min".into(), json!(min));
            o.insert("max".into(), json!(max));
            o.insert("bucket_counts".into(), json!(bucket_counts));
            o.insert("explicit_bounds".into(), json!(explicit_bounds));
        }
        PointValue::ExponentialHistogram { count, sum } => {
            o.insert("count".into(), (*count).into());
            o.insert("sum".into(), json!(sum));
        }
        PointValue::Summary { count, sum } => {
            o.insert("count".into(), (*count).into());
            o.insert("sum".into(), json!(sum));
        }
    }
}

/// A duration as people read it: `850ns`, `12.5µs`, `4.7ms`, `1.25s`.
fn duration(nanos: u64) -> String {
    let (value, unit) = match nanos {
        0..1_000 => return format!("{nanos}ns"),
        1_000..1_000_000 => (nanos as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (nanos as f64 / 1e6, "ms"),
        _ => (nanos as f64 / 1e9, "s"),
    };
    // Three significant digits, without trailing zeros.
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{value:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{unit}")
}

/// Nanoseconds since the Unix epoch as `2026-12-02T08:30:00.125Z`
/// (`-` when not given).
fn rfc3339(nanos: u64) -> String {
    if nanos == 0 {
        return "-".into();
    }
    let secs = nanos / 1_000_000_000;
    let millis = (nanos / 1_000_000) % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration(850), "850ns");
        assert_eq!(duration(12_500), "12.5µs");
        assert_eq!(duration(4_700_000), "4.7ms");
        assert_eq!(duration(895_210), "895µs");
        assert_eq!(duration(1_250_000_000), "1.25s");
        assert_eq!(duration(2_000_000), "2ms");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "-");
        assert_eq!(
            rfc3339(1_000_000_000 * 86_400 + 5_000_000),
            "1970-01-02T00:00:00.005Z"
        );
        // 2024-02-29T12:34:56.789Z
        assert_eq!(
            rfc3339(1_709_210_096_789_000_000),
            "2024-02-29T12:34:56.789Z"
        );
    }

    #[test]
    fn print_lists() {
        assert_eq!(What::parse("all"), Ok(What::ALL));
        assert_eq!(What::parse("metrics, spans,logs"), Ok(What::ALL));
        assert!(What::parse("spans").is_ok_and(|w| w.spans && !w.logs && !w.metrics));
        assert!(What::parse("traces").is_err());
        assert!(What::parse("").is_err());
    }
}
