//! The two collector tiers, run for real on loopback: two agents
//! (`otel-collector/agent.yaml`) whose `load_balancing` exporter names two
//! gateways (`otel-collector/gateway.yaml`) with a static resolver in place
//! of Kubernetes' DNS, each gateway with an otelwire-test collector as its
//! Tempo and its Prometheus. Traces are routed whole by trace id, tail
//! sampling keeps what it promises, span metrics count every span before
//! sampling, and a gateway that is down for a minute loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use otelwire_test::Collector as Backend;
use otelwire_tests::programs::{self, Collector, CollectorSpec};

const SPANS_PER_TRACE: usize = 5;

/// A gateway with its own Tempo and Prometheus stand-ins (Loki unused).
struct Gateway {
    collector: Collector,
    tempo: Backend,
    metrics: Backend,
}

fn gateway(dir: &Path, bin: &Path) -> Gateway {
    let (tempo, metrics) = (Backend::start().unwrap(), Backend::start().unwrap());
    let spec = CollectorSpec::new("gateway.yaml", dir)
        .env(
            "TEMPO_OTLP_GRPC_ENDPOINT",
            tempo.grpc_endpoint().trim_start_matches("http://"),
        )
        .env("PROMETHEUS_OTLP_ENDPOINT", metrics.http_endpoint())
        .env(
            "LOKI_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{}", programs::free_port()),
        );
    Gateway {
        collector: spec.start(bin),
        tempo,
        metrics,
    }
}

fn agent(dir: &Path, bin: &Path, gateways: &[&Gateway]) -> Collector {
    let hostnames: Vec<String> = gateways
        .iter()
        .map(|g| format!("127.0.0.1:{}", g.collector.spec.ports.grpc))
        .collect();
    CollectorSpec::new("agent.yaml", dir)
        // Kubernetes' DNS name of the gateways' headless Service does not
        // exist here: the static resolver names them instead.
        .set("exporters::load_balancing::resolver::dns::enabled: false")
        .set(format!(
            "exporters::load_balancing::resolver::static::hostnames: [{}]",
            hostnames.join(", ")
        ))
        .set(format!(
            "exporters::otlp_grpc/gateway::endpoint: {}",
            hostnames[0]
        ))
        .start(bin)
}

/// What kind of trace the i-th one is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Error,
    Slow,
    Plain,
}

fn kind(i: usize) -> Kind {
    match i % 10 {
        0 => Kind::Error,
        5 => Kind::Slow,
        _ => Kind::Plain,
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The spans of one trace as OTLP/JSON: a root and four children; an error
/// trace has a failing child, a slow one lasts 600 ms (by its timestamps).
fn trace_spans(trace_id: &str, kind: Kind, run: &str) -> Vec<serde_json::Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let length: u128 = if kind == Kind::Slow {
        600_000_000
    } else {
        20_000_000
    };
    let root = random_hex(8);
    (0..SPANS_PER_TRACE)
        .map(|j| {
            let id = if j == 0 { root.clone() } else { random_hex(8) };
            let (start, end) = if j == 0 {
                (now - length, now)
            } else {
                (now - length + 1_000_000, now - 1_000_000)
            };
            let mut span = serde_json::json!({
                "traceId": trace_id, "spanId": id, "name": format!("step {j}"),
                "kind": if j == 0 { 2 } else { 1 },
                "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
                "attributes": [{"key": "run.id", "value": {"stringValue": run}}],
            });
            if j > 0 {
                span["parentSpanId"] = root.clone().into();
            }
            if kind == Kind::Error && j == 3 {
                span["status"] = serde_json::json!({"code": 2, "message": "failed"});
            }
            span
        })
        .collect()
}

fn post(agent: &Collector, service: &str, spans: &[serde_json::Value]) {
    let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"spans": spans}]
    }]});
    let r = programs::http()
        .post(format!("{}/v1/traces", agent.http_endpoint()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "the agent accepts the spans");
}

