//! Metric and label names as Prometheus's own OTLP receiver makes them
//! (`translation_strategy: UnderscoreEscapingWithSuffixes`, the
//! `prometheus/otlptranslator` rules Prometheus 3 uses, with its default
//! label settings), so that a scraped series and a pushed one have the same
//! name and labels.

/// What a metric becomes in Prometheus: it decides the suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A gauge: `_ratio` is added when the unit is `1`.
    Gauge,
    /// A monotonic sum: a counter, `_total` is added.
    Counter,
    /// A non-monotonic sum (an up-down counter): exposed as a gauge, but
    /// without `_ratio` (Prometheus adds it to OTLP gauges only).
    UpDown,
    /// A histogram: `_bucket`, `_sum` and `_count` are added when written.
    Histogram,
}

impl Kind {
    /// The `# TYPE` of the family.
    pub(crate) fn type_name(self) -> &'static str {
        match self {
            Kind::Gauge | Kind::UpDown => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        }
    }
}

/// The unit's Prometheus word (`s` -> `seconds`); an unknown unit stays as
/// it is and `1` adds nothing.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The word after `per_` (`s` -> `second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

/// A character a metric name keeps; every other one separates tokens.
fn metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// The main and the `per_` suffix of a unit (`By/s` -> `bytes`,
/// `per_second`); a `{annotation}` part adds nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_owned()
    };
    let per = match parts.next() {
        Some(p) if !p.is_empty() => {
            let p = p.trim();
            if p.is_empty() || p.contains(['{', '}']) {
                String::new()
            } else {
                format!("per_{}", per_unit_word(p))
            }
        }
        _ => String::new(),
    };
    (main, per)
}

