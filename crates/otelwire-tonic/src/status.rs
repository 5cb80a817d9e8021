//! gRPC status codes: their names, where a response carries them, and which
//! of them are errors for a server and for a client.

use http::{HeaderMap, HeaderName};
use tonic::Code;

/// `grpc-status`, looked up without parsing the name per response.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Which end of an RPC a span describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The server handling the call.
    Server,
    /// The client making it.
    Client,
}

impl Side {
    /// Whether `code` marks this side's span as an error: on the server
    /// only the codes of [`is_server_error`], on the client every code but
    /// `OK`.
    pub fn is_error(self, code: Code) -> bool {
        match self {
            Side::Server => is_server_error(code),
            Side::Client => code != Code::Ok,
        }
    }
}

/// `rpc.response.status_code` as the conventions spell it: the code's
/// name, `DEADLINE_EXCEEDED` for 4.
///
/// ```
/// assert_eq!(otelwire_tonic::code_name(tonic::Code::DeadlineExceeded), "DEADLINE_EXCEEDED");
/// ```
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The codes that mean the server failed (the conventions' list for server
/// spans): `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
/// `UNAVAILABLE`, `DATA_LOSS`. The others are the caller's problem.
pub fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// `grpc-status` from response headers (a Trailers-Only response) or
/// trailers; a value that is not a code reads as `UNKNOWN`.
pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(&GRPC_STATUS)
        .map(|v| Code::from_bytes(v.as_bytes()))
}

/// The status a non-200 HTTP response stands for, as gRPC clients map it
/// (the gRPC "HTTP to gRPC status code mapping"); `None` for 200.
pub(crate) fn from_http_status(status: http::StatusCode) -> Option<Code> {
    Some(match status.as_u16() {
        200 => return None,
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    })
}

/// `grpc-message` when `side` records it: only for the codes that are
/// errors there (the span's status message is recorded on failures only).
pub(crate) fn message_for(headers: &HeaderMap, side: Side, code: Code) -> Option<String> {
    if side.is_error(code) {
        message(headers)
    } else {
        None
    }
}

/// Longest `grpc-message` recorded, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 256;

/// `grpc-message`, percent-decoded and cut to [`MAX_MESSAGE_CHARS`].
pub(crate) fn message(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(&GRPC_MESSAGE)?.as_bytes();
    if raw.is_empty() {
        return None;
    }
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match raw[i] {
            b'%' if i + 2 < raw.len() => match (hex(raw[i + 1]), hex(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    bytes.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => bytes.push(b'%'),
            },
            b => bytes.push(b),
        }
        i += 1;
    }
    let text = String::from_utf8_lossy(&bytes);
    Some(text.chars().take(MAX_MESSAGE_CHARS).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_read_where_they_come() {
        let mut h = HeaderMap::new();
        assert_eq!(from_headers(&h), None);
        h.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(from_headers(&h), Some(Code::NotFound));
        h.insert("grpc-status", "nonsense".parse().unwrap());
        assert_eq!(from_headers(&h), Some(Code::Unknown));
        h.insert("grpc-message", "no%20such%20item: %zz%".parse().unwrap());
        assert_eq!(message(&h).as_deref(), Some("no such item: %zz%"));
        h.insert("grpc-message", "x".repeat(1000).parse().unwrap());
        assert_eq!(message(&h).map(|m| m.len()), Some(MAX_MESSAGE_CHARS));
        assert_eq!(from_http_status(http::StatusCode::OK), None);
        assert_eq!(
            from_http_status(http::StatusCode::SERVICE_UNAVAILABLE),
            Some(Code::Unavailable)
        );
    }

    #[test]
    fn errors_per_side() {
        assert!(!Side::Server.is_error(Code::NotFound));
        assert!(Side::Client.is_error(Code::NotFound));
        assert!(Side::Server.is_error(Code::DeadlineExceeded));
        assert!(!Side::Server.is_error(Code::Ok));
        assert!(!Side::Client.is_error(Code::Ok));
    }
}