/// Sends `n` traces; each trace's first three spans go to one agent and the
/// other two to the other, alternately, so that only trace-id routing can
/// bring a trace together. Returns trace id -> kind.
fn send(
    agents: [&Collector; 2],
    service: &str,
    run: &str,
    n: usize,
    only: Option<Kind>,
) -> BTreeMap<String, Kind> {
    let mut sent = BTreeMap::new();
    for i in 0..n {
        let k = only.unwrap_or(kind(i));
        let id = random_hex(16);
        let spans = trace_spans(&id, k, run);
        let (a, b) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        post(agents[a], service, &spans[..3]);
        post(agents[b], service, &spans[3..]);
        sent.insert(id, k);
    }
    sent
}

/// trace id -> (gateway index, span count), failing on a trace at both.
fn arrived(gateways: &[&Gateway], run: &str) -> BTreeMap<String, (usize, usize)> {
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (g, gw) in gateways.iter().enumerate() {
        for s in gw.tempo.spans() {
            if s.attributes.get_str("run.id") != Some(run) {
                continue;
            }
            let e = out.entry(s.trace_id.clone()).or_insert((g, 0));
            assert_eq!(e.0, g, "trace {} reached both gateways", s.trace_id);
            e.1 += 1;
        }
    }
    out
}

/// Spans counted by the gateways' span_metrics connectors for `run`'s
/// service: the newest cumulative value of each series, summed.
fn spans_counted(gateways: &[&Gateway], service: &str) -> f64 {
    let mut total = 0.0;
    for gw in gateways {
        let mut newest: BTreeMap<String, (u64, f64)> = BTreeMap::new();
        for p in gw.metrics.metric_points("traces.span.metrics.calls") {
            if p.resource.get_str("service.name") != Some(service) {
                continue;
            }
            let key = format!("{:?}", p.attributes);
            let v = p.as_f64().unwrap_or(0.0);
            let e = newest.entry(key).or_insert((0, 0.0));
            if p.time_unix_nano >= e.0 {
                *e = (p.time_unix_nano, v);
            }
        }
        total += newest.values().map(|(_, v)| v).sum::<f64>();
    }
    total
}

