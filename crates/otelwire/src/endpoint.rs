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
