//! Run with `cargo run --release -p grpc-bench -- callgrind` (needs `valgrind`: `apt-get install valgrind`); time per RPC: `cargo bench -p grpc-bench --bench unary`.
//!
//! Instructions per unary RPC on loopback (client and server in one
//! thread, the export threads included), counted by callgrind, for each
//! variant of [`grpc_bench::Variant`]: the binary runs itself under
//! `valgrind --tool=callgrind` as `grpc-bench count <variant> <n>` for two
//! numbers of calls, and divides the difference of the two totals by the
//! difference of the calls (so start-up and shutdown cancel out).
//! `--calls A,B` sets the two (default 1000,5000).

use std::process::{Command, ExitCode};

use grpc_bench::{Stack, Variant};

/// `count <variant> <n>`: a warm-up, then n calls, then shutdown.
fn count(variant: &str, n: &str) -> ExitCode {
    let (Some(variant), Ok(n)) = (Variant::from_name(variant), n.parse::<u64>()) else {
        eprintln!("grpc-bench: count <bare|otelwire_tonic|tonic_tracing_otel> <n>");
        return ExitCode::FAILURE;
    };
    let stack = Stack::start(variant);
    stack.calls(100);
    stack.calls(n);
    eprintln!("grpc-bench: {}: {}", variant.name(), stack.shutdown());
    ExitCode::SUCCESS
}

/// The instructions callgrind counted in a run of `count variant n`.
fn instructions(variant: Variant, n: u64) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(["count", variant.name(), &n.to_string()])
        .output()
        .map_err(|e| format!("cannot run valgrind ({e}): apt-get install valgrind"))?;
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| {
            l.split_once("Collected :")
                .map(|(_, v)| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no instruction count in valgrind's output:\n{text}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("count") if args.len() == 3 => return count(&args[1], &args[2]),
        Some("callgrind") => {}
        _ => {
            eprintln!("grpc-bench: callgrind [--calls A,B] | count <variant> <n>");
            return ExitCode::FAILURE;
        }
    }
    let calls = args
        .iter()
        .position(|a| a == "--calls")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.split_once(','))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .unwrap_or((1000, 5000));
    if calls.1 <= calls.0 {
        eprintln!("grpc-bench: --calls A,B needs A < B");
        return ExitCode::FAILURE;
    }
    let mut per_rpc = Vec::new();
    for variant in Variant::ALL {
        let counted =
            instructions(variant, calls.0).and_then(|a| Ok((a, instructions(variant, calls.1)?)));
        match counted {
            Ok((a, b)) => {
                let ir = b.saturating_sub(a) as f64 / (calls.1 - calls.0) as f64;
                println!("{:<20} {ir:>10.0} instructions/RPC", variant.name());
                per_rpc.push((variant, ir));
            }
            Err(e) => {
                eprintln!("grpc-bench: {}: {e}", variant.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let of = |v: Variant| {
        per_rpc
            .iter()
            .find(|(w, _)| *w == v)
            .map_or(f64::NAN, |p| p.1)
    };
    let (bare, peer) = (of(Variant::Bare), of(Variant::Peer));
    println!(
        "\n| variant | instructions / RPC | vs bare (throughput) | vs tonic-tracing-opentelemetry (throughput) |"
    );
    println!("|---|---|---|---|");
    for (variant, ir) in &per_rpc {
        println!(
            "| {} | {:.1}k | {:.2}x | {:.2}x |",
            variant.name(),
            ir / 1000.0,
            bare / ir,
            peer / ir
        );
    }
    ExitCode::SUCCESS
}
