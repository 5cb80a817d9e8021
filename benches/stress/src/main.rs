//! Run with `cargo run --release -p stress -- --mode up --protocol grpc --seconds 10`.
//!
//! Threads emitting spans, log records and metric updates as fast as they
//! can (or at `--rate` operations per second in total) for `--seconds`,
//! through `otelwire::builder()` (local output off), exporting over OTLP to
//! an `otelwire-test` collector running in another process (this binary
//! re-executed as `stress collector GRPC_PORT HTTP_PORT`).
//!
//! One *operation* of a load thread is: a span (`stress.operation`, two
//! fields) entered and closed, one INFO event inside it (a log record
//! through otelwire's bridge, two fields), one counter addition and one
//! histogram recording (`stress.operations`, `stress.value`, attribute
//! `worker`).
//!
//! Modes (`--mode`):
//! - `up`: the collector runs for the whole run;
//! - `down`: no collector at all (the port is closed): every export fails;
//! - `flap`: the collector is stopped for `--flap-seconds` and started
//!   again on the same ports for `--flap-seconds`, over and over; it is up
//!   for the final flush.
//!
//! Stacks (`--stack`):
//! - `otelwire` (default): `otelwire::builder()` as above;
//! - `raw`: the same load through the raw crates hand-wired with their
//!   defaults (`tracing-subscriber` registry and `EnvFilter`,
//!   `tracing-opentelemetry`, `opentelemetry-appender-tracing`, the SDK's
//!   batch processors and periodic reader, `opentelemetry-otlp`), the
//!   baseline; collector up only; nothing counted but what the collector
//!   received;
//! - `both`: the binary runs itself with `--stack otelwire`, then with
//!   `--stack raw`, the same options otherwise, and prints the ratio of
//!   spans exported per CPU-second.
//!
//! Options: `--protocol grpc|http` (default `grpc`; `http` is
//! `http/protobuf`), `--seconds N` (default 10), `--threads N` (default:
//! the number of cores), `--rate N` operations (so spans) per second in
//! total (default 0: full speed), `--flap-seconds N` (default 3),
//! `--signals traces,logs,metrics` (default all three), `--queue N` (the
//! trace and log queue size; default otelwire's, 8192), `--batch N` (spans
//! or log records per export request; default otelwire's, 512).
//!
//! It prints a line per second while running, then per signal: emitted and
//! exported items per second (per load thread and per CPU-second of the
//! process), exported vs dropped from otelwire's health counters and its
//! shutdown report, whether exported + dropped == emitted, what the
//! collector received, peak resident memory (`VmHWM`) and resident memory
//! growth over the run.

mod collector;
mod load;
mod process;
mod raw;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use otelwire::{LogFormat, Protocol, Signal};

use collector::{CollectorProcess, Received};
use load::{Emitted, Signals};

/// Metric collection interval: points flow during the run, not only at exit.
const METRIC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Flap,
}

/// Which pipeline carries the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stack {
    Otelwire,
    /// The raw crates hand-wired: the baseline.
    Raw,
    /// Both, one after the other (each in a process of its own), and the
    /// ratio.
    Both,
}

