//! The checks to run: built in, given in code, or read from a TOML file.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The variable naming the TOML file to read the checks from.
pub const CONFIG_ENV: &str = "HEALTH_CHECKER_CONFIG";

/// How long a check may take when its configuration does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a check runs when its configuration does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// The checks to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// In the order they are reported.
    pub checks: Vec<CheckConfig>,
}

/// One named check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    /// Unique; the `check.name` of its spans, metrics and log records.
    pub name: String,
    /// A failing critical check weighs double in the score and makes
    /// `GET /health` answer 503.
    pub critical: bool,
    /// After this long the check is cancelled and reported as `timeout`.
    pub timeout: Duration,
    /// Time between two runs of the check.
    pub interval: Duration,
    /// What is checked.
    pub kind: CheckKind,
}

/// What a check probes, and when the answer counts as healthy.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `GET url` through `otelwire-reqwest` (a client span that propagates
    /// the trace); healthy when the status is expected and the answer came
    /// within `max_latency`.
    Http {
        /// An `http` or `https` URL.
        url: String,
        /// The statuses that count as healthy; empty means any 2xx.
        expect_status: Vec<u16>,
        /// Slower answers are unhealthy; `None`: only the timeout applies.
        max_latency: Option<Duration>,
    },
    /// A TCP connection to `host:port`; healthy when it is accepted.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// Connects to the database and runs `SELECT 1` (SQLite, through sqlx).
    Database {
        /// A `sqlite:` URL, for example `sqlite://data/app.db?mode=ro`
        /// (a missing file is unhealthy: it is never created).
        url: String,
    },
    /// The space available to unprivileged users on the file system
    /// holding `path`; healthy when above both thresholds that are set.
    Disk {
        /// Any path on the file system to watch.
        path: PathBuf,
        /// Unhealthy below this many MiB available.
        min_free_mb: Option<u64>,
        /// Unhealthy below this percentage of the file system available.
        min_free_percent: Option<f64>,
    },
}

impl CheckKind {
    /// `http`, `tcp`, `database` or `disk`: the `kind` key of the file and
    /// the `check.kind` span attribute.
    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Database { .. } => "database",
            CheckKind::Disk { .. } => "disk",
        }
    }
}

impl CheckConfig {
    /// A non-critical check with the default timeout and interval.
    pub fn new(name: impl Into<String>, kind: CheckKind) -> Self {
        CheckConfig {
            name: name.into(),
            critical: false,
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
            kind,
        }
    }

    /// An HTTP check that expects any 2xx status.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(
            name,
            CheckKind::Http {
                url: url.into(),
                expect_status: Vec::new(),
                max_latency: None,
            },
        )
    }

    /// A TCP connect check of `host:port`.
    pub fn tcp(name: impl Into<String>, address: impl Into<String>) -> Self {
        Self::new(
            name,
            CheckKind::Tcp {
                address: address.into(),
            },
        )
    }

    /// A database ping of a `sqlite:` URL.
    pub fn database(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(name, CheckKind::Database { url: url.into() })
    }

    /// A free-space check: unhealthy below `min_free_percent` available.
    pub fn disk(name: impl Into<String>, path: impl Into<PathBuf>, min_free_percent: f64) -> Self {
        Self::new(
            name,
            CheckKind::Disk {
                path: path.into(),
                min_free_mb: None,
                min_free_percent: Some(min_free_percent),
            },
        )
    }

    /// Sets whether the check is critical.
    #[must_use]
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the interval.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// The configuration could not be used; names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the health-checker configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML, or a setting is missing or wrong.
    #[error("{}: {problem}", Origin(path.as_deref()))]
    Invalid {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// What is wrong, with the check and the key.
        problem: String,
    },
}

struct Origin<'a>(Option<&'a Path>);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "health-checker configuration {}", p.display()),
            None => f.write_str("health-checker configuration"),
        }
    }
}

