//! What the collector keeps: owned, flattened copies of the OTLP data, easy
//! to query in assertions.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as common;
use opentelemetry_proto::tonic::metrics::v1 as metrics;

/// An attribute or log body value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A list of values.
    Array(Vec<Value>),
    /// A list of key-value pairs.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number, if this is an integer or a double.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn from_proto(v: &common::AnyValue) -> Option<Value> {
        use common::any_value::Value as V;
        Some(match v.value.as_ref()? {
            V::StringValue(s) => Value::String(s.clone()),
            V::BoolValue(b) => Value::Bool(*b),
            V::IntValue(i) => Value::Int(*i),
            V::DoubleValue(d) => Value::Double(*d),
            V::BytesValue(b) => Value::Bytes(b.clone()),
            V::ArrayValue(a) => {
                Value::Array(a.values.iter().filter_map(Value::from_proto).collect())
            }
            V::KvlistValue(kv) => Value::Map(
                kv.values
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), Value::from_proto(kv.value.as_ref()?)?)))
                    .collect(),
            ),
            V::StringValueStrindex(i) => Value::Int(i64::from(*i)),
        })
    }
}

/// Key-value attributes, in the order received.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Attributes(pub Vec<(String, Value)>);

impl Attributes {
    fn from_proto(kvs: &[common::KeyValue]) -> Attributes {
        Attributes(
            kvs.iter()
                .filter_map(|kv| Some((kv.key.clone(), Value::from_proto(kv.value.as_ref()?)?)))
                .collect(),
        )
    }

    /// The value of `key` (the last one, if repeated).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string value of `key`.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The integer value of `key`.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// The numeric value of `key`.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// The boolean value of `key`.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How the data arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
}

/// The instrumentation scope (for the `tracing` bridge: the event's target).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Scope {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its attributes.
    pub attributes: Attributes,
}

impl Scope {
    fn from_proto(s: Option<&common::InstrumentationScope>) -> Scope {
        s.map(|s| Scope {
            name: s.name.clone(),
            version: s.version.clone(),
            attributes: Attributes::from_proto(&s.attributes),
        })
        .unwrap_or_default()
    }
}

/// A span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SpanKind {
    /// Not given.
    Unspecified,
    /// Internal.
    Internal,
    /// Server.
    Server,
    /// Client.
    Client,
    /// Producer.
    Producer,
    /// Consumer.
    Consumer,
}

/// A span status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum StatusCode {
    /// Unset.
    Unset,
    /// Ok.
    Ok,
    /// Error.
    Error,
}

/// A span status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Status {
    /// The code.
    pub code: StatusCode,
    /// The description (for errors).
    pub message: String,
}

/// An event recorded on a span.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpanEvent {
    /// Its name.
    pub name: String,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// Its attributes.
    pub attributes: Attributes,
}

/// A link to another span.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpanLink {
    /// The linked trace, 32 hex digits.
    pub trace_id: String,
    /// The linked span, 16 hex digits.
    pub span_id: String,
    /// Its attributes.
    pub attributes: Attributes,
}

/// A received span.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Span {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent span, `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The W3C trace state.
    pub trace_state: String,
    /// The span's flags as sent: the W3C trace flags in bits 0–7 (`0x01`
    /// sampled, `0x02` random), OTLP's "has is-remote" and "is remote"
    /// (of the parent) in bits 8 and 9.
    pub flags: u32,
    /// The span's name.
    pub name: String,
    /// The span's kind.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// The span's attributes.
    pub attributes: Attributes,
    /// Its events.
    pub events: Vec<SpanEvent>,
    /// Its links.
    pub links: Vec<SpanLink>,
    /// Its status.
    pub status: Status,
    /// The resource attributes of the sender.
    pub resource: Attributes,
    /// The instrumentation scope.
    pub scope: Scope,
    /// How it arrived.
    pub transport: Transport,
    /// Attributes the sender dropped (over its count limit).
    pub dropped_attributes_count: u32,
    /// Events the sender dropped.
    pub dropped_events_count: u32,
    /// Links the sender dropped.
    pub dropped_links_count: u32,
}

impl Span {
    /// A span attribute.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }

    /// The duration, in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano)
    }
}

