//! Generated `tracestate` split over several header lines, with optional
//! whitespace and empty members, sometimes broken (a duplicate key, a
//! 33rd member, a bad member): the extracted list is the lines' members in
//! order, or nothing when the specification says to discard it
//! (issue 16, section 1).

use http::{HeaderMap, HeaderValue};
use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::propagation::TraceContextPropagator;
use proptest::prelude::*;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[derive(Debug, Clone)]
enum Fault {
    None,
    DuplicateKey,
    TooMany,
    Bad(&'static str),
}

fn key() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9_*/-]{0,15}",
        proptest::option::of("[a-z0-9][a-z0-9_*/-]{0,12}"),
    )
        .prop_map(|(k, vendor)| match vendor {
            Some(v) => format!("{k}@{v}"),
            None => k,
        })
}

/// Printable ASCII but `,` and `=`; inner spaces allowed, not at the end.
fn value() -> impl Strategy<Value = String> {
    "[!-+\\--<>-~]([ -+\\--<>-~]{0,10}[!-+\\--<>-~])?".prop_map(|v| v)
}

fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")]
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        1 => Just(Fault::DuplicateKey),
        1 => Just(Fault::TooMany),
        1 => prop_oneof![
            Just("k="),
            Just("Upper=1"),
            Just("k=v=w"),
            Just("=v"),
            Just("novalue"),
            Just("_k=1"),
        ]
        .prop_map(Fault::Bad),
    ]
}

#[derive(Debug)]
struct Generated {
    lines: Vec<String>,
    expected: String,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        proptest::collection::btree_map(key(), value(), 0..=32),
        fault(),
        proptest::collection::vec((ows(), ows(), 0..3usize), 40),
        1..5usize,
        any::<u64>(),
    )
        .prop_map(|(members, fault, padding, lines, seed)| {
            let mut members: Vec<String> =
                members.iter().map(|(k, v)| format!("{k}={v}")).collect();
            // Not in key order: the order of the lines is the list's.
            let by = (seed as usize) % members.len().max(1);
            members.rotate_left(by);
            let expected = match &fault {
                Fault::None => members.join(","),
                _ => String::new(),
            };
            match fault {
                Fault::None => {}
                Fault::DuplicateKey => match members.first().cloned() {
                    Some(m) => {
                        let k = m.split('=').next().unwrap().to_owned();
                        members.push(format!("{k}=again"));
                    }
                    None => members.extend(["d=1".to_owned(), "d=2".to_owned()]),
                },
                Fault::TooMany => {
                    let mut i = 0;
                    while members.len() <= 32 {
                        members.push(format!("extra{i}-{seed}=x"));
                        i += 1;
                    }
                }
                Fault::Bad(b) => {
                    let at = (seed as usize) % (members.len() + 1);
                    members.insert(at, b.to_owned());
                }
            }
            // Split into `lines` header lines, padded, with empty members.
            let mut out = vec![String::new(); lines];
            for (i, m) in members.iter().enumerate() {
                let (before, after, empties) = padding[i % padding.len()];
                let line = &mut out[(i * lines) / members.len().max(1)];
                if !line.is_empty() {
                    line.push(',');
                }
                for _ in 0..empties {
                    line.push_str(before);
                    line.push(',');
                }
                line.push_str(before);
                line.push_str(m);
                line.push_str(after);
            }
            Generated {
                lines: out,
                expected,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn multi_line_tracestate_is_one_list_or_discarded(g in generated()) {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        for line in &g.lines {
            h.append("tracestate", HeaderValue::from_str(line).unwrap());
        }
        let (cx, invalid) = otelwire_axum::extract_context(&TraceContextPropagator::new(), &h);
        prop_assert!(!invalid);
        let span = cx.span();
        let sc = span.span_context();
        prop_assert!(sc.is_valid());
        prop_assert_eq!(sc.trace_state().header(), g.expected, "lines: {:?}", g.lines);
    }
}
