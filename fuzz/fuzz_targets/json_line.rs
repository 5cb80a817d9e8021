//! The JSON line format: whatever the message, field values and span field
//! values, each event is exactly one line that parses as one JSON object
//! and gives back the values it was given (floats rounded for reading, as
//! the format documents).
#![no_main]

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use otelwire::{LogFormat, Telemetry};

thread_local! {
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Local output into a per-thread buffer.
struct Buffer;

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        OUT.with(|o| o.borrow_mut().extend_from_slice(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn telemetry() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(|| {
        otelwire::builder()
            .env_source(|_| None)
            .service_name("fuzz")
            .sdk_disabled(true)
            .log_format(LogFormat::Json)
            .writer(|| Buffer)
            .build()
            .expect("telemetry")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\u{1}');
    let message = parts.next().unwrap_or("").to_owned();
    let field = parts.next().unwrap_or("").to_owned();
    let span_field = parts.next().unwrap_or("").to_owned();
    let number = data
        .get(..8)
        .map(|b| f64::from_bits(u64::from_le_bytes(b.try_into().unwrap())))
        .unwrap_or(0.0);
    // Made before the buffer is cleared: its startup line is not this input's.
    let telemetry = telemetry();
    OUT.with(|o| o.borrow_mut().clear());
    tracing::dispatcher::with_default(telemetry.dispatch(), || {
        tracing::info_span!("fuzz", sf = span_field.as_str()).in_scope(|| {
            tracing::info!(f = field.as_str(), d = %field, x = number, "{message}");
        });
    });
    let out = OUT.with(|o| o.borrow().clone());
    let line = std::str::from_utf8(&out).expect("UTF-8 output");
    assert!(line.ends_with('\n'), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert!(v.is_object());
    assert_eq!(v["message"], message.as_str(), "{line}");
    assert_eq!(v["f"], field.as_str(), "{line}");
    assert_eq!(v["d"], field.as_str(), "{line}");
    assert_eq!(v["span"]["name"], "fuzz", "{line}");
    assert_eq!(v["span"]["sf"], span_field.as_str(), "{line}");
    if number.is_finite() {
        // Read the digits with Rust's correctly rounded parser (serde_json's
        // default one is off by an ulp or more for tiny values).
        assert!(v["x"].is_number(), "{line}");
        let digits = line
            .split("\"x\":")
            .nth(1)
            .and_then(|rest| rest.split([',', '}']).next())
            .expect("the x field");
        let shown: f64 = digits.parse().expect("a number");
        // Rounded for reading (see otelwire's `format` docs): three decimals,
        // or three significant digits below 0.1; from 1e12 up, as it is.
        let magnitude = number.abs();
        let allowed = if magnitude >= 1e12 {
            0.0
        } else if magnitude >= 0.1 {
            0.0005 + magnitude * 1e-15
        } else {
            magnitude * 0.005 + f64::MIN_POSITIVE
        };
        assert!(
            (shown - number).abs() <= allowed,
            "{number:?} shown as {shown:?}: {line}"
        );
    } else {
        assert!(v["x"].is_string(), "{line}");
    }
});