impl ConfigError {
    fn invalid(problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            path: None,
            problem: problem.into(),
        }
    }

    fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Invalid { problem, .. } => ConfigError::Invalid {
                path: Some(file.to_owned()),
                problem,
            },
            other => other,
        }
    }
}

impl Config {
    /// The built-in default: the health endpoints of orders-api and
    /// inventory (`{url}/health/telemetry`), both critical, with the
    /// default timeout and interval.
    pub fn default_for(orders_api_url: &str, inventory_url: &str) -> Config {
        let endpoint = |base: &str| format!("{}/health/telemetry", base.trim_end_matches('/'));
        Config {
            checks: vec![
                CheckConfig::http("orders-api", endpoint(orders_api_url)).critical(true),
                CheckConfig::http("inventory", endpoint(inventory_url)).critical(true),
            ],
        }
    }

    /// Reads the file named by `HEALTH_CHECKER_CONFIG`; without it, the
    /// [built-in default](Self::default_for) for orders-api at
    /// `ORDERS_API_URL` (default `http://127.0.0.1:8080`) and inventory at
    /// `INVENTORY_URL` (default `http://127.0.0.1:8081`).
    pub fn from_env() -> Result<Config, ConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        match var(CONFIG_ENV) {
            Some(path) => Config::from_file(path),
            None => Ok(Config::default_for(
                &var("ORDERS_API_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
                &var("INVENTORY_URL").unwrap_or_else(|| "http://127.0.0.1:8081".into()),
            )),
        }
    }

