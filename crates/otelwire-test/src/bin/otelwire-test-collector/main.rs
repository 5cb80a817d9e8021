//! The otelwire-test collector as a process of its own; `--help` says how
//! to use it, and the crate's README shows it.

mod print;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use otelwire_test::Collector;

use crate::print::{Format, Printer, What};

const HELP: &str = "\
otelwire-test-collector: an OTLP collector (gRPC and HTTP) for tests, as a process of its own

usage: otelwire-test-collector [OPTIONS]

Listens on 127.0.0.1 and prints one line per endpoint
(`grpc http://127.0.0.1:4317`, `http http://127.0.0.1:4318`), then what
arrives; runs until SIGINT (Ctrl-C) or SIGTERM and then exits 0.

options:
  --grpc-port N           the OTLP/gRPC port (default 4317; 0: a free one)
  --http-port N           the OTLP/HTTP port (default 4318; 0: a free one)
  --print WHAT            one line per item as it arrives; WHAT is spans,
                          logs and metrics, comma-separated, or all. A span
                          line has its trace id, span id, parent, service,
                          name, kind, status and duration
  --json                  the same as JSON lines (one object with a `type`
                          per line, endpoints included); without --print,
                          prints all three
  --exit-on-stdin-close   also exit (0) when standard input closes, for a
                          parent that holds a pipe to it
  -h, --help              this help

Without --print or --json, prints `spans=N logs=N metric_points=N` (the
totals so far) each second in which something arrived.
";

/// What the command line asks for.
struct Args {
    grpc_port: u16,
    http_port: u16,
    what: Option<What>,
    format: Format,
    exit_on_stdin_close: bool,
}

/// The command line could not be read, or asked for help.
enum ArgsError {
    Help,
    Usage(String),
}

fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut parsed = Args {
        grpc_port: 4317,
        http_port: 4318,
        what: None,
        format: Format::Human,
        exit_on_stdin_close: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // `--name=value` and `--name value` alike.
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| ArgsError::Usage(format!("{name} needs {what}")))
        };
        match name.as_str() {
            "-h" | "--help" => return Err(ArgsError::Help),
            "--grpc-port" | "--http-port" => {
                let v = value("a port number")?;
                let port = v.parse().map_err(|_| {
                    ArgsError::Usage(format!("{name} needs a port number, not {v:?}"))
                })?;
                if name == "--grpc-port" {
                    parsed.grpc_port = port;
                } else {
                    parsed.http_port = port;
                }
            }
            "--print" => {
                let v = value("a list such as spans,logs,metrics")?;
                parsed.what = Some(What::parse(&v).map_err(ArgsError::Usage)?);
            }
            "--json" => parsed.format = Format::Json,
            "--exit-on-stdin-close" => parsed.exit_on_stdin_close = true,
            _ => return Err(ArgsError::Usage(format!("unknown argument {arg:?}"))),
        }
    }
    if parsed.format == Format::Json && parsed.what.is_none() {
        parsed.what = Some(What::ALL);
    }
    Ok(parsed)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(ArgsError::Help) => {
            print!("{HELP}");
            let _ = std::io::stdout().flush();
            return ExitCode::SUCCESS;
        }
        Err(ArgsError::Usage(msg)) => {
            eprintln!(
                "otelwire-test-collector: {msg}\nusage: otelwire-test-collector [--grpc-port N] [--http-port N] [--print spans,logs,metrics] [--json] [--exit-on-stdin-close] (--help for more)"
            );
            return ExitCode::from(2);
        }
    };
    let collector = match Collector::builder()
        .grpc_port(args.grpc_port)
        .http_port(args.http_port)
        .start()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("otelwire-test-collector: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut printer = Printer::new(std::io::stdout().lock(), args.format, args.what);
    printer.endpoint("grpc", &collector.grpc_endpoint());
    printer.endpoint("http", &collector.http_endpoint());

    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    if args.exit_on_stdin_close {
        let on_eof = stop_tx.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = on_eof.send(());
        });
    }
    std::thread::spawn(move || {
        wait_for_signal();
        let _ = stop_tx.send(());
    });

    // Take what arrived out of the collector (so memory stays bounded over a
    // long run) and print it, until told to stop.
    let mut summary_due = std::time::Instant::now();
    while let Err(mpsc::TryRecvError::Empty) = stop_rx.try_recv() {
        let _ = collector.wait_for_requests_blocking(
            |r| r.spans + r.logs + r.metric_points > 0,
            Duration::from_millis(100),
        );
        let received = collector.drain();
        printer.received(&received);
        if args.what.is_none() && std::time::Instant::now() >= summary_due && printer.summary() {
            summary_due = std::time::Instant::now() + Duration::from_secs(1);
        }
    }
    // What arrived before the signal is still printed.
    printer.received(&collector.drain());
    if args.what.is_none() {
        printer.summary();
    }
    ExitCode::SUCCESS
}

/// Returns on SIGINT or SIGTERM (Ctrl-C elsewhere).
fn wait_for_signal() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Args, ArgsError> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn defaults_run_on_the_standard_ports_until_a_signal() {
        let a = args("").ok().unwrap();
        assert_eq!((a.grpc_port, a.http_port), (4317, 4318));
        assert!(!a.exit_on_stdin_close);
        assert!(a.what.is_none());
    }

    #[test]
    fn json_alone_prints_everything() {
        let a = args("--json --grpc-port=0").ok().unwrap();
        assert_eq!(a.what, Some(What::ALL));
        assert_eq!(a.grpc_port, 0);
    }

    #[test]
    fn a_bad_print_list_names_the_word() {
        let Err(ArgsError::Usage(msg)) = args("--print spans,traces") else {
            panic!("accepted");
        };
        assert!(msg.contains("traces"), "{msg}");
    }
}
