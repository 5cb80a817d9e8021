//! [`Console`]: otelwire's local output, kept in memory for a test to read.

use std::io;
use std::sync::{Arc, Mutex};

use otelwire::tracing_subscriber::fmt::MakeWriter;

use crate::lock;

/// A cloneable in-memory writer for otelwire's local output: give a clone
/// to [`Builder::writer`](otelwire::Builder::writer), and read what the
/// pipeline wrote with [`text`](Self::text) (or
/// [`json_lines`](Self::json_lines) for [`LogFormat::Json`](otelwire::LogFormat::Json)).
///
/// Every clone shares one buffer; writes never fail, and nothing is ever
/// taken out of it.
///
/// ```
/// use otelwire_test::Console;
///
/// let console = Console::new();
/// let telemetry = otelwire::builder()
///     .env_source(|_| None)
///     .sdk_disabled(true)
///     .log_format(otelwire::LogFormat::Json)
///     .writer(console.clone())
///     .build()
///     .unwrap();
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     tracing::info!(order.id = 7, "order placed");
/// });
/// assert!(console.text().contains("order placed"), "{}", console.text());
/// let lines = console.json_lines();
/// assert!(
///     lines.iter().any(|l| l["message"] == "order placed"),
///     "{lines:?}"
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    /// An empty console.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as UTF-8 (an invalid sequence becomes
    /// U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }

    /// Every line written so far, each parsed as JSON.
    ///
    /// # Panics
    ///
    /// When a line is not JSON (the panic message quotes it).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Console {
    type Writer = Console;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
