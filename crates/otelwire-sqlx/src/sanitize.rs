//! Query text without its literals, and what the query does to which table.
//!
//! A small lexer, not a SQL parser: it knows strings (`'…'`, `E'…'`,
//! `$tag$…$tag$`), numbers, comments, quoted identifiers and placeholders,
//! which is all that sanitising needs; the operation and the collection are
//! read from the first few keywords.

/// What the instrumentation needs to know about one query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The text with every string and number literal replaced by `?` and
    /// comments removed; runs of white space become one space.
    pub(crate) sanitized: String,
    /// `SELECT`, `INSERT`, …: the first keyword, upper case.
    pub(crate) operation: Option<String>,
    /// The one table the query reads or writes, when there is exactly one.
    pub(crate) collection: Option<String>,
}

/// Replaces the literals of `sql` by `?` and drops its comments.
///
/// ```
/// assert_eq!(
///     otelwire_sqlx::sanitize("SELECT * FROM users WHERE email = 'a@b.c' AND age > 42 -- note"),
///     "SELECT * FROM users WHERE email = ? AND age > ?"
/// );
/// ```
pub fn sanitize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    // Pending white space: written before the next token, never at the ends.
    let mut space = false;
    let push = |out: &mut String, space: &mut bool, s: &str| {
        if *space && !out.is_empty() {
            out.push(' ');
        }
        *space = false;
        out.push_str(s);
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                space = true;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                space = true;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(b.len());
                space = true;
            }
            b'\'' => {
                // A one-letter prefix (E'', X'', B'', N'') belongs to the literal.
                let (escapes, spaced) = strip_prefix_letter(&mut out);
                space |= spaced;
                i = skip_string(b, i, escapes);
                push(&mut out, &mut space, "?");
            }
            b'$' => {
                if let Some(end) = dollar_quote_end(b, i) {
                    i = end;
                    push(&mut out, &mut space, "?");
                } else {
                    // `$1` placeholders and anything else: copied.
                    let start = i;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    push(&mut out, &mut space, &sql[start..i]);
                }
            }
            b'"' | b'`' | b'[' => {
                let close = match c {
                    b'[' => b']',
                    other => other,
                };
                let start = i;
                i += 1;
                while i < b.len() {
                    if b[i] == close {
                        if b.get(i + 1) == Some(&close) && close != b']' {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                push(&mut out, &mut space, &sql[start..i]);
            }
            b'0'..=b'9' => {
                i = skip_number(b, i);
                push(&mut out, &mut space, "?");
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = skip_number(b, i);
                push(&mut out, &mut space, "?");
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < b.len() && is_ident_continue(b[i]) {
                    i += 1;
                }
                push(&mut out, &mut space, &sql[start..i]);
            }
            _ => {
                // One character (UTF-8 aware).
                let len = sql[i..].chars().next().map_or(1, char::len_utf8);
                push(&mut out, &mut space, &sql[i..i + len]);
                i += len;
            }
        }
    }
    out
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_continue(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Removes a literal's one-letter prefix already written to `out`; returns
/// whether it was `E` (backslash escapes inside) and whether a space went
/// with it.
fn strip_prefix_letter(out: &mut String) -> (bool, bool) {
    let bytes = out.as_bytes();
    let n = bytes.len();
    let lone_letter = n >= 1
        && matches!(
            bytes[n - 1],
            b'E' | b'e' | b'X' | b'x' | b'B' | b'b' | b'N' | b'n'
        )
        && (n == 1 || !is_ident_continue(bytes[n - 2]));
    if !lone_letter {
        return (false, false);
    }
    let escapes = matches!(bytes[n - 1], b'E' | b'e');
    out.pop();
    let spaced = out.ends_with(' ');
    if spaced {
        out.pop();
    }
    (escapes, spaced)
}

/// The index after the string literal opening at `i`.
fn skip_string(b: &[u8], mut i: usize, backslash_escapes: bool) -> usize {
    i += 1;
    while i < b.len() {
        match b[i] {
            b'\\' if backslash_escapes => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// When a `$tag$…$tag$` literal opens at `i`, the index after it.
fn dollar_quote_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    if b.get(j).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while j < b.len() && b[j] != b'$' {
        if !(b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            return None;
        }
        j += 1;
    }
    if j >= b.len() {
        return None;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    let end = b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |p| body + p + tag.len());
    Some(end)
}

fn skip_number(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_') {
        i += 1;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        let mut j = i + 1;
        if j < b.len() && matches!(b[j], b'+' | b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// Sanitises `sql` and reads its operation and collection.
pub(crate) fn parse(sql: &str) -> Parsed {
    let sanitized = sanitize(sql);
    let (operation, collection) = operation_and_collection(&sanitized);
    Parsed {
        sanitized,
        operation,
        collection,
    }
}

/// Top-level words and punctuation of sanitised text; parenthesised parts
/// become one `(` token.
fn top_level_tokens(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b' ' {
            i += 1;
        } else if c == b'(' {
            let mut depth = 0usize;
            let start = i;
            while i < b.len() {
                match b[i] {
                    b'(' => depth += 1,
                    b')' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    b'"' | b'`' => {
                        let q = b[i];
                        i += 1;
                        while i < b.len() && b[i] != q {
                            i += 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let _ = start;
            out.push("(");
        } else if c == b'"' || c == b'`' || c == b'[' || is_ident_start(c) {
            // An identifier, possibly dotted and quoted: `"s"."t"`, main.t.
            let start = i;
            loop {
                if i < b.len() && (b[i] == b'"' || b[i] == b'`' || b[i] == b'[') {
                    let close = if b[i] == b'[' { b']' } else { b[i] };
                    i += 1;
                    while i < b.len() && b[i] != close {
                        i += 1;
                    }
                    i = (i + 1).min(b.len());
                } else {
                    while i < b.len() && is_ident_continue(b[i]) {
                        i += 1;
                    }
                }
                if i + 1 < b.len()
                    && b[i] == b'.'
                    && (is_ident_start(b[i + 1]) || matches!(b[i + 1], b'"' | b'`' | b'['))
                {
                    i += 1;
                    continue;
                }
                break;
            }
            out.push(&s[start..i]);
        } else {
            let len = s[i..].chars().next().map_or(1, char::len_utf8);
            out.push(&s[i..i + len]);
            i += len;
        }
    }
    out
}

fn is(token: &str, keyword: &str) -> bool {
    token.eq_ignore_ascii_case(keyword)
}

fn table_name(token: Option<&&str>) -> Option<String> {
    let t = *token?;
    let first = t.as_bytes()[0];
    if !(is_ident_start(first) || matches!(first, b'"' | b'`' | b'[')) {
        return None;
    }
    Some(
        t.chars()
            .filter(|c| !matches!(c, '"' | '`' | '[' | ']'))
            .collect(),
    )
}

const OPERATIONS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "UPSERT",
    "MERGE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "PRAGMA",
    "VACUUM",
    "ANALYZE",
    "EXPLAIN",
    "SET",
    "SHOW",
    "GRANT",
    "REVOKE",
    "COPY",
    "CALL",
    "VALUES",
    "LISTEN",
    "NOTIFY",
    "LOCK",
    "REINDEX",
    "ATTACH",
    "DETACH",
];

fn operation_and_collection(sanitized: &str) -> (Option<String>, Option<String>) {
    let tokens = top_level_tokens(sanitized);
    let mut start = 0;
    let first = match tokens.first() {
        Some(t) => *t,
        None => return (None, None),
    };
    if is(first, "WITH") {
        // The statement after the common table expressions.
        match tokens.iter().position(|t| {
            ["SELECT", "INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|k| is(t, k))
        }) {
            Some(p) => start = p,
            None => return (Some("WITH".into()), None),
        }
    }
    let tokens = &tokens[start..];
    let op_token = tokens[0];
    let Some(op) = OPERATIONS.iter().find(|k| is(op_token, k)) else {
        return (None, None);
    };
    let end = tokens
        .iter()
        .position(|t| *t == ";")
        .unwrap_or(tokens.len());
    let tokens = &tokens[..end];
    let after = |keyword: &str| tokens.iter().position(|t| is(t, keyword));
    let skip_words = |mut i: usize, words: &[&str]| {
        while i < tokens.len() && words.iter().any(|w| is(tokens[i], w)) {
            i += 1;
        }
        i
    };
    let collection = match *op {
        "SELECT" => after("FROM").and_then(|f| {
            let rest = &tokens[f + 1..];
            let joined = rest
                .iter()
                .take_while(|t| {
                    !["WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "UNION"]
                        .iter()
                        .any(|k| is(t, k))
                })
                .any(|t| *t == "," || is(t, "JOIN"));
            if joined {
                None
            } else {
                table_name(rest.first())
            }
        }),
        "INSERT" | "REPLACE" | "UPSERT" => {
            after("INTO").and_then(|i| table_name(tokens.get(i + 1)))
        }
        "UPDATE" => {
            let i = skip_words(
                1,
                &[
                    "OR", "ROLLBACK", "ABORT", "REPLACE", "FAIL", "IGNORE", "ONLY",
                ],
            );
            table_name(tokens.get(i))
        }
        "DELETE" => after("FROM").and_then(|i| {
            let i = skip_words(i + 1, &["ONLY"]);
            table_name(tokens.get(i))
        }),
        "CREATE" | "DROP" | "ALTER" => {
            let i = skip_words(1, &["TEMP", "TEMPORARY", "UNLOGGED", "VIRTUAL"]);
            if tokens.get(i).is_some_and(|t| is(t, "TABLE")) {
                let i = skip_words(i + 1, &["IF", "NOT", "EXISTS", "ONLY"]);
                table_name(tokens.get(i))
            } else {
                None
            }
        }
        "TRUNCATE" => {
            let i = skip_words(1, &["TABLE", "ONLY"]);
            table_name(tokens.get(i))
        }
        _ => None,
    };
    (Some((*op).to_owned()), collection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_become_placeholders() {
        for (sql, want) in [
            ("SELECT 1", "SELECT ?"),
            (
                "select * from t where a = 'it''s' and b = 3.5e-2 and c = $1",
                "select * from t where a = ? and b = ? and c = $1",
            ),
            (
                "INSERT INTO t (a, b) VALUES (E'x\\'y', X'ff')",
                "INSERT INTO t (a, b) VALUES (?, ?)",
            ),
            ("SELECT $$secret$$, $tag$a$b$tag$", "SELECT ?, ?"),
            (
                "SELECT t1.c2 FROM t1 WHERE x=0x1F",
                "SELECT t1.c2 FROM t1 WHERE x=?",
            ),
            (
                "SELECT \"weird 'name'\" FROM t /* 'c' 7 */ -- 'd'\n WHERE y = ?",
                "SELECT \"weird 'name'\" FROM t WHERE y = ?",
            ),
            ("SELECT .5, -7, 'é'", "SELECT ?, -?, ?"),
            ("SELECT 'unterminated", "SELECT ?"),
        ] {
            assert_eq!(sanitize(sql), want, "{sql}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_literal_survives(text in "[a-zA-Z0-9 @.'_-]{1,24}", n in 0u64..u64::MAX, f in 0.0f64..1e9) {
            let quoted = text.replace('\'', "''");
            let sql = format!("SELECT * FROM t WHERE a = '{quoted}' AND b = {n} OR c > {f}");
            proptest::prop_assert_eq!(
                sanitize(&sql),
                "SELECT * FROM t WHERE a = ? AND b = ? OR c > ?"
            );
        }
    }

    #[test]
    fn operation_and_collection_are_read() {
        let oc = |sql: &str| {
            let p = parse(sql);
            (p.operation, p.collection)
        };
        let some = |o: &str, c: Option<&str>| (Some(o.to_owned()), c.map(str::to_owned));
        assert_eq!(oc("SELECT 1"), some("SELECT", None));
        assert_eq!(
            oc("select id from orders where id = $1"),
            some("SELECT", Some("orders"))
        );
        assert_eq!(
            oc("SELECT * FROM a JOIN b ON a.x = b.x"),
            some("SELECT", None)
        );
        assert_eq!(oc("SELECT * FROM a, b"), some("SELECT", None));
        assert_eq!(
            oc("SELECT (SELECT max(x) FROM y) FROM public.orders"),
            some("SELECT", Some("public.orders"))
        );
        assert_eq!(
            oc("INSERT INTO \"Users\" (a) VALUES (1)"),
            some("INSERT", Some("Users"))
        );
        assert_eq!(
            oc("insert or replace into kv values (1, 2)"),
            some("INSERT", Some("kv"))
        );
        assert_eq!(
            oc("UPDATE orders SET a = 1"),
            some("UPDATE", Some("orders"))
        );
        assert_eq!(
            oc("DELETE FROM sessions WHERE t < 3"),
            some("DELETE", Some("sessions"))
        );
        assert_eq!(
            oc("CREATE TABLE IF NOT EXISTS users (id INTEGER)"),
            some("CREATE", Some("users"))
        );
        assert_eq!(
            oc("WITH x AS (SELECT 1) SELECT * FROM x"),
            some("SELECT", Some("x"))
        );
        assert_eq!(oc("BEGIN"), some("BEGIN", None));
        assert_eq!(oc("frobnicate the database"), (None, None));
        assert_eq!(oc(""), (None, None));
    }
}
