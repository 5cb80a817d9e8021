//! The worker: runs the checks when they fall due, each run a span with an
//! `execution.id`, each check a child span; keeps the last results.

use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use otelwire::opentelemetry::trace::TraceContextExt;
use otelwire::tracing_opentelemetry::OpenTelemetrySpanExt;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::field::Empty;
use tracing::instrument::WithSubscriber;
use tracing::{Instrument, Span};

use crate::metrics::Instruments;
use crate::probe::{self, Client, Outcome};
use crate::result::rfc3339;
use crate::{CheckConfig, CheckResult, CheckStatus, Config, health_score};

/// A running health-checker: ask it for a run, read its results, stop it.
/// Clones share the same worker. Dropping every handle leaves the worker
/// running until its tokio runtime shuts down; [`stop`](Self::stop) ends
/// it sooner.
#[derive(Debug, Clone)]
pub struct Handle {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

#[derive(Debug)]
enum Command {
    RunNow(oneshot::Sender<RunReport>),
    Stop(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Shared {
    config: Config,
    client: Client,
    instruments: Instruments,
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last result of each check, in configuration order.
    last: Vec<Option<CheckResult>>,
    /// The last run.
    run: Option<RunInfo>,
}

#[derive(Debug, Clone)]
struct RunInfo {
    execution_id: String,
    trace_id: Option<String>,
    finished_at: SystemTime,
}

/// What one run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run's id, `exec_{unix seconds}_{8 hex digits}`: the
    /// `execution.id` attribute of the run span and its check spans.
    pub execution_id: String,
    /// The trace of the run (32 hex digits), when traces are recorded.
    pub trace_id: Option<String>,
    /// The results of the checks that ran.
    pub results: Vec<CheckResult>,
    /// The score over every check's last result after this run.
    pub score: f64,
}

/// The aggregate state, as `GET /health` serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// See [`OverallStatus`].
    pub status: OverallStatus,
    /// The [score](crate::health_score) over every check's last result;
    /// `None` before the first result.
    pub score: Option<f64>,
    /// How many checks are configured.
    pub checks: usize,
    /// How many of them were healthy last time.
    pub healthy: usize,
    /// The checks whose last result was not healthy.
    pub failing: Vec<String>,
    /// The critical ones among them.
    pub critical_failing: Vec<String>,
    /// The last run's id.
    pub execution_id: Option<String>,
    /// The last run's trace.
    pub trace_id: Option<String>,
    /// When the last run finished.
    #[serde(serialize_with = "rfc3339_opt")]
    pub checked_at: Option<SystemTime>,
}

/// The state of the whole system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverallStatus {
    /// Some check has no result yet, and none has failed.
    Starting,
    /// Every check was healthy last time.
    Healthy,
    /// A non-critical check failed; every critical one is healthy.
    Degraded,
    /// A critical check failed: `GET /health` answers 503.
    Unhealthy,
}

