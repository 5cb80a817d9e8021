//! Span attributes read from the request: headers never recorded,
//! `server.*`, `client.address` from forwarding headers, `url.scheme`.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

/// Headers never recorded, even when allow-listed.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// `server.address` and `server.port` from the URI's authority, else from
/// `Host`; borrowed, no allocation.
pub(crate) fn host_and_port<'a>(
    req_headers: &'a HeaderMap,
    uri: &'a http::Uri,
) -> (Option<&'a str>, Option<i64>) {
    let authority = uri.authority().map(|a| a.as_str()).or_else(|| {
        req_headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let Some(authority) = authority else {
        return (None, None);
    };
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !authority.ends_with(']') => {
            (Some(host), port.parse().ok())
        }
        _ => (Some(authority), None),
    }
}

pub(crate) fn forwarded_client(headers: &HeaderMap) -> Option<String> {
    if let Some(f) = headers
        .get(http::header::FORWARDED)
        .and_then(|v| v.to_str().ok())
    {
        for part in f.split(',').next().unwrap_or("").split(';') {
            if let Some(v) = part.trim().strip_prefix("for=") {
                return Some(v.trim_matches('"').to_owned());
            }
        }
    }
    headers
        .get(&X_FORWARDED_FOR)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `url.scheme`, without an allocation for the usual two.
pub(crate) fn scheme_value(s: &str) -> Cow<'static, str> {
    match s {
        "http" => Cow::Borrowed("http"),
        "https" => Cow::Borrowed("https"),
        other => Cow::Owned(other.to_ascii_lowercase()),
    }
}
