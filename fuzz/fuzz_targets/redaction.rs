//! Redaction: a field name is secret exactly when, compared without case
//! and with `-`, `.` and spaces read as `_`, it contains one of the secret
//! names; a redacted URL keeps no user name, password, fragment or query
//! value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otelwire::{DEFAULT_SECRET_NAMES, Redactor};

fn normalize(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'-' | b'.' | b' ' => '_',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Field names: the first line; an extra secret name: the second.
    let mut lines = text.splitn(3, '\n');
    let name = lines.next().unwrap_or("");
    let extra = lines.next().unwrap_or("");
    let redactor = Redactor::new([extra]);
    let n = normalize(name);
    let mut names: Vec<String> = DEFAULT_SECRET_NAMES.iter().map(|p| normalize(p)).collect();
    if !normalize(extra).is_empty() {
        names.push(normalize(extra));
    }
    let expected = names.iter().any(|p| n.contains(p.as_str()));
    assert_eq!(
        redactor.is_secret(name),
        expected,
        "{name:?} (extra {extra:?})"
    );

    // URLs: the rest.
    let Some(url) = lines.next() else { return };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return;
    };
    let redacted = otelwire_reqwest::redact_url(&parsed);
    let back = reqwest::Url::parse(&redacted).expect("a redacted URL parses");
    assert!(
        back.username().is_empty() || back.username() == "REDACTED",
        "{redacted}"
    );
    assert!(
        back.password().is_none_or(|p| p == "REDACTED"),
        "{redacted}"
    );
    assert!(back.fragment().is_none(), "{redacted}");
    for (_, v) in back.query_pairs() {
        assert!(v.is_empty() || v == "REDACTED", "{url:?} -> {redacted}");
    }
});
