//! The health score, computed as the original health monitor did.

use crate::CheckStatus;

/// The overall health score, 0 to 100, from each check's criticality and
/// last status: a critical check weighs 2 and any other 1; a healthy check
/// scores its full weight, an unhealthy one 0, and one that timed out or
/// could not run 0.3 of its weight (partial credit: the target may be fine).
/// The score is `100 × scored / total weight`, rounded to two decimals, and
/// 0 when there are no results.
///
/// ```
/// use health_checker::{CheckStatus, health_score};
/// assert_eq!(health_score([]), 0.0);
/// assert_eq!(health_score([(true, CheckStatus::Healthy), (false, CheckStatus::Unhealthy)]), 66.67);
/// ```
pub fn health_score(results: impl IntoIterator<Item = (bool, CheckStatus)>) -> f64 {
    let (mut total, mut scored) = (0.0_f64, 0.0_f64);
    for (critical, status) in results {
        let weight = if critical { 2.0 } else { 1.0 };
        total += weight;
        scored += match status {
            CheckStatus::Healthy => weight,
            CheckStatus::Unhealthy => 0.0,
            CheckStatus::Timeout | CheckStatus::Error => 0.3 * weight,
        };
    }
    if total == 0.0 {
        return 0.0;
    }
    (scored / total * 100.0 * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use CheckStatus::*;

    #[test]
    fn no_checks_score_zero() {
        assert_eq!(health_score([]), 0.0);
    }

    #[test]
    fn all_healthy_is_a_hundred_and_all_unhealthy_zero() {
        assert_eq!(health_score([(true, Healthy), (false, Healthy)]), 100.0);
        assert_eq!(health_score([(true, Unhealthy), (false, Unhealthy)]), 0.0);
    }

    #[test]
    fn timeouts_and_errors_get_three_tenths_of_their_weight() {
        assert_eq!(health_score([(false, Timeout)]), 30.0);
        assert_eq!(health_score([(true, Error)]), 30.0);
    }

    #[test]
    fn critical_checks_weigh_double() {
        // 2 of 3: the critical check is healthy, the other is not.
        assert_eq!(health_score([(true, Healthy), (false, Unhealthy)]), 66.67);
        // 1 of 3: the other way round.
        assert_eq!(health_score([(true, Unhealthy), (false, Healthy)]), 33.33);
    }

    #[test]
    fn mixed_results() {
        // Weights 2 + 1 + 2 + 1 = 6; scored 2 + 0 + 0.6 + 0.3 = 2.9.
        let results = [
            (true, Healthy),
            (false, Unhealthy),
            (true, Timeout),
            (false, Error),
        ];
        assert_eq!(health_score(results), 48.33);
    }
}