#[derive(Debug)]
struct Options {
    stack: Stack,
    mode: Mode,
    protocol: Protocol,
    seconds: u64,
    threads: usize,
    rate: u64,
    flap_seconds: u64,
    signals: Signals,
    queue: Option<usize>,
    batch: Option<usize>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut o = Options {
        stack: Stack::Otelwire,
        mode: Mode::Up,
        protocol: Protocol::Grpc,
        seconds: 10,
        threads: cores,
        rate: 0,
        flap_seconds: 3,
        signals: Signals {
            traces: true,
            logs: true,
            metrics: true,
        },
        queue: None,
        batch: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .as_str();
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value:?} is not a number"))
        };
        match flag.as_str() {
            "--stack" => {
                o.stack = match value {
                    "otelwire" => Stack::Otelwire,
                    "raw" => Stack::Raw,
                    "both" => Stack::Both,
                    _ => return Err(format!("--stack: {value:?} is not otelwire, raw or both")),
                }
            }
            "--mode" => {
                o.mode = match value {
                    "up" => Mode::Up,
                    "down" => Mode::Down,
                    "flap" => Mode::Flap,
                    _ => return Err(format!("--mode: {value:?} is not up, down or flap")),
                }
            }
            "--protocol" => {
                o.protocol = match value {
                    "grpc" => Protocol::Grpc,
                    "http" => Protocol::HttpProtobuf,
                    _ => return Err(format!("--protocol: {value:?} is not grpc or http")),
                }
            }
            "--seconds" => o.seconds = number()?.max(1),
            "--threads" => o.threads = number()?.max(1) as usize,
            "--rate" => o.rate = number()?,
            "--flap-seconds" => o.flap_seconds = number()?.max(1),
            "--queue" => o.queue = Some(number()?.max(1) as usize),
            "--batch" => o.batch = Some(number()?.max(1) as usize),
            "--signals" => {
                let list: Vec<&str> = value.split(',').map(str::trim).collect();
                for s in &list {
                    if !["traces", "logs", "metrics"].contains(s) {
                        return Err(format!("--signals: {s:?} is not traces, logs or metrics"));
                    }
                }
                o.signals = Signals {
                    traces: list.contains(&"traces"),
                    logs: list.contains(&"logs"),
                    metrics: list.contains(&"metrics"),
                };
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(o)
}

/// What the flapping did.
#[derive(Debug, Default)]
struct Flaps {
    /// What all the collector's lives received (the last one excepted).
    received: Received,
    restarts: u32,
    /// Restarts after which the exported count grew before the next stop.
    resumed: u32,
    /// Spans plus log records exported at the last restart.
    exported_at_last_restart: Option<u64>,
}

/// Spans plus log records exported so far.
fn exported(health: &otelwire::HealthSource) -> u64 {
    let h = health.health();
    h.signal(Signal::Traces).exported + h.signal(Signal::Logs).exported
}

/// Stops the collector every `period` and starts it again after `period`,
/// until `stop`; leaves it running.
fn flap(
    slot: &Mutex<Option<CollectorProcess>>,
    ports: (u16, u16),
    period: Duration,
    stop: &AtomicBool,
    health: &otelwire::HealthSource,
) -> Result<Flaps, String> {
    let mut flaps = Flaps::default();
    let wait = |d: Duration| {
        let until = Instant::now() + d;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    loop {
        wait(period);
        if stop.load(Ordering::Relaxed) {
            return Ok(flaps);
        }
        if let Some(at) = flaps.exported_at_last_restart
            && exported(health) > at
        {
            flaps.resumed += 1;
        }
        let running = slot.lock().expect("collector slot").take();
        if let Some(c) = running {
            flaps.received = flaps.received.then(c.stop()?);
            println!("  collector stopped");
        }
        wait(period);
        *slot.lock().expect("collector slot") = Some(CollectorProcess::spawn(ports.0, ports.1)?);
        flaps.restarts += 1;
        flaps.exported_at_last_restart = Some(exported(health));
        println!("  collector started");
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("collector") {
        let port = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
        return collector::serve(port(1), port(2));
    }
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("stress: {e}");
            return ExitCode::from(2);
        }
    };
    let ran = match options.stack {
        Stack::Otelwire => run(&options),
        Stack::Raw => run_raw(&options),
        Stack::Both => compare(&args),
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stress: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ports = collector::free_ports()?;
    let slot = Arc::new(Mutex::new(match o.mode {
        Mode::Down => None,
        Mode::Up | Mode::Flap => Some(CollectorProcess::spawn(ports.0, ports.1)?),
    }));
    let endpoint = match o.protocol {
        Protocol::Grpc => format!("http://127.0.0.1:{}", ports.0),
        _ => format!("http://127.0.0.1:{}", ports.1),
    };
    let mut builder = otelwire::builder()
        .env_source(|_| None)
        .service_name("stress")
        .log_format(LogFormat::None)
        .filter("info")
        .endpoint(endpoint.clone())
        .protocol(o.protocol)
        .process_metrics(false)
        .metric_export_interval(METRIC_INTERVAL)
        .traces(o.signals.traces)
        .logs(o.signals.logs)
        .metrics(o.signals.metrics);
    if let Some(q) = o.queue {
        builder = builder
            .max_queue_size(Signal::Traces, q)
            .max_queue_size(Signal::Logs, q);
    }
    if let Some(b) = o.batch {
        builder = builder
            .max_export_batch_size(Signal::Traces, b)
            .max_export_batch_size(Signal::Logs, b);
    }
    let telemetry = builder.init().map_err(|e| e.to_string())?;
    let meter = telemetry.meter("stress");

    let mode_name = match o.mode {
        Mode::Up => "up",
        Mode::Down => "down",
        Mode::Flap => "flap",
    };
    println!(
        "stress: mode {mode_name}, OTLP {} to {endpoint}, {} load threads on {cores} cores, {} s, {}, queue {}, batch {}",
        protocol_name(o.protocol),
        o.threads,
        o.seconds,
        rate_name(o.rate),
        o.queue.map_or(
            format!("{} (default)", otelwire::DEFAULT_MAX_QUEUE_SIZE),
            |q| q.to_string()
        ),
        o.batch
            .map_or("512 (default)".to_owned(), |b| b.to_string()),
    );

    let stop_flap = Arc::new(AtomicBool::new(false));
    let emitted = Arc::new(Emitted::default());
    let flapper = (o.mode == Mode::Flap).then(|| {
        let (slot, stop_flap) = (slot.clone(), stop_flap.clone());
        let period = Duration::from_secs(o.flap_seconds);
        let health = telemetry.health_source();
        std::thread::spawn(move || flap(&slot, ports, period, &stop_flap, &health))
    });
    let ran = drive(o, &meter, None, &emitted, || {
        let h = telemetry.health();
        let s = |sig| {
            let x = h.signal(sig);
            format!("{} {}/{}", sig, x.exported, x.dropped)
        };
        format!(
            "exported/dropped so far: {}, {}, {}",
            s(Signal::Traces),
            s(Signal::Logs),
            s(Signal::Metrics)
        )
    })?;
    let at_end = telemetry.health();

    // The collector must be up for the final flush in flap mode.
    let mut received = Received::default();
    let mut flaps = None;
    if let Some(f) = flapper {
        stop_flap.store(true, Ordering::Relaxed);
        let mut f = f.join().map_err(|_| "the flapping thread panicked")??;
        received = f.received;
        let mut s = slot.lock().expect("collector slot");
        if s.is_none() {
            *s = Some(CollectorProcess::spawn(ports.0, ports.1)?);
            f.restarts += 1;
            f.exported_at_last_restart = Some(exported(&telemetry.health_source()));
            println!("  collector started for the final flush");
        }
        flaps = Some(f);
    }
    let report = telemetry.shutdown_blocking();
    if let Some(f) = &mut flaps
        && let Some(at) = f.exported_at_last_restart
        && report.signal(Signal::Traces).exported + report.signal(Signal::Logs).exported > at
    {
        f.resumed += 1;
    }
    let peak_kib = process::peak_rss_kib();
    if let Some(c) = slot.lock().expect("collector slot").take() {
        received = received.then(c.stop()?);
    }

    print_results(
        o,
        &Results {
            emitted: &emitted,
            ran: &ran,
            at_end: &at_end,
            report: &report,
            received,
            peak_kib,
            flaps: flaps.map(|f| (f.restarts, f.resumed)),
        },
    );
    print_summary(
        "otelwire",
        &emitted,
        &ran,
        report.signal(Signal::Traces).exported,
        report.signal(Signal::Logs).exported,
        peak_kib,
    );
    Ok(())
}

/// What one run of the load measured, around it.
#[derive(Debug)]
struct Ran {
    elapsed: f64,
    /// CPU time of this process during the load.
    cpu_run: f64,
    rss_start: u64,
    rss_end: u64,
    /// The most of the once-a-second samples (and the end).
    rss_max: u64,
}

/// Runs the load for `o.seconds` under `dispatch` (the global dispatcher
/// when `None`), printing `status()` and the resident memory once a second.
fn drive(
    o: &Options,
    meter: &otelwire::opentelemetry::metrics::Meter,
    dispatch: Option<&tracing::Dispatch>,
    emitted: &Arc<Emitted>,
    status: impl Fn() -> String,
) -> Result<Ran, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let rss_start = process::rss_kib();
    let cpu_start = process::cpu_seconds();
    let started = Instant::now();
    let threads = load::start(
        o.threads, o.rate, o.signals, meter, dispatch, &stop, emitted,
    );
    let mut rss_max = rss_start;
    for second in 1..=o.seconds {
        let until = started + Duration::from_secs(second);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
        let rss = process::rss_kib();
        rss_max = rss_max.max(rss);
        println!(
            "  {second:>3} s  {}; RSS {:.1} MiB",
            status(),
            process::mib(rss)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a load thread panicked".to_owned())?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_run = process::cpu_seconds() - cpu_start;
    let rss_end = process::rss_kib();
    Ok(Ran {
        elapsed,
        cpu_run,
        rss_start,
        rss_end,
        rss_max: rss_max.max(rss_end),
    })
}

/// The load through the hand-wired raw crates ([`raw`]), collector up.
fn run_raw(o: &Options) -> Result<(), String> {
    if o.mode != Mode::Up {
        return Err("--stack raw runs with --mode up only".to_owned());
    }
    let ports = collector::free_ports()?;
    let collector = CollectorProcess::spawn(ports.0, ports.1)?;
    let endpoint = match o.protocol {
        Protocol::Grpc => format!("http://127.0.0.1:{}", ports.0),
        _ => format!("http://127.0.0.1:{}", ports.1),
    };
    let raw = raw::build(&raw::Settings {
        endpoint: &endpoint,
        protocol: o.protocol,
        signals: o.signals,
        queue: o.queue,
        batch: o.batch,
        metric_interval: METRIC_INTERVAL,
    })?;
    println!(
        "stress: the raw crates hand-wired (SDK defaults), OTLP {} to {endpoint}, {} load threads, {} s, {}",
        protocol_name(o.protocol),
        o.threads,
        o.seconds,
        rate_name(o.rate),
    );
    let meter = {
        use otelwire::opentelemetry::metrics::MeterProvider as _;
        raw.meters.meter("stress")
    };
    let emitted = Arc::new(Emitted::default());
    let ran = drive(o, &meter, Some(&raw.dispatch), &emitted, || {
        "(the raw crates count nothing)".to_owned()
    })?;
    let started = Instant::now();
    raw.shutdown();
    let shutdown_ms = started.elapsed().as_millis();
    let peak_kib = process::peak_rss_kib();
    let received = collector.stop()?;
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    println!(
        "\nrun: {:.2} s; the stress process used {:.2} CPU-seconds ({:.2} cores on average); the collector process {:.2} CPU-seconds; shutdown {shutdown_ms} ms",
        ran.elapsed,
        ran.cpu_run,
        ran.cpu_run / ran.elapsed,
        received.cpu_seconds
    );
    println!(
        "\n| signal | emitted by the load | emitted/s | received by the collector (exported) | exported/s | per CPU-second | lost (emitted - received) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, emitted, got) in [
        ("spans", load(&emitted.spans), received.spans),
        ("log records", load(&emitted.logs), received.logs),
    ] {
        println!(
            "| {name} | {emitted} | {:.0} | {got} | {:.0} | {:.0} | {} |",
            emitted as f64 / ran.elapsed,
            got as f64 / ran.elapsed,
            got as f64 / ran.cpu_run.max(f64::MIN_POSITIVE),
            emitted.saturating_sub(got),
        );
    }
    println!(
        "\nmemory: RSS {:.1} MiB at the start of the load, {:.1} MiB at its end, peak {:.1} MiB",
        process::mib(ran.rss_start),
        process::mib(ran.rss_end),
        process::mib(peak_kib),
    );
    print_summary(
        "raw",
        &emitted,
        &ran,
        received.spans,
        received.logs,
        peak_kib,
    );
    Ok(())
}

/// The line `--stack both` reads from each child: what was emitted and
/// exported, and the CPU the process spent.
fn print_summary(
    stack: &str,
    emitted: &Emitted,
    ran: &Ran,
    spans_exported: u64,
    logs_exported: u64,
    peak_kib: u64,
) {
    println!(
        "\nsummary stack={stack} spans_emitted={} spans_exported={spans_exported} logs_emitted={} logs_exported={logs_exported} cpu_seconds={:.3} elapsed={:.3} peak_kib={peak_kib}",
        emitted.spans.load(Ordering::Relaxed),
        emitted.logs.load(Ordering::Relaxed),
        ran.cpu_run,
        ran.elapsed,
    );
}

/// A child's summary line, parsed.
#[derive(Debug, Default, PartialEq)]
struct Summary {
    spans_emitted: u64,
    spans_exported: u64,
    logs_emitted: u64,
    logs_exported: u64,
    cpu_seconds: f64,
}

impl Summary {
    fn parse(line: &str) -> Option<Summary> {
        let rest = line.strip_prefix("summary ")?;
        let mut s = Summary::default();
        for pair in rest.split_whitespace() {
            let (k, v) = pair.split_once('=')?;
            match k {
                "spans_emitted" => s.spans_emitted = v.parse().ok()?,
                "spans_exported" => s.spans_exported = v.parse().ok()?,
                "logs_emitted" => s.logs_emitted = v.parse().ok()?,
                "logs_exported" => s.logs_exported = v.parse().ok()?,
                "cpu_seconds" => s.cpu_seconds = v.parse().ok()?,
                _ => {}
            }
        }
        Some(s)
    }

    /// Spans exported per CPU-second of the stress process.
    fn spans_per_cpu(&self) -> f64 {
        self.spans_exported as f64 / self.cpu_seconds.max(f64::MIN_POSITIVE)
    }

    /// CPU microseconds per exported span (log record included when the
    /// load made one per span).
    fn cpu_us_per_span(&self) -> f64 {
        self.cpu_seconds * 1e6 / (self.spans_exported.max(1) as f64)
    }
}

/// `--stack both`: this binary again with `--stack otelwire`, then with
/// `--stack raw`, the same options otherwise, one after the other; their
/// output is passed through, then the ratio.
fn compare(args: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
    let mut base = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--stack" {
            it.next();
        } else {
            base.push(a.clone());
        }
    }
    let mut summaries = Vec::new();
    for stack in ["otelwire", "raw"] {
        println!("\n==== --stack {stack}\n");
        let output = std::process::Command::new(&exe)
            .args(&base)
            .args(["--stack", stack])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("run {stack}: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout);
        print!("{text}");
        if !output.status.success() {
            return Err(format!("the {stack} run failed: {}", output.status));
        }
        summaries.push(
            text.lines()
                .find_map(Summary::parse)
                .ok_or_else(|| format!("the {stack} run printed no summary"))?,
        );
    }
    let (ow, raw) = (&summaries[0], &summaries[1]);
    println!("\n==== otelwire against the raw crates, same options, one after the other\n");
    println!(
        "| stack | spans emitted | spans exported | lost | log records exported | CPU-seconds | spans exported per CPU-second | CPU µs per exported span |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, s) in [("otelwire", ow), ("raw crates", raw)] {
        println!(
            "| {name} | {} | {} | {} | {} | {:.2} | {:.0} | {:.2} |",
            s.spans_emitted,
            s.spans_exported,
            s.spans_emitted.saturating_sub(s.spans_exported)
                + s.logs_emitted.saturating_sub(s.logs_exported),
            s.logs_exported,
            s.cpu_seconds,
            s.spans_per_cpu(),
            s.cpu_us_per_span(),
        );
    }
    println!(
        "\nratio, spans exported per CPU-second, otelwire / raw crates: {:.2}x",
        ow.spans_per_cpu() / raw.spans_per_cpu().max(f64::MIN_POSITIVE)
    );
    Ok(())
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Grpc => "grpc",
        _ => "http/protobuf",
    }
}

fn rate_name(rate: u64) -> String {
    if rate == 0 {
        "full speed".to_owned()
    } else {
        format!("{rate} operations/s")
    }
}

struct Results<'a> {
    emitted: &'a Emitted,
    ran: &'a Ran,
    at_end: &'a otelwire::Health,
    report: &'a otelwire::ShutdownReport,
    received: Received,
    peak_kib: u64,
    /// Collector restarts, and those after which export resumed.
    flaps: Option<(u32, u32)>,
}

