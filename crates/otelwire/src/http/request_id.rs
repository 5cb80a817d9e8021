//! `x-request-id`: kept when the client's is valid, made otherwise; one
//! rule for every server integration (otelwire-axum, otelwire-tonic).

use http::{HeaderMap, HeaderName, HeaderValue};

/// The request-id header (and gRPC metadata key).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// Whether an incoming request id may be kept: 1 to 128 visible ASCII
/// characters.
///
/// ```
/// assert!(otelwire::http::valid_request_id(b"req-42"));
/// assert!(!otelwire::http::valid_request_id(b"has space"));
/// ```
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= 128 && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A fresh request id: 32 random hex digits.
pub fn new_request_id() -> String {
    // Hex digits are ASCII.
    String::from_utf8_lossy(&request_id_bytes()).into_owned()
}

/// The request id to use for a request with these headers: the client's
/// when valid (`true`), else a new one (`false`).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// let (made, kept) = otelwire::http::request_id(&headers);
/// assert_eq!((made.len(), kept), (32, false));
/// headers.insert("x-request-id", "req-1".parse().unwrap());
/// assert_eq!(otelwire::http::request_id(&headers), ("req-1".parse().unwrap(), true));
/// ```
pub fn request_id(headers: &HeaderMap) -> (HeaderValue, bool) {
    match headers.get(&X_REQUEST_ID) {
        Some(v) if valid_request_id(v.as_bytes()) => (v.clone(), true),
        _ => {
            let id = HeaderValue::from_bytes(&request_id_bytes())
                .expect("hex digits are a valid header value");
            (id, false)
        }
    }
}

/// 32 hex digits from a per-process random key and a counter, mixed with
/// splitmix64: unique within the process, unpredictable across processes,
/// and no allocation or system call per request.
fn request_id_bytes() -> [u8; 32] {
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
    let (a, b) = (mix(n ^ k0), mix(mix(n) ^ k1));
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    // One nibble per output byte, most significant first.
    for (i, slot) in out.iter_mut().enumerate() {
        let word = if i < 16 { a } else { b };
        let shift = 60 - 4 * (i % 16);
        *slot = HEX[((word >> shift) & 0xf) as usize];
    }
    out
}
