//! Collector URLs and the credentials a URL may carry.
//!
//! `http://user:pass@collector:4318` is accepted: the user info is taken out
//! of the URL and sent as `authorization: Basic …`, as curl would, unless an
//! `authorization` header is configured (that header wins). The URL that is
//! used, printed (the startup line, export warnings, errors) and served
//! (`/health/telemetry`) never holds the user info.

use std::borrow::Cow;

/// Where the authority (`user:pass@host:port`) of `url` starts and ends.
/// Without a scheme, the authority starts at the beginning, so that even a
/// malformed value loses its user info before it is shown.
fn authority_range(url: &str) -> (usize, usize) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    (start, end)
}

/// `url` with its user info (`user:pass@`) removed; anything else as given.
/// Safe on any string, valid URL or not.
pub(crate) fn without_userinfo(url: &str) -> Cow<'_, str> {
    let (start, end) = authority_range(url);
    match url[start..end].rfind('@') {
        Some(at) => Cow::Owned(format!("{}{}", &url[..start], &url[start + at + 1..])),
        None => Cow::Borrowed(url),
    }
}

/// `url` with every query value replaced by `REDACTED` (keys kept), as
/// otelwire-reqwest shows `url.full`: a collector URL can carry an API key
/// in its query, and the URL is printed and served.
pub(crate) fn without_query_values(url: &str) -> Cow<'_, str> {
    let Some((base, query)) = url.split_once('?') else {
        return Cow::Borrowed(url);
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) => format!("{k}={}", crate::redact::REDACTED),
            None => pair.to_owned(),
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// The query values of `url`, as written and percent-decoded: the texts an
/// error message may quote, to be removed from it.
pub(crate) fn query_values(url: &str) -> Vec<String> {
    let Some((_, query)) = url.split_once('?') else {
        return Vec::new();
    };
    let query = query.split('#').next().unwrap_or("");
    let mut out = Vec::new();
    for (_, v) in query.split('&').filter_map(|p| p.split_once('=')) {
        let decoded = String::from_utf8_lossy(&percent_decode_bytes(v)).into_owned();
        if decoded != v {
            out.push(decoded);
        }
        out.push(v.to_owned());
    }
    out
}

/// Splits `url` into the URL without user info and the `authorization`
/// header value (`Basic base64(user:password)`, both percent-decoded first,
/// as RFC 3986 spells them) when it had user info.
pub(crate) fn split_credentials(url: &str) -> (String, Option<String>) {
    let (start, end) = authority_range(url);
    let Some(at) = url[start..end].rfind('@') else {
        return (url.to_owned(), None);
    };
    let userinfo = &url[start..start + at];
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut credentials = percent_decode_bytes(user);
    credentials.push(b':');
    credentials.extend(percent_decode_bytes(password));
    let header = format!("Basic {}", base64(&credentials));
    (without_userinfo(url).into_owned(), Some(header))
}

/// Checks a collector URL and returns it with surrounding spaces removed,
/// or says what is wrong with it. The user info, if any, is kept (it is
/// taken out later by [`split_credentials`]) but never quoted.
pub(crate) fn check(value: &str) -> Result<String, String> {
    let value = value.trim();
    let shown = without_userinfo(value);
    let Some((scheme, _)) = shown.split_once("://") else {
        return Err(
            "expected an http:// or https:// URL, for example http://localhost:4318".into(),
        );
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "the scheme {scheme:?} is not http or https (an OTLP endpoint is an http:// or \
             https:// URL, for example http://localhost:4318)"
        ));
    }
    if shown.contains(char::is_whitespace) {
        return Err("the URL contains a space".into());
    }
    if shown.contains('#') {
        return Err("the URL has a #fragment, which an endpoint cannot use".into());
    }
    let (start, end) = authority_range(&shown);
    let authority = &shown[start..end];
    if authority.is_empty() {
        return Err("the URL has no host".into());
    }
    // The port, if any: after the last ':' that is not inside [IPv6].
    let host_end = match authority.rfind(']') {
        Some(close) => close + 1,
        None => 0,
    };
    if authority.starts_with('[') && !authority.contains(']') {
        return Err("the IPv6 address has no closing ]".into());
    }
    if let Some(colon) = authority[host_end..].rfind(':') {
        let port = &authority[host_end + colon + 1..];
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the port {port:?} is not a number"));
        }
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(format!("the port {port} is out of range (1 to 65535)")),
        }
        if authority[..host_end + colon].is_empty() {
            return Err("the URL has no host".into());
        }
    }
    if let Err(e) = shown.parse::<http::Uri>() {
        return Err(format!("not a valid URL: {e}"));
    }
    Ok(value.to_owned())
}

