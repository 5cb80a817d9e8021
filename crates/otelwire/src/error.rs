//! What can go wrong at init, said so that the reader knows what to fix.

use std::path::PathBuf;

use crate::config::Signal;

/// Why [`init`](crate::init) or [`Builder::init`](crate::Builder::init) failed.
///
/// Every variant names the thing to change: the environment variable and
/// its value, the builder setting, the file. Secret values (headers, keys)
/// are never included. The message escapes control characters in what it
/// repeats of the input (newline as `\n`, ESC as `\x1b`, C1 controls, line
/// separators and bidi overrides as `\u{…}`), as the log formats do, so that
/// printing it cannot forge a line or drive a terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// An environment variable holds a value otelwire cannot use.
    #[error("{var}={}: {}", escape(value), escape(expected))]
    InvalidEnv {
        /// The variable, for example `OTEL_TRACES_SAMPLER_ARG`.
        var: String,
        /// The value as found (or `<hidden>` when it may hold a secret).
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A value given to the builder in code cannot be used.
    #[error(
        "builder setting `{setting}` = \"{}\": {}",
        escape(value),
        escape(expected)
    )]
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
    #[error("{var}={}: {}", escape(&path.display().to_string()), escape(reason))]
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
    #[error("{signal} exporter for {}: {}", escape(endpoint), escape(&source.to_string()))]
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
    #[error("{what} {}: {source}", escape(&path.display().to_string()))]
    Io {
        /// What the path is for, for example `log directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus scrape endpoint cannot listen on its address (the
    /// port is in use, the host does not resolve or is not this machine's).
    #[error(
        "cannot listen on {} for Prometheus scrapes ({}): {}",
        escape(address),
        escape(settings),
        escape(reason)
    )]
    Listen {
        /// The address, `host:port`.
        address: String,
        /// Where host and port were set, for example
        /// `OTEL_EXPORTER_PROMETHEUS_HOST=localhost, OTEL_EXPORTER_PROMETHEUS_PORT=9464`.
        settings: String,
        /// Why it cannot listen.
        reason: String,
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

/// `s` with the characters that could forge a line or drive a terminal
/// escaped, as the text log format escapes them: `\n`, `\r`, `\t`, other
/// C0 controls and DEL as `\xNN`, C1 controls, U+2028/U+2029 and the bidi
/// controls as `\u{XXXX}`.
pub(crate) fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_text_and_escapes_controls() {
        assert_eq!(escape("plain, text=1 é"), "plain, text=1 é");
        assert_eq!(escape("a\nb\r\tc"), "a\\nb\\r\\tc");
        assert_eq!(escape("\u{1b}[31m\u{7f}"), "\\x1b[31m\\x7f");
        assert_eq!(
            escape("\u{85}\u{9b}\u{2028}\u{202e}"),
            "\\u{0085}\\u{009b}\\u{2028}\\u{202e}"
        );
    }
}
