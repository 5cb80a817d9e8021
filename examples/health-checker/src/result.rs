//! What a check found: its status and the result kept for `/health/checks`.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// The outcome of one check run; the `check.status` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// The target answered as expected.
    Healthy,
    /// The target answered wrongly, too slowly, or not at all (a refused
    /// connection, an unexpected status, too little free space).
    Unhealthy,
    /// No answer within the check's timeout; the check was cancelled.
    Timeout,
    /// The check itself could not run (an unusable URL, a path that does
    /// not exist, a panic).
    Error,
}

impl CheckStatus {
    /// `healthy`, `unhealthy`, `timeout` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Healthy => "healthy",
            CheckStatus::Unhealthy => "unhealthy",
            CheckStatus::Timeout => "timeout",
            CheckStatus::Error => "error",
        }
    }

    /// Whether this is [`CheckStatus::Healthy`].
    pub fn is_healthy(self) -> bool {
        self == CheckStatus::Healthy
    }
}

impl std::fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one run of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// `http`, `tcp`, `database` or `disk`.
    pub kind: &'static str,
    /// Whether the check is critical.
    pub critical: bool,
    /// What it found.
    pub status: CheckStatus,
    /// How long it took (about the timeout, for a timeout).
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// What was seen, for people: `200 OK in 3 ms`, the error, the free space.
    pub detail: String,
    /// When it finished.
    #[serde(serialize_with = "rfc3339")]
    pub checked_at: SystemTime,
    /// The run it belongs to (see [`RunReport`](crate::RunReport)).
    pub execution_id: String,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

pub(crate) fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}
