//! How much of a query is shown, and when a query is slow.

use std::fmt;
use std::time::Duration;

/// How `db.query.text` is recorded (`OTELWIRE_SQLX_QUERY_TEXT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryText {
    /// The text as written, literals included. Only for queries that never
    /// inline a value (sqlx binds parameters, so most do not).
    Full,
    /// String and number literals replaced by `?`, comments removed (the
    /// default).
    #[default]
    Sanitized,
    /// No `db.query.text` at all; spans keep the operation and collection.
    Off,
}

impl QueryText {
    /// The spelling accepted by `OTELWIRE_SQLX_QUERY_TEXT`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueryText::Full => "full",
            QueryText::Sanitized => "sanitized",
            QueryText::Off => "off",
        }
    }

    fn parse(var: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(QueryText::Full),
            "sanitized" | "sanitised" => Ok(QueryText::Sanitized),
            "off" | "none" => Ok(QueryText::Off),
            _ => Err(ConfigError::new(var, value, "full, sanitized or off")),
        }
    }
}

impl fmt::Display for QueryText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The variable that chooses [`QueryText`].
pub const QUERY_TEXT_VAR: &str = "OTELWIRE_SQLX_QUERY_TEXT";
/// The variable that sets the slow-query threshold, in milliseconds.
pub const SLOW_QUERY_VAR: &str = "OTELWIRE_SQLX_SLOW_QUERY_MS";
/// The slow-query threshold when nothing sets it.
pub const DEFAULT_SLOW_QUERY: Duration = Duration::from_millis(500);

/// An environment variable holds a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable, for example `OTELWIRE_SQLX_SLOW_QUERY_MS`.
    pub var: String,
    /// The value found.
    pub value: String,
    /// What would have been accepted.
    pub expected: &'static str,
}

impl ConfigError {
    fn new(var: &str, value: &str, expected: &'static str) -> Self {
        ConfigError {
            var: var.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }
}

impl std::error::Error for ConfigError {}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}: expected {}", self.var, self.value, self.expected)
    }
}

/// The settings resolved from code, then the environment, then defaults.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) query_text: QueryText,
    pub(crate) slow_query: Option<Duration>,
}

pub(crate) fn resolve(
    query_text: Option<QueryText>,
    slow_query: Option<Option<Duration>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let query_text = match query_text {
        Some(q) => q,
        None => match env(QUERY_TEXT_VAR) {
            Some(v) => QueryText::parse(QUERY_TEXT_VAR, &v)?,
            None => QueryText::default(),
        },
    };
    let slow_query = match slow_query {
        Some(s) => s,
        None => match env(SLOW_QUERY_VAR) {
            Some(v) => match v.trim() {
                "off" | "none" => None,
                t => Some(Duration::from_millis(t.parse::<u64>().map_err(|_| {
                    ConfigError::new(SLOW_QUERY_VAR, &v, "a whole number of milliseconds, or off")
                })?)),
            },
            None => Some(DEFAULT_SLOW_QUERY),
        },
    };
    Ok(Settings {
        query_text,
        slow_query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_wins_then_env_then_default() {
        let env = |k: &str| match k {
            QUERY_TEXT_VAR => Some("FULL".to_owned()),
            SLOW_QUERY_VAR => Some("20".to_owned()),
            _ => None,
        };
        let s = resolve(None, None, &env).unwrap();
        assert_eq!(s.query_text, QueryText::Full);
        assert_eq!(s.slow_query, Some(Duration::from_millis(20)));
        let s = resolve(Some(QueryText::Off), Some(None), &env).unwrap();
        assert_eq!(s.query_text, QueryText::Off);
        assert_eq!(s.slow_query, None);
        let s = resolve(None, None, &|_| None).unwrap();
        assert_eq!(s.query_text, QueryText::Sanitized);
        assert_eq!(s.slow_query, Some(DEFAULT_SLOW_QUERY));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = resolve(None, None, &|k| {
            (k == SLOW_QUERY_VAR).then(|| "soon".into())
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OTELWIRE_SQLX_SLOW_QUERY_MS=soon: expected a whole number of milliseconds, or off"
        );
        let err = resolve(None, None, &|k| {
            (k == QUERY_TEXT_VAR).then(|| "some".into())
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("OTELWIRE_SQLX_QUERY_TEXT=some"));
    }
}
