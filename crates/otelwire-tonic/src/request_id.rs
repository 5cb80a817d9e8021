//! `x-request-id`, as otelwire-axum handles it: kept when valid, made when
//! absent or invalid, echoed in the response metadata.

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request-id metadata key.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Whether an incoming request id may be kept: 1 to 128 visible ASCII
/// characters.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// The request id to use: the caller's when valid, else a new one.
pub(crate) fn request_id(metadata: &HeaderMap) -> HeaderValue {
    match metadata.get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v.as_bytes()) => v.clone(),
        _ => HeaderValue::from_bytes(&new_id()).expect("hex digits are a valid header value"),
    }
}

/// 32 hex digits from a per-process random key and a counter, mixed with
/// splitmix64: unique within the process, unpredictable across processes,
/// no system call per request.
fn new_id() -> [u8; 32] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k0, k1) = *KEY.get_or_init(|| {
        let seed = |i: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            h.finish()
        };
        (seed(0), seed(1))
    });
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let words = [mix(n ^ k0), mix(mix(n) ^ k1)];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        let shift = 60 - 4 * (i % 16);
        *slot = HEX[((words[i / 16] >> shift) & 0xf) as usize];
    }
    out
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