    /// Reads and checks a TOML file (see [`from_toml_str`](Self::from_toml_str)).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text).map_err(|e| e.in_file(path))
    }

    /// Parses and checks the TOML text of a configuration:
    ///
    /// ```toml
    /// [defaults]          # optional; each check may override these
    /// timeout = "2s"
    /// interval = "10s"
    /// critical = false
    ///
    /// [[checks]]
    /// name = "orders-api"
    /// kind = "http"       # http, tcp, database or disk
    /// url = "http://127.0.0.1:8080/health/telemetry"
    /// critical = true
    /// expect_status = [200]   # default: any 2xx
    /// max_latency = "500ms"   # default: only the timeout applies
    ///
    /// [[checks]]
    /// name = "orders-port"
    /// kind = "tcp"
    /// address = "127.0.0.1:8080"
    ///
    /// [[checks]]
    /// name = "orders-db"
    /// kind = "database"
    /// url = "sqlite://data/orders.db?mode=ro"
    ///
    /// [[checks]]
    /// name = "data-disk"
    /// kind = "disk"
    /// path = "/var/lib"
    /// min_free_percent = 10   # and/or min_free_mb
    /// ```
    ///
    /// Durations are written like `"500ms"`, `"2s"` or `"1m 30s"`. Unknown
    /// keys, keys of another kind of check, a missing setting, a duplicate
    /// name, a timeout longer than the interval and an empty list of checks
    /// are errors that say which check and key.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            ConfigError::invalid(format!(
                "not a valid configuration: {}",
                e.to_string().trim()
            ))
        })?;
        let defaults = raw.defaults.unwrap_or_default();
        let timeout = match &defaults.timeout {
            Some(v) => duration("[defaults]", "timeout", v)?,
            None => DEFAULT_TIMEOUT,
        };
        let interval = match &defaults.interval {
            Some(v) => duration("[defaults]", "interval", v)?,
            None => DEFAULT_INTERVAL,
        };
        let critical = defaults.critical.unwrap_or(false);
        let checks = raw
            .checks
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_check(i, timeout, interval, critical))
            .collect::<Result<Vec<_>, _>>()?;
        let config = Config { checks };
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: at least one check, unique non-empty
    /// names, positive durations with the timeout no longer than the
    /// interval, usable URLs, addresses and thresholds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.checks.is_empty() {
            return Err(ConfigError::invalid(
                "no checks: add at least one [[checks]] table",
            ));
        }
        let mut names = HashSet::new();
        for c in &self.checks {
            let who = format!("check \"{}\"", c.name);
            if c.name.trim().is_empty() {
                return Err(ConfigError::invalid("a check has an empty name"));
            }
            if !names.insert(c.name.as_str()) {
                return Err(ConfigError::invalid(format!(
                    "{who}: the name is used twice; names must be unique"
                )));
            }
            if c.timeout.is_zero() || c.interval.is_zero() {
                return Err(ConfigError::invalid(format!(
                    "{who}: timeout and interval must be more than zero"
                )));
            }
            if c.timeout > c.interval {
                return Err(ConfigError::invalid(format!(
                    "{who}: timeout ({}) is longer than interval ({})",
                    humantime::format_duration(c.timeout),
                    humantime::format_duration(c.interval)
                )));
            }
            match &c.kind {
                CheckKind::Http {
                    url, expect_status, ..
                } => {
                    let parsed = reqwest::Url::parse(url).map_err(|e| {
                        ConfigError::invalid(format!(
                            "{who}: url = \"{}\": {e}",
                            without_userinfo(url)
                        ))
                    })?;
                    if !matches!(parsed.scheme(), "http" | "https") {
                        return Err(ConfigError::invalid(format!(
                            "{who}: url = \"{}\": expected an http or https URL",
                            without_userinfo(url)
                        )));
                    }
                    if let Some(s) = expect_status.iter().find(|s| !(100..=599).contains(*s)) {
                        return Err(ConfigError::invalid(format!(
                            "{who}: expect_status contains {s}, which is not an HTTP status"
                        )));
                    }
                }
                CheckKind::Tcp { address } => {
                    let port = address
                        .rsplit_once(':')
                        .map(|(host, port)| (host, port.parse::<u16>()));
                    if !matches!(port, Some((host, Ok(p))) if !host.is_empty() && p != 0) {
                        return Err(ConfigError::invalid(format!(
                            "{who}: address = \"{address}\": expected host:port"
                        )));
                    }
                }
                CheckKind::Database { url } => {
                    if !url.starts_with("sqlite:") {
                        return Err(ConfigError::invalid(format!(
                            "{who}: url = \"{}\": only sqlite: URLs are supported",
                            without_userinfo(url)
                        )));
                    }
                }
                CheckKind::Disk {
                    path,
                    min_free_mb,
                    min_free_percent,
                } => {
                    if path.as_os_str().is_empty() {
                        return Err(ConfigError::invalid(format!("{who}: path is empty")));
                    }
                    if min_free_mb.is_none() && min_free_percent.is_none() {
                        return Err(ConfigError::invalid(format!(
                            "{who}: set min_free_percent or min_free_mb (or both)"
                        )));
                    }
                    if let Some(p) = min_free_percent
                        && !(0.0..=100.0).contains(p)
                    {
                        return Err(ConfigError::invalid(format!(
                            "{who}: min_free_percent = {p}: expected a number from 0 to 100"
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

fn duration(who: &str, key: &str, value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        ConfigError::invalid(format!(
            "{who}: {key} = \"{value}\": {e} (write durations like \"500ms\", \"2s\" or \"1m\")"
        ))
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    defaults: Option<RawDefaults>,
    #[serde(default)]
    checks: Vec<RawCheck>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout: Option<String>,
    interval: Option<String>,
    critical: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    name: String,
    kind: String,
    critical: Option<bool>,
    timeout: Option<String>,
    interval: Option<String>,
    url: Option<String>,
    address: Option<String>,
    path: Option<PathBuf>,
    expect_status: Option<Vec<u16>>,
    max_latency: Option<String>,
    min_free_mb: Option<u64>,
    min_free_percent: Option<f64>,
}

impl RawCheck {
    fn into_check(
        self,
        index: usize,
        timeout: Duration,
        interval: Duration,
        critical: bool,
    ) -> Result<CheckConfig, ConfigError> {
        let who = format!("check \"{}\" (checks[{index}])", self.name);
        let given: Vec<&str> = [
            ("url", self.url.is_some()),
            ("address", self.address.is_some()),
            ("path", self.path.is_some()),
            ("expect_status", self.expect_status.is_some()),
            ("max_latency", self.max_latency.is_some()),
            ("min_free_mb", self.min_free_mb.is_some()),
            ("min_free_percent", self.min_free_percent.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        let allowed: &[&str] = match self.kind.as_str() {
            "http" => &["url", "expect_status", "max_latency"],
            "tcp" => &["address"],
            "database" => &["url"],
            "disk" => &["path", "min_free_mb", "min_free_percent"],
            other => {
                return Err(ConfigError::invalid(format!(
                    "{who}: kind = \"{other}\": expected http, tcp, database or disk"
                )));
            }
        };
        if let Some(k) = given.iter().find(|k| !allowed.contains(k)) {
            return Err(ConfigError::invalid(format!(
                "{who}: `{k}` is not a setting of a {} check (it takes {})",
                self.kind,
                allowed.join(", ")
            )));
        }
        let required = |value: Option<String>, key: &str| {
            value.ok_or_else(|| {
                ConfigError::invalid(format!("{who}: a {} check needs `{key}`", self.kind))
            })
        };
        let kind = match self.kind.as_str() {
            "http" => CheckKind::Http {
                url: required(self.url, "url")?,
                expect_status: self.expect_status.unwrap_or_default(),
                max_latency: self
                    .max_latency
                    .as_deref()
                    .map(|v| duration(&who, "max_latency", v))
                    .transpose()?,
            },
            "tcp" => CheckKind::Tcp {
                address: required(self.address, "address")?,
            },
            "database" => CheckKind::Database {
                url: required(self.url, "url")?,
            },
            _ => CheckKind::Disk {
                path: self.path.ok_or_else(|| {
                    ConfigError::invalid(format!("{who}: a disk check needs `path`"))
                })?,
                min_free_mb: self.min_free_mb,
                min_free_percent: self.min_free_percent,
            },
        };
        Ok(CheckConfig {
            name: self.name,
            critical: self.critical.unwrap_or(critical),
            timeout: match &self.timeout {
                Some(v) => duration(&who, "timeout", v)?,
                None => timeout,
            },
            interval: match &self.interval {
                Some(v) => duration(&who, "interval", v)?,
                None => interval,
            },
            kind,
        })
    }
}

/// `url` as it may be printed: without the user name and password of its
/// authority (`http://user:pass@host/` → `http://host/`), even when it does
/// not parse. Anything that is not `scheme://authority…` is returned as is.
pub(crate) fn without_userinfo(url: &str) -> std::borrow::Cow<'_, str> {
    let Some(scheme_end) = url.find("://") else {
        return url.into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]).into(),
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(text: &str) -> String {
        match Config::from_toml_str(text) {
            Err(ConfigError::Invalid { problem, .. }) => problem,
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    #[test]
    fn every_kind_parses_with_defaults_and_overrides() {
        let config = Config::from_toml_str(
            r#"
            [defaults]
            timeout = "1s"
            interval = "30s"

            [[checks]]
            name = "api"
            kind = "http"
            url = "http://127.0.0.1:8080/health"
            critical = true
            expect_status = [200, 204]
            max_latency = "250ms"

            [[checks]]
            name = "port"
            kind = "tcp"
            address = "localhost:5432"
            timeout = "500ms"

            [[checks]]
            name = "db"
            kind = "database"
            url = "sqlite::memory:"
            interval = "1m"

            [[checks]]
            name = "disk"
            kind = "disk"
            path = "/"
            min_free_mb = 512
            "#,
        )
        .unwrap();
        let c = &config.checks;
        assert_eq!(c.len(), 4);
        assert_eq!(
            c[0],
            CheckConfig {
                name: "api".into(),
                critical: true,
                timeout: Duration::from_secs(1),
                interval: Duration::from_secs(30),
                kind: CheckKind::Http {
                    url: "http://127.0.0.1:8080/health".into(),
                    expect_status: vec![200, 204],
                    max_latency: Some(Duration::from_millis(250)),
                },
            }
        );
        assert_eq!(c[1].timeout, Duration::from_millis(500));
        assert!(!c[1].critical);
        assert_eq!(c[2].interval, Duration::from_secs(60));
        assert_eq!(
            c[3].kind,
            CheckKind::Disk {
                path: "/".into(),
                min_free_mb: Some(512),
                min_free_percent: None
            }
        );
    }

    #[test]
    fn the_shipped_file_parses_and_covers_every_kind() {
        let config = Config::from_toml_str(include_str!("../health-checker.toml")).unwrap();
        let kinds: HashSet<&str> = config.checks.iter().map(|c| c.kind.name()).collect();
        assert_eq!(kinds, HashSet::from(["http", "tcp", "database", "disk"]));
        let defaults = Config::default_for("http://127.0.0.1:8080", "http://127.0.0.1:8081");
        for check in &defaults.checks {
            assert!(config.checks.contains(check), "{check:?} missing");
        }
    }

    #[test]
    fn the_default_checks_both_services() {
        let c = Config::default_for("http://orders-api:8080/", "http://inventory:8081");
        c.validate().unwrap();
        let urls: Vec<(&str, bool, &CheckKind)> = c
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.critical, &c.kind))
            .collect();
        assert!(
            matches!(urls[0], ("orders-api", true, CheckKind::Http { url, .. })
            if url == "http://orders-api:8080/health/telemetry")
        );
        assert!(
            matches!(urls[1], ("inventory", true, CheckKind::Http { url, .. })
            if url == "http://inventory:8081/health/telemetry")
        );
    }

    #[test]
    fn mistakes_name_the_check_and_the_key() {
        let p = problem("[[checks]]\nname = \"a\"\nkind = \"http\"\n");
        assert!(
            p.contains("check \"a\"") && p.contains("needs `url`"),
            "{p}"
        );

        let p =
            problem("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\nurl = \"x\"\n");
        assert!(p.contains("`url` is not a setting of a tcp check"), "{p}");

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"ftp\"\n");
        assert!(p.contains("kind = \"ftp\""), "{p}");

        let p = problem(
            "[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ntimeout = \"soon\"\n",
        );
        assert!(p.contains("timeout = \"soon\""), "{p}");

        let p = problem(
            "[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\ntimeout = \"20s\"\n",
        );
        assert!(
            p.contains("timeout (20s) is longer than interval (10s)"),
            "{p}"
        );

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"nohost\"\n");
        assert!(p.contains("expected host:port"), "{p}");

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"database\"\nurl = \"postgres://x\"\n");
        assert!(p.contains("only sqlite: URLs"), "{p}");

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"disk\"\npath = \"/\"\n");
        assert!(p.contains("min_free_percent or min_free_mb"), "{p}");

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"http\"\nurl = \"not a url\"\n");
        assert!(p.contains("url = \"not a url\""), "{p}");

        let twice = "[[checks]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n";
        let p = problem(&format!("{twice}{twice}"));
        assert!(p.contains("used twice"), "{p}");

        let p = problem("");
        assert!(p.contains("no checks"), "{p}");

        let p = problem("[[checks]]\nname = \"a\"\nkind = \"tcp\"\nadress = \"h:1\"\n");
        assert!(p.contains("adress") && p.contains("line 4"), "{p}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let e = Config::from_file("no/such/health-checker.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        assert!(e.to_string().contains("no/such/health-checker.toml"), "{e}");

        let e = ConfigError::invalid("checks[0]: bad").in_file(Path::new("conf/hc.toml"));
        assert_eq!(
            e.to_string(),
            "health-checker configuration conf/hc.toml: checks[0]: bad"
        );
    }
}
