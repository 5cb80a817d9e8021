//! What opentelemetry-otlp 0.33 reads from the process environment by
//! itself, behind otelwire's back, when its builders are not given a value.
//!
//! otelwire gives the exporter builders every value it resolved (endpoint,
//! protocol, timeout, headers, TLS, compression when on), so that code and
//! the builder's configuration source win over the process environment.
//! Two things cannot be given: "no compression" (the builders take only
//! `Some(algorithm)`, and without one they read
//! `OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION`), and "no other headers" (they
//! add `OTEL_EXPORTER_OTLP_[SIGNAL_]HEADERS` to the ones given). Headers are
//! corrected on every request; a compression the exporter would take from
//! the process environment against otelwire's `none` is refused at init,
//! naming the variable.

use crate::config::{Compression, OtlpConfig, Signal};
use crate::error::InitError;

fn read(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.is_empty())
}

/// The compression opentelemetry-otlp would take from the process
/// environment when given none: the per-signal variable, then the generic
/// one; `none` stops the search, a value it cannot use is skipped (it
/// supports gzip here: the zstd features are off).
pub(crate) fn compression(signal: Signal) -> Option<(String, String)> {
    let signal_var = format!("OTEL_EXPORTER_OTLP_{}_COMPRESSION", signal.env_infix());
    for var in [signal_var.as_str(), "OTEL_EXPORTER_OTLP_COMPRESSION"] {
        let Some(value) = read(var) else { continue };
        if value.eq_ignore_ascii_case("none") {
            return None;
        }
        if value.eq_ignore_ascii_case("gzip") {
            return Some((var.to_owned(), value));
        }
    }
    None
}

/// Refuses a configuration whose compression is `none` when the exporter
/// would gzip anyway because of the process environment.
pub(crate) fn check_compression(cfg: &OtlpConfig, signal: Signal) -> Result<(), InitError> {
    if cfg.compression != Compression::None {
        return Ok(());
    }
    match compression(signal) {
        None => Ok(()),
        Some((var, value)) => Err(InitError::env(
            &var,
            &value,
            format!(
                "otelwire's compression for {signal} is none (set in code, or by the \
                 configuration source), but opentelemetry-otlp reads this variable from the \
                 process environment itself and cannot be told to send uncompressed: unset it \
                 or set it to none, or set Compression::Gzip in code"
            ),
        )),
    }
}

/// The names of the headers opentelemetry-otlp adds from the process
/// environment: the per-signal variable when set, else the generic one,
/// parsed as it parses them (pairs with an empty key or value skipped).
pub(crate) fn header_names(signal: Signal) -> Vec<http::HeaderName> {
    let signal_var = format!("OTEL_EXPORTER_OTLP_{}_HEADERS", signal.env_infix());
    let Some(value) = std::env::var(&signal_var)
        .ok()
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_HEADERS").ok())
    else {
        return Vec::new();
    };
    value
        .split_terminator(',')
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return None;
            }
            http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()
        })
        .collect()
}
