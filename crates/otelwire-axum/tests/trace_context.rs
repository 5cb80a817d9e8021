//! W3C Trace Context (Level 1 and 2) through otelwire-axum over real HTTP,
//! requests written byte for byte so that one request carries several
//! header lines: each rule from the specification's wording, asserted on
//! the server span at the collector and on the headers the service would
//! send on its next call (issue 16, section 1).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use otelwire::{LogFormat, Signal, Telemetry};
use otelwire_axum::OtelLayer;
use otelwire_test::Collector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn telemetry(collector: &Collector) -> Telemetry {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("trace-context")
        .endpoint(collector.http_endpoint())
        .log_format(LogFormat::None)
        .scheduled_delay(Signal::Traces, Duration::from_millis(100))
        .metric_export_interval(Duration::from_secs(60))
        .process_metrics(false)
        .build()
        .unwrap()
}

/// Answers with the headers an outgoing call from inside the request
/// would carry (what otelwire-reqwest injects), one `name: value` a line.
async fn server(t: &Telemetry) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn outgoing() -> String {
        let cx = tracing::Span::current().context();
        let mut headers = HashMap::new();
        otelwire::http::with_propagator(|p| p.inject_context(&cx, &mut headers));
        let mut lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        lines.sort();
        lines.join("\n")
    }
    let app = Router::new()
        .route("/call/{n}", get(outgoing))
        .layer(OtelLayer::new().meter(t.meter("otelwire-axum")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}

/// Sends `GET /call/{n}` with `header_lines` exactly as given and returns
/// the response body.
async fn call(addr: SocketAddr, n: usize, header_lines: &[&str]) -> String {
    let mut request = format!("GET /call/{n} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for line in header_lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    body.to_owned()
}

fn header<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[tokio::test(flavor = "current_thread")]
async fn each_rule_of_the_specification_over_http() {
    let collector = Collector::start().unwrap();
    let t = telemetry(&collector);
    let default = tracing::dispatcher::set_default(t.dispatch());
    let (addr, task) = server(&t).await;
    let tp = format!("traceparent: 00-{TRACE}-{PARENT}-01");

    // Each case: the request's context header lines; then what the server
    // span continued, and the tracestate sent on the next call.
    struct Case<'a> {
        what: &'a str,
        lines: Vec<String>,
        continued: bool,
        flags: &'a str,
        tracestate: Option<&'a str>,
    }
    let cases = vec![
        Case {
            what: "Level 2: the random flag (bit 1) is kept with sampled",
            lines: vec![format!("traceparent: 00-{TRACE}-{PARENT}-03")],
            continued: true,
            flags: "03",
            tracestate: None,
        },
        Case {
            what: "flags not defined yet are kept too",
            lines: vec![format!("traceparent: 00-{TRACE}-{PARENT}-09")],
            continued: true,
            flags: "09",
            tracestate: None,
        },
        Case {
            what: "several traceparent lines: no valid parent",
            lines: vec![
                format!("traceparent: 00-{TRACE}-{PARENT}-01"),
                format!("traceparent: 00-{TRACE}-{PARENT}-01"),
            ],
            continued: false,
            // A trace started here: its id is otelwire's, random.
            flags: "03",
            tracestate: None,
        },
        Case {
            what: "optional whitespace around traceparent",
            lines: vec![format!("traceparent: \t 00-{TRACE}-{PARENT}-01 \t")],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "tracestate lines are combined as one list, empty ones ignored",
            lines: vec![
                tp.clone(),
                "tracestate: a=1 , b=2".into(),
                "tracestate: ".into(),
                "tracestate: ,,c=3\t".into(),
            ],
            continued: true,
            flags: "01",
            tracestate: Some("a=1,b=2,c=3"),
        },
        Case {
            what: "32 members are kept",
            lines: vec![
                tp.clone(),
                format!(
                    "tracestate: {}",
                    (0..16)
                        .map(|i| format!("k{i}=v"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                format!(
                    "tracestate: {}",
                    (16..32)
                        .map(|i| format!("k{i}=v"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ],
            continued: true,
            flags: "01",
            tracestate: None, // checked below: all 32
        },
        Case {
            what: "33 members across two lines: the whole tracestate is discarded",
            lines: vec![
                tp.clone(),
                format!(
                    "tracestate: {}",
                    (0..17)
                        .map(|i| format!("k{i}=v"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                format!(
                    "tracestate: {}",
                    (17..33)
                        .map(|i| format!("k{i}=v"))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "a duplicate key across lines: discarded",
            lines: vec![
                tp.clone(),
                "tracestate: a=1".into(),
                "tracestate: a=2".into(),
            ],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "an empty value: discarded",
            lines: vec![tp.clone(), "tracestate: foo=,bar=3".into()],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "a value with `=` in it: discarded",
            lines: vec![tp.clone(), "tracestate: foo=a=b,bar=3".into()],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "a key starting with an upper-case letter: discarded",
            lines: vec![tp.clone(), "tracestate: Foo=1,bar=3".into()],
            continued: true,
            flags: "01",
            tracestate: None,
        },
        Case {
            what: "tracestate without a valid traceparent is not used",
            lines: vec![
                format!("traceparent: 00-{TRACE}-{PARENT}-1"),
                "tracestate: a=1".into(),
            ],
            continued: false,
            flags: "03",
            tracestate: None,
        },
        Case {
            what: "Level 2: a trace started here is sent with random",
            lines: vec![],
            continued: false,
            flags: "03",
            tracestate: None,
        },
    ];

    let mut bodies = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let lines: Vec<&str> = case.lines.iter().map(String::as_str).collect();
        bodies.push(call(addr, n, &lines).await);
    }
    drop(default);
    t.shutdown().await;
    task.abort();

    for (n, (case, body)) in cases.iter().zip(&bodies).enumerate() {
        let what = case.what;
        let spans = collector.spans_named("GET /call/{n}");
        let span = spans
            .iter()
            .find(|s| s.attributes.get_str("url.path") == Some(format!("/call/{n}").as_str()))
            .unwrap_or_else(|| panic!("{what}: no server span in {spans:?}"));
        let sent = header(body, "traceparent").unwrap_or_else(|| panic!("{what}: {body}"));
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(
            parts[2], span.span_id,
            "{what}: the server span is the next call's parent"
        );
        if case.continued {
            assert_eq!(span.trace_id, TRACE, "{what}");
            assert_eq!(span.parent_span_id.as_deref(), Some(PARENT), "{what}");
        } else {
            assert_ne!(span.trace_id, TRACE, "{what}: a new trace");
            assert_eq!(span.parent_span_id, None, "{what}");
        }
        // A received trace keeps its flags (`01` stays `01`: an id from
        // elsewhere is not known to be random); one started here is sent
        // with `random`.
        assert_eq!(parts[3], case.flags, "{what}: {sent}");
        // The exported span has the same W3C flags as its traceparent.
        assert_eq!(
            format!("{:02x}", span.flags & 0xff),
            case.flags,
            "{what}: exported flags {:#x}",
            span.flags
        );
        let state = header(body, "tracestate");
        if case.what == "32 members are kept" {
            let expected: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
            assert_eq!(state, Some(expected.join(",").as_str()), "{what}");
            assert_eq!(span.trace_state, expected.join(","), "{what}");
        } else {
            // An empty tracestate is not sent at all.
            assert_eq!(state, case.tracestate, "{what}: {body}");
            assert_eq!(span.trace_state, case.tracestate.unwrap_or(""), "{what}");
        }
    }

    // Two traceparents and a bad one are both counted as invalid contexts.
    let invalid: u64 = collector
        .metric_points("otelwire.http.server.invalid_context")
        .iter()
        .map(|p| match p.value {
            otelwire_test::PointValue::Int(v) => v as u64,
            _ => 0,
        })
        .sum();
    assert_eq!(invalid, 2);
}