/// A received log record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogRecord {
    /// When the event happened (0 when the sender left it out).
    pub time_unix_nano: u64,
    /// When the sender observed it.
    pub observed_time_unix_nano: u64,
    /// 1–24: 9 is INFO, 13 WARN, 17 ERROR.
    pub severity_number: i32,
    /// `INFO`, `WARN`, …
    pub severity_text: String,
    /// The body (the message, for `tracing` events).
    pub body: Option<Value>,
    /// The record's attributes.
    pub attributes: Attributes,
    /// The trace it was emitted in, if any.
    pub trace_id: Option<String>,
    /// The span it was emitted in, if any.
    pub span_id: Option<String>,
    /// The event name (empty when none).
    pub event_name: String,
    /// The resource attributes of the sender.
    pub resource: Attributes,
    /// The instrumentation scope.
    pub scope: Scope,
    /// How it arrived.
    pub transport: Transport,
}

impl LogRecord {
    /// The body, if it is a string.
    pub fn body_str(&self) -> Option<&str> {
        self.body.as_ref().and_then(Value::as_str)
    }

    /// A record attribute.
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes.get(key)
    }
}

/// What kind of metric a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A sum (a counter when monotonic).
    Sum {
        /// Only ever increases.
        monotonic: bool,
        /// Cumulative (else delta) temporality.
        cumulative: bool,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Cumulative (else delta) temporality.
        cumulative: bool,
    },
    /// An exponential histogram.
    ExponentialHistogram,
    /// A summary.
    Summary,
}

/// The value of one data point.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum PointValue {
    /// An integer gauge or sum.
    Int(i64),
    /// A floating-point gauge or sum.
    Double(f64),
    /// A histogram.
    Histogram {
        /// Number of measurements.
        count: u64,
        /// Their sum.
        sum: Option<f64>,
        /// Counts per bucket (one more than the bounds).
        bucket_counts: Vec<u64>,
        /// Upper bounds of the buckets.
        explicit_bounds: Vec<f64>,
        /// Smallest measurement.
        min: Option<f64>,
        /// Largest measurement.
        max: Option<f64>,
    },
    /// An exponential histogram (counts only).
    ExponentialHistogram {
        /// Number of measurements.
        count: u64,
        /// Their sum.
        sum: Option<f64>,
    },
    /// A summary (counts only).
    Summary {
        /// Number of measurements.
        count: u64,
        /// Their sum.
        sum: f64,
    },
}

/// One received metric data point, with its metric's description.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricPoint {
    /// The metric's name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its unit.
    pub unit: String,
    /// Its kind.
    pub kind: MetricKind,
    /// The value.
    pub value: PointValue,
    /// The point's attributes.
    pub attributes: Attributes,
    /// When it was taken, in nanoseconds since the Unix epoch.
    pub time_unix_nano: u64,
    /// The resource attributes of the sender.
    pub resource: Attributes,
    /// The instrumentation scope.
    pub scope: Scope,
    /// How it arrived.
    pub transport: Transport,
}

impl MetricPoint {
    /// The value of a gauge or sum as a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self.value {
            PointValue::Int(i) => Some(i as f64),
            PointValue::Double(d) => Some(d),
            _ => None,
        }
    }

    /// The number of measurements of a histogram or summary.
    pub fn count(&self) -> Option<u64> {
        match self.value {
            PointValue::Histogram { count, .. }
            | PointValue::ExponentialHistogram { count, .. }
            | PointValue::Summary { count, .. } => Some(count),
            _ => None,
        }
    }
}

fn hex_id(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Some(s)
}

pub(crate) fn spans(req: &ExportTraceServiceRequest, transport: Transport) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| Attributes::from_proto(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            let scope = Scope::from_proto(ss.scope.as_ref());
            for s in &ss.spans {
                let status = s.status.as_ref();
                out.push(Span {
                    trace_id: hex_id(&s.trace_id).unwrap_or_default(),
                    span_id: hex_id(&s.span_id).unwrap_or_default(),
                    parent_span_id: hex_id(&s.parent_span_id),
                    trace_state: s.trace_state.clone(),
                    flags: s.flags,
                    name: s.name.clone(),
                    kind: match s.kind {
                        1 => SpanKind::Internal,
                        2 => SpanKind::Server,
                        3 => SpanKind::Client,
                        4 => SpanKind::Producer,
                        5 => SpanKind::Consumer,
                        _ => SpanKind::Unspecified,
                    },
                    start_time_unix_nano: s.start_time_unix_nano,
                    end_time_unix_nano: s.end_time_unix_nano,
                    attributes: Attributes::from_proto(&s.attributes),
                    events: s
                        .events
                        .iter()
                        .map(|e| SpanEvent {
                            name: e.name.clone(),
                            time_unix_nano: e.time_unix_nano,
                            attributes: Attributes::from_proto(&e.attributes),
                        })
                        .collect(),
                    links: s
                        .links
                        .iter()
                        .map(|l| SpanLink {
                            trace_id: hex_id(&l.trace_id).unwrap_or_default(),
                            span_id: hex_id(&l.span_id).unwrap_or_default(),
                            attributes: Attributes::from_proto(&l.attributes),
                        })
                        .collect(),
                    status: Status {
                        code: match status.map(|s| s.code) {
                            Some(1) => StatusCode::Ok,
                            Some(2) => StatusCode::Error,
                            _ => StatusCode::Unset,
                        },
                        message: status.map(|s| s.message.clone()).unwrap_or_default(),
                    },
                    resource: resource.clone(),
                    scope: scope.clone(),
                    transport,
                    dropped_attributes_count: s.dropped_attributes_count,
                    dropped_events_count: s.dropped_events_count,
                    dropped_links_count: s.dropped_links_count,
                });
            }
        }
    }
    out
}

