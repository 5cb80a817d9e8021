//! One collection written in the Prometheus text exposition format 0.0.4,
//! with the names, labels and `target_info` Prometheus's OTLP receiver
//! would make of the same data.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

use super::PROMOTED_RESOURCE_ATTRIBUTES;
use super::names::{Kind, label_name, metric_name};

/// A family: the lines of one metric name, under one `# HELP` and `# TYPE`.
struct Family {
    kind: Kind,
    help: String,
    /// The label sets written so far (a second, identical series is left out).
    seen: HashSet<String>,
    lines: String,
}

/// A sample value as Prometheus reads it: integers without a fraction.
trait Value: Copy {
    fn write(self, out: &mut String);
    fn as_f64(self) -> f64;
}

impl Value for u64 {
    fn write(self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(self));
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Value for i64 {
    fn write(self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(self));
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Value for f64 {
    fn write(self, out: &mut String) {
        write_f64(self, out);
    }
    fn as_f64(self) -> f64 {
        self
    }
}

fn write_f64(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(v));
    }
}

/// A bucket bound as Prometheus's OTLP receiver writes `le`: the shortest
/// decimal that reads back exactly, never an exponent (`0.005`, `1`, `10`).
fn bound(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    format!("{v}")
}

/// A label value with `\`, `"` and line feeds escaped.
fn escape_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `# HELP` text with `\` and line feeds escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The labels of a point: its attributes, sorted by key, sanitized (keys
/// that collide have their values joined with `;`, in key order, as
/// Prometheus joins them), then the promoted resource attributes.
fn point_labels<'a>(
    attributes: impl Iterator<Item = &'a KeyValue>,
    resource: &[(String, String)],
) -> Vec<(String, String)> {
    let mut attrs: Vec<(&str, String)> = attributes
        .map(|kv| (kv.key.as_str(), kv.value.as_str().into_owned()))
        .collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(attrs.len() + resource.len());
    for (key, value) in attrs {
        let Some(name) = label_name(key) else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) if !existing.is_empty() => {
                existing.push(';');
                existing.push_str(&value);
            }
            Some((_, existing)) => *existing = value,
            None => out.push((name, value)),
        }
    }
    // A point's own attribute wins over a promoted resource attribute of
    // the same name, as in Prometheus.
    for (name, value) in resource {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) if existing.is_empty() => existing.clone_from(value),
            Some(_) => {}
            None => out.push((name.clone(), value.clone())),
        }
    }
    // An empty value is the same as no label to Prometheus.
    out.retain(|(_, v)| !v.is_empty());
    out
}

fn write_labels(labels: &[(String, String)], le: Option<&str>, out: &mut String) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let extra = le.map(|le| ("le", le));
    for (name, value) in labels
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain(extra)
    {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        escape_value(value, out);
        out.push('"');
    }
    out.push('}');
}

/// The label set as one string, to tell series apart.
fn key_of(labels: &[(String, String)]) -> String {
    let mut k = String::new();
    write_labels(labels, None, &mut k);
    k
}

impl Family {
    fn sample(&mut self, name: &str, suffix: &str, labels: &[(String, String)], le: Option<&str>) {
        self.lines.push_str(name);
        self.lines.push_str(suffix);
        write_labels(labels, le, &mut self.lines);
        self.lines.push(' ');
    }

    /// Whether this label set is new to the family (and records it).
    fn first_time(&mut self, labels: &[(String, String)]) -> bool {
        self.seen.insert(key_of(labels))
    }

    fn add<T: Value>(&mut self, name: &str, data: &MetricData<T>, resource: &[(String, String)]) {
        match data {
            MetricData::Gauge(g) => {
                for p in g.data_points() {
                    let labels = point_labels(p.attributes(), resource);
                    if self.first_time(&labels) {
                        self.sample(name, "", &labels, None);
                        p.value().write(&mut self.lines);
                        self.lines.push('\n');
                    }
                }
            }
            MetricData::Sum(s) => {
                for p in s.data_points() {
                    let labels = point_labels(p.attributes(), resource);
                    if self.first_time(&labels) {
                        self.sample(name, "", &labels, None);
                        p.value().write(&mut self.lines);
                        self.lines.push('\n');
                    }
                }
            }
            MetricData::Histogram(h) => {
                for p in h.data_points() {
                    let labels = point_labels(p.attributes(), resource);
                    if !self.first_time(&labels) {
                        continue;
                    }
                    let mut cumulative = 0u64;
                    for (b, count) in p.bounds().zip(p.bucket_counts()) {
                        cumulative += count;
                        self.sample(name, "_bucket", &labels, Some(&bound(b)));
                        cumulative.write(&mut self.lines);
                        self.lines.push('\n');
                    }
                    self.sample(name, "_bucket", &labels, Some("+Inf"));
                    p.count().write(&mut self.lines);
                    self.lines.push('\n');
                    self.sample(name, "_sum", &labels, None);
                    write_f64(p.sum().as_f64(), &mut self.lines);
                    self.lines.push('\n');
                    self.sample(name, "_count", &labels, None);
                    p.count().write(&mut self.lines);
                    self.lines.push('\n');
                }
            }
            // Not in the text format (native histograms need protobuf);
            // otelwire's views never make them.
            MetricData::ExponentialHistogram(_) => {}
        }
    }
}

/// The kind of a metric, or `None` for what the text format cannot carry
/// (exponential histograms) or Prometheus would refuse (delta temporality).
fn kind_of<T>(data: &MetricData<T>) -> Option<Kind> {
    match data {
        MetricData::Gauge(_) => Some(Kind::Gauge),
        MetricData::Sum(s) if s.temporality() == Temporality::Cumulative => {
            Some(if s.is_monotonic() {
                Kind::Counter
            } else {
                Kind::UpDown
            })
        }
        MetricData::Histogram(h) if h.temporality() == Temporality::Cumulative => {
            Some(Kind::Histogram)
        }
        _ => None,
    }
}

fn kind(metric: &Metric) -> Option<Kind> {
    match metric.data() {
        AggregatedMetrics::F64(d) => kind_of(d),
        AggregatedMetrics::U64(d) => kind_of(d),
        AggregatedMetrics::I64(d) => kind_of(d),
    }
}

/// The promoted resource attributes, as labels, in the order Prometheus
/// is configured with them (see [`PROMOTED_RESOURCE_ATTRIBUTES`]).
pub(crate) fn promoted(resource: &opentelemetry_sdk::Resource) -> Vec<(String, String)> {
    PROMOTED_RESOURCE_ATTRIBUTES
        .iter()
        .filter_map(|key| {
            let value = resource.get(&opentelemetry::Key::from_static_str(key))?;
            Some((label_name(key)?, value.as_str().into_owned()))
        })
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

/// `target_info`: every resource attribute as a label, value 1.
fn target_info(resource: &opentelemetry_sdk::Resource, out: &mut String) {
    let mut attrs: Vec<(String, String)> = resource
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_str().into_owned()))
        .collect();
    if attrs.is_empty() {
        return;
    }
    attrs.sort();
    let mut labels: Vec<(String, String)> = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        let Some(name) = label_name(&key) else {
            continue;
        };
        match labels.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(';');
                existing.push_str(&value);
            }
            None => labels.push((name, value)),
        }
    }
    labels.retain(|(_, v)| !v.is_empty());
    out.push_str("# HELP target_info Target metadata\n# TYPE target_info gauge\ntarget_info");
    write_labels(&labels, None, out);
    out.push_str(" 1\n");
}

/// Writes `metrics` in the text format: `target_info` first, then every
/// family in name order. Returns the number of points written.
pub(crate) fn encode(metrics: &ResourceMetrics, out: &mut String) -> u64 {
    let resource = promoted(metrics.resource());
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut points = 0u64;
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            let Some(kind) = kind(metric) else {
                continue;
            };
            let Some(name) = metric_name(metric.name(), metric.unit(), kind) else {
                continue;
            };
            let family = families.entry(name.clone()).or_insert_with(|| Family {
                kind,
                help: metric.description().to_owned(),
                seen: HashSet::new(),
                lines: String::new(),
            });
            // Two metrics of different kinds under one name: the first wins
            // (Prometheus would mix them into one series).
            if family.kind.type_name() != kind.type_name() {
                continue;
            }
            let before = family.seen.len();
            match metric.data() {
                AggregatedMetrics::F64(d) => family.add(&name, d, &resource),
                AggregatedMetrics::U64(d) => family.add(&name, d, &resource),
                AggregatedMetrics::I64(d) => family.add(&name, d, &resource),
            }
            points += (family.seen.len() - before) as u64;
        }
    }
    target_info(metrics.resource(), out);
    for (name, family) in &families {
        if family.lines.is_empty() {
            continue;
        }
        if !family.help.is_empty() {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&family.help));
        }
        let _ = writeln!(out, "# TYPE {name} {}", family.kind.type_name());
        out.push_str(&family.lines);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_prometheus_reads_them() {
        let w = |v: f64| {
            let mut s = String::new();
            write_f64(v, &mut s);
            s
        };
        assert_eq!(w(3.0), "3");
        assert_eq!(w(0.25), "0.25");
        assert_eq!(w(-2.0), "-2");
        assert_eq!(w(f64::INFINITY), "+Inf");
        assert_eq!(w(f64::NAN), "NaN");
        assert_eq!(w(1e300), "1e300");
        assert_eq!(bound(0.005), "0.005");
        assert_eq!(bound(1.0), "1");
        assert_eq!(bound(10.0), "10");
        assert_eq!(bound(2.5), "2.5");
    }

    #[test]
    fn attributes_collide_as_prometheus_joins_them() {
        let attrs = [
            KeyValue::new("b.c", "2"),
            KeyValue::new("b_c", "1"),
            KeyValue::new("http.route", "/a\"b\\c\nd"),
            KeyValue::new("empty", ""),
        ];
        let resource = vec![("service_name".to_owned(), "svc".to_owned())];
        let labels = point_labels(attrs.iter(), &resource);
        assert_eq!(
            labels,
            vec![
                ("b_c".to_owned(), "2;1".to_owned()),
                ("http_route".to_owned(), "/a\"b\\c\nd".to_owned()),
                ("service_name".to_owned(), "svc".to_owned()),
            ]
        );
        let mut line = String::new();
        write_labels(&labels, Some("+Inf"), &mut line);
        assert_eq!(
            line,
            r#"{b_c="2;1",http_route="/a\"b\\c\nd",service_name="svc",le="+Inf"}"#
        );
    }

    #[test]
    fn a_point_attribute_wins_over_a_promoted_resource_attribute() {
        let attrs = [KeyValue::new("service.name", "own")];
        let resource = vec![
            ("service_name".to_owned(), "svc".to_owned()),
            ("service_instance_id".to_owned(), "i-1".to_owned()),
        ];
        assert_eq!(
            point_labels(attrs.iter(), &resource),
            vec![
                ("service_name".to_owned(), "own".to_owned()),
                ("service_instance_id".to_owned(), "i-1".to_owned()),
            ]
        );
    }
}
