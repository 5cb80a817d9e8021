//! Query-text sanitising: whatever the text, `sanitize` never panics, and a
//! string or number literal in a query never survives it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otelwire_sqlx::sanitize;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Any text at all: no panic, and nothing longer than what went in.
    let out = sanitize(text);
    assert!(out.len() <= text.len() + 1, "{text:?} -> {out:?}");

    // The text as a string literal (quotes doubled, as SQL escapes them):
    // the whole literal becomes one placeholder.
    let literal = text.replace('\'', "''");
    assert_eq!(
        sanitize(&format!(
            "SELECT * FROM users WHERE email = '{literal}' AND id = $1"
        )),
        "SELECT * FROM users WHERE email = ? AND id = $1",
        "{text:?}"
    );
    // The same inside a dollar-quoted literal (text without `$`, which
    // could close it).
    if !text.contains('$') {
        assert_eq!(
            sanitize(&format!("UPDATE t SET note = $q${text}$q$ WHERE id = 7")),
            "UPDATE t SET note = ? WHERE id = ?",
            "{text:?}"
        );
    }
    // Numbers, whatever their digits.
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if !digits.is_empty() {
        assert_eq!(
            sanitize(&format!(
                "SELECT {digits}, -{digits}.5e3 FROM t LIMIT {digits}"
            )),
            "SELECT ?, -? FROM t LIMIT ?",
            "{digits:?}"
        );
    }
});