fn print_results(o: &Options, r: &Results<'_>) {
    let load = |v: &std::sync::atomic::AtomicU64| v.load(Ordering::Relaxed);
    let per_s = |n: u64| n as f64 / r.ran.elapsed;
    let per_thread = |n: u64| per_s(n) / o.threads as f64;
    let per_cpu = |n: u64| {
        if r.ran.cpu_run > 0.0 {
            n as f64 / r.ran.cpu_run
        } else {
            0.0
        }
    };
    println!(
        "\nrun: {:.2} s; the stress process used {:.2} CPU-seconds ({:.2} cores on average; load threads and otelwire's export threads); the collector process(es) {:.2} CPU-seconds",
        r.ran.elapsed,
        r.ran.cpu_run,
        r.ran.cpu_run / r.ran.elapsed,
        r.received.cpu_seconds
    );
    println!(
        "\n| signal | emitted by the load | emitted/s | per load thread | per CPU-second | exported during the run | exported/s | per CPU-second | exported (final) | dropped (final) | exported + dropped | otelwire's emitted | received by the collector |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rows = [
        (
            Signal::Traces,
            "spans",
            load(&r.emitted.spans),
            r.received.spans,
        ),
        (
            Signal::Logs,
            "log records",
            load(&r.emitted.logs),
            r.received.logs,
        ),
        (
            Signal::Metrics,
            "metrics (measurements; points)",
            load(&r.emitted.measurements),
            r.received.metric_points,
        ),
    ];
    for (signal, name, emitted, received) in rows {
        let run = r.at_end.signal(signal).exported;
        let fin = r.report.signal(signal);
        println!(
            "| {name} | {emitted} | {:.0} | {:.0} | {:.0} | {run} | {:.0} | {:.0} | {} | {} | {} | {} | {received} |",
            per_s(emitted),
            per_thread(emitted),
            per_cpu(emitted),
            per_s(run),
            per_cpu(run),
            fin.exported,
            fin.dropped,
            fin.exported + fin.dropped,
            fin.emitted,
        );
    }

    println!("\naccounting:");
    let spans = r.report.signal(Signal::Traces);
    if o.signals.traces {
        let n = load(&r.emitted.spans);
        println!(
            "- spans: exported + dropped == emitted: {} ({} + {} vs {n} made by the load, {} counted by otelwire)",
            yes(spans.exported + spans.dropped == n && spans.emitted == n),
            spans.exported,
            spans.dropped,
            spans.emitted
        );
    }
    let logs = r.report.signal(Signal::Logs);
    if o.signals.logs {
        let n = load(&r.emitted.logs);
        // otelwire's own INFO line at init is a log record too.
        let own = logs.emitted.saturating_sub(n);
        println!(
            "- log records: exported + dropped == emitted: {} ({} + {} vs {n} made by the load + {own} of otelwire's own (its startup line) = {} counted by otelwire)",
            yes(logs.exported + logs.dropped == logs.emitted
                && logs.emitted == n + own
                && own <= 1),
            logs.exported,
            logs.dropped,
            logs.emitted
        );
    }
    if o.signals.metrics {
        let m = r.report.signal(Signal::Metrics);
        println!(
            "- metrics: the load made {} measurements ({} counter additions, {} histogram recordings); they are aggregated, not queued, so what is exported is data points: one cumulative point per series per collection (every {} s and at shutdown), {} of them (otelwire's own pipeline counters included), of which {} exported and {} dropped (exported + dropped == points handed to the exporter: {})",
            load(&r.emitted.measurements),
            load(&r.emitted.counter_adds),
            load(&r.emitted.histogram_records),
            METRIC_INTERVAL.as_secs(),
            m.emitted,
            m.exported,
            m.dropped,
            yes(m.exported + m.dropped == m.emitted),
        );
        if o.mode != Mode::Down {
            println!(
                "- metrics: no measurement lost in aggregation: the last points received add up to what the load made: counter {} of {} ({}), histogram count {} of {} ({})",
                r.received.counter_total,
                load(&r.emitted.counter_adds),
                yes(r.received.counter_total == load(&r.emitted.counter_adds)),
                r.received.histogram_count,
                load(&r.emitted.histogram_records),
                yes(r.received.histogram_count == load(&r.emitted.histogram_records)),
            );
        }
    }
    if o.mode != Mode::Down {
        println!(
            "- the collector received {} spans and {} log records; otelwire counted {} and {} exported (a batch the collector stored but whose answer was lost to a stop counts as dropped, not exported)",
            r.received.spans, r.received.logs, spans.exported, logs.exported
        );
    }
    println!(
        "- shutdown: {} in {} ms",
        if r.report.completed {
            "completed"
        } else {
            "deadline reached"
        },
        r.report.elapsed.as_millis()
    );

    let growth_peak = r.peak_kib.saturating_sub(r.ran.rss_start);
    println!(
        "\nmemory: RSS {:.1} MiB at the start of the load, {:.1} MiB at its end (growth {:.1} MiB), {:.1} MiB at most in the once-a-second samples; peak (VmHWM, whole process life, shutdown included) {:.1} MiB, {:.1} MiB above the start",
        process::mib(r.ran.rss_start),
        process::mib(r.ran.rss_end),
        process::mib(r.ran.rss_end.saturating_sub(r.ran.rss_start)),
        process::mib(r.ran.rss_max),
        process::mib(r.peak_kib),
        process::mib(growth_peak),
    );

    println!("\ntargets:");
    let full_speed = o.rate == 0;
    match o.mode {
        Mode::Up if full_speed && o.signals.traces => {
            let v = per_cpu(r.at_end.signal(Signal::Traces).exported);
            println!(
                "- >= 300,000 spans/s per core exported, collector up: {v:.0} spans exported per CPU-second of the stress process (CPU spent on spans dropped at the full queue included; {:.0} per load thread): {}",
                per_thread(r.at_end.signal(Signal::Traces).exported),
                met(v >= 300_000.0)
            );
        }
        Mode::Up => {
            let dropped = r.report.dropped();
            println!(
                "- 0 drops at {} spans/s: {dropped} dropped in all: {}",
                o.rate,
                met(dropped == 0)
            );
        }
        Mode::Down => {
            println!(
                "- collector down, RSS growth <= 64 MiB: {:.1} MiB (peak above the start): {}",
                process::mib(growth_peak),
                met(growth_peak <= 64 * 1024)
            );
            let exact = (!o.signals.traces
                || (spans.exported == 0 && spans.dropped == load(&r.emitted.spans)))
                && (!o.signals.logs || (logs.exported == 0 && logs.dropped == logs.emitted))
                && r.report.signal(Signal::Metrics).exported == 0;
            println!(
                "- drops counted exactly (nothing exported, every span and log record dropped and counted): {}",
                met(exact)
            );
        }
        Mode::Flap => {
            let (restarts, resumed) = r.flaps.unwrap_or_default();
            println!(
                "- (no numeric target) export resumed after every restart of the collector: {resumed} of {restarts}: {}",
                yes(restarts > 0 && resumed == restarts)
            );
        }
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

fn met(b: bool) -> &'static str {
    if b { "met" } else { "NOT met" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_parse_and_bad_values_are_named() {
        let o = parse(&args(
            "--mode flap --protocol http --rate 50000 --signals traces,metrics",
        ))
        .unwrap();
        assert_eq!(o.mode, Mode::Flap);
        assert_eq!(o.protocol, Protocol::HttpProtobuf);
        assert_eq!(o.rate, 50_000);
        assert!(o.signals.traces && !o.signals.logs && o.signals.metrics);
        assert_eq!(
            parse(&args("--mode sideways")).unwrap_err(),
            "--mode: \"sideways\" is not up, down or flap"
        );
        assert_eq!(
            parse(&args("--seconds")).unwrap_err(),
            "--seconds needs a value"
        );
        assert_eq!(o.stack, Stack::Otelwire);
        assert_eq!(parse(&args("--stack both")).unwrap().stack, Stack::Both);
        assert_eq!(
            parse(&args("--stack bare")).unwrap_err(),
            "--stack: \"bare\" is not otelwire, raw or both"
        );
    }

    #[test]
    fn the_summary_line_round_trips() {
        let line = "summary stack=raw spans_emitted=10 spans_exported=8 logs_emitted=10 logs_exported=9 cpu_seconds=0.004 elapsed=1.000 peak_kib=5";
        let s = Summary::parse(line).unwrap();
        assert_eq!(
            s,
            Summary {
                spans_emitted: 10,
                spans_exported: 8,
                logs_emitted: 10,
                logs_exported: 9,
                cpu_seconds: 0.004,
            }
        );
        assert_eq!(s.spans_per_cpu().round(), 2000.0);
        assert_eq!(s.cpu_us_per_span(), 500.0);
        assert_eq!(Summary::parse("  1 s  exported"), None);
        assert_eq!(Summary::parse("summary spans_exported=x"), None);
    }
}
