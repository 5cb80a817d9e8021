//! The otelwire-test collector as a process of its own.
//!
//! ```text
//! otelwire-test-collector [--grpc-port N] [--http-port N]
//! ```
//! Ports default to 4317 and 4318; 0 picks a free port. Prints one line per
//! endpoint (`grpc http://127.0.0.1:4317`, `http http://127.0.0.1:4318`),
//! then a summary line (`spans=N logs=N metric_points=N`) each second in
//! which something arrived; exits on end of standard input, SIGINT or SIGTERM.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use otelwire_test::Collector;

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "otelwire-test-collector: {msg}\nusage: otelwire-test-collector [--grpc-port N] [--http-port N]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let (mut grpc, mut http) = (4317u16, 4318u16);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let target = match arg.as_str() {
            "--grpc-port" => &mut grpc,
            "--http-port" => &mut http,
            "-h" | "--help" => return usage("an OTLP collector for tests"),
            other => return usage(&format!("unknown argument {other:?}")),
        };
        match args.next().and_then(|v| v.parse().ok()) {
            Some(p) => *target = p,
            None => return usage(&format!("{arg} needs a port number")),
        }
    }
    let collector = match Collector::builder().grpc_port(grpc).http_port(http).start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("otelwire-test-collector: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "grpc {}", collector.grpc_endpoint());
    let _ = writeln!(out, "http {}", collector.http_endpoint());
    let _ = out.flush();

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let on_eof = stop_tx.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = on_eof.send(());
    });
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        });
        let _ = stop_tx.send(());
    });

    let mut last = collector.requests();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(Duration::from_secs(1)) {
        let now = collector.requests();
        if now != last {
            let _ = writeln!(
                out,
                "spans={} logs={} metric_points={}",
                now.spans, now.logs, now.metric_points
            );
            let _ = out.flush();
            last = now;
        }
    }
    ExitCode::SUCCESS
}