/// A generic OTLP/HTTP endpoint with the signal's path (`/v1/traces`)
/// appended to its path, the query kept after it
/// (`http://h:4318/?k=v` → `http://h:4318/v1/traces?k=v`). `base` has been
/// [`check`]ed.
pub(crate) fn with_signal_path(base: &str, signal_path: &str) -> String {
    let Ok(uri) = without_userinfo(base).parse::<http::Uri>() else {
        return format!("{}{signal_path}", base.trim_end_matches('/'));
    };
    let path = uri.path().trim_end_matches('/');
    let joined = match uri.query() {
        Some(q) => format!("{path}{signal_path}?{q}"),
        None => format!("{path}{signal_path}"),
    };
    let mut parts = uri.into_parts();
    parts.path_and_query = joined.parse().ok();
    let Ok(uri) = http::Uri::from_parts(parts) else {
        return format!("{}{signal_path}", base.trim_end_matches('/'));
    };
    // Put the user info back where it was: credentials are split off later,
    // in one place, for every kind of endpoint.
    let (start, end) = authority_range(base);
    match base[start..end].rfind('@') {
        Some(at) => {
            let joined = uri.to_string();
            let (s2, _) = authority_range(&joined);
            format!(
                "{}{}{}",
                &joined[..s2],
                &base[start..=start + at],
                &joined[s2..]
            )
        }
        None => uri.to_string(),
    }
}

fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Standard base64 with padding (RFC 4648), for the Basic credentials.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_removed_from_valid_and_broken_urls() {
        assert_eq!(
            without_userinfo("http://user:pass@127.0.0.1:4318/v1/traces"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(without_userinfo("http://user:pass@[::1"), "http://[::1");
        assert_eq!(without_userinfo("user:pass@host:4318"), "host:4318");
        assert_eq!(
            without_userinfo("http://h:4318/a@b?x=@"),
            "http://h:4318/a@b?x=@"
        );
        assert_eq!(without_userinfo("http://a@b:c@h"), "http://h");
    }

    #[test]
    fn credentials_become_basic_authorization() {
        let (url, header) = split_credentials("http://user:pass@127.0.0.1:4318");
        assert_eq!(url, "http://127.0.0.1:4318");
        assert_eq!(header.as_deref(), Some("Basic dXNlcjpwYXNz"));
        let (_, header) = split_credentials("https://al%40ice:p%3Ass@h");
        assert_eq!(header.as_deref(), Some("Basic YWxAaWNlOnA6c3M="));
        let (_, header) = split_credentials("http://token@h");
        assert_eq!(header.as_deref(), Some("Basic dG9rZW46"));
        assert_eq!(split_credentials("http://h:1").1, None);
    }

    #[test]
    fn query_values_are_redacted_for_display_and_listed_for_scrubbing() {
        assert_eq!(
            without_query_values("http://h:4318/v1/traces?api_key=abc%2Fd&flag&x=1"),
            "http://h:4318/v1/traces?api_key=[REDACTED]&flag&x=[REDACTED]"
        );
        assert_eq!(
            without_query_values("http://h:4318/v1/traces"),
            "http://h:4318/v1/traces"
        );
        assert_eq!(
            query_values("http://h:4318/v1/traces?api_key=abc%2Fd&flag&x=1"),
            ["abc/d", "abc%2Fd", "1"]
        );
    }

    #[test]
    fn check_says_what_is_wrong() {
        assert_eq!(check(" http://h:4318 ").unwrap(), "http://h:4318");
        assert!(check("http://[::1]:4318").is_ok());
        assert!(check("http://user:p%40ss@h").is_ok());
        for (bad, says) in [
            ("http://[::1", "no closing ]"),
            ("http://h:99999", "port 99999 is out of range"),
            ("http://h:abc", "is not a number"),
            ("http://h:", "is not a number"),
            ("h:4318", "expected an http:// or https:// URL"),
            ("ftp://h", "is not http or https"),
            ("http://", "no host"),
            ("http://:4318", "no host"),
            ("http://h /x", "contains a space"),
            ("http://h/#x", "fragment"),
        ] {
            let err = check(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_signal_path_goes_before_the_query() {
        assert_eq!(
            with_signal_path("http://h:4318/?k=v", "/v1/traces"),
            "http://h:4318/v1/traces?k=v"
        );
        assert_eq!(
            with_signal_path("http://h:4318", "/v1/logs"),
            "http://h:4318/v1/logs"
        );
        assert_eq!(
            with_signal_path("https://h/otlp/", "/v1/metrics"),
            "https://h/otlp/v1/metrics"
        );
        assert_eq!(
            with_signal_path("http://u:p@h:1/base?a=1&b=2", "/v1/traces"),
            "http://u:p@h:1/base/v1/traces?a=1&b=2"
        );
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
