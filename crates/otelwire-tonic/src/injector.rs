//! Context injection into request headers, as `opentelemetry-http`'s
//! `HeaderInjector` does it (same names, same values accepted), without
//! parsing the W3C header names or copying the values per request.

use http::{HeaderMap, HeaderName, HeaderValue};
use otelwire::opentelemetry::propagation::Injector;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

pub(crate) struct Headers<'a>(pub(crate) &'a mut HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => TRACEPARENT,
            "tracestate" => TRACESTATE,
            "baggage" => BAGGAGE,
            other => match HeaderName::from_bytes(other.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        // `HeaderValue::from_str`'s rule, on the value taken over rather
        // than copied.
        if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(value)) {
            self.0.insert(name, value);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_what_header_injector_sets() {
        let values = [
            "00-ab-cd-01",
            "",
            "k=v,a=b",
            "tab\there",
            "é",
            "bell\u{7}",
            "del\u{7f}",
        ];
        for key in [
            "traceparent",
            "tracestate",
            "baggage",
            "x-custom",
            "Bad Key",
        ] {
            for value in values {
                let (mut ours, mut theirs) = (HeaderMap::new(), HeaderMap::new());
                Headers(&mut ours).set(key, value.to_owned());
                otelwire::opentelemetry_http::HeaderInjector(&mut theirs)
                    .set(key, value.to_owned());
                assert_eq!(ours, theirs, "{key}: {value:?}");
            }
        }
    }
}