/// Invalid characters to `_`, runs of `_` to one, one leading `_` removed.
fn clean_unit(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    for c in unit.chars() {
        let c = if metric_char(c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    match out.strip_prefix('_') {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// The Prometheus name of an OpenTelemetry metric: `http.server.request.duration`
/// with unit `s` -> `http_server_request_duration_seconds`; a counter gets
/// `_total`, a gauge of unit `1` gets `_ratio`. `None` when nothing valid
/// is left (Prometheus refuses such a metric too).
pub(crate) fn metric_name(name: &str, unit: &str, kind: Kind) -> Option<String> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();

    let (main, per) = unit_suffixes(unit);
    let (mut main, mut per) = (clean_unit(&main), clean_unit(&per));
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        if let Some(p) = per.strip_suffix('_') {
            per = p.to_owned();
        }
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty()
        && let Some(m) = main.strip_suffix('_')
    {
        main = m.to_owned();
    }
    for suffix in [main, per] {
        if !suffix.is_empty() {
            tokens.push(suffix);
        }
    }
    let mut last = |word: &str| {
        tokens.retain(|t| t != word);
        tokens.push(word.to_owned());
    };
    if kind == Kind::Counter {
        last("total");
    }
    if unit == "1" && kind == Kind::Gauge {
        last("ratio");
    }

    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() || (out != name && out.chars().all(|c| c == '_')) {
        return None;
    }
    Some(out)
}

/// The Prometheus label name of an attribute key, with Prometheus 3's
/// defaults (`label_name_underscore_sanitization` and
/// `label_name_preserve_multiple_underscores` both on): every character
/// other than `[a-zA-Z0-9]` becomes `_` (runs kept), a leading digit gets
/// `key_`, a single leading `_` gets `key`. `None` when only underscores
/// are left.
pub(crate) fn label_name(key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    } else if out.starts_with('_') && !out.starts_with("__") {
        out.insert_str(0, "key");
    }
    if out.chars().all(|c| c == '_') {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str, unit: &str, kind: Kind) -> String {
        metric_name(n, unit, kind).unwrap_or_else(|| panic!("{n} has no name"))
    }

    #[test]
    fn dots_become_underscores_and_the_unit_a_suffix() {
        assert_eq!(
            name("http.server.request.duration", "s", Kind::Histogram),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            name("rpc.client.call.duration", "ms", Kind::Histogram),
            "rpc_client_call_duration_milliseconds"
        );
        assert_eq!(
            name("process.memory.usage", "By", Kind::UpDown),
            "process_memory_usage_bytes"
        );
        assert_eq!(
            name("system.network.io", "By/s", Kind::Gauge),
            "system_network_io_bytes_per_second"
        );
        assert_eq!(
            name("jobs.rate", "{job}/min", Kind::Gauge),
            "jobs_rate_per_min"
        );
        assert_eq!(name("speed", "km/h", Kind::Gauge), "speed_km_per_hour");
    }

    #[test]
    fn annotations_add_nothing_and_counters_end_in_total() {
        assert_eq!(
            name("otelwire.telemetry.exported", "{item}", Kind::Counter),
            "otelwire_telemetry_exported_total"
        );
        assert_eq!(
            name("http.server.active_requests", "{request}", Kind::UpDown),
            "http_server_active_requests"
        );
        assert_eq!(
            name("process.cpu.time", "s", Kind::Counter),
            "process_cpu_time_seconds_total"
        );
        // `total` moves to the end, once.
        assert_eq!(
            name("requests.total.served", "", Kind::Counter),
            "requests_served_total"
        );
        assert_eq!(name("orders_total", "", Kind::Counter), "orders_total");
        // Only counters get it.
        assert_eq!(name("queue.total", "", Kind::Gauge), "queue_total");
    }

    #[test]
    fn unit_one_is_a_ratio_for_gauges_only() {
        assert_eq!(
            name("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(name("cache.hit_ratio", "1", Kind::Gauge), "cache_hit_ratio");
        assert_eq!(name("errors", "1", Kind::Counter), "errors_total");
        assert_eq!(name("slots.used", "1", Kind::UpDown), "slots_used");
    }

    #[test]
    fn a_unit_already_in_the_name_is_not_repeated() {
        assert_eq!(
            name("request.duration.seconds", "s", Kind::Histogram),
            "request_duration_seconds"
        );
        assert_eq!(
            name("health.check.duration_seconds", "s", Kind::Gauge),
            "health_check_duration_seconds"
        );
        // An unknown unit is kept, cleaned.
        assert_eq!(name("payload", "chunks", Kind::Gauge), "payload_chunks");
        assert_eq!(name("weird", "a$b", Kind::Gauge), "weird_a_b");
    }

    #[test]
    fn invalid_characters_separate_tokens_and_runs_collapse() {
        assert_eq!(name("a..b__c-d", "", Kind::Gauge), "a_b_c_d");
        assert_eq!(
            name("_leading.trailing_", "", Kind::Gauge),
            "leading_trailing"
        );
        assert_eq!(name("ns:metric.x", "", Kind::Gauge), "ns:metric_x");
        assert_eq!(name("café.größe", "", Kind::Gauge), "caf_gr_e");
        assert_eq!(
            name("2xx.responses", "", Kind::Counter),
            "_2xx_responses_total"
        );
        assert_eq!(metric_name("...", "", Kind::Gauge), None);
        assert_eq!(metric_name("", "", Kind::Gauge), None);
    }

    #[test]
    fn labels_keep_runs_and_get_a_prefix_when_needed() {
        assert_eq!(label_name("http.route").as_deref(), Some("http_route"));
        assert_eq!(
            label_name("http.response.status_code").as_deref(),
            Some("http_response_status_code")
        );
        assert_eq!(label_name("service.name").as_deref(), Some("service_name"));
        assert_eq!(label_name("a..b").as_deref(), Some("a__b"));
        assert_eq!(label_name("ns:key").as_deref(), Some("ns_key"));
        assert_eq!(label_name("2xx").as_deref(), Some("key_2xx"));
        assert_eq!(label_name("_private").as_deref(), Some("key_private"));
        assert_eq!(label_name("__reserved").as_deref(), Some("__reserved"));
        assert_eq!(label_name("é").as_deref(), Some("key_"));
        assert_eq!(label_name("").as_deref(), None);
        assert_eq!(label_name("_").as_deref(), Some("key_"));
        assert_eq!(label_name("__").as_deref(), None);
    }
}
