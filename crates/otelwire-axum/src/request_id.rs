//! The `x-request-id` header: otelwire's rules for it, re-exported, and its
//! name as a [`HeaderName`].

use http::HeaderName;

pub use otelwire::http::REQUEST_ID_HEADER;
pub(crate) use otelwire::http::request_id;
pub use otelwire::http::{new_request_id, valid_request_id};

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(valid_request_id(b"abc-123"));
        assert!(valid_request_id(&[b'x'; 128]));
        assert!(!valid_request_id(&[b'x'; 129]));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"has space"));
        assert!(!valid_request_id("caf\u{e9}".as_bytes()));
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(valid_request_id(id.as_bytes()));
        assert_ne!(id, new_request_id());
    }
}
