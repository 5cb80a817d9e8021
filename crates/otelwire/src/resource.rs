//! The resource: who is sending the telemetry.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector, TelemetryResourceDetector};
use opentelemetry_semantic_conventions::resource as sc;

use crate::config::Resolved;
use crate::redact::Redactor;

/// `service.name`, `service.version`, `deployment.environment.name`,
/// `service.instance.id`, `host.name`, `process.pid`,
/// `process.executable.name`, `process.runtime.name`, `telemetry.sdk.*` and
/// whatever `OTEL_RESOURCE_ATTRIBUTES` or the builder added.
///
/// Built from the resolved configuration only (no process-environment
/// detectors), so that a configuration given in code is never overridden.
///
/// An attribute named like a secret (`db.password`, by the same rules as
/// fields: `redactor`) is exported as [`REDACTED`](crate::REDACTED): the
/// resource travels with every export, in clear otherwise.
pub(crate) fn build(cfg: &Resolved, redactor: &Redactor) -> Resource {
    let mut attrs: Vec<KeyValue> = Vec::new();
    // Lowest precedence first: later attributes with the same key win.
    attrs.push(KeyValue::new(sc::HOST_NAME, host_name()));
    attrs.push(KeyValue::new(
        sc::PROCESS_PID,
        i64::from(std::process::id()),
    ));
    if let Some(exe) = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    {
        attrs.push(KeyValue::new(sc::PROCESS_EXECUTABLE_NAME, exe));
    }
    attrs.push(KeyValue::new(sc::PROCESS_RUNTIME_NAME, "rust"));
    attrs.push(KeyValue::new(sc::SERVICE_INSTANCE_ID, instance_id()));
    for (k, v) in &cfg.resource_attributes {
        let v = if redactor.is_secret(k) {
            crate::redact::REDACTED.to_owned()
        } else {
            v.clone()
        };
        attrs.push(KeyValue::new(k.clone(), v));
    }
    if let Some(v) = &cfg.service_version {
        attrs.push(KeyValue::new(sc::SERVICE_VERSION, v.clone()));
    }
    if let Some(env) = &cfg.environment {
        attrs.push(KeyValue::new(sc::DEPLOYMENT_ENVIRONMENT_NAME, env.clone()));
    }
    let telemetry = TelemetryResourceDetector.detect();
    Resource::builder_empty()
        .with_attributes(attrs)
        .with_attributes(
            telemetry
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_service_name(cfg.service_name.clone())
        .build()
}

fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// A random UUID v4: unique per process start, as the convention asks.
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; two of them give 128 random bits
    // without another dependency.
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i as u64);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_ids_are_uuid_v4_and_differ() {
        let a = super::instance_id();
        let b = super::instance_id();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert_ne!(a, b);
    }
}
