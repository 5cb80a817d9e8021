//! What can go wrong at init, said so that the reader knows what to fix.

use std::path::PathBuf;

use crate::config::Signal;

/// Why [`init`](crate::init) or [`Builder::init`](crate::Builder::init) failed.
///
/// Every variant names the thing to change: the environment variable and
/// its value, the builder setting, the file. Secret values (headers, keys)
/// are never included.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// An environment variable holds a value otelwire cannot use.
    #[error("{var}={value}: {expected}")]
    InvalidEnv {
        /// The variable, for example `OTEL_TRACES_SAMPLER_ARG`.
        var: String,
        /// The value as found (or `<hidden>` when it may hold a secret).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A value given to the builder in code cannot be used.
    #[error("builder setting `{setting}` = {value:?}: {expected}")]
    InvalidSetting {
        /// The builder method, for example `endpoint`.
        setting: &'static str,
        /// The value given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// The certificate file named by `OTEL_EXPORTER_OTLP_CERTIFICATE` (or a
    /// per-signal variant) cannot be read or parsed.
    #[error("{var}={}: {reason}", path.display())]
    Certificate {
        /// The variable that named the file, for example
        /// `OTEL_EXPORTER_OTLP_CERTIFICATE`.
        var: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The exporter for a signal could not be built.
    #[error("{signal} exporter for {endpoint}: {source}")]
    Exporter {
        /// The signal whose exporter failed.
        signal: Signal,
        /// The endpoint it was meant to reach.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// otelwire was already initialised in this process, or another global
    /// `tracing` subscriber is installed.
    #[error(
        "telemetry is already initialised in this process: call otelwire::init() once, \
         or use Builder::build() and install the returned dispatcher yourself"
    )]
    AlreadyInitialized,
    /// A file or directory an output needs (such as the log directory of
    /// `otelwire-files`) cannot be created or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the path is for, for example `log directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// A background thread (the gRPC transport runtime) could not be started.
    #[error("cannot start the otelwire export runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl InitError {
    pub(crate) fn env(var: &str, value: &str, expected: impl Into<String>) -> Self {
        InitError::InvalidEnv {
            var: var.to_owned(),
            value: value.to_owned(),
            expected: expected.into(),
        }
    }
}
