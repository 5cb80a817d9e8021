#![doc = include_str!("../README.md")]

mod config;
mod http;
mod metrics;
mod probe;
mod result;
mod runner;
mod score;

pub use config::{
    CONFIG_ENV, CheckConfig, CheckKind, Config, ConfigError, DEFAULT_INTERVAL, DEFAULT_TIMEOUT,
};
pub use http::router;
pub use metrics::{CHECK_DURATION, CHECK_STATUS, CHECKS, SCORE};
pub use result::{CheckResult, CheckStatus};
pub use runner::{Handle, HealthReport, OverallStatus, RunReport, spawn};
pub use score::health_score;
