//! Run with `cargo run -p demo`: the whole example system in one process.
//!
//! With no collector configured, an `otelwire-test` collector runs
//! in-process as the embedded default. The demo starts `inventory`,
//! `pricing` (gRPC), `orders-api` (which calls both) and the
//! `health-checker` worker pointed at the HTTP services (each with its own
//! telemetry pipeline and service name), logs in to orders-api as the demo
//! user (`demo@example.com` / `demo-password`, demo only) and drives
//! traffic for about ten seconds (`DEMO_DURATION_SECS`) — orders that
//! succeed, an unknown item (404), a slow stock lookup with a slow quote, a
//! failing stock lookup, a failing quote, an order without a token (401) and
//! one by a user who may not order (403) — asks the health-checker for its
//! `/health`, then prints what the collector received: per service the
//! spans, log records and metric series, the security events, one trace as
//! an indented tree crossing the three services (orders-api's server span
//! over its HTTP call to inventory and its gRPC call to pricing, each over
//! the other service's server span, with its database queries), and one
//! health-checker run as a tree. orders-api keeps its orders in an
//! in-memory SQLite database.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, telemetry goes there instead (for
//! example the compose stack's collector) and nothing is printed about it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use otelwire::{LogFormat, Protocol, Signal, Telemetry};
use otelwire_test::{Collector, Span};

/// One service running on a thread of its own, with its own pipeline.
struct Service {
    name: &'static str,
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<otelwire::ShutdownReport>,
}

fn telemetry(
    name: &'static str,
    collector: Option<&Collector>,
) -> Result<Telemetry, otelwire::InitError> {
    let mut b = otelwire::builder()
        .service_name(name)
        .service_version(env!("CARGO_PKG_VERSION"))
        .scheduled_delay(Signal::Traces, Duration::from_millis(500))
        .scheduled_delay(Signal::Logs, Duration::from_millis(500))
        .metric_export_interval(Duration::from_secs(2));
    if std::env::var_os("OTELWIRE_LOG_FORMAT").is_none() {
        // The demo prints its own summary; the services stay quiet.
        b = b.log_format(LogFormat::None);
    }
    if let Some(c) = collector {
        b = b.endpoint(c.grpc_endpoint()).protocol(Protocol::Grpc);
    }
    b.build()
}

/// What a service serves: HTTP routes, or the pricing gRPC service.
enum App {
    Http(axum::Router),
    Pricing(pricing::Config),
}

fn start(
    name: &'static str,
    telemetry: Telemetry,
    app: impl AsyncFnOnce(&Telemetry) -> Result<App, String> + Send + 'static,
) -> std::io::Result<Service> {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Everything this service does is recorded by its own pipeline.
            let guard = tracing_default(&telemetry);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async {
                let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e));
                        return;
                    }
                };
                let app = match app(&telemetry).await {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = addr_tx.send(Err(std::io::Error::other(e)));
                        return;
                    }
                };
                let _ = addr_tx.send(listener.local_addr());
                let stop = async {
                    let _ = stop_rx.await;
                };
                match app {
                    App::Http(router) => {
                        let _ = orders_api::serve(listener, router, stop).await;
                    }
                    App::Pricing(config) => {
                        let _ = pricing::serve(listener, &telemetry, config, stop).await;
                    }
                }
            });
            drop(rt);
            drop(guard);
            telemetry.shutdown_blocking()
        })?;
    let addr = addr_rx
        .recv()
        .map_err(|_| std::io::Error::other(format!("{name} did not start")))??;
    Ok(Service {
        name,
        addr,
        stop,
        thread,
    })
}

fn tracing_default(t: &Telemetry) -> otelwire::tracing::dispatcher::DefaultGuard {
    otelwire::tracing::dispatcher::set_default(t.dispatch())
}

