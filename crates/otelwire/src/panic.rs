//! The panic hook: a panic becomes one ERROR log record inside the span it
//! happened in, flushed before the previous hook runs.

use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Weak;
use std::time::Duration;

use tracing::dispatcher::WeakDispatch;

use crate::telemetry::Shared;

/// The target of the panic record (kept at `error` whatever `RUST_LOG`
/// says, unless it names this target).
pub(crate) const PANIC_TARGET: &str = "otelwire::panic";

/// The longest the hook waits for the flush of its record.
pub(crate) const MAX_FLUSH: Duration = Duration::from_secs(2);

thread_local! {
    /// A panic inside the hook (in an exporter, a writer) must not run it again.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Installs the hook in front of the one in place (the standard one prints
/// the panic to standard error), which it calls afterwards. The pipeline
/// is held weakly: once the guard is gone, the hook only chains.
pub(crate) fn install(shared: Weak<Shared>, dispatch: WeakDispatch, flush_within: Duration) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_HOOK.replace(true) {
            record(info, &shared, &dispatch, flush_within);
            IN_HOOK.set(false);
        }
        previous(info);
    }));
}

fn record(
    info: &PanicHookInfo<'_>,
    shared: &Weak<Shared>,
    dispatch: &WeakDispatch,
    flush_within: Duration,
) {
    let (Some(shared), Some(dispatch)) = (shared.upgrade(), dispatch.upgrade()) else {
        return;
    };
    let message = match info.payload().downcast_ref::<&str>() {
        Some(s) => (*s).to_owned(),
        None => match info.payload().downcast_ref::<String>() {
            Some(s) => s.clone(),
            None => "Box<dyn Any>".to_owned(),
        },
    };
    // `capture` follows RUST_BACKTRACE / RUST_LIB_BACKTRACE, as the
    // standard hook does.
    let backtrace = std::backtrace::Backtrace::capture();
    let stacktrace = (backtrace.status() == std::backtrace::BacktraceStatus::Captured)
        .then(|| backtrace.to_string());
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    let (file, line, column) = info
        .location()
        .map_or(("<unknown>", 0, 0), |l| (l.file(), l.line(), l.column()));
    // The thread's current span is still entered: the record carries its
    // trace and span ids.
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::event!(
            target: PANIC_TARGET,
            tracing::Level::ERROR,
            exception.r#type = "panic",
            exception.message = %message,
            exception.stacktrace = stacktrace.as_deref(),
            code.file.path = file,
            code.line.number = line,
            code.column.number = column,
            thread.name = thread,
            "thread '{thread}' panicked at {file}:{line}:{column}: {message}"
        );
    });
    flush(&shared, flush_within);
}

/// Exports the log records queued so far and flushes the other outputs,
/// on a thread of its own: the panicking thread waits `within` at most.
fn flush(shared: &std::sync::Arc<Shared>, within: Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    let logger = shared.logger_provider.clone();
    let components = shared.pipeline.components().to_vec();
    let spawned = std::thread::Builder::new()
        .name("otelwire-panic-flush".into())
        .spawn(move || {
            if let Some(p) = &logger {
                let _ = p.force_flush();
            }
            for c in components {
                c.flush(within);
            }
            let _ = tx.send(());
        });
    if spawned.is_ok() {
        let _ = rx.recv_timeout(within);
    }
}
