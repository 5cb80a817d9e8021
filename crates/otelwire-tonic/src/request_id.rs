//! `x-request-id`, as otelwire-axum handles it (the rule is otelwire's,
//! [`otelwire::http::request_id`]): kept when valid, made when absent or
//! invalid, echoed in the response metadata.

use http::{HeaderMap, HeaderName, HeaderValue};

pub use otelwire::http::{REQUEST_ID_HEADER, valid_request_id};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The request id to use: the caller's when valid, else a new one.
pub(crate) fn request_id(metadata: &HeaderMap) -> HeaderValue {
    otelwire::http::request_id(metadata).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        let made = request_id(&h);
        assert_eq!(made.len(), 32);
        assert_ne!(made, request_id(&h));
        h.insert(X_REQUEST_ID, HeaderValue::from_static("req-1"));
        assert_eq!(request_id(&h), "req-1");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
        assert!(!valid_request_id(&[b'x'; 129]));
    }
}