impl HealthReport {
    /// 503 when a critical check failed, else 200.
    pub fn http_status(&self) -> u16 {
        if self.status == OverallStatus::Unhealthy {
            503
        } else {
            200
        }
    }
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Starts the health-checker on the current tokio runtime: every check
/// runs at once, then each again after its interval. Spans, metrics and
/// log records go to `telemetry` (its [dispatch](otelwire::Telemetry::dispatch)
/// is used for the worker, whatever the thread's default).
///
/// The configuration is used as given: call [`Config::validate`] first for
/// configuration made in code (what a file gives is validated already). A
/// check that cannot run, such as one with an unusable URL, reports
/// `error`.
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn(telemetry: &otelwire::Telemetry, config: Config) -> Handle {
    let n = config.checks.len();
    let shared = Arc::new(Shared {
        client: probe::client(telemetry),
        instruments: Instruments::new(&telemetry.meter("health-checker")),
        state: RwLock::new(State {
            last: vec![None; n],
            run: None,
        }),
        config,
    });
    let (tx, rx) = mpsc::channel(16);
    let dispatch = telemetry.dispatch().clone();
    tokio::spawn(schedule(shared.clone(), rx, dispatch.clone()).with_subscriber(dispatch));
    Handle {
        shared,
        commands: tx,
    }
}

impl Handle {
    /// Runs every check now (after the run in progress, if any) and
    /// returns what it found; `None` when the worker has stopped.
    pub async fn run_now(&self) -> Option<RunReport> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::RunNow(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Stops the worker after the run in progress, if any, and waits for it.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The last result of each check that has run, in configuration order.
    pub fn results(&self) -> Vec<CheckResult> {
        let state = self.shared.read();
        state.last.iter().flatten().cloned().collect()
    }

    /// The names of the checks that have not run yet.
    pub fn pending(&self) -> Vec<String> {
        let state = self.shared.read();
        self.shared
            .config
            .checks
            .iter()
            .zip(&state.last)
            .filter(|(_, r)| r.is_none())
            .map(|(c, _)| c.name.clone())
            .collect()
    }

    /// The aggregate state now.
    pub fn report(&self) -> HealthReport {
        let state = self.shared.read();
        let results: Vec<&CheckResult> = state.last.iter().flatten().collect();
        let failing: Vec<&CheckResult> = results
            .iter()
            .copied()
            .filter(|r| !r.status.is_healthy())
            .collect();
        let critical_failing: Vec<String> = failing
            .iter()
            .filter(|r| r.critical)
            .map(|r| r.name.clone())
            .collect();
        let status = if !critical_failing.is_empty() {
            OverallStatus::Unhealthy
        } else if !failing.is_empty() {
            OverallStatus::Degraded
        } else if results.len() < state.last.len() {
            OverallStatus::Starting
        } else {
            OverallStatus::Healthy
        };
        HealthReport {
            status,
            score: (!results.is_empty()).then(|| score_of(&results)),
            checks: state.last.len(),
            healthy: results.len() - failing.len(),
            failing: failing.iter().map(|r| r.name.clone()).collect(),
            critical_failing,
            execution_id: state.run.as_ref().map(|r| r.execution_id.clone()),
            trace_id: state.run.as_ref().and_then(|r| r.trace_id.clone()),
            checked_at: state.run.as_ref().map(|r| r.finished_at),
        }
    }
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn score_of(results: &[&CheckResult]) -> f64 {
    health_score(results.iter().map(|r| (r.critical, r.status)))
}

/// The worker loop: sleeps until the next check falls due, runs every check
/// due by then together, and serves commands in between. Runs never overlap.
async fn schedule(
    shared: Arc<Shared>,
    mut commands: mpsc::Receiver<Command>,
    dispatch: tracing::Dispatch,
) {
    let checks = &shared.config.checks;
    let start = tokio::time::Instant::now();
    let mut next_due = vec![start; checks.len()];
    let mut handles_alive = true;
    loop {
        let wake = next_due.iter().min().copied();
        tokio::select! {
            // Commands first: a run asked for when checks fall due serves both.
            biased;
            command = commands.recv(), if handles_alive => match command {
                Some(Command::RunNow(reply)) => {
                    let now = tokio::time::Instant::now();
                    for (due, check) in next_due.iter_mut().zip(checks) {
                        *due = now + check.interval;
                    }
                    let all: Vec<usize> = (0..checks.len()).collect();
                    let _ = reply.send(run(&shared, &all, &dispatch).await);
                }
                Some(Command::Stop(ack)) => {
                    tracing::info!("health-checker stopped");
                    let _ = ack.send(());
                    return;
                }
                None => handles_alive = false,
            },
            () = sleep_until(wake) => {
                let now = tokio::time::Instant::now();
                let due: Vec<usize> = (0..checks.len()).filter(|&i| next_due[i] <= now).collect();
                for &i in &due {
                    // Missed ticks are skipped, not made up for.
                    let next = next_due[i] + checks[i].interval;
                    next_due[i] = if next > now { next } else { now + checks[i].interval };
                }
                run(&shared, &due, &dispatch).await;
            }
        }
    }
}

async fn sleep_until(when: Option<tokio::time::Instant>) {
    match when {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One run: the checks `which`, concurrently, under one run span.
async fn run(shared: &Arc<Shared>, which: &[usize], dispatch: &tracing::Dispatch) -> RunReport {
    let execution_id = new_execution_id();
    let run_span = tracing::info_span!(
        "health_check.run",
        execution.id = %execution_id,
        checks.total = which.len() as i64,
        checks.failed = Empty,
        health.score = Empty,
        otel.status_code = Empty,
    );
    let trace_id = Some(run_span.context().span().span_context().trace_id())
        .filter(|t| *t != otelwire::opentelemetry::trace::TraceId::INVALID)
        .map(|t| t.to_string());

    let mut tasks = Vec::with_capacity(which.len());
    for &i in which {
        let check = &shared.config.checks[i];
        let span = tracing::info_span!(
            parent: &run_span,
            "health_check",
            otel.name = %format!("health_check {}", check.name),
            otel.status_code = Empty,
            otel.status_description = Empty,
            execution.id = %execution_id,
            check.name = %check.name,
            check.kind = check.kind.name(),
            check.critical = check.critical,
            check.timeout_ms = check.timeout.as_millis() as i64,
            check.status = Empty,
            check.detail = Empty,
        );
        let (shared, execution_id) = (shared.clone(), execution_id.clone());
        // The spans must end while this pipeline is the default dispatcher
        // (inside the task's poll): closing a child span releases its parent
        // through the default dispatcher, and the run span would never end.
        let task = async move { run_check(shared, i, execution_id).instrument(span).await }
            .with_subscriber(dispatch.clone());
        tasks.push((i, tokio::spawn(task)));
    }
    let mut results = Vec::with_capacity(tasks.len());
    for (i, task) in tasks {
        let result = match task.await {
            Ok(r) => r,
            Err(e) => {
                // A panicking probe: report it, keep the worker going.
                let check = &shared.config.checks[i];
                let r = result_of(
                    check,
                    Outcome {
                        status: CheckStatus::Error,
                        detail: format!("the check failed to run: {e}"),
                    },
                    Default::default(),
                    &execution_id,
                );
                shared.instruments.check(&r);
                run_span.in_scope(|| alert(&r));
                r
            }
        };
        results.push((i, result));
    }

    let score = {
        let mut state = shared.state.write().unwrap_or_else(|e| e.into_inner());
        for (i, r) in &results {
            state.last[*i] = Some(r.clone());
        }
        state.run = Some(RunInfo {
            execution_id: execution_id.clone(),
            trace_id: trace_id.clone(),
            finished_at: SystemTime::now(),
        });
        let last: Vec<&CheckResult> = state.last.iter().flatten().collect();
        score_of(&last)
    };
    shared.instruments.score(score);
    let results: Vec<CheckResult> = results.into_iter().map(|(_, r)| r).collect();
    let failed = results.iter().filter(|r| !r.status.is_healthy()).count();
    run_span.record("checks.failed", failed as i64);
    run_span.record("health.score", score);
    if results.iter().any(|r| r.critical && !r.status.is_healthy()) {
        run_span.record("otel.status_code", "error");
    }
    run_span.in_scope(|| {
        tracing::info!(
            execution.id = %execution_id,
            checks.total = results.len() as i64,
            checks.failed = failed as i64,
            health.score = score,
            "health check run {execution_id}: {failed} of {} failed, score {score}",
            results.len()
        )
    });
    RunReport {
        execution_id,
        trace_id,
        results,
        score,
    }
}

/// One check, inside its span: probe under the timeout, then record.
async fn run_check(shared: Arc<Shared>, index: usize, execution_id: String) -> CheckResult {
    let check = &shared.config.checks[index];
    let started = Instant::now();
    let outcome = match tokio::time::timeout(
        check.timeout,
        probe::probe(&check.kind, &shared.client),
    )
    .await
    {
        Ok(outcome) => outcome,
        // The probe future is dropped here: its connection is closed.
        Err(_) => Outcome {
            status: CheckStatus::Timeout,
            detail: format!(
                "no answer within {}",
                humantime::format_duration(check.timeout)
            ),
        },
    };
    let result = result_of(check, outcome, started.elapsed(), &execution_id);
    let span = Span::current();
    span.record("check.status", result.status.as_str());
    span.record("check.detail", result.detail.as_str());
    if !result.status.is_healthy() {
        span.record("otel.status_code", "error");
        span.record(
            "otel.status_description",
            format!("{}: {}", result.status, result.detail).as_str(),
        );
    }
    shared.instruments.check(&result);
    alert(&result);
    result
}

fn result_of(
    check: &CheckConfig,
    outcome: Outcome,
    duration: std::time::Duration,
    execution_id: &str,
) -> CheckResult {
    CheckResult {
        name: check.name.clone(),
        kind: check.kind.name(),
        critical: check.critical,
        status: outcome.status,
        duration,
        detail: outcome.detail,
        checked_at: SystemTime::now(),
        execution_id: execution_id.to_owned(),
    }
}

/// The log line of a result: DEBUG when healthy, WARN when a non-critical
/// check failed, ERROR when a critical one did (these reach the alerts).
fn alert(r: &CheckResult) {
    let duration_ms = r.duration.as_secs_f64() * 1e3;
    macro_rules! event {
        ($level:expr, $($message:tt)+) => {
            tracing::event!(
                $level,
                check.name = %r.name,
                check.kind = r.kind,
                check.critical = r.critical,
                check.status = r.status.as_str(),
                check.detail = %r.detail,
                duration_ms,
                execution.id = %r.execution_id,
                $($message)+
            )
        };
    }
    match (r.status, r.critical) {
        (CheckStatus::Healthy, _) => {
            event!(tracing::Level::DEBUG, "health check {} passed", r.name)
        }
        (_, true) => event!(
            tracing::Level::ERROR,
            "critical health check {} is {}: {}",
            r.name,
            r.status,
            r.detail
        ),
        (_, false) => event!(
            tracing::Level::WARN,
            "health check {} is {}: {}",
            r.name,
            r.status,
            r.detail
        ),
    }
}

/// `exec_{unix seconds}_{8 hex digits}`, the shape the original used.
fn new_execution_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    // RandomState is randomly keyed per process; the counter tells runs apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(RUNS.fetch_add(1, Ordering::Relaxed));
    h.write_u128(now.as_nanos());
    format!("exec_{}_{:08x}", now.as_secs(), h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_have_the_original_shape_and_differ() {
        let a = new_execution_id();
        let b = new_execution_id();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('_').collect();
        assert_eq!(parts.len(), 3, "{a}");
        assert_eq!(parts[0], "exec");
        assert!(parts[1].parse::<u64>().unwrap() > 1_700_000_000, "{a}");
        assert_eq!(parts[2].len(), 8);
        assert!(parts[2].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }
}