#[tokio::main]
async fn main() -> ExitCode {
    let external = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    let collector = if external {
        None
    } else {
        match Collector::start() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("demo: cannot start the embedded collector: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let seconds = match std::env::var("DEMO_DURATION_SECS") {
        Err(_) => 10,
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!(
                    "demo: DEMO_DURATION_SECS={v}: expected a positive whole number of seconds"
                );
                return ExitCode::FAILURE;
            }
        },
    };
    match &collector {
        Some(c) => println!(
            "demo: embedded OTLP collector at {} (gRPC)",
            c.grpc_endpoint()
        ),
        None => println!(
            "demo: sending telemetry to {}",
            inventory::without_userinfo(
                &std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default()
            )
        ),
    }

    let (inv_t, pri_t, ord_t, hc_t) = match (
        telemetry("inventory", collector.as_ref()),
        telemetry("pricing", collector.as_ref()),
        telemetry("orders-api", collector.as_ref()),
        telemetry("health-checker", collector.as_ref()),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        (Err(e), _, _, _) | (_, Err(e), _, _) | (_, _, Err(e), _) | (_, _, _, Err(e)) => {
            eprintln!("demo: cannot set up telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = inventory::Config {
        slow_skus: vec!["anvil".into()],
        failing_skus: vec!["gizmo".into()],
        ..Default::default()
    };
    let inventory = match start("inventory", inv_t, async move |t| {
        Ok(App::Http(inventory::router(t, config)))
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot start inventory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let prices = pricing::Config {
        slow_skus: vec!["anvil".into()],
        failing_skus: vec!["lever".into()],
        ..Default::default()
    };
    let pricing = match start("pricing", pri_t, async move |_| Ok(App::Pricing(prices))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot start pricing: {e}");
            return ExitCode::FAILURE;
        }
    };
    let inventory_url = format!("http://{}", inventory.addr);
    let upstreams = orders_api::Upstreams::new(&inventory_url, format!("http://{}", pricing.addr));
    let orders = match start("orders-api", ord_t, async move |t| {
        orders_api::app(t, &upstreams, None)
            .await
            .map(App::Http)
            .map_err(|e| e.to_string())
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot start orders-api: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = demo_checks(&format!("http://{}", orders.addr), &inventory_url);
    let checker = match start("health-checker", hc_t, async move |t| {
        let handle = health_checker::spawn(t, checks);
        Ok(App::Http(health_checker::router(t, &handle)))
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot start health-checker: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "demo: inventory on http://{}, pricing on http://{} (gRPC), orders-api on http://{}, health-checker on http://{}; driving traffic for {seconds} s",
        inventory.addr, pricing.addr, orders.addr, checker.addr
    );

    if let Err(e) = drive(
        &format!("http://{}", orders.addr),
        Duration::from_secs(seconds),
    )
    .await
    {
        eprintln!("demo: {e}");
        return ExitCode::FAILURE;
    }
    show_health(&format!("http://{}/health", checker.addr)).await;

    let mut reports = Vec::new();
    // The health-checker first, so that it sees no service go away.
    for s in [checker, orders, pricing, inventory] {
        let _ = s.stop.send(());
        match s.thread.join() {
            Ok(report) => reports.push((s.name, report)),
            Err(_) => {
                eprintln!("demo: {} panicked", s.name);
                return ExitCode::FAILURE;
            }
        }
    }
    for (name, report) in &reports {
        println!("demo: {name} telemetry: {report}");
    }
    match collector {
        Some(c) => {
            if summarize(&c) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        None => ExitCode::SUCCESS,
    }
}

/// The health-checker's checks: the built-in default (both services'
/// health endpoints, critical), a traced inventory lookup, the SQLite
/// driver, the disk, and a port where nothing listens, so that one check
/// fails and raises a WARN.
fn demo_checks(orders_url: &str, inventory_url: &str) -> health_checker::Config {
    use health_checker::CheckConfig;
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "127.0.0.1:9".into());
    let mut config = health_checker::Config::default_for(orders_url, inventory_url);
    config.checks.extend([
        CheckConfig::http("inventory-lookup", format!("{inventory_url}/items/widget")),
        CheckConfig::database("sqlite", "sqlite::memory:"),
        CheckConfig::disk("disk", std::env::temp_dir(), 1.0),
        CheckConfig::tcp("cache", nowhere),
    ]);
    for check in &mut config.checks {
        check.interval = Duration::from_secs(2);
        check.timeout = Duration::from_secs(1);
    }
    config
}

/// Prints what the health-checker's `GET /health` answers.
async fn show_health(url: &str) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            println!("demo: health-checker GET /health -> {status} {body}");
        }
        Err(e) => println!("demo: health-checker GET /health -> error: {e}"),
    }
}

/// Logs in; the bearer token for the orders.
async fn login(client: &reqwest::Client, base: &str, user: usize) -> Result<String, String> {
    let (email, password, _) = orders_api::DEMO_USERS[user];
    let r = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({ "email": email, "password": password }))
        .send()
        .await
        .map_err(|e| format!("cannot log in: {e}"))?;
    let status = r.status().as_u16();
    let token: orders_api::Token = r
        .json()
        .await
        .map_err(|e| format!("POST /login as {email} -> {status}: {e}"))?;
    println!("  POST /login  {email:<20} -> {status} (a bearer token)");
    Ok(token.token)
}

/// The traffic: mostly good orders, and each kind of trouble now and then.
async fn drive(base: &str, duration: Duration) -> Result<(), String> {
    let client = reqwest::Client::new();
    let token = login(&client, base, 0).await?;
    let viewer = login(&client, base, 1).await?;
    let deadline = Instant::now() + duration;
    let script: [(&str, u32, Option<&str>, &str); 9] = [
        ("widget", 1, Some(&token), "an order"),
        ("widget", 1, None, "no token (401)"),
        ("gadget", 2, Some(&token), "an order"),
        ("widget", 1, Some(&viewer), "a user who may not order (403)"),
        ("unicorn", 1, Some(&token), "an unknown item (404)"),
        ("anvil", 1, Some(&token), "slow lookup, slow quote"),
        ("gizmo", 1, Some(&token), "a failing stock lookup (502)"),
        ("lever", 1, Some(&token), "a failing quote (502)"),
        ("gadget", 500, Some(&token), "more than in stock (409)"),
    ];
    let mut i = 0usize;
    while Instant::now() < deadline {
        let (sku, quantity, bearer, what) = script[i % script.len()];
        i += 1;
        let started = Instant::now();
        let mut request = client
            .post(format!("{base}/orders"))
            .json(&serde_json::json!({ "sku": sku, "quantity": quantity }));
        if let Some(t) = bearer {
            request = request.bearer_auth(t);
        }
        let result = request.send().await;
        let took = started.elapsed().as_millis();
        match result {
            Ok(r) => {
                let status = r.status().as_u16();
                let body: serde_json::Value = r.json().await.unwrap_or_default();
                if let Some(id) = body.get("id").and_then(|v| v.as_u64()) {
                    let _ = client.get(format!("{base}/orders/{id}")).send().await;
                }
                println!(
                    "  POST /orders {sku:<8} x{quantity:<4} -> {status} in {took:>4} ms  ({what})"
                );
            }
            Err(e) => println!("  POST /orders {sku:<8} -> error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Ok(())
}

/// Prints what arrived; false when the cross-service trace is missing.
fn summarize(collector: &Collector) -> bool {
    let spans = collector.spans();
    let logs = collector.logs();
    let metrics = collector.metrics();
    let service =
        |r: &otelwire_test::Attributes| r.get_str("service.name").unwrap_or("?").to_owned();
    println!("\nWhat the collector received:");
    let mut services: BTreeSet<String> = BTreeSet::new();
    services.extend(spans.iter().map(|s| service(&s.resource)));
    services.extend(logs.iter().map(|l| service(&l.resource)));
    for svc in &services {
        let n_spans = spans
            .iter()
            .filter(|s| &service(&s.resource) == svc)
            .count();
        let n_logs = logs.iter().filter(|l| &service(&l.resource) == svc).count();
        let series: BTreeSet<String> = metrics
            .iter()
            .filter(|m| &service(&m.resource) == svc)
            .map(|m| {
                let mut attrs: Vec<String> = m
                    .attributes
                    .iter()
                    .map(|(k, v)| format!("{k}={}", show(v)))
                    .collect();
                attrs.sort();
                format!("{}{{{}}}", m.name, attrs.join(","))
            })
            .collect();
        println!(
            "  {svc}: {n_spans} spans, {n_logs} log records, {} metric series",
            series.len()
        );
        for s in series.iter().filter(|s| !s.starts_with("process.")) {
            println!("      {s}");
        }
    }

    // The security events (masked), by name and outcome.
    let mut security: BTreeMap<String, usize> = BTreeMap::new();
    for l in logs
        .iter()
        .filter(|l| l.attributes.get_str("event.category") == Some("security"))
    {
        let detail = l
            .attributes
            .get_str("auth.reason")
            .or_else(|| l.attributes.get_str("auth.outcome"))
            .map(|d| format!("{{{d}}}"))
            .unwrap_or_default();
        *security
            .entry(format!("{}{detail}", l.event_name))
            .or_default() += 1;
    }
    if !security.is_empty() {
        let example = logs
            .iter()
            .filter(|l| l.event_name == "auth.permission.denied")
            .find_map(|l| l.attributes.get_str("user.email"))
            .map(|u| format!("; a refused order names its user as {u}"))
            .unwrap_or_default();
        println!(
            "\nSecurity events: {}{example}",
            security
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // The slowest order that reached inventory and pricing: the most
    // interesting trace.
    let mut by_trace: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &spans {
        by_trace.entry(s.trace_id.as_str()).or_default().push(s);
    }
    let best = by_trace
        .values()
        .filter(|t| {
            let names: BTreeSet<String> = t.iter().map(|s| service(&s.resource)).collect();
            ["orders-api", "inventory", "pricing"]
                .iter()
                .all(|n| names.contains(*n))
        })
        .max_by_key(|t| t.iter().map(|s| s.duration_nanos()).max().unwrap_or(0));
    let Some(trace) = best else {
        println!("\nNo trace crossed orders-api, inventory and pricing: something is wrong.");
        return false;
    };
    println!("\nOne trace, {}:", trace[0].trace_id);
    print_trace(trace, &service);

    // The last complete health-checker run: a run span, a span per check.
    let run = spans
        .iter()
        .filter(|s| service(&s.resource) == "health-checker" && s.name == "health_check.run")
        .max_by_key(|s| s.start_time_unix_nano);
    let Some(run) = run else {
        println!("\nNo health-checker run arrived: something is wrong.");
        return false;
    };
    let id = run.attributes.get_str("execution.id").unwrap_or("?");
    let score = run
        .attributes
        .get_f64("health.score")
        .map_or_else(|| "?".to_owned(), |s| s.to_string());
    println!("\nOne health-checker run, execution.id {id}, score {score}:");
    print_trace(&by_trace[run.trace_id.as_str()], &service);
    true
}

fn print_trace(trace: &[&Span], service: &dyn Fn(&otelwire_test::Attributes) -> String) {
    let roots: Vec<&&Span> = trace
        .iter()
        .filter(|s| {
            s.parent_span_id
                .as_ref()
                .is_none_or(|p| !trace.iter().any(|o| &o.span_id == p))
        })
        .collect();
    for root in roots {
        print_tree(root, trace, 1, service);
    }
}

fn print_tree(
    span: &Span,
    trace: &[&Span],
    depth: usize,
    service: &dyn Fn(&otelwire_test::Attributes) -> String,
) {
    let status = match span.status.code {
        otelwire_test::StatusCode::Error => "  ERROR",
        _ => "",
    };
    let check = span
        .attributes
        .get_str("check.status")
        .map(|s| format!("  {s}"))
        .unwrap_or_default();
    let kind = match span.kind {
        otelwire_test::SpanKind::Server => "server",
        otelwire_test::SpanKind::Client => "client",
        otelwire_test::SpanKind::Producer => "producer",
        otelwire_test::SpanKind::Consumer => "consumer",
        _ => "",
    };
    println!(
        "{}{:<14} {:<30} {:<6} {:>8.1} ms{}{}",
        "  ".repeat(depth),
        service(&span.resource),
        span.name,
        kind,
        span.duration_nanos() as f64 / 1e6,
        check,
        status
    );
    let mut children: Vec<&&Span> = trace
        .iter()
        .filter(|s| s.parent_span_id.as_deref() == Some(span.span_id.as_str()))
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    for c in children {
        print_tree(c, trace, depth + 1, service);
    }
}

fn show(v: &otelwire_test::Value) -> String {
    match v {
        otelwire_test::Value::String(s) => s.clone(),
        otelwire_test::Value::Int(i) => i.to_string(),
        otelwire_test::Value::Double(d) => d.to_string(),
        otelwire_test::Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}
