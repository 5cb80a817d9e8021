//! How the service misbehaves on purpose, read from the `PRICING_*`
//! environment variables.

use std::time::Duration;

/// How the service misbehaves, on purpose, so that traces have something
/// to show.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Added to every quote and to the start of every watch (`PRICING_LATENCY_MS`).
    pub latency: Duration,
    /// Share of quotes that fail with `UNAVAILABLE`, in `[0, 1]` (`PRICING_FAILURE_RATE`).
    pub failure_rate: f64,
    /// SKUs whose quote takes 600 ms more (`PRICING_SLOW_SKUS`, comma-separated).
    pub slow_skus: Vec<String>,
    /// SKUs whose quote (and watch) always fails (`PRICING_FAILING_SKUS`, comma-separated).
    pub failing_skus: Vec<String>,
}

impl Config {
    /// Reads the `PRICING_*` variables; a bad value is an error naming it.
    pub fn from_env() -> Result<Config, String> {
        Config::from_source(|k| std::env::var(k).ok())
    }

    /// Reads the `PRICING_*` variables from `var` instead of the environment.
    pub fn from_source(var: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let list = |k: &str| {
            var(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let latency = match var("PRICING_LATENCY_MS") {
            None => Duration::ZERO,
            Some(v) => Duration::from_millis(v.trim().parse().map_err(|_| {
                format!("PRICING_LATENCY_MS={v}: expected a whole number of milliseconds")
            })?),
        };
        let failure_rate = match var("PRICING_FAILURE_RATE") {
            None => 0.0,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => r,
                _ => {
                    return Err(format!(
                        "PRICING_FAILURE_RATE={v}: expected a number in [0, 1]"
                    ));
                }
            },
        };
        Ok(Config {
            latency,
            failure_rate,
            slow_skus: list("PRICING_SLOW_SKUS"),
            failing_skus: list("PRICING_FAILING_SKUS"),
        })
    }

    /// Whether the `n`-th quote (from 0) fails by [`Config::failure_rate`]:
    /// a deterministic share, every k-th quote for a rate of 1/k.
    pub fn fails_by_rate(&self, n: u64) -> bool {
        let r = self.failure_rate;
        r > 0.0 && ((n as f64 + 1.0) * r).floor() > (n as f64 * r).floor()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_source(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn reads_the_knobs_and_names_a_bad_value() {
        let c = from(&[
            ("PRICING_LATENCY_MS", "25"),
            ("PRICING_FAILURE_RATE", "0.25"),
            ("PRICING_SLOW_SKUS", "gizmo, anvil"),
            ("PRICING_FAILING_SKUS", ""),
        ])
        .unwrap();
        assert_eq!(c.latency, Duration::from_millis(25));
        assert_eq!(c.slow_skus, ["gizmo", "anvil"]);
        assert!(c.failing_skus.is_empty());
        // One quote in four fails.
        assert_eq!((0..8).filter(|&n| c.fails_by_rate(n)).count(), 2);
        let e = from(&[("PRICING_FAILURE_RATE", "2")]).unwrap_err();
        assert!(e.starts_with("PRICING_FAILURE_RATE=2:"), "{e}");
        let e = from(&[("PRICING_LATENCY_MS", "soon")]).unwrap_err();
        assert!(e.starts_with("PRICING_LATENCY_MS=soon:"), "{e}");
    }
}