#[test]
fn two_tiers_route_whole_traces_sample_them_and_survive_a_gateway_outage() {
    let Some(bins) = programs::binaries() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| {
        let p = dir.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let g1 = gateway(&d("gateway-1"), &bins.otelcol);
    let mut g2 = gateway(&d("gateway-2"), &bins.otelcol);
    let a1 = agent(&d("agent-1"), &bins.otelcol, &[&g1, &g2]);
    let a2 = agent(&d("agent-2"), &bins.otelcol, &[&g1, &g2]);
    let run = random_hex(8);

    // 400 traces of 5 spans: 10 % with an error span, 10 % slower than 500 ms.
    let sent = send([&a1, &a2], "tiers-test", &run, 400, None);
    let errors = sent.values().filter(|k| **k == Kind::Error).count();
    let slow = sent.values().filter(|k| **k == Kind::Slow).count();
    assert_eq!((errors, slow), (40, 40));

    // Span metrics, computed before sampling, count every span.
    programs::wait_until(
        "the gateways' span metrics count all 2,000 spans",
        Duration::from_secs(60),
        || match spans_counted(&[&g1, &g2], "tiers-test") {
            n if n == (400 * SPANS_PER_TRACE) as f64 => Ok(()),
            n => Err(format!("{n} spans counted")),
        },
    );

    // Tail sampling decides 10 s after a trace's first span: then every
    // error and slow trace is at exactly one gateway, complete.
    let must_keep: BTreeSet<&String> = sent
        .iter()
        .filter(|(_, k)| **k != Kind::Plain)
        .map(|(id, _)| id)
        .collect();
    let got = programs::wait_until(
        "every error and slow trace arrives",
        Duration::from_secs(60),
        || {
            let got = arrived(&[&g1, &g2], &run);
            let missing = must_keep
                .iter()
                .filter(|id| !got.contains_key(**id))
                .count();
            if missing == 0 {
                Ok(got)
            } else {
                Err(format!("{missing} missing"))
            }
        },
    );
    // Two error traces sent after the 400: once they are in, every trace
    // sent before them has been decided (decisions go in arrival order).
    let marker = random_hex(8);
    let markers = send([&a1, &a2], "tiers-test", &marker, 2, Some(Kind::Error));
    programs::wait_until("the marker traces arrive", Duration::from_secs(60), || {
        let got = arrived(&[&g1, &g2], &marker);
        if markers.keys().all(|id| got.contains_key(id)) {
            Ok(())
        } else {
            Err(format!("{} of 2", got.len()))
        }
    });
    let got = {
        let later = arrived(&[&g1, &g2], &run);
        assert!(later.len() >= got.len());
        later
    };
    for (id, (g, n)) in &got {
        assert!(sent.contains_key(id), "a trace nobody sent: {id}");
        assert_eq!(
            *n, SPANS_PER_TRACE,
            "trace {id} at gateway {g}: incomplete or duplicated"
        );
    }
    let per_gateway: Vec<usize> = (0..2)
        .map(|g| got.values().filter(|(x, _)| *x == g).count())
        .collect();
    assert!(
        per_gateway.iter().all(|n| *n > 0),
        "both gateways get a share: {per_gateway:?}"
    );
    // 10 % of the 320 plain traces: 32 expected; binomial sd 5.4. The bound
    // 12..=60 is more than 3.5 sd either side.
    let plain = got.keys().filter(|id| sent[*id] == Kind::Plain).count();
    assert!(
        (12..=60).contains(&plain),
        "{plain} of 320 plain traces kept, expected about 32"
    );

    // One gateway goes down for a minute while traffic goes on: its share
    // waits in the agents' queues and arrives once it is back, once. What
    // arrives is counted where it arrives, by the gateways' span metrics
    // (before sampling): after an outage each agent delivers its part of a
    // trace when its own retry comes round, and parts that reach the
    // gateway more than decision_wait apart are sampled as separate traces
    // (docs/stack.md), so Tempo's side is checked for duplicates only.
    let run2 = random_hex(8);
    g2.collector.process.stop();
    let outage = Instant::now();
    let mut sent2 = BTreeMap::new();
    while outage.elapsed() < Duration::from_secs(60) {
        sent2.extend(send(
            [&a1, &a2],
            "tiers-outage",
            &run2,
            10,
            Some(Kind::Error),
        ));
        std::thread::sleep(Duration::from_secs(2));
    }
    g2.collector = g2.collector.spec.start(&bins.otelcol);
    let expected = (sent2.len() * SPANS_PER_TRACE) as f64;
    programs::wait_until(
        "every span sent during the outage reaches a gateway",
        Duration::from_secs(180),
        || match spans_counted(&[&g1, &g2], "tiers-outage") {
            n if n >= expected => Ok(()),
            n => Err(format!("{n} of {expected} spans counted")),
        },
    );
    // Drained: the agents' queues are empty, so nothing more is coming.
    programs::wait_until("the agents' queues drain", Duration::from_secs(60), || {
        let q = a1.own_metric("otelcol_exporter_queue_size", &["load_balancing"])
            + a2.own_metric("otelcol_exporter_queue_size", &["load_balancing"]);
        if q == 0.0 {
            Ok(())
        } else {
            Err(format!("{q} queued"))
        }
    });
    assert_eq!(
        spans_counted(&[&g1, &g2], "tiers-outage"),
        expected,
        "every span of the outage reached a gateway exactly once"
    );
    assert!(
        spans_counted(&[&g2], "tiers-outage") > 0.0,
        "some of the outage's spans belong to the gateway that was down"
    );
    let mut seen = BTreeSet::new();
    for gw in [&g1, &g2] {
        for s in gw.tempo.spans() {
            if s.attributes.get_str("run.id") == Some(run2.as_str()) {
                assert!(sent2.contains_key(&s.trace_id), "a trace nobody sent");
                assert!(
                    seen.insert(s.span_id.clone()),
                    "span {} stored twice",
                    s.span_id
                );
            }
        }
    }
}
