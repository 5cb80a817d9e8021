//! Run with `cargo run --release -p http-bench` (needs `wrk`: `apt-get install wrk`).
//!
//! Requests per second of an axum hello-world on loopback, same run, same
//! load generator (`wrk -t1 -c16`), each server in a process of its own on
//! one tokio worker:
//! - `bare`: no instrumentation;
//! - `otelwire_noop`: `otelwire-axum`'s `OtelLayer` with no-op exporters;
//! - `otelwire_otlp`: the same exporting over OTLP/HTTP to an
//!   `otelwire-test` collector in the bench's own process;
//! - `axum_tracing_otel`: axum-tracing-opentelemetry 0.42 (`OtelAxumLayer`
//!   + `OtelInResponseLayer`) with tracing-opentelemetry and a no-op exporter.
//!
//! Every instrumented variant uses the same batch settings (queue 65,536,
//! 100 ms delay). Options: `--seconds N` per measurement (default 5),
//! `--rounds N` (default 2, variants interleaved).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use otelwire::opentelemetry::trace::TracerProvider as _;
use otelwire::{LogFormat, Signal};
use otelwire_test::noop::{NoopLogs, NoopMetrics, NoopSpans};
use tracing_subscriber::layer::SubscriberExt;

const VARIANTS: [&str; 4] = [
    "bare",
    "otelwire_noop",
    "otelwire_otlp",
    "axum_tracing_otel",
];
const QUEUE: usize = 1 << 16;
const DELAY: Duration = Duration::from_millis(100);

fn hello() -> Router {
    Router::new().route("/hello/{name}", get(|| async { "hello" }))
}

fn otelwire_builder() -> otelwire::Builder {
    otelwire::builder()
        .env_source(|_| None)
        .service_name("http-bench")
        .log_format(LogFormat::None)
        .process_metrics(false)
        .max_queue_size(Signal::Traces, QUEUE)
        .max_queue_size(Signal::Logs, QUEUE)
        .scheduled_delay(Signal::Traces, DELAY)
        .scheduled_delay(Signal::Logs, DELAY)
}

/// Child mode: serve one variant, print the port, exit when stdin closes.
fn serve(variant: &str, endpoint: Option<String>) -> ExitCode {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let mut telemetry = None;
    let mut providers = None;
    let app = match variant {
        "bare" => hello(),
        "otelwire_noop" | "otelwire_otlp" => {
            let b = if variant == "otelwire_noop" {
                otelwire_builder()
                    .span_exporter(NoopSpans)
                    .log_exporter(NoopLogs)
                    .metric_exporter(NoopMetrics)
            } else {
                otelwire_builder().endpoint(endpoint.unwrap_or_default())
            };
            let t = b.init().expect("otelwire init");
            let app =
                hello().layer(otelwire_axum::OtelLayer::new().meter(t.meter("otelwire-axum")));
            telemetry = Some(t);
            app
        }
        "axum_tracing_otel" => {
            let processor =
                otelwire::opentelemetry_sdk::trace::BatchSpanProcessor::builder(NoopSpans)
                    .with_batch_config(
                        otelwire::opentelemetry_sdk::trace::BatchConfigBuilder::default()
                            .with_max_queue_size(QUEUE)
                            .with_scheduled_delay(DELAY)
                            .build(),
                    )
                    .build();
            let provider = otelwire::opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(processor)
                .build();
            otelwire::opentelemetry::global::set_tracer_provider(provider.clone());
            otelwire::opentelemetry::global::set_text_map_propagator(
                otelwire::opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            let subscriber = tracing_subscriber::registry().with(
                otelwire::tracing_opentelemetry::layer().with_tracer(provider.tracer("http-bench")),
            );
            tracing::subscriber::set_global_default(subscriber).expect("subscriber");
            providers = Some(provider);
            hello()
                .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
                .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default())
        }
        other => {
            eprintln!("http-bench: unknown variant {other}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("port {}", listener.local_addr().expect("addr").port());
        let _ = std::io::stdout().flush();
        let stop = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        });
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
    });
    if let Some(t) = telemetry {
        t.shutdown_blocking();
    }
    if let Some(p) = providers {
        let _ = p.shutdown();
    }
    ExitCode::SUCCESS
}

/// Requests per second from wrk's output.
fn wrk(port: u16, seconds: u64) -> Result<f64, String> {
    let out = Command::new("wrk")
        .args(["-t1", "-c16", &format!("-d{seconds}s")])
        .arg(format!("http://127.0.0.1:{port}/hello/world"))
        .output()
        .map_err(|e| format!("cannot run wrk ({e}): apt-get install wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("unexpected wrk output:\n{text}"))
}

fn measure(variant: &str, endpoint: &str, seconds: u64) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["serve", variant, endpoint])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port: u16 = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{variant} did not start: {line:?}"))?;
    // Warm up, then measure.
    let _ = wrk(port, 1);
    let result = wrk(port, seconds);
    drop(child.stdin.take());
    let _ = child.wait();
    result
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1], args.get(2).cloned());
    }
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seconds, rounds) = (arg("--seconds", 5), arg("--rounds", 2));
    let collector = match otelwire_test::Collector::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("http-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let endpoint = collector.http_endpoint();
    let mut results: Vec<(&str, Vec<f64>)> = VARIANTS.iter().map(|v| (*v, Vec::new())).collect();
    for round in 1..=rounds {
        for (variant, rps) in results.iter_mut() {
            match measure(variant, &endpoint, seconds) {
                Ok(r) => {
                    println!("round {round}: {variant:<20} {r:>10.0} req/s");
                    rps.push(r);
                }
                Err(e) => {
                    eprintln!("http-bench: {variant}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        collector.clear();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let bare = mean(&results[0].1);
    let atot = mean(&results[3].1);
    println!("\n| variant | req/s (mean of {rounds}) | vs bare | vs axum-tracing-opentelemetry |");
    println!("|---|---|---|---|");
    for (variant, rps) in &results {
        let m = mean(rps);
        println!(
            "| {variant} | {m:.0} | {:.2}x | {:.2}x |",
            m / bare,
            m / atot
        );
    }
    ExitCode::SUCCESS
}
