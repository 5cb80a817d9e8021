//! Opt-in metadata capture: allow-listed keys become
//! `rpc.request.metadata.<key>` / `rpc.response.metadata.<key>`; sensitive
//! keys never do.

use http::{HeaderMap, HeaderName};
use otelwire::opentelemetry::{Array, StringValue, Value};
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;

/// Metadata keys never recorded, even when allow-listed; so is every
/// binary key (ending in `-bin`).
pub const SENSITIVE_METADATA: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Whether a metadata key may never be recorded.
///
/// ```
/// assert!(otelwire_tonic::is_sensitive_metadata("authorization"));
/// assert!(otelwire_tonic::is_sensitive_metadata("x-session-bin"));
/// assert!(!otelwire_tonic::is_sensitive_metadata("x-tenant"));
/// ```
pub fn is_sensitive_metadata(key: &str) -> bool {
    key.ends_with("-bin") || SENSITIVE_METADATA.contains(&key)
}

/// Records the allow-listed keys of `metadata` on `span` under `prefix`
/// (`rpc.request.metadata`), each as the array of its values.
pub(crate) fn record(
    span: &tracing::Span,
    prefix: &str,
    allowed: &[HeaderName],
    metadata: &HeaderMap,
) {
    for name in allowed {
        if is_sensitive_metadata(name.as_str()) {
            continue;
        }
        let values: Vec<StringValue> = metadata
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| StringValue::from(v.to_owned()))
            .collect();
        if !values.is_empty() {
            span.set_attribute(
                format!("{prefix}.{}", name.as_str()),
                Value::Array(Array::String(values)),
            );
        }
    }
}