pub(crate) fn logs(req: &ExportLogsServiceRequest, transport: Transport) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| Attributes::from_proto(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            let scope = Scope::from_proto(sl.scope.as_ref());
            for l in &sl.log_records {
                out.push(LogRecord {
                    time_unix_nano: l.time_unix_nano,
                    observed_time_unix_nano: l.observed_time_unix_nano,
                    severity_number: l.severity_number,
                    severity_text: l.severity_text.clone(),
                    body: l.body.as_ref().and_then(Value::from_proto),
                    attributes: Attributes::from_proto(&l.attributes),
                    trace_id: hex_id(&l.trace_id),
                    span_id: hex_id(&l.span_id),
                    event_name: l.event_name.clone(),
                    resource: resource.clone(),
                    scope: scope.clone(),
                    transport,
                });
            }
        }
    }
    out
}

pub(crate) fn metric_points(
    req: &ExportMetricsServiceRequest,
    transport: Transport,
) -> Vec<MetricPoint> {
    use metrics::metric::Data;
    use metrics::number_data_point::Value as N;
    const CUMULATIVE: i32 = 2;
    let mut out = Vec::new();
    for rm in &req.resource_metrics {
        let resource = rm
            .resource
            .as_ref()
            .map(|r| Attributes::from_proto(&r.attributes))
            .unwrap_or_default();
        for sm in &rm.scope_metrics {
            let scope = Scope::from_proto(sm.scope.as_ref());
            for m in &sm.metrics {
                let mut push = |kind, value, attrs: &[common::KeyValue], time| {
                    out.push(MetricPoint {
                        name: m.name.clone(),
                        description: m.description.clone(),
                        unit: m.unit.clone(),
                        kind,
                        value,
                        attributes: Attributes::from_proto(attrs),
                        time_unix_nano: time,
                        resource: resource.clone(),
                        scope: scope.clone(),
                        transport,
                    })
                };
                let number = |p: &metrics::NumberDataPoint| match p.value {
                    Some(N::AsInt(i)) => PointValue::Int(i),
                    Some(N::AsDouble(d)) => PointValue::Double(d),
                    None => PointValue::Double(f64::NAN),
                };
                match &m.data {
                    Some(Data::Gauge(g)) => {
                        for p in &g.data_points {
                            push(
                                MetricKind::Gauge,
                                number(p),
                                &p.attributes,
                                p.time_unix_nano,
                            );
                        }
                    }
                    Some(Data::Sum(s)) => {
                        let kind = MetricKind::Sum {
                            monotonic: s.is_monotonic,
                            cumulative: s.aggregation_temporality == CUMULATIVE,
                        };
                        for p in &s.data_points {
                            push(kind, number(p), &p.attributes, p.time_unix_nano);
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let kind = MetricKind::Histogram {
                            cumulative: h.aggregation_temporality == CUMULATIVE,
                        };
                        for p in &h.data_points {
                            let value = PointValue::Histogram {
                                count: p.count,
                                sum: p.sum,
                                bucket_counts: p.bucket_counts.clone(),
                                explicit_bounds: p.explicit_bounds.clone(),
                                min: p.min,
                                max: p.max,
                            };
                            push(kind, value, &p.attributes, p.time_unix_nano);
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        for p in &h.data_points {
                            let value = PointValue::ExponentialHistogram {
                                count: p.count,
                                sum: p.sum,
                            };
                            push(
                                MetricKind::ExponentialHistogram,
                                value,
                                &p.attributes,
                                p.time_unix_nano,
                            );
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in &s.data_points {
                            let value = PointValue::Summary {
                                count: p.count,
                                sum: p.sum,
                            };
                            push(MetricKind::Summary, value, &p.attributes, p.time_unix_nano);
                        }
                    }
                    None => {}
                }
            }
        }
    }
    out
}
